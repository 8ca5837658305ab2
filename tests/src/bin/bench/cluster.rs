//! `bench --cluster`: the workloads of issue 15 on a 3-primary Redis Cluster (the test harness's
//! `RedisCluster`, as `tests/tests/cluster.rs` starts it), statehouse through a `redis+cluster://`
//! URL against raw redis-rs' cluster client (`ClusterConnection`, see `cluster_raw.rs`) doing the
//! same commands, and beside each row the same workload on the single server of the same run.
//!
//! Both targets are set up alike ([`setup`](crate::setup)); the round sizes are calibrated once,
//! on the single server, and used for both, so that cluster/single compares equal work. Each
//! round runs every workload on the single server, then on the cluster, both sides in alternating
//! slices on each ([`engine::rounds`]); the after-round workloads (subjects, tenants, triggers and
//! queues) then run on each target in turn.
//!
//! The raw side of record is redis-rs' cluster client as `ClusterClient::new` builds it: no
//! response timeout. statehouse bounds every call (its response timeout, and redis-rs' timer on
//! each node's connection, which it configures). An extra raw side, raw redis-rs built with
//! statehouse's connect and response timeouts (`ClusterClientBuilder::connection_timeout` and
//! `response_timeout`, which also bounds each request overall, as redis-rs does by default),
//! runs the round rows whose raw side can be bounded so after both sides in each round; the
//! table prints statehouse's ratio to it as an extra column beside the row of record.
//! [`RAW_TIMEOUTS_ENV`] makes that the raw side of record instead, for counting its
//! instructions (`--instructions`: the counted children inherit it).
//!
//! With `--instructions`, the cluster stays up after the run for the counted children
//! (`instructions/`), each of which runs its workload on it alone ([`counted_child`]).

use std::fmt::Write as _;
use std::time::Duration;

use statehouse::{Settings, Statehouse};
use statehouse_tests::harness::{RedisCluster, RedisServer};
use tokio::runtime::Runtime;

use crate::args::{Options, Workload};
use crate::cluster_raw::{RawCon, RawNodes};
use crate::engine::{self, Bench, Sample, Side, Sizes};
use crate::report::{Pair, Results, human, load_average, median};
use crate::subjects::subjects_bench;
use crate::tenants::tenants_bench;
use crate::triggers_queues::triggers_queues_bench;
use crate::{Res, instructions};

/// The workloads `--cluster` runs (on both targets).
pub(crate) const ON_CLUSTER: [Workload; 9] = [
    Workload::Conc,
    Workload::Mget,
    Workload::Update,
    Workload::Save,
    Workload::Status,
    Workload::List,
    Workload::Subjects,
    Workload::Tenants,
    Workload::TriggersQueues,
];

