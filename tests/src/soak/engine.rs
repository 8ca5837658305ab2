//! [`run`]: the topology, the tasks and the chaos thread, then the check and the report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use statehouse::{Settings, Statehouse};

use super::faults::{Chaos, RecoveryWatch, chaos};
use super::ledger::Counters;
use super::report::{LoadAverage, Report};
use super::task::{Handles, Task, TaskStats};
use super::topology::Deployment;
use super::{KEEP, Op, Options, PREFIX, queues, tenants};
use super::{RECOVERED_WITHIN, check};

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
    /// The increments of the documents' counters (`update`).
    pub(super) documents: Counters,
    /// The increments of the subjects' property (`set_with`).
    pub(super) subjects: Counters,
    /// The increments of the tenant users' field (`increment`).
    pub(super) tenants: Counters,
    /// The updates (versions) of each task's config entry.
    pub(super) config: Counters,
    pub(super) watch: RecoveryWatch,
    /// When each fault began (before the kill or `SIGSTOP`).
    pub(super) fault_starts: Mutex<Vec<Instant>>,
    /// When the topology was back from each fault (answering again, or the new primary
    /// promoted), in the same order.
    pub(super) fault_ends: Mutex<Vec<Instant>>,
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

    /// Whether a call that ran from `started` to `done` began [`RECOVERED_WITHIN`] or more after
    /// the topology was back from the latest fault that began before it, and no fault began
    /// while it ran (so it must not fail).
    pub(super) fn after_recovery(&self, started: Instant, done: Instant) -> bool {
        let starts = self.fault_starts.lock().unwrap();
        if starts.iter().any(|&began| began > started && began <= done) {
            return false;
        }
        let Some(latest) = starts.iter().rposition(|&began| began <= started) else {
            return false;
        };
        let ends = self.fault_ends.lock().unwrap();
        ends.get(latest)
            .is_some_and(|&back| started >= back + RECOVERED_WITHIN)
    }

    /// Counts a successful call that completed at `done`, and notes it if a recovery is awaited.
    pub(super) fn succeeded(&self, op: Op, done: Instant) {
        self.ok_calls.fetch_add(1, Ordering::Relaxed);
        let is_update = op.is_update();
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

/// The 1-minute load average (`/proc/loadavg`), if readable.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs the soak (see the [module documentation](crate::soak)).
///
/// # Errors
///
/// Before any work, if the options ask for a fault the topology cannot take, or statehouse cannot
/// connect to the topology (e.g. a `redis+sentinel://` or `redis+cluster://` URL before statehouse
/// knows those schemes).
///
/// # Panics
///
/// If the topology cannot be started or faulted (the harness panics with every log), or the check
/// after the run cannot read it back.
pub async fn run(options: Options) -> Result<Report, String> {
    if let Some(kind) = options
        .faults
        .iter()
        .find(|kind| !options.topology.supports(**kind))
    {
        return Err(format!(
            "the {} topology cannot take a {} fault",
            options.topology.name(),
            kind.name()
        ));
    }
    let (topology, durable) = (options.topology, options.durable);
    let deployment = tokio::task::spawn_blocking(move || Deployment::start(topology, durable))
        .await
        .unwrap();
    let url = deployment.url();
    let mut settings = Settings::new(url.clone());
    settings.prefix = PREFIX.to_owned();
    settings.connect_timeout = options.connect_timeout;
    settings.response_timeout = options.response_timeout;
    settings.durability = options.durability;
    let state = match Statehouse::with_settings(settings).await {
        Ok(state) => state,
        Err(error) => {
            tokio::task::spawn_blocking(move || drop(deployment))
                .await
                .unwrap();
            return Err(format!(
                "statehouse cannot connect to the {} topology: {error}",
                topology.name()
            ));
        }
    };
    let queues = state.queues();
    let handles = Handles {
        docs: state.documents(),
        tasks: state.tasks(),
        subjects: state.subjects(),
        users: state.tenant(tenants::TENANT).unwrap().users(),
        triggers: state.triggers(),
        queue: queues::queue(&queues).unwrap(),
        queues,
        config: state.config(),
    };

    let shared = Arc::new(Shared {
        start: Instant::now(),
        stop: AtomicBool::new(false),
        ok_calls: AtomicU64::new(0),
        documents: Counters::new(options.counters),
        subjects: Counters::new(options.counters),
        tenants: Counters::new(options.counters),
        config: Counters::new(options.tasks),
        watch: RecoveryWatch::default(),
        fault_starts: Mutex::new(Vec::new()),
        fault_ends: Mutex::new(Vec::new()),
    });
    let deadline = shared.start + options.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..options.tasks {
        tasks.spawn(Task::new(id, handles.clone(), shared.clone(), &options).run());
    }
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut every = tokio::time::interval(Duration::from_secs(1));
        while Instant::now() < deadline {
            every.tick().await;
            samples.extend(load_average());
        }
        samples
    });

    let chaos_shared = shared.clone();
    let chaos_options = options.clone();
    let chaos =
        tokio::task::spawn_blocking(move || chaos(deployment, &chaos_shared, &chaos_options, deadline))
            .await
            .unwrap();
    let Chaos {
        deployment,
        mut faults,
        ok_calls_before_faults,
        ok_calls_at_last_end,
    } = chaos;
    tokio::time::sleep_until(deadline.into()).await;
    shared.stop.store(true, Ordering::SeqCst);

    let mut stats = TaskStats::default();
    let mut written = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (task_stats, task_written) = joined.unwrap();
        stats.merge(task_stats);
        written.push((task_written.task, task_written));
    }
    let elapsed = shared.start.elapsed();
    let ok_now = shared.ok_calls.load(Ordering::SeqCst);
    if let Some(last) = faults.last_mut() {
        last.ok_calls_after = ok_now - ok_calls_at_last_end;
    }
    let samples = sampler.await.unwrap_or_default();
    let load = LoadAverage::of(&samples);
    drop(state);

    // The check, on a connection of its own: the topology is up and nothing is in flight.
    let (families, counters) = check::after_run(url, &shared, written, &mut stats).await;
    let description = deployment.describe();
    tokio::task::spawn_blocking(move || drop(deployment))
        .await
        .unwrap();

    stats
        .slow_calls
        .sort_by_key(|call| std::cmp::Reverse(call.waited));
    stats.slow_calls.truncate(KEEP);
    stats.read_violations.truncate(KEEP);
    Ok(Report {
        server_version: server_version(),
        deployment: description,
        elapsed,
        load,
        ops: Op::ALL
            .iter()
            .map(|op| (*op, stats.ops.remove(op).unwrap_or_default()))
            .collect(),
        faults,
        ok_calls_before_faults,
        slow_calls: stats.slow_calls,
        slow_call_count: stats.slow_call_count,
        late_failures: stats.late_failures,
        late_failure_count: stats.late_failure_count,
        families,
        counters,
        reads_checked: stats.reads_checked,
        read_violations: stats.read_violations,
        read_violation_count: stats.read_violation_count,
        options,
    })
}
