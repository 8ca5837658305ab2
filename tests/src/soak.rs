//! The fault soak: the real default stack under load while the server is killed, restarted, frozen
//! and thawed, with a count of what survived.
//!
//! [`run`] starts a durable `redis-server` ([`RedisServer::start_durable`]: an append-only file
//! fsync'd before every reply), connects with [`Statehouse::with_settings`] (the stack an
//! application gets: tracing layer over the Redis adapter) and lets [`Options::tasks`] tasks call
//! `set`, `get`, `mget` and `update` as fast as they can, while a chaos thread injects faults one at
//! a time:
//!
//! * **stop/restart**: `SIGKILL`, down for a random outage, then a new process on the same port that
//!   reloads the AOF;
//! * **pause/resume**: `SIGSTOP` for a random outage (connections are accepted by the kernel but
//!   nothing is answered: a black-holed server), then `SIGCONT`.
//!
//! After each fault the chaos thread waits until the tasks have recovered (the first successful call,
//! and the first successful `update`, completed after the server is back), then lets them work for a
//! random healthy interval before the next fault.
//!
//! # What is checked
//!
//! * **Nothing acknowledged is lost, nothing is applied twice.** Increments go through `update` on
//!   [`Options::counters`] shared counter keys. Every `update` call counts as *attempted* before it
//!   is sent, and as *acknowledged* once it returned `Ok`. A call that failed (timeout, connection
//!   lost, cancelled by the caller) has an unknown outcome: its EXEC may have run. So at any time a
//!   counter holds at least every increment acknowledged before the read started and at most every
//!   increment attempted when it ended; `mget` checks that during the run, each `update` checks its own
//!   result, and the end of the run checks every counter.
//! * **Reads see acknowledged writes.** Each task writes its own keys with increasing numbers; a read
//!   of one must return its last acknowledged value or the value of a later or earlier `set` whose
//!   outcome was unknown; anything else is a lost (or resurrected) write.
//! * **No call waits longer than its [bound](Options::bound)** for a server that does not answer
//!   (one response timeout per round trip or update attempt, plus slack): the longest stretch
//!   between two answers the soak can see, counted from a fault if one began in it. A call still running at [`Options::hang_limit`] is abandoned and reported
//!   as hung.
//! * **Every fault is recovered from** within [`Options::recovery_limit`].
//!
//! The [`Report`] has all figures; `Display` prints them for people, [`Report::to_json`] for
//! machines. `cargo run --release -p statehouse-tests --bin soak -- --seconds 300` runs it;
//! `tests/tests/soak.rs` runs 10 seconds of it in the test suite.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use statehouse::{Documents, Settings, Statehouse, StoreError, Update};

use crate::harness::RedisServer;
use crate::harness::server::DURABLE_ARGS;

/// The prefix of every key the soak writes.
const PREFIX: &str = "soak:";
/// At most this many slow calls and read violations are kept in the report (all are counted).
const KEEP: usize = 20;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// How long the tasks work.
    pub duration: Duration,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Shared counter keys, incremented with `update`.
    pub counters: usize,
    /// Keys each task `set`s, `get`s and `mget`s (its own; nobody else writes them).
    pub keys_per_task: usize,
    /// `Settings::connect_timeout`.
    pub connect_timeout: Duration,
    /// `Settings::response_timeout`.
    pub response_timeout: Duration,
    /// Allowance for scheduling on a loaded machine, added to the bound.
    pub slack: Duration,
    /// Healthy time between recovering from one fault and the next, drawn uniformly.
    pub healthy: (Duration, Duration),
    /// How long a stopped server stays down, or a paused one frozen, drawn uniformly.
    pub outage: (Duration, Duration),
    /// How long to wait for recovery before declaring a fault unrecovered.
    pub recovery_limit: Duration,
    /// Seed of the random choices (operations, keys, faults, intervals).
    pub seed: u64,
}

