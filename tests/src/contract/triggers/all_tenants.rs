//! Contract: the cross-tenant due index ([`TriggerStore::take_due`],
//! `claim_indexed`, `ack_indexed`, and the mark every `set` writes) and
//! the all-tenants listener over it (`Triggers::listen_all`), in one
//! process and in two.
//!
//! "Another process" is [`Backend::other_process`]: ports with connections
//! of their own (a second `RedisStore` on the same server; on the memory
//! store, a second handle on the same keyspace), under a facade with its
//! own in-process wake-up. Nothing is shared but the store, as between two
//! processes: only the store can carry a delivery or a hint between them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use statehouse::layers::{Layer, Layered, Op};
use statehouse::{ChangeFeed, DueTenants, ErrorKind, ListenOptions, TriggerStore, Triggers};
use statehouse_domain::layout::TriggerIndex;
use statehouse_ports::Boxed;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{LONG, keys, names};
use crate::contract::Backend;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn index() -> &'static TriggerIndex {
    TriggerIndex::all()
}

fn taken(due: &DueTenants) -> Vec<&str> {
    due.tenants.iter().map(|tenant| tenant.as_str()).collect()
}

/// The wall clock in ms: the store's clock (Redis' `TIME` on this
/// machine; the memory store's clock starts at it and moves with tokio
/// time), for marks written by hand.
fn wall_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// Writes the mark of `tenant` by hand: `sets` marked, the last at `at`
/// (what a `set` that marked and has not written yet leaves).
async fn mark_by_hand(backend: &Backend, tenant: &str, sets: u64, at: i64) {
    let marks = keys(tenant).shard().marks().to_owned();
    backend
        .hset_raw(&marks, tenant.as_bytes(), format!("{sets}:{at}").as_bytes())
        .await;
}

/// A facade over a process's ports, with the cross-process hints.
fn facade(triggers: Arc<dyn TriggerStore>, changes: Arc<dyn ChangeFeed>) -> Triggers {
    Triggers::new(triggers).with_hints(changes)
}

/// Whether the index holds no tenant at all (due or not).
async fn index_is_empty(triggers: &dyn TriggerStore) -> bool {
    let due = triggers.take_due(index(), 100, LONG).await.unwrap();
    due.tenants.is_empty() && due.next_due_in.is_none()
}

pub async fn take_due_hands_a_due_tenant_to_one_taker_until_it_is_filed_again(backend: Backend) {
    let (action, id) = names("remind", "u1");
    let t = &backend.triggers;
    t.set(&keys("later"), &action, &id, Duration::from_secs(10))
        .await
        .unwrap();
    t.set(&keys("now"), &action, &id, Duration::ZERO).await.unwrap();
    backend.elapse(Duration::from_millis(5)).await;
    let first = t.take_due(index(), 10, LONG).await.unwrap();
    assert_eq!(taken(&first), ["now"], "only the due tenant");
    let next = first.next_due_in.expect("\"later\" is filed");
    assert!(
        next > Duration::from_secs(8) && next <= Duration::from_secs(10),
        "{next:?}"
    );
    let second = t.take_due(index(), 10, LONG).await.unwrap();
    assert!(second.tenants.is_empty(), "taken: skipped until filed again");
    // Part of a batch claimed: the entry keeps the take's lease until the
    // ack files the tenant.
    let lease = Duration::from_millis(800);
    let claimed = t.claim_indexed(&keys("now"), 10, lease).await.unwrap();
    assert_eq!(claimed.triggers.len(), 1);
    let during = t.take_due(index(), 10, LONG).await.unwrap();
    assert!(during.tenants.is_empty(), "held until acknowledged");
    // Acknowledged: nothing left, pruned from the index.
    assert_eq!(t.ack_indexed(&keys("now"), &claimed.triggers).await.unwrap(), 1);
    let after = t.take_due(index(), 10, LONG).await.unwrap();
    assert!(after.tenants.is_empty(), "{after:?}");
    assert!(
        after
            .next_due_in
            .is_some_and(|next| next > Duration::from_secs(5)),
        "only \"later\" is left: {after:?}"
    );
}

