//! `--instructions`: the client instructions per operation of both sides of every workload, counted
//! by callgrind, beside the wall-clock ratio of the same rows.
//!
//! Instruction counts do not depend on what else the machine does, so they are the budget that a
//! busy 2-core box can check (issue 20). How it works:
//!
//! - **Sections.** Every run of a workload's client work is a section with a row label, a side and
//!   its op count. [`Bench::timed`](crate::engine::Bench::timed) opens one around its tasks (the row
//!   is named after the function that called it, see [`row_of`]); the few workloads that run
//!   their loop on the main task open one with [`start`] and [`Section::end`]. The first section
//!   of each row and side is a warm-up and is left out.
//! - **What counts.** Only the client tasks: while a section is open, each poll of a task spawned
//!   by `timed` (or of the main task, for a section opened by [`start`]) runs inside
//!   [`instructions_counted_poll`], the function callgrind's `--toggle-collect` names. The
//!   connection's driver task, the runtime's I/O and timers, the library's background tasks
//!   (the config cache, the trigger listeners) and `redis-server` are not counted.
//! - **Children.** `bench --instructions` first runs the benchmark as usual (the wall-clock
//!   ratios, from the same sections), then re-executes itself once per workload and side under
//!   `valgrind --tool=callgrind`, with `--quick --fixed-size --current-thread --rounds 1 --only W
//!   --side S` and [`SECTIONS_ENV`] naming the file where the child writes its sections. The child calls
//!   [`instructions_dump_marker`] whenever the row, side or warm-up state changes; callgrind's
//!   `--dump-before` writes one profile per such group, so profile `N` holds exactly the
//!   instructions of the sections of group `N`.
//!
//! `perf stat` is no alternative here: this VM has no hardware counters (`instructions:u` is
//! `<not supported>`).

use std::any::{TypeId, type_name};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::Res;
use crate::args::{Options, Workload};
use crate::engine::Side;
use crate::report::{human, load_average};

/// Set in a counted child: the file it writes its sections to.
pub(crate) const SECTIONS_ENV: &str = "STATEHOUSE_BENCH_SECTIONS";

/// A row whose statehouse side runs more instructions than this many times raw's is marked.
const BUDGET: f64 = 1.3;

/// This process is a counted child (under callgrind).
static COUNTING: AtomicBool = AtomicBool::new(false);
/// A section of the main task is open: its polls count.
static OPEN_MAIN: AtomicBool = AtomicBool::new(false);
/// A section of spawned tasks is open: the polls of the tasks `timed` spawned count.
static OPEN_TASKS: AtomicBool = AtomicBool::new(false);
/// The side the workloads run now (set by [`Options::sides`] as it yields each side).
static SIDE: AtomicU8 = AtomicU8::new(0);

static LOG: Mutex<Log> = Mutex::new(Log {
    sections: Vec::new(),
    seen: BTreeSet::new(),
    sites: Vec::new(),
    group: None,
    dumps: 0,
});

/// Every section of this run, and what the child needs to number its profiles.
struct Log {
    sections: Vec<Record>,
    /// The (row, side) pairs that had a section: a first one is a warm-up.
    seen: BTreeSet<(String, bool)>,
    /// The futures `timed` ran, by type, with their site (for [`row_of`]'s ordinal).
    sites: Vec<(TypeId, String)>,
    /// The (row, side, warm-up) of the sections since the last profile boundary.
    group: Option<(String, Side, bool)>,
    /// Profile boundaries so far.
    dumps: usize,
}

#[derive(Debug, Clone)]
struct Record {
    label: String,
    side: Side,
    warm: bool,
    /// The callgrind profile (`part`) holding this section's instructions.
    part: usize,
    ops: u64,
    elapsed: Duration,
}

fn log() -> MutexGuard<'static, Log> {
    LOG.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads [`SECTIONS_ENV`]: whether this process is a counted child.
pub(crate) fn init() -> bool {
    let counting = std::env::var_os(SECTIONS_ENV).is_some();
    COUNTING.store(counting, Ordering::Relaxed);
    counting
}

pub(crate) fn counting() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

