use std::fmt;
use std::time::Duration;

use statehouse_ports::{Durability, RetryPolicy, StoreError, TaskSpace, Ttl, ValidationExt};
#[cfg(feature = "redis")]
use statehouse_redis::{RedisConfig, redact_url};

/// Where statehouse keeps its state and how it talks to it.
///
/// Built in code, or from environment variables with [`Settings::from_env`]:
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `STATEHOUSE_URL` | `memory://`, `redis://…`, `rediss://…` (feature `tls`), `unix://…`, `redis+cluster://[user:pw@]h1:p1,h2:p2` (a Redis Cluster, its nodes as seeds), `rediss+cluster://…` (feature `tls`), `redis+sentinel://[user:pw@]s1:26379,s2:26379/SERVICE[/DB][?sentinel_username=…&sentinel_password=…]` (a Sentinel service's primary, followed on failover), `rediss+sentinel://…` (feature `tls`: TLS to the sentinels and the data nodes) | `memory://` |
/// | `STATEHOUSE_READ_URL` | where task reads (`get`, `list_by_*`, `count_by_*`) go, e.g. a replica; Redis only (an error with `memory://`); empty = unset | `STATEHOUSE_URL` |
/// | `STATEHOUSE_PREFIX` | put in front of every Redis key | empty |
/// | `STATEHOUSE_CONNECT_TIMEOUT_MS` | bound on opening a connection | 2000 |
/// | `STATEHOUSE_RESPONSE_TIMEOUT_MS` | bound on one call | 2000 |
/// | `STATEHOUSE_POOL_SIZE` | dedicated connections for atomic updates | 32 |
/// | `STATEHOUSE_UPDATE_ATTEMPTS` | attempts of an atomic update before `Conflict` | 50 |
/// | `STATEHOUSE_RETRY_ATTEMPTS` | tries of an idempotent call that failed with a connection error or timeout (1 = no retry) | 1 |
/// | `STATEHOUSE_TLS_CA_FILE` | PEM file of a private CA to trust for `rediss://` (and `rediss+cluster://`, `rediss+sentinel://`: every node and sentinel) | platform roots |
/// | `STATEHOUSE_TASK_NAMESPACE` | namespace of task keys (hash tags `{<ns>:b0}` … `{<ns>:b15}`) | `tasks` |
/// | `STATEHOUSE_TASK_TTL_SECONDS` | TTL of task records and indexes, refreshed by every write | 7776000 (90 days) |
/// | `STATEHOUSE_TASK_MAX_LOG` | keep at most this many log entries per task | no cap |
/// | `STATEHOUSE_SENTINEL_USERNAME` | for `redis+sentinel://`: the sentinels' own user (instead of the URL's `sentinel_username`) | none |
/// | `STATEHOUSE_SENTINEL_PASSWORD` | for `redis+sentinel://`: the sentinels' own password (instead of the URL's `sentinel_password`); never shown | none |
/// | `STATEHOUSE_DURABILITY_REPLICAS` | acknowledge a write only once this many replicas confirmed it (`WAIT`); 0 = the primary alone | 0 |
/// | `STATEHOUSE_DURABILITY_TIMEOUT_MS` | how long a write waits for those replicas (at most half the response timeout) | 1000 |
///
/// `Debug` and `Display` never show the password of either URL: they show
/// [`Settings::redacted_url`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The store's URL.
    pub url: String,
    /// Where task reads go (e.g. a replica of `url`); `None`: to `url`.
    /// Documents and all writes always use `url`. A replica lags, so a task
    /// read there may miss the latest write. Redis only: connecting with a
    /// `memory://` URL and a read URL is an error.
    pub read_url: Option<String>,
    /// Key prefix (Redis only; an in-memory store is private anyway).
    pub prefix: String,
    /// Bound on opening a connection.
    pub connect_timeout: Duration,
    /// Bound on one call.
    pub response_timeout: Duration,
    /// Size of the pool of dedicated connections for WATCH sections.
    pub pool_size: u32,
    /// Retries of atomic updates under contention.
    pub update_policy: RetryPolicy,
    /// Tries of an idempotent call that failed with a temporary error
    /// (connection, timeout), through the `Retrying` layer; 1 (the default)
    /// adds no layer and reports the first failure.
    pub retry_attempts: u32,
    /// For `rediss://`: a private CA (PEM) to trust.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// The namespace of task keys, the head of their Redis Cluster hash tags (`{<ns>:b<bucket>}`).
    pub task_namespace: String,
    /// The TTL of task records and their indexes, refreshed by every write.
    pub task_ttl: Duration,
    /// Keep at most this many log entries per task (`None`: no cap).
    pub task_max_log: Option<usize>,
    /// How many replicas must confirm a write before it is acknowledged
    /// (default: the primary alone, which a failover can lose; see
    /// [`Durability`] and `docs/reliability.md`, "Durability"). Its
    /// timeout must be at most half of `response_timeout`.
    pub durability: Durability,
    /// For `redis+sentinel://`: the sentinels' own user (the URL's user
    /// info is the primary's), instead of the URL's `sentinel_username`.
    pub sentinel_username: Option<String>,
    /// For `redis+sentinel://`: the sentinels' own password, instead of
    /// the URL's `sentinel_password`. Never shown by `Debug`/`Display`.
    pub sentinel_password: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self::new("memory://")
    }
}

