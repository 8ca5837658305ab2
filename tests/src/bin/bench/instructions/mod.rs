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
//! - **On a cluster.** `bench --cluster --instructions` counts the cluster's rows: the parent keeps
//!   the cluster it ran on and passes its nodes' addresses to each child in [`CLUSTER_ENV`]; the
//!   child empties it (`FLUSHALL` on every node, as a fresh cluster) and runs its one workload and
//!   side there, and nowhere else. Sections run on a cluster carry ` (cluster)` in their row, so
//!   the parent's wall-clock ratio of a cluster row is the cluster's, not the single server's.
//!
//! `perf stat` is no alternative here: this VM has no hardware counters (`instructions:u` is
//! `<not supported>`).

use std::any::{TypeId, type_name};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::Res;
use crate::engine::Side;

mod children;

pub(crate) use children::report;

/// Set in a counted child: the file it writes its sections to.
pub(crate) const SECTIONS_ENV: &str = "STATEHOUSE_BENCH_SECTIONS";
/// Set in a counted child of `--cluster --instructions`: the addresses (`host:port,host:port,…`)
/// of the parent's cluster, which the child runs its workload on instead of starting one.
pub(crate) const CLUSTER_ENV: &str = "STATEHOUSE_BENCH_CLUSTER";

/// The suffix of the rows of sections run on a cluster.
const CLUSTER_ROW: &str = " (cluster)";

/// This process is a counted child (under callgrind).
static COUNTING: AtomicBool = AtomicBool::new(false);
/// A section of the main task is open: its polls count.
static OPEN_MAIN: AtomicBool = AtomicBool::new(false);
/// A section of spawned tasks is open: the polls of the tasks `timed` spawned count.
static OPEN_TASKS: AtomicBool = AtomicBool::new(false);
/// The side the workloads run now (set by `Options::sides` as it yields each side).
static SIDE: AtomicU8 = AtomicU8::new(0);
/// The workloads run on a cluster now (`--cluster`): their rows carry [`CLUSTER_ROW`].
static ON_CLUSTER: AtomicBool = AtomicBool::new(false);
/// Set while `--cluster` runs its extra raw side (raw redis-rs with statehouse's timeouts): its
/// sections get rows of their own, which no counted row is compared with.
static RAW_WITH_TIMEOUTS: AtomicBool = AtomicBool::new(false);

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

/// In a counted child of `--cluster --instructions`: the parent's cluster's node addresses.
pub(crate) fn cluster_env() -> Option<String> {
    std::env::var(CLUSTER_ENV).ok().filter(|_| counting())
}

/// Whether the workloads that follow run on a cluster (their rows carry ` (cluster)`).
pub(crate) fn set_cluster(on_cluster: bool) {
    ON_CLUSTER.store(on_cluster, Ordering::Relaxed);
}

/// Whether the sections that follow are `--cluster`'s extra raw side (raw redis-rs with
/// statehouse's timeouts, `cluster.rs`): rows of their own, left out of the counted rows'
/// wall-clock ratios.
pub(crate) fn set_raw_with_timeouts(on: bool) {
    RAW_WITH_TIMEOUTS.store(on, Ordering::Relaxed);
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
    let index = push(label, side);
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

/// Logs a section of `label` by `side` (no ops yet), starting a new profile if its row, side or
/// warm-up state differs from the previous section's; returns its index.
fn push(label: String, side: Side) -> usize {
    let label = labelled(label);
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
    log.sections.len() - 1
}

/// `label` with the marks of what runs now (a cluster, the extra raw side).
fn labelled(mut label: String) -> String {
    if ON_CLUSTER.load(Ordering::Relaxed) {
        label.push_str(CLUSTER_ROW);
    }
    if RAW_WITH_TIMEOUTS.load(Ordering::Relaxed) {
        label.push_str(" [raw with statehouse's timeouts]");
    }
    label
}

/// Records the wall time of `ops` operations of `row` by `side` measured without a section
/// (both sides in turns, [`interleaved`](crate::engine::interleaved)), for the wall-clock ratios
/// beside the counts. Only a run of both sides records: never a counted child.
pub(crate) fn record(row: &str, side: Side, ops: u64, elapsed: Duration) {
    let index = push(row.to_owned(), side);
    if let Some(record) = log().sections.get_mut(index) {
        record.ops = ops;
        record.elapsed = elapsed;
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
        // The raw side's tasks run an async fn of their own; both sides are one row.
        ("triggers_all::claim_ack_across_tenants" | "triggers_all::raw_worker", _) => {
            "13. triggers: claim+ack across tenants, 4 all-tenants listeners"
        }
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
