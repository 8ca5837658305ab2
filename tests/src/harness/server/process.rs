//! Spawning, signalling and probing the `redis-server` process behind a [`RedisServer`].

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;

impl RedisServer {
    /// Spawns the server (and its watchdog) on `self.port` and waits until it is ready.
    ///
    /// On success the processes are in `self.running`. A port conflict returns `Err` with everything
    /// cleaned up; any other failure panics (and `Drop` cleans up while unwinding).
    pub(super) fn launch(&mut self) -> Result<(), PortTaken> {
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
    pub(super) fn try_wait_server(&mut self) -> Option<std::process::ExitStatus> {
        let running = self.running.as_mut()?;
        running.server.try_wait().ok().flatten()
    }

    /// stdout and stderr for the server: both appended to `stdio.log` (Redis only writes there before
    /// it has opened its log file, e.g. for a bad argument).
    pub(super) fn stdio_files(&self) -> (File, File) {
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
    pub(super) fn free_port(&self) -> u16 {
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
    pub(super) fn signal(&self, name: &str) {
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
    pub(super) fn wait_for_state(&self, stopped: bool) {
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
    pub(super) fn fail(&self, what: &str) -> ! {
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

/// Checks of this file's internals, run by the `harness` test binary
/// (`harness::self_checks`).
pub(in crate::harness) mod checks {
    use super::*;

    pub fn a_taken_port_is_reported_for_retry_and_everything_is_cleaned_up() {
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