impl Settings {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        let (connect_timeout, response_timeout, pool_size) = connection_defaults();
        Self {
            url: url.into(),
            read_url: None,
            prefix: String::new(),
            connect_timeout,
            response_timeout,
            pool_size,
            update_policy: RetryPolicy::default(),
            retry_attempts: 1,
            tls_ca_file: None,
            task_namespace: TaskSpace::DEFAULT_NAMESPACE.to_owned(),
            task_ttl: TaskSpace::DEFAULT_TTL,
            task_max_log: None,
            durability: Durability::Primary,
            sentinel_username: None,
            sentinel_password: None,
        }
    }

    /// The same settings with writes acknowledged as `durability` says.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Settings from the process environment; see the table above. A
    /// variable that is set but invalid is an error naming the variable.
    pub fn from_env() -> Result<Self, StoreError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings from any name → value lookup (the environment, a map in a
    /// test, a config file).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, StoreError> {
        let mut settings = Self::new(lookup("STATEHOUSE_URL").unwrap_or_else(|| "memory://".to_owned()));
        settings.read_url = lookup("STATEHOUSE_READ_URL").filter(|url| !url.trim().is_empty());
        if let Some(prefix) = lookup("STATEHOUSE_PREFIX") {
            settings.prefix = prefix;
        }
        if let Some(ms) = number(&lookup, "STATEHOUSE_CONNECT_TIMEOUT_MS")? {
            settings.connect_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = number(&lookup, "STATEHOUSE_RESPONSE_TIMEOUT_MS")? {
            settings.response_timeout = Duration::from_millis(ms);
        }
        if let Some(size) = number(&lookup, "STATEHOUSE_POOL_SIZE")? {
            settings.pool_size = u32::try_from(size).unwrap_or(u32::MAX);
        }
        if let Some(attempts) = number(&lookup, "STATEHOUSE_UPDATE_ATTEMPTS")? {
            settings.update_policy = RetryPolicy::new(u32::try_from(attempts).unwrap_or(u32::MAX));
        }
        if let Some(attempts) = number(&lookup, "STATEHOUSE_RETRY_ATTEMPTS")? {
            settings.retry_attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        }
        if let Some(path) = lookup("STATEHOUSE_TLS_CA_FILE") {
            settings.tls_ca_file = Some(path.into());
        }
        if let Some(namespace) = lookup("STATEHOUSE_TASK_NAMESPACE") {
            settings.task_namespace = namespace;
        }
        if let Some(secs) = number(&lookup, "STATEHOUSE_TASK_TTL_SECONDS")? {
            settings.task_ttl = Duration::from_secs(secs);
            Ttl::new(settings.task_ttl).for_op("configure", "STATEHOUSE_TASK_TTL_SECONDS")?;
        }
        if let Some(max) = number(&lookup, "STATEHOUSE_TASK_MAX_LOG")? {
            settings.task_max_log = Some(usize::try_from(max).unwrap_or(usize::MAX));
        }
        settings.sentinel_username = lookup("STATEHOUSE_SENTINEL_USERNAME").filter(|v| !v.is_empty());
        settings.sentinel_password = lookup("STATEHOUSE_SENTINEL_PASSWORD").filter(|v| !v.is_empty());
        let replicas = number(&lookup, "STATEHOUSE_DURABILITY_REPLICAS")?;
        let wait = number(&lookup, "STATEHOUSE_DURABILITY_TIMEOUT_MS")?;
        if replicas.is_some() || wait.is_some() {
            settings.durability = Durability::replicas(
                replicas.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                wait.map_or(DEFAULT_DURABILITY_WAIT, Duration::from_millis),
            );
        }
        Ok(settings)
    }

    /// Where tasks are kept: namespace, TTL, log cap and the update policy.
    /// A TTL out of range (zero, over 100 years) falls back to the default
    /// (`from_lookup` rejects one from the environment).
    pub fn task_space(&self) -> TaskSpace {
        let space = TaskSpace::new(self.task_namespace.clone()).with_policy(self.update_policy);
        let space = match space.clone().with_ttl(self.task_ttl) {
            Ok(with_ttl) => with_ttl,
            Err(_) => space,
        };
        match self.task_max_log {
            Some(max) => space.with_max_log(max),
            None => space,
        }
    }

    /// The Redis adapter's configuration for these settings (feature `redis`).
    #[cfg(feature = "redis")]
    pub fn redis_config(&self) -> RedisConfig {
        let mut config = RedisConfig::new(self.url.clone())
            .with_prefix(self.prefix.clone())
            .with_timeouts(self.connect_timeout, self.response_timeout);
        config.pool_size = self.pool_size;
        config.tls_ca_file = self.tls_ca_file.clone();
        config.read_url = self.read_url.clone();
        config.durability = self.durability;
        config.sentinel_username = self.sentinel_username.clone();
        config.sentinel_password = self.sentinel_password.clone();
        config
    }

    /// The policy of the `Retrying` layer, if these settings ask for one:
    /// `retry_attempts` tries, backoff 25 ms to 250 ms.
    pub fn transient_retry(&self) -> Option<RetryPolicy> {
        (self.retry_attempts > 1).then(|| crate::layers::transient_policy(self.retry_attempts))
    }

    /// The URL with its password (and whatever could be part of it)
    /// replaced by `***`; see `statehouse_redis::redact_url` (without the
    /// `redis` feature, everything after `scheme://` is hidden).
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The read URL, if any, with any password replaced by `***`.
    pub fn redacted_read_url(&self) -> Option<String> {
        self.read_url.as_deref().map(redact_url)
    }
}

