//! The workload: tasks calling `set`, `get` and `mget` on their own keys and `update` on the shared
//! counters, timing every call and checking every read.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use statehouse::{Documents, StoreError, Update};

use super::engine::{Rng, Shared};
use super::report::{OpStats, SlowCall};
use super::{KEEP, Op, Options};

/// One task's own key: what may be read back.
#[derive(Debug, Default)]
pub(super) struct Own {
    pub(super) key: String,
    pub(super) last_acknowledged: Option<u64>,
    /// Values of `set`s that failed: they may or may not have been applied (even later).
    pub(super) unknown: HashSet<u64>,
}

impl Own {
    /// Whether `read` is a value this key may hold: the last acknowledged one, or one whose write
    /// has an unknown outcome (and nothing at all only if no write was acknowledged).
    pub(super) fn allows(&self, read: Option<u64>) -> bool {
        match read {
            None => self.last_acknowledged.is_none(),
            Some(value) => self.last_acknowledged == Some(value) || self.unknown.contains(&value),
        }
    }
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
}

impl TaskStats {
    pub(super) fn violation(&mut self, what: String) {
        self.read_violation_count += 1;
        if self.read_violations.len() < KEEP {
            self.read_violations.push(what);
        }
    }
}

/// How a call ended.
enum Outcome<T> {
    Done(Result<T, StoreError>),
    /// The caller's own deadline dropped it.
    Cancelled,
    /// Still running at the hang limit; abandoned.
    Hung,
}

/// One task: random operations until told to stop.
pub(super) struct Task {
    pub(super) id: usize,
    pub(super) docs: Documents,
    pub(super) shared: Arc<Shared>,
    pub(super) options: Options,
    pub(super) rng: Rng,
    pub(super) own: Vec<Own>,
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
    fn step(&mut self, shared: &Shared, now: Instant, response_timeout: Duration) {
        self.longest = self.longest.max(shared.waited(self.last, now, response_timeout));
        self.last = now;
    }
}

impl Task {
    pub(super) async fn run(mut self) -> (TaskStats, Vec<Own>) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            match self.rng.below(100) {
                0..25 => self.set().await,
                25..45 => self.get().await,
                45..60 => self.mget().await,
                60..96 => self.update(false).await,
                _ => self.update(true).await,
            }
        }
        (self.stats, self.own)
    }

    /// Runs `call`, times it, and records its outcome.
    async fn call<T>(
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

    async fn set(&mut self) {
        let i = self.rng.below(self.own.len());
        self.next_value += 1;
        let value = self.next_value;
        let key = self.own[i].key.clone();
        let docs = self.docs.clone();
        match self.call(Op::Set, None, docs.set(&key, &value)).await {
            Outcome::Done(Ok(())) => self.own[i].last_acknowledged = Some(value),
            _ => {
                self.own[i].unknown.insert(value);
            }
        }
    }

    async fn get(&mut self) {
        let i = self.rng.below(self.own.len());
        let key = self.own[i].key.clone();
        let docs = self.docs.clone();
        if let Outcome::Done(Ok(read)) = self.call(Op::Get, None, docs.get::<u64>(&key)).await {
            self.check_own(i, read, "get");
        }
    }

    fn check_own(&mut self, i: usize, read: Option<u64>, how: &str) {
        self.stats.reads_checked += 1;
        let own = &self.own[i];
        if !own.allows(read) {
            let what = format!(
                "task {} {how} {}: read {read:?}, last acknowledged {:?}, unknown outcomes {:?}",
                self.id, own.key, own.last_acknowledged, own.unknown
            );
            self.stats.violation(what);
        }
    }

    /// Checks a counter read: at least what was acknowledged before, at most what was attempted
    /// after.
    fn check_counter(&mut self, c: usize, read: u64, acknowledged_before: u64, how: &str) {
        self.stats.reads_checked += 1;
        let attempted_after = self.shared.attempted[c].load(Ordering::SeqCst);
        if read < acknowledged_before || read > attempted_after {
            let what = format!(
                "task {} {how} {}: read {read}, but {acknowledged_before} increments were acknowledged \
                 before and {attempted_after} attempted after",
                self.id,
                counter_key(c)
            );
            self.stats.violation(what);
        }
    }

    async fn mget(&mut self) {
        let first = self.rng.below(self.own.len());
        let second = (first + 1) % self.own.len();
        let c = self.rng.below(self.options.counters);
        let keys = [
            self.own[first].key.clone(),
            self.own[second].key.clone(),
            counter_key(c),
            format!("t{}:never-written", self.id),
        ];
        let acknowledged_before = self.shared.acknowledged[c].load(Ordering::SeqCst);
        let docs = self.docs.clone();
        let Outcome::Done(Ok(values)) = self.call(Op::Mget, None, docs.mget::<u64>(&keys)).await else {
            return;
        };
        let mut values = values.into_iter();
        let mut next = |what: &str| match values.next() {
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => Err(format!("mget {what}: {error}")),
            None => Err(format!("mget {what}: missing from the answer")),
        };
        let (a, b, counter, never) = (next("first"), next("second"), next("counter"), next("absent"));
        match (a, b, counter, never) {
            (Ok(a), Ok(b), Ok(counter), Ok(never)) => {
                self.check_own(first, a, "mget");
                self.check_own(second, b, "mget");
                self.check_counter(c, counter.unwrap_or(0), acknowledged_before, "mget");
                if never.is_some() {
                    self.stats.violation(format!(
                        "task {} mget: a never-written key holds {never:?}",
                        self.id
                    ));
                }
            }
            (a, b, counter, never) => {
                for error in [a.err(), b.err(), counter.err(), never.err()]
                    .into_iter()
                    .flatten()
                {
                    self.stats.violation(format!("task {}: {error}", self.id));
                }
            }
        }
    }

    async fn update(&mut self, cancel: bool) {
        let c = self.rng.below(self.options.counters);
        let key = counter_key(c);
        let (op, deadline) = if cancel {
            let deadline = self.rng.between((Duration::ZERO, Duration::from_millis(4)));
            (Op::CancelledUpdate, Some(deadline))
        } else {
            (Op::Update, None)
        };
        // Counted before the call: from here on its outcome may be "applied".
        self.shared.attempted[c].fetch_add(1, Ordering::SeqCst);
        let acknowledged_before = self.shared.acknowledged[c].load(Ordering::SeqCst);
        let docs = self.docs.clone();
        let (progress, shared) = (self.progress.clone(), self.shared.clone());
        let response_timeout = self.options.response_timeout;
        let increment = docs.update(&key, move |n: Option<u64>| {
            progress
                .lock()
                .unwrap()
                .step(&shared, Instant::now(), response_timeout);
            Update::Set(n.unwrap_or(0) + 1)
        });
        if let Outcome::Done(Ok(now)) = self.call(op, deadline, increment).await {
            self.shared.acknowledged[c].fetch_add(1, Ordering::SeqCst);
            // Our own increment is in `now`, on top of everything acknowledged before.
            self.check_counter(c, now.unwrap_or(0), acknowledged_before + 1, "update");
        }
    }
}

pub(super) fn counter_key(c: usize) -> String {
    format!("counter:{c}")
}
