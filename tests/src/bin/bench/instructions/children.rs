//! The parent side of `--instructions`: runs the counted children under callgrind, reads their
//! sections and profiles, and prints the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{CLUSTER_ENV, SECTIONS_ENV, log};
use crate::Res;
use crate::args::{Options, Workload};
use crate::engine::Side;
use crate::report::{human, load_average};

/// A row whose statehouse side runs more instructions than this many times raw's is marked.
const BUDGET: f64 = 1.3;

/// The budget of the config rows (workload 15: the update round trip and the delivery to a
/// watcher), issue 20's.
const CONFIG_BUDGET: f64 = 1.5;

/// The instruction budget of a row.
fn budget(row: &str) -> f64 {
    if row.starts_with("15. config") {
        CONFIG_BUDGET
    } else {
        BUDGET
    }
}

/// Ops and instructions (or nanoseconds) of one row and side, warm-up left out.
#[derive(Debug, Default, Clone, Copy)]
struct Total {
    ops: u64,
    cost: u64,
}

impl Total {
    fn per_op(&self) -> f64 {
        if self.ops == 0 {
            f64::NAN
        } else {
            self.cost as f64 / self.ops as f64
        }
    }
}

/// Per row: statehouse's total, raw's total.
type Rows = BTreeMap<(u32, String), [Total; 2]>;

/// `"12. tenants: …"` sorts by 12.
fn row_key(label: &str) -> (u32, String) {
    let number = label
        .split('.')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(u32::MAX);
    (number, label.to_owned())
}

fn slot(side: Side) -> usize {
    usize::from(side == Side::Raw)
}

/// `totals:` (or `summary:`) of a callgrind profile.
fn profile_total(path: &Path) -> Res<u64> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("totals:"))
        .or_else(|| text.lines().find_map(|line| line.strip_prefix("summary:")))
        .unwrap_or("0");
    Ok(line.trim().parse().unwrap_or(0))
}

/// The workloads counted, one child each (`redis-benchmark` has no client side to count).
const COUNTED: [Workload; 12] = [
    Workload::Seq,
    Workload::Conc,
    Workload::Mget,
    Workload::Update,
    Workload::Save,
    Workload::Status,
    Workload::List,
    Workload::Model,
    Workload::Subjects,
    Workload::Tenants,
    Workload::TriggersQueues,
    Workload::Config,
];

/// Rows whose statehouse work runs on tasks the library spawns itself (the watcher's delivery:
/// the feed's Pub/Sub connection, the config cache's task), which the polls of the client tasks
/// do not see. Their children run again without `--toggle-collect`, counting every instruction of
/// the process between the section's start and the next section's (both sides alike: raw's
/// counts its Pub/Sub driver too), and these rows take their counts from that run.
const WHOLE_PROCESS_ROWS: [&str; 1] = ["15. config: delivery"];

/// On a cluster every row is counted both ways: the client tasks alone, and (rows ending in this)
/// the whole process, which includes redis-rs' cluster driver task, where each request is routed
/// to its node's connection.
const WHOLE_ROW: &str = ", whole process";

fn whole_process(label: &str) -> bool {
    WHOLE_PROCESS_ROWS.iter().any(|row| label.starts_with(row)) || label.ends_with(WHOLE_ROW)
}

/// How a child counts: the client tasks' polls, or (for [`WHOLE_PROCESS_ROWS`]) everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Polls,
    Whole,
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Statehouse => "statehouse",
        Side::Raw => "raw",
    }
}

/// One counted child: what it runs, how it counts, and where (`cluster`: the addresses of the
/// parent's cluster, for `--cluster`).
#[derive(Clone, Copy)]
struct Child<'a> {
    options: Options,
    workload: Workload,
    side: Side,
    mode: Mode,
    cluster: Option<&'a str>,
}

/// Runs the counted child, once more if it fails (a contended update slowed down ~50 times by
/// callgrind can run out of attempts); adds its rows of that side to `rows`. Returns the lines of
/// `rows.txt` naming each row's profiles.
fn count_side(child: Child<'_>, dir: &Path, rows: &mut Rows) -> Res<String> {
    let Child {
        workload, side, mode, ..
    } = child;
    let dir = dir.join(workload.name());
    std::fs::create_dir_all(&dir)?;
    let mut failed = String::new();
    for _ in 0..2 {
        match count_child(child, &dir) {
            Ok(mut groups) => {
                if child.cluster.is_some() {
                    if mode == Mode::Whole {
                        for (label, ..) in groups.values_mut() {
                            label.push_str(WHOLE_ROW);
                        }
                    }
                } else {
                    groups.retain(|_, (label, ..)| whole_process(label) == (mode == Mode::Whole));
                }
                return Ok(add_groups(workload, side, mode, &dir, &groups, rows));
            }
            Err(error) => failed = error.to_string(),
        }
    }
    Err(failed.into())
}