pub(crate) fn set_side(side: Side) {
    SIDE.store(u8::from(side == Side::Raw), Ordering::Relaxed);
}

fn current_side() -> Side {
    if SIDE.load(Ordering::Relaxed) == 0 {
        Side::Statehouse
    } else {
        Side::Raw
    }
}

/// Where callgrind's `--dump-before` cuts a profile. Not inlined, so that callgrind sees each call.
#[inline(never)]
fn instructions_dump_marker(part: usize) {
    std::hint::black_box(part);
}

/// The function callgrind's `--toggle-collect` names: what runs inside it is counted.
#[inline(never)]
fn instructions_counted_poll(poll: &mut dyn FnMut()) {
    poll();
}

/// An open section; [`Section::end`] closes it.
#[must_use = "a section counts until it is ended"]
pub(crate) struct Section {
    index: usize,
    start: Instant,
    main: bool,
}

/// Opens a section, starting a new profile if its row, side or warm-up state differs from the
/// previous section's.
fn open(label: String, side: Side, main: bool) -> Section {
    let mut log = log();
    let warm = log.seen.insert((label.clone(), side == Side::Raw));
    let group = (label.clone(), side, warm);
    if log.group.as_ref() != Some(&group) {
        log.dumps += 1;
        instructions_dump_marker(log.dumps);
        log.group = Some(group);
    }
    // Profile `dumps` ends at the boundary just passed; this section's is the next one.
    let part = log.dumps + 1;
    log.sections.push(Record {
        label,
        side,
        warm,
        part,
        ops: 0,
        elapsed: Duration::ZERO,
    });
    let index = log.sections.len() - 1;
    drop(log);
    if main {
        OPEN_MAIN.store(true, Ordering::Relaxed);
    } else {
        OPEN_TASKS.store(true, Ordering::Relaxed);
    }
    Section {
        index,
        start: Instant::now(),
        main,
    }
}

/// Opens a section of work the main task does itself (a workload's loop outside
/// [`Bench::timed`](crate::engine::Bench::timed)): `row` as the report names it (`"12. tenants:
/// set_field"`), `side` the side it runs. In a counted child this yields once, so that counting
/// starts with the next poll.
pub(crate) async fn start(row: &str, side: Side) -> Section {
    let section = open(row.to_owned(), side, true);
    if counting() {
        tokio::task::yield_now().await;
    }
    section
}

/// Opens the section of the tasks [`Bench::timed`](crate::engine::Bench::timed) is about to spawn
/// with futures of type `Fut`: its row comes from the function that built them, its side from the
/// side the workloads run now.
pub(crate) fn start_tasks<Fut: 'static>(tasks: usize) -> Section {
    let site = site_of(type_name::<Fut>());
    let ordinal = {
        let mut log = log();
        let id = TypeId::of::<Fut>();
        if !log.sites.iter().any(|(known, _)| *known == id) {
            log.sites.push((id, site.clone()));
        }
        log.sites
            .iter()
            .filter(|(_, known)| *known == site)
            .position(|(known, _)| *known == id)
            .unwrap_or(0)
    };
    open(row_of(&site, ordinal, tasks), current_side(), false)
}

impl Section {
    /// Closes the section of the main task after `ops` operations; in a counted child this
    /// yields once, so that nothing after it counts.
    pub(crate) async fn end(self, ops: u64) {
        self.close(ops);
        if counting() && self.main {
            tokio::task::yield_now().await;
        }
    }

    /// Closes the section; returns its index for [`set_ops`].
    pub(crate) fn close(&self, ops: u64) -> usize {
        if self.main {
            OPEN_MAIN.store(false, Ordering::Relaxed);
        } else {
            OPEN_TASKS.store(false, Ordering::Relaxed);
        }
        let elapsed = self.start.elapsed();
        if let Some(record) = log().sections.get_mut(self.index) {
            record.ops = ops;
            record.elapsed = elapsed;
        }
        self.index
    }
}

/// Corrects the op count of a closed section (a `timed` section counts what its tasks returned
/// until its caller says what an op is).
pub(crate) fn set_ops(index: usize, ops: u64) {
    if let Some(record) = log().sections.get_mut(index) {
        record.ops = ops;
    }
}