/// How long a write waits for its replicas when `STATEHOUSE_DURABILITY_REPLICAS`
/// is set without `STATEHOUSE_DURABILITY_TIMEOUT_MS`: half the default
/// response timeout.
const DEFAULT_DURABILITY_WAIT: Duration = Duration::from_secs(1);

/// The defaults of `connect_timeout`, `response_timeout` and `pool_size`:
/// the Redis adapter's own.
#[cfg(feature = "redis")]
fn connection_defaults() -> (Duration, Duration, u32) {
    let redis = RedisConfig::new("");
    (redis.connect_timeout, redis.response_timeout, redis.pool_size)
}

/// Without the Redis adapter nothing reads them; the same values as
/// `RedisConfig::new`, so that `Settings` look the same in every build.
#[cfg(not(feature = "redis"))]
fn connection_defaults() -> (Duration, Duration, u32) {
    (Duration::from_secs(2), Duration::from_secs(2), 32)
}

/// Without the Redis adapter (and its URL parser), a URL shows only its
/// scheme: `redis://***`; one without a plain scheme shows as `***`.
#[cfg(not(feature = "redis"))]
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some(("memory", "")) => url.to_owned(),
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b)) =>
        {
            format!("{scheme}://***")
        }
        _ => "***".to_owned(),
    }
}