pub async fn a_full_claim_files_the_tenant_again_at_once_and_none_prunes_it(backend: Backend) {
    let t = &backend.triggers;
    for id in ["u1", "u2", "u3"] {
        let (action, id) = names("remind", id);
        t.set(&keys("busy"), &action, &id, Duration::ZERO).await.unwrap();
    }
    backend.elapse(Duration::from_millis(5)).await;
    assert_eq!(taken(&t.take_due(index(), 10, LONG).await.unwrap()), ["busy"]);
    // A full batch: more may be due, so the tenant is filed again at once.
    let lease = Duration::from_millis(800);
    let first = t.claim_indexed(&keys("busy"), 2, lease).await.unwrap();
    assert_eq!(first.triggers.len(), 2);
    assert_eq!(first.next_due_in, Some(Duration::ZERO), "one more is due");
    assert_eq!(taken(&t.take_due(index(), 10, LONG).await.unwrap()), ["busy"]);
    let second = t.claim_indexed(&keys("busy"), 2, lease).await.unwrap();
    assert_eq!(second.triggers.len(), 1);
    // Not acknowledged (a failed handler): filed at the lease's end by a
    // claim of nothing.
    assert!(
        t.claim_indexed(&keys("busy"), 0, lease)
            .await
            .unwrap()
            .triggers
            .is_empty()
    );
    let during = t.take_due(index(), 10, LONG).await.unwrap();
    assert!(during.tenants.is_empty(), "{during:?}");
    assert!(during.next_due_in.is_some_and(|next| next <= lease), "{during:?}");
    backend.elapse(lease + Duration::from_millis(100)).await;
    let again = t.take_due(index(), 10, LONG).await.unwrap();
    assert_eq!(taken(&again), ["busy"], "the leases ran out");
    let redelivered = t.claim_indexed(&keys("busy"), 10, LONG).await.unwrap();
    assert_eq!(redelivered.triggers.len(), 3);
    assert_eq!(
        t.ack_indexed(&keys("busy"), &redelivered.triggers).await.unwrap(),
        3
    );
    // A stale entry (all acknowledged) found by a claim of nothing: pruned.
    assert!(index_is_empty(t.as_ref()).await);
}

pub async fn a_claim_that_missed_a_marked_set_looks_at_the_tenant_again_soon(backend: Backend) {
    let (action, id) = names("remind", "u1");
    let t = &backend.triggers;
    t.set(&keys("acme"), &action, &id, Duration::ZERO).await.unwrap();
    backend.elapse(Duration::from_millis(5)).await;
    assert_eq!(taken(&t.take_due(index(), 10, LONG).await.unwrap()), ["acme"]);
    // A second set has marked the index but not written its trigger yet.
    mark_by_hand(&backend, "acme", 2, wall_ms()).await;
    let claimed = t.claim_indexed(&keys("acme"), 10, LONG).await.unwrap();
    assert_eq!(t.ack_indexed(&keys("acme"), &claimed.triggers).await.unwrap(), 1);
    // Nothing is due in the tenant, yet the entry stays, due soon: the set
    // in flight may write a trigger due now.
    backend.elapse(Duration::from_millis(100)).await;
    assert_eq!(
        taken(&t.take_due(index(), 10, LONG).await.unwrap()),
        ["acme"],
        "looked at again within 100 ms"
    );
    // The set lands (its count in the tenant's claims hash): the next
    // claim sees every mark and prunes the tenant.
    backend.hset_raw(keys("acme").claims(), b"#sets", b"2").await;
    let claimed = t.claim_indexed(&keys("acme"), 10, LONG).await.unwrap();
    assert!(claimed.triggers.is_empty());
    assert!(
        index_is_empty(t.as_ref()).await,
        "pruned once every mark was seen"
    );
}

