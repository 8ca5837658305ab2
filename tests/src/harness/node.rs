//! One `redis-server` of a topology ([`RedisCluster`](super::RedisCluster),
//! [`SentinelSet`](super::SentinelSet)): a [`RedisServer`] behind a lock, so
//! that a shared topology (`&'static`) can kill and restart its nodes while
//! other threads use it.
//!
//! Queries made by a topology's wait loops go through `Node::query`, which
//! returns an error instead of panicking: a node that is down or busy means
//! "not yet", and the topology panics with every node's log at its deadline.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::RedisServer;
use super::server::{ServerSpec, connect};

/// Connect/read/write timeout of one [`Node::query`] (a poll of a wait loop).
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// Connect/read/write timeout of [`Node::connection`].
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two polls of [`poll_until`].
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The replication role a node reports with `ROLE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `master`: accepts writes.
    Primary,
    /// `slave`: replicates a primary and refuses writes.
    Replica,
    /// `sentinel`: a Sentinel process.
    Sentinel,
}

/// A `redis-server` process of a topology, on its own loopback port and in its own directory.
///
/// Its port never changes (a [restart](super::RedisCluster::restart_node) reuses it); its role may
/// (failover), so [`role`](Self::role) asks the process.
pub struct Node {
    server: Mutex<RedisServer>,
    port: u16,
    /// `redis://[:password@]127.0.0.1:port`, for the harness' own connections.
    auth_url: String,
    /// The connection of [`query`](Self::query), kept between polls (dropped after any error, so a
    /// late reply can never be read as the answer to the next command).
    probe: Mutex<Option<redis::Connection>>,
}

impl Node {
    pub(crate) fn new(server: RedisServer) -> Node {
        Node {
            port: server.port(),
            auth_url: server.auth_url(),
            server: Mutex::new(server),
            probe: Mutex::new(None),
        }
    }

    /// The loopback port the node listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:{port}`, the form Redis uses in `CLUSTER NODES`, `MIGRATE` and Sentinel replies.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:{port}` (without a password, like [`RedisServer::url`]).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id of the current (or last) `redis-server` of this node.
    pub fn pid(&self) -> u32 {
        self.server().pid()
    }

    /// Whether the process was started and not killed by the harness.
    pub fn is_running(&self) -> bool {
        self.server().is_running()
    }

    /// The node's log file.
    pub fn log(&self) -> String {
        self.server().log()
    }

    /// A fresh blocking connection (authenticated if the node has a password) with 5 second
    /// timeouts. On a cluster node it is a plain connection: a key of another node's slot answers
    /// `MOVED`.
    ///
    /// # Panics
    ///
    /// If the node cannot be reached (with its log).
    pub fn connection(&self) -> redis::Connection {
        match connect(&self.auth_url, CONNECTION_TIMEOUT) {
            Ok(connection) => connection,
            Err(err) => self.fail(&format!("cannot connect to {}: {err}", self.addr())),
        }
    }

    /// The role the node reports now (`ROLE`).
    ///
    /// # Panics
    ///
    /// If the node cannot be reached or answers something else (with its log).
    pub fn role(&self) -> Role {
        match self.try_role() {
            Ok(role) => role,
            Err(err) => self.fail(&format!("ROLE failed: {err}")),
        }
    }

    /// `INFO replication` of this node.
    ///
    /// # Panics
    ///
    /// If the node cannot be reached (with its log).
    pub fn replication_info(&self) -> String {
        match self.query(redis::cmd("INFO").arg("replication")) {
            Ok(info) => info,
            Err(err) => self.fail(&format!("INFO replication failed: {err}")),
        }
    }

