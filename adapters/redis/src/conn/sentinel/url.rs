//! The URL form of a Sentinel service,
//! `redis+sentinel://[user:password@]s1:26379,s2:26379/SERVICE[/DB][?sentinel_username=…&sentinel_password=…]`
//! (`rediss+sentinel://` with TLS): its parsing, and the URLs of the
//! sentinels and of the nodes they name.

/// A parsed Sentinel URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// `redis` or `rediss`.
    scheme: &'static str,
    /// The primary's user info, as written.
    userinfo: Option<String>,
    /// The sentinels, `host:port` each (port 26379 if none is given).
    pub(crate) sentinels: Vec<String>,
    /// The monitored service's name (percent-decoded).
    pub(crate) service: String,
    /// The primary's database, as written (empty: 0).
    db: String,
    /// The sentinels' user info (`user:password`, as written), from the
    /// `sentinel_username`/`sentinel_password` query parameters.
    sentinel_userinfo: Option<String>,
    /// Other query parameters (the primary's), as written, without `?`.
    query: String,
    /// The fragment, as written, without `#`: redis-rs' `insecure` (TLS
    /// without verifying certificates), passed on to every node and
    /// sentinel URL like on `rediss://`.
    fragment: String,
    /// `role=replica`: the URL names any replica of the service (a read
    /// endpoint), not its primary.
    pub(crate) replica: bool,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("scheme", &self.scheme)
            .field("sentinels", &self.sentinels)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl SentinelUrl {
    /// Parses a Sentinel URL; `None` if it is none (another scheme), an
    /// error that never quotes the URL if it is malformed.
    pub(crate) fn parse(url: &str) -> Option<Result<Self, String>> {
        let (scheme, body) = url.split_once("://")?;
        let scheme = if scheme.eq_ignore_ascii_case("redis+sentinel") {
            "redis"
        } else if scheme.eq_ignore_ascii_case("rediss+sentinel") {
            "rediss"
        } else {
            return None;
        };
        Some(Self::parse_body(scheme, body))
    }

    fn parse_body(scheme: &'static str, body: &str) -> Result<Self, String> {
        let (userinfo, rest) = crate::redact::split_userinfo(body)?;
        let userinfo = userinfo.map(str::to_owned);
        let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut sentinels = Vec::new();
        for (index, node) in hosts.split(',').enumerate() {
            sentinels.push(sentinel_addr(node).ok_or_else(|| {
                format!(
                    "sentinel {} of the URL is not host:port (sentinels are separated by commas)",
                    index + 1
                )
            })?);
        }
        let mut parts = path.split('/');
        let service = parts.next().unwrap_or_default();
        if service.is_empty() {
            return Err(
                "a Sentinel URL names its service: redis+sentinel://s1:26379,s2:26379/SERVICE[/DB]".into(),
            );
        }
        let db = parts.next().unwrap_or_default().to_owned();
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err("the database of a Sentinel URL (after the service) is not a number".into());
        }
        if parts.next().is_some_and(|extra| !extra.is_empty()) {
            return Err("a Sentinel URL's path is /SERVICE[/DB]".into());
        }
        let (mut user, mut password) = (None, None);
        let mut kept = Vec::new();
        let mut replica = false;
        for parameter in query.split('&').filter(|p| !p.is_empty()) {
            match parameter.split_once('=') {
                Some(("sentinel_username", value)) => user = Some(value.to_owned()),
                Some(("sentinel_password", value)) => password = Some(value.to_owned()),
                Some(("role", "replica" | "slave")) => replica = true,
                Some(("role", "master" | "primary")) => replica = false,
                Some(("role", _)) => {
                    return Err("the role of a Sentinel URL is `master` (the default) or `replica`".into());
                }
                _ => kept.push(parameter),
            }
        }
        let sentinel_userinfo = match (user, password) {
            (None, None) => None,
            (user, password) => Some(format!(
                "{}:{}",
                user.unwrap_or_default(),
                password.unwrap_or_default()
            )),
        };
        Ok(Self {
            scheme,
            userinfo,
            sentinels,
            service: percent_decode(service),
            db,
            sentinel_userinfo,
            query: kept.join("&"),
            fragment: fragment.to_owned(),
            replica,
        })
    }

    /// The `redis://` (`rediss://`) URL of the primary at `addr`.
    pub(crate) fn primary_url(&self, addr: &str) -> String {
        let userinfo = self
            .userinfo
            .as_ref()
            .map_or_else(String::new, |u| format!("{u}@"));
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        format!(
            "{}://{userinfo}{addr}/{}{query}{}",
            self.scheme,
            self.db,
            self.fragment()
        )
    }

    /// The URL of the sentinel at `addr` (its own credentials, no database).
    pub(crate) fn sentinel_url(&self, addr: &str) -> String {
        let userinfo = self
            .sentinel_userinfo
            .as_ref()
            .map_or_else(String::new, |u| format!("{u}@"));
        let fragment = self.fragment();
        let path = if fragment.is_empty() { "" } else { "/" };
        format!("{}://{userinfo}{addr}{path}{fragment}", self.scheme)
    }

    /// `#fragment`, or nothing.
    fn fragment(&self) -> String {
        if self.fragment.is_empty() {
            String::new()
        } else {
            format!("#{}", self.fragment)
        }
    }
}