/// A positive whole number from `name`, if set.
fn number(lookup: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<u64>, StoreError> {
    let Some(raw) = lookup(name) else {
        return Ok(None);
    };
    match raw.trim().parse::<u64>() {
        Ok(value) if value > 0 => Ok(Some(value)),
        _ => Err(StoreError::invalid_input(
            "configure",
            name,
            format!("expected a whole number greater than 0, got {raw:?}"),
        )),
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.redacted_url())
            .field("read_url", &self.redacted_read_url())
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("pool_size", &self.pool_size)
            .field("update_policy", &self.update_policy)
            .field("retry_attempts", &self.retry_attempts)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("task_namespace", &self.task_namespace)
            .field("task_ttl", &self.task_ttl)
            .field("task_max_log", &self.task_max_log)
            .field("durability", &self.durability)
            .field("sentinel_username", &self.sentinel_username)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())?;
        if let Some(read_url) = self.redacted_read_url() {
            write!(f, " (task reads from {read_url})")?;
        }
        if !self.prefix.is_empty() {
            write!(f, " (prefix {:?})", self.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Settings, StoreError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[cfg(feature = "redis")]
    #[test]
    fn defaults_to_memory() {
        let settings = from(&[]).unwrap();
        assert_eq!(settings.url, "memory://");
        assert_eq!(settings.read_url, None);
        assert_eq!(settings.redis_config().read_url, None);
        assert_eq!(settings.response_timeout, Duration::from_secs(2));
        assert_eq!(settings.update_policy.max_attempts(), 50);
        assert_eq!(settings.transient_retry(), None);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn durability_comes_from_the_environment_and_goes_to_the_redis_config() {
        assert_eq!(from(&[]).unwrap().durability, Durability::Primary);
        let settings = from(&[
            ("STATEHOUSE_URL", "redis://db"),
            ("STATEHOUSE_DURABILITY_REPLICAS", "2"),
            ("STATEHOUSE_DURABILITY_TIMEOUT_MS", "300"),
        ])
        .unwrap();
        let wanted = Durability::replicas(2, Duration::from_millis(300));
        assert_eq!(settings.durability, wanted);
        assert_eq!(settings.redis_config().durability, wanted);
        let defaulted = from(&[("STATEHOUSE_DURABILITY_REPLICAS", "1")]).unwrap();
        assert_eq!(
            defaulted.durability,
            Durability::replicas(1, Duration::from_secs(1))
        );
        let error = from(&[("STATEHOUSE_DURABILITY_REPLICAS", "two")]).unwrap_err();
        assert!(
            error.to_string().contains("STATEHOUSE_DURABILITY_REPLICAS"),
            "{error}"
        );
        assert_eq!(
            Settings::new("redis://db").with_durability(wanted).durability,
            wanted
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn sentinel_credentials_come_from_the_environment_and_never_show() {
        let settings = from(&[
            ("STATEHOUSE_URL", "redis+sentinel://s1:26379/mymaster"),
            ("STATEHOUSE_SENTINEL_USERNAME", "watcher"),
            ("STATEHOUSE_SENTINEL_PASSWORD", "s3ntinel-secret"),
        ])
        .unwrap();
        assert_eq!(settings.sentinel_username.as_deref(), Some("watcher"));
        assert_eq!(settings.sentinel_password.as_deref(), Some("s3ntinel-secret"));
        let redis = settings.redis_config();
        assert_eq!(redis.sentinel_username.as_deref(), Some("watcher"));
        assert_eq!(redis.sentinel_password.as_deref(), Some("s3ntinel-secret"));
        for shown in [
            format!("{settings:?}"),
            settings.to_string(),
            format!("{redis:?}"),
            redis.to_string(),
        ] {
            assert!(!shown.contains("s3ntinel-secret"), "{shown}");
        }
        assert_eq!(from(&[]).unwrap().sentinel_password, None);
    }

    #[test]
    fn reads_every_variable() {
        let settings = from(&[
            ("STATEHOUSE_URL", "redis://:pw@db:6380/2"),
            ("STATEHOUSE_PREFIX", "app:"),
            ("STATEHOUSE_CONNECT_TIMEOUT_MS", "150"),
            ("STATEHOUSE_RESPONSE_TIMEOUT_MS", "250"),
            ("STATEHOUSE_POOL_SIZE", "4"),
            ("STATEHOUSE_UPDATE_ATTEMPTS", "7"),
            ("STATEHOUSE_TLS_CA_FILE", "/etc/ca.pem"),
            ("STATEHOUSE_RETRY_ATTEMPTS", "3"),
        ])
        .unwrap();
        assert_eq!(settings.prefix, "app:");
        assert_eq!(settings.connect_timeout, Duration::from_millis(150));
        assert_eq!(settings.response_timeout, Duration::from_millis(250));
        assert_eq!(settings.pool_size, 4);
        assert_eq!(settings.update_policy.max_attempts(), 7);
        assert_eq!(settings.transient_retry().map(|p| p.max_attempts()), Some(3));
        #[cfg(feature = "redis")]
        {
            let redis = settings.redis_config();
            assert_eq!(redis.prefix, "app:");
            assert_eq!(redis.response_timeout, Duration::from_millis(250));
            assert_eq!(
                redis.tls_ca_file.as_deref(),
                Some(std::path::Path::new("/etc/ca.pem"))
            );
        }
    }

    #[test]
    fn task_settings_come_from_the_environment() {
        let defaults = from(&[]).unwrap().task_space();
        assert_eq!(defaults.namespace(), "tasks");
        assert_eq!(defaults.ttl().as_millis(), 7_776_000_000);
        assert_eq!(defaults.max_log(), None);
        let settings = from(&[
            ("STATEHOUSE_TASK_NAMESPACE", "jobs"),
            ("STATEHOUSE_TASK_TTL_SECONDS", "3600"),
            ("STATEHOUSE_TASK_MAX_LOG", "20"),
            ("STATEHOUSE_UPDATE_ATTEMPTS", "9"),
        ])
        .unwrap();
        let space = settings.task_space();
        assert_eq!(space.namespace(), "jobs");
        assert_eq!(space.ttl().as_millis(), 3_600_000);
        assert_eq!(space.max_log(), Some(20));
        assert_eq!(space.policy().max_attempts(), 9);
        let err = from(&[("STATEHOUSE_TASK_TTL_SECONDS", "999999999999")]).unwrap_err();
        assert!(err.to_string().contains("STATEHOUSE_TASK_TTL_SECONDS"), "{err}");
        assert!(from(&[("STATEHOUSE_TASK_TTL_SECONDS", "0")]).is_err());
    }

    #[test]
    fn invalid_numbers_name_the_variable() {
        let err = from(&[("STATEHOUSE_RESPONSE_TIMEOUT_MS", "soon")]).unwrap_err();
        assert!(
            err.to_string().contains("STATEHOUSE_RESPONSE_TIMEOUT_MS"),
            "{err}"
        );
        assert!(err.to_string().contains("\"soon\""), "{err}");
        assert!(from(&[("STATEHOUSE_POOL_SIZE", "0")]).is_err());
    }

    #[cfg(feature = "redis")]
    #[test]
    fn password_is_never_shown() {
        for url in [
            "redis://user:hunter2@db:6379",
            "redis://user:hun/ter2@db:6379",
            "unix:///run/redis.sock?db=1&pass=hunter2",
        ] {
            let settings = from(&[("STATEHOUSE_URL", url)]).unwrap();
            assert!(!format!("{settings:?}").contains("ter2"), "{settings:?}");
            assert!(!settings.to_string().contains("ter2"), "{settings}");
            assert_eq!(settings.redacted_url(), redact_url(url));
        }
        let settings = from(&[("STATEHOUSE_URL", "redis://user:hunter2@db:6379")]).unwrap();
        assert_eq!(settings.to_string(), "redis://***@db:6379");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn read_url_goes_to_the_redis_config_and_its_password_is_never_shown() {
        let settings = from(&[
            ("STATEHOUSE_URL", "redis://:hunter2@primary:6379"),
            ("STATEHOUSE_READ_URL", "redis://reader:sw0rdfish@replica:6380/0"),
        ])
        .unwrap();
        assert_eq!(
            settings.read_url.as_deref(),
            Some("redis://reader:sw0rdfish@replica:6380/0")
        );
        let redis = settings.redis_config();
        assert_eq!(redis.url, "redis://:hunter2@primary:6379");
        assert_eq!(redis.read_url, settings.read_url);
        for shown in [
            format!("{settings:?}"),
            settings.to_string(),
            format!("{redis:?}"),
            redis.to_string(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("sw0rdfish"), "{shown}");
            assert!(shown.contains("redis://***@replica:6380/0"), "{shown}");
        }
        assert_eq!(
            from(&[("STATEHOUSE_READ_URL", " ")]).unwrap().read_url,
            None,
            "empty means unset"
        );
    }
}
