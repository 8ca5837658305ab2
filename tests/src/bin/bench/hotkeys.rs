//! Hot keys (after the rounds, with the update workload): one key updated by many writers with
//! combining on against the same store with it off (today's path: one WATCH round per update),
//! from one process and from two; the server-side increment against raw `INCRBY`; and the
//! uncontended update, combining on against off. Exact counts are checked after every run.

use std::time::{Duration, Instant};

use crate::cluster_raw::RawCon;
use statehouse::{Documents, Ports, Settings, Statehouse, Update};
use statehouse_redis::RedisStore;

use crate::Res;
use crate::args::Options;
use crate::engine::{Side, Step, TURN, interleaved};
use crate::report::{load_average, median};

/// Writers per process on the hot key.
const WRITERS: usize = 16;
/// Updates each writer makes per run.
const UPDATES: u64 = 200;
/// The hot key.
const HOT_KEY: &str = "bench:hot";
/// The lone writer's key with combining off (on: [`HOT_KEY`]).
const LONE_KEY_OFF: &str = "bench:hot-off";

/// The documents facade over a store of its own (connections and lanes its own: another
/// process), with combining on or off.
async fn documents(url: &str, combining: bool) -> Res<Documents> {
    let store = RedisStore::connect(Settings::new(url.to_owned()).redis_config())
        .await?
        .with_combining(combining);
    Ok(Statehouse::from_ports(Ports::of(store)).documents())
}

