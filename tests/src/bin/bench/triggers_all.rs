//! Triggers across tenants (rows of the triggers and queues workload): claim+ack throughput of 4
//! `Triggers::listen_all` listeners over many tenants against raw redis-rs running the same scripts
//! (take, claim, refile, ack, refile), and the delivery delay of idle all-tenants listeners with
//! 10,000 tenants filed, for triggers set before and triggers set by another process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value;
use statehouse::{ListenOptions, Statehouse, TenantId};
use statehouse_domain::layout::{TriggerIndex, TriggerKeys};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::cluster_raw::RawCon;
use crate::engine::{Bench, Side};
use crate::{BoxError, Res};

/// Listeners (raw workers) of the across-tenants rows.
const WORKERS: usize = 4;
/// Tenants per round of a listener, and triggers per claim: both sides.
const TENANTS_PER_ROUND: usize = 32;
const BATCH: usize = 16;
const LEASE_MS: u64 = 30_000;

/// The SHA1s of the scripts the raw side runs (the same sources statehouse runs).
#[derive(Debug, Clone)]
pub(crate) struct Shas {
    take: String,
    claim: String,
    refile: String,
    ack: String,
}

impl Shas {
    pub(crate) async fn load(con: &mut RawCon) -> Res<Self> {
        let mut load = async |code: &str| -> Res<String> {
            Ok(redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(code)
                .query_async(con)
                .await?)
        };
        Ok(Self {
            take: load(statehouse_redis::TRIGGER_TAKE_CODE).await?,
            claim: load(statehouse_redis::TRIGGER_CLAIM_CODE).await?,
            refile: load(statehouse_redis::TRIGGER_REFILE_CODE).await?,
            ack: load(statehouse_redis::TRIGGER_ACK_CODE).await?,
        })
    }
}

fn int(value: &Value) -> Res<i64> {
    Ok(redis::from_redis_value(value.clone())?)
}

/// Sets one trigger due now for each of `tenants` tenants (untimed; 8 setters).
async fn set_due_now(state: &Statehouse, tenants: usize) -> Res<()> {
    let mut setters = JoinSet::new();
    for setter in 0..8 {
        let triggers = state.triggers();
        setters.spawn(async move {
            for n in (setter..tenants).step_by(8) {
                triggers
                    .set(&format!("all-{n}"), "remind", "u", Duration::ZERO)
                    .await?;
            }
            Ok::<(), statehouse::StoreError>(())
        });
    }
    while let Some(joined) = setters.join_next().await {
        joined??;
    }
    Ok(())
}

/// `EVALSHA` of the refile script for `tenant` after a claim or an ack replied `next`, `sets`.
fn refile(pipe: &mut redis::Pipeline, shas: &Shas, keys: &TriggerKeys, next: i64, sets: i64) {
    let shard = keys.shard();
    pipe.cmd("EVALSHA")
        .arg(&shas.refile)
        .arg(2)
        .arg(shard.tenants())
        .arg(shard.marks())
        .arg(keys.tenant().as_str())
        .arg(sets)
        .arg(next)
        .ignore();
}

