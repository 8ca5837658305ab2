//! [`run`]: the durable server, the tasks and the chaos thread, then the count check and the report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use statehouse::{Settings, Statehouse};

use super::check;
use super::documents::{Own, Progress, Task, TaskStats};
use super::faults::{Chaos, RecoveryWatch, chaos};
use super::report::{OpStats, Report};
use super::{KEEP, Op, Options, PREFIX};
use crate::harness::RedisServer;

/// splitmix64: small, seedable, good enough to pick operations and intervals.
#[derive(Debug, Clone)]
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(super) fn between(&mut self, (low, high): (Duration, Duration)) -> Duration {
        let spread = high.saturating_sub(low).as_micros() as u64;
        low + Duration::from_micros(self.next() % spread.saturating_add(1))
    }
}

/// What the tasks and the chaos thread share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) start: Instant,
    pub(super) stop: AtomicBool,
    pub(super) ok_calls: AtomicU64,
    pub(super) attempted: Vec<AtomicU64>,
    pub(super) acknowledged: Vec<AtomicU64>,
    pub(super) watch: RecoveryWatch,
    /// When each fault began (before the kill or `SIGSTOP`).
    pub(super) fault_starts: Mutex<Vec<Instant>>,
}

impl Shared {
    /// How long a call waited between two points it progressed, `from` and `to`: from the first
    /// fault that began in between if there is one (the server answered until then).
    pub(super) fn waited(&self, from: Instant, to: Instant, response_timeout: Duration) -> Duration {
        // Cheap path first: most stretches are far below any bound.
        if to - from <= response_timeout {
            return to - from;
        }
        let starts = self.fault_starts.lock().unwrap();
        let fault = starts.iter().copied().find(|&began| began > from && began <= to);
        to - fault.unwrap_or(from).max(from)
    }

    /// Counts a successful call that completed at `done`, and notes it if a recovery is awaited.
    pub(super) fn succeeded(&self, op: Op, done: Instant) {
        self.ok_calls.fetch_add(1, Ordering::Relaxed);
        let is_update = matches!(op, Op::Update | Op::CancelledUpdate);
        let watching = self.watch.any.load(Ordering::Acquire)
            || (is_update && self.watch.update.load(Ordering::Acquire));
        if !watching {
            return;
        }
        let mut state = self.watch.state.lock().unwrap();
        let Some(back_at) = state.back_at else {
            return;
        };
        if done < back_at {
            return;
        }
        if state.any.is_none() {
            state.any = Some(done - back_at);
            self.watch.any.store(false, Ordering::Release);
        }
        if is_update && state.update.is_none() {
            state.update = Some(done - back_at);
            self.watch.update.store(false, Ordering::Release);
        }
    }
}

/// `redis-server --version`, as the harness would run it.
fn server_version() -> String {
    let binary = std::env::var_os(crate::harness::server::REDIS_SERVER_ENV)
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "redis-server".into());
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|error| format!("unknown ({error})"))
}

/// Runs the soak (see the [module documentation](crate::soak)).
///
/// # Panics
///
/// If the server cannot be started or restarted (the harness panics with its log), or the first
/// connection fails.
pub async fn run(options: Options) -> Report {
    let server = tokio::task::spawn_blocking(RedisServer::start_durable)
        .await
        .unwrap();
    let mut settings = Settings::new(server.url());
    settings.prefix = PREFIX.to_owned();
    settings.connect_timeout = options.connect_timeout;
    settings.response_timeout = options.response_timeout;
    let state = Statehouse::with_settings(settings).await.unwrap();
    let docs = state.documents();

    let shared = Arc::new(Shared {
        start: Instant::now(),
        stop: AtomicBool::new(false),
        ok_calls: AtomicU64::new(0),
        attempted: (0..options.counters).map(|_| AtomicU64::new(0)).collect(),
        acknowledged: (0..options.counters).map(|_| AtomicU64::new(0)).collect(),
        watch: RecoveryWatch::default(),
        fault_starts: Mutex::new(Vec::new()),
    });
    let deadline = shared.start + options.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..options.tasks {
        let task = Task {
            id,
            docs: docs.clone(),
            shared: shared.clone(),
            options: options.clone(),
            rng: Rng(options.seed.wrapping_add(id as u64 + 1)),
            own: (0..options.keys_per_task.max(2))
                .map(|j| Own {
                    key: format!("t{id}:k{j}"),
                    ..Own::default()
                })
                .collect(),
            next_value: 0,
            stats: TaskStats::default(),
            progress: Arc::new(Mutex::new(Progress::starting(Instant::now()))),
        };
        tasks.spawn(task.run());
    }

    let chaos_shared = shared.clone();
    let chaos_options = options.clone();
    let chaos = tokio::task::spawn_blocking(move || chaos(server, &chaos_shared, &chaos_options, deadline))
        .await
        .unwrap();
    let Chaos {
        server,
        mut faults,
        ok_calls_before_faults,
        ok_calls_at_last_end,
    } = chaos;
    tokio::time::sleep_until(deadline.into()).await;
    shared.stop.store(true, Ordering::SeqCst);

    let mut ops: BTreeMap<Op, OpStats> = BTreeMap::new();
    let mut stats = TaskStats::default();
    let mut own = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (task, task_own) = joined.unwrap();
        for (op, op_stats) in &task.ops {
            ops.entry(*op).or_default().merge(op_stats);
        }
        stats.slow_call_count += task.slow_call_count;
        stats.slow_calls.extend(task.slow_calls);
        stats.reads_checked += task.reads_checked;
        stats.read_violation_count += task.read_violation_count;
        stats.read_violations.extend(task.read_violations);
        own.extend(task_own);
    }
    let elapsed = shared.start.elapsed();
    let ok_now = shared.ok_calls.load(Ordering::SeqCst);
    if let Some(last) = faults.last_mut() {
        last.ok_calls_after = ok_now - ok_calls_at_last_end;
    }

    // The count check, on a connection of its own: the server is up and nothing is in flight.
    let counters = check::final_count(server, &shared, options.counters, own, &mut stats).await;

    stats
        .slow_calls
        .sort_by_key(|call| std::cmp::Reverse(call.waited));
    stats.slow_calls.truncate(KEEP);
    stats.read_violations.truncate(KEEP);
    Report {
        server_version: server_version(),
        elapsed,
        ops: Op::ALL
            .iter()
            .map(|op| (*op, ops.remove(op).unwrap_or_default()))
            .collect(),
        faults,
        ok_calls_before_faults,
        slow_calls: stats.slow_calls,
        slow_call_count: stats.slow_call_count,
        counters,
        reads_checked: stats.reads_checked,
        read_violations: stats.read_violations,
        read_violation_count: stats.read_violation_count,
        options,
    }
}
