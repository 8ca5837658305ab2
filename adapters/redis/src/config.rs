use std::fmt;
use std::time::Duration;

use statehouse_ports::{Durability, StoreError};

use crate::redact_url;

/// Configuration of a [`RedisStore`](crate::RedisStore).
///
/// Every network call is bounded: redis-rs 1.x silently defaults to a 500 ms
/// response timeout and a 1 s connect timeout, so statehouse sets both
/// deliberately, and bounds each whole call (including waits for a
/// reconnection or for a pooled connection) on top.
///
/// `Debug` and `Display` never show the password of the URL.
///
/// ```
/// use std::time::Duration;
/// use statehouse_redis::RedisConfig;
///
/// let mut config = RedisConfig::new("redis://:s3cret@127.0.0.1:6379/0");
/// config.prefix = "myapp:".into();
/// config.response_timeout = Duration::from_secs(1);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS, with the
    /// `tls` feature), `unix:///path/to/socket`, or a Redis Cluster:
    /// `redis+cluster://[user:password@]host1:port1,host2:port2[,…]`
    /// (`rediss+cluster://…` with `tls`), the nodes its seeds.
    pub url: String,
    /// Put in front of every key and every pattern, stripped from listed
    /// keys. Empty by default. Glob characters in it are matched literally.
    pub prefix: String,
    /// Bound on establishing one connection. Default 2 s.
    pub connect_timeout: Duration,
    /// Bound on one call: from sending the command to its reply, including
    /// any wait for a reconnection or a pooled connection. Default 2 s.
    pub response_timeout: Duration,
    /// Bound on commands that block on the server by design (blocking pops);
    /// it is added to the command's own server-side timeout. Default 30 s.
    pub blocking_timeout: Duration,
    /// How many dedicated connections the pool for WATCH sections (atomic
    /// updates) may open. Default 32.
    pub pool_size: u32,
    /// The `COUNT` hint of each `SCAN` step. Default 1000.
    pub scan_count: u32,
    /// For `rediss://`: a PEM file of the certificate authority to trust
    /// instead of the platform's and webpki's roots (a private CA). Needs
    /// the `tls` feature. Default: none.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Where task reads (`get`, `list`, `count`) go, e.g. a replica of
    /// `url`; same forms as `url`, and the same timeouts, reconnection and
    /// TLS CA. Documents and every write stay on `url` (read-your-writes).
    /// A replica lags its primary, so a task read may miss the latest
    /// write. Default: none (reads go to `url`). Redacted like `url`.
    pub read_url: Option<String>,
    /// How many replicas must confirm a write before it is acknowledged
    /// (`WAIT` after it, on its connection); its timeout must be at most
    /// half of `response_timeout`. Default: the primary alone
    /// ([`Durability::Primary`]). See `docs/reliability.md`, "Durability".
    pub durability: Durability,
    /// For `redis+sentinel://`: the user the sentinels themselves want
    /// (not the primary's), instead of the URL's `sentinel_username`.
    /// Default: none.
    pub sentinel_username: Option<String>,
    /// For `redis+sentinel://`: the sentinels' own password, instead of
    /// the URL's `sentinel_password`. Never shown (`Debug` prints `***`).
    /// Default: none.
    pub sentinel_password: Option<String>,
}