/// `processes.len() × writers` tasks each making `updates` `+1` updates of the hot key (through
/// `update`, or the server-side `increment` with `fast`); checks the exact count; returns
/// updates per second.
async fn hammer(processes: &[Documents], writers: usize, updates: u64, fast: bool) -> Res<f64> {
    let docs = &processes[0];
    docs.set(HOT_KEY, &0u64).await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for process in processes {
        for _ in 0..writers {
            let docs = process.clone();
            tasks.spawn(async move {
                for _ in 0..updates {
                    if fast {
                        docs.increment(HOT_KEY, 1).await?;
                    } else {
                        docs.update(HOT_KEY, |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                            .await?;
                    }
                }
                Ok::<_, statehouse::StoreError>(())
            });
        }
    }
    for done in tasks.join_all().await {
        done?;
    }
    let elapsed = started.elapsed();
    let expected = (processes.len() * writers) as u64 * updates;
    let count = docs.get::<u64>(HOT_KEY).await?.unwrap_or(0);
    if count != expected {
        return Err(format!("WRONG COUNT on the hot key: {count}, expected {expected}").into());
    }
    Ok(expected as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// One writer's `+1` updates of a key of its own, for [`interleaved`].
struct UpdateStep {
    docs: Documents,
    key: &'static str,
}

impl Step for UpdateStep {
    async fn step(&mut self) -> Res<()> {
        self.docs
            .update(self.key, |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
            .await?;
        Ok(())
    }
}

/// `updates` updates by one writer with combining on (`on`) and off (`off`), in turns in one
/// task, each on a key of its own; checks both counts; returns both rates (updates per second).
async fn lone_writer(on: &Documents, off: &Documents, updates: u64) -> Res<(f64, f64)> {
    let keys = [HOT_KEY, LONE_KEY_OFF];
    for key in keys {
        on.set(key, &0u64).await?;
    }
    let on_step = UpdateStep {
        docs: on.clone(),
        key: HOT_KEY,
    };
    let off_step = UpdateStep {
        docs: off.clone(),
        key: LONE_KEY_OFF,
    };
    let measured = interleaved(None, on_step, off_step, updates, TURN).await?;
    for key in keys {
        let count = on.get::<u64>(key).await?.unwrap_or(0);
        if count != updates {
            return Err(format!("WRONG COUNT on {key}: {count}, expected {updates}").into());
        }
    }
    Ok((measured.rate(Side::Statehouse), measured.rate(Side::Raw)))
}

/// Raw redis-rs: the same writers sending `INCRBY` on a shared multiplexed connection.
async fn raw_incrby(raw: &RawCon, writers: usize, updates: u64) -> Res<f64> {
    let mut con = raw.clone();
    redis::cmd("SET").arg(HOT_KEY).arg(0).exec_async(&mut con).await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let mut con = raw.clone();
        tasks.spawn(async move {
            for _ in 0..updates {
                let _: i64 = redis::cmd("INCRBY")
                    .arg(HOT_KEY)
                    .arg(1)
                    .query_async(&mut con)
                    .await?;
            }
            Ok::<_, redis::RedisError>(())
        });
    }
    for done in tasks.join_all().await {
        done?;
    }
    let elapsed = started.elapsed();
    let count: i64 = redis::cmd("GET").arg(HOT_KEY).query_async(&mut con).await?;
    let expected = writers as u64 * updates;
    if count as u64 != expected {
        return Err(format!("WRONG COUNT for raw INCRBY: {count}, expected {expected}").into());
    }
    Ok(expected as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// The hot-key rows: median ratios of `options.rounds` runs (each side alternating first),
/// against the targets of issue 19, with the load average beside them.
pub(crate) async fn hotkeys_bench(url: &str, raw: &RawCon, options: Options) -> Res<()> {
    let on = [documents(url, true).await?, documents(url, true).await?];
    let off = [documents(url, false).await?, documents(url, false).await?];
    let updates = if options.quick { UPDATES / 4 } else { UPDATES };
    let load_at_start = load_average();
    let mut rows: [(Vec<f64>, Vec<f64>); 4] = Default::default();
    // Round 0 warms up (connections, pools, scripts) and is not counted.
    for round in 0..=options.rounds {
        let flip = round % 2 == 1;
        let mut pair = |row: usize, a: f64, b: f64| {
            if round > 0 {
                rows[row].0.push(a);
                rows[row].1.push(b);
            }
        };
        // 1: 16 local writers, combining on vs off.
        let (a, b) = both(
            flip,
            || hammer(&on[..1], WRITERS, updates, false),
            || hammer(&off[..1], WRITERS, updates, false),
        )
        .await?;
        pair(0, a, b);
        // 2: two processes x 16 writers.
        let (a, b) = both(
            flip,
            || hammer(&on, WRITERS, updates, false),
            || hammer(&off, WRITERS, updates, false),
        )
        .await?;
        pair(1, a, b);
        // 3: the server-side increment vs raw INCRBY, 16 writers (16 × 8,000 in a full run:
        // about half a second per side, as the main table's slices, so that a pause of the
        // machine does not decide the ratio).
        let (a, b) = both(
            flip,
            || hammer(&on[..1], WRITERS, updates * 40, true),
            || raw_incrby(raw, WRITERS, updates * 40),
        )
        .await?;
        pair(2, a, b);
        // 4: one writer (uncontended), combining on vs off (4,000 updates in a full run, about
        // half a second per side), in turns of a few updates in one task (`engine::interleaved`),
        // each on a key of its own.
        let (a, b) = lone_writer(&on[0], &off[0], updates * 20).await?;
        pair(3, a, b);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "hot keys ({} runs; ops/s: medians; ratio: median of the per-round ratios; load average {load_at_start} at the start, {} at the end)",
        options.rounds,
        load_average()
    );
    let names = [
        ("update, 16 writers x 1 process (on/off)", 5.0),
        ("update, 16 writers x 2 processes (on/off)", 2.0),
        ("increment, 16 writers (statehouse/raw INCRBY)", 0.9),
        ("update, 1 writer, uncontended (on/off)", 0.95),
    ];
    for ((name, target), (ours, theirs)) in names.iter().zip(&rows) {
        // As in the main table: the median of the per-round ratios (each round's two runs are
        // next to each other in time), beside the medians of each side's rates.
        let ratio = median(ours.iter().zip(theirs).map(|(a, b)| a / b).collect());
        let (ours, theirs) = (median(ours.clone()), median(theirs.clone()));
        let verdict = if ratio >= *target { "ok" } else { "BELOW TARGET" };
        println!(
            "  {name:<48} {ours:>10.0} vs {theirs:>10.0} ops/s  {ratio:>5.2}x  (target >= {target}x: {verdict})"
        );
    }
    Ok(())
}

/// Runs `a` and `b` one after the other, `b` first when `flip`.
async fn both<A, B, FA, FB>(flip: bool, a: A, b: B) -> Res<(f64, f64)>
where
    A: FnOnce() -> FA,
    B: FnOnce() -> FB,
    FA: std::future::Future<Output = Res<f64>>,
    FB: std::future::Future<Output = Res<f64>>,
{
    if flip {
        let b = b().await?;
        Ok((a().await?, b))
    } else {
        let a = a().await?;
        Ok((a, b().await?))
    }
}