impl Options {
    /// A run of `duration` with the default mix: 32 tasks, 8 counters, a response timeout of
    /// 500 ms, the library's default connect timeout of 2 s (so that an update waiting for the pool
    /// to open a connection, bounded by connect + response timeout, would stand out far past its
    /// bound), slack 250 ms, faults every 0.3–1.5 s lasting 0.1–1.2 s.
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            tasks: 32,
            counters: 8,
            keys_per_task: 4,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_millis(500),
            slack: Duration::from_millis(250),
            healthy: (Duration::from_millis(300), Duration::from_millis(1_500)),
            outage: (Duration::from_millis(100), Duration::from_millis(1_200)),
            recovery_limit: Duration::from_secs(15),
            seed: 0x5eed_50a4,
        }
    }

    /// The longest `op` may wait for a server that does not answer, between two answers the soak
    /// can see (below): what the library promises, plus [`slack`](Self::slack) for the scheduler of
    /// a loaded machine.
    ///
    /// The library bounds every wait for an answer by the response timeout (RT): a `get` or `set`
    /// is one round trip, so **RT**; `mget` of a missing key is two (MGET, then TYPE for the nils),
    /// so **2 RT**; an `update` attempt (taking a pooled connection, WATCH and GET, EXEC) has one RT
    /// in all, and only an answered conflict (EXEC answering nil) starts another, after a backoff
    /// of at most 50 ms, so between two answers the soak sees (runs of the update's closure, which
    /// follow each answered WATCH and GET) **2 RT + 50 ms**: the rest of one attempt, whose EXEC
    /// may be answered nil just before its deadline, then the next attempt.
    ///
    /// A call's *wait* is the longest stretch between consecutive points it is known to have
    /// progressed: its start, each run of its closure (updates only) and its end; a stretch in
    /// which a fault began counts from the fault (the server answered until then). What a call
    /// did in between (answered round trips, conflict retries under contention) is progress, not
    /// waiting: an update's total time is bounded by its retry policy, not by a timeout.
    pub fn bound(&self, op: Op) -> Duration {
        let rt = self.response_timeout;
        let promised = match op {
            Op::Set | Op::Get => rt,
            Op::Mget => rt * 2,
            Op::Update | Op::CancelledUpdate => rt * 2 + Duration::from_millis(50),
        };
        promised + self.slack
    }

    /// When a call is abandoned as hung (and reported past the bound).
    pub fn hang_limit(&self) -> Duration {
        self.bound(Op::Update) * 4 + Duration::from_secs(5)
    }
}

/// The operations, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `set` of one of the task's keys.
    Set,
    /// `get` of one of the task's keys.
    Get,
    /// `mget` of two own keys, a counter and a key never written.
    Mget,
    /// `update` incrementing a counter.
    Update,
    /// `update` incrementing a counter, under a caller deadline of 0–4 ms (so mostly cancelled).
    CancelledUpdate,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 5] = [Op::Set, Op::Get, Op::Mget, Op::Update, Op::CancelledUpdate];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::Get => "get",
            Op::Mget => "mget",
            Op::Update => "update",
            Op::CancelledUpdate => "update+cancel",
        }
    }
}

/// Figures of one operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that returned `Ok`.
    pub ok: u64,
    /// Failed calls by `StoreError::kind()`.
    pub errors: BTreeMap<&'static str, u64>,
    /// Calls dropped by the caller's deadline (`update+cancel` only).
    pub cancelled: u64,
    /// Calls abandoned after [`Options::hang_limit`].
    pub hung: u64,
    /// The longest call (not counting those cancelled by the caller).
    pub longest: Duration,
    /// The longest call that returned `Ok`.
    pub longest_ok: Duration,
    /// The longest wait measured against the bound: the longest stretch of a call between two points
    /// it is known to have progressed (start, closure runs, end), from a fault if one began in it.
    pub longest_wait: Duration,
    /// Duration of every call but the cancelled ones, in microseconds, sorted once merged.
    pub micros: Vec<u32>,
}

impl OpStats {
    fn merge(&mut self, other: &OpStats) {
        self.calls += other.calls;
        self.ok += other.ok;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.cancelled += other.cancelled;
        self.hung += other.hung;
        self.longest = self.longest.max(other.longest);
        self.longest_ok = self.longest_ok.max(other.longest_ok);
        self.longest_wait = self.longest_wait.max(other.longest_wait);
        self.micros.extend_from_slice(&other.micros);
    }

    /// The `p`-th percentile (0–100) of the call durations, if there were calls.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        percentile_of_sorted(&sorted, p)
    }
}

fn percentile_of_sorted(sorted: &[u32], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Some(Duration::from_micros(u64::from(
        sorted[rank.min(sorted.len() - 1)],
    )))
}

