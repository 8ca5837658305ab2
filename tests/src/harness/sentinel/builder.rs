//! [`SentinelBuilder`]: the options of a [`SentinelSet`], and the `sentinel.conf` made from them.

use std::time::Duration;

use super::SentinelSet;
use crate::harness::SHARED_ARGS;

/// Options of a [`SentinelSet`]; see [`SentinelSet::builder`].
#[derive(Debug, Clone)]
pub struct SentinelBuilder {
    pub(super) service: String,
    pub(super) replicas: usize,
    pub(super) sentinels: usize,
    pub(super) quorum: usize,
    pub(super) down_after: Duration,
    pub(super) failover_timeout: Duration,
    pub(super) password: Option<String>,
    pub(super) sentinel_password: Option<String>,
    pub(super) args: Vec<String>,
    pub(super) tls: bool,
}

impl Default for SentinelBuilder {
    fn default() -> Self {
        SentinelBuilder {
            service: "statehouse".to_owned(),
            replicas: 2,
            sentinels: 3,
            quorum: 2,
            down_after: Duration::from_millis(1_000),
            failover_timeout: Duration::from_millis(5_000),
            password: None,
            sentinel_password: None,
            args: SHARED_ARGS.iter().map(|arg| (*arg).to_owned()).collect(),
            tls: false,
        }
    }
}

impl SentinelBuilder {
    /// The service (master) name the sentinels monitor. Default `statehouse`.
    pub fn service(mut self, service: &str) -> Self {
        service.clone_into(&mut self.service);
        self
    }

    /// How many replicas (default 2; at least 1, or no failover can happen).
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// How many sentinels (default 3) and the quorum (default 2) to declare the primary down.
    pub fn sentinels(mut self, sentinels: usize, quorum: usize) -> Self {
        self.sentinels = sentinels;
        self.quorum = quorum;
        self
    }

    /// `down-after-milliseconds` (default 1 s): how long the primary may not answer before a
    /// sentinel thinks it is down.
    pub fn down_after(mut self, down_after: Duration) -> Self {
        self.down_after = down_after;
        self
    }

    /// `failover-timeout` (default 5 s); a failed election is retried after twice this.
    pub fn failover_timeout(mut self, timeout: Duration) -> Self {
        self.failover_timeout = timeout;
        self
    }

    /// Makes the data nodes require `password` (`requirepass`; `masterauth` for replication; the
    /// sentinels get `sentinel auth-pass`). [`SentinelSet::url`] carries it as the URL's password.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Makes the sentinels require `password` (`requirepass`, and `sentinel sentinel-pass` between
    /// them). [`SentinelSet::url`] carries it as the `sentinel_password` query parameter.
    pub fn sentinel_password(mut self, password: &str) -> Self {
        self.sentinel_password = Some(password.to_owned());
        self
    }

    /// Runs the set with TLS ([`TestCertificates`](crate::harness::TestCertificates)): every node
    /// and sentinel gets a `tls-port` and `tls-replication yes`, so replicas replicate, and
    /// sentinels monitor, elect and announce over TLS, and every address a sentinel names is a
    /// TLS port; [`SentinelSet::url`] is `rediss+sentinel://` with the sentinels' TLS ports and
    /// [`SentinelSet::ca_file`] the CA to trust. Their plain ports stay open for the harness's own
    /// probes only: no address of them is announced.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Extra `redis-server` arguments for the data nodes (after [`SHARED_ARGS`], so they win).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }

    /// Starts the set and waits until it is ready (see [`SentinelSet::start`]).
    ///
    /// # Panics
    ///
    /// As [`SentinelSet::start`].
    pub fn start(self) -> SentinelSet {
        SentinelSet::start_with(self)
    }
}

/// The generated `sentinel.conf` (the harness adds port, bind, dir and log file on the command line).
pub(super) fn sentinel_config(options: &SentinelBuilder, primary_port: u16) -> String {
    let service = &options.service;
    let mut config = format!(
        "sentinel resolve-hostnames no\n\
         sentinel announce-hostnames no\n\
         sentinel monitor {service} 127.0.0.1 {primary_port} {quorum}\n\
         sentinel down-after-milliseconds {service} {down_after}\n\
         sentinel failover-timeout {service} {failover_timeout}\n\
         sentinel parallel-syncs {service} 1\n",
        quorum = options.quorum,
        down_after = options.down_after.as_millis(),
        failover_timeout = options.failover_timeout.as_millis(),
    );
    if let Some(password) = &options.password {
        config.push_str(&format!("sentinel auth-pass {service} {}\n", quote(password)));
    }
    if let Some(password) = &options.sentinel_password {
        config.push_str(&format!("requirepass {}\n", quote(password)));
        config.push_str(&format!("sentinel sentinel-pass {}\n", quote(password)));
    }
    config
}

/// `text` as a double-quoted Redis config argument.
fn quote(text: &str) -> String {
    let mut quoted = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(ch);
            }
            '\n' => quoted.push_str("\\n"),
            _ => quoted.push(ch),
        }
    }
    quoted.push('"');
    quoted
}

/// Checks of this file's internals, run by the `harness` test binary
/// (`harness::self_checks`).
pub(in crate::harness) mod checks {
    use super::*;
    use crate::harness::sentinel::state::not_down;

    pub fn config_quotes_passwords_and_names_the_service() {
        let options = SentinelBuilder::default()
            .service("svc")
            .password("p\"w\\")
            .sentinel_password("s p");
        let config = sentinel_config(&options, 7000);
        assert!(
            config.contains("sentinel monitor svc 127.0.0.1 7000 2\n"),
            "{config}"
        );
        assert!(
            config.contains("sentinel auth-pass svc \"p\\\"w\\\\\"\n"),
            "{config}"
        );
        assert!(config.contains("requirepass \"s p\"\n"), "{config}");
        assert!(config.contains("sentinel sentinel-pass \"s p\"\n"), "{config}");
        assert!(not_down("slave") && !not_down("slave,s_down") && !not_down("sentinel,disconnected"));
    }
}