/// `host:port` of one sentinel (port 26379 if none is given).
fn sentinel_addr(node: &str) -> Option<String> {
    let node = node.trim();
    let (host, port) = if let Some(v6) = node.strip_prefix('[') {
        let close = v6.find(']')?;
        let port = &v6[close + 1..];
        (&node[..close + 2], port.strip_prefix(':').unwrap_or(port))
    } else {
        node.rsplit_once(':').unwrap_or((node, ""))
    };
    if !crate::redact::is_host(host) {
        return None;
    }
    let port: u16 = if port.is_empty() {
        26379
    } else {
        port.parse().ok()?
    };
    Some(format!("{host}:{port}"))
}

/// `host:port` as a sentinel names it (IPv6 in brackets).
pub(super) fn node_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `%XX` escapes decoded (lossy); anything malformed kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentinels_service_db_and_credentials() {
        let url = SentinelUrl::parse(
            "redis+sentinel://u:p@w@s1:26380,s2,[::1]:26381/my%20svc/3?sentinel_username=su&sentinel_password=sp&protocol=3",
        )
        .unwrap()
        .unwrap();
        assert_eq!(url.sentinels, ["s1:26380", "s2:26379", "[::1]:26381"]);
        assert_eq!(url.service, "my svc");
        assert_eq!(url.primary_url("h:1"), "redis://u:p@w@h:1/3?protocol=3");
        assert_eq!(url.sentinel_url("s1:1"), "redis://su:sp@s1:1");
        assert!(!format!("{url:?}").contains("sp"));
        assert!(SentinelUrl::parse("redis://h").is_none());
    }

    #[test]
    fn tls_reaches_sentinels_and_nodes_alike() {
        let url = SentinelUrl::parse("rediss+sentinel://:pw@s1,s2:2/svc/1?sentinel_password=sp")
            .unwrap()
            .unwrap();
        assert_eq!(url.sentinel_url("s1:26379"), "rediss://:sp@s1:26379");
        assert_eq!(url.primary_url("h:1"), "rediss://:pw@h:1/1");
        // redis-rs' `#insecure` goes wherever it would on `rediss://`.
        let insecure = SentinelUrl::parse("REDISS+SENTINEL://s1/svc#insecure")
            .unwrap()
            .unwrap();
        assert_eq!(insecure.sentinel_url("s1:26379"), "rediss://s1:26379/#insecure");
        assert_eq!(insecure.primary_url("h:1"), "rediss://h:1/#insecure");
    }

    #[test]
    fn an_at_in_the_query_is_not_the_end_of_the_user_info() {
        // Found by the CLI's secrets test (seed 14776673320730022220): the
        // sentinel password's `@` was taken for the end of the user info,
        // and the rest of the password for a sentinel's host.
        let url = SentinelUrl::parse(
            "redis+sentinel://127.0.0.1:1/mymaster?sentinel_username=u&sentinel_password=++/@] zut1lM47/o",
        )
        .unwrap()
        .unwrap();
        assert_eq!(url.sentinels, ["127.0.0.1:1"]);
        assert_eq!(url.service, "mymaster");
        assert_eq!(url.sentinel_url("s:1"), "redis://u:++/@] zut1lM47/o@s:1");
        assert_eq!(url.primary_url("h:1"), "redis://h:1/");
        // A password's `@`, `/` and `,` before the hosts stay in it.
        let url = SentinelUrl::parse("redis+sentinel://u:a@b/c,d@s1:1,s2:2/svc")
            .unwrap()
            .unwrap();
        assert_eq!(url.sentinels, ["s1:1", "s2:2"]);
        assert_eq!(url.primary_url("h:1"), "redis://u:a@b/c,d@h:1/");
    }

    #[test]
    fn a_url_that_reads_two_ways_is_refused_without_quoting_it() {
        for ambiguous in [
            // An unencoded `?` in the password, then hosts after its `@`.
            "redis+sentinel://user:,hunter2?@s1:1,s2:2/svc",
            "redis+sentinel://:hunter2#x@s1:1/svc",
            // An `@` in a query value followed by what reads as a host.
            "redis+sentinel://s1:1/svc?sentinel_password=x@hunter2",
        ] {
            let reason = SentinelUrl::parse(ambiguous).unwrap().unwrap_err();
            assert!(!reason.contains("hunter2"), "{reason}");
            assert!(reason.contains("percent-encode"), "{reason}");
        }
        // Encoded, the same passwords read one way.
        let url = SentinelUrl::parse("redis+sentinel://s1:1/svc?sentinel_password=x%40hunter2")
            .unwrap()
            .unwrap();
        assert_eq!(url.sentinels, ["s1:1"]);
    }

    #[test]
    fn a_sentinel_host_is_a_name_or_an_address() {
        for bad in [
            "redis+sentinel://:pw@] hunter2/svc",
            "redis+sentinel://:pw@s1:1,hun ter2/svc",
            "redis+sentinel://:pw@[::1/svc",
            "redis+sentinel://:pw@a=b:1/svc",
        ] {
            let reason = SentinelUrl::parse(bad).unwrap().unwrap_err();
            assert!(reason.contains("is not host:port"), "{bad}: {reason}");
        }
    }

    #[test]
    fn malformed_urls_are_refused_without_quoting_them() {
        for bad in [
            "redis+sentinel://:hunter2@s1:1",
            "redis+sentinel://:hunter2@s1:x/svc",
            "redis+sentinel://:hunter2@s1:1/svc/db",
            "redis+sentinel://:hunter2@s1:1,,s2/svc",
        ] {
            let reason = SentinelUrl::parse(bad).unwrap().unwrap_err();
            assert!(!reason.contains("hunter2"), "{reason}");
        }
    }
}
