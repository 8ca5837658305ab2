//! The statehouse benchmark: statehouse beside raw redis-rs, same commands, same server, one run.
//!
//! ```text
//! cargo run --release -p statehouse-tests --bin bench            # full run (about two minutes)
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
//! 7. task `save` of a record from 16 writers, each replacing its own 4 records: `Tasks::save`
//!    against WATCH + GET, then MULTI / EVALSHA of the task-write script / EXEC (ops = saves);
//! 8. task `set_status` with a log line from 16 writers, each on its own task (uncontended),
//!    toggling pending and running, log capped at 10: `Tasks::set_status` against the same
//!    read-modify-write by hand (ops = status changes);
//! 9. a 50-item page of a service's 500 tasks: `Tasks::list_by_service` against `ZRANGE … BYSCORE
//!    REV LIMIT 0 59 WITHSCORES`, `MGET` and a decode of each record (ops = pages);
//! 10. a synced model (the ~1 KiB document and a version) changed by `Synced::modify`, one task,
//!     uncontended, against raw redis-rs doing the same commands (`WATCH`+`GET` pipelined, then
//!     `MULTI`/`SET … KEEPTTL`/`EXEC`; ops = modifies; the final version is checked).
//!
//! (Rows 5 and 6 of the report are the redis-benchmark comparisons.) The task workloads use the
//! same key layout, the same Lua source (checked by its SHA1 against the one statehouse loaded) and
//! `serde_json` of `statehouse::TaskRecord` on both sides.
//! 11. (after the rounds) subjects: `store()` of 20 staged properties against raw `MULTI; HSET;
//!    EXEC`, and 16 tasks of `set_with(counter, +1)` against the naive WATCH/HGET/HSET loop (exact
//!    count).
//! 12. (after the rounds) tenants: a one-field update (`Users::set_field` against raw `HSET`), a
//!     merge-upsert of a handler state returning the merged state (`HandlerStates::merge` against
//!     raw `MULTI; HSET; HGETALL; EXEC` and a decode of every field), and 16 tasks incrementing
//!     one field (`Users::increment` against raw `EVALSHA` of the same increment script; exact
//!     count).
//! 13. (after the rounds) triggers: 10,000 due triggers claimed (batches of 16) and acknowledged by
//!    4 listeners, `Triggers::claim`/`ack` against raw `EVALSHA` of the same claim and ack scripts
//!    (ops = acks, each trigger exactly once); then the delivery delay of 200 triggers due over
//!    1 s to 4 idle `Triggers::listen` listeners (p50/p99 after the due time).
//! 14. (after the rounds) queues: 10,000 items enqueued in tens, then claimed (batches of 20) and
//!    acknowledged by 4 consumers, `Queues` against raw `MULTI`/`EVALSHA` of the same scripts +
//!    `ZADD NX` (ops = items, each exactly once).
//! 15. (after the rounds) config: the latency from `ConfigStore::update` in one `Statehouse` (its
//!     cache holding the entry, so one compare-and-set round trip) to a
//!     `watch` receiver in another seeing it (p50/p99, the ~1 KiB document), next to a raw
//!     `PUBLISH` -> `SUBSCRIBE` round trip of the same bytes, in alternation; and a cached
//!     `fetch` against a raw `GET` + decode of the same document.
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
use statehouse::{
    Documents, PageRequest, Ports, ServiceName, Settings, Statehouse, Synced, SyncedModel, TaskCursor,
    TaskId, TaskRecord, TaskStatus, Tasks, Update, UserId,
};
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
  --only WORKLOAD  run one workload: seq, conc, mget, update, rb, save, status, list, model,
                   subjects, tenants, tq (triggers and queues) or config
                   (for profiling)
  --side SIDE      run one side: statehouse or raw (for profiling; no ratios)
  --fixed-size     fixed round sizes (1000 sequential pairs, 64x20 concurrent pairs, 20 MGETs,
                   16x20 task saves, 16x20 status changes, 20 list pages, 1000 model
                   modifies) instead of sizes
                   calibrated to the round time (for profiling, e.g. callgrind)
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
/// Concurrent writers of the task save and set_status workloads, each on its own tasks (fewer than
/// statehouse's 32 pooled WATCH connections, so no writer waits for one).
const TASK_WRITERS: usize = 16;
/// Records each writer of the task save workload cycles through.
const SAVE_IDS_PER_WRITER: usize = 4;
/// Tasks of the service the list workload pages through.
const LIST_TASKS: usize = 500;
/// Items per page of the list workload.
const LIST_PAGE: usize = 50;
/// Index entries per `ZRANGE` of a listing: the page, one more to know whether another page
/// follows, and statehouse's slack of 8 (`LIST_SLACK` in `adapters/redis/src/tasks.rs`).
const LIST_BATCH: usize = LIST_PAGE + 1 + 8;
/// The log cap of the task workloads (`TaskSpace::with_max_log`), on both sides.
const TASK_MAX_LOG: usize = 10;
/// The message of every status change.
const STATUS_MESSAGE: &str = "checkpoint: 1000 more rows exported";
const SAVE_SERVICE: &str = "bench-save";
const STATUS_SERVICE: &str = "bench-status";
const LIST_SERVICE: &str = "bench-list";
/// The id of the synced model of workload 10.
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
    Save,
    Status,
    List,
    Subjects,
    Tenants,
    TriggersQueues,
    Config,
}

