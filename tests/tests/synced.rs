//! Synced models shared by two services: two `Statehouse` instances (each
//! its own connections, as two processes would have) on one real
//! `redis-server` of this test's own.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use statehouse::{Settings, Statehouse, Synced, SyncedModel};
use statehouse_tests::harness::RedisServer;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Inventory {
    sku: String,
    count: u64,
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
            notes: vec!["order 1".into()]
        }
    );

    // On the server: one plain JSON string under the prefix, `{Type}:{id}`.
    let mut conn = server.connection();
    let raw: String = redis::cmd("GET")
        .arg("shop:Inventory:tea")
        .query(&mut conn)
        .unwrap();
    assert_eq!(raw, r#"{"sku":"tea","count":9,"notes":["order 1"]}"#);
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
