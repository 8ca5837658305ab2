//! The [`Report`] of a run: figures per operation, faults, counters and reads; for people
//! (`Display`) and for machines ([`Report::to_json`]).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use serde_json::{Value, json};

use super::check::CounterCheck;
use super::faults::{Fault, FaultKind};
use super::{Op, Options};
use crate::harness::server::DURABLE_ARGS;

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
    pub(super) fn merge(&mut self, other: &OpStats) {
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
