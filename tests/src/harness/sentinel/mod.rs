//! A real, throw-away Sentinel deployment on loopback for integration tests: one primary, two
//! replicas and three sentinels, each its own `redis-server` process.
//!
//! [`SentinelSet::start`] starts the primary, then the replicas (`--replicaof`, waiting until their
//! link is up), then the sentinels (`redis-server <dir>/sentinel.conf --sentinel` with a generated
//! config monitoring the primary with quorum 2) and returns once they are ready, in about 2 seconds
//! (sentinels find each other through hello messages published every 2 s). Dropping it kills every
//! process and removes their directories. The design:
//!
//! * **The pieces of [`RedisServer`].** Every process is a [`RedisServer`] (see the
//!   [`server`](super::server) module): binary lookup and install hint, its own directory (a
//!   sentinel's holds its config, which it rewrites), free loopback ports, its own watchdog, its log
//!   in every panic.
//! * **Ready means a failover can happen.** Every sentinel reports the primary by
//!   `SENTINEL get-master-addr-by-name`, lists both replicas (linked to the primary, not down) and the
//!   other two sentinels (not down), and `SENTINEL CKQUORUM` says the quorum and the majority for a
//!   failover are reachable.
//! * **Fast, bounded failovers.** `down-after-milliseconds` 1000 and `failover-timeout` 5000 by
//!   default ([`SentinelBuilder`]); replicas sync at once (`repl-diskless-sync-delay 0`).
//!   [`SentinelSet::failover_bound`] adds up Sentinel's own timings (including a failed election's
//!   retry after twice the failover timeout) with a margin for a busy machine; waits return as soon
//!   as their condition holds.
//! * **Passwords, optional and separate.** [`SentinelBuilder::password`] protects the data nodes
//!   (`requirepass`, `masterauth`, and `sentinel auth-pass` for the sentinels);
//!   [`SentinelBuilder::sentinel_password`] protects the sentinels themselves (`requirepass`, and
//!   `sentinel sentinel-pass` so they can talk to each other). [`SentinelSet::url`] carries both in
//!   the form statehouse accepts.
//! * **TLS, optional.** [`SentinelBuilder::tls`] gives every process a `tls-port` with the
//!   [`TestCertificates`] and `tls-replication yes`: replication, the sentinels' links and their
//!   announcements all use TLS ports, so every address a client learns is one.
//!   [`SentinelSet::announced_port`] maps a node to the port the sentinels name; the plain ports
//!   stay for the harness's own probes.
//! * **Keyspace notifications** are on for the data nodes ([`SHARED_ARGS`](super::SHARED_ARGS)), as on
//!   the shared server.
//!
//! # Layout
//!
//! - `mod.rs`: [`SentinelSet`]: the start, its URLs and nodes, the faults (`SENTINEL FAILOVER`,
//!   `SIGKILL`) and the waits.
//! - `builder.rs`: [`SentinelBuilder`], its options, and the `sentinel.conf` made from them.
//! - `state.rs`: what the sentinels and data nodes report: the agreed primary, and whether the set
//!   has settled.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::RedisServer;
use super::node::{Node, Role, poll_until, start_nodes};
use super::server::{ServerSpec, default_binary, percent_encode, userinfo};
use super::tls::{TestCertificates, free_tls_port};

pub(super) mod builder;
mod state;

pub use builder::SentinelBuilder;
use builder::sentinel_config;
pub use state::{create_task_seen_on_replica, task_read_calls};

/// How long the start may take until every sentinel is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restarted data node may take to be taken back as a replica: Sentinel waits 4 hello
/// periods (8 s) after it reported being a primary, and asks replicas for `INFO` every 10 s.
const RESTART_SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A primary, its replicas and the sentinels monitoring them; see the [module documentation](self).
pub struct SentinelSet {
    service: String,
    /// The data nodes; the first one started as the primary.
    data: Vec<Node>,
    sentinels: Vec<Node>,
    quorum: usize,
    down_after: Duration,
    failover_timeout: Duration,
    password: Option<String>,
    sentinel_password: Option<String>,
    /// Each process's TLS port by its plain port (empty without TLS): what the sentinels name.
    announced: HashMap<u16, u16>,
    /// The certificates of a TLS set (last: removed after every process is killed).
    certs: Option<TestCertificates>,
}

