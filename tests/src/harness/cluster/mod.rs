//! A real, throw-away Redis Cluster on loopback for integration tests.
//!
//! [`RedisCluster::start`] starts `primaries × (1 + replicas_per_primary)` `redis-server --cluster-enabled
//! yes` processes, joins them with `redis-cli --cluster create … --cluster-replicas N --cluster-yes`
//! and returns once the cluster is ready (2 to 3 seconds: `redis-cli` polls the join once a second).
//! Dropping it kills every node and removes their directories. The design:
//!
//! * **The pieces of [`RedisServer`](super::RedisServer).** Every node is a `RedisServer` (see the
//!   [`server`](super::server) module): the same binary lookup (`$STATEHOUSE_REDIS_SERVER`, install hint), its own temporary
//!   directory (holding its `nodes.conf`, so a [restarted](RedisCluster::restart_node) node keeps its
//!   identity), no persistence, its own watchdog (nothing outlives the test process), its log in every
//!   panic. Its port is chosen so that the cluster bus port, 10000 higher, is free too.
//! * **`redis-cli`** is the one next to the `redis-server` binary (also after resolving a symlink), else
//!   the one on `PATH`; a missing one panics with an install hint. Debian's and Ubuntu's
//!   `redis-server` package depends on `redis-tools`, which has it; Homebrew's `redis` has both.
//! * **Ready means ready for a client.** Every running node says `cluster_state:ok` with all 16384
//!   slots assigned and none failing, every node's `CLUSTER NODES` shows the same primaries, replicas
//!   and slot ranges (none of them flagged `fail`, `pfail`, `handshake` or `noaddr`), and every replica
//!   reports `master_link_status:up`. A client's first `CLUSTER SLOTS` then sees the final topology.
//! * **Live answers, never a cached topology.** Roles change under failover and slots move, so
//!   [`primary_for_slot`](RedisCluster::primary_for_slot), [`primaries`](RedisCluster::primaries) and
//!   [`Node::role`] ask the running processes.
//! * **Bounded waits from Redis' own timings.** A node is suspected after `cluster-node-timeout`
//!   (2 s by default here, [`ClusterBuilder::node_timeout`]); a replica's election may need a retry
//!   after twice the auth timeout. [`RedisCluster::failover_bound`] adds these up with a margin for a
//!   busy machine; the waits poll and return as soon as their condition holds.
//! * **Shared.** [`RedisCluster::shared`] is one cluster per test process (3 primaries, no replicas,
//!   keyspace notifications on, Redis' default 15 s node timeout so a busy machine never fails a
//!   node), stopped by the watchdogs when the process exits. Tests on it namespace their keys and
//!   never kill or migrate.
//!
//! The files: this one has the cluster, its nodes, its options and its start; `cli.rs` finds and runs
//! `redis-cli --cluster create`; `topology.rs` asks the running nodes (roles, slots, health, failover);
//! `migrate.rs` moves a slot with the steps of a real resharding.

pub(super) mod cli;
mod migrate;
pub(super) mod topology;

use std::ffi::OsString;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;
use std::time::Duration;

use super::SHARED_ARGS;
use super::node::{Node, start_nodes};
use super::server::{PortRule, ServerSpec, default_binary, userinfo};
use cli::redis_cli_for;

pub use migrate::MigrationStep;

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// How long a started (or restarted) cluster may take to become ready after `redis-cli` is done.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `cluster-node-timeout` of [`RedisCluster::start`].
const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// `cluster-node-timeout` of [`RedisCluster::shared`]: Redis' default.
const SHARED_NODE_TIMEOUT: Duration = Duration::from_secs(15);

/// A local Redis Cluster of real `redis-server` processes; see the [module documentation](self).
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
    primaries: usize,
    replicas_per_primary: usize,
    node_timeout: Duration,
    password: Option<String>,
    redis_cli: OsString,
}

/// A node of a [`RedisCluster`]: a [`Node`] (port, role, pid, log, connection) with its cluster id.
pub struct ClusterNode {
    node: Node,
    id: String,
}

