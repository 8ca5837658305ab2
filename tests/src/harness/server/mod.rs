//! A real, throw-away `redis-server` process for integration tests.
//!
//! [`RedisServer::start`] spawns a fresh `redis-server` and returns once it answers `PING`; dropping the
//! value kills the process and deletes everything it wrote. The design choices:
//!
//! * **Which binary.** `$STATEHOUSE_REDIS_SERVER` when set, else `redis-server` from `PATH`. A missing
//!   binary is a loud panic with install instructions, never a silently skipped test: a suite that
//!   "passes" because it never ran is worse than a failing one.
//! * **A free loopback port.** The harness binds a `TcpListener` to `127.0.0.1:0`, reads the port the
//!   kernel picked, closes the listener and starts Redis on that port with `--bind 127.0.0.1`. Another
//!   process can grab the port in that window, so a start that fails with "Address already in use" is
//!   retried on a new port (a few times). Readiness is also checked against the server's `process_id`
//!   (`INFO server`), so a stranger that took the port is never mistaken for our server. The server
//!   already running on the default port 6379 is never used or touched.
//! * **Its own directory, no persistence by default.** Every server gets a unique directory under
//!   [`std::env::temp_dir`] (`--dir`, and the `--logfile` inside it) and runs with `--save ""` and
//!   `--appendonly no`: nothing survives [`RedisServer::restart`], and parallel servers never share
//!   files. The log is pasted into every harness panic, so a failed start explains itself.
//!   [`RedisServer::start_durable`] instead turns on the append-only file with an fsync per write
//!   (extra arguments come last on the command line, and Redis lets a later directive override an
//!   earlier one). `stop` and `restart` keep the directory, so the restarted server loads the AOF and
//!   every acknowledged write survives, even a `SIGKILL`; only `Drop` (or the watchdog) removes it.
//! * **Bounded waits only.** Startup polls connect + `PING` until a deadline (connection refused and
//!   `LOADING` mean "not yet"); an early exit or a timeout panics with the log.
//! * **No leaked processes, ever.** Next to every `redis-server` the harness spawns a tiny watchdog,
//!   `sh -c 'read _; kill -9 <pid>; rm -rf <dir>'`, whose stdin is a pipe only this process holds.
//!   When the test process exits, however it exits (normally with the server in a `static` that is
//!   never dropped, by a panic, or by `SIGKILL`), the kernel closes the pipe, `read` returns and the
//!   watchdog kills the server and removes its directory. [`RedisServer::stop`] and `Drop` do the same
//!   themselves and kill the watchdog first, so it never signals a pid that may have been reused.
//! * **Replicas.** [`RedisServer::start_replica_of`] starts a server with `--replicaof` the given one and
//!   returns once `INFO replication` reports `master_link_status:up` (the first sync is done), polling
//!   until a deadline like startup does.
//! * **`pause` is `SIGSTOP`.** A stopped process keeps its listening socket open: the kernel still
//!   completes TCP handshakes and queues requests, but nothing is ever answered. That is exactly a
//!   black-holed or hung server, the case timeouts exist for, and `SIGCONT` ([`RedisServer::resume`])
//!   brings it back with all its state. Signals are sent with the `kill` command, so the workspace
//!   needs neither `libc` nor `unsafe`.
//!
//! Everything is synchronous (std plus the `redis` crate's blocking client), so it works from plain
//! `#[test]`s and from inside a tokio runtime alike.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The environment variable naming the `redis-server` binary to use (default: `redis-server` on `PATH`).
pub const REDIS_SERVER_ENV: &str = "STATEHOUSE_REDIS_SERVER";

/// How to get a `redis-server`, pasted into the "binary missing" panic.
const INSTALL_HINT: &str = "run scripts/test.sh, which installs it; or `apt-get install redis-server` / \
                            `brew install redis`; or set STATEHOUSE_REDIS_SERVER=/path/to/redis-server";

/// How long a start (or restart) may take before the harness gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports [`RedisServer::start`] tries when the chosen port is stolen.
const PORT_ATTEMPTS: u32 = 5;
/// How long [`RedisServer::restart`] keeps retrying its (fixed) port while something else holds it.
const RESTART_PORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How far above a cluster node's port its cluster bus listens (Redis' fixed offset).
pub(crate) const CLUSTER_BUS_OFFSET: u16 = 10_000;
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Connect/read/write timeout of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// Connect/read/write timeout of [`RedisServer::connection`].
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`RedisServer::start_replica_of`] waits for the link to its primary to come up.
const REPLICA_LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `pause`/`resume` wait for the kernel to report the new process state.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(2);

