//! Tests of the test harness itself: one server (`server.rs`), a Redis Cluster (`cluster.rs`), a
//! Sentinel set (`sentinel.rs`), their failover faults (`failover.rs`); the helpers they share here.

#![allow(clippy::unwrap_used, reason = "helpers fail a test by panicking")]

use std::process::Command;
use std::time::{Duration, Instant};

use statehouse_tests::harness::Node;

mod cluster;
mod failover;
mod self_checks;
mod sentinel;
mod server;

/// Whether `pid` is a live process (a zombie or a vanished pid is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

/// Runs the ignored helper test `test` of this binary as a child process with `env` set, checks it
/// succeeded, and returns what it printed after `LEAKED `.
fn run_leaking_child(test: &str, env: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.split_once("LEAKED "))
        .unwrap()
        .1
        .to_owned()
}

/// Waits until `pid` is gone, failing at `deadline`.
fn wait_until_dead(pid: u32, deadline: Instant) {
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "redis-server pid {pid} outlived its test process"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The error a plain (non-cluster) connection to `node` gets for `GET key`, if any.
fn get_on(node: &Node, key: &str) -> Result<Option<String>, redis::RedisError> {
    redis::cmd("GET").arg(key).query(&mut node.connection())
}
