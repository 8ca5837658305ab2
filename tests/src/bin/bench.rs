//! The statehouse benchmark: statehouse beside raw redis-rs, same commands, same server, one run.
//!
//! ```text
//! cargo run --release -p statehouse-tests --bin bench            # full run (about a minute)
//! cargo run --release -p statehouse-tests --bin bench -- --quick # short smoke run
//! ```
//!
//! It starts its own `redis-server` (the test harness: a free loopback port, no persistence) and never
//! touches any other server. Workloads, each run by statehouse (`Statehouse::with_settings` +
//! `documents()`, the full default stack: tracing layer, Redis adapter) and by raw
//! redis-rs doing the same work (`serde_json` + the same Redis commands on a `ConnectionManager`):
//!
//! 1. typed `SET` + `GET` of a ~1 KiB JSON document, one task (a pair counts as 2 ops);
//! 2. the same from 64 concurrent tasks;
//! 3. `MGET` of 1,000 keys, each value decoded (ops = keys decoded);
//! 4. 16 tasks incrementing one JSON counter: statehouse `update` against the naive
//!    WATCH/GET/MULTI/SET/EXEC loop without backoff (ops = successful increments; the final count
//!    is checked);
//! 5. `redis-benchmark` `SET`/`GET` `-d 1024` at `-c 1` and `-c 64` on the same server, as its
//!    ceiling;
//! 6. a synced model (the ~1 KiB document and a version) changed by `Synced::modify`, one task,
//!    uncontended, against raw redis-rs doing the same commands (`WATCH`+`GET` pipelined, then
//!    `MULTI`/`SET … KEEPTTL`/`EXEC`; ops = modifies; the final version is checked).
//!
//! Every workload is warmed up and its rounds are sized to last about 0.5 s per side. In every
//! round the two sides run in alternating slices (the order flipping each slice), so drift on a
//! busy machine hits both alike; the table shows the median ops/s of the rounds and the median of
//! the per-round ratios. A second table gives the CPU time per op of this process and of the
//! server, which hardly depends on what else the machine does. The process exits non-zero on any
//! error or wrong count, and zero when it only misses a target. See `docs/benchmarks.md`.

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::future::Future;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use serde::{Deserialize, Serialize};
use statehouse::{Documents, Ports, Settings, Statehouse, Synced, SyncedModel, Update};
use statehouse_redis::RedisStore;
use statehouse_tests::harness::RedisServer;
use tokio::task::JoinSet;

type BoxError = Box<dyn Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

const USAGE: &str = "\
usage: bench [--quick] [--rounds N] [--current-thread] [--only WORKLOAD] [--side SIDE] [--fixed-size]
             [--bare]

  --quick          short run (3 rounds of ~0.15 s, 16x50 increments): a smoke check
  --rounds N       rounds per workload (default 7; 3 with --quick)
  --current-thread run on tokio's current-thread runtime (default: multi-thread, one worker per CPU)
  --only WORKLOAD  run one workload: seq, conc, mget, update, model or rb (for profiling)
  --side SIDE      run one side: statehouse or raw (for profiling; no ratios)
  --fixed-size     fixed round sizes (1000 sequential pairs, 64x20 concurrent pairs, 20 MGETs)
                   instead of sizes calibrated to the round time (for profiling, e.g. callgrind)
  --bare           measure statehouse without its tracing layer (the Redis adapter
                   through Statehouse::from_ports), to see what the layers cost
  -h, --help       this text

Starts its own redis-server (never the one on 6379) and compares statehouse with raw redis-rs.";

/// Tasks of the concurrent set/get workload.
const CONCURRENT_TASKS: usize = 64;
/// Keys each set/get task cycles through.
const KEYS_PER_TASK: usize = 32;
/// Keys per MGET.
const MGET_KEYS: usize = 1_000;
/// Tasks of the contended update workload.
const UPDATE_TASKS: usize = 16;
/// The serialized size the sample document is padded to.
const DOC_BYTES: usize = 1_024;
/// The key of the contended counter.
const COUNTER_KEY: &str = "bench:counter";
/// The id of the synced model of workload 6.
const MODEL_ID: &str = "bench-1";
/// Its key, `{TypeName}:{id}`.
const MODEL_KEY: &str = "BenchModel:bench-1";