impl SentinelSet {
    /// Starts one primary, two replicas and three sentinels (quorum 2) for the service
    /// `statehouse`, and waits until they are ready (see the module documentation);
    /// [`builder`](Self::builder) for more options.
    ///
    /// # Panics
    ///
    /// If `redis-server` cannot be executed (with install instructions), or if the set is not
    /// ready within 30 seconds (with every process's log).
    pub fn start() -> SentinelSet {
        Self::builder().start()
    }

    /// Options beyond [`start`](Self::start): service name, counts, timings, passwords.
    pub fn builder() -> SentinelBuilder {
        SentinelBuilder::default()
    }

    fn start_with(options: SentinelBuilder) -> SentinelSet {
        let binary = default_binary();
        let certs = options.tls.then(TestCertificates::generate);
        let tls_args = |tls_port: Option<u16>| match (&certs, tls_port) {
            (Some(certs), Some(port)) => certs.server_args(port, true),
            _ => Vec::new(),
        };
        let mut announced = HashMap::new();
        let mut data_args: Vec<String> = vec!["--repl-diskless-sync-delay".to_owned(), "0".to_owned()];
        if let Some(password) = &options.password {
            data_args.extend(["--requirepass".to_owned(), password.clone()]);
            data_args.extend(["--masterauth".to_owned(), password.clone()]);
        }
        data_args.extend(options.args.iter().cloned());
        let data_spec = |extra: &[String], tls_port: Option<u16>| ServerSpec {
            binary: binary.clone(),
            extra_args: data_args
                .iter()
                .chain(extra)
                .cloned()
                .chain(tls_args(tls_port))
                .collect(),
            password: options.password.clone(),
            ..ServerSpec::default()
        };
        let tls = certs.is_some();
        let mut data = start_group(1, tls, &mut announced, |port| data_spec(&[], port));
        let primary_port = announced_port(&announced, &data[0]);
        let replica_of = [
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            primary_port.to_string(),
        ];
        data.extend(start_group(options.replicas, tls, &mut announced, |port| {
            data_spec(&replica_of, port)
        }));
        let config = sentinel_config(&options, primary_port);
        let sentinels = start_group(options.sentinels, tls, &mut announced, |port| ServerSpec {
            binary: binary.clone(),
            extra_args: std::iter::once("--sentinel".to_owned())
                .chain(tls_args(port))
                .collect(),
            config_file: Some(("sentinel.conf".to_owned(), config.clone())),
            password: options.sentinel_password.clone(),
            ..ServerSpec::default()
        });
        let set = SentinelSet {
            service: options.service,
            data,
            sentinels,
            quorum: options.quorum,
            down_after: options.down_after,
            failover_timeout: options.failover_timeout,
            password: options.password,
            sentinel_password: options.sentinel_password,
            announced,
            certs,
        };
        set.wait_for(READY_TIMEOUT, "the sentinels are not ready", || set.settled(true));
        set
    }

    /// The monitored service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// `redis+sentinel://[:password@]127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/SERVICE`, with
    /// `?sentinel_password=…` when the sentinels have a password: the URL form statehouse accepts.
    /// With [TLS](SentinelBuilder::tls), `rediss+sentinel://` and the sentinels' TLS ports (trust
    /// [`ca_file`](Self::ca_file)).
    pub fn url(&self) -> String {
        self.url_for(&self.service)
    }

    /// [`url`](Self::url) naming another service (which these sentinels do not know, unless it is
    /// [`service`](Self::service)).
    pub fn url_for(&self, service: &str) -> String {
        let userinfo = userinfo(self.password.as_deref());
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", self.announced_port(sentinel)))
            .collect();
        let query = self
            .sentinel_password
            .as_deref()
            .map_or_else(String::new, |password| {
                format!("?sentinel_password={}", percent_encode(password))
            });
        let scheme = if self.certs.is_some() {
            "rediss+sentinel"
        } else {
            "redis+sentinel"
        };
        format!(
            "{scheme}://{userinfo}{}/{}{query}",
            sentinels.join(","),
            percent_encode(service)
        )
    }

    /// One `redis://[:sentinel_password@]127.0.0.1:port` per sentinel: what redis-rs' `Sentinel`
    /// takes.
    pub fn sentinel_urls(&self) -> Vec<String> {
        let userinfo = userinfo(self.sentinel_password.as_deref());
        self.sentinels
            .iter()
            .map(|sentinel| format!("redis://{userinfo}{}", sentinel.addr()))
            .collect()
    }