impl Workload {
    /// The workloads that run in rounds, in their order.
    const MEASURED: [Workload; 8] = [
        Workload::Seq,
        Workload::Conc,
        Workload::Mget,
        Workload::Update,
        Workload::Save,
        Workload::Status,
        Workload::List,
        Workload::Model,
    ];
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
                    "save" => Workload::Save,
                    "status" => Workload::Status,
                    "list" => Workload::List,
                    "subjects" => Workload::Subjects,
                    "tenants" => Workload::Tenants,
                    "tq" => Workload::TriggersQueues,
                    "config" => Workload::Config,
                    other => {
                        return Err(format!(
                            "--only {other:?}: expected seq, conc, mget, update, rb, save, status, list, model, \
                             subjects, tenants, tq or config"
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

/// The synced model of workload 10: the sample document, and a version every modify bumps.
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
    /// statehouse's tasks, log capped at [`TASK_MAX_LOG`].
    tasks: Tasks,
    /// Per task writer, the raw side's own connection for its WATCH sections (statehouse's writers
    /// take theirs from its pool).
    raw_txn: Vec<MultiplexedConnection>,
    /// The SHA1 of [`RAW_TASK_WRITE`], checked to be the script statehouse loaded.
    task_write_sha: String,
    /// The record the save workload writes (under each writer's service, user and ids).
    task_record: TaskRecord,
    /// The ids of the list workload's first page, in listing order, and the cursor after it.
    list_expected: Arc<[String]>,
    list_next: TaskCursor,
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
    let space = state.task_space().with_max_log(TASK_MAX_LOG);
    check_task_layout(&space)?;
    let tasks = state.tasks().with_space(space);
    // The task records are written through statehouse, whichever side runs: this also makes
    // statehouse load its scripts on this fresh server, so their SHA1 can be checked.
    let task_record = sample_task("save-0-0", SAVE_SERVICE, "bench-user-0")?;
    populate_tasks(&tasks, &task_record).await?;
    let (list_expected, list_next) = populate_list(&tasks, &task_record).await?;
    let task_write_sha = check_task_write_script(&raw).await?;
    let mut raw_txn = Vec::with_capacity(TASK_WRITERS);
    for _ in 0..TASK_WRITERS {
        raw_txn.push(client.get_multiplexed_async_connection().await?);
    }
    let bench = Bench {
        client,
        docs: state.documents(),
        raw,
        doc,
        task_keys,
        mget_keys,
        server_pid: server.pid().to_string(),
        tasks,
        raw_txn,
        task_write_sha,
        task_record,
        list_expected,
        list_next,
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
    println!("(statehouse/raw ops/s per workload; rb: redis-benchmark set+get ops/s at -c 1/-c 64)");
    println!();
    results.report(options, &rb);
    if options.runs(Workload::Subjects) && options.side.is_none() {
        println!();
        subjects_bench(&state, &bench, options).await?;
    }
    if options.runs(Workload::Tenants) && options.side.is_none() {
        println!();
        tenants_bench(&state, &bench, options).await?;
    }
    if options.runs(Workload::TriggersQueues) && options.side.is_none() {
        println!();
        triggers_queues_bench(&state, &bench, options).await?;
    }
    if options.runs(Workload::Config) && options.side.is_none() {
        println!();
        config_bench(&url, &bench, options).await?;
    }
    println!();
    println!("load average at the end: {}", load_average());
    Ok(())
}

/// Properties per `store()` in the subjects workload.
const SUBJECT_PROPS: usize = 20;
/// The subject of the subjects workload (KRules' key, no subject prefix).
const SUBJECT_KEY: &str = "s:bench:subject";

/// Subjects, after the rounds: `store()` of 20 staged properties against raw `MULTI; HSET (20
/// fields); EXEC`, and 16 tasks of `set_with(counter, +1)` against the naive WATCH/HGET/HSET loop
/// (exact count required). Median ratios of `options.rounds` runs, against the targets.
async fn subjects_bench(state: &Statehouse, bench: &Bench, options: Options) -> Res<()> {
    let subjects = state.subjects();
    let stores = if options.quick { 300 } else { 2_000 };
    let increments = options.increments;
    let mut store_ratios = Vec::new();
    let mut contended_ratios = Vec::new();
    // Round 0 warms up (connections, the handle's first load, caches) and is not counted.
    for round in 0..=options.rounds {
        let mut contended_rates = [0.0; 2];
        // Uncontended store() of 20 staged properties, both sides in alternating slices.
        let mut store_samples: [Option<Sample>; 2] = [None, None];
        for slice in 0..options.slices {
            for side in options.sides(round * options.slices + slice) {
                let sample = bench
                    .subject_stores(&subjects, side, (stores / options.slices as u64).max(1))
                    .await?;
                let i = usize::from(side == Side::Raw);
                store_samples[i] = Some(match store_samples[i] {
                    Some(sum) => sum.plus(&sample),
                    None => sample,
                });
            }
        }
        for side in options.sides(round) {
            let i = usize::from(side == Side::Raw);

            // Contended set_with: 16 tasks, one property.
            let mut con = bench.raw.clone();
            redis::cmd("DEL").arg(SUBJECT_KEY).exec_async(&mut con).await?;
            let mut dedicated = Vec::new();
            if side == Side::Raw {
                for _ in 0..UPDATE_TASKS {
                    dedicated.push(bench.client.get_multiplexed_async_connection().await?);
                }
            }
            let mut dedicated = dedicated.into_iter();
            let timed = bench
                .timed(UPDATE_TASKS, |_| {
                    let subjects = subjects.clone();
                    let con = dedicated.next();
                    async move {
                        match side {
                            Side::Statehouse => {
                                let mut subject = subjects.subject("bench:subject")?;
                                for _ in 0..increments {
                                    subject
                                        .set_with("counter", |n: Option<u64>| n.unwrap_or(0) + 1)
                                        .await?;
                                }
                                Ok(increments)
                            }
                            Side::Raw => hincrement_naive(con.ok_or("no connection")?, increments).await,
                        }
                    }
                })
                .await?;
            let expected = UPDATE_TASKS as u64 * increments;
            let stored: Option<String> = redis::cmd("HGET")
                .arg(SUBJECT_KEY)
                .arg("pcounter")
                .query_async(&mut con)
                .await?;
            if stored.as_deref() != Some(expected.to_string().as_str()) {
                return Err(format!(
                    "WRONG COUNT ({side:?}): the subject counter is {stored:?}, expected {expected}"
                )
                .into());
            }
            contended_rates[i] = expected as f64 / timed.elapsed.as_secs_f64().max(1e-9);
        }
        if round == 0 {
            continue;
        }
        let [Some(store_sh), Some(store_raw)] = store_samples else {
            return Err("the subjects workload measured no store()".into());
        };
        store_ratios.push(store_sh.rate() / store_raw.rate());
        contended_ratios.push(contended_rates[0] / contended_rates[1]);
        let cpu = |sample: &Sample| {
            sample
                .client_us()
                .map_or("n/a".to_owned(), |us| format!("{us:.1} us"))
        };
        println!(
            "subjects round {}/{}: store() of {SUBJECT_PROPS} {:.0}/s vs raw {:.0}/s (client CPU per store {} vs {}); \
             set_with {UPDATE_TASKS}x{increments} {:.0}/s vs naive {:.0}/s",
            round,
            options.rounds,
            store_sh.rate(),
            store_raw.rate(),
            cpu(&store_sh),
            cpu(&store_raw),
            contended_rates[0],
            contended_rates[1],
        );
    }
    let store = median(store_ratios);
    let contended = median(contended_ratios);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "subjects: store() {store:.2}x raw (target >= 0.9: {}), contended set_with {contended:.2}x the naive \
         loop (target >= 1.5: {}), counts exact",
        verdict(store >= 0.9),
        verdict(contended >= 1.5),
    );
    Ok(())
}

/// The user hash of the tenants workload (tenant `bench`, user `bench-user`).
const TENANT_USER_KEY: &str = "t:{bench}:user:bench-user";
/// The handler state hash of the tenants workload.
const TENANT_HANDLER_KEY: &str = "t:{bench}:handler:bench-user:chat";

/// The three tenant workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TenantOp {
    /// One-field update: `Users::set_field` against `HSET`.
    Field,
    /// Merge-upsert returning the merged state: `HandlerStates::merge` against `MULTI; HSET;
    /// HGETALL; EXEC` and a decode of every field.
    Merge,
    /// 16 tasks incrementing one field: `Users::increment` against `EVALSHA` of the same script.
    Increment,
}

/// What the tenant workloads share.
struct TenantBench<'a> {
    bench: &'a Bench,
    users: statehouse::Users,
    handlers: statehouse::HandlerStates,
    script: redis::Script,
}

impl TenantBench<'_> {
    /// Runs `n` ops of `op` on `side` (for `Increment`, `n` per task, 16 tasks; the count is
    /// checked); returns the ops done and the time they took.
    async fn run(&self, op: TenantOp, side: Side, n: u64) -> Res<(u64, Duration)> {
        let mut con = self.bench.raw.clone();
        match op {
            TenantOp::Field => {
                let start = Instant::now();
                for i in 0..n {
                    match side {
                        Side::Statehouse => self.users.set_field("bench-user", "step", &i).await?,
                        Side::Raw => {
                            redis::cmd("HSET")
                                .arg(TENANT_USER_KEY)
                                .arg("step")
                                .arg(serde_json::to_string(&i)?)
                                .exec_async(&mut con)
                                .await?;
                        }
                    }
                }
                Ok((n, start.elapsed()))
            }
            TenantOp::Merge => {
                let start = Instant::now();
                for i in 0..n {
                    let merged: HashMap<String, serde_json::Value> = match side {
                        Side::Statehouse => {
                            self.handlers
                                .merge("bench-user", "chat", &serde_json::json!({"step": i}))
                                .await?
                        }
                        Side::Raw => {
                            let (fields,): (Vec<(String, Vec<u8>)>,) = redis::pipe()
                                .atomic()
                                .cmd("HSET")
                                .arg(TENANT_HANDLER_KEY)
                                .arg("step")
                                .arg(serde_json::to_string(&i)?)
                                .ignore()
                                .cmd("HGETALL")
                                .arg(TENANT_HANDLER_KEY)
                                .query_async(&mut con)
                                .await?;
                            let mut merged = HashMap::with_capacity(fields.len());
                            for (field, value) in fields {
                                merged.insert(field, serde_json::from_slice(&value)?);
                            }
                            merged
                        }
                    };
                    if merged.len() != 3 || merged.get("step") != Some(&serde_json::json!(i)) {
                        return Err(format!("WRONG MERGE ({side:?}): {merged:?}").into());
                    }
                }
                Ok((n, start.elapsed()))
            }
            TenantOp::Increment => {
                redis::cmd("HDEL")
                    .arg(TENANT_USER_KEY)
                    .arg("count")
                    .exec_async(&mut con)
                    .await?;
                let timed = self
                    .bench
                    .timed(UPDATE_TASKS, |_| {
                        let users = self.users.clone();
                        let script = self.script.clone();
                        let mut con = self.bench.raw.clone();
                        async move {
                            for _ in 0..n {
                                match side {
                                    Side::Statehouse => {
                                        users.increment("bench-user", "count", 1).await?;
                                    }
                                    Side::Raw => {
                                        let _: i64 = script
                                            .key(TENANT_USER_KEY)
                                            .arg("count")
                                            .arg(1)
                                            .arg(0)
                                            .invoke_async(&mut con)
                                            .await?;
                                    }
                                }
                            }
                            Ok(n)
                        }
                    })
                    .await?;
                let expected = UPDATE_TASKS as u64 * n;
                let stored: Option<String> = redis::cmd("HGET")
                    .arg(TENANT_USER_KEY)
                    .arg("count")
                    .query_async(&mut con)
                    .await?;
                if stored.as_deref() != Some(expected.to_string().as_str()) {
                    return Err(format!(
                        "WRONG COUNT ({side:?}): the tenant counter is {stored:?}, expected {expected}"
                    )
                    .into());
                }
                Ok((expected, timed.elapsed))
            }
        }
    }
}