#[derive(Debug, Clone, Copy)]
struct Options {
    quick: bool,
    rounds: usize,
    /// How long one side's run of one workload should last, in all its slices.
    round_time: Duration,
    /// Alternating slices a round's run of each side is cut into.
    slices: usize,
    /// Increments per task in the contended update workload.
    increments: u64,
    /// Run only this workload (for profiling).
    only: Option<Workload>,
    /// Run only this side (for profiling).
    side: Option<Side>,
    /// Run on tokio's current-thread runtime instead of the multi-thread one.
    current_thread: bool,
    /// Fixed round sizes instead of calibrated ones (for profiling).
    fixed_size: bool,
    /// Measure the bare Redis adapter instead of the default stack (for attributing costs).
    bare: bool,
}

impl Options {
    fn runs(&self, workload: Workload) -> bool {
        self.only.is_none_or(|only| only == workload)
    }

    fn sides(&self, slice: usize) -> Vec<Side> {
        match self.side {
            Some(side) => vec![side],
            // The order flips every slice, so that a drift hits both sides alike.
            None if slice.is_multiple_of(2) => vec![Side::Statehouse, Side::Raw],
            None => vec![Side::Raw, Side::Statehouse],
        }
    }
}

/// The workloads, as named by `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Seq,
    Conc,
    Mget,
    Update,
    Model,
    RedisBenchmark,
}

fn parse_args() -> Res<Option<Options>> {
    let mut quick = false;
    let mut rounds = None;
    let mut only = None;
    let mut side = None;
    let mut current_thread = false;
    let mut fixed_size = false;
    let mut bare = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--quick" => quick = true,
            "--current-thread" => current_thread = true,
            "--fixed-size" => fixed_size = true,
            "--bare" => bare = true,
            "--rounds" => {
                let value = value("--rounds")?;
                let parsed: usize = value.parse().map_err(|e| format!("--rounds {value:?}: {e}"))?;
                rounds = Some(parsed.max(1));
            }
            "--only" => {
                only = Some(match value("--only")?.as_str() {
                    "seq" => Workload::Seq,
                    "conc" => Workload::Conc,
                    "mget" => Workload::Mget,
                    "update" => Workload::Update,
                    "model" => Workload::Model,
                    "rb" => Workload::RedisBenchmark,
                    other => {
                        return Err(format!(
                            "--only {other:?}: expected seq, conc, mget, update, model or rb"
                        )
                        .into());
                    }
                });
            }
            "--side" => {
                side = Some(match value("--side")?.as_str() {
                    "statehouse" => Side::Statehouse,
                    "raw" => Side::Raw,
                    other => return Err(format!("--side {other:?}: expected statehouse or raw").into()),
                });
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    Ok(Some(Options {
        quick,
        rounds: rounds.unwrap_or(if quick { 3 } else { 7 }),
        round_time: Duration::from_millis(if quick { 150 } else { 500 }),
        slices: if quick { 3 } else { 5 },
        increments: if quick { 50 } else { 200 },
        only,
        side,
        current_thread,
        fixed_size,
        bare,
    }))
}

/// A typical application document, padded to about 1 KiB of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    id: u64,
    name: String,
    email: String,
    active: bool,
    score: f64,
    created_at: DateTime<Utc>,
    tags: Vec<String>,
    address: Address,
    bio: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    street: String,
    city: String,
    postcode: String,
    country: String,
}

/// The contended counter.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

/// The synced model of workload 6: the sample document, and a version every modify bumps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BenchModel {
    id: String,
    version: u64,
    doc: Option<Doc>,
}

impl SyncedModel for BenchModel {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn set_id(&mut self, id: &str) {
        self.id = id.to_owned();
    }
}