/// The two kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `SIGKILL`, then a new process that reloads the AOF.
    StopRestart,
    /// `SIGSTOP`, then `SIGCONT`.
    PauseResume,
}

impl FaultKind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::StopRestart => "stop/restart",
            FaultKind::PauseResume => "pause/resume",
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Which.
    pub kind: FaultKind,
    /// When it began, from the start of the run.
    pub at: Duration,
    /// From the kill (or `SIGSTOP`) until the server answered again (restart includes loading the
    /// AOF).
    pub outage: Duration,
    /// From the server being back to the first successful call of any kind completing.
    pub recovery: Option<Duration>,
    /// From the server being back to the first successful `update` completing.
    pub update_recovery: Option<Duration>,
    /// Successful calls between the end of this fault and the start of the next (or the end).
    pub ok_calls_after: u64,
}

/// A call that waited longer than the bound.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowCall {
    /// The operation.
    pub op: Op,
    /// How long it took (the hang limit if it was abandoned).
    pub took: Duration,
    /// How much of that counts against the bound (see [`Options::bound`]).
    pub waited: Duration,
    /// When it started, from the start of the run.
    pub at: Duration,
    /// `ok`, an error kind, or `hung`.
    pub outcome: String,
}

/// The end-of-run count of one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCheck {
    /// The key.
    pub key: String,
    /// `update` calls made on it.
    pub attempted: u64,
    /// `update` calls on it that returned `Ok`.
    pub acknowledged: u64,
    /// What the server holds after the run.
    pub value: u64,
}

impl CounterCheck {
    /// Increments acknowledged but missing.
    pub fn lost(&self) -> u64 {
        self.acknowledged.saturating_sub(self.value)
    }

    /// Increments beyond every attempted one (something applied twice).
    pub fn excess(&self) -> u64 {
        self.value.saturating_sub(self.attempted)
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// What was run.
    pub options: Options,
    /// The `redis-server --version` line.
    pub server_version: String,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Figures per operation, in [`Op::ALL`] order.
    pub ops: Vec<(Op, OpStats)>,
    /// The faults, in order.
    pub faults: Vec<Fault>,
    /// Successful calls before the first fault.
    pub ok_calls_before_faults: u64,
    /// Calls that waited longer than [`Options::bound`] (the 20 longest).
    pub slow_calls: Vec<SlowCall>,
    /// How many calls were longer than the bound.
    pub slow_call_count: u64,
    /// The counters after the run.
    pub counters: Vec<CounterCheck>,
    /// Values read back and checked during the run and at the end (own keys and counters).
    pub reads_checked: u64,
    /// Reads that saw a lost or impossible value (the first 20, described).
    pub read_violations: Vec<String>,
    /// How many reads saw a lost or impossible value.
    pub read_violation_count: u64,
}

impl Report {
    /// The totals over every operation.
    pub fn total(&self) -> OpStats {
        let mut total = OpStats::default();
        for (_, stats) in &self.ops {
            total.merge(stats);
        }
        total
    }

    /// The figures of `op`.
    pub fn op(&self, op: Op) -> &OpStats {
        static EMPTY: OpStats = OpStats {
            calls: 0,
            ok: 0,
            errors: BTreeMap::new(),
            cancelled: 0,
            hung: 0,
            longest: Duration::ZERO,
            longest_ok: Duration::ZERO,
            longest_wait: Duration::ZERO,
            micros: Vec::new(),
        };
        self.ops
            .iter()
            .find_map(|(o, stats)| (*o == op).then_some(stats))
            .unwrap_or(&EMPTY)
    }

    /// Acknowledged increments missing from the counters at the end.
    pub fn lost_increments(&self) -> u64 {
        self.counters.iter().map(CounterCheck::lost).sum()
    }

    /// Increments beyond the attempted ones at the end.
    pub fn excess_increments(&self) -> u64 {
        self.counters.iter().map(CounterCheck::excess).sum()
    }

    /// The faults of `kind`.
    pub fn faults_of(&self, kind: FaultKind) -> usize {
        self.faults.iter().filter(|fault| fault.kind == kind).count()
    }