/// Tenants, after the rounds: a one-field update, a merge-upsert returning the merged state, and a
/// contended increment (16 tasks, one field, exact count), each against raw redis-rs sending the
/// same commands. In each round the two sides run in alternating slices (the order flipping each
/// slice); median ratios of `options.rounds` rounds, against the target (>= 0.9x raw).
async fn tenants_bench(state: &Statehouse, bench: &Bench, options: Options) -> Res<()> {
    let tenant = state.tenant("bench")?;
    let run = TenantBench {
        bench,
        users: tenant.users(),
        handlers: tenant.handler_states(),
        script: redis::Script::new(statehouse_redis::TENANT_INCREMENT_SCRIPT),
    };
    let mut con = bench.raw.clone();
    // The raw increments must run the script statehouse runs: after one statehouse increment on
    // this fresh server, the server holds the raw side's script (same SHA1).
    run.users.increment("bench-user", "warm", 1).await?;
    let (loaded,): (Vec<bool>,) = redis::pipe()
        .cmd("SCRIPT")
        .arg("EXISTS")
        .arg(run.script.get_hash())
        .query_async(&mut con)
        .await?;
    if loaded != [true] {
        return Err("the raw side runs another increment script than statehouse".into());
    }
    run.handlers
        .set(
            "bench-user",
            "chat",
            &serde_json::json!({"topic": "billing", "lang": "en", "step": 0}),
        )
        .await?;
    let per_slice = |op: TenantOp| -> u64 {
        match op {
            TenantOp::Increment => options.increments,
            TenantOp::Field | TenantOp::Merge => {
                if options.quick {
                    100
                } else {
                    1_000
                }
            }
        }
    };
    let ops = [TenantOp::Field, TenantOp::Merge, TenantOp::Increment];
    let mut ratios: [Vec<f64>; 3] = Default::default();
    // Round 0 warms up and is not counted.
    for round in 0..=options.rounds {
        let mut rates = [[0.0; 2]; 3];
        for (k, op) in ops.into_iter().enumerate() {
            let mut done = [(0u64, Duration::ZERO); 2];
            for slice in 0..options.slices {
                for side in options.sides(round + slice) {
                    let (n, took) = run.run(op, side, per_slice(op)).await?;
                    let i = usize::from(side == Side::Raw);
                    done[i].0 += n;
                    done[i].1 += took;
                }
            }
            for i in 0..2 {
                rates[k][i] = done[i].0 as f64 / done[i].1.as_secs_f64().max(1e-9);
            }
        }
        if round == 0 {
            continue;
        }
        for (ratio, rate) in ratios.iter_mut().zip(rates) {
            ratio.push(rate[0] / rate[1]);
        }
        println!(
            "tenants round {}/{}: set_field {:.0}/s vs raw {:.0}/s; merge {:.0}/s vs raw {:.0}/s; \
             increment {UPDATE_TASKS} tasks {:.0}/s vs raw {:.0}/s",
            round,
            options.rounds,
            rates[0][0],
            rates[0][1],
            rates[1][0],
            rates[1][1],
            rates[2][0],
            rates[2][1],
        );
    }
    let [field, merge, increment] = ratios.map(median);
    let verdict = |ratio: f64| if ratio >= 0.9 { "met" } else { "MISSED" };
    println!(
        "tenants: one-field update {field:.2}x raw ({}), merge-upsert {merge:.2}x raw ({}), contended \
         increment {increment:.2}x raw ({}); target >= 0.9 each; counts exact",
        verdict(field),
        verdict(merge),
        verdict(increment),
    );
    Ok(())
}

/// The naive optimistic loop on a hash field: WATCH; HGET; MULTI/HSET/EXEC; start over at once on
/// an aborted EXEC. Returns how many increments it made.
async fn hincrement_naive(mut con: MultiplexedConnection, increments: u64) -> Res<u64> {
    for _ in 0..increments {
        loop {
            redis::cmd("WATCH").arg(SUBJECT_KEY).exec_async(&mut con).await?;
            let old: Option<String> = redis::cmd("HGET")
                .arg(SUBJECT_KEY)
                .arg("pcounter")
                .query_async(&mut con)
                .await?;
            let count: u64 = match old {
                Some(text) => serde_json::from_str(&text)?,
                None => 0,
            };
            let committed: Option<()> = redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(SUBJECT_KEY)
                .arg("pcounter")
                .arg(serde_json::to_string(&(count + 1))?)
                .ignore()
                .query_async(&mut con)
                .await?;
            if committed.is_some() {
                break;
            }
        }
    }
    Ok(increments)
}

/// The config entry of the config workload.
const CONFIG_NAME: &str = "bench";

/// The `q`-quantile (0..=1) of sorted `values`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(duration: Duration) -> String {
    format!("{:.0} us", duration.as_secs_f64() * 1e6)
}