fn sample_doc() -> Res<Doc> {
    let mut doc = Doc {
        id: 100_000,
        name: "Ada Lovelace".to_owned(),
        email: "ada.lovelace@example.com".to_owned(),
        active: true,
        score: 98.25,
        created_at: DateTime::from_timestamp(1_700_000_000, 0).ok_or("bad timestamp")?,
        tags: ["admin", "beta", "eu-west", "newsletter", "mathematics", "engines"]
            .map(str::to_owned)
            .to_vec(),
        address: Address {
            street: "12 St James's Square".to_owned(),
            city: "London".to_owned(),
            postcode: "SW1Y 4JH".to_owned(),
            country: "GB".to_owned(),
        },
        bio: String::new(),
    };
    let base = serde_json::to_vec(&doc)?.len();
    let words = "analytical engine notes on the bernoulli numbers and a general purpose computer ";
    doc.bio = words.repeat(DOC_BYTES / words.len() + 1);
    doc.bio.truncate(DOC_BYTES.saturating_sub(base));
    Ok(doc)
}

/// Which implementation a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Statehouse,
    Raw,
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ops: u64,
    elapsed: Duration,
    /// Aborted EXECs (update workload only).
    conflicts: u64,
    /// CPU time of this process (all threads) during the run, where Linux reports it.
    client_cpu: Option<Duration>,
    /// CPU time of the redis-server during the run.
    server_cpu: Option<Duration>,
}

impl Sample {
    /// Two runs as one.
    fn plus(&self, other: &Sample) -> Sample {
        let add = |a: Option<Duration>, b: Option<Duration>| Some(a? + b?);
        Sample {
            ops: self.ops + other.ops,
            elapsed: self.elapsed + other.elapsed,
            conflicts: self.conflicts + other.conflicts,
            client_cpu: add(self.client_cpu, other.client_cpu),
            server_cpu: add(self.server_cpu, other.server_cpu),
        }
    }

    fn new(timed: &Timed, ops: u64, conflicts: u64) -> Self {
        Self {
            ops,
            elapsed: timed.elapsed,
            conflicts,
            client_cpu: timed.client_cpu,
            server_cpu: timed.server_cpu,
        }
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Client CPU microseconds per op.
    fn client_us(&self) -> Option<f64> {
        self.client_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64)
    }

    /// Server CPU microseconds per op.
    fn server_us(&self) -> Option<f64> {
        self.server_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64)
    }
}

