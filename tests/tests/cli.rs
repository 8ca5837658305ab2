//! The CLI against a real Redis: what one invocation writes, the next reads.

#![allow(clippy::expect_used, reason = "test code: a panic is a failed test")]

use statehouse_tests::harness::RedisServer;

fn run(server: &RedisServer, args: &[&str]) -> (i32, String, String) {
    let url = server.url();
    let mut argv = vec!["statehouse", "--url", url.as_str(), "--prefix", "cli:"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = statehouse_cli::main_with(argv.iter().map(Into::into), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).expect("utf-8 output"),
        String::from_utf8(err).expect("utf-8 errors"),
    )
}

#[test]
fn documents_round_trip_through_redis_between_invocations() {
    let server = RedisServer::start();
    assert_eq!(
        run(&server, &["ping"]).1,
        format!("PONG from {} (prefix \"cli:\") (redis)\n", server.url())
    );
    assert_eq!(
        run(&server, &["doc", "set", "user:1", r#"{"name":"Ada"}"#]),
        (0, "OK\n".into(), String::new())
    );
    assert_eq!(
        run(&server, &["doc", "set", "user:2", r#""Bob""#, "--ttl", "60"]).0,
        0
    );
    assert_eq!(run(&server, &["doc", "get", "user:1"]).1, "{\"name\":\"Ada\"}\n");
    assert_eq!(run(&server, &["doc", "list", "user:*"]).1, "user:1\nuser:2\n");
    let ttl = run(&server, &["doc", "ttl", "user:2"]).1;
    assert!(
        ttl == "expires in 60 s\n" || ttl.starts_with("expires in 59."),
        "{ttl}"
    );
    assert_eq!(run(&server, &["doc", "ttl", "user:1"]).1, "no TTL\n");
    let (code, _, err) = run(&server, &["doc", "set", "user:1", "1", "--if-absent"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: \"user:1\" already exists; nothing written\n")
    );
    assert_eq!(run(&server, &["doc", "del", "user:1"]).1, "deleted\n");
    assert_eq!(
        run(&server, &["doc", "del", "user:1"]),
        (
            1,
            String::new(),
            "error: \"user:1\" does not exist; nothing deleted\n".into()
        )
    );

    // The prefix is really applied on the server.
    let mut conn = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).expect("KEYS");
    assert_eq!(keys, ["cli:user:2"]);
}

#[test]
fn json_output_round_trips_through_redis() {
    let server = RedisServer::start();
    let pretty = "{\n  \"name\": \"Ada Lovelace\",\n  \"tags\": [ \"a b\", \"\\\" x\" ]\n}\n";
    assert_eq!(run(&server, &["doc", "set", "user:1", pretty]).0, 0);
    assert_eq!(
        run(&server, &["--json", "doc", "get", "user:1"]),
        (
            0,
            "{\"name\":\"Ada Lovelace\",\"tags\":[\"a b\",\"\\\" x\"]}\n".into(),
            String::new()
        )
    );
    assert_eq!(
        run(&server, &["doc", "get", "user:1"]).1,
        pretty,
        "people get it as stored"
    );
    assert_eq!(
        run(&server, &["doc", "set", "user:2", "2", "--ttl", "60", "--json"]).1,
        "{\"key\":\"user:2\",\"written\":true}\n"
    );
    assert_eq!(
        run(&server, &["doc", "set", "user:2", "3", "--if-absent", "--json"]),
        (
            1,
            "{\"key\":\"user:2\",\"written\":false}\n".into(),
            "error: \"user:2\" already exists; nothing written\n".into()
        )
    );
    assert_eq!(
        run(&server, &["doc", "list", "user:*", "--json"]).1,
        "[\"user:1\",\"user:2\"]\n"
    );
    let ttl: serde_json::Value =
        serde_json::from_str(&run(&server, &["doc", "ttl", "user:2", "--json"]).1).expect("JSON");
    assert_eq!(ttl["state"], "expires", "{ttl}");
    let left = ttl["ttl_ms"].as_u64().expect("ttl_ms is a number");
    assert!((59_000..=60_000).contains(&left), "{ttl}");
    assert_eq!(
        run(&server, &["doc", "ttl", "user:1", "--json"]).1,
        "{\"key\":\"user:1\",\"ttl_ms\":null,\"state\":\"persistent\"}\n"
    );
    assert_eq!(
        run(&server, &["doc", "del", "user:1", "--json"]).1,
        "{\"key\":\"user:1\",\"deleted\":true}\n"
    );
    assert_eq!(
        run(&server, &["ping", "--json"]).1,
        format!(
            "{{\"url\":\"{}\",\"prefix\":\"cli:\",\"backend\":\"redis\"}}\n",
            server.url()
        )
    );
}

/// The exit codes of commands that need something in the store; the rest
/// are in app/tests/cli.rs.
#[test]
fn exit_codes_say_what_happened_to_the_key() {
    let mut server = RedisServer::start();
    assert_eq!(run(&server, &["doc", "set", "k", "1"]).0, 0);
    assert_eq!(run(&server, &["doc", "set", "k", "2", "--if-absent"]).0, 1);
    assert_eq!(
        run(&server, &["doc", "get", "k"]),
        (0, "1\n".into(), String::new())
    );
    assert_eq!(run(&server, &["doc", "ttl", "k"]).0, 0);
    assert_eq!(run(&server, &["doc", "del", "k"]).0, 0);
    for command in ["get", "ttl", "del"] {
        let (code, out, err) = run(&server, &["doc", command, "k"]);
        assert_eq!((code, out.as_str()), (1, ""), "doc {command}: {err}");
        assert!(
            err.starts_with("error: \"k\" does not exist"),
            "doc {command}: {err}"
        );
    }

    // Stored data that is not JSON: `doc get` says so (3); --raw prints it as it is.
    assert_eq!(run(&server, &["doc", "set", "plain", "hello", "--raw"]).0, 0);
    let (code, out, err) = run(&server, &["doc", "get", "plain"]);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert_eq!(
        err,
        "error: get \"plain\": the stored value is not valid JSON: expected value at line 1 column 1; \
         `doc get --raw` prints it as it is\n"
    );
    assert_eq!(
        run(&server, &["doc", "get", "plain", "--raw"]),
        (0, "hello".into(), String::new())
    );

    // A key of another Redis type is stored data the command cannot use (3).
    let mut conn = server.connection();
    let _: i64 = redis::cmd("RPUSH")
        .arg(&["cli:list", "x"])
        .query(&mut conn)
        .expect("RPUSH");
    let (code, _, err) = run(&server, &["doc", "get", "list"]);
    assert_eq!(code, 3, "{err}");

    // The store is gone (3).
    server.stop();
    for args in [&["ping"][..], &["doc", "get", "k"], &["doc", "list"], &["demo"]] {
        let (code, _, err) = run(&server, args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains("cannot reach the store"), "{args:?}: {err}");
    }
}

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

#[test]
fn tasks_are_followed_between_invocations() {
    let server = RedisServer::start();
    let (code, out, err) = run(
        &server,
        &[
            "tasks",
            "save",
            "export-1",
            "--service",
            "exporter",
            "--user",
            "ada",
            "--meta",
            r#"{"rows":12}"#,
        ],
    );
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "saved task \"export-1\"\n", "")
    );
    assert_eq!(
        run(
            &server,
            &["tasks", "set-status", "export-1", "running", "--log", "started"]
        )
        .1,
        "task \"export-1\" is running\n"
    );
    assert_eq!(
        run(&server, &["tasks", "log", "export-1", "half way"]).1,
        "logged to task \"export-1\" (2 lines)\n"
    );

    let (code, table, _) = run(&server, &["tasks", "show", "export-1"]);
    assert_eq!(code, 0);
    for expected in [
        "status   running",
        "service  \"exporter\"",
        "metadata {\"rows\":12}",
        "started",
        "half way",
    ] {
        assert!(table.contains(expected), "{expected:?} in\n{table}");
    }
    assert!(
        !table.contains("TaskRecord") && !table.contains("Some("),
        "{table}"
    );

    let (_, json, _) = run(&server, &["--json", "tasks", "show", "export-1"]);
    let record: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(record["status"], "running");
    assert_eq!(record["log"][1]["message"], "half way");

    run(
        &server,
        &[
            "tasks",
            "save",
            "export-2",
            "--service",
            "exporter",
            "--user",
            "bob",
        ],
    );
    let (code, listed, _) = run(
        &server,
        &["--json", "tasks", "list", "--service", "exporter", "--limit", "1"],
    );
    assert_eq!(code, 0);
    let page: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(page["tasks"][0]["id"], "export-2");
    let next = page["next"].as_str().expect("a next page").to_owned();
    let (_, second, _) = run(
        &server,
        &[
            "--json",
            "tasks",
            "list",
            "--service",
            "exporter",
            "--after",
            &next,
        ],
    );
    let second: serde_json::Value = serde_json::from_str(&second).expect("JSON");
    assert_eq!(second["tasks"][0]["id"], "export-1");
    assert!(second["next"].is_null());
    let (_, by_user, _) = run(&server, &["tasks", "list", "--user", "ada"]);
    assert!(
        by_user.contains("export-1") && !by_user.contains("export-2"),
        "{by_user}"
    );

    // The exit-code convention.
    run(&server, &["tasks", "set-status", "export-1", "completed"]);
    let (code, _, err) = run(&server, &["tasks", "set-status", "export-1", "running"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot move the task from completed to running"),
        "{err}"
    );
    assert_eq!(run(&server, &["tasks", "show", "ghost"]).0, 1);
    assert_eq!(run(&server, &["tasks", "log", "ghost", "x"]).0, 1);
    assert_eq!(run(&server, &["tasks", "set-status", "export-1", "paused"]).0, 2);
    assert_eq!(
        run(&server, &["tasks", "list"]).0,
        2,
        "--service or --user is required"
    );
    let (code, _, err) = run(
        &server,
        &[
            "tasks",
            "save",
            "t",
            "--service",
            "s",
            "--user",
            "u",
            "--meta",
            "[1]",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert_eq!(run(&server, &["tasks", "del", "export-2"]).0, 0);
    assert_eq!(run(&server, &["tasks", "del", "export-2"]).0, 1);

    // The keys are where docs/keys.md says.
    let mut conn = server.connection();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("cli:{tasks*")
        .query(&mut conn)
        .expect("KEYS");
    keys.sort();
    assert_eq!(
        keys,
        [
            "cli:{tasks:b12}:by-service:exporter",
            "cli:{tasks:b12}:by-user:ada",
            "cli:{tasks:b12}:task:export-1"
        ]
    );
}

#[test]
fn subjects_are_shared_with_krules_between_invocations() {
    let server = RedisServer::start();
    let ok = |args: &[&str]| {
        let (code, out, err) = run(&server, args);
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}: {out}");
        out
    };
    ok(&["subject", "set", "user:1", "name", r#""Jöhn""#]);
    ok(&["subject", "set", "user:1", "age", "30"]);
    ok(&["subject", "set", "user:1", "origin", "null", "--extended"]);
    // The bytes KRules (Python's json.dumps) reads and writes.
    let mut conn = server.connection();
    let raw: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg("cli:s:user:1")
        .query(&mut conn)
        .expect("hgetall");
    let mut raw = raw;
    raw.sort();
    assert_eq!(
        raw,
        [
            ("eorigin".to_owned(), "null".to_owned()),
            ("page".to_owned(), "30".to_owned()),
            ("pname".to_owned(), r#""J\u00f6hn""#.to_owned()),
        ]
    );
    let shown = ok(&["--json", "subject", "show", "user:1"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("json");
    assert_eq!(
        shown,
        serde_json::json!({"subject": "user:1", "default": {"age": 30, "name": "Jöhn"}, "extended": {"origin": null}})
    );
    let table = ok(&["subject", "show", "user:1"]);
    assert!(table.contains("extended  origin"), "{table}");
    assert_eq!(ok(&["subject", "list", "user:*"]), "user:1\n");
    ok(&["subject", "del", "user:1", "age"]);
    assert_eq!(
        run(&server, &["subject", "del", "user:1", "age"]).0,
        1,
        "already gone"
    );
    assert_eq!(run(&server, &["subject", "set", "user:1", "x", "not json"]).0, 2);
    ok(&["subject", "del", "user:1"]);
    assert_eq!(run(&server, &["subject", "show", "user:1"]).0, 1);
    assert_eq!(run(&server, &["subject", "del", "user:1"]).0, 1);
}

#[test]
fn model_show_reads_what_a_python_service_wrote() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    // As a Python service writes it: `json.dumps` spacing and escapes.
    // Shown with the fields in name order.
    redis::cmd("SET")
        .arg("cli:Order:7")
        .arg(r#"{"id": "7", "customer": "Zo\u00eb", "lines": [1, 2]}"#)
        .exec(&mut conn)
        .expect("SET");
    assert_eq!(
        run(&server, &["model", "show", "Order", "7"]),
        (
            0,
            "model \"Order:7\"\n  customer  \"Zoë\"\n  id        \"7\"\n  lines     [1,2]\n".into(),
            String::new()
        )
    );
    assert_eq!(
        run(&server, &["--json", "model", "show", "Order", "7"]),
        (
            0,
            "{\"customer\":\"Zoë\",\"id\":\"7\",\"lines\":[1,2]}\n".into(),
            String::new()
        )
    );
    assert_eq!(
        run(&server, &["model", "show", "Order", "8"]),
        (
            1,
            String::new(),
            "error: model Order \"8\" does not exist (no document under \"Order:8\")\n".into()
        )
    );
    assert_eq!(
        run(&server, &["--json", "model", "show", "Order", "8"]).1,
        "null\n"
    );
    let (code, _, err) = run(&server, &["model", "show", "Shop:Order", "7"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("must not contain ':'"), "{err}");
    redis::cmd("SET")
        .arg("cli:Order:9")
        .arg("{not json")
        .exec(&mut conn)
        .expect("SET");
    let (code, _, err) = run(&server, &["model", "show", "Order", "9"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("\"Order:9\""), "{err}");
}

#[test]
fn tenant_records_show_readable_or_as_json() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    let mut hset = |key: &str, field: &str, value: &str| {
        redis::cmd("HSET")
            .arg(format!("cli:{key}"))
            .arg(field)
            .arg(value)
            .exec(&mut conn)
            .expect("HSET");
    };
    hset("t:{acme}:user:u%3A1", "name", r#""Ann""#);
    hset("t:{acme}:user:u%3A1", "age", "30");
    hset("t:{acme}:user:u%3A1", "bad", "{not json");
    hset("t:{acme}:user:u2", "name", r#""Bo""#);
    hset("t:{acme2}:user:u3", "name", r#""Cy""#);
    hset("t:{acme}:state:u2:draft", "text", r#""hi""#);
    hset("t:{acme}:table:orders:42", "total", "9.5");

    let ok = |args: &[&str]| {
        let (code, out, err) = run(&server, args);
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
        out
    };
    assert_eq!(ok(&["tenant", "acme", "users"]), "u2\nu:1\n");
    assert_eq!(ok(&["--json", "tenant", "acme", "users"]), "[\"u2\",\"u:1\"]\n");
    let shown = ok(&["--json", "tenant", "acme", "users", "get", "u:1"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["tenant"], "acme");
    assert_eq!(shown["user"], "u:1");
    assert_eq!(shown["fields"], serde_json::json!({"age": 30, "name": "Ann"}));
    assert!(shown["errors"]["bad"].is_string(), "{shown}");
    assert!(
        !shown.to_string().contains("not json"),
        "no stored bytes in errors"
    );
    let table = ok(&["tenant", "acme", "users", "get", "u:1"]);
    assert!(table.starts_with("user \"u:1\" of tenant \"acme\"\n"), "{table}");
    assert!(table.contains("name                     \"Ann\"\n"), "{table}");
    assert_eq!(ok(&["tenant", "acme", "state", "u2"]), "draft\n");
    assert_eq!(
        ok(&["--json", "tenant", "acme", "state", "u2", "draft"]),
        "{\"tenant\":\"acme\",\"state\":\"draft\",\"user\":\"u2\",\"fields\":{\"text\":\"hi\"}}\n"
    );
    assert_eq!(ok(&["tenant", "acme", "table", "orders"]), "42\n");
    assert!(ok(&["tenant", "acme", "table", "orders", "42"]).contains("total                    9.5\n"));
    assert_eq!(ok(&["tenant", "acme2", "users"]), "u3\n");
    assert_eq!(ok(&["tenant", "*", "users"]), "");
    let (code, _, err) = run(&server, &["tenant", "acme", "users", "get", "nobody"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: user \"nobody\" of tenant \"acme\" does not exist\n")
    );
    assert_eq!(run(&server, &["tenant", "", "users"]).0, 2);
}

#[test]
fn triggers_and_queues_are_followed_between_invocations() {
    let server = RedisServer::start();
    let (code, out, err) = run(&server, &["triggers", "set", "acme", "remind", "user-1", "1h"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out,
        "trigger \"remind\" \"user-1\" of tenant \"acme\" fires in 1 h\n"
    );
    run(&server, &["triggers", "set", "acme", "clean", "s:9", "0"]);
    let (code, out, _) = run(&server, &["--json", "triggers", "acme"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let ids: Vec<&str> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, ["s:9", "user-1"], "earliest first");
    assert!(
        list[0]["due_at"].as_str().expect("a time").ends_with('Z'),
        "RFC 3339 UTC"
    );
    let (_, out, _) = run(&server, &["--json", "triggers", "acme", "--due"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).expect("JSON")[0]["id"],
        "s:9"
    );
    let (code, _, err) = run(&server, &["triggers", "set", "acme", "remind", "u", "soon"]);
    assert_eq!(code, 2, "{err}");

    let (code, out, _) = run(&server, &["queue", "pending", "mailer"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "no tenant has queued work for \"mailer\"\n")
    );
    let state = statehouse::blocking::Statehouse::with_settings({
        let mut settings = statehouse::Settings::new(server.url());
        settings.prefix = "cli:".to_owned();
        settings
    })
    .expect("connects");
    let queues = state.queues();
    let q = queues.queue("mailer", "nightly", "send").expect("valid");
    queues
        .enqueue(
            "acme",
            &q,
            &[serde_json::json!({"to": "ada"}), serde_json::json!(2)],
        )
        .expect("enqueued");
    assert_eq!(run(&server, &["queue", "pending", "mailer"]).1, "acme\n");
    let (code, out, _) = run(
        &server,
        &["queue", "acme", "mailer", "nightly", "send", "--peek", "1"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "2 item(s) waiting in \"mailer\"/\"nightly\"/\"send\" of tenant \"acme\"\n       1  {\"to\":\"ada\"}\n"
    );
    let (_, out, _) = run(&server, &["--json", "queue", "acme", "mailer", "nightly", "send"]);
    assert_eq!(out, "{\"len\":2}\n");
}

#[test]
fn config_is_versioned_between_invocations() {
    let server = RedisServer::start();
    assert_eq!(
        run(
            &server,
            &["config", "set", "api", r#"{"rate":1}"#, "--history", "2"]
        ),
        (0, "version 1\n".into(), String::new())
    );
    assert_eq!(
        run(&server, &["config", "set", "api", r#"{"rate":2}"#]).1,
        "version 2\n"
    );
    assert_eq!(
        run(&server, &["config", "get", "api"]).1,
        "version 2  {\"rate\":2}\n"
    );
    assert_eq!(
        run(&server, &["config", "get", "api", "--version", "1"]).1,
        "version 1  {\"rate\":1}\n"
    );
    assert_eq!(
        run(&server, &["config", "history", "api"]).1,
        "version 2  {\"rate\":2}\nversion 1  {\"rate\":1}\n"
    );
    assert_eq!(
        run(&server, &["--json", "config", "get", "api"]).1,
        "{\"name\":\"api\",\"version\":2,\"value\":{\"rate\":2}}\n"
    );
    let (code, _, err) = run(&server, &["config", "set", "api", "3", "--if-version", "1"]);
    assert_eq!(
        (code, err.as_str()),
        (
            3,
            "error: config \"api\" is at version 2, not 1; nothing written\n"
        )
    );
    assert_eq!(run(&server, &["config", "get", "nothing"]).0, 1);
    assert_eq!(run(&server, &["config", "set", "api", "{bad"]).0, 2);
    assert_eq!(
        run(&server, &["config", "watch", "api", "--count", "1"]),
        (0, "version 2  {\"rate\":2}\n".into(), String::new())
    );
}

/// Runs `args` in a thread while `poke` keeps changing the store, until the
/// command (which stops after `--count` lines) returns.
fn run_while_poking(
    server: &RedisServer,
    args: &'static [&'static str],
    poke: &[&str],
) -> (i32, String, String) {
    let url = server.url();
    let watcher = std::thread::spawn(move || {
        let mut argv = vec!["statehouse", "--url", url.as_str(), "--prefix", "cli:"];
        argv.extend_from_slice(args);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = statehouse_cli::main_with(argv.iter().map(Into::into), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).expect("utf-8"),
            String::from_utf8(err).expect("utf-8"),
        )
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !watcher.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch never saw a change"
        );
        assert_eq!(run(server, poke).0, 0);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    watcher.join().expect("the watch thread")
}

#[test]
fn watch_commands_print_changes_as_they_come() {
    let server = RedisServer::start();
    run(&server, &["config", "set", "api", "0"]);
    let (code, out, err) = run_while_poking(
        &server,
        &["config", "watch", "api", "--count", "2"],
        &["config", "set", "api", "1"],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    // The current value first (the pokes may have begun), then a later one.
    let versions: Vec<u64> = out
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("version ").expect("a version line");
            rest.split(' ')
                .next()
                .expect("a number")
                .parse()
                .expect("a number")
        })
        .collect();
    assert_eq!(versions.len(), 2, "{out}");
    assert!(versions[1] > versions[0], "{out}");
    assert!(
        out.lines().nth(1).is_some_and(|line| line.ends_with("  1")),
        "{out}"
    );

    let (code, out, _) = run_while_poking(
        &server,
        &["watch", "config:*", "--count", "2"],
        &["config", "set", "api", "2"],
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "resync  \"subscribed\"");
    assert!(lines[1].starts_with("set  \"config:api\"  version "), "{out}");
}

/// Errors about what is stored (another Redis type, a value that is not
/// JSON, a status change the lifecycle forbids) name the key, task,
/// subject, tenant, queue or config entry they are about.
#[test]
fn errors_about_stored_data_name_what_they_are_about() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    for (command, key, value) in [
        ("RPUSH", "cli:list", "x"),
        ("SET", "cli:config:api", "{not json"),
        ("HSET", "cli:s:sensor", "pcount"),
        ("SET", "cli:t:{acme}:user:u1", "a string"),
        ("SET", "cli:t:{acme}:triggers:due", "a string"),
        ("SET", "cli:t:{acme}:queue:mailer:nightly:send", "a string"),
    ] {
        let mut cmd = redis::cmd(command);
        cmd.arg(key);
        if command == "HSET" {
            cmd.arg(value).arg("{not json");
        } else {
            cmd.arg(value);
        }
        cmd.exec(&mut conn).expect("write");
    }
    assert_eq!(
        run(
            &server,
            &["tasks", "save", "job-1", "--service", "s", "--user", "u"]
        )
        .0,
        0
    );
    assert_eq!(run(&server, &["tasks", "set-status", "job-1", "completed"]).0, 0);

    let cases: &[(&[&str], i32, &[&str])] = &[
        (&["doc", "get", "list"], 3, &["\"list\""]),
        (&["doc", "ttl", "list"], 0, &[]),
        (&["config", "get", "api"], 3, &["api"]),
        (&["config", "set", "api", "1"], 3, &["api"]),
        (&["tenant", "acme", "users", "get", "u1"], 3, &["acme", "u1"]),
        (&["triggers", "acme"], 3, &["acme"]),
        (
            &["queue", "acme", "mailer", "nightly", "send"],
            3,
            &["acme", "mailer"],
        ),
        (
            &["tasks", "set-status", "job-1", "running"],
            2,
            &["task \"job-1\"", "cannot move the task from completed to running"],
        ),
    ];
    for (args, expected, named) in cases {
        let (code, _, err) = run(&server, args);
        assert_eq!(code, *expected, "statehouse {args:?}: {err}");
        for name in *named {
            assert!(
                err.contains(name),
                "statehouse {args:?} should name {name}: {err}"
            );
        }
    }

    // A property that is not JSON is shown as unreadable (with its error,
    // never its bytes), not left out.
    let (code, out, err) = run(&server, &["subject", "show", "sensor"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(
        out.contains("default   count                    (unreadable: ") && !out.contains("not json"),
        "{out}"
    );
    let (_, out, _) = run(&server, &["--json", "subject", "show", "sensor"]);
    let shown: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(shown["errors"][0]["property"], "count", "{shown}");
    assert_eq!(shown["errors"][0]["kind"], "default", "{shown}");
}