pub async fn a_mark_whose_set_never_wrote_is_adopted_after_a_minute(backend: Backend) {
    let (action, id) = names("remind", "u1");
    let t = &backend.triggers;
    t.set(&keys("acme"), &action, &id, Duration::ZERO).await.unwrap();
    // Four sets marked two minutes ago and never wrote (their writers died).
    mark_by_hand(&backend, "acme", 5, wall_ms() - 120_000).await;
    backend.elapse(Duration::from_millis(5)).await;
    assert_eq!(taken(&t.take_due(index(), 10, LONG).await.unwrap()), ["acme"]);
    let claimed = t.claim_indexed(&keys("acme"), 10, LONG).await.unwrap();
    assert_eq!(t.ack_indexed(&keys("acme"), &claimed.triggers).await.unwrap(), 1);
    assert!(
        index_is_empty(t.as_ref()).await,
        "the old marks were adopted: the tenant is pruned at once"
    );
    // And the counts agree from now on: a new set and its ack prune again.
    t.set(&keys("acme"), &action, &id, Duration::ZERO).await.unwrap();
    backend.elapse(Duration::from_millis(5)).await;
    assert_eq!(taken(&t.take_due(index(), 10, LONG).await.unwrap()), ["acme"]);
    let claimed = t.claim_indexed(&keys("acme"), 10, LONG).await.unwrap();
    t.ack_indexed(&keys("acme"), &claimed.triggers).await.unwrap();
    assert!(index_is_empty(t.as_ref()).await);
}

pub async fn a_shard_of_another_type_fails_the_set_before_the_trigger_is_written(backend: Backend) {
    let shard = keys("acme").shard().tenants().to_owned();
    backend.plant_hash(&shard).await;
    let (action, id) = names("remind", "u1");
    let error = backend
        .triggers
        .set(&keys("acme"), &action, &id, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::WrongType, shard.as_str()),
        "{error}"
    );
    assert!(
        backend
            .triggers
            .list(&keys("acme"), false)
            .await
            .unwrap()
            .is_empty(),
        "the index is written first: nothing of the tenant was"
    );
    let error = backend.triggers.take_due(index(), 10, LONG).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::WrongType, shard.as_str()),
        "{error}"
    );
}

/// One delivery a listener saw.
#[derive(Debug, Clone)]
struct Delivery {
    tenant: String,
    id: String,
    at: Instant,
    deliveries: u32,
}

/// Listeners of `listen_all` over `facades` (one per listener) until
/// `expected` deliveries were seen, then `settle` longer (a duplicate
/// would show up), then stopped. Returns every delivery, in order.
async fn listen_all_until(
    facades: Vec<Triggers>,
    options: ListenOptions,
    expected: usize,
    settle: Duration,
) -> Vec<Delivery> {
    let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let done = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for triggers in facades {
        let (seen, mut stopped, done) = (seen.clone(), stopped.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            triggers
                .listen_all(options, stopped, |tenant, trigger| {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Delivery {
                        tenant: tenant.as_str().to_owned(),
                        id: trigger.id,
                        at: Instant::now(),
                        deliveries: trigger.deliveries,
                    });
                    if seen.len() >= expected {
                        done.notify_one();
                    }
                    async { Ok::<(), BoxError>(()) }
                })
                .await
                .unwrap();
        }));
    }
    tokio::time::timeout(Duration::from_secs(300), done.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} of {expected} deliveries within five minutes",
                seen.lock().unwrap().len()
            )
        });
    // A sleep, not `elapse`: on paused time the listeners' own timers fire
    // in turn, as in real time.
    tokio::time::sleep(settle).await;
    stop.send_replace(true);
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
}

/// Asserts every `(tenant, id)` of `deliveries` came exactly once.
fn assert_exactly_once(deliveries: &[Delivery], expected: usize) -> HashMap<(String, String), Delivery> {
    let mut once = HashMap::new();
    for delivery in deliveries {
        let key = (delivery.tenant.clone(), delivery.id.clone());
        if let Some(first) = once.insert(key, delivery.clone()) {
            panic!("delivered twice: {first:?} and {delivery:?}");
        }
    }
    assert_eq!(once.len(), expected);
    once
}

