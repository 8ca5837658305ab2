//! Triggers and queues on a real `redis-server`, where Redis itself is what
//! is checked: the key layout and hash tags, and the script cache.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::time::Duration;

use statehouse::{Settings, Statehouse};
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
async fn keys_follow_the_documented_layout_one_hash_tag_per_tenant() {
    let server = RedisServer::start();
    let state = state(&server, "app:").await;
    let triggers = state.triggers();
    triggers
        .set("acme:eu", "remind", "user:1", Duration::from_secs(60))
        .await
        .unwrap();
    let queues = state.queues();
    let q = queues.queue("mail er", "nightly", "send").unwrap();
    queues.enqueue("acme:eu", &q, &["a"]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        sorted_keys(&server),
        [
            "app:svc:{mail%20er}:pending",
            "app:t:{acme%3Aeu}:queue-items:mail%20er:nightly:send",
            "app:t:{acme%3Aeu}:queue:mail%20er:nightly:send",
            "app:t:{acme%3Aeu}:queues:mail%20er",
            "app:t:{acme%3Aeu}:triggers:by-id:user%3A1",
            "app:t:{acme%3Aeu}:triggers:due",
        ]
    );
    for key in sorted_keys(&server) {
        let expected = if key.contains(":svc:") {
            "mail%20er"
        } else {
            "acme%3Aeu"
        };
        assert_eq!(hash_tag(&key), Some(expected), "{key}");
    }
    let mut conn = server.connection();
    let member: Vec<String> = redis::cmd("ZRANGE")
        .arg("app:t:{acme%3Aeu}:triggers:due")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(member, ["remind:user%3A1"]);
    let pending: Vec<String> = redis::cmd("ZRANGE")
        .arg("app:svc:{mail%20er}:pending")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending, ["acme:eu"], "tenants verbatim in the pending set");
    // Claimed and acknowledged: the claim leaves nothing but the counter.
    let claimed = queues
        .claim::<String>("acme:eu", &q, 10, Duration::from_secs(30))
        .await
        .unwrap();
    queues.ack("acme:eu", &q, &[claimed[0].id]).await.unwrap();
    assert!(
        !sorted_keys(&server)
            .iter()
            .any(|k| k.contains(":queue:") || k.contains(":queues:"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_reloaded_also_inside_the_enqueue_multi() {
    let server = RedisServer::start();
    let state = state(&server, "").await;
    let (triggers, queues) = (state.triggers(), state.queues());
    let q = queues.queue("mailer", "b", "send").unwrap();
    for round in 0..2 {
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec(&mut server.connection())
            .unwrap();
        triggers
            .set("acme", "remind", &format!("u{round}"), Duration::ZERO)
            .await
            .unwrap();
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec(&mut server.connection())
            .unwrap();
        let ids = queues.enqueue("acme", &q, &[round]).await.unwrap();
        assert_eq!(ids, [round + 1], "enqueued once, not twice");
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec(&mut server.connection())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let claimed = triggers.claim("acme", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(claimed.triggers.len(), 1);
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec(&mut server.connection())
            .unwrap();
        assert!(triggers.ack("acme", &claimed.triggers[0]).await.unwrap());
    }
    assert_eq!(queues.len("acme", &q).await.unwrap(), 2);
    assert_eq!(queues.pending("mailer").await.unwrap(), ["acme"]);
}
