//! The engine every workload runs on: [`Bench`] (what they share), [`Bench::timed`] (wall time and
//! the CPU time of this process and of the server), the warm-up and calibration that size the
//! rounds, and the rounds, in which both sides run in alternating slices.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use statehouse::{Documents, TaskCursor, TaskRecord, Tasks};
use statehouse_tests::harness::RedisServer;
use tokio::task::JoinSet;

use crate::Res;
use crate::args::{Options, Workload};
use crate::cluster_raw::{RawCon, RawNodes, RawTxn};
use crate::documents::{CONCURRENT_TASKS, Doc, MGET_KEYS, UPDATE_TASKS};
use crate::instructions;
use crate::redis_benchmark::RedisBenchmark;
use crate::report::{Results, median};
use crate::tasks::TASK_WRITERS;

/// Which implementation a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Statehouse,
    Raw,
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    /// Aborted EXECs (update workload only).
    pub(crate) conflicts: u64,
    /// CPU time of this process (all threads) during the run, where Linux reports it.
    pub(crate) client_cpu: Option<Duration>,
    /// CPU time of the redis-server during the run.
    pub(crate) server_cpu: Option<Duration>,
}

impl Sample {
    /// Two runs as one.
    pub(crate) fn plus(&self, other: &Sample) -> Sample {
        let add = |a: Option<Duration>, b: Option<Duration>| Some(a? + b?);
        Sample {
            ops: self.ops + other.ops,
            elapsed: self.elapsed + other.elapsed,
            conflicts: self.conflicts + other.conflicts,
            client_cpu: add(self.client_cpu, other.client_cpu),
            server_cpu: add(self.server_cpu, other.server_cpu),
        }
    }

    pub(crate) fn new(timed: &Timed, ops: u64, conflicts: u64) -> Self {
        instructions::set_ops(timed.section, ops);
        Self {
            ops,
            elapsed: timed.elapsed,
            conflicts,
            client_cpu: timed.client_cpu,
            server_cpu: timed.server_cpu,
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Client CPU microseconds per op.
    pub(crate) fn client_us(&self) -> Option<f64> {
        self.client_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64)
    }

    /// Server CPU microseconds per op.
    pub(crate) fn server_us(&self) -> Option<f64> {
        self.server_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64)
    }
}

/// What [`Bench::timed`] measured.
#[derive(Debug)]
pub(crate) struct Timed {
    pub(crate) elapsed: Duration,
    pub(crate) client_cpu: Option<Duration>,
    pub(crate) server_cpu: Option<Duration>,
    /// What each task returned.
    pub(crate) outputs: Vec<u64>,
    /// The instruction counter's section of this run (its ops: what the tasks returned, or what
    /// [`Sample::new`] says).
    pub(crate) section: usize,
}

/// CPU time used so far by each thread of process `pid` (`self` for this one), in nanoseconds, from
/// Linux's `/proc/PID/task/TID/schedstat`. `None` where that is not available.
fn cpu_snapshot(pid: &str) -> Option<HashMap<String, u64>> {
    let mut threads = HashMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let entry = entry.ok()?;
        // A thread may exit between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        let ns = stat.split_whitespace().next()?.parse().ok()?;
        threads.insert(entry.file_name().to_string_lossy().into_owned(), ns);
    }
    Some(threads)
}

