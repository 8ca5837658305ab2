//! Each family's subcommands between invocations: tasks, subjects, models, tenants, triggers and queues, config.

use statehouse_tests::harness::RedisServer;

use super::{run, sorted_json, sorted_lines};

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
            "model \"Order:7\" (json)\n  customer  \"Zoë\"\n  id        \"7\"\n  lines     [1,2]\n".into(),
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
    // As pydantic-state writes a model: a hash, a field per attribute.
    redis::cmd("HSET")
        .arg("cli:Cart:ada")
        .arg("id_")
        .arg("ada")
        .arg("total")
        .arg("12.5")
        .arg("note")
        .arg("two\nlines")
        .exec(&mut conn)
        .expect("HSET");
    assert_eq!(
        run(&server, &["model", "show", "Cart", "ada"]),
        (
            0,
            "model \"Cart:ada\" (hash)\n  id_    ada\n  note   \"two\\nlines\"\n  total  12.5\n".into(),
            String::new()
        )
    );
    assert_eq!(
        run(&server, &["--json", "model", "show", "Cart", "ada"]).1,
        "{\"id_\":\"ada\",\"note\":\"two\\nlines\",\"total\":\"12.5\"}\n"
    );
    assert_eq!(
        run(&server, &["model", "show", "Order", "8"]),
        (
            1,
            String::new(),
            "error: model Order \"8\" does not exist (nothing under \"Order:8\")\n".into()
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
    redis::cmd("RPUSH")
        .arg("cli:Order:10")
        .arg("x")
        .exec(&mut conn)
        .expect("RPUSH");
    let (code, _, err) = run(&server, &["model", "show", "Order", "10"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("\"Order:10\""), "{err}");
}

#[test]
fn model_set_writes_one_field_in_the_layout_the_key_holds() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    redis::cmd("HSET")
        .arg("cli:Cart:ada")
        .arg("id_")
        .arg("ada")
        .arg("total")
        .arg("1")
        .exec(&mut conn)
        .expect("HSET");
    assert_eq!(
        run(&server, &["model", "set", "Cart", "ada", "total", "12.5"]),
        (
            0,
            "model \"Cart:ada\" (hash): field \"total\" written\n".into(),
            String::new()
        )
    );
    let total: String = redis::cmd("HGET")
        .arg("cli:Cart:ada")
        .arg("total")
        .query(&mut conn)
        .expect("HGET");
    assert_eq!(total, "12.5");
    redis::cmd("SET")
        .arg("cli:Order:7")
        .arg(r#"{"id": "7", "lines": []}"#)
        .exec(&mut conn)
        .expect("SET");
    assert_eq!(
        run(
            &server,
            &["--json", "model", "set", "Order", "7", "lines", "[1, 2]"]
        )
        .1,
        "{\"field\":\"lines\",\"key\":\"Order:7\",\"layout\":\"json\"}\n"
    );
    run(&server, &["model", "set", "Order", "7", "note", "not json"]);
    let document: String = redis::cmd("GET")
        .arg("cli:Order:7")
        .query(&mut conn)
        .expect("GET");
    assert_eq!(document, r#"{"id":"7","lines":[1,2],"note":"not json"}"#);
    // A model that does not exist becomes a hash of that field.
    assert_eq!(run(&server, &["model", "set", "Cart", "bo", "total", "3"]).0, 0);
    let kind: String = redis::cmd("TYPE")
        .arg("cli:Cart:bo")
        .query(&mut conn)
        .expect("TYPE");
    assert_eq!(kind, "hash");
    let (code, _, err) = run(&server, &["model", "set", "Cart", "bo", "", "3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"Cart:bo\""), "{err}");
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
    assert_eq!(sorted_lines(&ok(&["tenant", "acme", "users"])), ["u2", "u:1"]);
    assert_eq!(
        sorted_json(&ok(&["--json", "tenant", "acme", "users"])),
        ["u2", "u:1"]
    );
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
fn the_due_index_across_tenants_is_shown_earliest_first() {
    let server = RedisServer::start();
    assert_eq!(
        run(&server, &["triggers", "due"]),
        (0, "no tenant has pending triggers\n".to_owned(), String::new())
    );
    for (tenant, delay) in [("globex", "2h"), ("acme", "1h"), ("initech", "0"), ("acme", "3h")] {
        assert_eq!(
            run(&server, &["triggers", "set", tenant, "remind", "u", delay]).0,
            0
        );
    }
    let (code, out, err) = run(&server, &["triggers", "due"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "a header and one line per tenant:\n{out}");
    assert!(lines[0].starts_with("DUE AT (UTC)"), "{out}");
    // Each tenant once, at its earliest trigger ("acme" at 1 h, not 3 h).
    for (line, (when, tenant)) in lines[1..].iter().zip([
        ("ago", "\"initech\""),
        ("in 59 min", "\"acme\""),
        ("in 1 h 59 min", "\"globex\""),
    ]) {
        // Due at once: some milliseconds ago by now (or "now" within one).
        let when_ok = line.contains(when) || (when == "ago" && line.contains(" now "));
        assert!(line.ends_with(tenant) && when_ok, "{line:?} in\n{out}");
        assert!(line.get(..24).is_some_and(|at| at.ends_with('Z')), "{line:?}");
    }

    let (code, out, _) = run(&server, &["--json", "triggers", "due", "--limit", "2"]);
    assert_eq!(code, 0);
    let due: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let tenants: Vec<&str> = due
        .as_array()
        .expect("an array")
        .iter()
        .map(|entry| entry["tenant"].as_str().expect("a tenant"))
        .collect();
    assert_eq!(tenants, ["initech", "acme"], "the first two, earliest first");
    let at = |n: usize| {
        chrono::DateTime::parse_from_rfc3339(due[n]["due_at"].as_str().expect("a time")).expect("RFC 3339")
    };
    let apart = at(1) - at(0);
    assert!(
        (3_599_000..=3_601_000).contains(&apart.num_milliseconds()),
        "acme an hour after initech: {apart}"
    );
    let (_, out, _) = run(&server, &["triggers", "due", "--limit", "1"]);
    assert!(out.ends_with("(the first 1; --limit N shows more)\n"), "{out}");
    assert_eq!(run(&server, &["triggers", "due", "--limit", "0"]).0, 2);
    // The per-tenant listing beside it: acme's one trigger (set twice: moved).
    let (_, out, _) = run(&server, &["triggers", "acme"]);
    assert_eq!(out.lines().count(), 2, "a header and one trigger:\n{out}");
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

#[test]
fn counters_and_arrays_change_on_the_server_in_one_step() {
    let server = RedisServer::start();
    let ok = |args: &[&str]| {
        let (code, out, err) = run(&server, args);
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}: {out}");
        out
    };
    assert_eq!(ok(&["doc", "incr", "hits"]), "1\n");
    assert_eq!(ok(&["doc", "incr", "hits", "41"]), "42\n");
    assert_eq!(ok(&["doc", "incr", "hits", "-2"]), "40\n");
    assert_eq!(
        ok(&["--json", "doc", "incr", "hits", "2"]),
        "{\"key\":\"hits\",\"value\":42}\n"
    );
    assert_eq!(ok(&["doc", "get", "hits"]), "42\n");
    ok(&["doc", "set", "name", r#""Ada""#]);
    let (code, _, err) = run(&server, &["doc", "incr", "name"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("integer"), "{err}");
    assert_eq!(ok(&["doc", "get", "name"]), "\"Ada\"\n", "nothing written");

    assert_eq!(ok(&["doc", "append", "inbox", r#""hi""#]), "1\n");
    assert_eq!(
        ok(&["--json", "doc", "append", "inbox", "2"]),
        "{\"key\":\"inbox\",\"length\":2}\n"
    );
    assert_eq!(ok(&["doc", "get", "inbox"]), "[\"hi\",2]\n");
    assert_eq!(run(&server, &["doc", "append", "inbox", "not json"]).0, 2);
    assert_eq!(run(&server, &["doc", "append", "hits", "1"]).0, 3);

    assert_eq!(ok(&["subject", "incr", "device:1", "count"]), "1\n");
    assert_eq!(ok(&["subject", "incr", "device:1", "count", "9"]), "10\n");
    assert_eq!(
        ok(&["subject", "incr", "device:1", "seen", "-1", "--extended"]),
        "-1\n"
    );
    let mut conn = server.connection();
    let count: String = redis::cmd("HGET")
        .arg("cli:s:device:1")
        .arg("pcount")
        .query(&mut conn)
        .expect("hget");
    assert_eq!(count, "10");
    ok(&["subject", "set", "device:1", "name", r#""d""#]);
    let (code, _, err) = run(&server, &["subject", "incr", "device:1", "name"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("pname"), "{err}");
}
