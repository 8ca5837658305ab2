//! The report for people: `Display` of [`Report`], tables per operation, per family, per fault and
//! per counter.

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::{OpStats, Report, median_max};
use crate::harness::server::DURABLE_ARGS;
use crate::soak::{FaultKind, Op};

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
            "topology: {} ({}); durability: {}; server: {} ({}); {} CPUs; wall time {}",
            o.topology.name(),
            self.deployment,
            o.durability,
            self.server_version,
            if o.durable {
                DURABLE_ARGS.join(" ")
            } else {
                "volatile: no persistence".to_owned()
            },
            std::thread::available_parallelism().map_or(0, usize::from),
            human(self.elapsed)
        )?;
        writeln!(
            f,
            "load average (1 min) during the run: first {:.2}, mean {:.2}, max {:.2}\n",
            self.load.first, self.load.mean, self.load.max
        )?;

        // Operations.
        let total = self.total();
        let kinds: Vec<&'static str> = total.errors.keys().copied().collect();
        let mut header = format!("{:<16} {:>10} {:>10}", "operation", "calls", "ok");
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
            let mut line = format!("{name:<16} {:>10} {:>10}", count(stats.calls), count(stats.ok));
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
        // The first error of each kind but the network's (connection, timeout), per operation:
        // those are what a fault is expected to cause; any other kind deserves a look.
        for (op, stats) in &self.ops {
            for (kind, message) in stats
                .first_errors
                .iter()
                .filter(|(kind, _)| !matches!(**kind, "connection" | "timeout"))
            {
                writeln!(f, "first `{kind}` error of {}: {message}", op.name())?;
            }
        }
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
        let kinds: Vec<String> = FaultKind::ALL
            .iter()
            .filter(|kind| self.faults_of(**kind) > 0)
            .map(|kind| format!("{} {}", self.faults_of(*kind), kind.name()))
            .collect();
        writeln!(
            f,
            "faults: {} ({}); {} successful calls before the first",
            self.faults.len(),
            kinds.join(", "),
            count(self.ok_calls_before_faults)
        )?;
        writeln!(
            f,
            "{:>3} {:>8} {:<22} {:>8} {:>12} {:>14} {:>12}",
            "#", "at", "kind", "outage", "recovery", "update recov.", "ok after"
        )?;
        let maybe = |value: Option<Duration>| value.map_or_else(|| "NEVER".to_owned(), human);
        for (i, fault) in self.faults.iter().enumerate() {
            writeln!(
                f,
                "{:>3} {:>8} {:<22} {:>8} {:>12} {:>14} {:>12}",
                i + 1,
                human(fault.at),
                fault.kind.name(),
                human(fault.outage),
                maybe(fault.recovery),
                maybe(fault.update_recovery),
                count(fault.ok_calls_after)
            )?;
        }
        for kind in FaultKind::ALL {
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

        // The accounting, per family.
        writeln!(
            f,
            "{:<10} {:>10} {:>9} {:>9} {:<10} {:>10} {:>12} {:>10} {:>6} {:>6}",
            "family",
            "ok",
            "errors",
            "longest",
            "writes of",
            "attempted",
            "acknowledged",
            "found",
            "lost",
            "excess"
        )?;
        for check in &self.families {
            let stats = self.family_ops(check.family);
            writeln!(
                f,
                "{:<10} {:>10} {:>9} {:>9} {:<10} {:>10} {:>12} {:>10} {:>6} {:>6}",
                check.family.name(),
                count(stats.ok),
                count(stats.errors.values().sum()),
                human(stats.longest_error),
                check.unit,
                count(check.attempted),
                count(check.acknowledged),
                count(check.found),
                count(check.lost),
                count(check.excess)
            )?;
            for example in &check.examples {
                writeln!(f, "  {example}")?;
            }
        }
        writeln!(
            f,
            "(`longest`: the longest call that failed; `lost`: acknowledged writes missing after the run, \
             exact for\n records, triggers and items, at least this many for increments and versions; \
             `excess`: found beyond every attempted write)\n"
        )?;

        // Counts: the counters outside their window (the families' table has the sums).
        let off: Vec<_> = self
            .counters
            .iter()
            .filter(|counter| counter.lost() > 0 || counter.excess() > 0)
            .collect();
        writeln!(
            f,
            "counters: {} ({} outside acknowledged <= value <= attempted)",
            self.counters.len(),
            off.len()
        )?;
        for counter in off {
            let verdict = if counter.lost() > 0 {
                format!("LOST {}", counter.lost())
            } else {
                format!("APPLIED TWICE (+{})", counter.excess())
            };
            writeln!(
                f,
                "  {:<30} attempted {:>10} acknowledged {:>10} value {:>10}  {verdict}",
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
        writeln!(
            f,
            "calls failed {} or more after the topology was back (a promotion, a restart): {}",
            human(super::super::RECOVERED_WITHIN),
            count(self.late_failure_count)
        )?;
        for call in &self.late_failures {
            writeln!(
                f,
                "  {} at {} failed after {}: {}",
                call.op.name(),
                human(call.at),
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