/// A child's sections of one profile: row, warm-up, ops, instructions.
type Groups = BTreeMap<usize, (String, bool, u64, u64)>;

/// One counted child: runs it under callgrind, reads its sections and profiles.
fn count_child(child: Child<'_>, dir: &Path) -> Res<Groups> {
    let Child {
        options,
        workload,
        side,
        mode,
        cluster,
    } = child;
    let side_name = side_name(side);
    let name = match mode {
        Mode::Polls => side_name.to_owned(),
        Mode::Whole => format!("whole-{side_name}"),
    };
    // A failed attempt's profiles must not be read as this one's.
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
        if file.is_some_and(|f| f.starts_with(&format!("{name}."))) {
            std::fs::remove_file(path)?;
        }
    }
    let out = dir.join(format!("{name}.out"));
    let sections = dir.join(format!("{name}.sections"));
    let log_path = dir.join(format!("{name}.log"));
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .args(["--dump-instr=no", "--dump-before=*instructions_dump_marker*"])
        .args(match mode {
            Mode::Polls => &[
                "--collect-atstart=no",
                "--toggle-collect=*instructions_counted_poll*",
            ][..],
            Mode::Whole => &["--collect-atstart=yes"][..],
        })
        .arg(std::env::current_exe()?)
        .args(["--quick", "--fixed-size", "--current-thread", "--rounds", "1"])
        .args(["--side", side_name, "--only", workload.name()]);
    if options.bare {
        command.arg("--bare");
    }
    if let Some(addrs) = cluster {
        command.arg("--cluster").env(CLUSTER_ENV, addrs);
    }
    let log_file = std::fs::File::create(&log_path)?;
    let status = command
        .env(SECTIONS_ENV, &sections)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()
        .map_err(|e| format!("cannot run valgrind: {e}"))?;
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let error = log
            .lines()
            .rfind(|line| line.starts_with("bench: error"))
            .unwrap_or("");
        return Err(format!("{status}: {error} (see {})", log_path.display()).into());
    }
    let text =
        std::fs::read_to_string(&sections).map_err(|e| format!("reading {}: {e}", sections.display()))?;
    let mut groups = Groups::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.splitn(6, '\t').collect();
        let [part, section_side, warm, ops, _elapsed, label] = fields[..] else {
            return Err(format!("{}: a line of another form: {line:?}", sections.display()).into());
        };
        // A workload may run the other side's sections too (the config fetch runs both).
        if section_side != side_name {
            continue;
        }
        let part: usize = part.parse()?;
        let group = groups
            .entry(part)
            .or_insert_with(|| (label.to_owned(), warm == "1", 0, 0));
        group.2 += ops.parse::<u64>()?;
    }
    for (part, group) in &mut groups {
        group.3 = profile_total(&PathBuf::from(format!("{}.{part}", out.display())))?;
    }
    Ok(groups)
}

/// Adds a child's groups but the warm-ups to `rows`; returns the lines of `rows.txt`.
fn add_groups(
    workload: Workload,
    side: Side,
    mode: Mode,
    dir: &Path,
    groups: &Groups,
    rows: &mut Rows,
) -> String {
    let mut files: BTreeMap<(u32, String), Vec<String>> = BTreeMap::new();
    for (part, (label, warm, ops, cost)) in groups {
        if *warm {
            continue;
        }
        let total = &mut rows.entry(row_key(label)).or_default()[slot(side)];
        total.ops += ops;
        total.cost += cost;
        files.entry(row_key(label)).or_default().push(format!(
            "{}/{}{}.out.{part} ({ops} ops, {cost} Ir)",
            dir.file_name()
                .map_or(workload.name().into(), |d| d.to_string_lossy()),
            if mode == Mode::Whole { "whole-" } else { "" },
            side_name(side),
        ));
    }
    let mut listing = String::new();
    for ((_, label), files) in files {
        let _ = writeln!(listing, "{label} [{}]: {}", side_name(side), files.join(", "));
    }
    listing
}