/// The watchdog: waits for EOF on stdin (the test process is gone), then kills the server (`$1`) and
/// removes its directory (`$2`). It ignores the terminal's job-control signals so that a Ctrl-C, which
/// hits the whole process group, cannot kill it before it has cleaned up.
const WATCHDOG_SCRIPT: &str = "trap '' HUP INT TERM; read _; kill -9 \"$1\" 2>/dev/null; rm -rf -- \"$2\"";

/// The arguments of [`RedisServer::start_durable`]: an append-only file, fsync'd before every reply.
pub const DURABLE_ARGS: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

/// Log lines meaning "the port was taken between choosing and binding it": retry on another port.
const PORT_TAKEN_MARKERS: &[&str] = &[
    "Address already in use",
    "Could not create server TCP listening socket",
];

/// A `redis-server` child process on its own loopback port, in its own temporary directory.
///
/// Killed (and its directory removed) on drop; see the [module documentation](self) for the design.
pub struct RedisServer {
    binary: OsString,
    /// Arguments before `--port`: the path of a generated config file (a sentinel's), if any.
    leading_args: Vec<OsString>,
    extra_args: Vec<String>,
    /// The password the harness' own connections authenticate with (`requirepass`), if any.
    password: Option<String>,
    port_rule: PortRule,
    port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    stdio_path: PathBuf,
    pid: u32,
    running: Option<Running>,
}

/// The live processes of a started server.
struct Running {
    server: Child,
    /// `sh` holding the read end of a pipe whose write end (`watchdog.stdin`) only we hold.
    watchdog: Child,
}

/// Why a launch attempt did not produce a ready server, when retrying may help.
struct PortTaken(String);

/// Which ports [`RedisServer::free_port`] may pick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum PortRule {
    /// Any free loopback port.
    #[default]
    Any,
    /// A free port `p` whose cluster bus port `p + 10000` is free (and below 65536) too: a
    /// `--cluster-enabled yes` node listens on both.
    ClusterBus,
}

/// How [`RedisServer::start_spec`] starts a server: what [`RedisServer::start_with_binary`] takes,
/// plus what the cluster and sentinel harnesses need.
#[derive(Debug, Default)]
pub(crate) struct ServerSpec {
    /// The `redis-server` binary (see [`default_binary`]).
    pub binary: OsString,
    /// Appended to the command line after the harness' own arguments (later ones win in Redis).
    pub extra_args: Vec<String>,
    /// A config file (name, contents) written into the server's directory before the first launch;
    /// its absolute path becomes the first argument (where `redis-server` expects a config file).
    pub config_file: Option<(String, String)>,
    /// The password of the harness' own connections (the server's `requirepass`, which the caller
    /// puts in `extra_args` or the config file).
    pub password: Option<String>,
    /// Which ports the server may listen on.
    pub port_rule: PortRule,
}

/// The extra arguments of [`RedisServer::shared`]: keyspace notifications for generic, string and
/// expired events (what the change feed listens to; statehouse itself never runs `CONFIG SET`).
pub const SHARED_ARGS: &[&str] = &["--notify-keyspace-events", "K$gx"];

impl RedisServer {
    /// Starts a new `redis-server` on a free loopback port and waits until it answers `PING`.
    ///
    /// The binary is `$STATEHOUSE_REDIS_SERVER`, else `redis-server` from `PATH`.
    ///
    /// # Panics
    ///
    /// If the binary cannot be executed (with install instructions), or if the server does not become
    /// ready within 10 seconds (with its log).
    pub fn start() -> RedisServer {
        Self::start_with_args(&[])
    }

