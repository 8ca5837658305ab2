//! Contract: expiration triggers ([`statehouse_ports::TriggerStore`], and
//! the `Triggers` facade's per-tenant listener over it); the cross-tenant
//! due index and the all-tenants listener in `all_tenants.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use statehouse::{ActionName, ErrorKind, ListenOptions, TenantId, TriggerId};
use statehouse_domain::layout::TriggerKeys;
use tokio::sync::Notify;

use super::Backend;

mod all_tenants;

pub use all_tenants::{
    a_claim_that_missed_a_marked_set_looks_at_the_tenant_again_soon,
    a_full_claim_files_the_tenant_again_at_once_and_none_prunes_it,
    a_killed_listeners_claims_are_redelivered_after_the_lease,
    a_mark_whose_set_never_wrote_is_adopted_after_a_minute,
    a_round_claims_and_acks_its_tenants_together_and_the_index_reads_without_taking,
    a_set_in_another_process_wakes_idle_listeners_at_once,
    a_shard_of_another_type_fails_the_set_before_the_trigger_is_written,
    idle_listeners_take_only_a_few_times_per_second, one_busy_tenant_does_not_starve_the_others,
    take_due_hands_a_due_tenant_to_one_taker_until_it_is_filed_again,
    ten_thousand_tenants_reach_four_listeners_in_two_processes_exactly_once,
};

const T: &str = "acme";
const LONG: Duration = Duration::from_secs(30);

/// The trigger keys of `tenant`, as the facade derives them.
fn keys(tenant: &str) -> TriggerKeys {
    TriggerKeys::new(&TenantId::new(tenant).unwrap())
}

fn names(action: &str, id: &str) -> (ActionName, TriggerId) {
    (ActionName::new(action).unwrap(), TriggerId::new(id).unwrap())
}

fn pairs(claimed: &statehouse::Claimed) -> Vec<(String, String)> {
    claimed
        .triggers
        .iter()
        .map(|t| (t.action.clone(), t.id.clone()))
        .collect()
}

fn pair(action: &str, id: &str) -> (String, String) {
    (action.to_owned(), id.to_owned())
}

pub async fn a_trigger_is_not_delivered_before_it_is_due(backend: Backend) {
    let (action, id) = names("remind", "user:1");
    backend
        .triggers
        .set(&keys(T), &action, &id, Duration::from_secs(10))
        .await
        .unwrap();
    let claimed = backend.triggers.claim(&keys(T), 10, LONG).await.unwrap();
    assert!(claimed.triggers.is_empty());
    let next = claimed.next_due_in.expect("a trigger is pending");
    assert!(
        next > Duration::from_secs(8) && next <= Duration::from_secs(10),
        "{next:?}"
    );
    assert!(backend.triggers.list(&keys(T), true).await.unwrap().is_empty());
    let listed = backend.triggers.list(&keys(T), false).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].action.as_str(),
            listed[0].id.as_str(),
            listed[0].claimed
        ),
        ("remind", "user:1", false)
    );
    let (action2, id2) = names("clean", "s1");
    backend
        .triggers
        .set(&keys(T), &action2, &id2, Duration::from_millis(50))
        .await
        .unwrap();
    backend.elapse(Duration::from_millis(120)).await;
    assert_eq!(backend.triggers.list(&keys(T), true).await.unwrap().len(), 1);
    let claimed = backend.triggers.claim(&keys(T), 10, LONG).await.unwrap();
    assert_eq!(pairs(&claimed), [pair("clean", "s1")]);
    assert!(claimed.next_due_in.is_some());
}

pub async fn setting_again_moves_the_deadline_instead_of_adding(backend: Backend) {
    let (action, id) = names("remind", "u1");
    backend
        .triggers
        .set(&keys(T), &action, &id, Duration::from_secs(60))
        .await
        .unwrap();
    backend
        .triggers
        .set(&keys(T), &action, &id, Duration::from_millis(20))
        .await
        .unwrap();
    assert_eq!(backend.triggers.list(&keys(T), false).await.unwrap().len(), 1);
    backend.elapse(Duration::from_millis(80)).await;
    let claimed = backend.triggers.claim(&keys(T), 10, LONG).await.unwrap();
    assert_eq!(pairs(&claimed), [pair("remind", "u1")]);
    // And later: moved out again.
    backend
        .triggers
        .set(&keys(T), &action, &id, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        backend
            .triggers
            .claim(&keys(T), 10, LONG)
            .await
            .unwrap()
            .triggers
            .is_empty()
    );
}

