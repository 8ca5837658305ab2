//! statehouse on a Redis Cluster whose topology changes under it, and the
//! spread of its data: one cluster of three primaries for this test binary
//! (its own, since these tests move slots and drop connections; the
//! contract suite's shared cluster is never touched so).
//!
//! - Resharding under load: 16 tasks increment a document, a subject
//!   property and tenant fields, all in one slot, while that slot moves to
//!   another primary and back (`CLUSTER SETSLOT … IMPORTING/MIGRATING`,
//!   `MIGRATE`, `SETSLOT … NODE`, with pauses in between so that calls meet
//!   `ASK`, `TRYAGAIN` and `MOVED`): every count ends exact and no call
//!   fails.
//! - The change feed: a subscription whose connections are killed gets
//!   `Resync(Reconnected)` and then events again, wherever the key lives.
//! - Spread: 3,000 keys of many tenants, task ids, subjects and documents
//!   land on every primary, none holding more than half.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use statehouse::{Documents, RetryPolicy, TaskBucket, TaskSpace, Tasks, Tenant, Update};
use statehouse_domain::layout::hash_slot;
use statehouse_ports::{
    ChangeFeed, ChangeKind, FeedEvent, PropertyKind, PropertyName, ResyncReason, SubjectName, SubjectSpace,
    SubjectStore, Watched,
};
use statehouse_redis::{RedisConfig, RedisStore};
use statehouse_tests::harness::{RedisCluster, SHARED_ARGS};

/// Calls the writing tasks must complete in each state of a migration.
const PROGRESS: u64 = 20;
/// How long a migration step waits for them: far beyond what 20 calls take
/// (each is bounded by the store's 2 s response timeout).
const PROGRESS_BOUND: Duration = Duration::from_secs(60);

/// This binary's cluster, started on first use.
fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        RedisCluster::builder()
            .node_timeout(Duration::from_secs(15))
            .args(SHARED_ARGS)
            .start()
    })
}

async fn store(prefix: &str) -> RedisStore {
    RedisStore::connect(RedisConfig::new(cluster().url()).with_prefix(prefix))
        .await
        .unwrap()
}

