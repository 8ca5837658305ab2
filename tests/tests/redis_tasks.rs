//! The task family on a real `redis-server`, where Redis itself is what is
//! checked: the key layout in buckets, pruning on the server, the script
//! cache, the migration from the layout before buckets through the CLI.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeMap;

use statehouse::{PageRequest, Settings, Statehouse, TaskBucket, TaskSpace, TaskStatus};
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
    // job:1 is in bucket 13 (TaskBucket's formula, pinned here: changing it
    // would strand every stored task).
    assert_eq!(
        sorted_keys(&server),
        [
            "app:{tasks:b13}:by-service:mail%20er",
            "app:{tasks:b13}:by-user:u%2A1",
            "app:{tasks:b13}:task:job%3A1"
        ]
    );
    let mut conn = server.connection();
    let kind: String = redis::cmd("TYPE")
        .arg("app:{tasks:b13}:by-user:u%2A1")
        .query(&mut conn)
        .unwrap();
    assert_eq!(kind, "zset");
    let score: f64 = redis::cmd("ZSCORE")
        .arg("app:{tasks:b13}:by-user:u%2A1")
        .arg("job:1")
        .query(&mut conn)
        .unwrap();
    assert_eq!(score, task.updated_millis() as f64);
    // Every key of one task has its bucket's hash tag, so one cluster slot.
    for key in sorted_keys(&server) {
        assert_eq!(hash_tag(&key), Some("tasks:b13"), "{key}");
    }
    // The TTL is on every key, set by the write itself.
    for key in sorted_keys(&server) {
        let left: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
        assert!(left > 7_775_000_000, "{key}: {left}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaces_tasks_spread_over_every_bucket_tag() {
    let server = RedisServer::start();
    let tasks = state(&server, "").await.tasks();
    for i in 0..320 {
        tasks.create(&format!("export-{i}"), "svc", "u").await.unwrap();
    }
    let mut per_tag: BTreeMap<String, usize> = BTreeMap::new();
    for key in sorted_keys(&server) {
        if key.contains(":task:") {
            *per_tag.entry(hash_tag(&key).unwrap().to_owned()).or_default() += 1;
        }
    }
    let tags: Vec<String> = per_tag.keys().cloned().collect();
    let expected: Vec<String> = TaskBucket::all().map(|b| format!("tasks:{b}")).collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(tags, expected);
    // 20 per bucket on average; sequential ids spread evenly (no bucket
    // holds more than twice its share).
    assert!(per_tag.values().all(|&n| (5..=40).contains(&n)), "{per_tag:?}");
    assert_eq!(tasks.count_by_service("svc").await.unwrap(), 320);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_index_entries_are_pruned_on_the_server() {
    let server = RedisServer::start();
    let tasks = state(&server, "").await.tasks();
    for id in ["a", "b", "c"] {
        tasks.create(id, "svc", "u").await.unwrap();
    }
    let mut conn = server.connection();
    let space = TaskSpace::default();
    let () = redis::cmd("DEL")
        .arg(space.keys().record("b"))
        .query(&mut conn)
        .unwrap();
    let page = tasks
        .list_by_service("svc", PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let zcard = |key: String| -> u64 {
        redis::cmd("ZCARD")
            .arg(key)
            .query(&mut server.connection())
            .unwrap()
    };
    let services: u64 = TaskBucket::all()
        .map(|b| zcard(space.keys().by_service(b, "svc")))
        .sum();
    assert_eq!(services, 2, "the stale entry was pruned");
    let bucket = TaskBucket::of("b");
    assert_eq!(
        zcard(space.keys().by_user(bucket, "u")),
        1,
        "only the listed index is pruned"
    );
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

fn cli(server: &RedisServer, args: &[&str]) -> (i32, String, String) {
    let url = server.url();
    let mut argv = vec!["statehouse", "--url", url.as_str()];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = statehouse_cli::main_with(argv.iter().map(Into::into), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// What statehouse wrote before buckets, for `n` tasks: `{tasks}:task:<id>`
/// and the two legacy indexes, with a TTL of an hour.
fn write_legacy(server: &RedisServer, n: usize) -> Vec<statehouse::TaskRecord> {
    let mut conn = server.connection();
    (0..n)
        .map(|i| {
            let id = format!("legacy-{i:03}");
            let mut record = statehouse::TaskRecord::new(
                id.parse().unwrap(),
                "exporter".parse().unwrap(),
                "ada".parse().unwrap(),
                chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + i as i64 / 2).unwrap(),
            );
            record.updated_at = record.created_at;
            let json = serde_json::to_string(&record).unwrap();
            let score = record.updated_millis();
            let () = redis::pipe()
                .cmd("SET")
                .arg(format!("{{tasks}}:task:{id}"))
                .arg(json)
                .arg("PX")
                .arg(3_600_000)
                .cmd("ZADD")
                .arg("{tasks}:by-service:exporter")
                .arg(score)
                .arg(&id)
                .cmd("ZADD")
                .arg("{tasks}:by-user:ada")
                .arg(score)
                .arg(&id)
                .query(&mut conn)
                .unwrap();
            record
        })
        .collect()
}

#[test]
fn tasks_migrate_moves_the_layout_before_buckets_and_resumes() {
    let server = RedisServer::start();
    let records = write_legacy(&server, 30);
    // Keys that are not the legacy layout's task records stay as they are.
    let () = redis::cmd("SET")
        .arg("{tasks}:task:bad%2")
        .arg("not a task key of statehouse")
        .query(&mut server.connection())
        .unwrap();
    let (code, dry, err) = cli(&server, &["--json", "tasks", "migrate", "--dry-run"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let mut dry: Vec<String> = serde_json::from_str(&dry).unwrap();
    dry.sort();
    assert_eq!(dry.len(), 30);
    assert_eq!(dry[0], "legacy-000");
    assert_eq!(sorted_keys(&server).len(), 30 + 2 + 1, "a dry run writes nothing");

    // An interrupted run: some tasks moved, the rest not.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tasks = state(&server, "").await.tasks();
        for id in ["legacy-003", "legacy-017"] {
            assert_eq!(
                tasks.migrate_legacy(id).await.unwrap(),
                statehouse::LegacyMove::Moved
            );
        }
    });
    let (code, out, err) = cli(&server, &["--json", "tasks", "migrate"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["legacy"], 28);
    assert_eq!(report["moved"], 28);
    assert_eq!(report["failed"], serde_json::json!([]));
    // Only bucketed keys are left, and the foreign key.
    let left: Vec<String> = sorted_keys(&server)
        .into_iter()
        .filter(|key| !key.starts_with("{tasks:b"))
        .collect();
    assert_eq!(left, ["{tasks}:task:bad%2"]);
    rt.block_on(async {
        let tasks = state(&server, "").await.tasks();
        let page = tasks.list_by_user("ada", PageRequest::first(100)).await.unwrap();
        let listed: Vec<statehouse::TaskRecord> = page.items.into_iter().map(Result::unwrap).collect();
        let mut expected = records.clone();
        expected
            .sort_by(|a, b| (b.updated_millis(), b.id.as_str()).cmp(&(a.updated_millis(), a.id.as_str())));
        assert_eq!(listed, expected);
    });
    // Again: nothing to do.
    let (code, out, _) = cli(&server, &["tasks", "migrate"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("0 tasks of the layout before buckets: moved 0"),
        "{out}"
    );
}
