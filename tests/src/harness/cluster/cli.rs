//! `redis-cli`: where it is, and `redis-cli --cluster create`.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::super::server::read_lossy;
use super::RedisCluster;

/// How to get `redis-cli`, pasted into the "binary missing" panic.
const REDIS_CLI_HINT: &str = "redis-cli is in the same package as redis-server on most systems: Debian/Ubuntu \
                              `apt-get install redis-server` (it depends on `redis-tools`, which has \
                              redis-cli), `brew install redis`; or put redis-cli next to the binary \
                              STATEHOUSE_REDIS_SERVER names, or on PATH";

/// How long `redis-cli --cluster create` may take (it polls the join once a second).
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls of `redis-cli`'s exit.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

impl RedisCluster {
    /// `redis-cli --cluster create … --cluster-replicas N --cluster-yes`, bounded; its output goes
    /// to a file in the first node's directory and into the panic if it fails.
    pub(super) fn create(&self) {
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
}

/// `redis-cli` next to `server_binary` (as given, then with symlinks resolved), else on `PATH`,
/// checked by running `redis-cli --version`.
///
/// # Panics
///
/// If there is none or it cannot be executed, with an install hint.
pub(super) fn redis_cli_for(server_binary: &OsStr) -> OsString {
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

/// Checks of this file's internals, run by the `harness` test binary
/// (`harness::self_checks`).
pub(in crate::harness) mod checks {
    use super::*;

    /// A fresh directory holding `files` (empty, executable).
    fn dir_with(files: &[&str]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = super::super::super::server::create_unique_dir();
        for file in files {
            let path = dir.join(file);
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    pub fn redis_cli_is_found_next_to_redis_server_before_path() {
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

    pub fn a_missing_redis_cli_says_how_to_install_it() {
        let message = missing_cli_message(
            OsStr::new("redis-cli"),
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(message.contains("redis-tools"), "{message}");
        assert!(message.contains("apt-get install redis-server"), "{message}");
        assert!(message.contains("STATEHOUSE_REDIS_SERVER"), "{message}");
    }
}