/// Config, after the rounds: update -> remote watcher latency against raw PUBLISH -> SUBSCRIBE,
/// and a cached fetch against a raw GET + decode. Two `Statehouse` instances (two connections,
/// two caches), like two services.
async fn config_bench(url: &str, bench: &Bench, options: Options) -> Res<()> {
    use futures_util::StreamExt as _;

    let writer = Statehouse::with_settings(Settings::new(url)).await?.config();
    let reader = Statehouse::with_settings(Settings::new(url)).await?.config();
    let mut doc = bench.doc.clone();
    writer.update(CONFIG_NAME, &doc).await?;
    // The writer caches the entry (a service that reads the config it
    // writes): with its cache current, an update is one compare-and-set
    // round trip.
    writer.fetch::<Doc>(CONFIG_NAME).await?;
    let mut rx = reader.watch::<Doc>(CONFIG_NAME).await?;

    let channel = "bench:raw-changes";
    let mut subscriber = bench.client.get_async_pubsub().await?;
    subscriber.subscribe(channel).await?;
    let mut messages = subscriber.into_on_message();
    let mut publisher = bench.client.get_multiplexed_async_connection().await?;
    let payload = serde_json::to_vec(&doc)?;

    let samples = if options.quick { 300 } else { 3_000 };
    let warm = samples / 10;
    let (mut seen, mut committed, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..warm + samples {
        // Alternate which side goes first.
        for side in options.sides(i) {
            match side {
                Side::Statehouse => {
                    doc.id = i as u64;
                    let start = Instant::now();
                    let version = writer.update(CONFIG_NAME, &doc).await?;
                    let done = start.elapsed();
                    let snapshot = tokio::time::timeout(
                        Duration::from_secs(10),
                        rx.wait_for(|s| s.current.as_ref().is_some_and(|c| c.version >= version)),
                    )
                    .await
                    .map_err(|_| format!("the watcher did not see version {version} within 10 s"))??
                    .clone();
                    let latency = start.elapsed();
                    if snapshot.current.map(|c| c.value.id) != Some(i as u64) {
                        return Err(format!("the watcher holds another value than update {i}").into());
                    }
                    if i >= warm {
                        seen.push(latency);
                        committed.push(latency.saturating_sub(done));
                    }
                }
                Side::Raw => {
                    let start = Instant::now();
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(&payload)
                        .exec_async(&mut publisher)
                        .await?;
                    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                        .await
                        .map_err(|_| "the raw subscriber got nothing within 10 s")?
                        .ok_or("the raw subscription ended")?;
                    let latency = start.elapsed();
                    if message.get_payload_bytes().len() != payload.len() {
                        return Err("the raw subscriber got another payload".into());
                    }
                    if i >= warm {
                        raw.push(latency);
                    }
                }
            }
        }
    }
    for list in [&mut seen, &mut committed, &mut raw] {
        list.sort_unstable();
    }
    let (p50, p99) = (quantile(&seen, 0.5), quantile(&seen, 0.99));
    let (c50, c99) = (quantile(&committed, 0.5), quantile(&committed, 0.99));
    let (r50, r99) = (quantile(&raw, 0.5), quantile(&raw, 0.99));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "config: update -> remote watcher ({samples} samples, ~{} B document): p50 {}, p99 {}; \
         from the update's return: p50 {}, p99 {}",
        payload.len(),
        micros(p50),
        micros(p99),
        micros(c50),
        micros(c99),
    );
    println!(
        "config: raw PUBLISH -> SUBSCRIBE of the same bytes: p50 {}, p99 {}; p99 {:.2}x raw (target <= 2: {}), \
         from the update's return {:.2}x",
        micros(r50),
        micros(r99),
        ratio(p99, r99),
        verdict(ratio(p99, r99) <= 2.0),
        ratio(c99, r99),
    );

    // Cached fetch against a raw GET + decode of the same document.
    let key = format!("config:{CONFIG_NAME}");
    let mut raw_con = bench.raw.clone();
    let fetches: u32 = if options.quick { 20_000 } else { 200_000 };
    let gets: u32 = if options.quick { 2_000 } else { 20_000 };
    let mut fetch_ratios = Vec::new();
    for round in 0..=options.rounds {
        let start = Instant::now();
        for _ in 0..fetches {
            let fetched = reader.fetch::<Doc>(CONFIG_NAME).await?;
            std::hint::black_box(&fetched);
        }
        let fetch = start.elapsed() / fetches;
        let start = Instant::now();
        for _ in 0..gets {
            let bytes: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut raw_con).await?;
            let entry: serde_json::Value = serde_json::from_slice(&bytes)?;
            let decoded: Doc = serde_json::from_value(entry["value"].clone())?;
            std::hint::black_box(&decoded);
        }
        let get = start.elapsed() / gets;
        if round > 0 {
            fetch_ratios.push(ratio(get, fetch));
            println!(
                "config round {round}/{}: cached fetch {:.2} us, raw GET + decode {:.1} us",
                options.rounds,
                fetch.as_secs_f64() * 1e6,
                get.as_secs_f64() * 1e6,
            );
        }
    }
    let speedup = median(fetch_ratios);
    println!(
        "config: cached fetch {speedup:.0}x faster than a Redis GET + decode (target >= 100: {})",
        verdict(speedup >= 100.0)
    );
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

/// The size of one slice of each workload.
#[derive(Debug)]
struct Sizes {
    seq_pairs: u64,
    conc_pairs: u64,
    mget_calls: u64,
    /// Per task; the update runs in one slice.
    increments: u64,
    /// Per task writer.
    saves: u64,
    /// Per task writer; even.
    status_changes: u64,
    list_pages: u64,
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