/// One raw worker: the listener's steps by hand, until a take finds no due tenant. Per round, as
/// the listener sends them: the take; the claims of every tenant at once (a pipeline), then the
/// refiles of those claimed to the end of a batch or to nothing; the acks at once, then their
/// refiles.
async fn raw_worker(mut con: RawCon, shas: Shas) -> Res<u64> {
    let index = TriggerIndex::all();
    let shards: Vec<&str> = index.shards().iter().map(|s| s.tenants()).collect();
    let mut acked = 0;
    loop {
        let reply: Vec<Value> = if matches!(con, RawCon::Cluster(_)) {
            // One slot per script on a cluster: a take per shard, each its share, in one pipeline
            // (one command per shard, as statehouse sends them there), the members merged.
            let share = TENANTS_PER_ROUND.div_ceil(shards.len());
            let mut takes = redis::pipe();
            for shard in &shards {
                takes
                    .cmd("EVALSHA")
                    .arg(&shas.take)
                    .arg(1)
                    .arg(shard)
                    .arg(share)
                    .arg(LEASE_MS);
            }
            let replies: Vec<Vec<Value>> = takes.query_async(&mut con).await?;
            let mut merged = vec![Value::Nil];
            merged.extend(replies.into_iter().flat_map(|reply| reply.into_iter().skip(1)));
            merged
        } else {
            redis::cmd("EVALSHA")
                .arg(&shas.take)
                .arg(shards.len())
                .arg(&shards)
                .arg(TENANTS_PER_ROUND)
                .arg(LEASE_MS)
                .query_async(&mut con)
                .await?
        };
        let tenants = reply
            .get(1..)
            .unwrap_or_default()
            .iter()
            .map(|v| {
                Ok(TriggerKeys::new(&TenantId::new(redis::from_redis_value::<
                    String,
                >(v.clone())?)?))
            })
            .collect::<Res<Vec<_>>>()?;
        if tenants.is_empty() {
            return Ok(acked);
        }
        let mut claims = redis::pipe();
        for keys in &tenants {
            claims
                .cmd("EVALSHA")
                .arg(&shas.claim)
                .arg(2)
                .arg(keys.due())
                .arg(keys.claims())
                .arg(BATCH)
                .arg(LEASE_MS);
        }
        let claimed: Vec<Vec<Value>> = claims.query_async(&mut con).await?;
        let (mut refiles, mut acks) = (redis::pipe(), redis::pipe());
        let (mut refiling, mut acking) = (0, Vec::new());
        for (keys, reply) in tenants.iter().zip(&claimed) {
            let rows = reply.get(2..).unwrap_or_default().chunks(3);
            if rows.len() == 0 || rows.len() >= BATCH {
                refile(&mut refiles, &shas, keys, int(&reply[0])?, int(&reply[1])?);
                refiling += 1;
            }
            if rows.len() == 0 {
                continue;
            }
            let ack = acks.cmd("EVALSHA");
            ack.arg(&shas.ack)
                .arg(2 + rows.len())
                .arg(keys.due())
                .arg(keys.claims());
            let mut args = Vec::new();
            for row in rows {
                let member: String = redis::from_redis_value(row[0].clone())?;
                let (_, id) = keys.of_member(&member).ok_or("a foreign member")?;
                ack.arg(keys.of_id(&id));
                args.push((member, int(&row[1])?));
            }
            ack.arg(&args);
            acking.push(keys);
        }
        if refiling > 0 {
            refiles.exec_async(&mut con).await?;
        }
        if acking.is_empty() {
            continue;
        }
        let replies: Vec<Vec<Value>> = acks.query_async(&mut con).await?;
        let mut refiles = redis::pipe();
        for (keys, reply) in acking.into_iter().zip(&replies) {
            for held in reply.get(2..).unwrap_or_default() {
                if int(held)? != 1 {
                    return Err("a claimed trigger was not held at its ack".into());
                }
                acked += 1;
            }
            refile(&mut refiles, &shas, keys, int(&reply[0])?, int(&reply[1])?);
        }
        refiles.exec_async(&mut con).await?;
    }
}

/// 4 listeners' claim+ack rate over `tenants` tenants with one due trigger each (ops = acks,
/// each exactly once, checked, and the index left empty).
pub(crate) async fn claim_ack_across_tenants(
    state: &Statehouse,
    bench: &Bench,
    shas: &Shas,
    side: Side,
    tenants: usize,
) -> Res<f64> {
    set_due_now(state, tenants).await?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let timed = match side {
        Side::Raw => {
            bench
                .timed(WORKERS, |_| raw_worker(bench.raw.clone(), shas.clone()))
                .await?
        }
        Side::Statehouse => {
            let acked = Arc::new(AtomicU64::new(0));
            let done = Arc::new(Notify::new());
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let options = ListenOptions {
                batch: BATCH,
                tenants: TENANTS_PER_ROUND,
                lease: Duration::from_millis(LEASE_MS),
                ..ListenOptions::default()
            };
            let watcher = {
                let (done, stop) = (done.clone(), stop.clone());
                tokio::spawn(async move {
                    done.notified().await;
                    stop.send_replace(true);
                })
            };
            let timed = bench
                .timed(WORKERS, |_| {
                    let (triggers, acked, done, mut stopped) =
                        (state.triggers(), acked.clone(), done.clone(), stopped.clone());
                    async move {
                        let stopped = async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        };
                        let mine = AtomicU64::new(0);
                        triggers
                            .listen_all(options, stopped, |_, _| {
                                mine.fetch_add(1, Ordering::Relaxed);
                                if acked.fetch_add(1, Ordering::Relaxed) + 1 == tenants as u64 {
                                    done.notify_one();
                                }
                                async { Ok::<(), BoxError>(()) }
                            })
                            .await?;
                        Ok(mine.load(Ordering::Relaxed))
                    }
                })
                .await?;
            watcher.await?;
            timed
        }
    };
    let acked: u64 = timed.outputs.iter().sum();
    let left = state
        .ports()
        .triggers
        .take_due(TriggerIndex::all(), 10, Duration::from_secs(1))
        .await?;
    if acked != tenants as u64 || !left.tenants.is_empty() || left.next_due_in.is_some() {
        return Err(format!(
            "WRONG COUNT ({side:?}): {acked} triggers across tenants acknowledged, expected {tenants}; \
             index left: {left:?}"
        )
        .into());
    }
    Ok(acked as f64 / timed.elapsed.as_secs_f64().max(1e-9))
}

