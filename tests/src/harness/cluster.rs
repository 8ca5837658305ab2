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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::SHARED_ARGS;
use super::node::{Node, Role, info_fields, poll_until, start_nodes};
use super::server::{PortRule, ServerSpec, default_binary, read_lossy, userinfo};

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// How to get `redis-cli`, pasted into the "binary missing" panic.
const REDIS_CLI_HINT: &str = "redis-cli is in the same package as redis-server on most systems: Debian/Ubuntu \
                              `apt-get install redis-server` (it depends on `redis-tools`, which has \
                              redis-cli), `brew install redis`; or put redis-cli next to the binary \
                              STATEHOUSE_REDIS_SERVER names, or on PATH";

/// How long `redis-cli --cluster create` may take (it polls the join once a second).
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a started (or restarted) cluster may take to become ready after `redis-cli` is done.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls of `redis-cli`'s exit.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Keys per `MIGRATE` of [`RedisCluster::migrate_slot`] (redis-cli's default pipeline is 10).
const MIGRATE_BATCH: usize = 10;
/// The `MIGRATE` timeout in milliseconds.
const MIGRATE_TIMEOUT_MS: u64 = 5_000;
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

/// A step of [`RedisCluster::migrate_slot_with`], passed to its hook right after it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationStep {
    /// `CLUSTER SETSLOT <slot> IMPORTING <source>` ran on the target: it accepts `ASKING` commands.
    Importing,
    /// `CLUSTER SETSLOT <slot> MIGRATING <target>` ran on the source: a key it lacks answers `ASK`.
    Migrating,
    /// One `MIGRATE … KEYS …` moved `keys` keys, `total` so far.
    Moved {
        /// Keys moved by this `MIGRATE`.
        keys: usize,
        /// Keys moved since the migration began.
        total: usize,
    },
    /// `CLUSTER SETSLOT <slot> NODE <target>` ran on the target: it owns the slot.
    AssignedOnTarget,
    /// The same ran on the source: it answers `MOVED` for the slot now.
    AssignedOnSource,
    /// The same ran on every other node: the migration is done.
    Done,
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

    /// `redis-cli --cluster create … --cluster-replicas N --cluster-yes`, bounded; its output goes
    /// to a file in the first node's directory and into the panic if it fails.
    fn create(&self) {
        let output_path = self.nodes[0].dir().join("redis-cli-create.log");
        let output = match File::create(&output_path).and_then(|file| Ok((file.try_clone()?, file))) {
            Ok(files) => files,
            Err(err) => self.fail(&format!("cannot create {}: {err}", output_path.display())),
        };
        let mut command = Command::new(&self.redis_cli);
        command.arg("--cluster").arg("create");
        command.args(self.nodes.iter().map(|node| node.addr()));
        command
            .arg("--cluster-replicas")
            .arg(self.replicas_per_primary.to_string())
            .arg("--cluster-yes");
        if let Some(password) = &self.password {
            command.arg("-a").arg(password).arg("--no-auth-warning");
        }
        let mut child = match command
            .stdin(Stdio::null())
            .stdout(output.0)
            .stderr(output.1)
            .spawn()
        {
            Ok(child) => child,
            Err(err) => self.fail(&missing_cli_message(&self.redis_cli, &err)),
        };
        let deadline = Instant::now() + CREATE_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.fail(&format!(
                        "`redis-cli --cluster create` did not finish within {CREATE_TIMEOUT:?}; its output:\n{}",
                        read_lossy(&output_path)
                    ));
                }
                Err(err) => self.fail(&format!("cannot wait for redis-cli: {err}")),
            }
        };
        if !status.success() {
            self.fail(&format!(
                "`redis-cli --cluster create` failed with {status}; its output:\n{}",
                read_lossy(&output_path)
            ));
        }
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

    /// The running nodes that own slots now (each by its own account), in start order.
    ///
    /// # Panics
    ///
    /// If a running node cannot be asked (with every log).
    pub fn primaries(&self) -> Vec<&ClusterNode> {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .filter(|node| match self.own_line(node) {
                Ok(line) => line.primary && !line.slots.is_empty(),
                Err(err) => self.fail(&err),
            })
            .collect()
    }

    /// The running replicas now, in start order.
    ///
    /// # Panics
    ///
    /// If a running node cannot be asked (with every log).
    pub fn replicas(&self) -> Vec<&ClusterNode> {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .filter(|node| match node.try_role() {
                Ok(role) => role == Role::Replica,
                Err(err) => self.fail(&err),
            })
            .collect()
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`, asked of a running node: Redis' own CRC16 and hash tag
    /// rules).
    ///
    /// # Panics
    ///
    /// If no running node answers (with every log).
    pub fn slot_of(&self, key: &str) -> u16 {
        let mut last = String::from("no node is running");
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            match node.query::<u16>(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)) {
                Ok(slot) => return slot,
                Err(err) => last = err,
            }
        }
        self.fail(&format!("CLUSTER KEYSLOT {key:?} failed: {last}"))
    }

    /// The running primary that owns `slot` now, by its own account (the newest config epoch wins
    /// should two claim it, as in Redis).
    ///
    /// # Panics
    ///
    /// If no running node owns it (e.g. its primary was killed and not yet replaced), with every log.
    pub fn primary_for_slot(&self, slot: u16) -> &ClusterNode {
        match self.try_primary_for_slot(slot) {
            Ok(Some(node)) => node,
            Ok(None) => self.fail(&format!("no running node owns slot {slot}")),
            Err(err) => self.fail(&err),
        }
    }

    /// The running primary that owns the slot of `key` now; see [`primary_for_slot`](Self::primary_for_slot).
    ///
    /// # Panics
    ///
    /// As [`primary_for_slot`](Self::primary_for_slot).
    pub fn primary_for_key(&self, key: &str) -> &ClusterNode {
        self.primary_for_slot(self.slot_of(key))
    }

    /// `DBSIZE` of every primary now, by port.
    ///
    /// # Panics
    ///
    /// If a primary cannot be asked (with every log).
    pub fn count_keys_per_primary(&self) -> BTreeMap<u16, u64> {
        self.primaries()
            .into_iter()
            .map(|node| match node.query::<u64>(&redis::cmd("DBSIZE")) {
                Ok(count) => (node.port(), count),
                Err(err) => self.fail(&format!("DBSIZE failed: {err}")),
            })
            .collect()
    }

    /// `CLUSTER COUNTKEYSINSLOT slot` on the primary owning `slot` now.
    ///
    /// # Panics
    ///
    /// As [`primary_for_slot`](Self::primary_for_slot).
    pub fn count_keys_in_slot(&self, slot: u16) -> u64 {
        let owner = self.primary_for_slot(slot);
        match owner.query(redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot)) {
            Ok(count) => count,
            Err(err) => self.fail(&format!("CLUSTER COUNTKEYSINSLOT {slot} failed: {err}")),
        }
    }

    /// Kills `node` with `SIGKILL` and waits for the process to exit. Its directory (and
    /// `nodes.conf`) stays for [`restart_node`](Self::restart_node).
    pub fn kill(&self, node: &ClusterNode) {
        node.kill();
    }

    /// Kills the primary owning `slot` now with `SIGKILL` and returns it. With a replica, the
    /// cluster promotes it: [`wait_for_new_primary`](Self::wait_for_new_primary).
    ///
    /// # Panics
    ///
    /// As [`primary_for_slot`](Self::primary_for_slot).
    pub fn kill_primary(&self, slot: u16) -> &ClusterNode {
        let primary = self.primary_for_slot(slot);
        primary.kill();
        primary
    }

    /// Waits until another running node than `old` owns `slot` in every running node's view, says
    /// `ROLE` master, and every running node says `cluster_state:ok`; returns it. Polls; `timeout`
    /// is the bound ([`failover_bound`](Self::failover_bound) is the one from Redis' timings).
    ///
    /// # Panics
    ///
    /// If that does not happen within `timeout` (with what was last seen and every node's log).
    pub fn wait_for_new_primary(&self, slot: u16, old: &ClusterNode, timeout: Duration) -> &ClusterNode {
        poll_until(timeout, || self.new_primary(slot, old)).unwrap_or_else(|why| {
            self.fail(&format!(
                "slot {slot} has no new primary (other than port {}) {why}",
                old.port()
            ))
        })
    }

    /// Restarts a killed node on its port with its `nodes.conf` (a failed-over primary comes back as
    /// a replica of its successor) and waits until the cluster is healthy again with it.
    ///
    /// # Panics
    ///
    /// If the node does not start, or the cluster is not healthy within 30 s (with every log).
    pub fn restart_node(&self, node: &ClusterNode) {
        node.restart();
        self.wait_until_healthy(READY_TIMEOUT);
    }

    /// Waits until the running nodes form a healthy cluster: `cluster_state:ok` with every slot
    /// served by a running primary, the same topology in every running node's `CLUSTER NODES`,
    /// every running replica's link up (the readiness condition of [`start`](Self::start), for the
    /// running nodes).
    ///
    /// # Panics
    ///
    /// If that does not happen within `timeout` (with what was last seen and every node's log).
    pub fn wait_until_healthy(&self, timeout: Duration) {
        if let Err(why) = poll_until(timeout, || self.health()) {
            self.fail(&format!("the cluster is not healthy {why}"));
        }
    }

    /// Moves `slot` from primary `from` to primary `to` with the steps of a real resharding
    /// (`redis-cli --cluster reshard` does the same); see
    /// [`migrate_slot_with`](Self::migrate_slot_with). Returns the number of keys moved.
    ///
    /// # Panics
    ///
    /// As [`migrate_slot_with`](Self::migrate_slot_with).
    pub fn migrate_slot(&self, slot: u16, from: &ClusterNode, to: &ClusterNode) -> usize {
        self.migrate_slot_with(slot, from, to, |_| {})
    }

    /// Moves `slot` from primary `from` to primary `to`, calling `hook` after every step (see
    /// [`MigrationStep`]): `CLUSTER SETSLOT slot IMPORTING from` on `to`, `CLUSTER SETSLOT slot
    /// MIGRATING to` on `from`, then `CLUSTER GETKEYSINSLOT` + `MIGRATE … KEYS …` (10 keys each)
    /// until `from` has none left (keys written meanwhile included), then `CLUSTER SETSLOT slot NODE
    /// to` on `to`, on `from` and on every other running node. Returns the number of keys moved.
    ///
    /// While it runs, a client sees what it would see in production: `ASK` for keys already moved
    /// (or new), `TRYAGAIN` for a multi-key command whose keys are split, `MOVED` at the end.
    ///
    /// # Panics
    ///
    /// If `from` does not own the slot, `to` is not a primary, or a step fails (with every log).
    pub fn migrate_slot_with(
        &self,
        slot: u16,
        from: &ClusterNode,
        to: &ClusterNode,
        mut hook: impl FnMut(MigrationStep),
    ) -> usize {
        let owner = self.primary_for_slot(slot);
        if owner.id() != from.id() {
            self.fail(&format!(
                "cannot migrate slot {slot} from port {}: port {} owns it",
                from.port(),
                owner.port()
            ));
        }
        if from.id() == to.id() || to.try_role() != Ok(Role::Primary) {
            self.fail(&format!(
                "cannot migrate slot {slot} to port {}: not another primary",
                to.port()
            ));
        }
        let setslot = |node: &ClusterNode, state: &str, id: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
            if let Err(err) = node.query::<()>(&cmd) {
                self.fail(&format!(
                    "CLUSTER SETSLOT {slot} {state} {id} on port {} failed: {err}",
                    node.port()
                ));
            }
        };
        setslot(to, "IMPORTING", from.id());
        hook(MigrationStep::Importing);
        setslot(from, "MIGRATING", to.id());
        hook(MigrationStep::Migrating);

        let mut total = 0;
        loop {
            let keys: Vec<Vec<u8>> = match from.query(
                redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(MIGRATE_BATCH),
            ) {
                Ok(keys) => keys,
                Err(err) => self.fail(&format!("CLUSTER GETKEYSINSLOT {slot} failed: {err}")),
            };
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate
                .arg("127.0.0.1")
                .arg(to.port())
                .arg("")
                .arg(0)
                .arg(MIGRATE_TIMEOUT_MS);
            if let Some(password) = &self.password {
                migrate.arg("AUTH").arg(password);
            }
            migrate.arg("KEYS").arg(&keys);
            if let Err(err) = from.query::<redis::Value>(&migrate) {
                self.fail(&format!(
                    "MIGRATE of {} keys of slot {slot} failed: {err}",
                    keys.len()
                ));
            }
            total += keys.len();
            hook(MigrationStep::Moved {
                keys: keys.len(),
                total,
            });
        }

        setslot(to, "NODE", to.id());
        hook(MigrationStep::AssignedOnTarget);
        setslot(from, "NODE", to.id());
        hook(MigrationStep::AssignedOnSource);
        for node in &self.nodes {
            if node.id() != from.id() && node.id() != to.id() && node.is_running() {
                setslot(node, "NODE", to.id());
            }
        }
        hook(MigrationStep::Done);
        total
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

    fn try_primary_for_slot(&self, slot: u16) -> Result<Option<&ClusterNode>, String> {
        let mut best: Option<(u64, &ClusterNode)> = None;
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let line = self.own_line(node)?;
            if line.primary && line.owns(slot) && best.is_none_or(|(epoch, _)| line.epoch > epoch) {
                best = Some((line.epoch, node));
            }
        }
        Ok(best.map(|(_, node)| node))
    }

    /// The `myself` line of `node`'s `CLUSTER NODES`.
    fn own_line(&self, node: &ClusterNode) -> Result<NodeLine, String> {
        cluster_nodes(node)?
            .into_iter()
            .find(|line| line.myself)
            .ok_or_else(|| format!("{}: CLUSTER NODES has no `myself` line", node.addr()))
    }

    /// `Ok(new primary)` once the condition of [`wait_for_new_primary`](Self::wait_for_new_primary)
    /// holds, else what is missing.
    fn new_primary(&self, slot: u16, old: &ClusterNode) -> Result<&ClusterNode, String> {
        let mut owner: Option<String> = None;
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let info = cluster_info(node)?;
            if info.get("cluster_state").map(String::as_str) != Some("ok") {
                return Err(format!("{}: cluster_state is not ok", node.addr()));
            }
            let seen = cluster_nodes(node)?
                .into_iter()
                .find(|line| line.primary && !line.failing && line.owns(slot))
                .map(|line| line.id)
                .ok_or_else(|| format!("{}: no healthy primary owns slot {slot}", node.addr()))?;
            if seen == old.id() {
                return Err(format!(
                    "{}: port {} still owns slot {slot}",
                    node.addr(),
                    old.port()
                ));
            }
            match &owner {
                None => owner = Some(seen),
                Some(first) if *first == seen => {}
                Some(first) => return Err(format!("the nodes disagree on slot {slot}: {first} or {seen}")),
            }
        }
        let owner = owner.ok_or("no node is running")?;
        let node = self
            .nodes
            .iter()
            .find(|node| node.id() == owner && node.is_running())
            .ok_or_else(|| format!("slot {slot} is owned by {owner}, not a running node of this cluster"))?;
        match node.try_role()? {
            Role::Primary => Ok(node),
            role => Err(format!("{} owns slot {slot} but says ROLE {role:?}", node.addr())),
        }
    }

    /// `Ok(())` when the running nodes form a healthy cluster of the expected shape (only the
    /// running nodes count when some were killed), else what is missing.
    fn health(&self) -> Result<(), String> {
        let running: Vec<&ClusterNode> = self.nodes.iter().filter(|node| node.is_running()).collect();
        let running_ids: BTreeSet<&str> = running.iter().map(|node| node.id()).collect();
        let mut agreed: Option<(String, Vec<NodeLine>)> = None;
        for node in &running {
            let info = cluster_info(node)?;
            for (field, want) in [
                ("cluster_state", "ok"),
                ("cluster_slots_assigned", "16384"),
                ("cluster_slots_ok", "16384"),
            ] {
                let seen = info.get(field).map_or("(missing)", String::as_str);
                if seen != want {
                    return Err(format!("{}: {field}:{seen}", node.addr()));
                }
            }
            let mut view: Vec<NodeLine> = cluster_nodes(node)?
                .into_iter()
                .filter(|line| running_ids.contains(line.id.as_str()))
                .collect();
            view.sort_by(|a, b| a.id.cmp(&b.id));
            if view.len() != running.len() {
                return Err(format!(
                    "{} knows {} of the {} running nodes",
                    node.addr(),
                    view.len(),
                    running.len()
                ));
            }
            if let Some(line) = view.iter().find(|line| line.failing || !line.connected) {
                return Err(format!("{} sees {} as {}", node.addr(), line.id, line.flags));
            }
            let served: usize = view
                .iter()
                .filter(|line| line.primary)
                .flat_map(|line| &line.slots)
                .map(|(first, last)| usize::from(last - first) + 1)
                .sum();
            if served != usize::from(SLOTS) {
                return Err(format!(
                    "{} sees {served} slots served by running primaries",
                    node.addr()
                ));
            }
            match &agreed {
                None => agreed = Some((node.addr(), view)),
                Some((first, first_view)) if !same_topology(first_view, &view) => {
                    return Err(format!("{first} and {} see different topologies", node.addr()));
                }
                Some(_) => {}
            }
        }
        let (_, view) = agreed.ok_or("no node is running")?;
        let primaries = view.iter().filter(|line| line.primary).count();
        if running.len() == self.nodes.len() {
            let replicas = view.len() - primaries;
            if primaries != self.primaries || replicas != self.primaries * self.replicas_per_primary {
                return Err(format!("{primaries} primaries and {replicas} replicas"));
            }
        }
        for line in view.iter().filter(|line| !line.primary) {
            let master = line.master.as_deref().unwrap_or("-");
            if !view.iter().any(|other| other.primary && other.id == master) {
                return Err(format!(
                    "replica {} follows {master}, not a running primary",
                    line.id
                ));
            }
            let node = running
                .iter()
                .find(|node| node.id() == line.id)
                .ok_or_else(|| format!("{} is not a running node", line.id))?;
            if !node.replica_link_up()? {
                return Err(format!("{}: master_link_status is not up", node.addr()));
            }
        }
        Ok(())
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

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    flags: String,
    myself: bool,
    primary: bool,
    /// Flagged `fail`, `fail?`, `handshake` or `noaddr`.
    failing: bool,
    master: Option<String>,
    epoch: u64,
    connected: bool,
    /// Owned slot ranges (inclusive); migrating/importing markers left out.
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    /// Parses `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
    /// <config-epoch> <link-state> <slot> …`.
    fn parse(line: &str) -> Option<NodeLine> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return None;
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        let mut slots = Vec::new();
        for range in &fields[8..] {
            if range.starts_with('[') {
                continue;
            }
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            slots.push((first.parse().ok()?, last.parse().ok()?));
        }
        slots.sort_unstable();
        let myself = flags.contains(&"myself");
        Some(NodeLine {
            id: fields[0].to_owned(),
            flags: fields[2].to_owned(),
            myself,
            primary: flags.contains(&"master"),
            failing: flags
                .iter()
                .any(|flag| matches!(*flag, "fail" | "fail?" | "handshake" | "noaddr")),
            master: (fields[3] != "-").then(|| fields[3].to_owned()),
            epoch: fields[6].parse().ok()?,
            // A node's own line says "connected" too; a peer's says whether the bus link is up.
            connected: myself || fields[7] == "connected",
            slots,
        })
    }

    fn owns(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(first, last)| (*first..=*last).contains(&slot))
    }
}

