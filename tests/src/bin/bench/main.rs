//! The statehouse benchmark: statehouse beside raw redis-rs, same commands, same server, one run.
//!
//! ```text
//! cargo run --release -p statehouse-tests --bin bench            # full run (about two minutes)
//! cargo run --release -p statehouse-tests --bin bench -- --quick # short smoke run
//! cargo run --release -p statehouse-tests --bin bench -- --instructions # + instructions per op
//! cargo run --release -p statehouse-tests --bin bench -- --cluster # on a 3-primary cluster too
//! cargo run --release -p statehouse-tests --bin bench -- --cluster --instructions # counted there
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
//! 10. a synced model in the hash layout (the ~1 KiB document as a JSON field, and a version)
//!     changed by `Synced::modify`, one task, uncontended, against raw redis-rs doing the same
//!     commands (`WATCH`+`HGETALL` pipelined, decode, then `MULTI`/`HSET` of the changed
//!     field/`EXEC`; ops = modifies; the final version is checked).
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
//!    Across tenants: 10,000 tenants with one due trigger each, claimed and acknowledged by 4
//!    `Triggers::listen_all` listeners against 4 raw loops of `EVALSHA` of the same take, claim,
//!    refile, ack and refile scripts (ops = acks, each exactly once, the index left empty); then
//!    the delivery delay of 4 idle all-tenants listeners with 10,000 tenants filed, for 10,000
//!    triggers due over 5 s set before they start and for 100 triggers set by another
//!    `Statehouse` while they idle (p50/p99 after the due time).
//! 14. (after the rounds) queues: 10,000 items enqueued in tens, then claimed (batches of 20) and
//!    acknowledged by 4 consumers, `Queues` against raw `MULTI`/`EVALSHA` of the same scripts +
//!    `ZADD NX` (ops = items, each exactly once).
//! 15. (after the rounds) config: `ConfigStore::update` in one `Statehouse` (its cache holding the
//!     entry, so one compare-and-set round trip) against raw `EVALSHA` of the same script, then the
//!     delivery from the update's return to a `watch` receiver in another `Statehouse` (p50/p99,
//!     the ~1 KiB document) against a raw `PUBLISH` -> `SUBSCRIBE` of the same bytes, in
//!     alternation; and a cached `fetch` against a raw `GET` + decode of the same document.
//!
//! Every workload is warmed up and its rounds are sized to last about 0.5 s per side. In every
//! round the two sides run in alternating slices (the order flipping each slice), so drift on a
//! busy machine hits both alike; the table shows the median ops/s of the rounds and the median of
//! the per-round ratios. A second table gives the CPU time per op of this process and of the
//! server, which hardly depends on what else the machine does. The process exits non-zero on any
//! error or wrong count, and zero when it only misses a target. See `docs/benchmarks.md`.
//!
//! # Layout
//!
//! - `main.rs`: the setup ([`run`]: the server, both sides' connections, the shared [`Bench`]),
//!   then the rounds and the workloads that run after them.
//! - `args.rs`: the command line ([`Options`]).
//! - `cluster.rs`: `--cluster`, the workloads on a 3-primary Redis Cluster beside the single
//!   server; `cluster_raw.rs`: the raw side's connections, on one server or a cluster.
//! - `engine.rs`: [`Bench::timed`] (wall time, and the CPU time of this process and of the
//!   server), the warm-up and calibration, and the rounds of alternating slices.
//! - `report.rs`: the tables of rates, ratios and targets, CPU time per op, spreads.
//! - `redis_benchmark.rs`: the `redis-benchmark` driver (rows 5 and 6).
//! - `instructions/`: `--instructions`, the client instructions per op of both sides under
//!   callgrind (sections of client work, counted child runs, the table).
//! - a file per workload group: `documents.rs` (1–4), `tasks.rs` (7–9), `synced.rs` (10),
//!   `subjects.rs` (11), `tenants.rs` (12), `triggers_queues.rs` (13, 14) with `triggers_all.rs` (13
//!   across tenants), `config.rs` (15).

