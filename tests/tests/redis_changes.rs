//! Redis-only behaviour of the change feed and the config store: events
//! without keyspace notifications, the dedicated Pub/Sub connection,
//! reconnection and convergence, many `Statehouse` instances. Each test owns
//! its `redis-server` (started without keyspace notifications, the
//! server's default, unless a test is about them).

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use std::time::{Duration, Instant};

use statehouse::{
    ChangeKind, FeedEvent, ResyncReason, Settings, Snapshot, Statehouse, StoreError, Subscription,
};
use statehouse_tests::harness::RedisServer;
use tokio::sync::watch;

const PATIENCE: Duration = Duration::from_secs(10);

async fn connect(server: &RedisServer) -> Statehouse {
    let mut settings = Settings::new(server.url());
    settings.prefix = "app:".to_owned();
    Statehouse::with_settings(settings).await.unwrap()
}

/// How many clients hold a Pub/Sub subscription.
fn subscribers(server: &RedisServer) -> usize {
    server
        .client_list()
        .lines()
        .filter(|line| {
            line.split(' ')
                .any(|field| matches!(field.split_once('='), Some(("sub" | "psub", n)) if n != "0"))
        })
        .count()
}

async fn next_event(
    sub: &mut Subscription,
    what: &str,
    mut wanted: impl FnMut(&FeedEvent) -> bool,
) -> FeedEvent {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            match sub.next().await {
                Some(event) if wanted(&event) => return event,
                Some(_) => {}
                None => panic!("the feed ended while waiting for {what}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within {PATIENCE:?}"))
}

async fn until<T: Clone>(
    rx: &mut watch::Receiver<Snapshot<T>>,
    what: &str,
    done: impl FnMut(&Snapshot<T>) -> bool,
) {
    let outcome = tokio::time::timeout(PATIENCE, rx.wait_for(done))
        .await
        .map(|found| found.is_ok());
    match outcome {
        Ok(true) => {}
        Ok(false) => panic!("the watcher closed while waiting for {what}"),
        Err(_) => panic!(
            "no {what} within {PATIENCE:?}; holds {:?}",
            rx.borrow().current.as_ref().map(|c| c.version)
        ),
    }
}

/// Retries `probe` until it succeeds, for at most 10 s.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Result<T, StoreError>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("{what}: still failing after {PATIENCE:?}: {error}"),
        }
    }
}

