//! Triggers and queues on a real `redis-server`, where Redis itself is what
//! is checked: the key layout and hash tags, the script cache, the
//! wake-up hints on the wire, and the commands idle all-tenants listeners
//! send (`INFO commandstats`).

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use statehouse::{ListenOptions, Settings, Statehouse};
use statehouse_domain::layout::{TenantKeys, TriggerIndex};
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
    // The tenant's shard of the due index: its slot's top four bits.
    let shard = TriggerIndex::all().shard_of(&TenantKeys::new("acme:eu"));
    let tag = hash_tag(shard.tenants()).unwrap().to_owned();
    let mut expected = vec![
        "app:svc:{mail%20er}:pending".to_owned(),
        "app:t:{acme%3Aeu}:queue-items:mail%20er:nightly:send".to_owned(),
        "app:t:{acme%3Aeu}:queue:mail%20er:nightly:send".to_owned(),
        "app:t:{acme%3Aeu}:queues:mail%20er".to_owned(),
        "app:t:{acme%3Aeu}:triggers:by-id:user%3A1".to_owned(),
        "app:t:{acme%3Aeu}:triggers:claims".to_owned(),
        "app:t:{acme%3Aeu}:triggers:due".to_owned(),
        format!("app:triggers:{{{tag}}}:marks"),
        format!("app:triggers:{{{tag}}}:tenants"),
    ];
    expected.sort();
    assert_eq!(sorted_keys(&server), expected);
    for key in sorted_keys(&server) {
        let expected = if key.contains(":svc:") {
            "mail%20er"
        } else if key.contains(":triggers:{") {
            tag.as_str()
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
    let filed: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("app:triggers:{{{tag}}}:tenants"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut conn)
        .unwrap();
    assert_eq!(filed.len(), 1);
    assert_eq!(filed[0].0, "acme:eu", "tenants verbatim in the due index");
    let due: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("app:t:{acme%3Aeu}:triggers:due")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut conn)
        .unwrap();
    assert!(
        filed[0].1 <= due[0].1,
        "filed no later than due: {filed:?} {due:?}"
    );
    let mark: String = redis::cmd("HGET")
        .arg(format!("app:triggers:{{{tag}}}:marks"))
        .arg("acme:eu")
        .query(&mut conn)
        .unwrap();
    assert!(mark.starts_with("1:"), "one set marked: {mark}");
    let sets: String = redis::cmd("HGET")
        .arg("app:t:{acme%3Aeu}:triggers:claims")
        .arg("#sets")
        .query(&mut conn)
        .unwrap();
    assert_eq!(sets, "1", "one set counted by the tenant");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_reloaded_for_the_due_index() {
    let server = RedisServer::start();
    let state = state(&server, "").await;
    let triggers = state.triggers();
    let port = state.ports().triggers.clone();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut server.connection())
        .unwrap();
    triggers
        .set("acme", "remind", "u1", Duration::ZERO)
        .await
        .unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut server.connection())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let due = port
        .take_due(TriggerIndex::all(), 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(due.tenants.len(), 1);
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut server.connection())
        .unwrap();
    let keys = statehouse_domain::layout::TriggerKeys::new(&due.tenants[0]);
    let claimed = port
        .claim_indexed(&keys, 10, Duration::from_secs(30))
        .await
        .unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut server.connection())
        .unwrap();
    assert_eq!(port.ack_indexed(&keys, &claimed.triggers).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_publishes_the_hint_only_when_it_files_its_shards_earliest_entry() {
    let server = RedisServer::start();
    let state = state(&server, "app:").await;
    let triggers = state.triggers();
    let shard = TriggerIndex::all().shard_of(&TenantKeys::new("acme"));
    // Another tenant of the same shard.
    let neighbour = (0..)
        .map(|n| format!("tenant-{n}"))
        .find(|t| TriggerIndex::all().shard_of(&TenantKeys::new(t)).number() == shard.number())
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    let channel = format!("app:statehouse:changes:{}", shard.wake());
    pubsub.subscribe(&channel).await.unwrap();
    let mut messages = pubsub.into_on_message();
    let hints = Arc::new(AtomicUsize::new(0));
    let counted = hints.clone();
    let counter = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            assert_eq!(message.get_payload_bytes(), br#"{"kind":"set"}"#);
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let minute = Duration::from_secs(60);
    triggers.set("acme", "remind", "u1", minute).await.unwrap(); // the shard's first: a hint
    triggers.set("acme", "remind", "u2", 2 * minute).await.unwrap(); // later: none
    triggers
        .set(&neighbour, "remind", "u1", 3 * minute)
        .await
        .unwrap(); // later: none
    triggers
        .set(&neighbour, "remind", "u2", minute / 2)
        .await
        .unwrap(); // sooner: a hint
    // Pub/Sub delivers in order on one connection: a last hint marks the end.
    triggers
        .set("acme", "remind", "u3", Duration::ZERO)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while hints.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("three hints");
    counter.abort();
    assert_eq!(hints.load(Ordering::SeqCst), 3);
}

/// `calls` of one command in `INFO commandstats`.
fn calls(server: &RedisServer, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.connection())
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Four all-tenants listeners in two processes (two `Statehouse`s, each
/// with its connections, Pub/Sub subscriptions and in-process wake-up of
/// its own: they share nothing but the server, as two OS processes do)
/// over 10,000 tenants filed in the due index, none due: they send a few
/// scripts per second in all, not one per tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_listeners_over_ten_thousand_tenants_send_a_few_scripts_per_second() {
    const TENANTS: usize = 10_000;
    let server = RedisServer::start();
    let here = state(&server, "app:").await;
    let there = state(&server, "app:").await;
    let mut setters = Vec::new();
    for setter in 0..8 {
        let triggers = here.triggers();
        setters.push(tokio::spawn(async move {
            for n in (setter..TENANTS).step_by(8) {
                triggers
                    .set(&format!("tenant-{n}"), "remind", "u", Duration::from_secs(3600))
                    .await
                    .unwrap();
            }
        }));
    }
    for setter in setters {
        setter.await.unwrap();
    }
    let options = ListenOptions::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut listeners = Vec::new();
    for state in [&here, &here, &there, &there] {
        let (triggers, mut stopped) = (state.triggers(), stopped.clone());
        listeners.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            triggers
                .listen_all(options, stopped, |_, _| async {
                    Err::<(), Box<dyn std::error::Error + Send + Sync>>("nothing is due".into())
                })
                .await
                .unwrap();
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .exec(&mut server.connection())
        .unwrap();
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let scripts = calls(&server, "evalsha") + calls(&server, "eval");
    stop.send_replace(true);
    for listener in listeners {
        listener.await.unwrap();
    }
    // Each listener rests `max_idle` (1 s) when nothing is due: one take a
    // second each, one more at the edges; no claim.
    let bound = 4 * (window.as_secs() + 1);
    assert!(
        scripts <= bound,
        "{scripts} scripts in {window:?} from 4 idle listeners over {TENANTS} tenants (at most {bound})"
    );
    assert!(scripts >= 4, "each listener looked: {scripts}");
}

/// The due index's shards on a real Redis Cluster: each shard's keys in
/// one slot, in its sixteenth of the slots (as the layout computes it),
/// spread over every primary; a tenant's shard is its slot's top four bits.
#[test]
fn the_shards_spread_over_a_clusters_primaries() {
    let cluster = statehouse_tests::harness::RedisCluster::shared();
    let mut primaries = std::collections::BTreeSet::new();
    for shard in TriggerIndex::all().shards() {
        let slot = cluster.slot_of(shard.tenants());
        assert_eq!(
            slot,
            statehouse_domain::layout::hash_slot(shard.tenants().as_bytes())
        );
        assert_eq!(cluster.slot_of(shard.marks()), slot);
        assert_eq!(cluster.slot_of(shard.wake()), slot);
        assert_eq!(usize::from(slot / 1024), shard.number(), "{}", shard.tenants());
        primaries.insert(cluster.primary_for_slot(slot).port());
    }
    assert_eq!(
        primaries.len(),
        cluster.primaries().len(),
        "every primary holds shards"
    );
    for n in 0..50 {
        let tenant = TenantKeys::new(&format!("tenant {n}:x"));
        let slot = cluster.slot_of(&format!("{}triggers:due", tenant.head()));
        assert_eq!(
            TriggerIndex::all().shard_of(&tenant).number(),
            usize::from(slot / 1024)
        );
    }
}
