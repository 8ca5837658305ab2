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

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

    /// Spawns the server (and its watchdog) on `self.port` and waits until it is ready.
    ///
    /// On success the processes are in `self.running`. A port conflict returns `Err` with everything
    /// cleaned up; any other failure panics (and `Drop` cleans up while unwinding).
    fn launch(&mut self) -> Result<(), PortTaken> {
        let log_offset = file_len(&self.log_path);
        let stdio_offset = file_len(&self.stdio_path);
        let (stdout, stderr) = self.stdio_files();

        let mut command = Command::new(&self.binary);
        command
            .args(&self.leading_args)
            .arg("--port")
            .arg(self.port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&self.log_path)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let server = match command.spawn() {
            Ok(child) => child,
            Err(err) => self.fail(&missing_binary_message(&self.binary, &err)),
        };
        let pid = server.id();
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("statehouse-redis-watchdog")
            .arg(pid.to_string())
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let watchdog = match watchdog {
            Ok(watchdog) => watchdog,
            Err(err) => {
                let mut server = server;
                let _ = server.kill();
                let _ = server.wait();
                self.fail(&format!(
                    "cannot spawn the watchdog `sh` for redis-server pid {pid}: {err}"
                ))
            }
        };
        self.pid = pid;
        self.running = Some(Running { server, watchdog });

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait_server() {
                let new_output = format!(
                    "{}{}",
                    read_lossy_from(&self.log_path, log_offset),
                    read_lossy_from(&self.stdio_path, stdio_offset)
                );
                self.stop();
                if PORT_TAKEN_MARKERS
                    .iter()
                    .any(|marker| new_output.contains(marker))
                {
                    return Err(PortTaken(format!("port {} already in use", self.port)));
                }
                self.fail(&format!(
                    "redis-server (pid {pid}) exited during startup with {status}"
                ));
            }
            let last_probe = match probe(&self.auth_url(), pid) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "redis-server (pid {pid}) did not answer PING on port {} within {READY_TIMEOUT:?}; \
                     last attempt: {last_probe}",
                    self.port
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The exit status if the server process has exited.
    fn try_wait_server(&mut self) -> Option<std::process::ExitStatus> {
        let running = self.running.as_mut()?;
        running.server.try_wait().ok().flatten()
    }

    /// stdout and stderr for the server: both appended to `stdio.log` (Redis only writes there before
    /// it has opened its log file, e.g. for a bad argument).
    fn stdio_files(&self) -> (File, File) {
        let opened = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stdio_path)
            .and_then(|file| Ok((file.try_clone()?, file)));
        match opened {
            Ok(files) => files,
            Err(err) => self.fail(&format!("cannot create {}: {err}", self.stdio_path.display())),
        }
    }

    /// A loopback port that was free a moment ago (with its cluster bus port, for
    /// [`PortRule::ClusterBus`]).
    fn free_port(&self) -> u16 {
        // The kernel hands out ephemeral ports from 32768 up, so about a fifth of them leave no room
        // for a bus port 10000 higher: a few hundred draws always find one.
        for _ in 0..500 {
            let port = match free_loopback_port() {
                Ok(port) => port,
                Err(err) => self.fail(&format!("cannot bind 127.0.0.1:0 to find a free port: {err}")),
            };
            match self.port_rule {
                PortRule::Any => return port,
                PortRule::ClusterBus => {
                    let Some(bus) = port.checked_add(CLUSTER_BUS_OFFSET) else {
                        continue;
                    };
                    if TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_ok() {
                        return port;
                    }
                }
            }
        }
        self.fail("found no free loopback port p with p + 10000 free too (the cluster bus port)")
    }

    /// Sends `SIG{name}` to the running server with the `kill` command.
    fn signal(&self, name: &str) {
        if self.running.is_none() {
            self.fail(&format!(
                "cannot send SIG{name}: the server is not running (stopped)"
            ));
        }
        let pid = self.pid.to_string();
        match Command::new("kill").arg(format!("-{name}")).arg(&pid).status() {
            Ok(status) if status.success() => {}
            Ok(status) => self.fail(&format!("`kill -{name} {pid}` failed with {status}")),
            Err(err) => self.fail(&format!("cannot run `kill -{name} {pid}`: {err}")),
        }
    }

    /// Waits (bounded) until the kernel reports the server as stopped (`true`) or not (`false`). A
    /// no-op where `/proc` is unavailable.
    fn wait_for_state(&self, stopped: bool) {
        let stat_path = PathBuf::from(format!("/proc/{}/stat", self.pid));
        let deadline = Instant::now() + SIGNAL_TIMEOUT;
        loop {
            let Ok(stat) = fs::read_to_string(&stat_path) else {
                return;
            };
            // Format: `pid (comm) state ...`; comm may contain anything, so split at the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            if matches!(state, Some("T" | "t")) == stopped {
                return;
            }
            if Instant::now() >= deadline {
                let want = if stopped { "stopped" } else { "running" };
                self.fail(&format!(
                    "redis-server (pid {}) is not {want} after {SIGNAL_TIMEOUT:?}",
                    self.pid
                ));
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Panics with `what`, the server's whereabouts and its log (and early stdout/stderr).
    fn fail(&self, what: &str) -> ! {
        panic!("statehouse redis test harness: {what}\n{}", self.report())
    }

    /// The server's whereabouts and its log (and early stdout/stderr), for a panic message.
    pub(crate) fn report(&self) -> String {
        let log = self.log();
        let log = if log.trim().is_empty() {
            "(empty: the server wrote no log)".to_owned()
        } else {
            log
        };
        let stdio = read_lossy(&self.stdio_path);
        let stdio = if stdio.trim().is_empty() {
            String::new()
        } else {
            format!("\n----- redis-server stdout/stderr -----\n{stdio}")
        };
        format!(
            "binary: {binary:?}, port: {port}, pid: {pid}, dir: {dir}\n\
             ----- redis-server log ({log_path}) -----\n{log}{stdio}\n----- end of log -----",
            binary = self.binary,
            port = self.port,
            pid = self.pid,
            dir = self.dir.display(),
            log_path = self.log_path.display(),
        )
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

/// `$STATEHOUSE_REDIS_SERVER` if set and non-empty, else `redis-server` (looked up on `PATH`).
pub(crate) fn default_binary() -> OsString {
    std::env::var_os(REDIS_SERVER_ENV)
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| OsString::from("redis-server"))
}

/// The loud explanation for a `redis-server` that cannot be executed.
fn missing_binary_message(binary: &OsStr, err: &io::Error) -> String {
    let env = match std::env::var_os(REDIS_SERVER_ENV) {
        Some(value) => format!("{REDIS_SERVER_ENV} is set to {value:?}"),
        None => format!("{REDIS_SERVER_ENV} is not set, so `redis-server` is looked up on PATH"),
    };
    format!(
        "\n\n*** cannot execute the Redis server binary {binary:?}: {err} ***\n\
         The statehouse integration tests need a real `redis-server` (Redis 6.2 or newer); they are not \
         skipped without one.\n\
         To fix: {INSTALL_HINT}.\n\
         (The harness runs ${REDIS_SERVER_ENV} when set, else `redis-server` from PATH; {env}.)\n"
    )
}

/// Creates a fresh, uniquely named directory under the system temp dir.
pub(crate) fn create_unique_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let name = format!(
        "statehouse-redis-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    if let Err(err) = fs::create_dir(&dir) {
        panic!(
            "statehouse redis test harness: cannot create the server directory {}: {err}\n\
             (no redis-server was started, so there is no log)",
            dir.display()
        );
    }
    dir
}

/// Opens a blocking connection with `timeout` for connecting, reading and writing.
pub(crate) fn connect(url: &str, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let connection = redis::Client::open(url)?.get_connection_with_timeout(timeout)?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    Ok(connection)
}

/// One readiness check: the server on `url` answers `PING` and is the process `pid` (not a stranger
/// that took the port). Any error (refused, `LOADING`, ...) means "not yet".
fn probe(url: &str, pid: u32) -> Result<(), String> {
    let mut connection = connect(url, PROBE_TIMEOUT).map_err(|err| format!("connect: {err}"))?;
    let pong: String = redis::cmd("PING")
        .query(&mut connection)
        .map_err(|err| format!("PING: {err}"))?;
    if pong != "PONG" {
        return Err(format!("PING answered {pong:?}"));
    }
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut connection)
        .map_err(|err| format!("INFO: {err}"))?;
    let answering = info
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .map(str::trim);
    if answering == Some(pid.to_string().as_str()) {
        Ok(())
    } else {
        Err(format!(
            "the port is answered by another process (process_id {answering:?}), not pid {pid}"
        ))
    }
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_loopback_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// `:password@` (percent-encoded) for a URL, or nothing.
pub(crate) fn userinfo(password: Option<&str>) -> String {
    password.map_or_else(String::new, |password| format!(":{}@", percent_encode(password)))
}

/// `text` with every byte outside the URL's unreserved set percent-encoded (for a password in a URL).
pub(crate) fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The length of a file, 0 if it does not exist.
fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |meta| meta.len())
}

/// A file's contents as text, empty if it does not exist.
pub(crate) fn read_lossy(path: &Path) -> String {
    read_lossy_from(path, 0)
}

/// A file's contents from byte `offset` on, as text; empty if it does not exist.
fn read_lossy_from(path: &Path, offset: u64) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => String::new(),
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_reported_for_retry_and_everything_is_cleaned_up() {
        let mut server = RedisServer::start();
        let dir = server.dir.clone();
        server.stop();
        let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, server.port)).unwrap();
        assert!(server.launch().is_err(), "launch must report the taken port");
        assert!(server.running.is_none());
        drop(squatter);
        assert!(server.launch().is_ok());
        assert!(server.log().contains("Address already in use"));
        drop(server);
        assert!(!dir.exists(), "Drop must remove {}", dir.display());
    }
}