impl ClusterNode {
    /// The node's cluster id (`CLUSTER MYID`), kept across a restart (it is in its `nodes.conf`).
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Deref for ClusterNode {
    type Target = Node;

    fn deref(&self) -> &Node {
        &self.node
    }
}

impl fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterNode")
            .field("port", &self.port())
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Options of a [`RedisCluster`]; see [`RedisCluster::builder`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    primaries: usize,
    replicas_per_primary: usize,
    node_timeout: Duration,
    password: Option<String>,
    args: Vec<String>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            primaries: 3,
            replicas_per_primary: 0,
            node_timeout: DEFAULT_NODE_TIMEOUT,
            password: None,
            args: Vec::new(),
        }
    }
}

impl ClusterBuilder {
    /// How many primaries (at least 3, what `redis-cli --cluster create` requires). Default 3.
    pub fn primaries(mut self, primaries: usize) -> Self {
        self.primaries = primaries;
        self
    }

    /// How many replicas each primary gets. Default 0.
    pub fn replicas_per_primary(mut self, replicas: usize) -> Self {
        self.replicas_per_primary = replicas;
        self
    }

    /// `cluster-node-timeout`: how long a node may be unreachable before it is suspected (and a
    /// replica starts its election). Default 2 s; whole milliseconds.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// Makes every node require `password` (`requirepass`, and `masterauth` so replicas sync);
    /// [`RedisCluster::url`] and [`RedisCluster::seed_urls`] then carry it.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Extra `redis-server` arguments for every node (they come last, so they win).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }

