//! Subjects on real `redis-server`s: two `Statehouse` instances (two
//! services) incrementing one property at once, and the keys as KRules
//! lays them out.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use statehouse::{RetryPolicy, Settings, Statehouse};
use statehouse_tests::harness::RedisServer;

async fn state(server: &RedisServer, prefix: &str) -> Statehouse {
    let mut settings = Settings::new(server.url());
    settings.prefix = prefix.to_owned();
    settings.update_policy = RetryPolicy::new(1000);
    Statehouse::with_settings(settings).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_increment_one_property_without_losing_any() {
    let server = RedisServer::start();
    let services = [state(&server, "app:").await, state(&server, "app:").await];
    let mut tasks = Vec::new();
    for service in &services {
        for _ in 0..8 {
            let mut counter = service.subjects().with_prefix("krules:").subject("page").unwrap();
            tasks.push(tokio::spawn(async move {
                for _ in 0..250 {
                    counter
                        .set_with("hits", |n: Option<u64>| n.unwrap_or(0) + 1)
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut conn = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    assert_eq!(keys, ["app:s:krules:page"]);
    let raw: String = redis::cmd("HGET")
        .arg("app:s:krules:page")
        .arg("phits")
        .query(&mut conn)
        .unwrap();
    assert_eq!(raw, "4000");
    let mut page = services[1]
        .subjects()
        .with_prefix("krules:")
        .subject("page")
        .unwrap();
    assert_eq!(page.get::<u64>("hits").await.unwrap(), Some(4000));
}

#[tokio::test]
async fn a_store_of_twenty_staged_properties_is_one_transaction() {
    let server = RedisServer::start();
    let state = state(&server, "").await;
    let mut subject = state.subjects().subject("user:1").unwrap();
    subject.get::<u64>("p0").await.unwrap(); // the one load
    let before = server.command_calls();
    for n in 0..10u64 {
        for p in 0..20 {
            subject.set(&format!("p{p}"), &n).await.unwrap();
        }
        subject.store().await.unwrap();
    }
    let sent = server.command_calls().since(&before);
    // Ten stores: ten MULTI/HSET/EXEC, and the one INFO that took `before`.
    assert_eq!(
        sent.as_map(),
        &[("exec", 10), ("hset", 10), ("info", 1), ("multi", 10)]
            .into_iter()
            .map(|(name, calls)| (name.to_owned(), calls))
            .collect(),
        "commands sent"
    );
}