    /// Runs `cmd` with 1 second timeouts; any failure is an error string naming the node (for wait
    /// loops, where it means "not yet"). The connection is reused by the next query unless this one
    /// failed, so polling does not open a connection per poll. A kept connection the server closed
    /// while it was idle (a `CLIENT KILL` of every client, the soak's fault, injected by the thread
    /// that queries next) fails as dropped without the server reading `cmd`: then `cmd` is sent
    /// once more, on a fresh connection. (Only a kill racing this very query could have let `cmd`
    /// run before the drop; the harness never injects one that way.)
    pub(crate) fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut probe = self.probe.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = || {
            connect(&self.auth_url, QUERY_TIMEOUT).map_err(|err| format!("{}: connect: {err}", self.addr()))
        };
        let (mut connection, kept) = match probe.take() {
            Some(connection) => (connection, true),
            None => (fresh()?, false),
        };
        let reply = match cmd.query(&mut connection) {
            Err(err) if kept && err.is_connection_dropped() => {
                connection = fresh()?;
                cmd.query(&mut connection)
            }
            reply => reply,
        }
        .map_err(|err| format!("{}: {err}", self.addr()))?;
        *probe = Some(connection);
        Ok(reply)
    }

    /// `ROLE`, as an error string when it fails.
    pub(crate) fn try_role(&self) -> Result<Role, String> {
        let reply: Vec<redis::Value> = self.query(&redis::cmd("ROLE"))?;
        let name = reply
            .first()
            .and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
            .unwrap_or_default();
        match name.as_str() {
            "master" => Ok(Role::Primary),
            "slave" => Ok(Role::Replica),
            "sentinel" => Ok(Role::Sentinel),
            other => Err(format!("{}: ROLE answered {other:?}", self.addr())),
        }
    }

    /// Whether `INFO replication` says the link to the primary is up.
    pub(crate) fn replica_link_up(&self) -> Result<bool, String> {
        let info: String = self.query(redis::cmd("INFO").arg("replication"))?;
        Ok(info.lines().any(|line| line.trim() == "master_link_status:up"))
    }

    /// Kills the process with `SIGKILL` and waits for it to exit; the directory stays for
    /// [`restart`](Self::restart). Does nothing if it is not running.
    pub(crate) fn kill(&self) {
        self.server().stop();
        *self.probe.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Starts the process again on the same port with the same arguments and directory (so a
    /// cluster node keeps its `nodes.conf`, a sentinel its rewritten config), and waits for `PING`.
    pub(crate) fn restart(&self) {
        *self.probe.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.server().restart();
    }

    /// The node's whereabouts and log, for a topology's panic message.
    pub(crate) fn report(&self) -> String {
        self.server().report()
    }

    /// The directory of the node (its files live there; removed on drop).
    pub(crate) fn dir(&self) -> std::path::PathBuf {
        self.server().dir().to_owned()
    }

    fn server(&self) -> MutexGuard<'_, RedisServer> {
        // A panic while the lock was held (a failed start) leaves the server as consistent as ever.
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, what: &str) -> ! {
        let report = self.report();
        panic!(
            "statehouse redis test harness: node {}: {what}\n{report}",
            self.addr()
        )
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Starts `count` servers as `spec` says, in parallel; a panic in one is re-raised once all are
/// joined (the started ones are dropped, so killed, on the way).
pub(crate) fn start_nodes(count: usize, spec: impl Fn() -> ServerSpec + Sync) -> Vec<Node> {
    thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .map(|_| scope.spawn(|| RedisServer::start_spec(spec())))
            .collect();
        let results: Vec<_> = handles.into_iter().map(|handle| handle.join()).collect();
        results
            .into_iter()
            .map(|result| Node::new(result.unwrap_or_else(|payload| std::panic::resume_unwind(payload))))
            .collect()
    })
}

/// Polls `check` every 20 ms until it returns `Ok` or `timeout` has passed; the error is what the
/// last poll said, with the time waited.
pub(crate) fn poll_until<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let last = match check() {
            Ok(value) => return Ok(value),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(format!("after {:?}; last seen: {last}", started.elapsed()));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// `INFO` or `CLUSTER INFO` text as fields.
pub(crate) fn info_fields(info: &str) -> HashMap<String, String> {
    info.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}