/// What [`Bench::timed`] measured.
#[derive(Debug)]
struct Timed {
    elapsed: Duration,
    client_cpu: Option<Duration>,
    server_cpu: Option<Duration>,
    /// What each task returned.
    outputs: Vec<u64>,
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
struct Bench {
    client: redis::Client,
    docs: Documents,
    raw: ConnectionManager,
    doc: Doc,
    /// Per task of the set/get workloads, its own keys.
    task_keys: Vec<Arc<[String]>>,
    mget_keys: Arc<[String]>,
    /// The server's process id, for its CPU time.
    server_pid: String,
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> Res<()> {
    let Some(options) = parse_args()? else {
        return Ok(());
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; benchmark figures need `cargo run --release`");
    }
    let server = RedisServer::start();
    let runtime = if options.current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    let result = runtime.block_on(run(&server, options));
    drop(runtime);
    drop(server);
    result
}

async fn run(server: &RedisServer, options: Options) -> Res<()> {
    let url = server.url();
    let settings = Settings::new(url.clone());
    let state = if options.bare {
        let store = RedisStore::connect(settings.redis_config()).await?;
        Statehouse::from_ports(Ports::of(store))
    } else {
        Statehouse::with_settings(settings).await?
    };
    let client = redis::Client::open(url.as_str())?;
    let raw = ConnectionManager::new(client.clone()).await?;
    let doc = sample_doc()?;
    let task_keys = (0..CONCURRENT_TASKS)
        .map(|t| (0..KEYS_PER_TASK).map(|k| format!("bench:doc:{t}:{k}")).collect())
        .collect();
    let mget_keys: Arc<[String]> = (0..MGET_KEYS).map(|i| format!("bench:mget:{i}")).collect();
    let bench = Bench {
        client,
        docs: state.documents(),
        raw,
        doc,
        task_keys,
        mget_keys,
        server_pid: server.pid().to_string(),
    };

    print_header(&bench, server, options).await?;
    bench.populate_mget().await?;

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
        if options.runs(Workload::Model) {
            bench.model(side, warm / 2).await?;
        }
    }
    let secs = options.round_time.as_secs_f64();
    let mut calibrate = Vec::new();
    // With --fixed-size: rates that give 1,000 sequential pairs, 64×20 concurrent pairs and 20 MGETs
    // per round, whatever the machine.
    if options.fixed_size {
        calibrate.push([2_000.0 / secs, 2_560.0 / secs, 20_000.0 / secs]);
    }
    while !options.fixed_size && calibrate.len() < 3 {
        calibrate.push([
            bench.set_get(Side::Raw, 1, warm).await?.rate(),
            bench.set_get(Side::Raw, CONCURRENT_TASKS, warm / 8).await?.rate(),
            bench.mget(Side::Raw, 20).await?.rate(),
        ]);
    }
    let [seq_rate, conc_rate, mget_rate] =
        [0, 1, 2].map(|i| median(calibrate.iter().map(|rates| rates[i]).collect()));
    let seq_pairs = ((seq_rate * secs / 2.0) as u64).max(100);
    let conc_pairs = ((conc_rate * secs / 2.0 / CONCURRENT_TASKS as f64) as u64).max(5);
    let mget_calls = ((mget_rate * secs / MGET_KEYS as f64) as u64).max(5);
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
        // A modify is two round trips, like a set+get pair.
        modifies: (seq_pairs / options.slices as u64).max(1),
    };
    let slices = options.slices as u64;
    println!(
        "per round and side, in {slices} alternating slices: {} sequential pairs, {CONCURRENT_TASKS}×{} \
         concurrent pairs, {} MGETs of {MGET_KEYS} keys, {} synced-model modifies; then {UPDATE_TASKS}×{} \
         increments in one piece",
        sizes.seq_pairs * slices,
        sizes.conc_pairs * slices,
        sizes.mget_calls * slices,
        sizes.modifies * slices,
        sizes.increments,
    );
    if let RedisBenchmark::Missing(why) = &rb {
        println!("redis-benchmark: skipped ({why})");
    }
    println!();