pub async fn one_busy_tenant_does_not_starve_the_others(backend: Backend) {
    const OTHERS: usize = 10;
    const BATCH: usize = 5;
    let t = &backend.triggers;
    for i in 0..100 {
        let (action, id) = names("remind", &format!("u{i}"));
        t.set(&keys("busy"), &action, &id, Duration::ZERO).await.unwrap();
    }
    backend.elapse(Duration::from_millis(5)).await;
    for i in 0..OTHERS {
        let (action, id) = names("remind", "u");
        t.set(&keys(&format!("other-{i}")), &action, &id, Duration::ZERO)
            .await
            .unwrap();
    }
    backend.elapse(Duration::from_millis(5)).await;
    let options = ListenOptions {
        batch: BATCH,
        tenants: 4,
        ..ListenOptions::default()
    };
    let one = facade(t.clone(), backend.changes.clone());
    let deliveries = listen_all_until(vec![one], options, 100 + OTHERS, Duration::from_millis(1200)).await;
    assert_exactly_once(&deliveries, 100 + OTHERS);
    let last_other = deliveries.iter().rposition(|d| d.tenant != "busy").unwrap();
    let busy_before = deliveries[..last_other]
        .iter()
        .filter(|d| d.tenant == "busy")
        .count();
    // Rounds of 4 tenants: the busy one (due first) and 3 others, then,
    // its batch full, it goes behind the others still due.
    assert!(
        busy_before <= 2 * BATCH,
        "the busy tenant got {busy_before} triggers before the others were all served"
    );
}

pub async fn a_set_in_another_process_wakes_idle_listeners_at_once(backend: Backend) {
    let other = backend.other_process().await;
    let options = ListenOptions {
        max_idle: Duration::from_secs(60),
        ..ListenOptions::default()
    };
    let listeners = vec![
        facade(backend.triggers.clone(), backend.changes.clone()),
        facade(backend.triggers.clone(), backend.changes.clone()),
    ];
    let setter = facade(other.triggers.clone(), other.changes.clone());
    let set = async {
        // The listeners are idle, resting up to a minute.
        backend.elapse(Duration::from_millis(300)).await;
        setter.set("acme", "remind", "u1", Duration::ZERO).await.unwrap();
        Instant::now()
    };
    let (deliveries, set_at) = tokio::join!(
        listen_all_until(listeners, options, 1, Duration::from_millis(500)),
        set
    );
    let late = deliveries[0].at.saturating_duration_since(set_at);
    assert!(
        late < options.max_idle / 2,
        "delivered {late:?} after the set: the hint, not the next wake-up"
    );
}

pub async fn ten_thousand_tenants_reach_four_listeners_in_two_processes_exactly_once(backend: Backend) {
    const TENANTS: u64 = 10_000;
    const SPREAD_MS: u64 = 10_000;
    let other = backend.other_process().await;
    let here = facade(backend.triggers.clone(), backend.changes.clone());
    let there = facade(other.triggers.clone(), other.changes.clone());
    let options = ListenOptions {
        batch: 16,
        tenants: 32,
        lease: LONG,
        max_idle: Duration::from_secs(1),
    };
    // Half the triggers set from each process, while the listeners run:
    // found by sleeping until due, and by the hints.
    let earliest: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let setters: Vec<_> = (0..8u64)
        .map(|setter| {
            let triggers = if setter % 2 == 0 {
                here.clone()
            } else {
                there.clone()
            };
            let earliest = earliest.clone();
            async move {
                for i in (setter..TENANTS).step_by(8) {
                    let delay = Duration::from_millis(i * SPREAD_MS / TENANTS);
                    let tenant = format!("tenant-{i}");
                    let before = Instant::now();
                    triggers.set(&tenant, "remind", "u", delay).await.unwrap();
                    earliest.lock().unwrap().insert(tenant, before + delay);
                }
            }
        })
        .collect();
    let listeners = vec![here.clone(), here.clone(), there.clone(), there.clone()];
    let setters: Vec<_> = setters.into_iter().map(tokio::spawn).collect();
    let deliveries = listen_all_until(
        listeners,
        options,
        TENANTS as usize,
        options.max_idle + Duration::from_millis(200),
    )
    .await;
    for setter in setters {
        setter.await.unwrap();
    }
    let once = assert_exactly_once(&deliveries, TENANTS as usize);
    let earliest = earliest.lock().unwrap().clone();
    for ((tenant, _), delivery) in &once {
        let due = earliest[tenant];
        // To the millisecond of the store's clock.
        assert!(
            delivery.at + Duration::from_millis(1) >= due,
            "{tenant} delivered {:?} before its due time",
            due - delivery.at
        );
        assert_eq!(delivery.deliveries, 1, "{delivery:?}");
    }
    assert!(
        index_is_empty(backend.triggers.as_ref()).await,
        "every tenant pruned"
    );
}

