//! The report: the tables of rates and ratios against the targets, CPU time per op, spreads, and
//! the header of a run.

use std::fmt::Write as _;

use statehouse_tests::harness::RedisServer;

use crate::Res;
use crate::args::Options;
use crate::documents::{CONCURRENT_TASKS, MGET_KEYS, UPDATE_TASKS};
use crate::engine::{Bench, Sample};
use crate::redis_benchmark::{RbSample, RedisBenchmark};
use crate::tasks::{LIST_PAGE, LIST_TASKS, TASK_MAX_LOG, TASK_WRITERS};

/// The samples of one workload, per side, in round order.
#[derive(Debug, Default)]
pub(crate) struct Pair {
    pub(crate) statehouse: Vec<Sample>,
    pub(crate) raw: Vec<Sample>,
}

#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) seq: Pair,
    pub(crate) conc: Pair,
    pub(crate) mget: Pair,
    pub(crate) update: Pair,
    pub(crate) save: Pair,
    pub(crate) status: Pair,
    pub(crate) list: Pair,
    pub(crate) model: Pair,
    pub(crate) rb_c1: Vec<RbSample>,
    pub(crate) rb_c64: Vec<RbSample>,
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

pub(crate) fn rates(samples: &[Sample]) -> Vec<f64> {
    samples.iter().map(Sample::rate).collect()
}