    let mut results = Results::default();
    for round in 0..options.rounds {
        for workload in [
            Workload::Seq,
            Workload::Conc,
            Workload::Mget,
            Workload::Update,
            Workload::Model,
        ] {
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
            for slice in 0..slices {
                for side in options.sides(round * slices + slice) {
                    let sample = bench.slice(workload, side, &sizes).await?;
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
                Workload::Update | Workload::RedisBenchmark => &mut results.update,
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
    println!("(statehouse/raw ops/s per workload; rb: redis-benchmark set+get ops/s at -c 1/-c 64)");
    println!();
    results.report(options, &rb);
    println!();
    println!("load average at the end: {}", load_average());
    Ok(())
}

/// `/proc/loadavg`'s first three fields, or `?`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

async fn print_header(bench: &Bench, server: &RedisServer, options: Options) -> Res<()> {
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
        "load average at the start: {} (other processes skew the figures)",
        load_average()
    );
    Ok(())
}

/// The size of one slice of each workload.
#[derive(Debug)]
struct Sizes {
    seq_pairs: u64,
    conc_pairs: u64,
    mget_calls: u64,
    /// Per task; the update runs in one slice.
    increments: u64,
    /// Synced-model modifies, one task.
    modifies: u64,
}

impl Bench {
    /// One slice of `workload` by `side`.
    async fn slice(&self, workload: Workload, side: Side, sizes: &Sizes) -> Res<Sample> {
        match workload {
            Workload::Seq => self.set_get(side, 1, sizes.seq_pairs).await,
            Workload::Conc => self.set_get(side, CONCURRENT_TASKS, sizes.conc_pairs).await,
            Workload::Mget => self.mget(side, sizes.mget_calls).await,
            Workload::Update => self.update(side, UPDATE_TASKS, sizes.increments).await,
            Workload::Model => self.model(side, sizes.modifies).await,
            Workload::RedisBenchmark => Err("redis-benchmark has no slices".into()),
        }
    }

    /// Spawns `tasks` tasks and measures them until all finished: wall time, and the CPU time of
    /// this process and of the server.
    async fn timed<F, Fut>(&self, tasks: usize, mut make: F) -> Res<Timed>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Res<u64>> + Send + 'static,
    {
        let mut set = JoinSet::new();
        let (client, server) = (cpu_snapshot("self"), cpu_snapshot(&self.server_pid));
        let start = Instant::now();
        for task in 0..tasks {
            set.spawn(make(task));
        }
        let mut outputs = Vec::with_capacity(tasks);
        while let Some(joined) = set.join_next().await {
            outputs.push(joined??);
        }
        let elapsed = start.elapsed();
        Ok(Timed {
            elapsed,
            client_cpu: cpu_between(client, cpu_snapshot("self")),
            server_cpu: cpu_between(server, cpu_snapshot(&self.server_pid)),
            outputs,
        })
    }

    /// `tasks` tasks each doing `pairs` typed SET + GET pairs on their own keys.
    async fn set_get(&self, side: Side, tasks: usize, pairs: u64) -> Res<Sample> {
        let timed = self
            .timed(tasks, |task| {
                let keys = Arc::clone(&self.task_keys[task]);
                let doc = self.doc.clone();
                let docs = self.docs.clone();
                let raw = self.raw.clone();
                async move {
                    match side {
                        Side::Statehouse => pairs_statehouse(docs, keys, doc, pairs).await,
                        Side::Raw => pairs_raw(raw, keys, doc, pairs).await,
                    }
                }
            })
            .await?;
        Ok(Sample::new(&timed, 2 * pairs * tasks as u64, 0))
    }

    /// Writes the documents the MGET workload reads (document `i` has id `i`).
    async fn populate_mget(&self) -> Res<()> {
        let mut con = self.raw.clone();
        let mut pipe = redis::pipe();
        let mut doc = self.doc.clone();
        for (i, key) in self.mget_keys.iter().enumerate() {
            doc.id = i as u64;
            pipe.cmd("SET").arg(key).arg(serde_json::to_vec(&doc)?).ignore();
        }
        pipe.exec_async(&mut con).await?;
        Ok(())
    }

    /// One task doing `calls` MGETs of all the MGET keys, decoding every value.
    async fn mget(&self, side: Side, calls: u64) -> Res<Sample> {
        let keys = Arc::clone(&self.mget_keys);
        let docs = self.docs.clone();
        let raw = self.raw.clone();
        let timed = self
            .timed(1, move |_| {
                let keys = Arc::clone(&keys);
                let docs = docs.clone();
                let raw = raw.clone();
                async move {
                    match side {
                        Side::Statehouse => mget_statehouse(docs, keys, calls).await,
                        Side::Raw => mget_raw(raw, keys, calls).await,
                    }
                }
            })
            .await?;
        Ok(Sample::new(&timed, calls * MGET_KEYS as u64, 0))
    }

    /// `tasks` tasks each incrementing the one counter `increments` times; checks the final count.
    async fn update(&self, side: Side, tasks: usize, increments: u64) -> Res<Sample> {
        let mut con = self.raw.clone();
        redis::cmd("SET")
            .arg(COUNTER_KEY)
            .arg(serde_json::to_vec(&Counter { count: 0 })?)
            .exec_async(&mut con)
            .await?;
        // The naive loop's dedicated connections are opened before the clock starts (statehouse's
        // pool connections were opened by the warm-up).
        let mut dedicated = Vec::with_capacity(tasks);
        if side == Side::Raw {
            for _ in 0..tasks {
                dedicated.push(self.client.get_multiplexed_async_connection().await?);
            }
        }
        let mut dedicated = dedicated.into_iter();
        let timed = self
            .timed(tasks, |_| {
                let docs = self.docs.clone();
                let con = dedicated.next();
                async move {
                    match side {
                        Side::Statehouse => increment_statehouse(docs, increments).await,
                        Side::Raw => increment_naive(con.ok_or("no connection")?, increments).await,
                    }
                }
            })
            .await?;

        let expected = tasks as u64 * increments;
        let stored: Option<Vec<u8>> = redis::cmd("GET").arg(COUNTER_KEY).query_async(&mut con).await?;
        let count = match stored {
            Some(bytes) => serde_json::from_slice::<Counter>(&bytes)?.count,
            None => 0,
        };
        if count != expected {
            return Err(format!(
                "WRONG COUNT ({side:?}): the counter is {count} after {tasks} tasks x {increments} \
                 increments, expected {expected} (updates were lost or applied twice)"
            )
            .into());
        }
        let attempts: u64 = timed.outputs.iter().sum();
        Ok(Sample::new(&timed, expected, attempts.saturating_sub(expected)))
    }
}

impl Bench {
    /// One task changing the synced model `modifies` times, uncontended; checks the final version.
    async fn model(&self, side: Side, modifies: u64) -> Res<Sample> {
        let mut con = self.raw.clone();
        let start = BenchModel {
            id: MODEL_ID.to_owned(),
            version: 0,
            doc: Some(self.doc.clone()),
        };
        redis::cmd("SET")
            .arg(MODEL_KEY)
            .arg(serde_json::to_vec(&start)?)
            .exec_async(&mut con)
            .await?;
        // Set up before the clock starts: the raw side's dedicated connection, statehouse's handle.
        let mut dedicated = match side {
            Side::Raw => Some(self.client.get_multiplexed_async_connection().await?),
            Side::Statehouse => None,
        };
        let mut synced = match side {
            Side::Statehouse => Some(Synced::<BenchModel>::load_from(&self.docs, MODEL_ID).await?),
            Side::Raw => None,
        };
        if synced.as_ref().is_some_and(|synced| synced.key() != MODEL_KEY) {
            return Err(format!("the synced model is not under {MODEL_KEY}").into());
        }
        let timed = self
            .timed(1, |_| {
                let (synced, con) = (synced.take(), dedicated.take());
                async move {
                    match side {
                        Side::Statehouse => modify_statehouse(synced.ok_or("no model")?, modifies).await,
                        Side::Raw => modify_raw(con.ok_or("no connection")?, modifies).await,
                    }
                }
            })
            .await?;
        let stored: Option<Vec<u8>> = redis::cmd("GET").arg(MODEL_KEY).query_async(&mut con).await?;
        let version = serde_json::from_slice::<BenchModel>(&stored.ok_or("the model is gone")?)?.version;
        if version != modifies {
            return Err(format!(
                "WRONG VERSION ({side:?}): the model is at version {version} after {modifies} modifies"
            )
            .into());
        }
        Ok(Sample::new(&timed, modifies, 0))
    }
}

/// `Synced::modify`, `modifies` times; checks each stored version.
async fn modify_statehouse(mut synced: Synced<BenchModel>, modifies: u64) -> Res<u64> {
    for i in 1..=modifies {
        let stored = synced.modify(|model| model.version += 1).await?;
        if stored.version != i {
            return Err(format!("modify stored version {} where {i} was expected", stored.version).into());
        }
    }
    Ok(modifies)
}

/// The same with redis-rs: `WATCH`+`GET` pipelined, decode, change, encode, then
/// `MULTI`/`SET … KEEPTTL`/`EXEC`, starting over on an aborted EXEC.
async fn modify_raw(mut con: MultiplexedConnection, modifies: u64) -> Res<u64> {
    for i in 1..=modifies {
        loop {
            let (old,): (Option<Vec<u8>>,) = redis::pipe()
                .cmd("WATCH")
                .arg(MODEL_KEY)
                .ignore()
                .cmd("GET")
                .arg(MODEL_KEY)
                .query_async(&mut con)
                .await?;
            let mut model = match old {
                Some(bytes) => serde_json::from_slice::<BenchModel>(&bytes)?,
                None => BenchModel::default(),
            };
            model.version += 1;
            let new = serde_json::to_vec(&model)?;
            let committed: Option<()> = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(MODEL_KEY)
                .arg(new)
                .arg("KEEPTTL")
                .ignore()
                .query_async(&mut con)
                .await?;
            if committed.is_some() {
                if model.version != i {
                    return Err(format!("stored version {} where {i} was expected", model.version).into());
                }
                break;
            }
        }
    }
    Ok(modifies)
}

async fn pairs_statehouse(docs: Documents, keys: Arc<[String]>, mut doc: Doc, pairs: u64) -> Res<u64> {
    for i in 0..pairs {
        let key = &keys[i as usize % keys.len()];
        doc.id = i;
        docs.set(key, &doc).await?;
        let got: Doc = docs.get(key).await?.ok_or("GET found nothing")?;
        check_id(&got, i)?;
    }
    Ok(pairs)
}

async fn pairs_raw(mut con: ConnectionManager, keys: Arc<[String]>, mut doc: Doc, pairs: u64) -> Res<u64> {
    for i in 0..pairs {
        let key = &keys[i as usize % keys.len()];
        doc.id = i;
        let bytes = serde_json::to_vec(&doc)?;
        redis::cmd("SET").arg(key).arg(bytes).exec_async(&mut con).await?;
        let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut con).await?;
        let got: Doc = serde_json::from_slice(&bytes.ok_or("GET found nothing")?)?;
        check_id(&got, i)?;
    }
    Ok(pairs)
}

async fn mget_statehouse(docs: Documents, keys: Arc<[String]>, calls: u64) -> Res<u64> {
    for _ in 0..calls {
        let fetched = docs.mget::<Doc>(&keys).await?;
        if fetched.len() != keys.len() {
            return Err("MGET answered the wrong number of values".into());
        }
        for (i, doc) in fetched.into_iter().enumerate() {
            check_id(&doc?.ok_or("MGET found nothing")?, i as u64)?;
        }
    }
    Ok(calls)
}

async fn mget_raw(mut con: ConnectionManager, keys: Arc<[String]>, calls: u64) -> Res<u64> {
    for _ in 0..calls {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&*keys).query_async(&mut con).await?;
        // Consuming `values` frees each value right after it is decoded, as statehouse does.
        let fetched = values
            .into_iter()
            .map(|value| match value {
                Some(bytes) => serde_json::from_slice::<Doc>(&bytes).map(Some),
                None => Ok(None),
            })
            .collect::<Vec<_>>();
        if fetched.len() != keys.len() {
            return Err("MGET answered the wrong number of values".into());
        }
        for (i, doc) in fetched.into_iter().enumerate() {
            check_id(&doc?.ok_or("MGET found nothing")?, i as u64)?;
        }
    }
    Ok(calls)
}

fn check_id(doc: &Doc, expected: u64) -> Res<()> {
    if doc.id == expected {
        Ok(())
    } else {
        Err(format!("read back document {} where {expected} was expected", doc.id).into())
    }
}

/// statehouse's atomic update through the facade; returns how often the closure ran.
async fn increment_statehouse(docs: Documents, increments: u64) -> Res<u64> {
    let mut runs = 0u64;
    for _ in 0..increments {
        let stored = docs
            .update(COUNTER_KEY, |old: Option<Counter>| {
                runs += 1;
                Update::Set(Counter {
                    count: old.map_or(0, |c| c.count) + 1,
                })
            })
            .await?;
        stored.ok_or("the update stored nothing")?;
    }
    Ok(runs)
}

/// The naive optimistic loop as commonly written with redis-rs: WATCH; GET; MULTI/SET/EXEC; on an
/// aborted EXEC, start over at once (no backoff). Returns how many attempts it made.
async fn increment_naive(mut con: MultiplexedConnection, increments: u64) -> Res<u64> {
    let mut runs = 0u64;
    for _ in 0..increments {
        loop {
            runs += 1;
            redis::cmd("WATCH").arg(COUNTER_KEY).exec_async(&mut con).await?;
            let old: Option<Vec<u8>> = redis::cmd("GET").arg(COUNTER_KEY).query_async(&mut con).await?;
            let count = match old {
                Some(bytes) => serde_json::from_slice::<Counter>(&bytes)?.count,
                None => 0,
            };
            let new = serde_json::to_vec(&Counter { count: count + 1 })?;
            let committed: Option<()> = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(COUNTER_KEY)
                .arg(new)
                .ignore()
                .query_async(&mut con)
                .await?;
            if committed.is_some() {
                break;
            }
        }
    }
    Ok(runs)
}

/// `redis-benchmark`, if it can be run.
#[derive(Debug)]
enum RedisBenchmark {
    Available {
        port: u16,
        /// Requests per test at `-c 1` and at `-c 64`.
        requests_c1: u64,
        requests_c64: u64,
    },
    Missing(String),
}

/// One `redis-benchmark -t set,get` result.
#[derive(Debug, Clone, Copy)]
struct RbSample {
    set: f64,
    get: f64,
}

impl RbSample {
    /// ops/s of an even SET/GET mix: the harmonic mean of the two rates (a SET and a GET take
    /// `1/set + 1/get` seconds).
    fn combined(&self) -> f64 {
        2.0 / (1.0 / self.set + 1.0 / self.get)
    }
}

impl RedisBenchmark {
    fn probe(server: &RedisServer, requests_c1: u64, requests_c64: u64) -> Self {
        match Command::new("redis-benchmark").arg("--version").output() {
            Ok(out) if out.status.success() => Self::Available {
                port: server.port(),
                requests_c1,
                requests_c64,
            },
            Ok(out) => Self::Missing(format!("`redis-benchmark --version` failed with {}", out.status)),
            Err(e) => Self::Missing(format!("cannot run `redis-benchmark` from PATH: {e}")),
        }
    }