/// A future whose polls count while a section of its kind is open (only in a counted child).
pub(crate) struct Counted<F> {
    inner: Pin<Box<F>>,
    main: bool,
}

/// The main task's future, counted in the sections opened by [`start`].
pub(crate) fn main_task<F: Future>(future: F) -> Counted<F> {
    Counted {
        inner: Box::pin(future),
        main: true,
    }
}

/// A task `timed` spawns, counted in its section.
pub(crate) fn task<F: Future>(future: F) -> Counted<F> {
    Counted {
        inner: Box::pin(future),
        main: false,
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let open = if this.main { &OPEN_MAIN } else { &OPEN_TASKS };
        if !open.load(Ordering::Relaxed) {
            return this.inner.as_mut().poll(cx);
        }
        let mut out = Poll::Pending;
        let inner = &mut this.inner;
        instructions_counted_poll(&mut || out = inner.as_mut().poll(cx));
        out
    }
}

/// `bench::documents::<impl bench::engine::Bench>::set_get::{{closure}}::{{closure}}` as
/// `documents::set_get`: the module and the function that built a `timed` future.
fn site_of(type_name: &str) -> String {
    let path = type_name.split("::{{closure}}").next().unwrap_or(type_name);
    let path = path.strip_prefix("bench::").unwrap_or(path);
    let module = path.split("::").next().unwrap_or(path);
    let function = path.rsplit("::").next().unwrap_or(path);
    format!("{module}::{function}")
}

/// The report's row for the `ordinal`-th future type built in `site`, run by `tasks` tasks. A
/// site not named here (a workload added since) is shown as it is.
fn row_of(site: &str, ordinal: usize, tasks: usize) -> String {
    let row = match (site, ordinal) {
        ("documents::set_get", _) if tasks == 1 => "1. documents: set+get, 1 task (op = command)",
        ("documents::set_get", _) => "2. documents: set+get, 64 tasks (op = command)",
        ("documents::mget", _) => "3. documents: mget of 1000 (op = key)",
        ("documents::update", _) => "4. documents: update, 16 tasks on 1 key (raw: naive loop)",
        ("tasks::task_save", _) => "7. tasks: save, 16 writers",
        ("tasks::task_status", _) => "8. tasks: set_status + log, 16 writers",
        ("tasks::task_list", _) => "9. tasks: list, 50-item page",
        ("synced::model", _) => "10. synced: modify",
        ("subjects::subject_stores", _) => "11. subjects: store() of 20 properties",
        ("subjects::subjects_bench", _) => "11. subjects: set_with, 16 tasks (raw: naive loop)",
        ("tenants::run", _) => "12. tenants: increment, 16 tasks",
        ("triggers_queues::triggers_queues_bench", 0) => "13. triggers: claim+ack, 4 listeners",
        ("triggers_queues::triggers_queues_bench", 1) => "14. queues: claim+ack, 4 consumers",
        _ => return format!("{site} #{ordinal}, {tasks} tasks"),
    };
    row.to_owned()
}

/// In a counted child: closes the last profile and writes the sections for the parent.
pub(crate) fn finish() -> Res<()> {
    let Some(path) = std::env::var_os(SECTIONS_ENV) else {
        return Ok(());
    };
    let mut log = log();
    log.dumps += 1;
    instructions_dump_marker(log.dumps);
    let mut text = String::new();
    for r in &log.sections {
        let side = match r.side {
            Side::Statehouse => "statehouse",
            Side::Raw => "raw",
        };
        let _ = writeln!(
            text,
            "{}\t{side}\t{}\t{}\t{}\t{}",
            r.part,
            u8::from(r.warm),
            r.ops,
            r.elapsed.as_nanos(),
            r.label
        );
    }
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", PathBuf::from(path).display()))?;
    Ok(())
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

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Statehouse => "statehouse",
        Side::Raw => "raw",
    }
}