pub async fn acknowledged_triggers_never_fire_again(backend: Backend) {
    let (action, id) = names("remind", "u1");
    backend
        .triggers
        .set(&keys(T), &action, &id, Duration::ZERO)
        .await
        .unwrap();
    backend.elapse(Duration::from_millis(5)).await;
    let claimed = backend
        .triggers
        .claim(&keys(T), 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(claimed.triggers.len(), 1);
    assert!(
        backend
            .triggers
            .ack(&keys(T), &claimed.triggers[0])
            .await
            .unwrap()
    );
    assert!(
        !backend
            .triggers
            .ack(&keys(T), &claimed.triggers[0])
            .await
            .unwrap(),
        "a second ack holds nothing"
    );
    backend.elapse(Duration::from_millis(200)).await;
    let again = backend.triggers.claim(&keys(T), 10, LONG).await.unwrap();
    assert!(again.triggers.is_empty());
    assert_eq!(again.next_due_in, None);
    assert!(backend.triggers.list(&keys(T), false).await.unwrap().is_empty());
}

pub async fn an_unacknowledged_claim_is_redelivered_after_the_lease(backend: Backend) {
    let (action, id) = names("remind", "u1");
    backend
        .triggers
        .set(&keys(T), &action, &id, Duration::ZERO)
        .await
        .unwrap();
    backend.elapse(Duration::from_millis(5)).await;
    let lease = Duration::from_millis(800);
    let first = backend.triggers.claim(&keys(T), 10, lease).await.unwrap();
    assert_eq!(first.triggers.len(), 1);
    let listed = backend.triggers.list(&keys(T), false).await.unwrap();
    assert!(listed[0].claimed);
    let during = backend.triggers.claim(&keys(T), 10, lease).await.unwrap();
    assert!(during.triggers.is_empty(), "held by the first claimer");
    assert!(during.next_due_in.is_some_and(|next| next <= lease));
    backend.elapse(lease + Duration::from_millis(100)).await;
    let second = backend.triggers.claim(&keys(T), 10, LONG).await.unwrap();
    assert_eq!(pairs(&second), [pair("remind", "u1")]);
    assert!(second.triggers[0].token > first.triggers[0].token);
    assert!(
        !backend.triggers.ack(&keys(T), &first.triggers[0]).await.unwrap(),
        "the first claim is stale"
    );
    assert!(backend.triggers.ack(&keys(T), &second.triggers[0]).await.unwrap());
    assert!(backend.triggers.list(&keys(T), false).await.unwrap().is_empty());
}

pub async fn deliveries_count_redeliveries_and_restart_when_set_again(backend: Backend) {
    let (action, id) = names("remind", "u1");
    let (other_action, other_id) = names("remind", "u2");
    for (action, id) in [(&action, &id), (&other_action, &other_id)] {
        backend
            .triggers
            .set(&keys(T), action, id, Duration::ZERO)
            .await
            .unwrap();
    }
    backend.elapse(Duration::from_millis(5)).await;
    let lease = Duration::from_millis(300);
    let first = backend.triggers.claim(&keys(T), 10, lease).await.unwrap();
    assert_eq!(first.triggers.len(), 2);
    assert!(
        first.triggers.iter().all(|t| t.deliveries == 1),
        "a first delivery: {first:?}"
    );
    assert_ne!(
        first.triggers[0].token, first.triggers[1].token,
        "tokens are unique among the tenant's claims"
    );
    backend.elapse(lease + Duration::from_millis(100)).await;
    let second = backend.triggers.claim(&keys(T), 10, lease).await.unwrap();
    assert_eq!(
        second.triggers.iter().map(|t| t.deliveries).collect::<Vec<_>>(),
        [2, 2],
        "redelivered after the lease ran out"
    );
    backend.elapse(lease + Duration::from_millis(100)).await;
    // Set again (a new deadline): a new trigger, counted from 1.
    backend
        .triggers
        .set(&keys(T), &action, &id, Duration::ZERO)
        .await
        .unwrap();
    backend.elapse(Duration::from_millis(5)).await;
    let third = backend.triggers.claim(&keys(T), 10, LONG).await.unwrap();
    let deliveries: HashMap<String, u32> = third
        .triggers
        .iter()
        .map(|t| (t.id.clone(), t.deliveries))
        .collect();
    assert_eq!(
        deliveries,
        HashMap::from([("u1".to_owned(), 1), ("u2".to_owned(), 3)])
    );
    for trigger in &third.triggers {
        assert!(backend.triggers.ack(&keys(T), trigger).await.unwrap());
    }
}

pub async fn setting_again_voids_an_outstanding_claim(backend: Backend) {
    let (action, id) = names("remind", "u1");
    backend
        .triggers
        .set(&keys(T), &action, &id, Duration::ZERO)
        .await
        .unwrap();
    backend.elapse(Duration::from_millis(5)).await;
    let first = backend.triggers.claim(&keys(T), 10, LONG).await.unwrap();
    backend
        .triggers
        .set(&keys(T), &action, &id, Duration::ZERO)
        .await
        .unwrap();
    backend.elapse(Duration::from_millis(5)).await;
    let second = backend.triggers.claim(&keys(T), 10, LONG).await.unwrap();
    assert_eq!(second.triggers.len(), 1, "set again: due again at once");
    assert!(!backend.triggers.ack(&keys(T), &first.triggers[0]).await.unwrap());
    assert_eq!(
        backend.triggers.list(&keys(T), false).await.unwrap().len(),
        1,
        "the stale ack removed nothing"
    );
    assert!(backend.triggers.ack(&keys(T), &second.triggers[0]).await.unwrap());
}

pub async fn cancel_and_cancel_all_remove_triggers(backend: Backend) {
    for (action, id) in [("a", "x"), ("b", "x"), ("c", "x"), ("a", "y")] {
        let (action, id) = names(action, id);
        backend
            .triggers
            .set(&keys(T), &action, &id, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let (a, x) = names("a", "x");
    assert!(backend.triggers.cancel(&keys(T), &a, &x).await.unwrap());
    assert!(!backend.triggers.cancel(&keys(T), &a, &x).await.unwrap());
    assert_eq!(backend.triggers.cancel_all(&keys(T), &x).await.unwrap(), 2);
    assert_eq!(backend.triggers.cancel_all(&keys(T), &x).await.unwrap(), 0);
    let left = backend.triggers.list(&keys(T), false).await.unwrap();
    assert_eq!(
        left.iter().map(|t| pair(&t.action, &t.id)).collect::<Vec<_>>(),
        [pair("a", "y")]
    );
}

pub async fn tenants_never_see_each_others_triggers(backend: Backend) {
    // Names with separators and braces: escaped, one hash tag per tenant.
    let (action, id) = names("re:mind", "u{1}*");
    backend
        .triggers
        .set(&keys("a"), &action, &id, Duration::ZERO)
        .await
        .unwrap();
    backend
        .triggers
        .set(&keys("a:b"), &action, &id, Duration::from_secs(60))
        .await
        .unwrap();
    backend.elapse(Duration::from_millis(5)).await;
    assert!(
        backend
            .triggers
            .claim(&keys("ab"), 10, LONG)
            .await
            .unwrap()
            .triggers
            .is_empty()
    );
    assert!(
        backend
            .triggers
            .claim(&keys("a:b"), 10, LONG)
            .await
            .unwrap()
            .triggers
            .is_empty()
    );
    let claimed = backend.triggers.claim(&keys("a"), 10, LONG).await.unwrap();
    assert_eq!(pairs(&claimed), [pair("re:mind", "u{1}*")]);
    assert_eq!(backend.triggers.list(&keys("a:b"), false).await.unwrap().len(), 1);
}

pub async fn invalid_names_are_rejected_before_any_io(backend: Backend) {
    let triggers = backend.trigger_facade();
    for (tenant, action, id) in [("", "a", "b"), ("t", "", "b"), ("t", "a", "bad\nid")] {
        let error = triggers
            .set(tenant, action, id, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    }
    assert_eq!(
        triggers.list("").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// Runs `listeners` facade listeners on tenant `T` until `expected`
/// deliveries were acknowledged; returns how often each trigger came.
async fn listen_until(
    backend: &Backend,
    listeners: usize,
    options: ListenOptions,
    expected: usize,
) -> HashMap<(String, String), usize> {
    let triggers = backend.trigger_facade();
    let seen: Arc<Mutex<HashMap<(String, String), usize>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let done = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..listeners {
        let (triggers, seen, mut stopped, done) =
            (triggers.clone(), seen.clone(), stopped.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            triggers
                .listen(T, options, stopped, |trigger| {
                    let mut seen = seen.lock().unwrap();
                    *seen.entry((trigger.action, trigger.id)).or_default() += 1;
                    if seen.values().sum::<usize>() >= expected {
                        done.notify_one();
                    }
                    async { Ok::<(), Box<dyn std::error::Error + Send + Sync>>(()) }
                })
                .await
                .unwrap();
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), done.notified())
        .await
        .expect("every trigger delivered within a minute");
    // Longer than every listener's sleep: a duplicate would show up.
    backend
        .elapse(options.max_idle + Duration::from_millis(100))
        .await;
    stop.send_replace(true);
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
}

pub async fn triggers_due_while_no_listener_ran_are_delivered_when_one_starts(backend: Backend) {
    for i in 0..20 {
        let (action, id) = names("remind", &format!("u{i}"));
        backend
            .triggers
            .set(&keys(T), &action, &id, Duration::from_millis(10))
            .await
            .unwrap();
    }
    backend.elapse(Duration::from_millis(200)).await;
    let options = ListenOptions {
        max_idle: Duration::from_millis(200),
        ..ListenOptions::default()
    };
    let seen = listen_until(&backend, 1, options, 20).await;
    assert_eq!(seen.len(), 20);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    assert!(backend.triggers.list(&keys(T), false).await.unwrap().is_empty());
}

pub async fn a_dead_listeners_claims_are_redelivered_after_the_lease(backend: Backend) {
    for i in 0..5 {
        let (action, id) = names("remind", &format!("u{i}"));
        backend
            .triggers
            .set(&keys(T), &action, &id, Duration::ZERO)
            .await
            .unwrap();
    }
    backend.elapse(Duration::from_millis(5)).await;
    // A listener claims and dies before acknowledging anything.
    let lease = Duration::from_millis(500);
    let dead = backend.triggers.claim(&keys(T), 10, lease).await.unwrap();
    assert_eq!(dead.triggers.len(), 5);
    let started = tokio::time::Instant::now();
    let options = ListenOptions {
        lease: LONG,
        max_idle: Duration::from_millis(200),
        ..ListenOptions::default()
    };
    let seen = listen_until(&backend, 1, options, 5).await;
    assert!(started.elapsed() >= lease, "redelivered only after the lease");
    assert_eq!(seen.len(), 5);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    for trigger in &dead.triggers {
        assert!(
            !backend.triggers.ack(&keys(T), trigger).await.unwrap(),
            "the dead claim is stale"
        );
    }
}

pub async fn a_thousand_triggers_reach_four_listeners_exactly_once(backend: Backend) {
    const N: u64 = 1000;
    // Due times spread over 1.5 s.
    for i in 0..N {
        let (action, id) = names(if i % 2 == 0 { "remind" } else { "clean" }, &format!("u{i}"));
        backend
            .triggers
            .set(&keys(T), &action, &id, Duration::from_millis(i * 3 / 2))
            .await
            .unwrap();
    }
    let options = ListenOptions {
        batch: 16,
        lease: LONG,
        max_idle: Duration::from_millis(250),
        ..ListenOptions::default()
    };
    let seen = listen_until(&backend, 4, options, 1000).await;
    assert_eq!(seen.len(), 1000);
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "delivered more than once: {repeated:?}");
    assert!(backend.triggers.list(&keys(T), false).await.unwrap().is_empty());
}

pub async fn a_key_of_another_type_is_wrong_type_and_nothing_is_written(backend: Backend) {
    let due = keys(T).due().to_owned();
    backend.plant_hash(&due).await;
    let (action, id) = names("remind", "u1");
    let error = backend
        .triggers
        .set(&keys(T), &action, &id, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::WrongType, due.as_str()),
        "{error}"
    );
    let by_id = keys(T).of_id("u1");
    let exists = backend
        .documents
        .exists(&statehouse::Key::new(by_id).unwrap())
        .await
        .unwrap();
    assert!(!exists, "the script checked every key before writing");
    assert_eq!(
        backend
            .triggers
            .claim(&keys(T), 10, LONG)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::WrongType
    );
}

/// The same on a multi-threaded runtime in real time (also on the memory
/// store): the listeners really run in parallel.
pub async fn a_thousand_triggers_reach_four_listeners_on_threads_exactly_once(backend: Backend) {
    a_thousand_triggers_reach_four_listeners_exactly_once(backend).await;
}