/// Delays in ms, sorted, as (p50, p99).
fn percentiles(mut delays: Vec<f64>) -> (f64, f64) {
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// The delivery delay of 4 idle all-tenants listeners (in this process, `state`) with 10,000
/// tenants filed in the index: (p50, p99) in ms of 10,000 triggers (one per tenant) due over 5 s,
/// set by another process (a second `Statehouse`, its own connections) before the listeners start,
/// so they find them by sleeping until the next due time; and of 100 triggers, each for another
/// new tenant and due 10 ms after it is set, set by that other process while the listeners idle
/// (the wake-up hint); and the count of the first set after their due time (setup too slow).
pub(crate) async fn delivery_delay_all_tenants(state: &Statehouse) -> Res<((f64, f64), (f64, f64), usize)> {
    const TENANTS: usize = 10_000;
    const HINTED: usize = 100;
    let other = Statehouse::with_settings(state.settings().clone()).await?;
    let base = Instant::now() + Duration::from_secs(8);
    let due: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let late_sets = Arc::new(AtomicU64::new(0));
    let mut setters = JoinSet::new();
    for setter in 0..8 {
        let (triggers, due, late_sets) = (other.triggers(), due.clone(), late_sets.clone());
        setters.spawn(async move {
            for n in (setter..TENANTS).step_by(8) {
                let tenant = format!("idle-{n}");
                // Each tenant stays filed after its delivery: a trigger an hour away.
                triggers
                    .set(&tenant, "keep", "u", Duration::from_secs(3600))
                    .await?;
                let at = base + Duration::from_micros(n as u64 * 500);
                let delay = at.saturating_duration_since(Instant::now());
                if delay.is_zero() {
                    late_sets.fetch_add(1, Ordering::Relaxed);
                }
                triggers.set(&tenant, "late", "u", delay).await?;
                due.lock().map_err(|_| "poisoned")?.insert(tenant, at);
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(joined) = setters.join_next().await {
        joined??;
    }
    let due = Arc::new(std::mem::take(&mut *due.lock().map_err(|_| "poisoned")?));
    let delays: Arc<Mutex<Vec<f64>>> = Arc::default();
    let hinted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let hinted_delays: Arc<Mutex<Vec<f64>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut listeners = JoinSet::new();
    for _ in 0..WORKERS {
        let (triggers, due, delays, hinted, hinted_delays, mut stopped) = (
            state.triggers(),
            due.clone(),
            delays.clone(),
            hinted.clone(),
            hinted_delays.clone(),
            stopped.clone(),
        );
        listeners.spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            triggers
                .listen_all(ListenOptions::default(), stop, |tenant, trigger| {
                    let now = Instant::now();
                    let late = |at: &Instant| now.saturating_duration_since(*at).as_secs_f64() * 1e3;
                    if trigger.action == "late"
                        && let Some(at) = due.get(tenant.as_str())
                        && let Ok(mut delays) = delays.lock()
                    {
                        delays.push(late(at));
                    } else if let Some(at) = hinted.lock().ok().and_then(|h| h.get(tenant.as_str()).copied())
                        && let Ok(mut delays) = hinted_delays.lock()
                    {
                        delays.push(late(&at));
                    }
                    async { Ok::<(), BoxError>(()) }
                })
                .await
        });
    }
    let count = |delays: &Arc<Mutex<Vec<f64>>>| delays.lock().map(|d| d.len()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&delays) < TENANTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Idle now (the next trigger is an hour away): another process sets one at a time.
    let triggers = other.triggers();
    for n in 0..HINTED {
        tokio::time::sleep(Duration::from_millis(20 + (n as u64 * 7) % 30)).await;
        let tenant = format!("hinted-{n}");
        let at = Instant::now() + Duration::from_millis(10);
        hinted.lock().map_err(|_| "poisoned")?.insert(tenant.clone(), at);
        triggers
            .set(&tenant, "ping", "u", Duration::from_millis(10))
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&hinted_delays) < HINTED && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
    while let Some(joined) = listeners.join_next().await {
        joined??;
    }
    let delays = std::mem::take(&mut *delays.lock().map_err(|_| "poisoned")?);
    let hinted_delays = std::mem::take(&mut *hinted_delays.lock().map_err(|_| "poisoned")?);
    if delays.len() != TENANTS || hinted_delays.len() != HINTED {
        return Err(format!(
            "WRONG COUNT: {} of {TENANTS} triggers and {} of {HINTED} hinted triggers delivered",
            delays.len(),
            hinted_delays.len()
        )
        .into());
    }
    Ok((
        percentiles(delays),
        percentiles(hinted_delays),
        late_sets.load(Ordering::Relaxed) as usize,
    ))
}
