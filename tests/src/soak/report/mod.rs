//! The [`Report`] of a run: figures per operation and per family, faults, the accounting of
//! writes and reads; for people (`display.rs`, `Display`) and for machines (`json.rs`,
//! [`Report::to_json`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::faults::{Fault, FaultKind};
use super::ledger::{CounterCheck, FamilyCheck};
use super::{Family, Op, Options};

mod display;
mod json;

pub use display::human;

/// Figures of one operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that returned `Ok`.
    pub ok: u64,
    /// Failed calls by `StoreError::kind()`.
    pub errors: BTreeMap<&'static str, u64>,
    /// The first error of each kind, as displayed (names the key, never a value or password).
    pub first_errors: BTreeMap<&'static str, String>,
    /// Calls dropped by the caller's deadline (`update+cancel` only).
    pub cancelled: u64,
    /// Calls abandoned after [`Options::hang_limit`].
    pub hung: u64,
    /// The longest call (not counting those cancelled by the caller).
    pub longest: Duration,
    /// The longest call that returned `Ok`.
    pub longest_ok: Duration,
    /// The longest call that returned an error.
    pub longest_error: Duration,
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
        for (kind, message) in &other.first_errors {
            self.first_errors.entry(kind).or_insert_with(|| message.clone());
        }
        self.cancelled += other.cancelled;
        self.hung += other.hung;
        self.longest = self.longest.max(other.longest);
        self.longest_ok = self.longest_ok.max(other.longest_ok);
        self.longest_error = self.longest_error.max(other.longest_error);
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

/// The 1-minute load average of the machine during the run, sampled every second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAverage {
    /// The first sample.
    pub first: f64,
    /// The mean of the samples.
    pub mean: f64,
    /// The highest sample.
    pub max: f64,
}

impl LoadAverage {
    pub(super) fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        Self {
            first: samples[0],
            mean: samples.iter().sum::<f64>() / samples.len() as f64,
            max: samples.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// What was run.
    pub options: Options,
    /// The `redis-server --version` line.
    pub server_version: String,
    /// The topology, as started.
    pub deployment: String,
    /// The load average during the run.
    pub load: LoadAverage,
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
    /// Calls that failed though they started [`RECOVERED_WITHIN`](super::RECOVERED_WITHIN) or
    /// more after the topology was back from the latest fault (the first 20; `outcome` is the
    /// error).
    pub late_failures: Vec<SlowCall>,
    /// How many calls failed that late.
    pub late_failure_count: u64,
    /// What each family's check after the run found of its writes, in [`Family::ALL`] order.
    pub families: Vec<FamilyCheck>,
    /// The counters after the run (documents, subjects, tenants, config versions).
    pub counters: Vec<CounterCheck>,
    /// Values read back and checked during the run and at the end (own keys, task records, counters).
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
            first_errors: BTreeMap::new(),
            cancelled: 0,
            hung: 0,
            longest: Duration::ZERO,
            longest_ok: Duration::ZERO,
            longest_error: Duration::ZERO,
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

    /// Acknowledged writes of every family missing after the run.
    pub fn lost(&self) -> u64 {
        self.families.iter().map(|family| family.lost).sum()
    }

    /// The check of `family`.
    ///
    /// # Panics
    ///
    /// If the report has none (every run checks every family).
    pub fn family(&self, family: Family) -> &FamilyCheck {
        match self.families.iter().find(|check| check.family == family) {
            Some(check) => check,
            None => panic!("the report has no check of {}", family.name()),
        }
    }

    /// The figures of every operation of `family`, merged.
    pub fn family_ops(&self, family: Family) -> OpStats {
        let mut total = OpStats::default();
        for (_, stats) in self.ops.iter().filter(|(op, _)| op.family() == family) {
            total.merge(stats);
        }
        total
    }

    /// The extra `redis-server` arguments of the data nodes (persistence).
    pub fn server_args(&self) -> &'static [&'static str] {
        if self.options.durable {
            crate::harness::server::DURABLE_ARGS
        } else {
            &[]
        }
    }

    /// The faults of `kind`.
    pub fn faults_of(&self, kind: FaultKind) -> usize {
        self.faults.iter().filter(|fault| fault.kind == kind).count()
    }

    /// Broken promises: lost or doubled writes, stale reads, calls past the bound, faults not
    /// recovered from. The `soak` binary exits non-zero if there is any.
    pub fn violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        for family in &self.families {
            if family.lost > 0 {
                found.push(format!(
                    "{}: {} acknowledged {} lost ({} acknowledged, {} found); first: {}",
                    family.family.name(),
                    family.lost,
                    family.unit,
                    family.acknowledged,
                    family.found,
                    family.examples.first().map_or("?", String::as_str)
                ));
            }
            if family.excess > 0 {
                found.push(format!(
                    "{}: {} {} found beyond the {} attempted (applied twice or never written)",
                    family.family.name(),
                    family.excess,
                    family.unit,
                    family.attempted
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
        if self.late_failure_count > 0 {
            found.push(format!(
                "{} calls failed {} or more after the topology was back from a fault; first: {}",
                self.late_failure_count,
                human(super::RECOVERED_WITHIN),
                self.late_failures.first().map_or_else(
                    || "?".to_owned(),
                    |call| format!("{} at {}: {}", call.op.name(), human(call.at), call.outcome)
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
        for kind in &self.options.faults {
            let kind = *kind;
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
        for (op, stats) in &self.ops {
            if stats.ok == 0 && *op != Op::CancelledUpdate {
                gaps.push(format!("no {} succeeded", op.name()));
            }
        }
        gaps
    }
}

/// The median and the maximum of some durations.
fn median_max(values: &[Duration]) -> (Option<Duration>, Option<Duration>) {
    let mut sorted = values.to_vec();
    sorted.sort();
    (sorted.get(sorted.len() / 2).copied(), sorted.last().copied())
}