/// `12345.6` as `12,346`; `n/a` for NaN.
pub(crate) fn human(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn spread(values: &[f64]) -> String {
    if values.is_empty() {
        return "n/a".to_owned();
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{}–{}", human(min), human(max))
}

/// A table row: statehouse's rates against another's, round by round.
struct Row {
    name: String,
    statehouse: Vec<f64>,
    other: Vec<f64>,
    /// The minimum ratio, `None` for information only.
    target: Option<f64>,
    target_text: &'static str,
}

impl Row {
    /// The median of the per-round ratios: each round's two runs are next to each other in time,
    /// so this ratio is less sensitive to drift than the ratio of the medians.
    fn ratio(&self) -> f64 {
        median(
            self.statehouse
                .iter()
                .zip(&self.other)
                .map(|(sh, other)| sh / other)
                .collect(),
        )
    }

    fn met(&self) -> Option<bool> {
        let ratio = self.ratio();
        match self.target {
            Some(target) if ratio.is_finite() => Some(ratio >= target),
            _ => None,
        }
    }

    fn print(&self) {
        let met = match self.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let ratio = self.ratio();
        let ratio = if ratio.is_finite() {
            format!("{ratio:.3}×")
        } else {
            "n/a".to_owned()
        };
        println!(
            "| {} | {} | {} | {ratio} | {} | {met} |",
            self.name,
            human(median(self.statehouse.clone())),
            human(median(self.other.clone())),
            self.target_text,
        );
    }
}

impl Results {
    /// The last round's rates, for the progress line.
    pub(crate) fn last_round(&self) -> String {
        let mut line = String::new();
        for (name, pair) in [
            ("seq", &self.seq),
            ("conc", &self.conc),
            ("mget", &self.mget),
            ("update", &self.update),
            ("save", &self.save),
            ("status", &self.status),
            ("list", &self.list),
            ("model", &self.model),
        ] {
            let show = |samples: &[Sample]| samples.last().map_or("-".to_owned(), |s| human(s.rate()));
            if !pair.statehouse.is_empty() || !pair.raw.is_empty() {
                let _ = write!(line, " {name} {}/{} ", show(&pair.statehouse), show(&pair.raw));
            }
        }
        if let (Some(c1), Some(c64)) = (self.rb_c1.last(), self.rb_c64.last()) {
            let _ = write!(line, " rb {}/{}", human(c1.combined()), human(c64.combined()));
        }
        line
    }

    /// CPU time per op: unlike ops/s this hardly depends on what else the machine is doing, so it
    /// shows the library's own cost even on a busy machine.
    fn report_cpu(&self) {
        let med = |samples: &[Sample], f: fn(&Sample) -> Option<f64>| {
            median(samples.iter().filter_map(f).collect())
        };
        let rows: Vec<_> = [
            ("1. set+get, 1 task", &self.seq, "redis-rs"),
            ("2. set+get, 64 tasks", &self.conc, "redis-rs"),
            ("3. mget, per key", &self.mget, "redis-rs"),
            ("4. update, per increment", &self.update, "naive loop"),
            ("7. task save", &self.save, "redis-rs"),
            ("8. task set_status", &self.status, "redis-rs"),
            ("9. task list, per page", &self.list, "redis-rs"),
            ("10. synced modify, 1 task", &self.model, "redis-rs"),
        ]
        .into_iter()
        .filter(|(_, pair, _)| !pair.statehouse.is_empty() || !pair.raw.is_empty())
        // A row run in turns (both sides in one task) has no CPU time per side.
        .filter(|(_, pair, _)| {
            pair.statehouse
                .iter()
                .chain(&pair.raw)
                .all(|s| s.client_cpu.is_some())
        })
        .collect();
        if rows.is_empty() {
            return;
        }
        println!();
        println!(
            "CPU time per op in µs (medians; client = this process, all threads; the rows run in turns, \
             both sides in one task, have none):"
        );
        println!();
        println!("| workload | statehouse client | raw client | difference | server, statehouse / raw |");
        println!("|---|--:|--:|--:|--:|");
        for (name, pair, raw) in rows {
            let sh = med(&pair.statehouse, Sample::client_us);
            let other = med(&pair.raw, Sample::client_us);
            let diff = sh - other;
            let diff = if diff.is_finite() {
                format!("{diff:+.2} ({:+.0} %)", diff / other * 100.0)
            } else {
                "n/a".to_owned()
            };
            println!(
                "| {name} (raw: {raw}) | {sh:.2} | {other:.2} | {diff} | {:.2} / {:.2} |",
                med(&pair.statehouse, Sample::server_us),
                med(&pair.raw, Sample::server_us),
            );
        }
    }

    pub(crate) fn report(&self, options: Options, rb: &RedisBenchmark) {
        let rb_c1: Vec<f64> = self.rb_c1.iter().map(RbSample::combined).collect();
        let rb_c64: Vec<f64> = self.rb_c64.iter().map(RbSample::combined).collect();
        let rows = [
            Row {
                name: "1. set+get, 1 task (raw: redis-rs)".to_owned(),
                statehouse: rates(&self.seq.statehouse),
                other: rates(&self.seq.raw),
                target: Some(0.95),
                target_text: "≥ 0.95× raw",
            },
            Row {
                name: format!("2. set+get, {CONCURRENT_TASKS} tasks (raw: redis-rs)"),
                statehouse: rates(&self.conc.statehouse),
                other: rates(&self.conc.raw),
                target: Some(0.95),
                target_text: "≥ 0.95× raw",
            },
            Row {
                name: format!("3. mget {MGET_KEYS} keys, keys/s (raw: redis-rs)"),
                statehouse: rates(&self.mget.statehouse),
                other: rates(&self.mget.raw),
                target: Some(0.95),
                target_text: "≥ 0.95× raw",
            },
            Row {
                name: format!(
                    "4. update, {UPDATE_TASKS}×{} on 1 key, incr/s (raw: naive WATCH loop)",
                    options.increments
                ),
                statehouse: rates(&self.update.statehouse),
                other: rates(&self.update.raw),
                target: Some(1.5),
                target_text: "≥ 1.5× naive, exact count",
            },
            Row {
                name: format!("5. set+get, {CONCURRENT_TASKS} tasks (raw: redis-benchmark -c 64)"),
                statehouse: rates(&self.conc.statehouse),
                other: rb_c64.clone(),
                target: Some(0.8),
                target_text: "≥ 0.8× redis-benchmark",
            },
            Row {
                name: "6. set+get, 1 task (raw: redis-benchmark -c 1)".to_owned(),
                statehouse: rates(&self.seq.statehouse),
                other: rb_c1.clone(),
                target: None,
                target_text: "(information)",
            },
            Row {
                name: format!("7. task save, {TASK_WRITERS} writers (raw: redis-rs)"),
                statehouse: rates(&self.save.statehouse),
                other: rates(&self.save.raw),
                target: Some(0.9),
                target_text: "≥ 0.9× raw",
            },
            Row {
                name: format!("8. task set_status + log, {TASK_WRITERS} writers (raw: redis-rs)"),
                statehouse: rates(&self.status.statehouse),
                other: rates(&self.status.raw),
                target: Some(0.9),
                target_text: "≥ 0.9× raw",
            },
            Row {
                name: format!(
                    "9. task list, {LIST_PAGE}-item pages of {LIST_TASKS}, pages/s (raw: redis-rs)"
                ),
                statehouse: rates(&self.list.statehouse),
                other: rates(&self.list.raw),
                target: Some(0.9),
                target_text: "≥ 0.9× raw",
            },
            Row {
                name: "10. synced-model modify, 1 task, modifies/s (raw: redis-rs WATCH/HGETALL/MULTI/HSET/EXEC)"
                    .to_owned(),
                statehouse: rates(&self.model.statehouse),
                other: rates(&self.model.raw),
                target: Some(0.9),
                target_text: "≥ 0.9× raw",
            },
        ];
        println!("| workload | statehouse ops/s | raw ops/s | ratio | target | met? |");
        println!("|---|--:|--:|--:|---|---|");
        for row in &rows {
            row.print();
        }
        println!();
        println!(
            "ops/s: medians of {} rounds; ratio: median of the per-round ratios; a set+get pair counts \
             as 2 ops.",
            options.rounds
        );
        let verdicts: Vec<String> = rows
            .iter()
            .filter_map(|row| {
                let number = row.name.split('.').next().unwrap_or("?");
                row.met()
                    .map(|met| format!("{number} {}", if met { "met" } else { "MISSED" }))
            })
            .collect();
        if !verdicts.is_empty() {
            println!("targets: {}", verdicts.join(", "));
        }

        self.report_cpu();

        println!();
        println!("spread over rounds (min–max ops/s):");
        for (name, pair) in [
            ("set+get 1 task  ", &self.seq),
            ("set+get 64 tasks", &self.conc),
            ("mget keys/s     ", &self.mget),
            ("update incr/s   ", &self.update),
            ("task saves/s    ", &self.save),
            ("task status/s   ", &self.status),
            ("task pages/s    ", &self.list),
            ("synced modify/s ", &self.model),
        ] {
            println!(
                "  {name}  statehouse {:>17}   raw {:>17}",
                spread(&rates(&pair.statehouse)),
                spread(&rates(&pair.raw))
            );
        }

        if !self.update.statehouse.is_empty() || !self.update.raw.is_empty() {
            let conflicts = |samples: &[Sample]| {
                let total: u64 = samples.iter().map(|s| s.conflicts).sum();
                let ops: u64 = samples.iter().map(|s| s.ops).sum();
                format!("{total} ({:.2} per increment)", total as f64 / ops.max(1) as f64)
            };
            println!();
            println!(
                "contended update: the final count was exact in every round ({UPDATE_TASKS} tasks × {} \
                 increments = {}); aborted EXECs over all rounds: statehouse {}, naive {}",
                options.increments,
                UPDATE_TASKS as u64 * options.increments,
                conflicts(&self.update.statehouse),
                conflicts(&self.update.raw),
            );
        }
        let raw_aborts = |pair: &Pair| pair.raw.iter().map(|s| s.conflicts).sum::<u64>();
        if !self.save.raw.is_empty() || !self.status.raw.is_empty() {
            println!(
                "task writes (uncontended): aborted EXECs of the raw side over all rounds: save {}, \
                 set_status {}",
                raw_aborts(&self.save),
                raw_aborts(&self.status),
            );
        }
        match rb {
            RedisBenchmark::Available { .. } if !self.rb_c1.is_empty() => {
                let set = |v: &[RbSample]| human(median(v.iter().map(|s| s.set).collect()));
                let get = |v: &[RbSample]| human(median(v.iter().map(|s| s.get).collect()));
                println!(
                    "redis-benchmark -d 1024, median rps: -c 1 SET {} GET {} (set+get {}); -c 64 SET {} \
                     GET {} (set+get {}); set+get: each round's harmonic mean of the two, median",
                    set(&self.rb_c1),
                    get(&self.rb_c1),
                    human(median(rb_c1)),
                    set(&self.rb_c64),
                    get(&self.rb_c64),
                    human(median(rb_c64)),
                );
            }
            RedisBenchmark::Available { .. } => {}
            RedisBenchmark::Missing(why) => println!("redis-benchmark: skipped ({why})"),
        }
    }
}

/// `/proc/loadavg`'s first three fields, or `?`.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

pub(crate) async fn print_header(bench: &Bench, server: &RedisServer, options: Options) -> Res<()> {
    let mut con = bench.raw.clone();
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut con).await?;
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let doc_len = serde_json::to_vec(&bench.doc)?.len();
    println!(
        "statehouse benchmark{}",
        if options.quick { " (--quick)" } else { "" }
    );
    if options.bare {
        println!("--bare: the statehouse column is the Redis adapter without the tracing layer");
    }
    let runtime = if options.current_thread {
        "current-thread runtime".to_owned()
    } else {
        format!("multi-thread runtime, {cpus} workers")
    };
    println!(
        "redis-server {version} at {} (pid {}, started for this run); {cpus} CPUs; tokio {runtime}",
        server.url(),
        server.pid()
    );
    println!(
        "document: {doc_len} bytes of JSON; {} rounds of ~{:?} per side and workload; a set+get pair \
         counts as 2 ops",
        options.rounds, options.round_time
    );
    println!(
        "task record: {} bytes of JSON (log capped at {TASK_MAX_LOG} lines); {TASK_WRITERS} writers for \
         save and set_status; list pages of {LIST_PAGE} from a service of {LIST_TASKS} tasks",
        serde_json::to_vec(&bench.task_record)?.len()
    );
    println!(
        "load average at the start: {} (other processes skew the figures)",
        load_average()
    );
    Ok(())
}