/// CPU time used between two snapshots by the threads alive at the end (a thread that exited in
/// between is not counted).
fn cpu_between(
    before: Option<HashMap<String, u64>>,
    after: Option<HashMap<String, u64>>,
) -> Option<Duration> {
    let (before, after) = (before?, after?);
    let ns = after
        .iter()
        .map(|(tid, end)| end.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    Some(Duration::from_nanos(ns))
}

/// Everything the workloads share.
#[derive(Clone)]
pub(crate) struct Bench {
    /// A client of the server (on a cluster: of one primary; only the workloads that do not run on
    /// a cluster use it).
    pub(crate) client: redis::Client,
    /// Where the raw side opens its WATCH connections (the primary of a key's slot on a cluster).
    pub(crate) raw_nodes: RawNodes,
    pub(crate) docs: Documents,
    /// statehouse's synced models.
    pub(crate) models: statehouse::Models,
    pub(crate) raw: RawCon,
    pub(crate) doc: Doc,
    /// Per task of the set/get workloads, its own keys.
    pub(crate) task_keys: Vec<Arc<[String]>>,
    pub(crate) mget_keys: Arc<[String]>,
    /// The server's process id (every node's on a cluster), for its CPU time.
    pub(crate) server_pids: Vec<String>,
    /// statehouse's tasks, log capped at [`TASK_MAX_LOG`](crate::tasks::TASK_MAX_LOG).
    pub(crate) tasks: Tasks,
    /// Per task writer, the raw side's own connections for its WATCH sections (statehouse's writers
    /// take theirs from its pool).
    pub(crate) raw_txn: Vec<RawTxn>,
    /// The SHA1 of [`RAW_TASK_WRITE`](crate::tasks::RAW_TASK_WRITE), checked to be the script
    /// statehouse loaded.
    pub(crate) task_write_sha: String,
    /// The record the save workload writes (under each writer's service, user and ids).
    pub(crate) task_record: TaskRecord,
    /// The ids of the list workload's first page, in listing order, and the cursor after it.
    pub(crate) list_expected: Arc<[String]>,
    pub(crate) list_next: TaskCursor,
}

/// The workloads of one task, which the rounds run in turns ([`interleaved`]) when both sides
/// run.
const IN_TURNS: [Workload; 4] = [Workload::Seq, Workload::Mget, Workload::List, Workload::Model];

/// Operations per side and turn of [`interleaved`] in the rounds.
pub(crate) const TURN: u64 = 8;

/// The size of one slice of each workload.
#[derive(Debug)]
pub(crate) struct Sizes {
    pub(crate) seq_pairs: u64,
    pub(crate) conc_pairs: u64,
    pub(crate) mget_calls: u64,
    /// Per task; the update runs in one slice.
    pub(crate) increments: u64,
    /// Per task writer.
    pub(crate) saves: u64,
    /// Per task writer; even.
    pub(crate) status_changes: u64,
    pub(crate) list_pages: u64,
    /// Synced-model modifies, one task.
    pub(crate) modifies: u64,
}

impl Bench {
    /// One slice of `workload` by `side`.
    pub(crate) async fn slice(&self, workload: Workload, side: Side, sizes: &Sizes) -> Res<Sample> {
        match workload {
            Workload::Seq => self.set_get(side, 1, sizes.seq_pairs).await,
            Workload::Conc => self.set_get(side, CONCURRENT_TASKS, sizes.conc_pairs).await,
            Workload::Mget => self.mget(side, sizes.mget_calls).await,
            Workload::Update => self.update(side, UPDATE_TASKS, sizes.increments).await,
            Workload::Save => self.task_save(side, sizes.saves).await,
            Workload::Status => self.task_status(side, sizes.status_changes).await,
            Workload::List => self.task_list(side, sizes.list_pages).await,
            Workload::Model => self.model(side, sizes.modifies).await,
            Workload::RedisBenchmark => Err("redis-benchmark has no slices".into()),
            Workload::Subjects => Err("subjects run after the rounds".into()),
            Workload::Tenants => Err("tenants run after the rounds".into()),
            Workload::TriggersQueues => Err("triggers and queues run after the rounds".into()),
            Workload::Config => Err("config runs after the rounds".into()),
        }
    }

    /// `slices` slices' worth of `workload` ([`IN_TURNS`]) on each side, in turns of
    /// [`TURN`] operations in one task: a sample per side, with no CPU times (the turns share
    /// the process).
    async fn in_turns(&self, workload: Workload, sizes: &Sizes, slices: u64) -> Res<(Sample, Sample)> {
        // Turns of a few milliseconds at most: a few operations, or one or two long ones.
        let (measured, per_step) = match workload {
            Workload::Seq => (self.set_get_in_turns(sizes.seq_pairs * slices, TURN).await?, 2),
            Workload::Mget => (
                self.mget_in_turns(sizes.mget_calls * slices, 1).await?,
                MGET_KEYS as u64,
            ),
            Workload::List => (self.task_list_in_turns(sizes.list_pages * slices, 2).await?, 1),
            Workload::Model => (self.model_in_turns(sizes.modifies * slices, TURN).await?, 1),
            other => return Err(format!("{other:?} does not run in turns").into()),
        };
        Ok((
            measured.sample(Side::Statehouse, per_step),
            measured.sample(Side::Raw, per_step),
        ))
    }

    /// The CPU time of every server thread so far (keyed by pid and thread id).
    fn servers_cpu(&self) -> Option<HashMap<String, u64>> {
        let mut all = HashMap::new();
        for pid in &self.server_pids {
            let threads = cpu_snapshot(pid)?;
            all.extend(threads.into_iter().map(|(tid, ns)| (format!("{pid}/{tid}"), ns)));
        }
        Some(all)
    }

    /// Spawns `tasks` tasks and measures them until all finished: wall time, and the CPU time of
    /// this process and of the server.
    pub(crate) async fn timed<F, Fut>(&self, tasks: usize, mut make: F) -> Res<Timed>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Res<u64>> + Send + 'static,
    {
        let mut set = JoinSet::new();
        let (client, server) = (cpu_snapshot("self"), self.servers_cpu());
        let section = instructions::start_tasks::<Fut>(tasks);
        let start = Instant::now();
        for task in 0..tasks {
            if instructions::counting() {
                set.spawn(instructions::task(make(task)));
            } else {
                set.spawn(make(task));
            }
        }
        let mut outputs = Vec::with_capacity(tasks);
        while let Some(joined) = set.join_next().await {
            outputs.push(joined??);
        }
        let elapsed = start.elapsed();
        let section = section.close(outputs.iter().sum());
        Ok(Timed {
            section,
            elapsed,
            client_cpu: cpu_between(client, cpu_snapshot("self")),
            server_cpu: cpu_between(server, self.servers_cpu()),
            outputs,
        })
    }
}

/// Warms up every path of the workloads that run and sizes their slices from the raw rates, so
/// that a round lasts about `options.round_time`; probes `redis-benchmark` with request counts
/// sized the same way. Prints what a round will do.
pub(crate) async fn calibrate(
    bench: &Bench,
    server: &RedisServer,
    options: Options,
) -> Res<(Sizes, RedisBenchmark)> {
    // Warm up every path (connections, the update pool, allocator, caches) and size the rounds
    // from the raw rates so that a round lasts about `round_time`.
    println!("warming up and calibrating ...");
    let warm = if options.quick { 200 } else { 1_000 };
    for side in options.sides(0) {
        if options.runs(Workload::Seq) {
            bench.set_get(side, 1, warm).await?;
        }
        if options.runs(Workload::Conc) {
            bench.set_get(side, CONCURRENT_TASKS, warm / 8).await?;
        }
        if options.runs(Workload::Mget) {
            bench.mget(side, 20).await?;
        }
        if options.runs(Workload::Update) {
            bench.update(side, UPDATE_TASKS, 10).await?;
        }
        if options.runs(Workload::Save) {
            bench.task_save(side, 20).await?;
        }
        if options.runs(Workload::Status) {
            bench.task_status(side, 20).await?;
        }
        if options.runs(Workload::List) {
            bench.task_list(side, 20).await?;
        }
        if options.runs(Workload::Model) {
            bench.model(side, warm / 2).await?;
        }
    }
    let secs = options.round_time.as_secs_f64();
    let mut calibrate = Vec::new();
    // With --fixed-size: rates that give 1,000 sequential pairs, 64×20 concurrent pairs, 20 MGETs,
    // 16×20 task saves, 16×20 status changes, 20 list pages and 1,000 model modifies per round,
    // whatever the machine.
    if options.fixed_size {
        let writes = (TASK_WRITERS * 20) as f64 / secs;
        calibrate.push([
            2_000.0 / secs,
            2_560.0 / secs,
            20_000.0 / secs,
            writes,
            writes,
            20.0 / secs,
        ]);
    }
    // Only the workloads that run are calibrated (the set/get rates also size redis-benchmark and
    // the synced-model modifies).
    let set_get_runs = [
        Workload::Seq,
        Workload::Conc,
        Workload::RedisBenchmark,
        Workload::Model,
    ]
    .into_iter()
    .any(|workload| options.runs(workload));
    instructions::set_side(Side::Raw);
    while !options.fixed_size && calibrate.len() < 3 {
        let mut rates = [f64::NAN; 6];
        if set_get_runs {
            rates[0] = bench.set_get(Side::Raw, 1, warm).await?.rate();
            rates[1] = bench.set_get(Side::Raw, CONCURRENT_TASKS, warm / 8).await?.rate();
        }
        if options.runs(Workload::Mget) {
            rates[2] = bench.mget(Side::Raw, 20).await?.rate();
        }
        if options.runs(Workload::Save) {
            rates[3] = bench.task_save(Side::Raw, 20).await?.rate();
        }
        if options.runs(Workload::Status) {
            rates[4] = bench.task_status(Side::Raw, 20).await?.rate();
        }
        if options.runs(Workload::List) {
            rates[5] = bench.task_list(Side::Raw, 20).await?.rate();
        }
        calibrate.push(rates);
    }
    // A workload that does not run has NaN here, which the casts below turn into 0, so its size
    // is the floor.
    let [seq_rate, conc_rate, mget_rate, save_rate, status_rate, list_rate] =
        [0, 1, 2, 3, 4, 5].map(|i| median(calibrate.iter().map(|rates| rates[i]).collect()));
    let seq_pairs = ((seq_rate * secs / 2.0) as u64).max(100);
    let conc_pairs = ((conc_rate * secs / 2.0 / CONCURRENT_TASKS as f64) as u64).max(5);
    let mget_calls = ((mget_rate * secs / MGET_KEYS as f64) as u64).max(5);
    let writer_ops = |rate: f64| ((rate * secs / TASK_WRITERS as f64) as u64).max(10);
    let list_calls = ((list_rate * secs) as u64).max(5);
    let rb = RedisBenchmark::probe(
        server,
        ((seq_rate * secs) as u64).max(2_000),
        ((conc_rate * secs) as u64).max(10_000),
    );
    let sizes = Sizes {
        seq_pairs: (seq_pairs / options.slices as u64).max(1),
        conc_pairs: (conc_pairs / options.slices as u64).max(1),
        mget_calls: (mget_calls / options.slices as u64).max(1),
        increments: options.increments,
        saves: (writer_ops(save_rate) / options.slices as u64).max(1),
        // Even, so that every slice leaves each task pending, as it found it.
        status_changes: (writer_ops(status_rate) / options.slices as u64)
            .div_ceil(2)
            .max(1)
            * 2,
        list_pages: (list_calls / options.slices as u64).max(1),
        // A modify is two round trips, like a set+get pair.
        modifies: (seq_pairs / options.slices as u64).max(1),
    };
    let slices = options.slices as u64;
    println!(
        "per round and side, in {slices} alternating slices: {} sequential pairs, {CONCURRENT_TASKS}×{} \
         concurrent pairs, {} MGETs of {MGET_KEYS} keys, {TASK_WRITERS}×{} task saves, \
         {TASK_WRITERS}×{} status changes, {} list pages, {} synced-model modifies; then \
         {UPDATE_TASKS}×{} increments in one piece",
        sizes.seq_pairs * slices,
        sizes.conc_pairs * slices,
        sizes.mget_calls * slices,
        sizes.saves * slices,
        sizes.status_changes * slices,
        sizes.list_pages * slices,
        sizes.modifies * slices,
        sizes.increments,
    );
    if let RedisBenchmark::Missing(why) = &rb {
        println!("redis-benchmark: skipped ({why})");
    }
    println!();
    Ok((sizes, rb))
}

/// The rounds: in each, every measured workload that runs, both sides in alternating slices; then
/// `redis-benchmark` if it runs. Prints a line per round.
pub(crate) async fn rounds(
    bench: &Bench,
    sizes: &Sizes,
    rb: &RedisBenchmark,
    options: Options,
) -> Res<Results> {
    let mut results = Results::default();
    for round in 0..options.rounds {
        for workload in Workload::MEASURED {
            if !options.runs(workload) {
                continue;
            }
            // Both sides run in alternating slices, so that whatever else the machine does in this
            // round hits both alike.
            let mut statehouse: Option<Sample> = None;
            let mut raw: Option<Sample> = None;
            // The update runs whole: its throughput includes the tail of the last contenders, which
            // a thin slice would exaggerate.
            let slices = if workload == Workload::Update {
                1
            } else {
                options.slices
            };
            let in_turns = options.side.is_none() && IN_TURNS.contains(&workload);
            if in_turns {
                // One task alone: both sides in turns of a few operations ([`interleaved`]).
                let (sh, other) = bench.in_turns(workload, sizes, slices as u64).await?;
                (statehouse, raw) = (Some(sh), Some(other));
            }
            for slice in (0..slices).filter(|_| !in_turns) {
                for side in options.sides(round * slices + slice) {
                    let sample = bench.slice(workload, side, sizes).await?;
                    let total = match side {
                        Side::Statehouse => &mut statehouse,
                        Side::Raw => &mut raw,
                    };
                    *total = Some(total.map_or(sample, |total| total.plus(&sample)));
                }
            }
            let pair = match workload {
                Workload::Seq => &mut results.seq,
                Workload::Conc => &mut results.conc,
                Workload::Mget => &mut results.mget,
                Workload::Model => &mut results.model,
                Workload::Update
                | Workload::RedisBenchmark
                | Workload::Subjects
                | Workload::Tenants
                | Workload::TriggersQueues
                | Workload::Config => &mut results.update,
                Workload::Save => &mut results.save,
                Workload::Status => &mut results.status,
                Workload::List => &mut results.list,
            };
            pair.statehouse.extend(statehouse);
            pair.raw.extend(raw);
        }
        if options.runs(Workload::RedisBenchmark) && matches!(rb, RedisBenchmark::Available { .. }) {
            results.rb_c1.push(rb.run(1)?);
            results.rb_c64.push(rb.run(CONCURRENT_TASKS)?);
        }
        println!("round {}/{}: {}", round + 1, options.rounds, results.last_round());
    }
    Ok(results)
}

/// One operation of one side, run again and again by [`interleaved`].
pub(crate) trait Step: Send + 'static {
    fn step(&mut self) -> impl Future<Output = Res<()>> + Send;
}

