//! Synced models shared by two services: two `Statehouse` instances (each
//! its own connections, as two processes would have) on one real
//! `redis-server` of this test's own, and on one in-memory store.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use statehouse::{Ports, Settings, Statehouse, Synced, SyncedModel};
use statehouse_memory::MemoryStore;
use statehouse_tests::harness::RedisServer;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Inventory {
    #[serde(rename = "id_")]
    sku: String,
    count: u64,
    reserved: u64,
    notes: Vec<String>,
}

impl SyncedModel for Inventory {
    fn id(&self) -> String {
        self.sku.clone()
    }

    fn set_id(&mut self, id: &str) {
        self.sku = id.to_owned();
    }
}

async fn service(server: &RedisServer) -> Statehouse {
    let mut settings = Settings::new(server.url());
    settings.prefix = "shop:".into();
    Statehouse::with_settings(settings).await.unwrap()
}

/// Two services on one in-memory store.
fn memory_services() -> (Statehouse, Statehouse) {
    let store = MemoryStore::new();
    (
        Statehouse::from_ports(Ports::of(store.clone())),
        Statehouse::from_ports(Ports::of(store)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_services_see_each_others_changes_after_refresh() {
    let server = RedisServer::start();
    let (orders, stock) = (service(&server).await, service(&server).await);
    let mut seen_by_orders = Synced::<Inventory>::load(&orders, "tea").await.unwrap();
    let mut seen_by_stock = Synced::<Inventory>::load(&stock, "tea").await.unwrap();
    assert!(!seen_by_orders.exists() && !seen_by_stock.exists());

    seen_by_stock.modify(|i| i.count = 10).await.unwrap();
    assert_eq!(seen_by_orders.value().count, 0, "no refresh, no change");
    assert_eq!(seen_by_orders.refresh().await.unwrap().count, 10);
    assert!(seen_by_orders.exists());

    seen_by_orders
        .modify(|i| {
            i.count -= 1;
            i.notes.push("order 1".into());
        })
        .await
        .unwrap();
    let after = seen_by_stock.refresh().await.unwrap().clone();
    assert_eq!(
        after,
        Inventory {
            sku: "tea".into(),
            count: 9,
            reserved: 0,
            notes: vec!["order 1".into()]
        }
    );

    // On the server: a hash under the prefix, `{Type}:{id}`, a field per
    // model field, as pydantic-state writes it.
    let mut conn = server.connection();
    let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("shop:Inventory:tea")
        .query(&mut conn)
        .unwrap();
    let expected: BTreeMap<String, String> = [
        ("id_", "tea"),
        ("count", "9"),
        ("reserved", "0"),
        ("notes", r#"["order 1"]"#),
    ]
    .into_iter()
    .map(|(field, value)| (field.to_owned(), value.to_owned()))
    .collect();
    assert_eq!(fields, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_modifies_from_two_services_lose_no_update() {
    const SERVICES: u64 = 2;
    const TASKS: u64 = 8;
    const INCREMENTS: u64 = 50;
    let server = RedisServer::start();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..SERVICES {
        let state = service(&server).await;
        for _ in 0..TASKS {
            let state = state.clone();
            workers.spawn(async move {
                let mut model = Synced::<Inventory>::load(&state, "hot").await.unwrap();
                let mut seen = Vec::new();
                for _ in 0..INCREMENTS {
                    seen.push(model.modify(|i| i.count += 1).await.unwrap().count);
                }
                seen
            });
        }
    }
    let seen: Vec<u64> = workers.join_all().await.into_iter().flatten().collect();
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    let total = SERVICES * TASKS * INCREMENTS;
    assert_eq!(distinct.len() as u64, total, "two modifies saw the same value");
    let fresh = service(&server).await;
    let model = Synced::<Inventory>::load(&fresh, "hot").await.unwrap();
    assert_eq!(model.value().count, total);
}

/// Service `stock` changes `count`, service `orders` changes `reserved`, at
/// the same time, each from several tasks: neither loses a change of the
/// other (each modify writes its own field only, through the WATCH loop).
async fn services_changing_different_fields(stock: &Statehouse, orders: &Statehouse) {
    const TASKS: u64 = 4;
    const CHANGES: u64 = 40;
    let mut workers = tokio::task::JoinSet::new();
    for (state, field) in [(stock, "count"), (orders, "reserved")] {
        for _ in 0..TASKS {
            let state = state.clone();
            workers.spawn(async move {
                let mut model = Synced::<Inventory>::load(&state, "jam").await.unwrap();
                for _ in 0..CHANGES {
                    model
                        .modify(|i| match field {
                            "count" => i.count += 1,
                            _ => i.reserved += 1,
                        })
                        .await
                        .unwrap();
                }
            });
        }
    }
    workers.join_all().await;
    let total = TASKS * CHANGES;
    for state in [stock, orders] {
        let model = Synced::<Inventory>::load(state, "jam").await.unwrap();
        assert_eq!((model.value().count, model.value().reserved), (total, total));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_services_changing_different_fields_lose_neither_on_redis() {
    const PYTHON_WRITES: u64 = 200;
    let server = RedisServer::start();
    let (stock, orders) = (service(&server).await, service(&server).await);
    // A third writer that knows nothing of the model (a Python service's
    // own field), on a connection of its own.
    let url = server.url();
    let python = tokio::spawn(async move {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        for _ in 0..PYTHON_WRITES {
            redis::cmd("HINCRBY")
                .arg("shop:Inventory:jam")
                .arg("visits")
                .arg(1)
                .exec_async(&mut conn)
                .await
                .unwrap();
        }
    });
    services_changing_different_fields(&stock, &orders).await;
    python.await.unwrap();
    let mut conn = server.connection();
    let visits: u64 = redis::cmd("HGET")
        .arg("shop:Inventory:jam")
        .arg("visits")
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        visits, PYTHON_WRITES,
        "a field the model does not know is never rewritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_services_changing_different_fields_lose_neither_in_memory() {
    let (stock, orders) = memory_services();
    services_changing_different_fields(&stock, &orders).await;
}