    /// Broken promises: lost or doubled writes, stale reads, calls past the bound, faults not
    /// recovered from. The `soak` binary exits non-zero if there is any.
    pub fn violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        for counter in &self.counters {
            if counter.lost() > 0 {
                found.push(format!(
                    "{}: {} acknowledged increments lost (value {}, acknowledged {})",
                    counter.key,
                    counter.lost(),
                    counter.value,
                    counter.acknowledged
                ));
            }
            if counter.excess() > 0 {
                found.push(format!(
                    "{}: value {} is above the {} attempted increments (applied twice)",
                    counter.key, counter.value, counter.attempted
                ));
            }
        }
        if self.read_violation_count > 0 {
            found.push(format!(
                "{} reads saw a lost or impossible value; first: {}",
                self.read_violation_count,
                self.read_violations.first().map_or("?", String::as_str)
            ));
        }
        if self.slow_call_count > 0 {
            let slowest = self.slow_calls.iter().max_by_key(|call| call.waited);
            found.push(format!(
                "{} calls waited longer than their bound; longest: {}",
                self.slow_call_count,
                slowest.map_or_else(
                    || "?".to_owned(),
                    |call| format!(
                        "{} waited {} of {} ({}; bound {})",
                        call.op.name(),
                        human(call.waited),
                        human(call.took),
                        call.outcome,
                        human(self.options.bound(call.op))
                    )
                )
            ));
        }
        for (i, fault) in self.faults.iter().enumerate() {
            if fault.recovery.is_none() || fault.update_recovery.is_none() {
                found.push(format!(
                    "fault {} ({} at {}) not recovered from within {}",
                    i + 1,
                    fault.kind.name(),
                    human(fault.at),
                    human(self.options.recovery_limit)
                ));
            }
        }
        found
    }

    /// What the run did not exercise: no fault of a kind, no work before the first fault or after
    /// one. Not a broken promise, but a run that proves little.
    pub fn coverage_gaps(&self) -> Vec<String> {
        let mut gaps = Vec::new();
        for kind in [FaultKind::StopRestart, FaultKind::PauseResume] {
            if self.faults_of(kind) == 0 {
                gaps.push(format!("no {} fault happened (run longer)", kind.name()));
            }
        }
        if self.ok_calls_before_faults == 0 {
            gaps.push("no successful call before the first fault".to_owned());
        }
        for (i, fault) in self.faults.iter().enumerate() {
            if fault.ok_calls_after == 0 {
                gaps.push(format!("no successful call after fault {}", i + 1));
            }
        }
        if self.op(Op::Update).ok == 0 {
            gaps.push("no update succeeded".to_owned());
        }
        gaps
    }

