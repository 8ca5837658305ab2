//! [`Report::to_json`]: the summary for machines (durations in milliseconds).

use std::time::Duration;

use serde_json::{Value, json};

use super::{OpStats, Report, median_max};

impl Report {
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
                "topology": self.options.topology.name(),
                "durable": self.options.durable,
                "durability_replicas": self.options.durability.wanted(),
                "faults": self.options.faults.iter().map(|kind| kind.name()).collect::<Vec<_>>(),
            },
            "server": self.server_version,
            "server_args": self.server_args(),
            "deployment": self.deployment,
            "load_average": {"first": self.load.first, "mean": self.load.mean, "max": self.load.max},
            "cpus": std::thread::available_parallelism().map_or(0, usize::from),
            "elapsed_ms": ms(self.elapsed),
            "ops": ops,
            "families": self.families.iter().map(|check| {
                let stats = self.family_ops(check.family);
                json!({
                    "family": check.family.name(),
                    "calls": stats.calls,
                    "ok": stats.ok,
                    "errors": stats.errors.values().sum::<u64>(),
                    "longest_error_ms": ms(stats.longest_error),
                    "unit": check.unit,
                    "attempted": check.attempted,
                    "acknowledged": check.acknowledged,
                    "found": check.found,
                    "lost": check.lost,
                    "excess": check.excess,
                    "examples": check.examples,
                })
            }).collect::<Vec<_>>(),
            "lost": self.lost(),
            "total": stats_json(&self.total()),
            "longest_call_ms": ms(self.total().longest),
            "longest_wait_ms": ms(self.total().longest_wait),
            "slow_calls": self.slow_call_count,
            "late_failures": self.late_failure_count,
            "faults": self.faults.iter().map(|fault| json!({
                "kind": fault.kind.name(),
                "at_ms": ms(fault.at),
                "outage_ms": ms(fault.outage),
                "failover": fault.failover,
                "recovery_ms": fault.recovery.map(ms),
                "update_recovery_ms": fault.update_recovery.map(ms),
                "ok_calls_after": fault.ok_calls_after,
            })).collect::<Vec<_>>(),
            "recovery_ms": summary_json(&recoveries),
            "update_recovery_ms": summary_json(&update_recoveries),
            "ok_calls_before_faults": self.ok_calls_before_faults,
            "counters": self.counters.iter().map(|c| json!({
                "family": c.family.name(),
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
        "first_errors": stats.first_errors,
        "cancelled": stats.cancelled,
        "hung": stats.hung,
        "p50_ms": stats.percentile(50.0).map(ms),
        "p99_ms": stats.percentile(99.0).map(ms),
        "longest_ms": ms(stats.longest),
        "longest_ok_ms": ms(stats.longest_ok),
        "longest_wait_ms": ms(stats.longest_wait),
        "longest_error_ms": ms(stats.longest_error),
    })
}

/// `{count, median, max}` of some durations, in ms.
fn summary_json(values: &[Duration]) -> Value {
    let (median, max) = median_max(values);
    json!({"count": values.len(), "median": median.map(ms), "max": max.map(ms)})
}