/// Whether two sorted views agree on every node's role, primary and slots.
fn same_topology(a: &[NodeLine], b: &[NodeLine]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.id == y.id && x.primary == y.primary && x.master == y.master && x.slots == y.slots
        })
}

/// `CLUSTER NODES` of `node`, parsed.
fn cluster_nodes(node: &Node) -> Result<Vec<NodeLine>, String> {
    let text: String = node.query(redis::cmd("CLUSTER").arg("NODES"))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| NodeLine::parse(line).ok_or_else(|| format!("{}: cannot parse {line:?}", node.addr())))
        .collect()
}

/// `CLUSTER INFO` of `node` as fields.
fn cluster_info(node: &Node) -> Result<HashMap<String, String>, String> {
    let text: String = node.query(redis::cmd("CLUSTER").arg("INFO"))?;
    Ok(info_fields(&text))
}

/// `redis-cli` next to `server_binary` (as given, then with symlinks resolved), else on `PATH`,
/// checked by running `redis-cli --version`.
///
/// # Panics
///
/// If there is none or it cannot be executed, with an install hint.
fn redis_cli_for(server_binary: &OsStr) -> OsString {
    let Some(cli) = find_redis_cli(server_binary, std::env::var_os("PATH").as_deref()) else {
        panic!(
            "{}",
            missing_cli_message(
                OsStr::new("redis-cli"),
                &std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not next to redis-server, not on PATH"
                )
            )
        )
    };
    match Command::new(&cli).arg("--version").output() {
        Ok(output) if output.status.success() => cli.into_os_string(),
        Ok(output) => panic!(
            "{}",
            missing_cli_message(
                cli.as_os_str(),
                &std::io::Error::other(format!("`--version` exited with {}", output.status))
            )
        ),
        Err(err) => panic!("{}", missing_cli_message(cli.as_os_str(), &err)),
    }
}

