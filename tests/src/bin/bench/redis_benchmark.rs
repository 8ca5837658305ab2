//! `redis-benchmark` on the same server, as the ceiling of the set+get workloads (rows 5 and 6).

use std::process::Command;

use statehouse_tests::harness::RedisServer;

use crate::Res;

/// `redis-benchmark`, if it can be run.
#[derive(Debug)]
pub(crate) enum RedisBenchmark {
    Available {
        port: u16,
        /// Requests per test at `-c 1` and at `-c 64`.
        requests_c1: u64,
        requests_c64: u64,
    },
    Missing(String),
}

/// One `redis-benchmark -t set,get` result.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RbSample {
    pub(crate) set: f64,
    pub(crate) get: f64,
}

impl RbSample {
    /// ops/s of an even SET/GET mix: the harmonic mean of the two rates (a SET and a GET take
    /// `1/set + 1/get` seconds).
    pub(crate) fn combined(&self) -> f64 {
        2.0 / (1.0 / self.set + 1.0 / self.get)
    }
}

impl RedisBenchmark {
    pub(crate) fn probe(server: &RedisServer, requests_c1: u64, requests_c64: u64) -> Self {
        match Command::new("redis-benchmark").arg("--version").output() {
            Ok(out) if out.status.success() => Self::Available {
                port: server.port(),
                requests_c1,
                requests_c64,
            },
            Ok(out) => Self::Missing(format!("`redis-benchmark --version` failed with {}", out.status)),
            Err(e) => Self::Missing(format!("cannot run `redis-benchmark` from PATH: {e}")),
        }
    }

    /// Runs `redis-benchmark` with `clients` connections. Blocking: it is called from the future
    /// `block_on` drives on the main thread, never from a worker, and nothing else runs meanwhile.
    pub(crate) fn run(&self, clients: usize) -> Res<RbSample> {
        let Self::Available {
            port,
            requests_c1,
            requests_c64,
        } = *self
        else {
            return Err("redis-benchmark is not available".into());
        };
        let requests = if clients == 1 { requests_c1 } else { requests_c64 };
        let output = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "set,get", "-d", "1024", "--csv"])
            .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "redis-benchmark -c {clients} failed with {}: {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let rps = |test: &str| -> Res<f64> {
            let prefix = format!("\"{test}\",\"");
            let line = stdout
                .lines()
                .find(|line| line.starts_with(&prefix))
                .ok_or_else(|| format!("no {test} line in redis-benchmark's output: {stdout}"))?;
            let value = line[prefix.len()..].split('"').next().unwrap_or_default();
            Ok(value.parse::<f64>().map_err(|e| format!("rps {value:?}: {e}"))?)
        };
        Ok(RbSample {
            set: rps("SET")?,
            get: rps("GET")?,
        })
    }
}