/// Successful calls of one kind, shared by the tasks.
#[derive(Default)]
struct Counts {
    documents: AtomicU64,
    subjects: AtomicU64,
    increments: AtomicU64,
    modified: AtomicU64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.documents.load(Ordering::SeqCst)
            + self.subjects.load(Ordering::SeqCst)
            + self.increments.load(Ordering::SeqCst)
            + self.modified.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_under_16_writing_tasks_loses_no_count_and_fails_no_call() {
    let prefix = "reshard:";
    let store = store(prefix).await;
    // One slot: the document's, the subject's and the tenant's hash tag.
    let tag = "hot";
    let slot = hash_slot(tag.as_bytes());
    for raw in [
        format!("{prefix}{{{tag}}}:counter"),
        format!("{prefix}s:{{{tag}}}:device"),
        format!("{prefix}t:{{{tag}}}:u:u1"),
    ] {
        assert_eq!(cluster().slot_of(&raw), slot, "{raw}");
    }
    let policy = RetryPolicy::new(100_000);
    let docs = Documents::new(Arc::new(store.clone())).with_retry_policy(policy);
    let tenant = Tenant::new(Arc::new(store.clone()), tag, policy).unwrap();
    let space = SubjectSpace::default().with_policy(policy);
    let subject = SubjectName::new(format!("{{{tag}}}:device")).unwrap();
    let property = PropertyName::new("counter").unwrap();

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..16 {
        let (docs, tenant, store, space) = (docs.clone(), tenant.clone(), store.clone(), space.clone());
        let (subject, property) = (subject.clone(), property.clone());
        let (counts, stop) = (counts.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let doc = format!("{{{tag}}}:counter");
            while !stop.load(Ordering::SeqCst) {
                match task % 4 {
                    0 => {
                        docs.update(&doc, |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                            .await
                            .unwrap();
                        counts.documents.fetch_add(1, Ordering::SeqCst);
                    }
                    1 => {
                        store
                            .update_property(&space, &subject, PropertyKind::Default, &property, &mut |old| {
                                Ok(json!(old.and_then(Value::as_u64).unwrap_or(0) + 1))
                            })
                            .await
                            .unwrap();
                        counts.subjects.fetch_add(1, Ordering::SeqCst);
                    }
                    2 => {
                        tenant.users().increment("u1", "count", 1).await.unwrap();
                        counts.increments.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        tenant
                            .handler_states()
                            .modify_field("u1", "h", "count", |n: Option<u64>| n.unwrap_or(0) + 1)
                            .await
                            .unwrap();
                        counts.modified.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }

    // Let every kind of call run before the slot moves, then move it away
    // and back, pausing after each step so that calls meet each state.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = Arc::new(Mutex::new(Vec::new()));
    let (home, away) = {
        let primaries = cluster().primaries();
        let home = cluster().primary_for_slot(slot).port();
        let away = primaries.iter().find(|node| node.port() != home).unwrap().port();
        (home, away)
    };
    for (from, to) in [(home, away), (away, home)] {
        let (counts, during) = (counts.clone(), during.clone());
        let moved = tokio::task::spawn_blocking(move || {
            let cluster = cluster();
            let (from, to) = (cluster.node_by_port(from), cluster.node_by_port(to));
            cluster.migrate_slot_with(slot, from, to, |step| {
                // Hold the migration in each state until the tasks made
                // progress in it (bounded: each call is bounded by the
                // store's response timeout, redirects included).
                let before = counts.total();
                let deadline = std::time::Instant::now() + PROGRESS_BOUND;
                while counts.total() < before + PROGRESS && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                during.lock().unwrap().push((step, counts.total() - before));
            })
        })
        .await
        .unwrap();
        assert!(moved > 0, "the slot held keys to move");
        assert_eq!(cluster().primary_for_slot(slot).port(), to);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }

    // Calls went on in every state of the migration: while the target
    // imports, while the source migrates (ASK, TRYAGAIN), once the keys
    // moved, and after each SETSLOT NODE (MOVED).
    let during = during.lock().unwrap().clone();
    eprintln!("calls completed while the migration was held after each step: {during:?}");
    assert!(during.len() >= 2 * 6, "{during:?}");
    for (step, calls) in &during {
        assert!(
            *calls >= PROGRESS,
            "only {calls} calls completed after {step:?}: {during:?}"
        );
    }

    let doc: Option<u64> = docs.get(&format!("{{{tag}}}:counter")).await.unwrap();
    assert_eq!(doc, Some(counts.documents.load(Ordering::SeqCst)));
    let property_value = store
        .get_property(&space, &subject, PropertyKind::Default, &property)
        .await
        .unwrap();
    assert_eq!(
        property_value,
        Some(json!(counts.subjects.load(Ordering::SeqCst)))
    );
    let increments: Option<i64> = tenant.users().get_field("u1", "count").await.unwrap();
    assert_eq!(
        increments.map(i64::unsigned_abs),
        Some(counts.increments.load(Ordering::SeqCst))
    );
    let modified: Option<u64> = tenant
        .handler_states()
        .get_field("u1", "h", "count")
        .await
        .unwrap();
    assert_eq!(modified, Some(counts.modified.load(Ordering::SeqCst)));
    assert!(counts.total() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_connections_drop_resyncs_and_hears_every_node_again() {
    let prefix = "feed:";
    let store = store(prefix).await;
    let docs = Documents::new(Arc::new(store.clone()));
    // Keys on every primary: one per primary, found by their slots.
    let mut keys: BTreeMap<u16, String> = BTreeMap::new();
    for i in 0.. {
        let key = format!("k{i}");
        let owner = cluster().primary_for_key(&format!("{prefix}{key}")).port();
        keys.entry(owner).or_insert(key);
        if keys.len() == 3 {
            break;
        }
    }
    let pattern = statehouse_ports::KeyPattern::new("k*").unwrap();
    let mut sub = store.subscribe(&Watched::Pattern(pattern), 1024).await.unwrap();
    assert_eq!(
        sub.next().await,
        Some(FeedEvent::Resync(ResyncReason::Subscribed))
    );

    // Every Pub/Sub client of every primary is killed.
    for node in cluster().primaries() {
        let mut conn = node.connection();
        let _: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut conn)
            .unwrap();
    }
    let resynced = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if sub.next().await == Some(FeedEvent::Resync(ResyncReason::Reconnected)) {
                return;
            }
        }
    })
    .await;
    assert!(
        resynced.is_ok(),
        "no Resync(Reconnected) after the connections dropped"
    );

    // Then a write on each primary arrives (keyspace notifications of its
    // node). The listeners reconnect one by one: write until each is heard.
    for key in keys.values() {
        let heard = tokio::time::timeout(Duration::from_secs(30), async {
            let mut n = 0u64;
            loop {
                n += 1;
                docs.set(key, &n).await.unwrap();
                let wait = tokio::time::sleep(Duration::from_millis(200));
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        event = sub.next() => match event {
                            Some(FeedEvent::Change(change)) if change.key == *key && change.kind == ChangeKind::Set => return,
                            Some(_) => {}
                            None => panic!("the feed ended"),
                        },
                        () = &mut wait => break,
                    }
                }
            }
        })
        .await;
        assert!(heard.is_ok(), "no event for {key} after reconnecting");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_keys_of_every_family_spread_over_every_primary() {
    let prefix = "spread:";
    let store = store(prefix).await;
    let docs = Documents::new(Arc::new(store.clone()));
    let tasks = Tasks::new(Arc::new(store.clone()), TaskSpace::default());
    let space = SubjectSpace::default();
    let property = PropertyName::new("p").unwrap();
    let mut writes = Vec::new();
    // 1,000 documents, 800 subjects, 800 tenant records of 200 tenants,
    // 300 tasks of 30 users (their records and index parts in 16 buckets,
    // `{tasks:b0}` … `{tasks:b15}`, 16 slots).
    for i in 0..1_000 {
        let docs = docs.clone();
        writes.push(tokio::spawn(async move {
            docs.set(&format!("doc:{i}"), &i).await.unwrap()
        }));
    }
    for i in 0..800 {
        let (store, space, property) = (store.clone(), space.clone(), property.clone());
        writes.push(tokio::spawn(async move {
            let subject = SubjectName::new(format!("device-{i}")).unwrap();
            store
                .update_property(&space, &subject, PropertyKind::Default, &property, &mut |_| {
                    Ok(json!(i))
                })
                .await
                .unwrap();
        }));
    }
    for i in 0..800 {
        let tenant = Tenant::new(
            Arc::new(store.clone()),
            &format!("tenant-{}", i % 200),
            RetryPolicy::default(),
        )
        .unwrap();
        writes.push(tokio::spawn(async move {
            tenant
                .users()
                .set_field(&format!("user-{i}"), "n", &i)
                .await
                .unwrap();
        }));
    }
    for i in 0..300 {
        let tasks = tasks.clone();
        writes.push(tokio::spawn(async move {
            tasks
                .create(&format!("task-{i}"), "mailer", &format!("user-{}", i % 30))
                .await
                .unwrap();
        }));
    }
    for write in writes {
        write.await.unwrap();
    }

    // Count this test's keys on each primary, by SCAN of that node alone.
    let mut counts: BTreeMap<u16, u64> = BTreeMap::new();
    for node in cluster().primaries() {
        let mut conn = node.connection();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
                .unwrap();
            *counts.entry(node.port()).or_default() += keys.len() as u64;
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    let total: u64 = counts.values().sum();
    eprintln!(
        "keys per primary: {counts:?} of {total}; DBSIZE: {:?}",
        cluster().count_keys_per_primary()
    );
    // The index parts: one per bucket holding a task of the service, or of
    // the user.
    let mut index_parts = std::collections::BTreeSet::new();
    for i in 0..300 {
        let bucket = TaskBucket::of(&format!("task-{i}"));
        index_parts.insert((bucket, "mailer".to_owned()));
        index_parts.insert((bucket, format!("user-{}", i % 30)));
    }
    assert_eq!(
        total,
        1_000 + 800 + 800 + 300 + index_parts.len() as u64,
        "{counts:?}"
    );
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (port, count) in &counts {
        assert!(*count > 0, "primary {port} holds none: {counts:?}");
        assert!(
            count * 2 <= total,
            "primary {port} holds more than half: {counts:?}"
        );
    }
}