/// Runs the counted child of `workload` and `side`, once more if it fails (a contended update
/// slowed down ~50 times by callgrind can run out of attempts); adds its rows of that side to
/// `rows`. Returns the lines of `rows.txt` naming each row's profiles.
fn count_side(options: Options, workload: Workload, side: Side, dir: &Path, rows: &mut Rows) -> Res<String> {
    let dir = dir.join(workload.name());
    std::fs::create_dir_all(&dir)?;
    let mut failed = String::new();
    for _ in 0..2 {
        match count_child(options, workload, side, &dir) {
            Ok(groups) => return Ok(add_groups(workload, side, &dir, &groups, rows)),
            Err(error) => failed = error.to_string(),
        }
    }
    Err(failed.into())
}

/// A child's sections of one profile: row, warm-up, ops, instructions.
type Groups = BTreeMap<usize, (String, bool, u64, u64)>;

/// One counted child: runs it under callgrind, reads its sections and profiles.
fn count_child(options: Options, workload: Workload, side: Side, dir: &Path) -> Res<Groups> {
    let name = side_name(side);
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
        .args([
            "--dump-instr=no",
            "--collect-atstart=no",
            "--toggle-collect=*instructions_counted_poll*",
            "--dump-before=*instructions_dump_marker*",
        ])
        .arg(std::env::current_exe()?)
        .args(["--quick", "--fixed-size", "--current-thread", "--rounds", "1"])
        .args(["--side", name, "--only", workload.name()]);
    if options.bare {
        command.arg("--bare");
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
        if section_side != name {
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
fn add_groups(workload: Workload, side: Side, dir: &Path, groups: &Groups, rows: &mut Rows) -> String {
    let mut files: BTreeMap<(u32, String), Vec<String>> = BTreeMap::new();
    for (part, (label, warm, ops, cost)) in groups {
        if *warm {
            continue;
        }
        let total = &mut rows.entry(row_key(label)).or_default()[slot(side)];
        total.ops += ops;
        total.cost += cost;
        files.entry(row_key(label)).or_default().push(format!(
            "{}/{}.out.{part} ({ops} ops, {cost} Ir)",
            dir.file_name()
                .map_or(workload.name().into(), |d| d.to_string_lossy()),
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
/// instructions per op of every row beside this run's wall-clock ratio.
pub(crate) fn report(options: Options) -> Res<()> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err("--instructions needs valgrind (callgrind) on PATH".into()),
    }
    let dir = std::env::temp_dir().join(format!("statehouse-bench-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!();
    println!(
        "counting instructions under callgrind (--quick --fixed-size --current-thread --rounds 1, one run \
         per workload and side; this takes minutes) ..."
    );
    let wall = wall_rows();
    let mut rows = Rows::new();
    let mut listing = String::new();
    let mut failures = Vec::new();
    let workloads = match options.only {
        Some(only) => vec![only],
        None => COUNTED.to_vec(),
    };
    for workload in workloads {
        for side in [Side::Statehouse, Side::Raw] {
            match count_side(options, workload, side, &dir, &mut rows) {
                Ok(text) => listing.push_str(&text),
                Err(error) => failures.push(format!("{} {}: {error}", workload.name(), side_name(side))),
            }
        }
    }
    std::fs::write(dir.join("rows.txt"), listing)?;
    println!();
    println!("Client instructions per op (callgrind, the client tasks only; warm-up left out):");
    println!();
    println!(
        "| workload | statehouse Ir/op | raw Ir/op | instructions statehouse/raw | wall-clock ratio (ops/s) |"
    );
    println!("|---|--:|--:|--:|--:|");
    let mut over = Vec::new();
    for (key, [statehouse, raw]) in &rows {
        let ratio = statehouse.per_op() / raw.per_op();
        let wall_ratio = wall
            .get(key)
            .map_or(f64::NAN, |[sh, raw]| raw.per_op() / sh.per_op());
        let mark = if ratio > BUDGET { " **over**" } else { "" };
        if ratio > BUDGET {
            over.push(key.1.clone());
        }
        println!(
            "| {} | {} | {} | {}{mark} | {} |",
            key.1,
            human(statehouse.per_op()),
            human(raw.per_op()),
            ratio_text(ratio),
            ratio_text(wall_ratio),
        );
    }
    println!();
    println!(
        "budget: statehouse ≤ {BUDGET}× raw's instructions per op; over: {}",
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