pub async fn a_killed_listeners_claims_are_redelivered_after_the_lease(backend: Backend) {
    let other = backend.other_process().await;
    for tenant in 0..5 {
        for id in ["u1", "u2"] {
            let (action, id) = names("remind", id);
            backend
                .triggers
                .set(&keys(&format!("t{tenant}")), &action, &id, Duration::ZERO)
                .await
                .unwrap();
        }
    }
    backend.elapse(Duration::from_millis(5)).await;
    let lease = Duration::from_millis(1500);
    let options = ListenOptions {
        lease,
        max_idle: Duration::from_millis(200),
        ..ListenOptions::default()
    };
    // The victim takes every tenant, claims their triggers, and is killed
    // inside its first handler.
    let victim = facade(backend.triggers.clone(), backend.changes.clone());
    let holding = Arc::new(Notify::new());
    let started = Instant::now();
    let hold = holding.clone();
    let killed = tokio::spawn(async move {
        victim
            .listen_all(options, std::future::pending(), move |_, _| {
                hold.notify_one();
                std::future::pending::<Result<(), BoxError>>()
            })
            .await
    });
    holding.notified().await;
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    // The survivor, in the other process, finds them after the lease.
    let survivor = facade(other.triggers.clone(), other.changes.clone());
    let deliveries = listen_all_until(vec![survivor], options, 10, Duration::from_millis(400)).await;
    let once = assert_exactly_once(&deliveries, 10);
    for delivery in once.values() {
        assert!(
            delivery.at + Duration::from_millis(1) >= started + lease,
            "delivered {:?} after the victim started, before its lease ran out: {delivery:?}",
            delivery.at - started
        );
    }
    let redelivered = once.values().filter(|d| d.deliveries == 2).count();
    assert_eq!(
        redelivered, 10,
        "the victim had claimed its round's tenants at once"
    );
}

/// Counts the port calls of a store, by operation.
#[derive(Debug, Clone, Default)]
struct Counting(Arc<Mutex<HashMap<&'static str, usize>>>);

impl Counting {
    fn count(&self, op: &str) -> usize {
        self.0.lock().unwrap().get(op).copied().unwrap_or(0)
    }
}

impl Layer for Counting {
    fn around<'f, T, K>(&'f self, op: Op<K, T>, call: Boxed<'f, T>) -> Boxed<'f, T>
    where
        T: Send + 'f,
        K: std::fmt::Display + Send + Sync + 'f,
    {
        *self.0.lock().unwrap().entry(op.name).or_default() += 1;
        call
    }
}

pub async fn idle_listeners_take_only_a_few_times_per_second(backend: Backend) {
    let other = backend.other_process().await;
    let counts = Counting::default();
    let counted = |triggers: Arc<dyn TriggerStore>, changes| {
        let triggers: Arc<dyn TriggerStore> = Arc::new(Layered::with_layer(counts.clone(), triggers));
        facade(triggers, changes)
    };
    let (action, id) = names("remind", "u1");
    backend
        .triggers
        .set(&keys("acme"), &action, &id, Duration::from_secs(3600))
        .await
        .unwrap();
    let here = counted(backend.triggers.clone(), backend.changes.clone());
    let there = counted(other.triggers.clone(), other.changes.clone());
    let options = ListenOptions::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for triggers in [here.clone(), here, there.clone(), there] {
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            triggers
                .listen_all(options, stopped, |_, _| async { Ok::<(), BoxError>(()) })
                .await
                .unwrap();
        }));
    }
    // Sleeps, not `elapse`: on paused time the listeners' own timers fire
    // in turn, as in real time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = counts.count("trigger_take");
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let takes = counts.count("trigger_take") - before;
    stop.send_replace(true);
    for task in tasks {
        task.await.unwrap();
    }
    // Each listener rests up to `max_idle` (1 s) when nothing is due: at
    // most one take per second each, and one more at the edges.
    let bound = 4 * (window.as_secs() as usize + 1);
    assert!(
        takes <= bound,
        "{takes} takes in {window:?} by 4 idle listeners (at most {bound})"
    );
    assert!(takes >= 4, "the listeners looked at least once each: {takes}");
    assert_eq!(
        counts.count("trigger_claim"),
        0,
        "no tenant claimed: none was due"
    );
}