/// What an after-round workload returns: per figure its name, statehouse's median ops/s, the
/// median statehouse/raw ratio and its target.
pub(crate) type Figures = Vec<(&'static str, f64, f64, f64)>;

/// The primaries of the benchmark's cluster.
const PRIMARIES: usize = 3;

/// Set (to anything), the raw side of record on the cluster is redis-rs' cluster client built with
/// statehouse's connect and response timeouts instead of `ClusterClient::new`'s defaults (no
/// response timeout): for `--instructions`, whose counted children inherit it.
const RAW_TIMEOUTS_ENV: &str = "STATEHOUSE_BENCH_RAW_TIMEOUTS";

/// The round rows the extra raw side (with statehouse's timeouts) runs: the update's raw side is a
/// naive loop on connections of its own, with no cluster client to bound.
const WITH_TIMEOUTS: [Workload; 5] = [
    Workload::Conc,
    Workload::Mget,
    Workload::Save,
    Workload::Status,
    Workload::List,
];

/// Starts the cluster, runs [`run`] on `runtime` (then, with `--instructions`, the counted
/// children on the same cluster), stops the cluster. A counted child runs [`counted_child`]
/// instead, on its parent's cluster.
pub(crate) fn main(runtime: &Runtime, server: &RedisServer, options: Options) -> Res<()> {
    if let Some(addrs) = instructions::cluster_env() {
        return runtime.block_on(instructions::main_task(counted_child(server, &addrs, options)));
    }
    println!("starting a Redis Cluster of {PRIMARIES} primaries (the test harness) ...");
    let cluster = RedisCluster::start(PRIMARIES, 0);
    let mut result = runtime.block_on(run(server, &cluster, options));
    if result.is_ok() && options.instructions {
        let addrs: Vec<String> = cluster.nodes().iter().map(|node| node.addr()).collect();
        result = instructions::report(options, Some(&addrs.join(",")));
    }
    cluster.stop();
    result
}

/// Where a cluster is: its `redis+cluster://` URL, one `redis://` URL per node, the nodes'
/// process ids (for their CPU time; none known in a counted child).
struct ClusterAt {
    url: String,
    seeds: Vec<String>,
    pids: Vec<String>,
}

impl ClusterAt {
    fn of(cluster: &RedisCluster) -> Self {
        Self {
            url: cluster.url(),
            seeds: cluster.seed_urls(),
            pids: cluster
                .nodes()
                .iter()
                .map(|node| node.pid().to_string())
                .collect(),
        }
    }

    /// The cluster whose nodes are at `addrs` (`host:port,host:port,…`, no password).
    fn at(addrs: &str) -> Self {
        Self {
            url: format!("redis+cluster://{addrs}"),
            seeds: addrs.split(',').map(|addr| format!("redis://{addr}")).collect(),
            pids: Vec::new(),
        }
    }
}

/// A counted child of `--cluster --instructions` (`instructions/`): its one workload and side on
/// the parent's cluster at `addrs`, emptied first (`FLUSHALL` on every node, as a fresh cluster
/// is), the round sizes fixed (`--fixed-size`); nothing on the single server.
async fn counted_child(server: &RedisServer, addrs: &str, options: Options) -> Res<()> {
    let at = ClusterAt::at(addrs);
    for seed in &at.seeds {
        let mut con = redis::Client::open(seed.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        redis::cmd("FLUSHALL").exec_async(&mut con).await?;
    }
    let clustered = cluster_target(&at, options).await?;
    instructions::set_cluster(true);
    let (sizes, rb) = engine::calibrate(&clustered.bench, server, options).await?;
    engine::rounds(&clustered.bench, &sizes, &rb, options).await?;
    let (state, bench) = (&clustered.state, &clustered.bench);
    if options.runs(Workload::Subjects) {
        subjects_bench(state, bench, options).await?;
    }
    if options.runs(Workload::Tenants) {
        tenants_bench(state, bench, options).await?;
    }
    if options.runs(Workload::TriggersQueues) {
        triggers_queues_bench(state, bench, options).await?;
    }
    Ok(())
}

/// statehouse and the raw side on one target.
struct Target {
    name: &'static str,
    state: Statehouse,
    bench: Bench,
}

async fn single_target(server: &RedisServer, options: Options) -> Res<Target> {
    let url = server.url();
    let client = redis::Client::open(url.as_str())?;
    let raw = RawCon::Single(redis::aio::ConnectionManager::new(client.clone()).await?);
    let nodes = RawNodes::single(client.clone());
    let pids = vec![server.pid().to_string()];
    let (state, bench) = crate::setup(&url, client, raw, nodes, pids, options).await?;
    Ok(Target {
        name: "single",
        state,
        bench,
    })
}

/// statehouse's connect and response timeouts for `url` (its defaults: the bench sets none).
fn statehouse_timeouts(url: &str) -> (Duration, Duration) {
    let config = Settings::new(url.to_owned()).redis_config();
    (config.connect_timeout, config.response_timeout)
}

/// redis-rs' cluster client on `seeds`: as `ClusterClient::new` builds it (no response timeout),
/// or with `timeouts` (connect, response; redis-rs then also bounds each request overall by the
/// response timeout, its default).
async fn raw_cluster(
    seeds: &[String],
    timeouts: Option<(Duration, Duration)>,
) -> Res<redis::cluster_async::ClusterConnection> {
    let client = match timeouts {
        None => redis::cluster::ClusterClient::new(seeds.to_vec())?,
        Some((connect, response)) => redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(connect)
            .response_timeout(response)
            .build()?,
    };
    Ok(client.get_async_connection().await?)
}

async fn cluster_target(at: &ClusterAt, options: Options) -> Res<Target> {
    let first = at.seeds.first().ok_or("the cluster has no nodes")?.clone();
    let timeouts = std::env::var_os(RAW_TIMEOUTS_ENV).map(|_| statehouse_timeouts(&at.url));
    let raw = raw_cluster(&at.seeds, timeouts).await?;
    let nodes = RawNodes::cluster(&first).await?;
    let client = redis::Client::open(first)?;
    let (state, bench) = crate::setup(
        &at.url,
        client,
        RawCon::Cluster(raw),
        nodes,
        at.pids.clone(),
        options,
    )
    .await?;
    Ok(Target {
        name: "cluster",
        state,
        bench,
    })
}

async fn run(server: &RedisServer, cluster: &RedisCluster, options: Options) -> Res<()> {
    let single = single_target(server, options).await?;
    let at = ClusterAt::of(cluster);
    let clustered = cluster_target(&at, options).await?;
    // The extra raw side: the cluster's bench with a raw cluster client bounded as statehouse is.
    let timeouts = statehouse_timeouts(&at.url);
    let with_timeouts = Bench {
        raw: RawCon::Cluster(raw_cluster(&at.seeds, Some(timeouts)).await?),
        ..clustered.bench.clone()
    };
    println!(
        "statehouse benchmark --cluster{}: redis-server at {} and a cluster of {PRIMARIES} primaries at {} \
         (started for this run); {} rounds of ~{:?} per side and workload",
        if options.quick { " --quick" } else { "" },
        server.url(),
        cluster.url(),
        options.rounds,
        options.round_time,
    );
    if std::env::var_os(RAW_TIMEOUTS_ENV).is_some() {
        println!(
            "{RAW_TIMEOUTS_ENV} is set: the cluster's raw side of record has statehouse's timeouts \
             (connect {:?}, response {:?})",
            timeouts.0, timeouts.1
        );
    }
    println!("load average at the start: {}", load_average());

    // Sized on the single server, used on both.
    let (sizes, rb) = engine::calibrate(&single.bench, server, options).await?;
    instructions::set_cluster(true);
    warm_up(&clustered.bench, &sizes, options).await?;
    let mut results = [Results::default(), Results::default()];
    let mut extra = Results::default();
    let mut loads = Vec::with_capacity(options.rounds);
    for _ in 0..options.rounds {
        for (target, results) in [&single, &clustered].into_iter().zip(&mut results) {
            instructions::set_cluster(target.name == "cluster");
            print!("{} ", target.name);
            let one = Options { rounds: 1, ..options };
            let measured = engine::rounds(&target.bench, &sizes, &rb, one).await?;
            append(results, measured);
        }
        if options.side != Some(Side::Statehouse) {
            instructions::set_cluster(true);
            let measured = raw_with_timeouts(&with_timeouts, &sizes, options).await?;
            println!(
                "cluster, raw with statehouse's timeouts: {}",
                measured.last_round()
            );
            append(&mut extra, measured);
        }
        loads.push(load_average());
    }
    println!();
    report(&results, &extra, timeouts, &loads);

    let mut after: [Figures; 2] = Default::default();
    let mut after_loads = Vec::new();
    for (workload, name) in [
        (Workload::Subjects, "subjects"),
        (Workload::Tenants, "tenants"),
        (Workload::TriggersQueues, "triggers and queues"),
    ] {
        if !options.runs(workload) {
            continue;
        }
        for (target, figures) in [&single, &clustered].into_iter().zip(&mut after) {
            instructions::set_cluster(target.name == "cluster");
            println!();
            println!(
                "{name} on the {} target (load average {}):",
                target.name,
                load_average()
            );
            match workload {
                Workload::Subjects => {
                    figures.extend(subjects_bench(&target.state, &target.bench, options).await?);
                }
                Workload::Tenants => {
                    figures.extend(tenants_bench(&target.state, &target.bench, options).await?)
                }
                _ => triggers_queues_bench(&target.state, &target.bench, options).await?,
            }
        }
        after_loads.push(format!("{name} {}", load_average()));
    }
    instructions::set_cluster(false);
    let [single_after, cluster_after] = after;
    if !cluster_after.is_empty() {
        println!();
        println!(
            "After the rounds, on the cluster (statehouse ops/s and statehouse/raw, medians of the rounds):"
        );
        println!();
        println!(
            "| workload | cluster statehouse | statehouse/raw | target | met | single statehouse | cluster/single statehouse |"
        );
        println!("|---|--:|--:|--:|---|--:|--:|");
        for ((name, rate, ratio, target), (_, single_rate, _, _)) in cluster_after.iter().zip(&single_after) {
            println!(
                "| {name} | {} | {ratio:.3}× | {target}× | {} | {} | {:.2}× |",
                human(*rate),
                if *ratio >= *target { "yes" } else { "**no**" },
                human(*single_rate),
                rate / single_rate,
            );
        }
        println!();
        println!("load average after each: {}", after_loads.join("; "));
    }
    println!();
    println!("load average at the end: {}", load_average());
    Ok(())
}

/// One round of the extra raw side (raw redis-rs with statehouse's timeouts) on `bench`: each row of
/// [`WITH_TIMEOUTS`] that runs, in as many slices as a side's run of a round has, back to back
/// (after both sides of the round of record; not alternating with them). For a row of one task
/// (mget, list), which the round of record runs in turns (`engine::interleaved`), these slices
/// still draw the runtime's two speeds: that column is the rougher figure there.
async fn raw_with_timeouts(bench: &Bench, sizes: &Sizes, options: Options) -> Res<Results> {
    let mut results = Results::default();
    instructions::set_raw_with_timeouts(true);
    instructions::set_side(Side::Raw);
    for workload in WITH_TIMEOUTS {
        if !options.runs(workload) {
            continue;
        }
        let mut total: Option<Sample> = None;
        for _ in 0..options.slices {
            let sample = match bench.slice(workload, Side::Raw, sizes).await {
                Ok(sample) => sample,
                Err(error) => {
                    instructions::set_raw_with_timeouts(false);
                    return Err(error);
                }
            };
            total = Some(total.map_or(sample, |total| total.plus(&sample)));
        }
        let pair = match workload {
            Workload::Conc => &mut results.conc,
            Workload::Mget => &mut results.mget,
            Workload::Save => &mut results.save,
            Workload::Status => &mut results.status,
            _ => &mut results.list,
        };
        pair.raw.extend(total);
    }
    instructions::set_raw_with_timeouts(false);
    Ok(results)
}

/// One slice of every measured workload by each side, not counted.
async fn warm_up(bench: &Bench, sizes: &Sizes, options: Options) -> Res<()> {
    for side in options.sides(0) {
        for workload in Workload::MEASURED {
            if options.runs(workload) {
                bench.slice(workload, side, sizes).await?;
            }
        }
    }
    Ok(())
}

fn append(into: &mut Results, mut from: Results) {
    for (to, from) in [
        (&mut into.seq, &mut from.seq),
        (&mut into.conc, &mut from.conc),
        (&mut into.mget, &mut from.mget),
        (&mut into.update, &mut from.update),
        (&mut into.save, &mut from.save),
        (&mut into.status, &mut from.status),
        (&mut into.list, &mut from.list),
        (&mut into.model, &mut from.model),
    ] {
        to.statehouse.append(&mut from.statehouse);
        to.raw.append(&mut from.raw);
    }
}

/// The table: per workload, the cluster's statehouse/raw ratio against the target, and
/// cluster/single of each side; beside them, the ratio to the extra raw side `extra` (raw
/// redis-rs with statehouse's `timeouts`, connect and response), where it ran.
fn report(results: &[Results; 2], extra: &Results, timeouts: (Duration, Duration), loads: &[String]) {
    let [single, clustered] = results;
    if [
        &clustered.conc,
        &clustered.mget,
        &clustered.update,
        &clustered.save,
        &clustered.status,
        &clustered.list,
    ]
    .iter()
    .all(|pair| pair.statehouse.is_empty() || pair.raw.is_empty())
    {
        return; // --only an after-round workload, or --side
    }
    let rate = |samples: &[Sample]| median(samples.iter().map(Sample::rate).collect());
    // A row run in turns (both sides in one task) has no CPU time per side: n/a.
    let cpu = |samples: &[Sample]| {
        let us = median(samples.iter().filter_map(Sample::client_us).collect());
        if us.is_nan() {
            "n/a".to_owned()
        } else {
            format!("{us:.2}")
        }
    };
    let ratio = |pair: &Pair| {
        median(
            pair.statehouse
                .iter()
                .zip(&pair.raw)
                .map(|(sh, raw)| sh.rate() / raw.rate())
                .collect(),
        )
    };
    println!(
        "On the {PRIMARIES}-primary cluster, statehouse against raw redis-rs' cluster client (ops/s, medians of \
         the rounds; ratio: median of the per-round ratios, target >= 0.9x raw), and cluster/single: \
         the same workload's ops/s on the cluster over the single server's, in the same rounds."
    );
    println!();
    println!(
        "Extra column (not the row of record): statehouse's ops/s over those of raw redis-rs' cluster \
         client built with statehouse's timeouts (connect {:?}, response {:?}; redis-rs then bounds each \
         request overall by the response timeout too), run after both sides in each round; median of the \
         per-round ratios, and that side's ops/s.",
        timeouts.0, timeouts.1
    );
    println!();
    println!(
        "| workload | cluster statehouse | cluster raw | statehouse/raw | met | single statehouse | single raw \
         | cluster/single statehouse | cluster/single raw | client CPU µs/op on the cluster, statehouse / raw \
         | extra: statehouse/raw with statehouse's timeouts (raw ops/s) |"
    );
    println!("|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|");
    for (name, one, many, timed) in [
        ("2. set+get, 64 tasks", &single.conc, &clustered.conc, &extra.conc),
        (
            "3. mget of 1,000 keys (per key)",
            &single.mget,
            &clustered.mget,
            &extra.mget,
        ),
        (
            "4. update, 16 tasks (vs naive loop)",
            &single.update,
            &clustered.update,
            &extra.update,
        ),
        (
            "7. task save, 16 writers",
            &single.save,
            &clustered.save,
            &extra.save,
        ),
        (
            "8. task set_status, 16 writers",
            &single.status,
            &clustered.status,
            &extra.status,
        ),
        (
            "9. task list, 50-item page",
            &single.list,
            &clustered.list,
            &extra.list,
        ),
    ] {
        if many.statehouse.is_empty() || many.raw.is_empty() {
            continue;
        }
        let r = ratio(many);
        let with_timeouts = if timed.raw.is_empty() {
            "n/a".to_owned()
        } else {
            let ratios = many
                .statehouse
                .iter()
                .zip(&timed.raw)
                .map(|(sh, raw)| sh.rate() / raw.rate())
                .collect();
            format!("{:.3}× ({})", median(ratios), human(rate(&timed.raw)))
        };
        let mut line = String::new();
        let _ = write!(
            line,
            "| {name} | {} | {} | {r:.3}× | {} | {} | {} | {:.2}× | {:.2}× | {} / {} | {with_timeouts} |",
            human(rate(&many.statehouse)),
            human(rate(&many.raw)),
            if r >= 0.9 { "yes" } else { "**no**" },
            human(rate(&one.statehouse)),
            human(rate(&one.raw)),
            rate(&many.statehouse) / rate(&one.statehouse),
            rate(&many.raw) / rate(&one.raw),
            cpu(&many.statehouse),
            cpu(&many.raw),
        );
        println!("{line}");
    }
    println!();
    println!("load average after each round: {}", loads.join("; "));
}