    /// Runs `redis-benchmark` with `clients` connections. Blocking: it is called from the future
    /// `block_on` drives on the main thread, never from a worker, and nothing else runs meanwhile.
    fn run(&self, clients: usize) -> Res<RbSample> {
        let Self::Available {
            port,
            requests_c1,
            requests_c64,
        } = *self
        else {
            return Err("redis-benchmark is not available".into());
        };
        let requests = if clients == 1 { requests_c1 } else { requests_c64 };
        let output = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "set,get", "-d", "1024", "--csv"])
            .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "redis-benchmark -c {clients} failed with {}: {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let rps = |test: &str| -> Res<f64> {
            let prefix = format!("\"{test}\",\"");
            let line = stdout
                .lines()
                .find(|line| line.starts_with(&prefix))
                .ok_or_else(|| format!("no {test} line in redis-benchmark's output: {stdout}"))?;
            let value = line[prefix.len()..].split('"').next().unwrap_or_default();
            Ok(value.parse::<f64>().map_err(|e| format!("rps {value:?}: {e}"))?)
        };
        Ok(RbSample {
            set: rps("SET")?,
            get: rps("GET")?,
        })
    }
}

/// The samples of one workload, per side, in round order.
#[derive(Debug, Default)]
struct Pair {
    statehouse: Vec<Sample>,
    raw: Vec<Sample>,
}

