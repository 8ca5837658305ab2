//! Triggers and queues (after the rounds): claim+ack of 4 listeners of one tenant and (in
//! `triggers_all.rs`) of 4 all-tenants listeners across 10,000 tenants, the delivery delay of idle
//! listeners (one tenant; all tenants, with a trigger set by another process), and
//! enqueue/claim/ack of 4 consumers, each against raw redis-rs running the same scripts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use statehouse::Statehouse;
use tokio::task::JoinSet;

use crate::args::Options;
use crate::cluster_raw::RawCon;
use crate::engine::{Bench, Side};
use crate::report::{load_average, median};
use crate::triggers_all::{Shas, claim_ack_across_tenants, delivery_delay_all_tenants};
use crate::{BoxError, Res};

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
async fn load_script(con: &mut RawCon, code: &str) -> Res<String> {
    Ok(redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(code)
        .query_async(con)
        .await?)
}

/// Triggers and queues, after the rounds: claim+ack throughput of 4 listeners, the delivery delay
/// of idle listeners, and enqueue/claim/ack throughput of 4 consumers, each against raw redis-rs
/// running the same scripts. Median ratios of `options.rounds` runs, against the targets.
pub(crate) async fn triggers_queues_bench(state: &Statehouse, bench: &Bench, options: Options) -> Res<()> {
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
    let all_shas = Shas::load(&mut raw).await?;
    let triggers = state.triggers();
    let queues = state.queues();
    let queue = queues.queue("bench-svc", "b", "send")?;
    let items = if options.quick { 1_000 } else { TQ_ITEMS };
    let mut trigger_ratios = Vec::new();
    let mut all_ratios = Vec::new();
    let mut queue_ratios = Vec::new();
    for round in 0..=options.rounds {
        let mut trigger_rates = [0.0; 2];
        let mut all_rates = [0.0; 2];
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
                                    for pair in reply.get(2..).unwrap_or_default().chunks(3) {
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
                                        let reply: Vec<i64> = redis::cmd("EVALSHA")
                                            .arg(&ack_sha)
                                            .arg(3)
                                            .arg(TQ_DUE)
                                            .arg(TQ_CLAIMS)
                                            .arg(by_id)
                                            .arg(format!("remind:{id}"))
                                            .arg(token)
                                            .query_async(&mut con)
                                            .await?;
                                        reply.get(2) == Some(&1)
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

            // Across tenants: one due trigger for each of `items` tenants, 4 all-tenants listeners.
            all_rates[i] = claim_ack_across_tenants(state, bench, &all_shas, side, items).await?;

            // Queues: enqueue in tens (one producer), then 4 consumers claim and ack.
            let section = crate::instructions::start("14. queues: enqueue in tens (op = item)", side).await;
            let start = Instant::now();
            for chunk in (0..items as u64).collect::<Vec<_>>().chunks(10) {
                match side {
                    Side::Statehouse => {
                        queues.enqueue(TQ_TENANT, &queue, chunk).await?;
                    }
                    // On a cluster no MULTI spans the queue and the pending set: the mark
                    // first, then the script, as statehouse does there (docs/keys.md).
                    Side::Raw if matches!(raw, RawCon::Cluster(_)) => {
                        redis::cmd("ZADD")
                            .arg(TQ_PENDING)
                            .arg("NX")
                            .arg(Utc::now().timestamp_millis())
                            .arg(TQ_TENANT)
                            .exec_async(&mut raw)
                            .await?;
                        let mut eval = redis::cmd("EVALSHA");
                        eval.arg(&enqueue_sha).arg(4).arg(&TQ_QUEUE[..]).arg("b:send");
                        for n in chunk {
                            eval.arg(serde_json::to_vec(n)?);
                        }
                        let _ids: Vec<u64> = eval.query_async(&mut raw).await?;
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
            section.end(items as u64).await;
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
        all_ratios.push(all_rates[0] / all_rates[1]);
        queue_ratios.push(queue_rates[0] / queue_rates[1]);
        println!(
            "triggers/queues round {}/{}: trigger claim+ack {:.0}/s vs raw {:.0}/s; across tenants \
             {:.0}/s vs raw {:.0}/s; enqueue+claim+ack {:.0}/s vs raw {:.0}/s (load {})",
            round,
            options.rounds,
            trigger_rates[0],
            trigger_rates[1],
            all_rates[0],
            all_rates[1],
            queue_rates[0],
            queue_rates[1],
            load_average(),
        );
    }
    let (p50, p99) = delivery_delay(&triggers).await?;
    let trigger = median(trigger_ratios);
    let all = median(all_ratios);
    let queue = median(queue_ratios);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "triggers: claim+ack {trigger:.2}x raw (target >= 0.9: {}); delivery delay after the due time \
         p50 {:.1} ms, p99 {:.1} ms with listeners idle (target p99 <= 50 ms: {}); queues: \
         enqueue+claim+ack {queue:.2}x raw (target >= 0.9: {}); counts exact (load {})",
        verdict(trigger >= 0.9),
        p50,
        p99,
        verdict(p99 <= 50.0),
        verdict(queue >= 0.9),
        load_average(),
    );
    println!(
        "triggers across tenants: claim+ack {all:.2}x raw (target >= 0.9: {}); counts exact (load {})",
        verdict(all >= 0.9),
        load_average(),
    );
    if state.backend() == "redis" {
        let ((p50, p99), (hint_p50, hint_p99), late_sets) = delivery_delay_all_tenants(state).await?;
        println!(
            "triggers across tenants: delivery delay after the due time with 10,000 tenants and 4 idle \
             listeners p50 {p50:.1} ms, p99 {p99:.1} ms (target p99 <= 50 ms: {}); set by another \
             process while they idle p50 {hint_p50:.1} ms, p99 {hint_p99:.1} ms (target p99 <= 50 ms: \
             {}); {late_sets} set after their due time (load {})",
            verdict(p99 <= 50.0),
            verdict(hint_p99 <= 50.0),
            load_average(),
        );
    } else {
        println!("triggers across tenants: delivery delay skipped (needs the default stack's change feed)");
    }
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