    /// The summary as JSON (durations in milliseconds).
    pub fn to_json(&self) -> Value {
        let ops: serde_json::Map<String, Value> = self
            .ops
            .iter()
            .map(|(op, stats)| {
                let mut value = stats_json(stats);
                value["bound_ms"] = json!(ms(self.options.bound(*op)));
                (op.name().to_owned(), value)
            })
            .collect();
        let recoveries: Vec<Duration> = self.faults.iter().filter_map(|f| f.recovery).collect();
        let update_recoveries: Vec<Duration> = self.faults.iter().filter_map(|f| f.update_recovery).collect();
        json!({
            "options": {
                "seconds": self.options.duration.as_secs_f64(),
                "tasks": self.options.tasks,
                "counters": self.options.counters,
                "keys_per_task": self.options.keys_per_task,
                "connect_timeout_ms": ms(self.options.connect_timeout),
                "response_timeout_ms": ms(self.options.response_timeout),
                "slack_ms": ms(self.options.slack),
                "seed": self.options.seed,
            },
            "server": self.server_version,
            "server_args": DURABLE_ARGS,
            "cpus": std::thread::available_parallelism().map_or(0, usize::from),
            "elapsed_ms": ms(self.elapsed),
            "ops": ops,
            "total": stats_json(&self.total()),
            "longest_call_ms": ms(self.total().longest),
            "longest_wait_ms": ms(self.total().longest_wait),
            "slow_calls": self.slow_call_count,
            "faults": self.faults.iter().map(|fault| json!({
                "kind": fault.kind.name(),
                "at_ms": ms(fault.at),
                "outage_ms": ms(fault.outage),
                "recovery_ms": fault.recovery.map(ms),
                "update_recovery_ms": fault.update_recovery.map(ms),
                "ok_calls_after": fault.ok_calls_after,
            })).collect::<Vec<_>>(),
            "recovery_ms": summary_json(&recoveries),
            "update_recovery_ms": summary_json(&update_recoveries),
            "ok_calls_before_faults": self.ok_calls_before_faults,
            "counters": self.counters.iter().map(|c| json!({
                "key": c.key,
                "attempted": c.attempted,
                "acknowledged": c.acknowledged,
                "value": c.value,
            })).collect::<Vec<_>>(),
            "lost_increments": self.lost_increments(),
            "excess_increments": self.excess_increments(),
            "reads_checked": self.reads_checked,
            "read_violations": self.read_violation_count,
            "violations": self.violations(),
            "coverage_gaps": self.coverage_gaps(),
            "ok": self.violations().is_empty(),
        })
    }
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

fn stats_json(stats: &OpStats) -> Value {
    json!({
        "calls": stats.calls,
        "ok": stats.ok,
        "errors": stats.errors,
        "cancelled": stats.cancelled,
        "hung": stats.hung,
        "p50_ms": stats.percentile(50.0).map(ms),
        "p99_ms": stats.percentile(99.0).map(ms),
        "longest_ms": ms(stats.longest),
        "longest_ok_ms": ms(stats.longest_ok),
        "longest_wait_ms": ms(stats.longest_wait),
    })
}

/// `{count, median, max}` of some durations, in ms.
fn summary_json(values: &[Duration]) -> Value {
    let (median, max) = median_max(values);
    json!({"count": values.len(), "median": median.map(ms), "max": max.map(ms)})
}

fn median_max(values: &[Duration]) -> (Option<Duration>, Option<Duration>) {
    let mut sorted = values.to_vec();
    sorted.sort();
    (sorted.get(sorted.len() / 2).copied(), sorted.last().copied())
}

/// A duration for people: `1.2 s`, `35 ms`, `2.5 ms`, `800 µs`.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.1} s")
    } else if secs >= 0.01 {
        format!("{:.0} ms", secs * 1e3)
    } else if secs >= 0.001 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{:.0} µs", secs * 1e6)
    }
}