    /// Like [`start`](Self::start), but durable: `--appendonly yes --appendfsync always`, so every
    /// write is in the append-only file (and fsync'd) before Redis acknowledges it, and
    /// [`restart`](Self::restart) (even after [`stop`](Self::stop), a `SIGKILL`) brings back every
    /// acknowledged write. For fault tests that count what survives.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_durable() -> RedisServer {
        Self::start_with_args(DURABLE_ARGS)
    }

    /// Like [`start`](Self::start), with `extra` appended to the `redis-server` command line, e.g.
    /// `&["--notify-keyspace-events", "Ex"]`.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with_args(extra: &[&str]) -> RedisServer {
        Self::start_with_binary(default_binary(), extra)
    }

    /// Like [`start_with_args`](Self::start_with_args), but runs `binary` (a path, or a name looked up
    /// on `PATH`) instead of consulting `$STATEHOUSE_REDIS_SERVER`.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start); a `binary` that cannot be executed panics with a message naming it,
    /// `STATEHOUSE_REDIS_SERVER` and how to install Redis.
    pub fn start_with_binary(binary: impl AsRef<OsStr>, extra: &[&str]) -> RedisServer {
        Self::start_spec(ServerSpec {
            binary: binary.as_ref().to_owned(),
            extra_args: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            ..ServerSpec::default()
        })
    }

    /// Starts a server as `spec` says (on a fresh port, retried when stolen) and waits until it is
    /// ready; panics like [`start`](Self::start).
    pub(crate) fn start_spec(spec: ServerSpec) -> RedisServer {
        let dir = create_unique_dir();
        let mut server = RedisServer {
            binary: spec.binary,
            leading_args: Vec::new(),
            extra_args: spec.extra_args,
            password: spec.password,
            port_rule: spec.port_rule,
            port: 0,
            log_path: dir.join("redis.log"),
            stdio_path: dir.join("stdio.log"),
            dir,
            pid: 0,
            running: None,
        };
        // From here on a panic unwinds through `server`, whose `Drop` kills whatever was spawned and
        // removes the directory.
        if let Some((name, contents)) = spec.config_file {
            let path = server.dir.join(name);
            if let Err(err) = fs::write(&path, contents) {
                server.fail(&format!("cannot write {}: {err}", path.display()));
            }
            server.leading_args.push(path.into_os_string());
        }
        let mut why = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = server.free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(PortTaken(reason)) => why = reason,
            }
        }
        server.fail(&format!(
            "redis-server could not start after {PORT_ATTEMPTS} attempts on fresh ports; last: {why}"
        ))
    }

    /// Starts a new `redis-server` (like [`start`](Self::start)) that replicates `primary`
    /// (`--replicaof 127.0.0.1 <port>`), and waits until its link to the primary is up, so everything
    /// written to the primary before this call can be read from the replica. The replica refuses
    /// writes (`replica-read-only`, the default). [`restart`](Self::restart) keeps it a replica.
    ///
    /// Sets `repl-diskless-sync-delay 0` on the primary first, so the sync starts at once rather than
    /// after Redis' default 5 second wait for more replicas.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start); also if the primary refuses that setting, or if the link is not up
    /// within 10 seconds (with both logs).
    pub fn start_replica_of(primary: &RedisServer) -> RedisServer {
        if let Err(err) = redis::cmd("CONFIG")
            .arg("SET")
            .arg("repl-diskless-sync-delay")
            .arg(0)
            .exec(&mut primary.connection())
        {
            primary.fail(&format!("CONFIG SET repl-diskless-sync-delay 0 failed: {err}"));
        }
        let port = primary.port().to_string();
        let replica = Self::start_with_binary(&primary.binary, &["--replicaof", "127.0.0.1", &port]);
        replica.wait_for_primary_link(primary);
        replica
    }

    /// `INFO replication` of this server.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached or the command fails (with its log).
    pub fn replication_info(&self) -> String {
        match redis::cmd("INFO")
            .arg("replication")
            .query::<String>(&mut self.connection())
        {
            Ok(info) => info,
            Err(err) => self.fail(&format!("INFO replication failed: {err}")),
        }
    }

    /// Waits (bounded) until `INFO replication` says `master_link_status:up`.
    fn wait_for_primary_link(&self, primary: &RedisServer) {
        let deadline = Instant::now() + REPLICA_LINK_TIMEOUT;
        loop {
            let info = self.replication_info();
            if info.lines().any(|line| line.trim() == "master_link_status:up") {
                return;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "the replica's link to its primary (port {}) is not up after {REPLICA_LINK_TIMEOUT:?}\n\
                     ----- INFO replication -----\n{info}\n----- primary log -----\n{}",
                    primary.port(),
                    primary.log()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// One server shared by the whole test process, started on first use.
    ///
    /// For suites that namespace their keys (so tests cannot see each other's data) and never stop,
    /// restart or pause the server. It lives in a `static`, which is never dropped: the watchdog kills
    /// it and removes its directory when the test process exits.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), on first use.
    /// It runs with keyspace notifications on ([`SHARED_ARGS`]), so that the change feed's events
    /// of plain writes and expiry (which need them on Redis) are part of the contract suite.
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| RedisServer::start_with_args(SHARED_ARGS))
    }

    /// The URL to connect to, `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The URL the harness' own connections use: [`url`](Self::url) with the password, if any.
    pub(crate) fn auth_url(&self) -> String {
        format!(
            "redis://{}127.0.0.1:{}",
            userinfo(self.password.as_deref()),
            self.port
        )
    }

    /// The server's own directory (kept by [`stop`](Self::stop), removed on drop).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the server process was started and not stopped (it may have exited by itself).
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The loopback TCP port the server listens on (unchanged by [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the current (or, after [`stop`](Self::stop), the last) `redis-server`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the server with `SIGKILL` and waits for it to exit. Does nothing if it is not running.
    ///
    /// Works on a [paused](Self::pause) server too. The port and directory are kept for
    /// [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            // Kill the server but do not reap it yet: as a zombie its pid cannot be reused. Then kill
            // the watchdog (SIGKILL, so it never runs its `kill`), and only then reap the server.
            // Errors mean "already exited", which is what we want.
            let _ = running.server.kill();
            let _ = running.watchdog.kill();
            let _ = running.watchdog.wait();
            let _ = running.server.wait();
        }
    }

    /// Stops the server if it is running and starts a new one on the same port and directory, then
    /// waits until it answers `PING` (which Redis refuses with `LOADING` until it has read its
    /// persisted data). The data is gone unless the server persists it: a plain [`start`](Self::start)
    /// persists nothing, a [`start_durable`](Self::start_durable) one reloads every acknowledged write.
    ///
    /// If another process took the port meanwhile, binding is retried for a few seconds.
    ///
    /// # Panics
    ///
    /// If the server does not come back (with its log).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + RESTART_PORT_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(PortTaken(_)) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
                Err(PortTaken(why)) => self.fail(&format!(
                    "redis-server could not restart on its port within {RESTART_PORT_TIMEOUT:?}: {why}"
                )),
            }
        }
    }

    /// Freezes the server with `SIGSTOP`: it keeps its socket, so connects still succeed, but no
    /// command is answered until [`resume`](Self::resume). Returns once the process is stopped.
    ///
    /// # Panics
    ///
    /// If the server is not running or cannot be signalled.
    pub fn pause(&self) {
        self.signal("STOP");
        self.wait_for_state(true);
    }

    /// Continues a [paused](Self::pause) server with `SIGCONT`; it then answers everything queued.
    ///
    /// # Panics
    ///
    /// If the server is not running or cannot be signalled.
    pub fn resume(&self) {
        self.signal("CONT");
        self.wait_for_state(false);
    }

    /// The contents of the server's log file (empty if it has not written one yet).
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// A fresh blocking connection with 5 second connect, read and write timeouts, for assertions.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached (with its log).
    pub fn connection(&self) -> redis::Connection {
        match connect(&self.auth_url(), CONNECTION_TIMEOUT) {
            Ok(connection) => connection,
            Err(err) => self.fail(&format!("cannot connect to {}: {err}", self.url())),
        }
    }

    /// How many times the server ran each command so far (`INFO commandstats`).
    ///
    /// # Panics
    ///
    /// If the server cannot be reached or the command fails (with its log).
    pub fn command_calls(&self) -> CommandCalls {
        match redis::cmd("INFO")
            .arg("commandstats")
            .query::<String>(&mut self.connection())
        {
            Ok(info) => CommandCalls::parse(&info),
            Err(err) => self.fail(&format!("INFO commandstats failed: {err}")),
        }
    }

    /// The output of `CLIENT LIST` (one line per connected client, including the one asking).
    ///
    /// # Panics
    ///
    /// If the server cannot be reached or the command fails (with its log).
    pub fn client_list(&self) -> String {
        match redis::cmd("CLIENT")
            .arg("LIST")
            .query::<String>(&mut self.connection())
        {
            Ok(list) => list,
            Err(err) => self.fail(&format!("CLIENT LIST failed: {err}")),
        }
    }
}