    /// `stores` × `store()` of [`SUBJECT_PROPS`] staged properties through one loaded `Subject`
    /// handle, or the same `MULTI; HSET …; EXEC` raw, in one task.
    async fn subject_stores(&self, subjects: &statehouse::Subjects, side: Side, stores: u64) -> Res<Sample> {
        // Loaded before the clock starts, as a service's handle would be.
        let mut subject = subjects.subject("bench:subject")?;
        subject.get::<serde_json::Value>("prop0").await?;
        let mut subject = Some(subject);
        let raw = self.raw.clone();
        let timed = self
            .timed(1, |_| {
                let subject = subject.take();
                let mut con = raw.clone();
                async move {
                    match (side, subject) {
                        (Side::Statehouse, Some(mut subject)) => {
                            for n in 0..stores {
                                for p in 0..SUBJECT_PROPS {
                                    subject.set(&format!("prop{p}"), &n).await?;
                                }
                                subject.store().await?;
                            }
                        }
                        (Side::Statehouse, None) => return Err("no subject handle".into()),
                        (Side::Raw, _) => {
                            for n in 0..stores {
                                let mut pipe = redis::pipe();
                                pipe.atomic();
                                let hset = pipe.cmd("HSET").arg(SUBJECT_KEY);
                                for p in 0..SUBJECT_PROPS {
                                    hset.arg(format!("pprop{p}")).arg(serde_json::to_string(&n)?);
                                }
                                hset.ignore();
                                pipe.exec_async(&mut con).await?;
                            }
                        }
                    }
                    Ok(stores)
                }
            })
            .await?;
        Ok(Sample::new(&timed, stores, 0))
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

// ---------------------------------------------------------------------------------------------
// Task lifecycle workloads (7–9).

/// statehouse's `TASK_WRITE` script (`adapters/redis/src/scripts.rs`), which the raw side runs too,
/// so both sides send the same commands. At start-up the run still checks that its SHA1 is a script
/// the fresh server got from statehouse (`SCRIPT EXISTS` before the raw side loads anything).
const RAW_TASK_WRITE: &str = statehouse_redis::TASK_WRITE_SCRIPT;

/// The Redis keys of the task layout, as a raw redis-rs program would write them for ids that need
/// no escaping; [`check_task_layout`] checks them against statehouse's.
fn raw_record_key(id: &str) -> String {
    format!("{{tasks}}:task:{id}")
}

fn raw_service_key(service: &str) -> String {
    format!("{{tasks}}:by-service:{service}")
}

fn raw_user_key(user: &str) -> String {
    format!("{{tasks}}:by-user:{user}")
}

/// The TTL the raw side gives records and indexes: statehouse's default, 90 days.
const TASK_TTL_MS: u64 = 90 * 24 * 3600 * 1000;

/// Stops unless the raw side's keys and TTL are statehouse's.
fn check_task_layout(space: &statehouse::TaskSpace) -> Res<()> {
    let keys = space.keys();
    let same = keys.record("save-1-2") == raw_record_key("save-1-2")
        && keys.by_service(SAVE_SERVICE) == raw_service_key(SAVE_SERVICE)
        && keys.by_user("bench-user-3") == raw_user_key("bench-user-3")
        && space.ttl().as_millis() == TASK_TTL_MS
        && space.max_log() == Some(TASK_MAX_LOG);
    if same {
        Ok(())
    } else {
        Err(format!(
            "the raw side's task layout differs from statehouse's: {} / {}",
            keys.record("save-1-2"),
            raw_record_key("save-1-2")
        )
        .into())
    }
}

/// Checks that the raw side's copy of the task-write script is the one statehouse loaded on this
/// server, then loads it for the raw side. Returns its SHA1.
async fn check_task_write_script(raw: &ConnectionManager) -> Res<String> {
    let mut con = raw.clone();
    let sha = redis::Script::new(RAW_TASK_WRITE).get_hash().to_owned();
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query_async(&mut con)
        .await?;
    if exists != [true] {
        return Err(format!(
            "the task-write script (SHA1 {sha}) is not a script statehouse loaded: \
             the raw side would not run the same commands"
        )
        .into());
    }
    let loaded: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(RAW_TASK_WRITE)
        .query_async(&mut con)
        .await?;
    if loaded != sha {
        return Err(format!("SCRIPT LOAD answered {loaded}, expected {sha}").into());
    }
    Ok(sha)
}

/// A task record of the size the task workloads use: some metadata and a full log.
fn sample_task(id: &str, service: &str, user: &str) -> Res<TaskRecord> {
    let at = DateTime::from_timestamp(1_700_000_000, 0).ok_or("bad timestamp")?;
    let mut record = TaskRecord::new(
        TaskId::new(id)?,
        ServiceName::new(service)?,
        UserId::new(user)?,
        at,
    );
    let metadata = serde_json::json!({
        "kind": "export",
        "format": "csv",
        "source": "warehouse.orders",
        "destination": "s3://exports/2026/11/orders.csv",
        "rows": 120_000,
        "priority": 3,
    });
    record.metadata = metadata.as_object().cloned().ok_or("metadata is an object")?;
    for i in 0..TASK_MAX_LOG {
        record.append_log(STATUS_MESSAGE, at + chrono::Duration::seconds(i as i64));
    }
    Ok(record)
}

/// The ids of the save workload's writer `writer`.
fn save_ids(writer: usize) -> Res<Vec<TaskId>> {
    (0..SAVE_IDS_PER_WRITER)
        .map(|i| Ok(TaskId::new(format!("save-{writer}-{i}"))?))
        .collect()
}

/// The task of the set_status workload's writer `writer`.
fn status_id(writer: usize) -> String {
    format!("status-{writer}")
}

/// Writes the records of the save and set_status workloads: each set_status task is pending with
/// a full log, as every slice leaves it.
async fn populate_tasks(tasks: &Tasks, template: &TaskRecord) -> Res<()> {
    for writer in 0..TASK_WRITERS {
        let mut record = template.clone();
        record.user = UserId::new(format!("bench-user-{writer}"))?;
        for id in save_ids(writer)? {
            record.id = id;
            tasks.save(&record).await?;
        }
        record.id = TaskId::new(status_id(writer))?;
        record.service = ServiceName::new(STATUS_SERVICE)?;
        tasks.save(&record).await?;
    }
    Ok(())
}

/// Writes the list workload's tasks; returns the ids of its first page in listing order (newest
/// first, then by id descending) and the cursor after that page.
async fn populate_list(tasks: &Tasks, template: &TaskRecord) -> Res<(Arc<[String]>, TaskCursor)> {
    let mut record = template.clone();
    record.service = ServiceName::new(LIST_SERVICE)?;
    let mut positions = Vec::with_capacity(LIST_TASKS);
    for i in 0..LIST_TASKS {
        record.id = TaskId::new(format!("list-{i:04}"))?;
        record.user = UserId::new(format!("bench-user-{}", i % 10))?;
        let stored = tasks.save(&record).await?;
        positions.push(TaskCursor::after(&stored));
    }
    positions.sort_by(|a, b| (b.updated_millis, b.id.as_str()).cmp(&(a.updated_millis, a.id.as_str())));
    let next = positions[LIST_PAGE - 1].clone();
    let expected = positions[..LIST_PAGE]
        .iter()
        .map(|c| c.id.as_str().to_owned())
        .collect();
    Ok((expected, next))
}

/// The fields of a stored record the raw save needs: the indexes it leaves if they change.
#[derive(Deserialize)]
struct Owners {
    service: String,
    user: String,
}

impl Bench {
    /// [`TASK_WRITERS`] writers each saving `saves` records, cycling through its own.
    async fn task_save(&self, side: Side, saves: u64) -> Res<Sample> {
        let timed = self
            .timed(TASK_WRITERS, |writer| {
                let tasks = self.tasks.clone();
                let con = self.raw_txn[writer].clone();
                let sha = self.task_write_sha.clone();
                let mut record = self.task_record.clone();
                let ids = save_ids(writer);
                async move {
                    let ids = ids?;
                    record.user = UserId::new(format!("bench-user-{writer}"))?;
                    match side {
                        Side::Statehouse => save_statehouse(tasks, record, ids, saves).await,
                        Side::Raw => save_raw(con, sha, record, ids, saves).await,
                    }
                }
            })
            .await?;
        // Outside the clock: the records and their indexes are as written.
        let mut con = self.raw.clone();
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg(raw_record_key("save-0-0"))
            .query_async(&mut con)
            .await?;
        let stored: TaskRecord = serde_json::from_slice(&stored.ok_or("a saved task is missing")?)?;
        let in_index: u64 = redis::cmd("ZCARD")
            .arg(raw_service_key(SAVE_SERVICE))
            .query_async(&mut con)
            .await?;
        if stored.log.len() != TASK_MAX_LOG
            || stored.user.as_str() != "bench-user-0"
            || in_index != (TASK_WRITERS * SAVE_IDS_PER_WRITER) as u64
        {
            return Err(format!(
                "WRONG TASK ({side:?}): after saving, save-0-0 has {} log lines and user {}, and the \
                 service index {in_index} entries",
                stored.log.len(),
                stored.user
            )
            .into());
        }
        let ops = saves * TASK_WRITERS as u64;
        let attempts: u64 = timed.outputs.iter().sum();
        Ok(Sample::new(&timed, ops, attempts.saturating_sub(ops)))
    }

    /// [`TASK_WRITERS`] writers each changing the status of its own task `changes` times (even),
    /// running then pending, with a log line.
    async fn task_status(&self, side: Side, changes: u64) -> Res<Sample> {
        let changes = changes.div_ceil(2) * 2;
        let timed = self
            .timed(TASK_WRITERS, |writer| {
                let tasks = self.tasks.clone();
                let con = self.raw_txn[writer].clone();
                let sha = self.task_write_sha.clone();
                let id = status_id(writer);
                async move {
                    match side {
                        Side::Statehouse => status_statehouse(tasks, id, changes).await,
                        Side::Raw => status_raw(con, sha, id, changes).await,
                    }
                }
            })
            .await?;
        // Outside the clock: the task is pending again, with a full log.
        let mut con = self.raw.clone();
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg(raw_record_key(&status_id(0)))
            .query_async(&mut con)
            .await?;
        let stored: TaskRecord = serde_json::from_slice(&stored.ok_or("a status task is missing")?)?;
        if stored.status != TaskStatus::Pending || stored.log.len() != TASK_MAX_LOG {
            return Err(format!(
                "WRONG TASK ({side:?}): after {changes} status changes, status-0 is {} with {} log lines",
                stored.status,
                stored.log.len()
            )
            .into());
        }
        let ops = changes * TASK_WRITERS as u64;
        let attempts: u64 = timed.outputs.iter().sum();
        Ok(Sample::new(&timed, ops, attempts.saturating_sub(ops)))
    }

    /// One task reading the first page of the listed service `pages` times, checking each.
    async fn task_list(&self, side: Side, pages: u64) -> Res<Sample> {
        let tasks = self.tasks.clone();
        let raw = self.raw.clone();
        let expected = Arc::clone(&self.list_expected);
        let next = self.list_next.clone();
        let timed = self
            .timed(1, move |_| {
                let tasks = tasks.clone();
                let raw = raw.clone();
                let expected = Arc::clone(&expected);
                let next = next.clone();
                async move {
                    match side {
                        Side::Statehouse => list_statehouse(tasks, expected, next, pages).await,
                        Side::Raw => list_raw(raw, expected, next, pages).await,
                    }
                }
            })
            .await?;
        Ok(Sample::new(&timed, pages, 0))
    }
}

async fn save_statehouse(tasks: Tasks, mut record: TaskRecord, ids: Vec<TaskId>, saves: u64) -> Res<u64> {
    for i in 0..saves {
        record.id = ids[i as usize % ids.len()].clone();
        let stored = tasks.save(&record).await?;
        if stored.id != record.id {
            return Err(format!("saved {} where {} was written", stored.id, record.id).into());
        }
    }
    Ok(saves)
}

/// The save as a raw redis-rs program does it, with the commands statehouse sends: `WATCH` and
/// `GET` of the record in one pipeline, then `MULTI`, `EVALSHA` of the task-write script (record,
/// indexes, TTLs), `EXEC`; on an aborted `EXEC`, again. Returns the attempts.
async fn save_raw(
    mut con: MultiplexedConnection,
    sha: String,
    mut record: TaskRecord,
    ids: Vec<TaskId>,
    saves: u64,
) -> Res<u64> {
    let mut attempts = 0;
    for i in 0..saves {
        record.id = ids[i as usize % ids.len()].clone();
        let key = raw_record_key(record.id.as_str());
        loop {
            attempts += 1;
            let (current,): (Option<Vec<u8>>,) = redis::pipe()
                .cmd("WATCH")
                .arg(&key)
                .ignore()
                .cmd("GET")
                .arg(&key)
                .query_async(&mut con)
                .await?;
            let mut keys = vec![
                key.clone(),
                raw_service_key(record.service.as_str()),
                raw_user_key(record.user.as_str()),
            ];
            // Indexes the record leaves, if its service or user changed.
            if let Some(bytes) = current {
                let old: Owners = serde_json::from_slice(&bytes)?;
                if old.service != record.service.as_str() {
                    keys.push(raw_service_key(&old.service));
                }
                if old.user != record.user.as_str() {
                    keys.push(raw_user_key(&old.user));
                }
            }
            record.updated_at = Utc::now();
            record.cap_log(TASK_MAX_LOG);
            let bytes = serde_json::to_vec(&record)?;
            if raw_task_write(&mut con, &sha, &keys, &bytes, &record).await? {
                break;
            }
        }
    }
    Ok(attempts)
}

/// `MULTI; EVALSHA <task write> …; EXEC`: whether it committed.
async fn raw_task_write(
    con: &mut MultiplexedConnection,
    sha: &str,
    keys: &[String],
    bytes: &[u8],
    record: &TaskRecord,
) -> Res<bool> {
    let committed: Option<()> = redis::pipe()
        .atomic()
        .cmd("EVALSHA")
        .arg(sha)
        .arg(keys.len())
        .arg(keys)
        .arg(bytes)
        .arg(TASK_TTL_MS)
        .arg(record.updated_millis())
        .arg(record.id.as_str())
        .arg(2)
        .ignore()
        .query_async(con)
        .await?;
    Ok(committed.is_some())
}

/// Step `i` of a status task: pending -> running on even steps, running -> pending on odd ones.
fn status_step(i: u64) -> (TaskStatus, TaskStatus) {
    if i.is_multiple_of(2) {
        (TaskStatus::Pending, TaskStatus::Running)
    } else {
        (TaskStatus::Running, TaskStatus::Pending)
    }
}

async fn status_statehouse(tasks: Tasks, id: String, changes: u64) -> Res<u64> {
    for i in 0..changes {
        let (from, to) = status_step(i);
        let stored = tasks.set_status(&id, to, Some(STATUS_MESSAGE)).await?;
        // The change was made on the previous one: the log line before the new one has the status
        // the task was in.
        let log = &stored.log;
        if stored.status != to
            || log.len() != TASK_MAX_LOG
            || log[TASK_MAX_LOG - 1].status != to
            || log[TASK_MAX_LOG - 2].status != from
        {
            return Err(format!("set_status on {id}: {from} -> {to} stored {stored:?}").into());
        }
    }
    Ok(changes)
}

/// set_status as a raw redis-rs program does it, with the commands statehouse sends: `WATCH` and
/// `GET` in one pipeline, decode, change, cap the log, encode, then `MULTI`, `EVALSHA`, `EXEC`; on
/// an aborted `EXEC`, again. Returns the attempts.
async fn status_raw(mut con: MultiplexedConnection, sha: String, id: String, changes: u64) -> Res<u64> {
    let key = raw_record_key(&id);
    let mut attempts = 0;
    for i in 0..changes {
        let (from, to) = status_step(i);
        loop {
            attempts += 1;
            let (current,): (Option<Vec<u8>>,) = redis::pipe()
                .cmd("WATCH")
                .arg(&key)
                .ignore()
                .cmd("GET")
                .arg(&key)
                .query_async(&mut con)
                .await?;
            let mut record: TaskRecord = serde_json::from_slice(&current.ok_or("set_status: no such task")?)?;
            if record.status != from {
                return Err(format!(
                    "set_status on {id}: found {} where {from} was written",
                    record.status
                )
                .into());
            }
            let now = Utc::now();
            record.set_status(to, Some(STATUS_MESSAGE), now)?;
            record.cap_log(TASK_MAX_LOG);
            let bytes = serde_json::to_vec(&record)?;
            let keys = [
                key.clone(),
                raw_service_key(record.service.as_str()),
                raw_user_key(record.user.as_str()),
            ];
            if raw_task_write(&mut con, &sha, &keys, &bytes, &record).await? {
                break;
            }
        }
    }
    Ok(attempts)
}

/// Checks a first page against the expected ids and cursor.
fn check_page<'a>(
    ids: impl ExactSizeIterator<Item = &'a str>,
    next: Option<&TaskCursor>,
    expected: &[String],
    expected_next: &TaskCursor,
) -> Res<()> {
    let len = ids.len();
    if len != expected.len() || !ids.zip(expected).all(|(id, want)| id == want) || next != Some(expected_next)
    {
        return Err(format!(
            "WRONG PAGE: {len} items, next {next:?}; expected {} items, next {expected_next}",
            expected.len()
        )
        .into());
    }
    Ok(())
}

async fn list_statehouse(tasks: Tasks, expected: Arc<[String]>, next: TaskCursor, pages: u64) -> Res<u64> {
    for _ in 0..pages {
        let page = tasks
            .list_by_service(LIST_SERVICE, PageRequest::first(LIST_PAGE))
            .await?;
        let records = page.items.into_iter().collect::<Result<Vec<_>, _>>()?;
        check_page(
            records.iter().map(|r| r.id.as_str()),
            page.next.as_ref(),
            &expected,
            &next,
        )?;
    }
    Ok(pages)
}

/// A first page as a raw redis-rs program reads it, with the commands statehouse sends: `ZRANGE …
/// BYSCORE REV LIMIT 0 59 WITHSCORES`, `MGET` of those records, then decode records in order until
/// one more than a page is found (a missing record, or one of another service, is skipped), keep
/// the page and make the cursor after its last item.
async fn list_raw(
    mut con: ConnectionManager,
    expected: Arc<[String]>,
    next: TaskCursor,
    pages: u64,
) -> Res<u64> {
    let index = raw_service_key(LIST_SERVICE);
    for _ in 0..pages {
        let entries: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&index)
            .arg("+inf")
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(LIST_BATCH)
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await?;
        let keys: Vec<String> = entries.iter().map(|(id, _)| raw_record_key(id)).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query_async(&mut con).await?;
        let mut records = Vec::with_capacity(LIST_PAGE + 1);
        let mut positions = Vec::with_capacity(LIST_PAGE + 1);
        for ((id, score), value) in entries.into_iter().zip(values) {
            if records.len() > LIST_PAGE {
                break;
            }
            let Some(bytes) = value else { continue };
            let record: TaskRecord = serde_json::from_slice(&bytes)?;
            if record.service.as_str() != LIST_SERVICE {
                continue;
            }
            records.push(record);
            positions.push((score as i64, id));
        }
        let mut cursor = None;
        if records.len() > LIST_PAGE {
            records.truncate(LIST_PAGE);
            let (score, id) = positions.swap_remove(LIST_PAGE - 1);
            cursor = Some(TaskCursor {
                updated_millis: score,
                id: TaskId::new(id)?,
            });
        }
        check_page(
            records.iter().map(|r| r.id.as_str()),
            cursor.as_ref(),
            &expected,
            &next,
        )?;
    }
    Ok(pages)
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
    save: Pair,
    status: Pair,
    list: Pair,
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
        .collect();
        if rows.is_empty()
            || rows
                .iter()
                .flat_map(|(_, pair, _)| pair.statehouse.iter().chain(&pair.raw))
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
                name: "10. synced-model modify, 1 task, modifies/s (raw: redis-rs WATCH/GET/MULTI/SET/EXEC)"
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

/// Triggers (and queue items) per round of the triggers and queues workload.
const TQ_ITEMS: usize = 10_000;
/// Listeners (consumers) of the triggers and queues workload.
const TQ_WORKERS: usize = 4;
/// The tenant of the triggers and queues workload, and its keys (checked against the layout).
const TQ_TENANT: &str = "bench";
const TQ_DUE: &str = "t:{bench}:triggers:due";
const TQ_CLAIMS: &str = "t:{bench}:triggers:claims";
const TQ_QUEUE: [&str; 4] = [
    "t:{bench}:queue:bench-svc:b:send",
    "t:{bench}:queue-items:bench-svc:b:send",
    "t:{bench}:queue-leases:bench-svc:b:send",
    "t:{bench}:queues:bench-svc",
];
const TQ_PENDING: &str = "svc:{bench-svc}:pending";

/// `SCRIPT LOAD`s `code` (the same source statehouse runs) and returns its SHA1.
async fn load_script(con: &mut ConnectionManager, code: &str) -> Res<String> {
    Ok(redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(code)
        .query_async(con)
        .await?)
}

/// Triggers and queues, after the rounds: claim+ack throughput of 4 listeners, the delivery delay
/// of idle listeners, and enqueue/claim/ack throughput of 4 consumers, each against raw redis-rs
/// running the same scripts. Median ratios of `options.rounds` runs, against the targets.
async fn triggers_queues_bench(state: &Statehouse, bench: &Bench, options: Options) -> Res<()> {
    use statehouse_domain::layout::{ServiceKeys, TenantKeys};
    let keys = TenantKeys::new(TQ_TENANT);
    if keys.triggers_due() != TQ_DUE
        || keys.trigger_claims() != TQ_CLAIMS
        || keys.queue("bench-svc", "b", "send") != TQ_QUEUE[0]
        || keys.queue_items("bench-svc", "b", "send") != TQ_QUEUE[1]
        || keys.queue_leases("bench-svc", "b", "send") != TQ_QUEUE[2]
        || keys.queues_of("bench-svc") != TQ_QUEUE[3]
        || ServiceKeys::new("bench-svc").pending() != TQ_PENDING
    {
        return Err("the raw side's trigger/queue keys are not statehouse's layout".into());
    }
    let mut raw = bench.raw.clone();
    let claim_sha = load_script(&mut raw, statehouse_redis::TRIGGER_CLAIM_CODE).await?;
    let ack_sha = load_script(&mut raw, statehouse_redis::TRIGGER_ACK_CODE).await?;
    let enqueue_sha = load_script(&mut raw, statehouse_redis::QUEUE_ENQUEUE_CODE).await?;
    let qclaim_sha = load_script(&mut raw, statehouse_redis::QUEUE_CLAIM_CODE).await?;
    let qack_sha = load_script(&mut raw, statehouse_redis::QUEUE_ACK_CODE).await?;
    let triggers = state.triggers();
    let queues = state.queues();
    let queue = queues.queue("bench-svc", "b", "send")?;
    let items = if options.quick { 1_000 } else { TQ_ITEMS };
    let mut trigger_ratios = Vec::new();
    let mut queue_ratios = Vec::new();
    for round in 0..=options.rounds {
        let mut trigger_rates = [0.0; 2];
        let mut queue_rates = [0.0; 2];
        for side in options.sides(round) {
            let i = usize::from(side == Side::Raw);
            // Triggers: set (untimed), then 4 listeners claim and ack until none is due.
            for n in 0..items {
                triggers
                    .set(TQ_TENANT, "remind", &format!("u{n}"), Duration::ZERO)
                    .await?;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            let timed = bench
                .timed(TQ_WORKERS, |_| {
                    let (triggers, mut con) = (triggers.clone(), bench.raw.clone());
                    let (claim_sha, ack_sha) = (claim_sha.clone(), ack_sha.clone());
                    async move {
                        let mut acked = 0;
                        loop {
                            let claimed: Vec<(String, u64)> = match side {
                                Side::Statehouse => triggers
                                    .claim(TQ_TENANT, 16, Duration::from_secs(30))
                                    .await?
                                    .triggers
                                    .into_iter()
                                    .map(|t| (t.id, t.token))
                                    .collect(),
                                Side::Raw => {
                                    let reply: Vec<redis::Value> = redis::cmd("EVALSHA")
                                        .arg(&claim_sha)
                                        .arg(2)
                                        .arg(TQ_DUE)
                                        .arg(TQ_CLAIMS)
                                        .arg(16)
                                        .arg(30_000)
                                        .query_async(&mut con)
                                        .await?;
                                    let mut claimed = Vec::new();
                                    for pair in reply.get(1..).unwrap_or_default().chunks(3) {
                                        let member: String = redis::from_redis_value(pair[0].clone())?;
                                        let token: u64 = redis::from_redis_value(pair[1].clone())?;
                                        let id = member
                                            .strip_prefix("remind:")
                                            .ok_or("a foreign member")?
                                            .to_owned();
                                        claimed.push((id, token));
                                    }
                                    claimed
                                }
                            };
                            if claimed.is_empty() {
                                return Ok(acked);
                            }
                            for (id, token) in claimed {
                                let held = match side {
                                    Side::Statehouse => {
                                        let trigger = statehouse::ClaimedTrigger {
                                            action: "remind".to_owned(),
                                            id,
                                            token,
                                            deliveries: 1,
                                        };
                                        triggers.ack(TQ_TENANT, &trigger).await?
                                    }
                                    Side::Raw => {
                                        let by_id = format!("t:{{bench}}:triggers:by-id:{id}");
                                        let held: i64 = redis::cmd("EVALSHA")
                                            .arg(&ack_sha)
                                            .arg(3)
                                            .arg(TQ_DUE)
                                            .arg(TQ_CLAIMS)
                                            .arg(by_id)
                                            .arg(format!("remind:{id}"))
                                            .arg(token)
                                            .query_async(&mut con)
                                            .await?;
                                        held == 1
                                    }
                                };
                                if !held {
                                    return Err("a claimed trigger was not held at its ack".into());
                                }
                                acked += 1;
                            }
                        }
                    }
                })
                .await?;
            let acked: u64 = timed.outputs.iter().sum();
            if acked != items as u64 || !triggers.list(TQ_TENANT).await?.is_empty() {
                return Err(format!(
                    "WRONG COUNT ({side:?}): {acked} triggers acknowledged, expected {items}"
                )
                .into());
            }
            trigger_rates[i] = acked as f64 / timed.elapsed.as_secs_f64().max(1e-9);

            // Queues: enqueue in tens (one producer), then 4 consumers claim and ack.
            let start = Instant::now();
            for chunk in (0..items as u64).collect::<Vec<_>>().chunks(10) {
                match side {
                    Side::Statehouse => {
                        queues.enqueue(TQ_TENANT, &queue, chunk).await?;
                    }
                    Side::Raw => {
                        let mut pipe = redis::pipe();
                        let eval = pipe
                            .atomic()
                            .cmd("EVALSHA")
                            .arg(&enqueue_sha)
                            .arg(4)
                            .arg(&TQ_QUEUE[..]);
                        eval.arg("b:send");
                        for n in chunk {
                            eval.arg(serde_json::to_vec(n)?);
                        }
                        pipe.cmd("ZADD")
                            .arg(TQ_PENDING)
                            .arg("NX")
                            .arg(Utc::now().timestamp_millis())
                            .arg(TQ_TENANT)
                            .ignore();
                        let (_ids,): (Vec<u64>,) = pipe.query_async(&mut raw).await?;
                    }
                }
            }
            let enqueued = start.elapsed();
            let timed = bench
                .timed(TQ_WORKERS, |_| {
                    let (queues, queue, mut con) = (queues.clone(), queue.clone(), bench.raw.clone());
                    let (claim_sha, ack_sha) = (qclaim_sha.clone(), qack_sha.clone());
                    async move {
                        let mut acked = 0;
                        loop {
                            let ids: Vec<u64> = match side {
                                Side::Statehouse => queues
                                    .claim::<u64>(TQ_TENANT, &queue, 20, Duration::from_secs(30))
                                    .await?
                                    .into_iter()
                                    .map(|item| item.id)
                                    .collect(),
                                Side::Raw => {
                                    let reply: Vec<redis::Value> = redis::cmd("EVALSHA")
                                        .arg(&claim_sha)
                                        .arg(4)
                                        .arg(&TQ_QUEUE[..])
                                        .arg("b:send")
                                        .arg(20)
                                        .arg(30_000)
                                        .query_async(&mut con)
                                        .await?;
                                    let mut ids = Vec::new();
                                    for pair in reply.chunks(2) {
                                        ids.push(redis::from_redis_value::<u64>(pair[0].clone())?);
                                        let _: u64 =
                                            serde_json::from_slice(&redis::from_redis_value::<Vec<u8>>(
                                                pair[1].clone(),
                                            )?)?;
                                    }
                                    ids
                                }
                            };
                            if ids.is_empty() {
                                return Ok(acked);
                            }
                            let held = match side {
                                Side::Statehouse => queues.ack(TQ_TENANT, &queue, &ids).await?,
                                Side::Raw => {
                                    redis::cmd("EVALSHA")
                                        .arg(&ack_sha)
                                        .arg(4)
                                        .arg(&TQ_QUEUE[..])
                                        .arg("b:send")
                                        .arg(&ids)
                                        .query_async(&mut con)
                                        .await?
                                }
                            };
                            if held != ids.len() {
                                return Err("a claimed item was not held at its ack".into());
                            }
                            acked += held as u64;
                        }
                    }
                })
                .await?;
            let consumed: u64 = timed.outputs.iter().sum();
            if consumed != items as u64 || queues.len(TQ_TENANT, &queue).await? != 0 {
                return Err(
                    format!("WRONG COUNT ({side:?}): {consumed} items consumed, expected {items}").into(),
                );
            }
            queues.remove_pending("bench-svc", TQ_TENANT).await?;
            queue_rates[i] = items as f64 / (enqueued + timed.elapsed).as_secs_f64().max(1e-9);
        }
        if round == 0 {
            continue;
        }
        trigger_ratios.push(trigger_rates[0] / trigger_rates[1]);
        queue_ratios.push(queue_rates[0] / queue_rates[1]);
        println!(
            "triggers/queues round {}/{}: trigger claim+ack {:.0}/s vs raw {:.0}/s; \
             enqueue+claim+ack {:.0}/s vs raw {:.0}/s",
            round, options.rounds, trigger_rates[0], trigger_rates[1], queue_rates[0], queue_rates[1],
        );
    }
    let (p50, p99) = delivery_delay(&triggers).await?;
    let trigger = median(trigger_ratios);
    let queue = median(queue_ratios);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "triggers: claim+ack {trigger:.2}x raw (target >= 0.9: {}); delivery delay after the due time \
         p50 {:.1} ms, p99 {:.1} ms with listeners idle (target p99 <= 50 ms: {}); queues: \
         enqueue+claim+ack {queue:.2}x raw (target >= 0.9: {}); counts exact",
        verdict(trigger >= 0.9),
        p50,
        p99,
        verdict(p99 <= 50.0),
        verdict(queue >= 0.9),
    );
    Ok(())
}

/// 200 triggers due over 1 s, set before 4 listeners start (so they find them by sleeping until
/// the next due time, not by a wake-up from `set`); the delay from each due time to its delivery,
/// p50 and p99 in milliseconds.
async fn delivery_delay(triggers: &statehouse::Triggers) -> Res<(f64, f64)> {
    const N: u64 = 200;
    let start = Instant::now() + Duration::from_millis(300);
    let mut due = HashMap::new();
    for n in 0..N {
        let at = start + Duration::from_millis(n * 5);
        triggers
            .set(
                TQ_TENANT,
                "late",
                &format!("d{n}"),
                at.saturating_duration_since(Instant::now()),
            )
            .await?;
        due.insert(format!("d{n}"), at);
    }
    let due = Arc::new(due);
    let delays = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut listeners = JoinSet::new();
    for _ in 0..TQ_WORKERS {
        let (triggers, due, delays, mut stopped) =
            (triggers.clone(), due.clone(), delays.clone(), stopped.clone());
        listeners.spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            triggers
                .listen(TQ_TENANT, statehouse::ListenOptions::default(), stop, |trigger| {
                    if let Some(at) = due.get(&trigger.id) {
                        let late = Instant::now().saturating_duration_since(*at);
                        if let Ok(mut delays) = delays.lock() {
                            delays.push(late.as_secs_f64() * 1e3);
                        }
                    }
                    async { Ok::<(), BoxError>(()) }
                })
                .await
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while delays.lock().map(|d| d.len()).unwrap_or(0) < N as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
    while let Some(joined) = listeners.join_next().await {
        joined??;
    }
    let mut delays = std::mem::take(&mut *delays.lock().map_err(|_| "poisoned")?);
    if delays.len() != N as usize {
        return Err(format!("WRONG COUNT: {} of {N} triggers delivered", delays.len()).into());
    }
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}