/// A count for people: `1,234,567`.
fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "statehouse fault soak: {} of work, {} tasks, {} counters; timeouts: connect {}, response {}; \
             slack {}",
            human(o.duration),
            o.tasks,
            o.counters,
            human(o.connect_timeout),
            human(o.response_timeout),
            human(o.slack),
        )?;
        writeln!(
            f,
            "server: {} ({}); {} CPUs; wall time {}\n",
            self.server_version,
            DURABLE_ARGS.join(" "),
            std::thread::available_parallelism().map_or(0, usize::from),
            human(self.elapsed)
        )?;

        // Operations.
        let total = self.total();
        let kinds: Vec<&'static str> = total.errors.keys().copied().collect();
        let mut header = format!("{:<14} {:>10} {:>10}", "operation", "calls", "ok");
        for kind in &kinds {
            let _ = write!(header, " {kind:>10}");
        }
        let _ = write!(
            header,
            " {:>10} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "cancelled", "hung", "p50", "p99", "longest", "waited", "bound"
        );
        writeln!(f, "{header}")?;
        let row = |name: &str, stats: &OpStats, bound: Option<Duration>| {
            let mut line = format!("{name:<14} {:>10} {:>10}", count(stats.calls), count(stats.ok));
            for kind in &kinds {
                let _ = write!(
                    line,
                    " {:>10}",
                    count(stats.errors.get(kind).copied().unwrap_or(0))
                );
            }
            let maybe = |value: Option<Duration>| value.map_or_else(|| "-".to_owned(), human);
            let _ = write!(
                line,
                " {:>10} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}",
                count(stats.cancelled),
                count(stats.hung),
                maybe(stats.percentile(50.0)),
                maybe(stats.percentile(99.0)),
                human(stats.longest),
                human(stats.longest_wait),
                maybe(bound)
            );
            line
        };
        for (op, stats) in &self.ops {
            let bound = (*op != Op::CancelledUpdate).then(|| o.bound(*op));
            writeln!(f, "{}", row(op.name(), stats, bound))?;
        }
        writeln!(f, "{}", row("total", &total, None))?;
        let longest_ok: Vec<String> = self
            .ops
            .iter()
            .filter(|(op, _)| *op != Op::CancelledUpdate)
            .map(|(op, stats)| format!("{} {}", op.name(), human(stats.longest_ok)))
            .collect();
        writeln!(f, "longest successful call: {}", longest_ok.join(", "))?;
        writeln!(
            f,
            "(errors by StoreError::kind(); `update+cancel` runs under a 0-4 ms caller deadline, so most \
             are cancelled;\n `waited`: the longest stretch of a call between answers seen (start, update \
             closure runs, end),\n counted from a fault if one began in it; `bound` applies to it: a \
             response timeout per round trip or update attempt\n the soak cannot see answered, plus slack)\n"
        )?;

        // Faults.
        writeln!(
            f,
            "faults: {} ({} stop/restart, {} pause/resume); {} successful calls before the first",
            self.faults.len(),
            self.faults_of(FaultKind::StopRestart),
            self.faults_of(FaultKind::PauseResume),
            count(self.ok_calls_before_faults)
        )?;
        writeln!(
            f,
            "{:>3} {:>8} {:<13} {:>8} {:>12} {:>14} {:>12}",
            "#", "at", "kind", "outage", "recovery", "update recov.", "ok after"
        )?;
        let maybe = |value: Option<Duration>| value.map_or_else(|| "NEVER".to_owned(), human);
        for (i, fault) in self.faults.iter().enumerate() {
            writeln!(
                f,
                "{:>3} {:>8} {:<13} {:>8} {:>12} {:>14} {:>12}",
                i + 1,
                human(fault.at),
                fault.kind.name(),
                human(fault.outage),
                maybe(fault.recovery),
                maybe(fault.update_recovery),
                count(fault.ok_calls_after)
            )?;
        }
        for kind in [FaultKind::StopRestart, FaultKind::PauseResume] {
            let of_kind = || self.faults.iter().filter(move |fault| fault.kind == kind);
            let any: Vec<Duration> = of_kind().filter_map(|fault| fault.recovery).collect();
            let update: Vec<Duration> = of_kind().filter_map(|fault| fault.update_recovery).collect();
            if any.is_empty() {
                continue;
            }
            let (any_median, any_max) = median_max(&any);
            let (update_median, update_max) = median_max(&update);
            writeln!(
                f,
                "recovery after {}: any call median {}, max {}; update median {}, max {}",
                kind.name(),
                maybe(any_median),
                maybe(any_max),
                maybe(update_median),
                maybe(update_max)
            )?;
        }
        writeln!(
            f,
            "(recovery: from the server answering again to the first successful call completing)\n"
        )?;

        // Counts.
        writeln!(
            f,
            "{:<12} {:>10} {:>13} {:>10}  check",
            "counter", "attempted", "acknowledged", "value"
        )?;
        for counter in &self.counters {
            let verdict = if counter.lost() > 0 {
                format!("LOST {}", counter.lost())
            } else if counter.excess() > 0 {
                format!("APPLIED TWICE (+{})", counter.excess())
            } else {
                "ok: acknowledged <= value <= attempted".to_owned()
            };
            writeln!(
                f,
                "{:<12} {:>10} {:>13} {:>10}  {verdict}",
                counter.key,
                count(counter.attempted),
                count(counter.acknowledged),
                count(counter.value)
            )?;
        }
        writeln!(
            f,
            "reads checked against acknowledged writes: {}, violations: {}",
            count(self.reads_checked),
            count(self.read_violation_count)
        )?;
        for violation in &self.read_violations {
            writeln!(f, "  {violation}")?;
        }
        writeln!(
            f,
            "longest call: {}; longest wait for a silent server: {}; calls past their bound: {}",
            human(total.longest),
            human(total.longest_wait),
            count(self.slow_call_count)
        )?;
        for call in &self.slow_calls {
            writeln!(
                f,
                "  {} at {} waited {} of {} ({})",
                call.op.name(),
                human(call.at),
                human(call.waited),
                human(call.took),
                call.outcome
            )?;
        }
        writeln!(f)?;

        let violations = self.violations();
        for gap in self.coverage_gaps() {
            writeln!(f, "note: {gap}")?;
        }
        if violations.is_empty() {
            write!(
                f,
                "RESULT: OK (no acknowledged write lost, nothing applied twice, every call within its \
                 bound, every fault recovered from)"
            )
        } else {
            writeln!(f, "RESULT: FAILED")?;
            for violation in &violations {
                writeln!(f, "  {violation}")?;
            }
            Ok(())
        }
    }
}