#[derive(Debug, Default)]
struct Results {
    seq: Pair,
    conc: Pair,
    mget: Pair,
    update: Pair,
    model: Pair,
    rb_c1: Vec<RbSample>,
    rb_c64: Vec<RbSample>,
}

fn median(mut values: Vec<f64>) -> f64 {
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

fn rates(samples: &[Sample]) -> Vec<f64> {
    samples.iter().map(Sample::rate).collect()
}

/// `12345.6` as `12,346`; `n/a` for NaN.
fn human(value: f64) -> String {
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
    fn last_round(&self) -> String {
        let mut line = String::new();
        for (name, pair) in [
            ("seq", &self.seq),
            ("conc", &self.conc),
            ("mget", &self.mget),
            ("update", &self.update),
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
            ("7. synced modify, 1 task", &self.model, "redis-rs"),
        ]
        .into_iter()
        .filter(|(_, pair, _)| !pair.statehouse.is_empty() || !pair.raw.is_empty())
        .collect();
        if rows.is_empty()
            || self
                .seq
                .statehouse
                .iter()
                .chain(&self.seq.raw)
                .any(|s| s.client_cpu.is_none())
        {
            return;
        }
        println!();
        println!("CPU time per op in µs (medians; client = this process, all threads):");
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

    fn report(&self, options: Options, rb: &RedisBenchmark) {
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
                name: "7. synced-model modify, 1 task, modifies/s (raw: redis-rs WATCH/GET/MULTI/SET/EXEC)"
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
