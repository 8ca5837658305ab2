//! One task of the soak: picks operations of every family at random until told to stop, times
//! every call, records its outcome and checks every read.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use statehouse::{ConfigStore, Documents, QueueName, Queues, StoreError, Subjects, Tasks, Triggers, Users};

use super::documents::Own;
use super::engine::{Rng, Shared};
use super::ledger::Items;
use super::report::{OpStats, SlowCall};
use super::{KEEP, Op, Options};

/// The facades a task calls, cloned from one `Statehouse`.
#[derive(Debug, Clone)]
pub(super) struct Handles {
    pub(super) docs: Documents,
    pub(super) tasks: Tasks,
    pub(super) subjects: Subjects,
    /// The users of the tenant `soak`.
    pub(super) users: Users,
    pub(super) triggers: Triggers,
    pub(super) queues: Queues,
    /// The queue every task enqueues to (each in its own tenant).
    pub(super) queue: QueueName,
    pub(super) config: ConfigStore,
}

/// What one task saw.
#[derive(Debug, Default)]
pub(super) struct TaskStats {
    pub(super) ops: BTreeMap<Op, OpStats>,
    pub(super) slow_calls: Vec<SlowCall>,
    pub(super) slow_call_count: u64,
    pub(super) reads_checked: u64,
    pub(super) read_violations: Vec<String>,
    pub(super) read_violation_count: u64,
    pub(super) late_failures: Vec<SlowCall>,
    pub(super) late_failure_count: u64,
}

impl TaskStats {
    pub(super) fn violation(&mut self, what: String) {
        self.read_violation_count += 1;
        if self.read_violations.len() < KEEP {
            self.read_violations.push(what);
        }
    }

    /// Adds `other` (another task's).
    pub(super) fn merge(&mut self, other: TaskStats) {
        for (op, op_stats) in &other.ops {
            self.ops.entry(*op).or_default().merge(op_stats);
        }
        self.slow_call_count += other.slow_call_count;
        self.slow_calls.extend(other.slow_calls);
        self.reads_checked += other.reads_checked;
        self.read_violation_count += other.read_violation_count;
        self.read_violations.extend(other.read_violations);
        self.late_failure_count += other.late_failure_count;
        self.late_failures.extend(other.late_failures);
    }
}

/// What a task wrote, for the check after the run.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// The task's id (its keys, records, tenants and entries are named after it).
    pub(super) task: usize,
    pub(super) own: Vec<Own>,
    pub(super) tasks: Items,
    pub(super) triggers: Items,
    pub(super) queue_items: Items,
}

/// How a call ended.
pub(super) enum Outcome<T> {
    Done(Result<T, StoreError>),
    /// The caller's own deadline dropped it.
    Cancelled,
    /// Still running at the hang limit; abandoned.
    Hung,
}

/// One task: random operations until told to stop.
pub(super) struct Task {
    pub(super) id: usize,
    pub(super) handles: Handles,
    pub(super) shared: Arc<Shared>,
    pub(super) options: Options,
    pub(super) rng: Rng,
    pub(super) written: Written,
    pub(super) next_value: u64,
    pub(super) stats: TaskStats,
    /// The current call's progress, as far as it reports it: an update's closure records each run
    /// (WATCH and GET answered).
    pub(super) progress: Arc<Mutex<Progress>>,
}

/// The points a call is known to have progressed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Progress {
    /// The latest: the call's start or its closure's last run.
    last: Instant,
    /// The longest stretch between two points so far (see [`Shared::waited`]).
    longest: Duration,
}

impl Progress {
    pub(super) fn starting(at: Instant) -> Self {
        Self {
            last: at,
            longest: Duration::ZERO,
        }
    }

    /// Records progress at `now`.
    pub(super) fn step(&mut self, shared: &Shared, now: Instant, response_timeout: Duration) {
        self.longest = self.longest.max(shared.waited(self.last, now, response_timeout));
        self.last = now;
    }
}

impl Task {
    pub(super) fn new(id: usize, handles: Handles, shared: Arc<Shared>, options: &Options) -> Self {
        let own = (0..options.keys_per_task.max(2))
            .map(|j| Own {
                key: format!("t{id}:k{j}"),
                ..Own::default()
            })
            .collect();
        Task {
            id,
            handles,
            shared,
            options: options.clone(),
            rng: Rng(options.seed.wrapping_add(id as u64 + 1)),
            written: Written {
                task: id,
                own,
                ..Written::default()
            },
            next_value: 0,
            stats: TaskStats::default(),
            progress: Arc::new(Mutex::new(Progress::starting(Instant::now()))),
        }
    }