impl RedisConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: String::new(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            blocking_timeout: Duration::from_secs(30),
            pool_size: 32,
            scan_count: 1000,
            tls_ca_file: None,
            read_url: None,
            durability: Durability::Primary,
            sentinel_username: None,
            sentinel_password: None,
        }
    }

    /// The same configuration with task reads sent to `read_url`.
    #[must_use]
    pub fn with_read_url(mut self, read_url: impl Into<String>) -> Self {
        self.read_url = Some(read_url.into());
        self
    }

    /// The same configuration with writes acknowledged only once
    /// `durability`'s replicas confirmed them.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The same configuration with another key prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The same configuration with other connect and response timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// The same configuration with the sentinels' own credentials (for
    /// `redis+sentinel://`; they take the place of the URL's
    /// `sentinel_username`/`sentinel_password`).
    #[must_use]
    pub fn with_sentinel_credentials(mut self, username: Option<String>, password: Option<String>) -> Self {
        self.sentinel_username = username;
        self.sentinel_password = password;
        self
    }

    /// `url` with the sentinel credentials of these fields as its query
    /// parameters (the last of a name wins), percent-encoded: what a
    /// Sentinel URL is parsed from, and whose secrets errors are checked
    /// against.
    pub(crate) fn effective_url(&self) -> String {
        let mut extra = Vec::new();
        if let Some(user) = &self.sentinel_username {
            extra.push(format!("sentinel_username={}", percent_encode(user)));
        }
        if let Some(password) = &self.sentinel_password {
            extra.push(format!("sentinel_password={}", percent_encode(password)));
        }
        if extra.is_empty() {
            return self.url.clone();
        }
        // Before a fragment, if any.
        let body = self.url.find("://").map_or(0, |at| at + 3);
        // (A URL that reads two ways is refused by the parser.)
        let rest =
            crate::redact::split_userinfo(&self.url[body..]).map_or(&self.url[body..], |(_, rest)| rest);
        let after_userinfo = self.url.len() - rest.len();
        let end = self.url[after_userinfo..]
            .find('#')
            .map_or(self.url.len(), |hash| after_userinfo + hash);
        let (head, fragment) = self.url.split_at(end);
        let joiner = if head[after_userinfo..].contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{head}{joiner}{}{fragment}", extra.join("&"))
    }

    /// The `redis://` (`rediss://`) URL statehouse reaches the data node at
    /// `addr` (`host:port`) of this deployment with: a Sentinel service's
    /// primary or replica, a cluster's node, each with the URL's user info,
    /// database and parameters; for one server, its URL. For tools that ask
    /// each node on a connection of their own (`statehouse status`).
    ///
    /// ```
    /// use statehouse_redis::RedisConfig;
    ///
    /// let config = RedisConfig::new("redis+sentinel://:pw@s1:26379,s2:26379/svc/2?sentinel_password=sp");
    /// assert_eq!(config.node_url("10.0.0.7:6379").unwrap(), "redis://:pw@10.0.0.7:6379/2");
    /// assert_eq!(config.sentinel_url("s1:26379").unwrap(), "redis://:sp@s1:26379");
    /// let cluster = RedisConfig::new("redis+cluster://:pw@h1:7000,h2:7001");
    /// assert_eq!(cluster.node_url("10.0.0.8:7002").unwrap(), "redis://:pw@10.0.0.8:7002");
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] if the URL is malformed (naming the
    /// redacted URL, never quoting it).
    pub fn node_url(&self, addr: &str) -> Result<String, StoreError> {
        Self::url_of(&self.effective_url(), &self.redacted_url(), addr, false)
    }

    /// [`node_url`](Self::node_url) of the read URL (a Sentinel service's
    /// replicas); its URL for one server; `None` without a read URL.
    ///
    /// # Errors
    ///
    /// As [`node_url`](Self::node_url).
    pub fn read_node_url(&self, addr: &str) -> Option<Result<String, StoreError>> {
        let read_url = self.read_url.as_deref()?;
        Some(Self::url_of(read_url, &redact_url(read_url), addr, false))
    }

    /// The URL of the sentinel at `addr` of a Sentinel service: the
    /// sentinels' credentials (these fields', else the URL's
    /// `sentinel_username`/`sentinel_password`), no database.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] if the URL is malformed or names no
    /// Sentinel service.
    pub fn sentinel_url(&self, addr: &str) -> Result<String, StoreError> {
        Self::url_of(&self.effective_url(), &self.redacted_url(), addr, true)
    }

    fn url_of(url: &str, shown: &str, addr: &str, sentinel: bool) -> Result<String, StoreError> {
        match crate::conn::node_url(url, addr, sentinel) {
            None => Ok(url.to_owned()),
            Some(Ok(node)) => Ok(node),
            Some(Err(reason)) => Err(StoreError::invalid_input("connect", shown, reason)),
        }
    }

    /// The URL with its password (and whatever could be part of it)
    /// replaced by `***`, for logs and messages; see [`redact_url`].
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The read URL, if any, with any password replaced by `***`.
    pub fn redacted_read_url(&self) -> Option<String> {
        self.read_url.as_deref().map(redact_url)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("blocking_timeout", &self.blocking_timeout)
            .field("pool_size", &self.pool_size)
            .field("scan_count", &self.scan_count)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("read_url", &self.redacted_read_url())
            .field("durability", &self.durability)
            .field("sentinel_username", &self.sentinel_username)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl fmt::Display for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())?;
        if let Some(read_url) = self.redacted_read_url() {
            write!(f, " (task reads from {read_url})")?;
        }
        Ok(())
    }
}

/// `text` with every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`)
/// percent-encoded, for a URL component.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_credentials_become_the_urls_query_and_never_show() {
        let config = RedisConfig::new("redis+sentinel://:pw@s1:26379,s2/mymaster/2")
            .with_sentinel_credentials(Some("sen".into()), Some("p@ss w#rd&=".into()));
        assert_eq!(
            config.effective_url(),
            "redis+sentinel://:pw@s1:26379,s2/mymaster/2?sentinel_username=sen&sentinel_password=p%40ss%20w%23rd%26%3D"
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("w#rd") && !debug.contains("p%40ss"), "{debug}");
        assert!(debug.contains("sentinel_password: Some(\"***\")"), "{debug}");
        // Appended to a query, before a fragment; the fields win (last).
        let config = RedisConfig::new("redis+sentinel://s1/m?sentinel_password=old#x")
            .with_sentinel_credentials(None, Some("new".into()));
        assert_eq!(
            config.effective_url(),
            "redis+sentinel://s1/m?sentinel_password=old&sentinel_password=new#x"
        );
        assert_eq!(RedisConfig::new("redis://h").effective_url(), "redis://h");
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        for url in [
            "redis://admin:hunter2@db:6379",
            "redis://admin:hun/ter2@db:6379",
            "unix:///tmp/redis.sock?db=1&pass=hunter2",
        ] {
            let config = RedisConfig::new(url);
            assert!(!format!("{config:?}").contains("ter2"), "{config:?}");
            assert!(!config.to_string().contains("ter2"), "{config}");
            assert_eq!(config.redacted_url(), redact_url(url));
        }
    }

    #[test]
    fn read_url_passwords_never_show() {
        let config = RedisConfig::new("redis://:hunter2@primary:6379")
            .with_read_url("redis://reader:sw0rdfish@replica:6380/0");
        let debug = format!("{config:?}");
        let display = config.to_string();
        for shown in [&debug, &display] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("sw0rdfish"), "{shown}");
            assert!(shown.contains("redis://***@replica:6380/0"), "{shown}");
        }
        assert_eq!(
            display,
            "redis://***@primary:6379 (task reads from redis://***@replica:6380/0)"
        );
        assert!(!format!("{:?}", RedisConfig::new("redis://h")).contains("task reads"));
    }
}
