//! The demo on Redis: it tours every family and deletes exactly the keys it created.

use statehouse_tests::harness::RedisServer;

use super::run;

/// Every key on the server, of any type, with its TYPE and its serialized
/// value (DUMP), sorted: the whole keyspace as it is.
fn keyspace(conn: &mut redis::Connection) -> Vec<(String, String, Vec<u8>)> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(conn).expect("KEYS");
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(conn).expect("TYPE");
            let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(conn).expect("DUMP");
            (key, kind, dump)
        })
        .collect()
}

fn dbsize(conn: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(conn).expect("DBSIZE")
}

/// Keys a user (or another run) has where the demo's families write,
/// outside this run's namespace: the demo must leave every one as it is.
fn precious_keys(conn: &mut redis::Connection) {
    let writes: &[&[&str]] = &[
        &["SET", "cli:demo:precious", r#""mine""#],
        &["SET", "cli:demo:counter", "5"],
        &["SET", "cli:demo:user:1", r#"{"name":"Grace"}"#],
        &["SET", "cli:demo:session", r#""other""#],
        &["SET", "demo:precious", r#""mine too""#],
        // Where the families write, without the demo's namespace.
        &["SET", "cli:Order:7", r#"{"id":"7","items":[],"total_cents":0}"#],
        &["SET", "cli:{tasks:b12}:task:export-1", "{}"],
        &["ZADD", "cli:{tasks:b12}:by-service:reports", "1", "export-1"],
        &["HSET", "cli:s:sensor-1", "preadings", "7"],
        &["HSET", "cli:t:{acme}:user:ada", "name", r#""Grace""#],
        &["ZADD", "cli:t:{acme}:triggers:due", "1", "remind:ada"],
        &["HSET", "cli:t:{acme}:triggers:claims", "#", "9"],
        &["RPUSH", "cli:t:{acme}:queue:mailer:nightly:send", "1"],
        &["ZADD", "cli:svc:{mailer}:pending", "1", "acme"],
        &["SET", "cli:config:checkout", r#"{"version":4,"value":1}"#],
        // Another run's namespace.
        &[
            "ZADD",
            "cli:demo:0123456789ab:t:{acme}:triggers:due",
            "1",
            "remind:ada",
        ],
    ];
    for args in writes {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.exec(&mut *conn).expect("a precious key");
    }
}

/// The demo tours every family on Redis, and keys that look like the
/// demo's (a user's, another run's, or left by an older version) stay as
/// they are: the demo works under `demo:<run id>:` and deletes exactly the
/// keys it created, index, claim and pending sets included.
#[test]
fn demo_touches_only_its_own_keys() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    precious_keys(&mut conn);
    let (before, size) = (keyspace(&mut conn), dbsize(&mut conn));

    let (code, text, err) = run(&server, &["demo"]);
    assert_eq!(code, 0, "{text}\n{err}");
    let out = &text;
    assert!(out.contains("(redis)"), "{out}");
    assert!(out.contains(":counter = 200 (expected 200)"), "{out}");
    assert!(out.contains("\"readings\" = 200 (expected 200)"), "{out}");
    assert!(out.contains("the listener got \"remind\" \"ada\""), "{out}");
    assert!(out.contains("the watcher sees version 2"), "{out}");
    assert!(out.contains("store alive = true"), "{out}");
    assert_eq!(keyspace(&mut conn), before);

    let (code, out, err) = run(&server, &["demo", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(summary["outcome"], "done", "{summary}");
    assert_eq!(summary["backend"], "redis", "{summary}");
    assert_eq!(
        summary["families"],
        serde_json::json!([
            "documents",
            "synced",
            "tasks",
            "subjects",
            "tenants",
            "triggers",
            "queues",
            "config"
        ]),
        "{summary}"
    );
    assert_eq!(summary["counter"], 200, "{summary}");
    assert_eq!(summary["subject"]["value"], 200, "{summary}");
    assert_eq!(
        summary["task"]["statuses"],
        serde_json::json!(["pending", "running", "completed"])
    );
    assert_eq!(summary["trigger"]["pending_after"], 0, "{summary}");
    assert_eq!(summary["queue"]["len_after"], 0, "{summary}");
    assert_eq!(summary["config"]["seen"], serde_json::json!([1, 2]), "{summary}");
    let namespace = summary["namespace"].as_str().expect("namespace");
    assert!(
        namespace.starts_with("demo:") && namespace.len() > "demo::".len(),
        "{summary}"
    );
    let created: Vec<&str> = summary["created"]
        .as_array()
        .expect("created")
        .iter()
        .map(|key| key.as_str().expect("a key"))
        .collect();
    assert!(
        created.iter().all(|key| key.starts_with(namespace)),
        "{created:?}"
    );
    for family_key in [
        "Order:7",
        "{tasks:b12}:by-service:reports",
        "s:sensor-1",
        "t:{acme}:",
        "config:checkout",
    ] {
        assert!(
            created.iter().any(|key| key.contains(family_key)),
            "{family_key} in {created:?}"
        );
    }
    assert!(
        text.contains(&format!("removed the {} keys it created", created.len())),
        "{text}"
    );
    assert_eq!(summary["left_behind"], serde_json::json!([]), "{summary}");

    assert_eq!(keyspace(&mut conn), before);
    assert_eq!(dbsize(&mut conn), size);
}

/// Runs the demo on `server` with `hook` (`--fail-after-step` or
/// `--interrupt-after-step`) at every step, and checks that each run
/// removed exactly the keys it created, whatever it had written by then.
fn demo_stopped_at_every_step(hook: &str, code: i32, outcome: &str, said: &str) {
    let server = RedisServer::start();
    let mut conn = server.connection();
    precious_keys(&mut conn);
    let before = keyspace(&mut conn);
    for step in 1..=12 {
        let step = step.to_string();
        let (got, out, err) = run(&server, &["demo", "--json", hook, &step]);
        assert_eq!(got, code, "step {step}: {out}\n{err}");
        assert!(err.contains(said), "step {step}: {err}");
        let summary: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(summary["outcome"], outcome, "{summary}");
        assert!(
            !summary["created"].as_array().expect("created").is_empty(),
            "{summary}"
        );
        assert_eq!(summary["left_behind"], serde_json::json!([]), "{summary}");
        assert_eq!(keyspace(&mut conn), before, "step {step}");
    }
}

/// A run that fails part way removes what it created, and only that.
#[test]
fn a_failed_demo_removes_exactly_the_keys_it_created() {
    demo_stopped_at_every_step("--fail-after-step", 3, "failed", "as asked (--fail-after-step)");
}

/// A run stopped as Ctrl-C stops it (the tour dropped where it stands)
/// removes what it created, and only that, and exits with 130.
#[test]
fn an_interrupted_demo_removes_exactly_the_keys_it_created() {
    demo_stopped_at_every_step(
        "--interrupt-after-step",
        130,
        "interrupted",
        "interrupted (Ctrl-C)",
    );
}
