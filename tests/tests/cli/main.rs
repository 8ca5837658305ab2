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

mod demo;
mod families;
mod listing;
mod status;
mod streams;

/// The lines of a listing, sorted: listings print in the store's order.
fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

/// The strings of a `--json` listing (one array), sorted.
fn sorted_json(text: &str) -> Vec<String> {
    let mut keys: Vec<String> = serde_json::from_str(text).expect("a JSON array of strings");
    keys.sort_unstable();
    keys
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
    assert_eq!(
        sorted_lines(&run(&server, &["doc", "list", "user:*"]).1),
        ["user:1", "user:2"]
    );
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
    let listed = run(&server, &["doc", "list", "user:*", "--json"]).1;
    assert!(listed.ends_with("]\n") && listed.lines().count() == 1, "{listed}");
    assert_eq!(sorted_json(&listed), ["user:1", "user:2"]);
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