/// Where `redis-cli` is: next to `server_binary` (a path, or a name looked up on `path`), also after
/// resolving symlinks, else in a directory of `path` (the value of `PATH`).
fn find_redis_cli(server_binary: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    let dirs_of_path = || {
        path.map(|path| std::env::split_paths(path).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let given = Path::new(server_binary);
    let located: Option<PathBuf> = if given.components().count() > 1 {
        Some(given.to_owned())
    } else {
        dirs_of_path()
            .into_iter()
            .map(|dir| dir.join(given))
            .find(|candidate| candidate.is_file())
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(located) = located {
        dirs.extend(located.parent().map(Path::to_owned));
        if let Ok(real) = fs::canonicalize(&located) {
            dirs.extend(real.parent().map(Path::to_owned));
        }
    }
    dirs.extend(dirs_of_path());
    dirs.into_iter()
        .map(|dir| dir.join("redis-cli"))
        .find(|candidate| candidate.is_file())
}

/// The loud explanation for a `redis-cli` that cannot be executed.
fn missing_cli_message(cli: &OsStr, err: &std::io::Error) -> String {
    format!(
        "\n\n*** cannot execute {cli:?}: {err} ***\n\
         The statehouse cluster tests need `redis-cli` to create the cluster (`redis-cli --cluster \
         create`); they are not skipped without it. It is looked up next to the redis-server binary, \
         then on PATH.\nTo fix: {REDIS_CLI_HINT}.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_parse() {
        let line = "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host replica,slave \
                    e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected";
        let replica = NodeLine::parse(line).unwrap();
        assert!(!replica.primary && !replica.myself && !replica.failing && replica.connected);
        assert_eq!(
            replica.master.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        assert!(replica.slots.is_empty());

        let line = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 \
                    connected 5461 0-5460 [5462->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f] 10000-10001";
        let primary = NodeLine::parse(line).unwrap();
        assert!(primary.primary && primary.myself && primary.master.is_none());
        assert_eq!(primary.epoch, 1);
        assert_eq!(primary.slots, vec![(0, 5460), (5461, 5461), (10000, 10001)]);
        assert!(primary.owns(0) && primary.owns(5461) && primary.owns(10001));
        assert!(!primary.owns(5462) && !primary.owns(9999));

        let line = "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - \
                    1426238316232 1426238315000 3 disconnected 10923-16383";
        let failed = NodeLine::parse(line).unwrap();
        assert!(failed.failing && !failed.connected);
        assert!(NodeLine::parse("garbage").is_none());
    }

    /// A fresh directory holding `files` (empty, executable).
    fn dir_with(files: &[&str]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = super::super::server::create_unique_dir();
        for file in files {
            let path = dir.join(file);
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[test]
    fn redis_cli_is_found_next_to_redis_server_before_path() {
        let beside = dir_with(&["redis-server", "redis-cli"]);
        let on_path = dir_with(&["redis-cli"]);
        let server = beside.join("redis-server");
        let found = find_redis_cli(server.as_os_str(), Some(on_path.as_os_str())).unwrap();
        assert_eq!(found, beside.join("redis-cli"));
        // A bare name is looked up on PATH first, then redis-cli beside it.
        let path = std::env::join_paths([&beside]).unwrap();
        let found = find_redis_cli(OsStr::new("redis-server"), Some(&path)).unwrap();
        assert_eq!(found, beside.join("redis-cli"));
        // A symlinked redis-server (Debian's points at redis-check-rdb) is followed too.
        let link_dir = dir_with(&[]);
        std::os::unix::fs::symlink(&server, link_dir.join("redis-server")).unwrap();
        let found = find_redis_cli(link_dir.join("redis-server").as_os_str(), None).unwrap();
        assert_eq!(found, beside.join("redis-cli"));
        // Not beside it: PATH.
        let alone = dir_with(&["redis-server"]);
        let found =
            find_redis_cli(alone.join("redis-server").as_os_str(), Some(on_path.as_os_str())).unwrap();
        assert_eq!(found, on_path.join("redis-cli"));
        assert_eq!(find_redis_cli(alone.join("redis-server").as_os_str(), None), None);
        for dir in [beside, on_path, link_dir, alone] {
            fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn a_missing_redis_cli_says_how_to_install_it() {
        let message = missing_cli_message(
            OsStr::new("redis-cli"),
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(message.contains("redis-tools"), "{message}");
        assert!(message.contains("apt-get install redis-server"), "{message}");
        assert!(message.contains("STATEHOUSE_REDIS_SERVER"), "{message}");
    }
}
