//! The cluster URL form: `redis+cluster://[user:password@]host1:port1,host2:port2[,…][/db][?…]`
//! (`rediss+cluster://` for TLS): the listed nodes are seeds, each reached
//! with the same user info, path and query as a `redis://` (`rediss://`)
//! URL of its own.

/// A parsed cluster URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClusterUrl {
    /// `redis` or `rediss`: the scheme of each node's own URL.
    scheme: &'static str,
    /// What came before the last `@` (user and password, as written), if any.
    userinfo: Option<String>,
    /// The seeds, `host:port` each (`[v6]:port` for IPv6).
    pub(crate) seeds: Vec<String>,
    /// Path, query and fragment, as written.
    tail: String,
}

impl std::fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterUrl")
            .field("scheme", &self.scheme)
            .field("seeds", &self.seeds)
            .finish_non_exhaustive()
    }
}

fn scheme_of(url: &str) -> Option<&'static str> {
    let (scheme, _) = url.split_once("://")?;
    if scheme.eq_ignore_ascii_case("redis+cluster") {
        Some("redis")
    } else if scheme.eq_ignore_ascii_case("rediss+cluster") {
        Some("rediss")
    } else {
        None
    }
}

impl ClusterUrl {
    /// Parses a cluster URL; `None` if it is none (another scheme), an
    /// error saying what is wrong (never quoting the URL: it may hold a
    /// password) if it is malformed.
    pub(crate) fn parse(url: &str) -> Option<Result<Self, String>> {
        let scheme = scheme_of(url)?;
        let body = &url[url.find("://")? + 3..];
        Some(Self::parse_body(scheme, body))
    }

    fn parse_body(scheme: &'static str, body: &str) -> Result<Self, String> {
        // User info runs to the last `@` before the query (a password may
        // hold `@`, `/`, `,` unencoded).
        let (userinfo, rest) = crate::redact::split_userinfo(body)?;
        let userinfo = userinfo.map(str::to_owned);
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (hosts, tail) = rest.split_at(end);
        let mut seeds = Vec::new();
        for (index, node) in hosts.split(',').enumerate() {
            seeds.push(seed(node).ok_or_else(|| {
                format!(
                    "node {} of the cluster URL is not host:port (nodes are separated by commas)",
                    index + 1
                )
            })?);
        }
        Ok(Self {
            scheme,
            userinfo,
            seeds,
            tail: tail.to_owned(),
        })
    }

    /// The `redis://` (`rediss://`) URL of the node at `node` (`host:port`),
    /// with this URL's user info, path and query.
    pub(crate) fn node_url(&self, node: &str) -> String {
        match &self.userinfo {
            Some(userinfo) => format!("{}://{userinfo}@{node}{}", self.scheme, self.tail),
            None => format!("{}://{node}{}", self.scheme, self.tail),
        }
    }

    /// Every seed's own URL.
    pub(crate) fn seed_urls(&self) -> Vec<String> {
        self.seeds.iter().map(|seed| self.node_url(seed)).collect()
    }
}

/// `host:port` of one node of the list (port 6379 if none is given);
/// `None` if it is empty or its port is not a number.
fn seed(node: &str) -> Option<String> {
    let node = node.trim();
    if node.is_empty() {
        return None;
    }
    let (host, port) = if let Some(v6) = node.strip_prefix('[') {
        let close = v6.find(']')?;
        let port = &v6[close + 1..];
        (&node[..close + 2], port.strip_prefix(':').unwrap_or(port))
    } else {
        match node.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (node, ""),
        }
    };
    if !crate::redact::is_host(host) {
        return None;
    }
    let port: u16 = if port.is_empty() { 6379 } else { port.parse().ok()? };
    Some(format!("{host}:{port}"))
}

/// `host:port` of a node as `CLUSTER SLOTS` names it (IPv6 in brackets).
pub(crate) fn node_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists_parse_into_seed_urls() {
        let url = ClusterUrl::parse("redis+cluster://u:p@ss/w,rd@h1:7000,h2,[::1]:7002/0?protocol=3")
            .unwrap()
            .unwrap();
        assert_eq!(url.seeds, ["h1:7000", "h2:6379", "[::1]:7002"]);
        assert_eq!(
            url.seed_urls(),
            [
                "redis://u:p@ss/w,rd@h1:7000/0?protocol=3",
                "redis://u:p@ss/w,rd@h2:6379/0?protocol=3",
                "redis://u:p@ss/w,rd@[::1]:7002/0?protocol=3",
            ]
        );
        let tls = ClusterUrl::parse("REDISS+CLUSTER://a:1").unwrap().unwrap();
        assert_eq!(tls.seed_urls(), ["rediss://a:1"]);
        assert_eq!(tls.node_url("10.0.0.1:7000"), "rediss://10.0.0.1:7000");
        assert!(ClusterUrl::parse("redis://h:1").is_none());
        assert_eq!(node_addr("::1", 7000), "[::1]:7000");
        assert_eq!(node_addr("10.0.0.1", 7000), "10.0.0.1:7000");
    }

    #[test]
    fn malformed_lists_name_the_node_never_the_url() {
        for (url, node) in [
            ("redis+cluster://:hunter2@h1:1,,h2:2", 2),
            ("redis+cluster://:hunter2@h1:x", 1),
            ("redis+cluster://:hunter2@", 1),
            ("redis+cluster://h1:1,h2:99999", 2),
        ] {
            let error = ClusterUrl::parse(url).unwrap().unwrap_err();
            assert!(error.contains(&format!("node {node} ")), "{url}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
        // Not a host: a password cut short.
        let error = ClusterUrl::parse("redis+cluster://:pw@h1:1,] hunter2")
            .unwrap()
            .unwrap_err();
        assert!(error.contains("node 2 "), "{error}");
        // An `@` in the query is not the end of the user info; one followed
        // by a host makes the URL read two ways, refused.
        let url = ClusterUrl::parse("redis+cluster://h1:1,h2:2?password=a@] b")
            .unwrap()
            .unwrap();
        assert_eq!(url.seeds, ["h1:1", "h2:2"]);
        let error = ClusterUrl::parse("redis+cluster://h1:1?password=a@hunter2")
            .unwrap()
            .unwrap_err();
        assert!(
            error.contains("percent-encode") && !error.contains("hunter2"),
            "{error}"
        );
        let debug = format!("{:?}", ClusterUrl::parse("redis+cluster://:hunter2@h:1").unwrap());
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