/// Closes every Pub/Sub connection and, in the same transaction (so before
/// any can subscribe again), runs `then` (which no event announces: the
/// server has no keyspace notifications).
fn kill_subscribers_and(server: &RedisServer, then: &redis::Cmd) {
    let mut conn = server.connection();
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .ignore()
        .add_command(then.clone())
        .ignore();
    pipe.exec(&mut conn).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_updates_need_no_keyspace_notifications() {
    let server = RedisServer::start();
    let (writer, reader) = (connect(&server).await, connect(&server).await);
    let mut raw = reader.watch("config:*").await.unwrap();
    let config = reader.config();
    let mut rx = config.watch::<u32>("limit").await.unwrap();
    writer.config().update("limit", &7).await.unwrap();
    let event = next_event(&mut raw, "the announced set", |event| {
        matches!(event, FeedEvent::Change(_))
    })
    .await;
    let FeedEvent::Change(change) = event else {
        unreachable!()
    };
    assert_eq!(
        (change.key.as_str(), change.kind, change.version),
        ("config:limit", ChangeKind::Set, Some(1))
    );
    until(&mut rx, "version 1", |s| {
        s.current.as_ref().is_some_and(|c| c.value == 7)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_has_its_own_connection_and_dropping_it_closes_it() {
    let server = RedisServer::start();
    let state = connect(&server).await;
    assert_eq!(subscribers(&server), 0);
    let sub = state.watch("a*").await.unwrap();
    let other = state.watch("b*").await.unwrap();
    assert_eq!(subscribers(&server), 2, "one Pub/Sub connection per subscription");
    drop(sub);
    let deadline = Instant::now() + PATIENCE;
    while subscribers(&server) != 1 {
        assert!(
            Instant::now() < deadline,
            "the dropped subscription's connection stays open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(other);
    // The shared connection still serves plain commands.
    state.documents().set("k", &1).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_reconnects_and_says_so() {
    let server = RedisServer::start();
    let state = connect(&server).await;
    let mut sub = state.watch("k").await.unwrap();
    assert_eq!(
        sub.next().await,
        Some(FeedEvent::Resync(ResyncReason::Subscribed))
    );
    kill_subscribers_and(&server, redis::cmd("PING").arg("x"));
    next_event(&mut sub, "the reconnection", |event| {
        *event == FeedEvent::Resync(ResyncReason::Reconnected)
    })
    .await;
    // Live again: an announced write arrives.
    state.config().update("k", &1).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_rereads_what_changed_while_it_reconnected() {
    let server = RedisServer::start();
    let (writer, reader) = (connect(&server).await, connect(&server).await);
    writer.config().update("api", &1).await.unwrap();
    let config = reader.config();
    let mut rx = config.watch::<u32>("api").await.unwrap();
    until(&mut rx, "version 1", |s| {
        s.current.as_ref().is_some_and(|c| c.version == 1)
    })
    .await;
    // Written by another client, unannounced, while the watcher's
    // connection is gone: only the re-read after reconnecting can see it.
    let mut set = redis::cmd("SET");
    set.arg("app:config:api").arg(r#"{"version":2,"value":2}"#);
    kill_subscribers_and(&server, &set);
    until(&mut rx, "version 2", |s| {
        s.current.as_ref().is_some_and(|c| c.version == 2 && c.value == 2)
    })
    .await;
    assert_eq!(config.fetch::<u32>("api").await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_converge_after_a_server_restart() {
    let mut server = RedisServer::start_durable();
    let (writer, reader) = (connect(&server).await, connect(&server).await);
    writer.config().update("api", &1).await.unwrap();
    let config = reader.config();
    let mut rx = config.watch::<u32>("api").await.unwrap();
    until(&mut rx, "version 1", |s| {
        s.current.as_ref().is_some_and(|c| c.version == 1)
    })
    .await;
    server.restart();
    // Changed at once, while the watcher reconnects (its first retry waits
    // 50 ms, then backs off).
    let writes = writer.config();
    let version = eventually("the update after the restart", async || {
        writes.update("api", &2).await
    })
    .await;
    assert_eq!(version, 2);
    until(&mut rx, "the current value", |s| {
        s.current.as_ref().is_some_and(|c| c.version == 2 && c.value == 2)
    })
    .await;
    assert_eq!(config.fetch::<u32>("api").await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_updates_reach_three_other_instances() {
    let server = RedisServer::start();
    let writer = connect(&server).await.config();
    writer.update("hot", &0u32).await.unwrap();
    let mut watchers = Vec::new();
    for _ in 0..3 {
        let config = connect(&server).await.config();
        let rx = config.watch::<u32>("hot").await.unwrap();
        watchers.push((config, rx));
    }
    for n in 1..=1000u32 {
        writer.update("hot", &n).await.unwrap();
    }
    for (config, rx) in &mut watchers {
        until(rx, "the last value", |s| {
            s.current
                .as_ref()
                .is_some_and(|c| c.version == 1001 && c.value == 1000)
        })
        .await;
        assert_eq!(config.fetch::<u32>("hot").await.unwrap(), Some(1000));
        assert_eq!(config.cached_version("hot"), Some(1001));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clients_changes_arrive_when_the_server_notifies() {
    let server = RedisServer::start_with_args(statehouse_tests::harness::SHARED_ARGS);
    let state = connect(&server).await;
    let config = state.config();
    config.update("api", &1).await.unwrap();
    let mut rx = config.watch::<u32>("api").await.unwrap();
    let mut raw = state.watch("config:*").await.unwrap();
    // Another client (say redis-cli) writes the entry, unannounced.
    let mut conn = server.connection();
    redis::cmd("SET")
        .arg("app:config:api")
        .arg(r#"{"version":2,"value":2}"#)
        .exec(&mut conn)
        .unwrap();
    let event = next_event(&mut raw, "the keyspace event", |event| {
        matches!(event, FeedEvent::Change(_))
    })
    .await;
    let FeedEvent::Change(change) = event else {
        unreachable!()
    };
    assert_eq!(
        (change.key.as_str(), change.kind, change.version),
        ("config:api", ChangeKind::Set, None)
    );
    until(&mut rx, "version 2", |s| {
        s.current.as_ref().is_some_and(|c| c.version == 2)
    })
    .await;
    redis::cmd("DEL").arg("app:config:api").exec(&mut conn).unwrap();
    until(&mut rx, "the delete", |s| s.current.is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_is_one_round_trip_when_the_cache_is_current() {
    let server = RedisServer::start();
    let config = connect(&server).await.config();
    config.update("limit", &1).await.unwrap();
    assert_eq!(config.fetch::<u32>("limit").await.unwrap(), Some(1));
    let before = server.command_calls();
    assert_eq!(config.update("limit", &2).await.unwrap(), 2);
    let after = server.command_calls();
    let delta = |name: &str| after.since(&before).of(name);
    assert_eq!(delta("evalsha"), 1, "one compare-and-set script: {after:?}");
    // commandstats counts the commands a script runs too: the script's own
    // TYPE, GET, SET and PUBLISH, once each, and nothing else reads or writes.
    for name in ["type", "get", "set", "publish"] {
        assert_eq!(delta(name), 1, "{name} once, inside the script: {after:?}");
    }
    for name in ["watch", "multi", "exec", "eval"] {
        assert_eq!(delta(name), 0, "no {name} on the update's path: {after:?}");
    }
    // The handle reads its own write at once, from its cache.
    assert_eq!(config.cached_version("limit"), Some(2));
    assert_eq!(config.fetch::<u32>("limit").await.unwrap(), Some(2));
}

/// With keyspace notifications on, an announced write fires the server's notification of its
/// command and statehouse's notice, in that order and in one atomic step, so the two reach a
/// subscriber together: the feed delivers the notice alone (the notification repeats it), and a
/// watcher re-reads once per write, a writer's cache not at all. Every write still arrives, in
/// commit order; a pair split across two reads of the connection (which the server writes in one)
/// would be delivered both, so the bound below is half the writes, where the pairing broken
/// would repeat every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_write_is_one_event_when_the_server_notifies_too() {
    const WRITES: u64 = 100;
    let server = RedisServer::start_with_args(statehouse_tests::harness::SHARED_ARGS);
    let state = connect(&server).await;
    let config = state.config();
    let mut raw = state.watch("config:*").await.unwrap();
    for value in 1..=WRITES {
        assert_eq!(config.update("limit", &value).await.unwrap(), value);
    }
    assert!(config.delete("limit").await.unwrap());
    // Recreated, the entry starts again at version 1: the last event to wait for.
    assert_eq!(config.update("limit", &0).await.unwrap(), 1);
    let (mut versions, mut unversioned_sets, mut deletes) = (Vec::new(), 0, 0);
    next_event(&mut raw, "the entry's recreation", |event| {
        let FeedEvent::Change(change) = event else {
            return false;
        };
        assert_eq!(change.key, "config:limit");
        match (change.kind, change.version) {
            (ChangeKind::Set, Some(version)) => versions.push(version),
            (ChangeKind::Set, None) => unversioned_sets += 1,
            (ChangeKind::Deleted, None) => deletes += 1,
            other => panic!("unexpected event {other:?}"),
        }
        deletes > 0 && versions.last() == Some(&1)
    })
    .await;
    let expected: Vec<u64> = (1..=WRITES).chain([1]).collect();
    assert_eq!(versions, expected, "every announced write once, in commit order");
    let repeats = unversioned_sets + (deletes - 1);
    assert!(
        repeats < WRITES / 2,
        "{repeats} of {} announced writes also arrived as keyspace notifications",
        WRITES + 2
    );
}