/// How many times a server ran each command, by its lower-case name
/// (`INFO commandstats`: the commands a script runs count too, and so does
/// the `INFO` that asked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandCalls(BTreeMap<String, u64>);

impl CommandCalls {
    /// Reads the `cmdstat_<name>:calls=<n>,…` lines of `INFO commandstats`.
    pub fn parse(info: &str) -> Self {
        Self(
            info.lines()
                .filter_map(|line| {
                    let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                    let calls = stats.split(',').find_map(|stat| stat.strip_prefix("calls="))?;
                    Some((name.to_owned(), calls.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The calls of `command` (0 if it never ran).
    pub fn of(&self, command: &str) -> u64 {
        self.0.get(command).copied().unwrap_or(0)
    }

    /// What ran since `before`: each command whose count grew, by how much.
    pub fn since(&self, before: &Self) -> Self {
        Self(
            self.0
                .iter()
                .filter_map(|(name, &calls)| {
                    let grown = calls.saturating_sub(before.of(name));
                    (grown > 0).then(|| (name.clone(), grown))
                })
                .collect(),
        )
    }

    /// The counts, by command name.
    pub fn as_map(&self) -> &BTreeMap<String, u64> {
        &self.0
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("url", &self.url())
            .field("pid", &self.pid)
            .field("running", &self.running.is_some())
            .field("binary", &self.binary)
            .field("leading_args", &self.leading_args)
            .field("extra_args", &self.extra_args)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dir", &self.dir)
            .finish()
    }
}

impl Drop for RedisServer {
    /// Kills the server (and its watchdog) and removes its directory.
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub(super) mod process;

pub(crate) use process::{connect, create_unique_dir, default_binary, percent_encode, read_lossy, userinfo};
