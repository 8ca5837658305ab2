//! The task family on a real `redis-server`, where Redis itself is what is
//! checked: the key layout, pruning on the server, the script cache.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use statehouse::{PageRequest, Settings, Statehouse, TaskStatus};
use statehouse_tests::harness::RedisServer;

async fn state(server: &RedisServer, prefix: &str) -> Statehouse {
    let mut settings = Settings::new(server.url());
    settings.prefix = prefix.to_owned();
    Statehouse::with_settings(settings).await.unwrap()
}

/// The part of `key` Redis Cluster hashes: the text between the first `{`
/// and the next `}`, if not empty.
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open + 1..].find('}')? + open + 1;
    (close > open + 1).then(|| &key[open + 1..close])
}

fn sorted_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.connection())
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_documented_layout() {
    let server = RedisServer::start();
    let tasks = state(&server, "app:").await.tasks();
    let task = tasks.create("job:1", "mail er", "u*1").await.unwrap();
    assert_eq!(
        sorted_keys(&server),
        [
            "app:{tasks}:by-service:mail%20er",
            "app:{tasks}:by-user:u%2A1",
            "app:{tasks}:task:job%3A1"
        ]
    );
    let mut conn = server.connection();
    let kind: String = redis::cmd("TYPE")
        .arg("app:{tasks}:by-user:u%2A1")
        .query(&mut conn)
        .unwrap();
    assert_eq!(kind, "zset");
    let score: f64 = redis::cmd("ZSCORE")
        .arg("app:{tasks}:by-user:u%2A1")
        .arg("job:1")
        .query(&mut conn)
        .unwrap();
    assert_eq!(score, task.updated_millis() as f64);
    // Every key of one namespace has the same hash tag, so one cluster slot.
    for key in sorted_keys(&server) {
        assert_eq!(hash_tag(&key), Some("tasks"), "{key}");
    }
    // The TTL is on every key, set by the write itself.
    for key in sorted_keys(&server) {
        let left: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
        assert!(left > 7_775_000_000, "{key}: {left}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_index_entries_are_pruned_on_the_server() {
    let server = RedisServer::start();
    let tasks = state(&server, "").await.tasks();
    for id in ["a", "b", "c"] {
        tasks.create(id, "svc", "u").await.unwrap();
    }
    let mut conn = server.connection();
    let () = redis::cmd("DEL").arg("{tasks}:task:b").query(&mut conn).unwrap();
    let page = tasks
        .list_by_service("svc", PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let left: u64 = redis::cmd("ZCARD")
        .arg("{tasks}:by-service:svc")
        .query(&mut conn)
        .unwrap();
    assert_eq!(left, 2, "the stale entry was pruned");
    let other: u64 = redis::cmd("ZCARD")
        .arg("{tasks}:by-user:u")
        .query(&mut conn)
        .unwrap();
    assert_eq!(other, 3, "only the listed index is pruned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_reloaded_without_an_error() {
    let server = RedisServer::start();
    let tasks = state(&server, "").await.tasks();
    tasks.create("t", "svc", "u").await.unwrap();
    let mut conn = server.connection();
    let () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn).unwrap();
    let task = tasks
        .set_status("t", TaskStatus::Running, Some("after flush"))
        .await
        .unwrap();
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(tasks.get("t").await.unwrap().unwrap().log.len(), 1);
}
