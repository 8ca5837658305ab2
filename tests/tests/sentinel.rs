//! The contract suite on the Redis adapter connected to a Sentinel service
//! (`redis+sentinel://…`: one primary, two replicas, three sentinels),
//! started once for this test process; each test under its own key prefix.
//! Then a failover under load: calls fail within their bound or succeed,
//! and succeed again soon after the promotion, without a new store.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use statehouse_tests::backends::{Stack, run_sentinel};
use statehouse_tests::contract::{Body, Flavor};

fn run(flavor: Flavor, body: Body) {
    run_sentinel(Stack::Bare, flavor, body);
}

statehouse_tests::contract_suite!(run);

/// Under a load of document increments (one counter per worker, so no
/// conflict retries), `SENTINEL FAILOVER`: every call succeeds or fails
/// within its bound, and every call started 5 s after the promotion
/// succeeds, on the same `Statehouse` (no restart of the caller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_under_load_fails_calls_within_their_bound_then_they_succeed_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use statehouse::{Settings, Statehouse, Update};
    use statehouse_tests::harness::{SentinelSet, failover};

    const WORKERS: usize = 4;
    const RECOVERY: Duration = Duration::from_secs(5);

    let set = Arc::new(tokio::task::spawn_blocking(SentinelSet::start).await.unwrap());
    let settings = Settings::new(set.url());
    // An update without conflicts: WATCH and GET, then MULTI/EXEC (2 round
    // trips), repeated once on a fresh connection when its pooled one was
    // dropped, plus opening that connection; on a busy box, 1 s more.
    let bound = settings.connect_timeout + settings.response_timeout * 4 + Duration::from_secs(1);
    let state = Statehouse::with_settings(settings).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (docs, stop) = (state.documents(), stop.clone());
        workers.push(tokio::spawn(async move {
            let key = format!("failover:counter:{worker}");
            // (started, took, succeeded, error text)
            let mut calls: Vec<(Instant, Duration, Result<(), String>)> = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let started = Instant::now();
                let outcome = docs
                    .update(&key, |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                    .await;
                calls.push((
                    started,
                    started.elapsed(),
                    outcome.map(|_| ()).map_err(|e| e.to_string()),
                ));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            calls
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let faulted = set.clone();
    let promotion = tokio::task::spawn_blocking(move || failover::sentinel_failover(&faulted))
        .await
        .unwrap();
    let promoted = promotion.began + promotion.promoted_after;
    // Load on until well past the promised recovery.
    tokio::time::sleep_until((promoted + RECOVERY + Duration::from_secs(3)).into()).await;
    stop.store(true, Ordering::Release);

    let (mut failed, mut after_recovery) = (0, 0);
    for worker in workers {
        for (started, took, outcome) in worker.await.unwrap() {
            if let Err(error) = &outcome {
                failed += 1;
                assert!(
                    took <= bound,
                    "a call failed after {took:?}, past its bound {bound:?}: {error}"
                );
            }
            if started >= promoted + RECOVERY {
                after_recovery += 1;
                assert!(
                    outcome.is_ok(),
                    "a call started {:?} after the promotion failed: {outcome:?}",
                    started - promoted
                );
            }
        }
    }
    assert!(after_recovery > 0, "no call ran 5 s after the promotion");
    eprintln!(
        "sentinel failover: promoted after {:?}; {failed} calls failed; {after_recovery} calls after recovery all succeeded",
        promotion.promoted_after
    );
    drop(state);
    tokio::task::spawn_blocking(move || drop(set)).await.unwrap();
}

/// Subscribers on the server behind `conn` (`CLIENT LIST TYPE pubsub`),
/// other than the sentinels' own (named `sentinel-…`).
fn pubsub_clients(conn: &mut redis::Connection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query(conn)
        .unwrap();
    list.lines()
        .filter(|line| !line.trim().is_empty() && !line.contains("name=sentinel-"))
        .count()
}

/// A change feed subscription opened before `SENTINEL FAILOVER` follows the
/// switch: it subscribes on the new primary, the watcher gets a `Resync`
/// after the promotion, and then the changes written on the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_feed_follows_a_sentinel_failover_with_a_resync_then_the_new_primarys_changes() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use statehouse::{FeedEvent, ResyncReason, Settings, Statehouse, Subscription};
    use statehouse_tests::harness::{SentinelSet, failover};

    let set = Arc::new(tokio::task::spawn_blocking(SentinelSet::start).await.unwrap());
    let settings = Settings::new(set.url());
    // The switch is seen through `+switch-master`, or at the latest by the
    // feed's own resolution every keepalive period (5 s); then resolving
    // (asking a sentinel, connecting and `ROLE`) and subscribing each take
    // at most a connect and a response timeout.
    let bound = Duration::from_secs(5) + (settings.connect_timeout + settings.response_timeout) * 3;
    let state = Statehouse::with_settings(settings).await.unwrap();
    let config = state.config();
    let mut sub = state.watch("config:*").await.unwrap();
    assert_eq!(
        sub.next().await,
        Some(FeedEvent::Resync(ResyncReason::Subscribed))
    );

    async fn next_change(sub: &mut Subscription, key: &str, bound: Duration, what: &str) -> Vec<FeedEvent> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(bound, async {
            loop {
                match sub.next().await {
                    Some(event) => {
                        let change = matches!(&event, FeedEvent::Change(change) if change.key == key);
                        seen.push(event);
                        if change {
                            return;
                        }
                    }
                    None => panic!("the feed ended while waiting for {what}"),
                }
            }
        })
        .await;
        assert!(found.is_ok(), "no {what} within {bound:?}; seen {seen:?}");
        seen
    }
    config.update("before", &1u32).await.unwrap();
    next_change(&mut sub, "config:before", bound, "change before the failover").await;

    let faulted = set.clone();
    let promotion = tokio::task::spawn_blocking(move || failover::sentinel_failover(&faulted))
        .await
        .unwrap();
    let promoted = promotion.began + promotion.promoted_after;

    // The new primary gets the subscription.
    let new_port = promotion.new;
    let subscribed = tokio::task::spawn_blocking({
        let set = set.clone();
        move || {
            let node = set
                .data_nodes()
                .iter()
                .find(|node| node.port() == new_port)
                .expect("the promoted node is one of the set's");
            let mut conn = node.connection();
            let deadline = Instant::now() + bound;
            while Instant::now() < deadline {
                if pubsub_clients(&mut conn) > 0 {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        }
    })
    .await
    .unwrap();
    assert!(
        subscribed,
        "no subscription on the new primary within {bound:?} of its promotion"
    );

    // A write on the new primary arrives after a Resync that came after the
    // promotion.
    let mut written = false;
    let deadline = promoted + bound;
    while !written {
        written = config.update("after", &2u32).await.is_ok();
        if !written {
            assert!(
                Instant::now() < deadline,
                "no write succeeded within {bound:?} of the promotion"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let seen = next_change(&mut sub, "config:after", bound, "change after the failover").await;
    let resynced = seen.contains(&FeedEvent::Resync(ResyncReason::Reconnected));
    assert!(
        resynced,
        "no Resync before the first change after the switch: {seen:?}"
    );
    assert!(Instant::now() >= promoted);
    drop(sub);
    drop(state);
    tokio::task::spawn_blocking(move || drop(set)).await.unwrap();
}

/// The role (`master`, `slave`) of `node` and the calls of the task reads'
/// commands in its `INFO commandstats`; an error (a connection killed by a
/// failover) means "not now".
fn role_and_read_calls(node: &statehouse_tests::harness::Node) -> Result<(String, u64), String> {
    let fail = |error: redis::RedisError| format!("{}: {error}", node.addr());
    let client = redis::Client::open(node.url()).map_err(fail)?;
    let mut conn = client
        .get_connection_with_timeout(std::time::Duration::from_secs(1))
        .map_err(fail)?;
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).map_err(fail)?;
    let role = match role.first() {
        Some(redis::Value::BulkString(role)) => String::from_utf8_lossy(role).into_owned(),
        other => return Err(format!("{}: ROLE said {other:?}", node.addr())),
    };
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .map_err(fail)?;
    let calls = statehouse_tests::harness::sentinel::task_read_calls(&info);
    Ok((role, calls))
}

/// Whether `reads` task reads just now ran on replicas of `set` only, per
/// each data node's role and command counts.
async fn reads_on_replicas_only(
    set: &std::sync::Arc<statehouse_tests::harness::SentinelSet>,
    tasks: &statehouse::Tasks,
    reads: u64,
) -> Result<(), String> {
    let counts = |set: std::sync::Arc<statehouse_tests::harness::SentinelSet>| {
        tokio::task::spawn_blocking(move || {
            set.data_nodes()
                .iter()
                .filter(|node| node.is_running())
                .map(|node| role_and_read_calls(node).map(|(role, calls)| (node.port(), role, calls)))
                .collect::<Result<Vec<_>, String>>()
        })
    };
    let before = counts(set.clone()).await.unwrap()?;
    for _ in 0..reads {
        tasks.get("t1").await.map_err(|error| error.to_string())?;
    }
    let after = counts(set.clone()).await.unwrap()?;
    let mut on_replicas = 0;
    for ((port, role, was), (_, role_after, now)) in before.iter().zip(&after) {
        let grown = now - was;
        if grown == 0 {
            continue;
        }
        if role != "slave" || role_after != "slave" {
            return Err(format!("{grown} reads on {port}, a {role} (now {role_after})"));
        }
        on_replicas += grown;
    }
    if on_replicas < reads {
        return Err(format!("{on_replicas} of {reads} reads seen on the replicas"));
    }
    Ok(())
}

/// A read URL `redis+sentinel://…/SERVICE?role=replica`: task reads go to a
/// replica of the service the sentinels name (never the primary), and
/// after `SENTINEL FAILOVER` to a replica again (the old replica read from
/// may be the new primary), without a new `Statehouse`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_reads_go_to_any_replica_of_the_service_and_follow_a_failover() {
    use std::sync::Arc;
    use std::time::Duration;

    use statehouse::{Settings, Statehouse};
    use statehouse_tests::harness::{SentinelSet, failover};

    let set = Arc::new(tokio::task::spawn_blocking(SentinelSet::start).await.unwrap());
    let mut settings = Settings::new(set.url());
    settings.read_url = Some(format!("{}?role=replica", set.url()));
    // Noticing the switch (a failing call, `+switch-master`), resolving
    // the primary and the replicas, connecting: each step a connect and a
    // response timeout at most.
    let bound = (settings.connect_timeout + settings.response_timeout) * 4;
    let state = Statehouse::with_settings(settings).await.unwrap();
    let tasks = state.tasks();
    statehouse_tests::harness::sentinel::create_task_seen_on_replica(&tasks, "t1").await;
    reads_on_replicas_only(&set, &tasks, 5).await.unwrap();

    let faulted = set.clone();
    let promotion = tokio::task::spawn_blocking(move || failover::sentinel_failover(&faulted))
        .await
        .unwrap();
    let promoted = promotion.began + promotion.promoted_after;
    loop {
        let Err(last) = reads_on_replicas_only(&set, &tasks, 5).await else {
            break;
        };
        assert!(
            promoted.elapsed() < bound,
            "task reads not on a replica {bound:?} after the promotion: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tasks.get("t1").await.unwrap().is_some());
    drop(state);
    tokio::task::spawn_blocking(move || drop(set)).await.unwrap();
}