    /// Starts the cluster and waits until it is ready (see [`RedisCluster::start`]).
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::start`].
    pub fn start(self) -> RedisCluster {
        RedisCluster::start_with(self)
    }
}

impl RedisCluster {
    /// Starts a cluster of `primaries` primaries (at least 3) with `replicas_per_primary` replicas
    /// each, covering all 16384 slots, and waits until it is ready (see the module documentation).
    /// Node timeout 2 s; [`builder`](Self::builder) for more options.
    ///
    /// # Panics
    ///
    /// If `redis-server` or `redis-cli` cannot be executed (with install instructions), or if the
    /// cluster is not ready within its deadline (with every node's log and `redis-cli`'s output).
    pub fn start(primaries: usize, replicas_per_primary: usize) -> RedisCluster {
        Self::builder()
            .primaries(primaries)
            .replicas_per_primary(replicas_per_primary)
            .start()
    }

    /// Options beyond [`start`](Self::start): node timeout, password, extra arguments.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// One cluster shared by the whole test process, started on first use: 3 primaries, no
    /// replicas, keyspace notifications on ([`SHARED_ARGS`]), a 15 s node timeout. It lives in a
    /// `static`, which is never dropped: the watchdogs kill its nodes when the process exits. Tests
    /// using it namespace their keys and never kill nodes or move slots.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), on first use.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            Self::builder()
                .node_timeout(SHARED_NODE_TIMEOUT)
                .args(SHARED_ARGS)
                .start()
        })
    }

    fn start_with(options: ClusterBuilder) -> RedisCluster {
        assert!(
            options.primaries >= 3,
            "statehouse redis cluster harness: a cluster needs at least 3 primaries (asked for {})",
            options.primaries
        );
        let binary = default_binary();
        let redis_cli = redis_cli_for(&binary);
        let total = options.primaries * (1 + options.replicas_per_primary);
        let timeout_ms = options.node_timeout.as_millis().to_string();
        let mut args: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &timeout_ms,
            // Replicas sync at once instead of waiting 5 s for more replicas (also after a failover).
            "--repl-diskless-sync-delay",
            "0",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        if let Some(password) = &options.password {
            args.extend(["--requirepass".to_owned(), password.clone()]);
            args.extend(["--masterauth".to_owned(), password.clone()]);
        }
        args.extend(options.args.iter().cloned());
        let spec = || ServerSpec {
            binary: binary.clone(),
            extra_args: args.clone(),
            password: options.password.clone(),
            port_rule: PortRule::ClusterBus,
            ..ServerSpec::default()
        };
        let mut nodes = Vec::with_capacity(total);
        for node in start_nodes(total, spec) {
            let id = match node.query::<String>(redis::cmd("CLUSTER").arg("MYID")) {
                Ok(id) => id,
                Err(err) => panic!(
                    "statehouse redis cluster harness: CLUSTER MYID failed: {err}\n{}",
                    node.report()
                ),
            };
            nodes.push(ClusterNode { node, id });
        }
        let cluster = RedisCluster {
            nodes,
            primaries: options.primaries,
            replicas_per_primary: options.replicas_per_primary,
            node_timeout: options.node_timeout,
            password: options.password,
            redis_cli,
        };
        cluster.create();
        cluster.wait_until_healthy(READY_TIMEOUT);
        cluster
    }

    /// `redis+cluster://[:password@]127.0.0.1:p1,127.0.0.1:p2,…` listing every node (start order),
    /// the URL form statehouse accepts for a cluster.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|node| node.addr()).collect();
        format!("redis+cluster://{}{}", self.userinfo(), nodes.join(","))
    }

    /// One `redis://[:password@]127.0.0.1:port` per node (start order): the seeds redis-rs'
    /// `ClusterClient::new` takes.
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://{}{}", self.userinfo(), node.addr()))
            .collect()
    }

    /// The password every node requires, if the cluster has one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `cluster-node-timeout` of this cluster.
    pub fn node_timeout(&self) -> Duration {
        self.node_timeout
    }

    /// The longest a replica's promotion may take after its primary died, from Redis' own timings:
    /// the node timeout until it is suspected, as long again for the failure reports to agree, the
    /// replica's election delay (up to 1 s, plus 1 s per rank), a failed election's retry after twice
    /// the auth timeout (`max(2 × node timeout, 2 s)`) and the election itself, plus 5 s for a busy
    /// machine. The waits return as soon as the promotion is seen; this is only their bound.
    pub fn failover_bound(&self) -> Duration {
        let auth_timeout = (self.node_timeout * 2).max(Duration::from_secs(2));
        let ranks = u32::try_from(self.replicas_per_primary).unwrap_or(u32::MAX);
        self.node_timeout * 2
            + Duration::from_secs(1)
            + Duration::from_secs(1) * ranks
            + auth_timeout * 3
            + Duration::from_secs(5)
    }

    /// Every node, in start order (running or not, whatever its role now).
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// The node with this port.
    ///
    /// # Panics
    ///
    /// If no node of this cluster has it.
    pub fn node_by_port(&self, port: u16) -> &ClusterNode {
        match self.nodes.iter().find(|node| node.port() == port) {
            Some(node) => node,
            None => self.fail(&format!("no node of this cluster listens on port {port}")),
        }
    }

    /// Kills every node (`SIGKILL`); their directories stay until the cluster is dropped.
    pub fn stop(&self) {
        for node in &self.nodes {
            node.kill();
        }
    }

    /// `:password@` (percent-encoded) or nothing.
    fn userinfo(&self) -> String {
        userinfo(self.password.as_deref())
    }

    /// Panics with `what` and every node's log.
    fn fail(&self, what: &str) -> ! {
        let mut reports = String::new();
        for (index, node) in self.nodes.iter().enumerate() {
            reports.push_str(&format!(
                "\n===== node {index}: {} (id {}) =====\n{}",
                node.addr(),
                node.id(),
                node.report()
            ));
        }
        panic!(
            "statehouse redis cluster harness: {what}\nredis-cli: {:?}{reports}",
            self.redis_cli
        )
    }
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("primaries", &self.primaries)
            .field("replicas_per_primary", &self.replicas_per_primary)
            .field("node_timeout", &self.node_timeout)
            .field("nodes", &self.nodes)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}