    /// Runs until told to stop: half the calls on documents (the family the other families build
    /// on), the other half spread over the other families.
    pub(super) async fn run(mut self) -> (TaskStats, Written) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            match self.rng.below(100) {
                0..12 => self.set().await,
                12..22 => self.get().await,
                22..30 => self.mget().await,
                30..48 => self.update(false).await,
                48..50 => self.update(true).await,
                50..56 => self.task_create().await,
                56..60 => self.task_get().await,
                60..68 => self.subject_increment().await,
                68..76 => self.tenant_increment().await,
                76..84 => self.trigger_set().await,
                84..92 => self.enqueue().await,
                _ => self.config_update().await,
            }
        }
        (self.stats, self.written)
    }

    /// Runs `call`, times it, and records its outcome.
    pub(super) async fn call<T>(
        &mut self,
        op: Op,
        deadline: Option<Duration>,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Outcome<T> {
        let started = Instant::now();
        *self.progress.lock().unwrap() = Progress::starting(started);
        let limit = deadline.unwrap_or(self.options.hang_limit());
        let outcome = match tokio::time::timeout(limit, call).await {
            Ok(result) => Outcome::Done(result),
            Err(_) if deadline.is_some() => Outcome::Cancelled,
            Err(_) => Outcome::Hung,
        };
        let done = Instant::now();
        let took = done - started;
        let stats = self.stats.ops.entry(op).or_default();
        stats.calls += 1;
        let label = match &outcome {
            Outcome::Done(Ok(_)) => {
                stats.ok += 1;
                self.shared.succeeded(op, done);
                "ok"
            }
            Outcome::Done(Err(error)) => {
                let kind = error.kind().as_str();
                *stats.errors.entry(kind).or_default() += 1;
                stats
                    .first_errors
                    .entry(kind)
                    .or_insert_with(|| error.to_string());
                stats.longest_error = stats.longest_error.max(took);
                if self.shared.after_recovery(started, done) {
                    self.stats.late_failure_count += 1;
                    if self.stats.late_failures.len() < KEEP {
                        self.stats.late_failures.push(SlowCall {
                            op,
                            took,
                            waited: took,
                            at: started - self.shared.start,
                            outcome: error.to_string(),
                        });
                    }
                }
                kind
            }
            Outcome::Cancelled => {
                stats.cancelled += 1;
                "cancelled"
            }
            Outcome::Hung => {
                stats.hung += 1;
                "hung"
            }
        };
        if !matches!(outcome, Outcome::Cancelled) {
            stats.longest = stats.longest.max(took);
            if matches!(outcome, Outcome::Done(Ok(_))) {
                stats.longest_ok = stats.longest_ok.max(took);
            }
            stats
                .micros
                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
            let bound = self.options.bound(op);
            let waited = {
                let mut progress = self.progress.lock().unwrap();
                progress.step(&self.shared, done, self.options.response_timeout);
                progress.longest
            };
            stats.longest_wait = stats.longest_wait.max(waited);
            if waited > bound {
                self.stats.slow_call_count += 1;
                if self.stats.slow_calls.len() < KEEP {
                    self.stats.slow_calls.push(SlowCall {
                        op,
                        took,
                        waited,
                        at: started - self.shared.start,
                        outcome: label.to_owned(),
                    });
                }
            }
        }
        outcome
    }

    /// A closure's run as progress of the current call (an answered WATCH and read).
    pub(super) fn progress_marker(&self) -> impl Fn() + Send + use<> {
        let (progress, shared) = (self.progress.clone(), self.shared.clone());
        let response_timeout = self.options.response_timeout;
        move || {
            progress
                .lock()
                .unwrap()
                .step(&shared, Instant::now(), response_timeout);
        }
    }

    /// Checks a counter read: at least what was acknowledged before, at most what was attempted
    /// after.
    pub(super) fn check_counter(
        &mut self,
        what: &str,
        read: u64,
        acknowledged_before: u64,
        attempted_after: u64,
    ) {
        self.stats.reads_checked += 1;
        if read < acknowledged_before || read > attempted_after {
            let what = format!(
                "task {} {what}: read {read}, but {acknowledged_before} increments were acknowledged \
                 before and {attempted_after} attempted after",
                self.id,
            );
            self.stats.violation(what);
        }
    }
}