/// What [`interleaved`] measured: each side's wall time over the same number of operations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interleaved {
    pub(crate) ops: u64,
    pub(crate) statehouse: Duration,
    pub(crate) raw: Duration,
}

impl Interleaved {
    /// Statehouse's speed over raw's (raw's time over statehouse's).
    pub(crate) fn ratio(&self) -> f64 {
        self.raw.as_secs_f64() / self.statehouse.as_secs_f64().max(1e-9)
    }

    /// One side's figures as a [`Sample`] of `per_step` ops per step, with no CPU times.
    pub(crate) fn sample(&self, side: Side, per_step: u64) -> Sample {
        Sample {
            ops: self.ops * per_step,
            elapsed: self.elapsed(side),
            conflicts: 0,
            client_cpu: None,
            server_cpu: None,
        }
    }

    fn elapsed(&self, side: Side) -> Duration {
        match side {
            Side::Statehouse => self.statehouse,
            Side::Raw => self.raw,
        }
    }

    pub(crate) fn rate(&self, side: Side) -> f64 {
        self.ops as f64 / self.elapsed(side).as_secs_f64().max(1e-9)
    }
}

/// Runs `ops` operations of each side in one task, in turns of `turn` operations, the side that
/// goes first flipping every turn, and times each turn. A single task's speed on the
/// multi-thread runtime depends on where the scheduler places it and its connection's driver:
/// on this 2-vCPU machine a task measured alone ran at one of two speeds about 3.5x apart,
/// chosen at random when it was spawned and kept for tens of milliseconds. Turns of a few
/// operations in one task let both sides run under the same placement.
///
/// Records each side's time as `row`'s, at `per_step` ops a step, for `--instructions`' wall-clock
/// ratios (`None`: a row it does not count).
pub(crate) async fn interleaved<S: Step, R: Step>(
    row: Option<(&'static str, u64)>,
    mut statehouse: S,
    mut raw: R,
    ops: u64,
    turn: u64,
) -> Res<Interleaved> {
    let measured = tokio::spawn(async move {
        let mut times = [Duration::ZERO; 2];
        let (mut done, mut raw_first) = (0, false);
        while done < ops {
            let n = turn.min(ops - done);
            for raw_turn in [raw_first, !raw_first] {
                let start = Instant::now();
                for _ in 0..n {
                    if raw_turn {
                        raw.step().await?;
                    } else {
                        statehouse.step().await?;
                    }
                }
                times[usize::from(raw_turn)] += start.elapsed();
            }
            raw_first = !raw_first;
            done += n;
        }
        Ok::<_, crate::BoxError>(Interleaved {
            ops,
            statehouse: times[0],
            raw: times[1],
        })
    })
    .await??;
    if let Some((row, per_step)) = row {
        for side in [Side::Statehouse, Side::Raw] {
            instructions::record(row, side, ops * per_step, measured.elapsed(side));
        }
    }
    Ok(measured)
}