mod args;
mod cluster;
mod cluster_raw;
mod config;
mod documents;
mod engine;
mod hotkeys;
mod instructions;
mod redis_benchmark;
mod report;
mod subjects;
mod synced;
mod tasks;
mod tenants;
mod triggers_all;
mod triggers_queues;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use redis::aio::ConnectionManager;
use statehouse::{Ports, Settings, Statehouse};
use statehouse_redis::RedisStore;
use statehouse_tests::harness::RedisServer;

use crate::args::{Options, Workload, parse_args};
use crate::cluster_raw::{RawCon, RawNodes};
use crate::config::config_bench;
use crate::documents::{CONCURRENT_TASKS, KEYS_PER_TASK, MGET_KEYS, sample_doc};
use crate::engine::Bench;
use crate::report::{load_average, print_header};
use crate::subjects::subjects_bench;
use crate::tasks::{
    SAVE_SERVICE, TASK_MAX_LOG, TASK_WRITERS, check_task_layout, check_task_write_script, populate_list,
    populate_tasks, sample_task,
};
use crate::tenants::tenants_bench;
use crate::triggers_queues::triggers_queues_bench;

pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

pub(crate) type Res<T> = Result<T, BoxError>;

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
    let counting = instructions::init();
    let server = RedisServer::start();
    let runtime = if options.current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    // In a counted child (`--instructions`), the main task's polls count in the sections it opens.
    // `--cluster` counts on its cluster, which it keeps for its children (cluster.rs).
    let result = if options.cluster {
        cluster::main(&runtime, &server, options)
    } else if counting {
        runtime.block_on(instructions::main_task(run(&server, options)))
    } else {
        runtime.block_on(run(&server, options))
    };
    drop(runtime);
    drop(server);
    result?;
    instructions::finish()?;
    if options.instructions && !options.cluster {
        instructions::report(options, None)?;
    }
    Ok(())
}

async fn run(server: &RedisServer, options: Options) -> Res<()> {
    let url = server.url();
    let client = redis::Client::open(url.as_str())?;
    let raw = RawCon::Single(ConnectionManager::new(client.clone()).await?);
    let nodes = RawNodes::single(client.clone());
    let (state, bench) = setup(&url, client, raw, nodes, vec![server.pid().to_string()], options).await?;

    print_header(&bench, server, options).await?;

    let (sizes, rb) = engine::calibrate(&bench, server, options).await?;
    let results = engine::rounds(&bench, &sizes, &rb, options).await?;
    println!("(statehouse/raw ops/s per workload; rb: redis-benchmark set+get ops/s at -c 1/-c 64)");
    println!();
    results.report(options, &rb);
    if options.runs(Workload::Update) {
        println!();
        hotkeys::hotkeys_bench(&url, &bench.raw, options).await?;
    }
    if options.runs(Workload::Subjects) {
        println!();
        subjects_bench(&state, &bench, options).await?;
    }
    if options.runs(Workload::Tenants) {
        println!();
        tenants_bench(&state, &bench, options).await?;
    }
    if options.runs(Workload::TriggersQueues) {
        println!();
        triggers_queues_bench(&state, &bench, options).await?;
    }
    if options.runs(Workload::Config) {
        println!();
        config_bench(&url, &bench, options).await?;
    }
    println!();
    println!("load average at the end: {}", load_average());
    Ok(())
}

/// statehouse connected to `url` and the [`Bench`] of both sides on that server or cluster: the
/// task and MGET data written, the task-write script checked.
pub(crate) async fn setup(
    url: &str,
    client: redis::Client,
    raw: RawCon,
    raw_nodes: RawNodes,
    server_pids: Vec<String>,
    options: Options,
) -> Res<(Statehouse, Bench)> {
    let settings = Settings::new(url.to_owned());
    let state = if options.bare {
        let store = RedisStore::connect(settings.redis_config()).await?;
        Statehouse::from_ports(Ports::of(store))
    } else {
        Statehouse::with_settings(settings).await?
    };
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
        raw_txn.push(raw_nodes.txn().await?);
    }
    let bench = Bench {
        client,
        raw_nodes,
        docs: state.documents(),
        models: state.models(),
        raw,
        doc,
        task_keys,
        mget_keys,
        server_pids,
        tasks,
        raw_txn,
        task_write_sha,
        task_record,
        list_expected,
        list_next,
    };
    bench.populate_mget().await?;
    Ok((state, bench))
}