pub async fn a_round_claims_and_acks_its_tenants_together_and_the_index_reads_without_taking(
    backend: Backend,
) {
    let t = &backend.triggers;
    let (remind, u1) = names("remind", "u1");
    let (_, u2) = names("remind", "u2");
    t.set(&keys("round-a"), &remind, &u1, Duration::ZERO)
        .await
        .unwrap();
    t.set(&keys("round-b"), &remind, &u1, Duration::ZERO)
        .await
        .unwrap();
    t.set(&keys("round-b"), &remind, &u2, Duration::ZERO)
        .await
        .unwrap();
    t.set(&keys("round-c"), &remind, &u1, Duration::from_secs(3600))
        .await
        .unwrap();
    backend.elapse(Duration::from_millis(5)).await;

    // Read earliest first across the shards, as often as asked: nothing taken.
    let read = |limit| async move { t.indexed(index(), limit).await.unwrap() };
    let tenants = |entries: &[statehouse::IndexedTenant]| -> Vec<String> {
        entries.iter().map(|entry| entry.tenant.clone()).collect()
    };
    let all = read(10).await;
    assert_eq!(tenants(&all), ["round-a", "round-b", "round-c"]);
    let apart = all[2].due_at - all[0].due_at;
    assert!(
        (3_599_000..=3_600_100).contains(&apart.num_milliseconds()),
        "round-c an hour after round-a: {apart}"
    );
    assert_eq!(tenants(&read(2).await), ["round-a", "round-b"]);
    assert!(read(0).await.is_empty());
    let due = t.take_due(index(), 10, LONG).await.unwrap();
    let mut due = taken(&due);
    due.sort_unstable();
    assert_eq!(due, ["round-a", "round-b"], "still there to take");

    // One call claims for both tenants, one call acknowledges.
    let round = [keys("round-a"), keys("round-b")];
    let claimed = t.claim_round(&round, 10, LONG).await.unwrap();
    assert_eq!(claimed.len(), 2, "one answer per tenant, in order");
    assert_eq!(claimed[0].triggers.len(), 1);
    assert_eq!(claimed[1].triggers.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|c| c.triggers.iter().all(|t| t.deliveries == 1))
    );
    let acks = [
        (keys("round-a"), claimed[0].triggers.clone()),
        // One of round-b's two handled: the other stays claimed.
        (keys("round-b"), claimed[1].triggers[..1].to_vec()),
        // None handled: filed only, at its next due time.
        (keys("round-c"), Vec::new()),
    ];
    assert_eq!(t.ack_round(&acks).await.unwrap(), 2);
    assert_eq!(t.ack_round(&acks[..2]).await.unwrap(), 0, "acknowledged already");
    // round-a is pruned; round-b waits for its claimed trigger's lease,
    // round-c for its trigger in an hour.
    let after = read(10).await;
    assert_eq!(tenants(&after), ["round-b", "round-c"], "{after:?}");
    let held = after[0].due_at - all[0].due_at;
    assert!(
        held.num_milliseconds() >= 29_000 && held.num_milliseconds() <= 31_000,
        "round-b at the end of its lease: {held}"
    );
    // Filed again from its next due time, measured by the claim script a
    // moment before the refile script ran: the same time within a few ms.
    let moved = (after[1].due_at - all[2].due_at).num_milliseconds();
    assert!((0..100).contains(&moved), "round-c moved by {moved} ms");
    assert!(t.take_due(index(), 10, LONG).await.unwrap().tenants.is_empty());
    // An empty round is no call at all.
    assert!(t.claim_round(&[], 10, LONG).await.unwrap().is_empty());
    assert_eq!(t.ack_round(&[]).await.unwrap(), 0);
}
