//! Contract: durability on demand ([`Durability`]): a write is acknowledged
//! once as many replicas as asked confirmed it (`WAIT` after it, on its
//! connection); with fewer, it is applied all the same and fails with
//! `NotDurable`. Every backend states how many replicas it has (memory and
//! a lone server: none; the Sentinel service: two), so one list of tests
//! holds on all of them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use statehouse::{
    Documents, ErrorKind, Queues, RetryPolicy, StoreError, TaskSpace, Tasks, Tenant, Triggers, Update,
};
use statehouse_ports::Durability;

use super::Backend;

/// How long a durable write waits for its replicas: half the default
/// response timeout (2 s), the most a store accepts. Replicas on loopback
/// confirm within milliseconds; the bound only matters when they cannot.
const WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    n: u32,
}

/// The facades of one family each over `ports`.
struct Families {
    docs: Documents,
    tasks: Tasks,
    tenant: Tenant,
    queues: Queues,
    triggers: Triggers,
}

impl Families {
    fn of(ports: &statehouse::Ports) -> Self {
        Self {
            docs: Documents::new(ports.documents.clone()),
            tasks: Tasks::new(ports.tasks.clone(), TaskSpace::default()),
            tenant: Tenant::new(ports.tenants.clone(), "acme", RetryPolicy::default()).unwrap(),
            queues: Queues::new(ports.queues.clone()),
            triggers: Triggers::new(ports.triggers.clone()),
        }
    }
}

/// One write of each family through `durable`; each outcome, named.
async fn write_every_family(durable: &Families) -> Vec<(&'static str, Result<(), StoreError>)> {
    let queue = durable.queues.queue("mailer", "daily", "send").unwrap();
    vec![
        ("documents set", durable.docs.set("doc", &Row { n: 1 }).await),
        (
            "documents update",
            durable
                .docs
                .update("counter", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
                .await
                .map(|_| ()),
        ),
        ("documents delete", durable.docs.delete("gone").await.map(|_| ())),
        (
            "task create",
            durable.tasks.create("t1", "svc", "u").await.map(|_| ()),
        ),
        (
            "tenant row",
            durable.tenant.tables().set("orders", "o1", &Row { n: 7 }).await,
        ),
        (
            "queue enqueue",
            durable
                .queues
                .enqueue("acme", &queue, &[Row { n: 3 }])
                .await
                .map(|_| ()),
        ),
        (
            "trigger set",
            durable
                .triggers
                .set("acme", "remind", "r1", Duration::from_secs(3600))
                .await,
        ),
    ]
}

/// Every write of [`write_every_family`] is there, read through `plain`.
async fn every_write_is_there(backend: &Backend, plain: &Families) {
    let name = &backend.name;
    assert_eq!(
        plain.docs.get::<Row>("doc").await.unwrap(),
        Some(Row { n: 1 }),
        "{name}"
    );
    assert_eq!(plain.docs.get::<u32>("counter").await.unwrap(), Some(1), "{name}");
    assert!(!plain.docs.exists("gone").await.unwrap(), "{name}");
    assert!(plain.tasks.get("t1").await.unwrap().is_some(), "{name}");
    assert_eq!(
        plain.tenant.tables().get::<Row>("orders", "o1").await.unwrap(),
        Some(Row { n: 7 }),
        "{name}"
    );
    let queue = plain.queues.queue("mailer", "daily", "send").unwrap();
    assert_eq!(plain.queues.len("acme", &queue).await.unwrap(), 1, "{name}");
    assert_eq!(plain.triggers.list("acme").await.unwrap().len(), 1, "{name}");
}

/// Asking for the primary alone (the default) changes nothing.
pub async fn primary_only_acknowledges_as_before(backend: Backend) {
    let durable = Families::of(&backend.durable(Durability::Primary));
    for (write, outcome) in write_every_family(&durable).await {
        assert!(outcome.is_ok(), "{}: {write}: {outcome:?}", backend.name);
    }
    every_write_is_there(&backend, &Families::of(&backend.durable(Durability::Primary))).await;
    // `replicas(0, …)` is the primary alone.
    assert_eq!(Durability::replicas(0, WAIT), Durability::Primary);
}

/// Asking for as many replicas as the store has: every write of every
/// family is acknowledged (on memory and a lone server that is 0: the
/// primary alone).
pub async fn as_many_replicas_as_the_store_has_acknowledge_every_family(backend: Backend) {
    let durable = Families::of(&backend.durable(Durability::replicas(backend.replicas(), WAIT)));
    for (write, outcome) in write_every_family(&durable).await {
        assert!(outcome.is_ok(), "{}: {write}: {outcome:?}", backend.name);
    }
    every_write_is_there(&backend, &Families::of(&backend.durable(Durability::Primary))).await;
}

/// Asking for one replica more than the store has: every write is applied
/// (a plain handle reads it back), and every call fails with `NotDurable`,
/// naming the operation and key and how many of how many replicas
/// confirmed, and saying the write was applied.
pub async fn more_replicas_than_the_store_has_apply_the_write_then_fail_not_durable(backend: Backend) {
    let wanted = backend.replicas() + 1;
    let durable = Families::of(&backend.durable(Durability::replicas(wanted, WAIT)));
    for (write, outcome) in write_every_family(&durable).await {
        let name = &backend.name;
        let error = outcome.expect_err(&format!("{name}: {write} with {wanted} replicas asked"));
        assert_eq!(error.kind(), ErrorKind::NotDurable, "{name}: {write}: {error}");
        assert!(!error.is_retryable(), "{name}: {write}");
        assert!(!error.key().is_empty(), "{name}: {write}: {error}");
        match &error {
            StoreError::NotDurable {
                wanted: w,
                confirmed,
                timeout,
                ..
            } => {
                assert_eq!((*w, *timeout), (wanted, WAIT), "{name}: {write}");
                assert!(*confirmed < wanted, "{name}: {write}: {error}");
            }
            other => panic!("{name}: {write}: {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains("applied on the primary") && message.contains(&format!("of {wanted} replicas")),
            "{name}: {write}: {message}"
        );
    }
    every_write_is_there(&backend, &Families::of(&backend.durable(Durability::Primary))).await;
}

/// Reads never wait for replicas: through a view asking for more replicas
/// than there are, every read answers.
pub async fn reads_never_wait_for_replicas(backend: Backend) {
    let plain = Families::of(&backend.durable(Durability::Primary));
    for (write, outcome) in write_every_family(&plain).await {
        assert!(outcome.is_ok(), "{}: {write}: {outcome:?}", backend.name);
    }
    let durable = Families::of(&backend.durable(Durability::replicas(backend.replicas() + 1, WAIT)));
    every_write_is_there(&backend, &durable).await;
    assert!(durable.docs.is_alive().await);
}

/// An update whose closure keeps the value writes nothing, so it waits for
/// nothing: it answers even when the replicas asked for cannot confirm.
pub async fn an_update_that_writes_nothing_waits_for_nothing(backend: Backend) {
    let plain = Families::of(&backend.durable(Durability::Primary));
    plain.docs.set("kept", &5_u32).await.unwrap();
    let durable = Families::of(&backend.durable(Durability::replicas(backend.replicas() + 1, WAIT)));
    let kept = durable
        .docs
        .update("kept", |n: Option<u32>| match n {
            Some(_) => Update::Keep,
            None => Update::Set(0),
        })
        .await;
    assert_eq!(kept.unwrap(), Some(5), "{}", backend.name);
}