    /// The PEM file of the CA that signed every node's certificate, in a [TLS](SentinelBuilder::tls)
    /// set.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.certs.as_ref().map(TestCertificates::ca_file)
    }

    /// The port the sentinels name for `node` (a data node or a sentinel of this set): its TLS
    /// port in a [TLS](SentinelBuilder::tls) set, its [`port`](Node::port) otherwise.
    pub fn announced_port(&self, node: &Node) -> u16 {
        announced_port(&self.announced, node)
    }

    /// The data nodes' password, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The sentinels' password, if any.
    pub fn sentinel_password(&self) -> Option<&str> {
        self.sentinel_password.as_deref()
    }

    /// `down-after-milliseconds` of this set.
    pub fn down_after(&self) -> Duration {
        self.down_after
    }

    /// The longest a failover may take from Sentinel's own timings: `down-after-milliseconds` until
    /// the primary is suspected, 1 s for the other sentinels to agree and 1 s of desync before the
    /// election, a failed election's retry after twice `failover-timeout`, then `failover-timeout`
    /// for the promotion and the replicas' reconfiguration, plus 5 s for a busy machine. The waits
    /// return as soon as the new primary is seen; this is only their bound.
    pub fn failover_bound(&self) -> Duration {
        self.down_after + Duration::from_secs(2) + self.failover_timeout * 3 + Duration::from_secs(5)
    }

    /// Every data node, in start order (the first started as the primary), running or not.
    pub fn data_nodes(&self) -> &[Node] {
        &self.data
    }

    /// Every sentinel, in start order.
    pub fn sentinels(&self) -> &[Node] {
        &self.sentinels
    }

    /// The data node a running sentinel reports as the primary now
    /// (`SENTINEL get-master-addr-by-name`).
    ///
    /// # Panics
    ///
    /// If no sentinel answers, or it names no data node of this set (with every log).
    pub fn primary(&self) -> &Node {
        let mut last = String::from("no sentinel is running");
        for sentinel in self.sentinels.iter().filter(|node| node.is_running()) {
            match self.reported_primary(sentinel) {
                Ok(port) => match self.data.iter().find(|node| self.announced_port(node) == port) {
                    Some(node) => return node,
                    None => self.fail(&format!("{} reports port {port} as the primary", sentinel.addr())),
                },
                Err(err) => last = err,
            }
        }
        self.fail(&format!("no sentinel reports the primary: {last}"))
    }

    /// The running data nodes other than [`primary`](Self::primary), in start order.
    ///
    /// # Panics
    ///
    /// As [`primary`](Self::primary).
    pub fn replicas(&self) -> Vec<&Node> {
        let primary = self.primary().port();
        self.data
            .iter()
            .filter(|node| node.port() != primary && node.is_running())
            .collect()
    }

    /// Asks a running sentinel for a failover (`SENTINEL FAILOVER <service>`: no agreement needed,
    /// the primary stays up and is turned into a replica) and returns the primary it replaces; then
    /// [`wait_for_new_primary`](Self::wait_for_new_primary).
    ///
    /// # Panics
    ///
    /// If the sentinel refuses (e.g. `NOGOODSLAVE`, `INPROG`), with every log.
    pub fn failover(&self) -> &Node {
        let old = self.primary();
        let sentinel = self.running_sentinel();
        if let Err(err) = sentinel.query::<()>(redis::cmd("SENTINEL").arg("FAILOVER").arg(&self.service)) {
            self.fail(&format!("SENTINEL FAILOVER {} failed: {err}", self.service));
        }
        old
    }

    /// Kills the primary with `SIGKILL` and returns it; the sentinels notice after
    /// `down-after-milliseconds` and elect a replica: [`wait_for_new_primary`](Self::wait_for_new_primary).
    ///
    /// # Panics
    ///
    /// As [`primary`](Self::primary).
    pub fn kill_primary(&self) -> &Node {
        let primary = self.primary();
        primary.kill();
        primary
    }

    /// Kills `node` (a data node or a sentinel) with `SIGKILL`.
    pub fn kill(&self, node: &Node) {
        node.kill();
    }

    /// Waits until every running sentinel reports the same primary, another one than `old`, and
    /// that node says `ROLE` master; returns it. Polls; `timeout` is the bound
    /// ([`failover_bound`](Self::failover_bound) is the one from Sentinel's timings).
    ///
    /// # Panics
    ///
    /// If that does not happen within `timeout` (with what was last seen and every log).
    pub fn wait_for_new_primary(&self, old: &Node, timeout: Duration) -> &Node {
        let what = format!("no new primary replaced port {}", old.port());
        let port = self.wait_for(timeout, &what, || {
            let port = self.agreed_primary()?;
            if port == self.announced_port(old) {
                return Err(format!("the sentinels still report port {port}"));
            }
            let node = self.data_node(port)?;
            match node.try_role()? {
                Role::Primary => Ok(port),
                role => Err(format!(
                    "{} is reported as the primary but says ROLE {role:?}",
                    node.addr()
                )),
            }
        });
        self.data
            .iter()
            .find(|node| self.announced_port(node) == port)
            .unwrap_or_else(|| self.fail(&format!("port {port} vanished")))
    }

    /// Waits until the set is settled: the sentinels agree on a primary that says `ROLE` master,
    /// every other running data node replicates it with its link up, and every running sentinel
    /// lists those replicas and the other running sentinels as not down.
    ///
    /// # Panics
    ///
    /// If that does not happen within `timeout` (with what was last seen and every log).
    pub fn wait_until_settled(&self, timeout: Duration) {
        self.wait_for(timeout, "the set has not settled", || self.settled(false));
    }

    /// Restarts a killed data node on its port with its original arguments (so a former primary
    /// comes back as an empty primary, as after a crash without persistence) and waits until the
    /// sentinels have turned it into a replica of the current primary and it has synced: Sentinel
    /// waits 8 s after such a node reported being a primary, so this takes about 10 s.
    ///
    /// # Panics
    ///
    /// If the node does not start or the set does not settle within 60 s (with every log).
    pub fn restart_node(&self, node: &Node) {
        node.restart();
        self.wait_for(
            RESTART_SETTLE_TIMEOUT,
            "the set has not settled after a restart",
            || self.settled(false),
        );
    }

    /// Kills every process (`SIGKILL`); their directories stay until the set is dropped.
    pub fn stop(&self) {
        for node in self.sentinels.iter().chain(&self.data) {
            node.kill();
        }
    }

    /// Polls `check` until it returns `Ok`, panicking with `what`, the last error and every log at
    /// the deadline.
    fn wait_for<T>(&self, timeout: Duration, what: &str, check: impl FnMut() -> Result<T, String>) -> T {
        poll_until(timeout, check).unwrap_or_else(|why| self.fail(&format!("{what} {why}")))
    }

    fn running_sentinel(&self) -> &Node {
        self.sentinels
            .iter()
            .find(|node| node.is_running())
            .unwrap_or_else(|| self.fail("no sentinel is running"))
    }

    /// The running data node the sentinels name by `port`.
    fn data_node(&self, port: u16) -> Result<&Node, String> {
        self.data
            .iter()
            .find(|node| self.announced_port(node) == port && node.is_running())
            .ok_or_else(|| format!("port {port} is not a running data node of this set"))
    }

    /// Panics with `what` and every process's log.
    fn fail(&self, what: &str) -> ! {
        let mut reports = String::new();
        for (index, node) in self.data.iter().enumerate() {
            reports.push_str(&format!(
                "\n===== data node {index}: {} =====\n{}",
                node.addr(),
                node.report()
            ));
        }
        for (index, node) in self.sentinels.iter().enumerate() {
            reports.push_str(&format!(
                "\n===== sentinel {index}: {} =====\n{}",
                node.addr(),
                node.report()
            ));
        }
        panic!(
            "statehouse redis sentinel harness: {what}\nservice: {}, quorum: {}{reports}",
            self.service, self.quorum
        )
    }
}

/// The port the sentinels name for `node`: its TLS port if it has one (see `announced`).
fn announced_port(announced: &HashMap<u16, u16>, node: &Node) -> u16 {
    announced.get(&node.port()).copied().unwrap_or(node.port())
}

/// Starts `count` processes from `spec`: in parallel without TLS; with it, one at a time, each
/// given a free TLS port, recorded in `announced` by the node's plain port.
fn start_group(
    count: usize,
    tls: bool,
    announced: &mut HashMap<u16, u16>,
    spec: impl Fn(Option<u16>) -> ServerSpec + Sync,
) -> Vec<Node> {
    if !tls {
        return start_nodes(count, || spec(None));
    }
    (0..count)
        .map(|_| {
            let tls_port = free_tls_port();
            let node = Node::new(RedisServer::start_spec(spec(Some(tls_port))));
            announced.insert(node.port(), tls_port);
            node
        })
        .collect()
}

impl fmt::Debug for SentinelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelSet")
            .field("service", &self.service)
            .field("data", &self.data)
            .field("sentinels", &self.sentinels)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}