/// splitmix64: small, seedable, good enough to pick operations and intervals.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn between(&mut self, (low, high): (Duration, Duration)) -> Duration {
        let spread = high.saturating_sub(low).as_micros() as u64;
        low + Duration::from_micros(self.next() % spread.saturating_add(1))
    }
}

/// Watches for the first successful calls after a fault.
#[derive(Debug, Default)]
struct RecoveryWatch {
    /// A successful call of any kind is awaited.
    any: AtomicBool,
    /// A successful update is awaited.
    update: AtomicBool,
    state: Mutex<WatchState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct WatchState {
    back_at: Option<Instant>,
    any: Option<Duration>,
    update: Option<Duration>,
}

/// What the tasks and the chaos thread share.
#[derive(Debug)]
struct Shared {
    start: Instant,
    stop: AtomicBool,
    ok_calls: AtomicU64,
    attempted: Vec<AtomicU64>,
    acknowledged: Vec<AtomicU64>,
    watch: RecoveryWatch,
    /// When each fault began (before the kill or `SIGSTOP`).
    fault_starts: Mutex<Vec<Instant>>,
}

impl Shared {
    /// How long a call waited between two points it progressed, `from` and `to`: from the first
    /// fault that began in between if there is one (the server answered until then).
    fn waited(&self, from: Instant, to: Instant, response_timeout: Duration) -> Duration {
        // Cheap path first: most stretches are far below any bound.
        if to - from <= response_timeout {
            return to - from;
        }
        let starts = self.fault_starts.lock().unwrap();
        let fault = starts.iter().copied().find(|&began| began > from && began <= to);
        to - fault.unwrap_or(from).max(from)
    }

