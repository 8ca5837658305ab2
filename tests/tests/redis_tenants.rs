//! Tenants on a real `redis-server`: the keys as `docs/keys.md` lays them
//! out (prefix, hash tag, escaping, TTLs on the server), a flushed script
//! cache, and two `Statehouse` instances incrementing one field at once.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::time::Duration;

use serde_json::json;
use statehouse::{RetryPolicy, Settings, Statehouse, TenantTtls, Ttl};
use statehouse_tests::harness::RedisServer;

async fn state(server: &RedisServer, prefix: &str) -> Statehouse {
    let mut settings = Settings::new(server.url());
    settings.prefix = prefix.to_owned();
    settings.update_policy = RetryPolicy::new(1000);
    Statehouse::with_settings(settings).await.unwrap()
}

fn sorted_keys(server: &RedisServer) -> Vec<String> {
    let mut conn = server.connection();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_documented_layout_with_one_hash_tag_per_tenant() {
    let server = RedisServer::start();
    let state = state(&server, "app:").await;
    let ttl = Some(Ttl::new(Duration::from_secs(60)).unwrap());
    let tenant = state.tenant("acme:eu").unwrap().with_ttls(TenantTtls {
        shared_states: ttl,
        ..TenantTtls::default()
    });
    tenant
        .users()
        .upsert("u:1", &json!({"name": "Ann"}))
        .await
        .unwrap();
    tenant
        .handler_states()
        .set("u:1", "chat bot", &json!({"step": 1}))
        .await
        .unwrap();
    tenant
        .tables()
        .set("orders", "{42}", &json!({"total": 1}))
        .await
        .unwrap();
    tenant
        .shared_states()
        .set("u:1", "draft*", &json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(
        sorted_keys(&server),
        [
            "app:t:{acme%3Aeu}:handler:u%3A1:chat%20bot",
            "app:t:{acme%3Aeu}:state:u%3A1:draft%2A",
            "app:t:{acme%3Aeu}:table:orders:%7B42%7D",
            "app:t:{acme%3Aeu}:user:u%3A1",
        ]
    );
    let mut conn = server.connection();
    let value: String = redis::cmd("HGET")
        .arg("app:t:{acme%3Aeu}:user:u%3A1")
        .arg("name")
        .query(&mut conn)
        .unwrap();
    assert_eq!(value, "\"Ann\"");
    let left: i64 = redis::cmd("PTTL")
        .arg("app:t:{acme%3Aeu}:state:u%3A1:draft%2A")
        .query(&mut conn)
        .unwrap();
    assert!((59_000..=60_000).contains(&left), "{left}");
    let left: i64 = redis::cmd("PTTL")
        .arg("app:t:{acme%3Aeu}:user:u%3A1")
        .query(&mut conn)
        .unwrap();
    assert_eq!(left, -1, "users have no default TTL here");
    // Every key holds exactly one brace pair, the tenant's: one slot.
    for key in sorted_keys(&server) {
        assert_eq!(key.matches('{').count(), 1, "{key}");
        assert!(key.starts_with("app:t:{acme%3Aeu}:"), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_reloaded_without_an_error() {
    let server = RedisServer::start();
    let state = state(&server, "").await;
    let ttl = Some(Ttl::new(Duration::from_secs(60)).unwrap());
    let users = state.tenant("acme").unwrap().users().with_ttl(ttl);
    let mut conn = server.connection();
    for round in 0..2 {
        users.set_field("u1", "a", &round).await.unwrap();
        users.increment("u1", "n", 1).await.unwrap();
        users
            .modify_field("u1", "m", |m: Option<u32>| m.unwrap_or(0) + 1)
            .await
            .unwrap();
        let () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn).unwrap();
    }
    assert_eq!(users.get_field::<i64>("u1", "n").await.unwrap(), Some(2));
    assert_eq!(users.get_field::<u32>("u1", "m").await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_increment_and_append_without_losing_any() {
    let server = RedisServer::start();
    let services = [state(&server, "app:").await, state(&server, "app:").await];
    let mut tasks = Vec::new();
    for (s, service) in services.iter().enumerate() {
        for t in 0..8 {
            let users = service.tenant("acme").unwrap().users();
            tasks.push(tokio::spawn(async move {
                for i in 0..250 {
                    users.increment("u1", "hits", 1).await.unwrap();
                    if i % 25 == 0 {
                        users.append("u1", "log", &format!("{s}-{t}-{i}")).await.unwrap();
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let users = services[0].tenant("acme").unwrap().users();
    assert_eq!(users.get_field::<i64>("u1", "hits").await.unwrap(), Some(4000));
    let log: Vec<String> = users.get_field("u1", "log").await.unwrap().unwrap();
    assert_eq!(log.len(), 160);
}

/// A field append is one `EVALSHA` (no WATCH round) that splices the item's
/// JSON into the field's array text, keeps the other fields, refreshes the
/// TTL, and writes nothing (not even the TTL) to a field holding no array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_is_one_script_that_keeps_the_arrays_text() {
    let server = RedisServer::start();
    let state = state(&server, "app:").await;
    let ttl = Some(Ttl::new(Duration::from_secs(60)).unwrap());
    let users = state.tenant("acme").unwrap().with_ttls(TenantTtls {
        users: ttl,
        ..TenantTtls::default()
    });
    let users = users.users();
    let key = "app:t:{acme}:user:u1";
    let mut conn = server.connection();
    // A field written by another client, with spaces: its text is kept.
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg("log")
        .arg("[ 1, {\"a\": 2} ]")
        .arg("other")
        .arg("\"x\"")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(5_000)
        .query(&mut conn)
        .unwrap();
    // The first script call of a connection loads the scripts (`NOSCRIPT`).
    users.append("u2", "warm", &0).await.unwrap();
    let before = server.command_calls();
    assert_eq!(users.append("u1", "log", &json!({"b": [3]})).await.unwrap(), 3);
    let sent = server.command_calls().since(&before);
    assert_eq!(sent.of("evalsha"), 1, "one script: {sent:?}");
    for round_trip in ["watch", "multi", "exec"] {
        assert_eq!(sent.of(round_trip), 0, "no {round_trip}: {sent:?}");
    }
    let text: String = redis::cmd("HGET").arg(key).arg("log").query(&mut conn).unwrap();
    assert_eq!(text, "[ 1, {\"a\": 2} ,{\"b\":[3]}]");
    let other: String = redis::cmd("HGET").arg(key).arg("other").query(&mut conn).unwrap();
    assert_eq!(other, "\"x\"");
    let left: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
    assert!(left > 5_000 && left <= 60_000, "the TTL extended: {left}");

    // `null` and a missing field are empty lists.
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg("n")
        .arg("null")
        .query(&mut conn)
        .unwrap();
    assert_eq!(users.append("u1", "n", &"first").await.unwrap(), 1);
    assert_eq!(users.append("u1", "fresh", &1).await.unwrap(), 1);
    let texts: Vec<String> = redis::cmd("HMGET")
        .arg(key)
        .arg("n")
        .arg("fresh")
        .query(&mut conn)
        .unwrap();
    assert_eq!(texts, ["[\"first\"]", "[1]"]);

    // No array: nothing written, not even the TTL.
    let _: () = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(5_000)
        .query(&mut conn)
        .unwrap();
    let error = users.append("u1", "other", &1).await.unwrap_err();
    assert_eq!(error.kind(), statehouse::ErrorKind::Deserialization, "{error}");
    assert_eq!(error.key(), "t:{acme}:user:u1 field other (tenant acme)");
    let other: String = redis::cmd("HGET").arg(key).arg("other").query(&mut conn).unwrap();
    assert_eq!(other, "\"x\"");
    let left: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
    assert!(
        left > 0 && left <= 5_000,
        "the failed append left the TTL: {left}"
    );
}