fn ratio_text(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}×")
    } else {
        "n/a".to_owned()
    }
}

/// `bench --instructions`, after the usual run: counts both sides under callgrind and prints the
/// instructions per op of every row beside this run's wall-clock ratio. With `cluster` (the node
/// addresses of `--cluster`'s cluster, still running), the children count the cluster's rows on
/// it.
pub(crate) fn report(options: Options, cluster: Option<&str>) -> Res<()> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err("--instructions needs valgrind (callgrind) on PATH".into()),
    }
    let dir = std::env::temp_dir().join(format!("statehouse-bench-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!();
    println!(
        "counting instructions under callgrind (--quick --fixed-size --current-thread --rounds 1, one run \
         per workload and side{}; this takes minutes) ...",
        if cluster.is_some() {
            ", on the cluster above"
        } else {
            ""
        }
    );
    let wall = wall_rows();
    let mut rows = Rows::new();
    let mut listing = String::new();
    let mut failures = Vec::new();
    let workloads = match options.only {
        Some(only) => vec![only],
        None if cluster.is_some() => crate::cluster::ON_CLUSTER.to_vec(),
        None => COUNTED.to_vec(),
    };
    for workload in workloads {
        let modes: &[Mode] = if workload == Workload::Config || cluster.is_some() {
            &[Mode::Polls, Mode::Whole]
        } else {
            &[Mode::Polls]
        };
        for &mode in modes {
            for side in [Side::Statehouse, Side::Raw] {
                let child = Child {
                    options,
                    workload,
                    side,
                    mode,
                    cluster,
                };
                match count_side(child, &dir, &mut rows) {
                    Ok(text) => listing.push_str(&text),
                    Err(error) => failures.push(format!(
                        "{} {}{}: {error}",
                        workload.name(),
                        if mode == Mode::Whole { "whole-" } else { "" },
                        side_name(side)
                    )),
                }
            }
        }
    }
    std::fs::write(dir.join("rows.txt"), listing)?;
    println!();
    println!(
        "Client instructions per op (callgrind, the client tasks only; warm-up left out; the rows \
         marked † count the whole process, see WHOLE_PROCESS_ROWS):"
    );
    println!();
    println!(
        "| workload | statehouse Ir/op | raw Ir/op | instructions statehouse/raw | wall-clock ratio (ops/s) |"
    );
    println!("|---|--:|--:|--:|--:|");
    let mut over = Vec::new();
    for (key, [statehouse, raw]) in &rows {
        let ratio = statehouse.per_op() / raw.per_op();
        let wall_key = row_key(key.1.strip_suffix(WHOLE_ROW).unwrap_or(&key.1));
        let wall_ratio = wall
            .get(&wall_key)
            .map_or(f64::NAN, |[sh, raw]| raw.per_op() / sh.per_op());
        let over_budget = ratio > budget(&key.1);
        let mark = if over_budget { " **over**" } else { "" };
        if over_budget {
            over.push(key.1.clone());
        }
        println!(
            "| {}{} | {} | {} | {}{mark} | {} |",
            key.1,
            if whole_process(&key.1) { " †" } else { "" },
            human(statehouse.per_op()),
            human(raw.per_op()),
            ratio_text(ratio),
            ratio_text(wall_ratio),
        );
    }
    println!();
    println!(
        "budget: statehouse ≤ {BUDGET}× raw's instructions per op (the config rows ≤ {CONFIG_BUDGET}×); \
         over: {}",
        if over.is_empty() {
            "none".to_owned()
        } else {
            over.join("; ")
        }
    );
    println!(
        "wall-clock ratio: statehouse/raw ops per second over the same sections of the run above (not \
         under valgrind)"
    );
    println!(
        "profiles: {} (rows.txt names each row's callgrind files; `callgrind_annotate FILE`)",
        dir.display()
    );
    println!("load average at the end: {}", load_average());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("counted runs that failed twice: {}", failures.join("; ")).into())
    }
}

/// The wall-clock totals of this process's sections (the run just made).
fn wall_rows() -> Rows {
    let mut rows = Rows::new();
    for r in log().sections.iter().filter(|r| !r.warm) {
        let total = &mut rows.entry(row_key(&r.label)).or_default()[slot(r.side)];
        total.ops += r.ops;
        total.cost += u64::try_from(r.elapsed.as_nanos()).unwrap_or(u64::MAX);
    }
    rows
}