    /// Counts a successful call that completed at `done`, and notes it if a recovery is awaited.
    fn succeeded(&self, op: Op, done: Instant) {
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

/// One task's own key: what may be read back.
#[derive(Debug, Default)]
struct Own {
    key: String,
    last_acknowledged: Option<u64>,
    /// Values of `set`s that failed: they may or may not have been applied (even later).
    unknown: HashSet<u64>,
}

impl Own {
    /// Whether `read` is a value this key may hold: the last acknowledged one, or one whose write
    /// has an unknown outcome (and nothing at all only if no write was acknowledged).
    fn allows(&self, read: Option<u64>) -> bool {
        match read {
            None => self.last_acknowledged.is_none(),
            Some(value) => self.last_acknowledged == Some(value) || self.unknown.contains(&value),
        }
    }
}

/// What one task saw.
#[derive(Debug, Default)]
struct TaskStats {
    ops: BTreeMap<Op, OpStats>,
    slow_calls: Vec<SlowCall>,
    slow_call_count: u64,
    reads_checked: u64,
    read_violations: Vec<String>,
    read_violation_count: u64,
}

impl TaskStats {
    fn violation(&mut self, what: String) {
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
struct Task {
    id: usize,
    docs: Documents,
    shared: Arc<Shared>,
    options: Options,
    rng: Rng,
    own: Vec<Own>,
    next_value: u64,
    stats: TaskStats,
    /// The current call's progress, as far as it reports it: an update's closure records each run
    /// (WATCH and GET answered).
    progress: Arc<Mutex<Progress>>,
}

/// The points a call is known to have progressed.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The latest: the call's start or its closure's last run.
    last: Instant,
    /// The longest stretch between two points so far (see [`Shared::waited`]).
    longest: Duration,
}

impl Progress {
    fn starting(at: Instant) -> Self {
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
    async fn run(mut self) -> (TaskStats, Vec<Own>) {
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

fn counter_key(c: usize) -> String {
    format!("counter:{c}")
}

/// The chaos thread: faults one at a time, each followed by a wait for recovery and a healthy
/// interval, until `deadline`. Returns the server (running) and the faults.
fn chaos(mut server: RedisServer, shared: &Shared, options: &Options, deadline: Instant) -> Chaos {
    let mut rng = Rng(options.seed ^ 0xc4a0_5c4a_05c4_a05c);
    let mut faults: Vec<Fault> = Vec::new();
    let mut ok_before = 0;
    let mut ok_at_last_end = 0;
    std::thread::sleep(rng.between(options.healthy));
    loop {
        let outage = rng.between(options.outage);
        // Room for the outage, a (generous) recovery and some healthy work afterwards.
        if Instant::now() + outage + options.healthy.0 + Duration::from_secs(1) > deadline {
            break;
        }
        let kind = match faults.len() {
            0 => FaultKind::StopRestart,
            1 => FaultKind::PauseResume,
            _ if rng.below(2) == 0 => FaultKind::StopRestart,
            _ => FaultKind::PauseResume,
        };
        let ok_now = shared.ok_calls.load(Ordering::SeqCst);
        match faults.last_mut() {
            Some(last) => last.ok_calls_after = ok_now - ok_at_last_end,
            None => ok_before = ok_now,
        }
        *shared.watch.state.lock().unwrap() = WatchState::default();
        let began = Instant::now();
        shared.fault_starts.lock().unwrap().push(began);
        match kind {
            FaultKind::StopRestart => {
                server.stop();
                std::thread::sleep(outage);
                server.restart();
            }
            FaultKind::PauseResume => {
                server.pause();
                std::thread::sleep(outage);
                server.resume();
            }
        }
        let back_at = Instant::now();
        shared.watch.state.lock().unwrap().back_at = Some(back_at);
        shared.watch.any.store(true, Ordering::Release);
        shared.watch.update.store(true, Ordering::Release);
        ok_at_last_end = shared.ok_calls.load(Ordering::SeqCst);
        let give_up = back_at + options.recovery_limit;
        let state = loop {
            let state = *shared.watch.state.lock().unwrap();
            if (state.any.is_some() && state.update.is_some()) || Instant::now() >= give_up {
                break state;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        shared.watch.any.store(false, Ordering::Release);
        shared.watch.update.store(false, Ordering::Release);
        faults.push(Fault {
            kind,
            at: began - shared.start,
            outage: back_at - began,
            recovery: state.any,
            update_recovery: state.update,
            ok_calls_after: 0,
        });
        // The shortest healthy interval after the first fault, so that the second (the first
        // pause) happens early even in a short run.
        let healthy = rng.between(options.healthy);
        std::thread::sleep(if faults.len() == 1 {
            options.healthy.0
        } else {
            healthy
        });
    }
    Chaos {
        server,
        faults,
        ok_calls_before_faults: ok_before,
        ok_calls_at_last_end: ok_at_last_end,
    }
}

/// What the chaos thread hands back.
struct Chaos {
    server: RedisServer,
    faults: Vec<Fault>,
    ok_calls_before_faults: u64,
    ok_calls_at_last_end: u64,
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

/// Runs the soak (see the [module documentation](self)).
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
    let counters = options.counters;
    let (server, counter_values, own_values) = tokio::task::spawn_blocking(move || {
        let mut connection = server.connection();
        let mut read = |key: &str| -> Option<u64> {
            let raw: Option<String> = redis::cmd("GET")
                .arg(format!("{PREFIX}{key}"))
                .query(&mut connection)
                .unwrap();
            raw.map(|raw| raw.parse().unwrap())
        };
        let counter_values: Vec<u64> = (0..counters)
            .map(|c| read(&counter_key(c)).unwrap_or(0))
            .collect();
        let own_values: Vec<Option<u64>> = own.iter().map(|own| read(&own.key)).collect();
        (server, counter_values, (own, own_values))
    })
    .await
    .unwrap();
    let counters: Vec<CounterCheck> = counter_values
        .iter()
        .enumerate()
        .map(|(c, &value)| CounterCheck {
            key: counter_key(c),
            attempted: shared.attempted[c].load(Ordering::SeqCst),
            acknowledged: shared.acknowledged[c].load(Ordering::SeqCst),
            value,
        })
        .collect();
    let (own, own_values) = own_values;
    for (own, value) in own.iter().zip(own_values) {
        stats.reads_checked += 1;
        if !own.allows(value) {
            stats.violation(format!(
                "after the run {}: holds {value:?}, last acknowledged {:?}, unknown outcomes {:?}",
                own.key, own.last_acknowledged, own.unknown
            ));
        }
    }
    tokio::task::spawn_blocking(move || drop(server)).await.unwrap();

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
