//! The `statehouse` binary, run as a user runs it (embedded memory store).

#![allow(clippy::expect_used, reason = "test code: a panic is a failed test")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn statehouse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statehouse"))
        .args(args)
        .env_remove("STATEHOUSE_URL")
        .env_remove("STATEHOUSE_PREFIX")
        .output()
        .expect("the statehouse binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn demo_runs_on_the_embedded_default() {
    let out = statehouse(&["demo"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("memory://"), "{stdout}");
    // Every family, in order.
    let mut rest = stdout.as_str();
    for expected in [
        r#""role":"admin""#,
        ":counter = 200 (expected 200)",
        "after 350 ms: exists = false",
        "a second handle adds cake; refresh -> {\"id\":\"7\",\"items\":[\"tea\",\"cake\"]",
        "-> running -> completed; log [\"started\",\"600 of 1200 rows\",\"done\"]",
        "back to running is refused",
        "subject \"sensor-1\" property \"readings\" = 200 (expected 200)",
        "the current shared state -> state \"draft\" = {\"text\":\"Hello\",\"words\":1}",
        "the listener got \"remind\" \"ada\"",
        "the tenant's triggers now: 0",
        "ack 3 -> 0 waiting; in queue order: true",
        "the watcher sees version 1",
        "the watcher sees version 2: {\"new_flow\":true}",
        "store alive = true",
    ] {
        let at = rest
            .find(expected)
            .unwrap_or_else(|| panic!("{expected:?} (in this order) in:\n{stdout}"));
        rest = &rest[at + expected.len()..];
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn errors_are_clear_and_exit_with_the_documented_code() {
    let missing = statehouse(&["doc", "get", "nothing"]);
    assert_eq!(code(&missing), Some(1));
    assert_eq!(text(&missing.stderr), "error: \"nothing\" does not exist\n");

    let bad_json = statehouse(&["doc", "set", "k", "{oops"]);
    assert_eq!(code(&bad_json), Some(2));
    assert!(
        text(&bad_json.stderr).contains("not valid JSON"),
        "{}",
        text(&bad_json.stderr)
    );

    let bad_ttl = statehouse(&["doc", "set", "k", "1", "--ttl", "-5"]);
    assert_eq!(code(&bad_ttl), Some(2));
    assert!(
        text(&bad_ttl.stderr).contains("a TTL must be at least 1 ms, got -5 s"),
        "{}",
        text(&bad_ttl.stderr)
    );

    let bad_url = statehouse(&[
        "--url",
        "redis://:hunter2@127.0.0.1:1",
        "--timeout-ms",
        "300",
        "ping",
    ]);
    assert_eq!(code(&bad_url), Some(3));
    let stderr = text(&bad_url.stderr);
    assert!(stderr.contains("cannot reach the store"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let usage = statehouse(&["doc", "frobnicate"]);
    assert_eq!(code(&usage), Some(2));
}

/// 0 done, 1 not found, 2 usage or input error, 3 failure: for every
/// command (those that need a key in the store are in tests/tests/cli.rs).
#[test]
fn every_command_follows_the_exit_code_convention() {
    let cases: &[(&[&str], i32)] = &[
        // 0: done.
        (&["ping"], 0),
        (&["layout"], 0),
        (&["doc", "list"], 0),
        (&["doc", "set", "k", "1"], 0),
        (&["doc", "set", "k", "not json", "--raw"], 0),
        (&["doc", "set", "k", "1", "--if-absent"], 0),
        (&["--help"], 0),
        (&["doc", "--help"], 0),
        (&["--version"], 0),
        // 1: a key the command needed does not exist.
        (&["doc", "get", "k"], 1),
        (&["doc", "get", "k", "--raw"], 1),
        (&["doc", "ttl", "k"], 1),
        (&["doc", "del", "k"], 1),
        // 2: usage or input error.
        (&[], 2),
        (&["doc"], 2),
        (&["doc", "get"], 2),
        (&["frobnicate"], 2),
        (&["--timeout-ms", "soon", "ping"], 2),
        (&["doc", "set", "k", "{oops"], 2),
        (&["doc", "set", "k", "1", "--ttl", "0"], 2),
        (&["doc", "set", "k", "1", "--ttl", "99999999999999"], 2),
        (&["doc", "set", "bad\nkey", "1"], 2),
        (&["doc", "set", "", "1"], 2),
        (&["doc", "get", "bad\nkey"], 2),
        (&["doc", "ttl", ""], 2),
        (&["doc", "del", "bad\u{7f}key"], 2),
        (&["doc", "list", ""], 2),
        (&["--url", "postgres://u:secret@db", "ping"], 2),
        (&["--url", "postgres://u:secret@db", "demo"], 2),
        (&["--url", "nonsense", "doc", "list"], 2),
        // 3: the store failed.
        (
            &["--url", "redis://127.0.0.1:1", "--timeout-ms", "300", "ping"],
            3,
        ),
        (
            &["--url", "redis://127.0.0.1:1", "--timeout-ms", "300", "demo"],
            3,
        ),
        (
            &[
                "--url",
                "redis://127.0.0.1:1",
                "--timeout-ms",
                "300",
                "doc",
                "get",
                "k",
            ],
            3,
        ),
    ];
    for (args, expected) in cases {
        let out = statehouse(args);
        assert_eq!(
            code(&out),
            Some(*expected),
            "statehouse {args:?}\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        if *expected != 0 {
            assert!(!text(&out.stderr).is_empty(), "statehouse {args:?}: says why");
        }
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let help = statehouse(&["--help"]);
    let stdout = text(&help.stdout);
    assert!(stdout.contains("Exit status:"), "{stdout}");
    for line in ["  0  ", "  1  ", "  2  ", "  3  "] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
}

#[test]
fn url_help_lists_every_form() {
    let stdout = text(&statehouse(&["--help"]).stdout);
    for form in [
        "memory://",
        "redis://",
        "rediss://",
        "unix://",
        "redis+cluster://",
        "redis+sentinel://",
        "SERVICE",
    ] {
        assert!(stdout.contains(form), "{form} in:\n{stdout}");
    }
}

#[test]
fn statehouse_log_shows_a_span_per_store_call() {
    let out = Command::new(env!("CARGO_BIN_EXE_statehouse"))
        .args(["doc", "set", "user:1", r#"{"secret":"do-not-log"}"#])
        .env_remove("STATEHOUSE_URL")
        .env("STATEHOUSE_LOG", "statehouse=debug")
        .output()
        .expect("the statehouse binary runs");
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains(r#"op="set" key=user:1 outcome="ok""#), "{stderr}");
    assert!(!stderr.contains("do-not-log"), "{stderr}");
    assert!(
        text(&statehouse(&["doc", "list"]).stderr).is_empty(),
        "silent by default"
    );
}

#[test]
fn layout_shows_the_key_scheme() {
    let out = statehouse(&["--prefix", "app:", "layout"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("prefix: \"app:\""), "{stdout}");
    assert!(stdout.contains("<prefix><key>"), "{stdout}");
}

/// What the CLI prints is for people: values as JSON, durations as people
/// read them, types in plain words; never Rust's `Debug`.
#[test]
fn output_is_for_people_never_rust_debug() {
    let demo = statehouse(&["demo"]);
    let stdout = text(&demo.stdout);
    assert!(demo.status.success(), "{stdout}\n{}", text(&demo.stderr));
    assert!(
        stdout.contains(r#"-> {"name":"Ada","role":"admin","joined":""#),
        "{stdout}"
    );
    assert!(stdout.contains("ttl -> expires in 0.3 s"), "{stdout}");
    assert!(
        stdout.contains("the stored value is not a valid User document"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a TTL must be at least 1 ms, got 0 ms"),
        "{stdout}"
    );
    for debug in ["Some(", "ExpiresIn(", "::", "0ns", "ms)"] {
        assert!(!stdout.contains(debug), "{debug:?} in:\n{stdout}");
    }
}

fn json(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(stdout)))
}

/// `--json` (before or after the subcommand): one JSON document on stdout,
/// wherever the command prints data; scripts never parse prose.
#[test]
fn json_output_for_scripts() {
    let ping = statehouse(&["--json", "ping"]);
    assert_eq!(code(&ping), Some(0));
    assert_eq!(
        text(&ping.stdout),
        "{\"url\":\"memory://\",\"prefix\":\"\",\"backend\":\"memory\"}\n"
    );
    assert_eq!(statehouse(&["ping", "--json"]).stdout, ping.stdout);

    let layout = statehouse(&["--prefix", "app:", "layout", "--json"]);
    let layout = json(&layout.stdout);
    assert_eq!(layout["prefix"], "app:");
    assert_eq!(layout["families"][0]["family"], "documents");
    assert_eq!(layout["families"][0]["redis_key"], "<prefix><key>");

    assert_eq!(text(&statehouse(&["doc", "list", "--json"]).stdout), "[]\n");
    assert_eq!(
        text(&statehouse(&["doc", "set", "k", "1", "--json"]).stdout),
        "{\"key\":\"k\",\"written\":true}\n"
    );

    // Not found: exit status 1; the result still says so where there is one.
    let get = statehouse(&["--json", "doc", "get", "k"]);
    assert_eq!((code(&get), text(&get.stdout)), (Some(1), String::new()));
    let ttl = statehouse(&["--json", "doc", "ttl", "k"]);
    assert_eq!(code(&ttl), Some(1));
    assert_eq!(
        text(&ttl.stdout),
        "{\"key\":\"k\",\"ttl_ms\":null,\"state\":\"missing\"}\n"
    );
    let del = statehouse(&["--json", "doc", "del", "k"]);
    assert_eq!(code(&del), Some(1));
    assert_eq!(text(&del.stdout), "{\"key\":\"k\",\"deleted\":false}\n");

    let demo = statehouse(&["demo", "--json"]);
    assert_eq!(code(&demo), Some(0), "{}", text(&demo.stderr));
    let summary = json(&demo.stdout);
    assert_eq!(summary["outcome"], "done", "{summary}");
    assert_eq!(summary["backend"], "memory", "{summary}");
    assert_eq!(summary["counter"], 200, "{summary}");
    assert_eq!(summary["user"]["role"], "admin", "{summary}");
    assert_eq!(summary["session_expired"], true, "{summary}");
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
    assert_eq!(summary["model"]["value"]["total_cents"], 750, "{summary}");
    assert_eq!(summary["task"]["statuses"][2], "completed", "{summary}");
    assert_eq!(summary["subject"]["value"], 200, "{summary}");
    assert_eq!(summary["tenant"]["shared_state"]["words"], 1, "{summary}");
    assert_eq!(summary["trigger"]["pending_after"], 0, "{summary}");
    assert_eq!(
        summary["queue"]["claimed"], summary["queue"]["enqueued"],
        "{summary}"
    );
    assert_eq!(summary["config"]["seen"], serde_json::json!([1, 2]), "{summary}");
    assert_eq!(summary["left_behind"], serde_json::json!([]), "{summary}");
}

/// Ctrl-C stops the demo, which removes its keys first and exits with 130.
/// Deterministic: a hidden option parks the demo after step 3 (its keys
/// written) until the signal comes.
#[test]
fn ctrl_c_stops_the_demo_after_cleaning_up() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statehouse"))
        .args(["demo", "--pause-after-step", "3"])
        .env_remove("STATEHOUSE_URL")
        .env_remove("STATEHOUSE_PREFIX")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the statehouse binary runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    while !seen.contains("waiting for Ctrl-C") {
        let mut line = String::new();
        if stdout.read_line(&mut line).expect("read stdout") == 0 {
            let _ = child.kill();
            panic!("the demo ended before pausing:\n{seen}");
        }
        seen.push_str(&line);
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not stop on SIGINT:\n{seen}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read stdout");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(130), "{seen}{rest}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(rest.contains("removed the 3 keys it created"), "{seen}{rest}");
}

/// Ctrl-C stops `config watch`, which closes its subscription and exits
/// with 130.
#[test]
fn ctrl_c_stops_config_watch() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statehouse"))
        .args(["config", "watch", "api"])
        .env_remove("STATEHOUSE_URL")
        .env_remove("STATEHOUSE_PREFIX")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the statehouse binary runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read stdout");
    assert_eq!(first, "absent\n");
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("config watch did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_eq!(stderr, "error: interrupted (Ctrl-C)\n");
}

/// A value that is not JSON: the error names the entry it was meant for.
#[test]
fn config_set_with_a_value_that_is_not_json_names_the_entry() {
    let out = statehouse(&["config", "set", "api", "[1,"]);
    assert_eq!(code(&out), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("config \"api\""), "{stderr}");
    assert!(stderr.contains("not valid JSON"), "{stderr}");
}

/// Every error says what it is about: the key, pattern, task, subject,
/// property, model, tenant, trigger, queue or config entry given on the
/// command line, quoted as the CLI quotes them (or, for an empty one, which
/// of them must not be empty). The errors about stored data (another Redis
/// type, a value that is not JSON, a forbidden status change) are checked
/// on Redis in tests/tests/cli.rs.
#[test]
fn every_error_names_what_it_is_about() {
    let cases: &[(&[&str], i32, &[&str])] = &[
        // Documents.
        (&["doc", "get", "k"], 1, &["\"k\""]),
        (&["doc", "get", ""], 2, &["key must not be empty"]),
        (&["doc", "get", "bad\nkey"], 2, &["\"bad\\nkey\""]),
        (&["doc", "set", "k", "{oops"], 2, &["\"k\"", "not valid JSON"]),
        (&["doc", "set", "k", "1", "--ttl", "0"], 2, &["\"k\"", "TTL"]),
        (&["doc", "set", "", "1"], 2, &["key must not be empty"]),
        (&["doc", "del", "k"], 1, &["\"k\""]),
        (&["doc", "ttl", "k"], 1, &["\"k\""]),
        (&["doc", "list", ""], 2, &["pattern must not be empty"]),
        (&["doc", "list", "bad\npattern"], 2, &["\"bad\\npattern\""]),
        // Tasks.
        (&["tasks", "show", "ghost"], 1, &["task \"ghost\""]),
        (
            &["tasks", "set-status", "ghost", "running"],
            1,
            &["task \"ghost\""],
        ),
        (&["tasks", "log", "ghost", "hi"], 1, &["task \"ghost\""]),
        (&["tasks", "del", "ghost"], 1, &["task \"ghost\""]),
        (&["tasks", "show", "bad\nid"], 2, &["\"bad\\nid\""]),
        (
            &["tasks", "save", "", "--service", "s", "--user", "u"],
            2,
            &["task id must not be empty"],
        ),
        (
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
            2,
            &["task \"t\""],
        ),
        (
            &["tasks", "save", "t", "--service", "bad\ns", "--user", "u"],
            2,
            &["\"bad\\ns\""],
        ),
        (
            &["tasks", "list", "--service", "s", "--after", "nonsense"],
            2,
            &["\"nonsense\""],
        ),
        (
            &["tasks", "list", "--user", ""],
            2,
            &["user id must not be empty"],
        ),
        // Subjects.
        (&["subject", "show", "s"], 1, &["subject \"s\""]),
        (
            &["subject", "set", "s", "p", "nope"],
            2,
            &["property \"p\"", "subject \"s\"", "not valid JSON"],
        ),
        (
            &["subject", "set", "s", "", "1"],
            2,
            &["property must not be empty"],
        ),
        (&["subject", "del", "s"], 1, &["subject \"s\""]),
        (
            &["subject", "del", "s", "p"],
            1,
            &["subject \"s\"", "property \"p\""],
        ),
        (&["subject", "list", ""], 2, &["pattern must not be empty"]),
        // Synced models.
        (
            &["model", "show", "Order", "7"],
            1,
            &["Order \"7\"", "\"Order:7\""],
        ),
        (&["model", "show", "Shop:Order", "7"], 2, &["\"Shop:Order:7\""]),
        // Tenants.
        (
            &["tenant", "acme", "users", "get", "u1"],
            1,
            &["user \"u1\"", "tenant \"acme\""],
        ),
        (
            &["tenant", "acme", "state", "u1", "draft"],
            1,
            &["state \"draft\"", "tenant \"acme\""],
        ),
        (
            &["tenant", "acme", "table", "orders", "42"],
            1,
            &["pk \"42\"", "tenant \"acme\""],
        ),
        (&["tenant", "", "users"], 2, &["tenant must not be empty"]),
        (
            &["tenant", "acme", "users", "get", "bad\nuser"],
            2,
            &["\"bad\\nuser\""],
        ),
        // Triggers and queues.
        (
            &["triggers", "set", "acme", "remind", "u1", "soon"],
            2,
            &["\"soon\""],
        ),
        (
            &["triggers", "set", "acme", "bad\naction", "u1", "1s"],
            2,
            &["\"bad\\naction\""],
        ),
        (
            &["triggers", "set", "", "remind", "u1", "1s"],
            2,
            &["tenant must not be empty"],
        ),
        (
            &["queue", "acme", "mailer", "bad\nbatch", "send"],
            2,
            &["\"bad\\nbatch\""],
        ),
        (&["queue", "pending", ""], 2, &["service must not be empty"]),
        // Config and the change feed.
        (&["config", "get", "api"], 1, &["config \"api\""]),
        (
            &["config", "get", "api", "--version", "3"],
            1,
            &["config \"api\"", "version 3"],
        ),
        (&["config", "history", "api"], 1, &["config \"api\""]),
        (
            &["config", "set", "api", "[1,"],
            2,
            &["config \"api\"", "not valid JSON"],
        ),
        (&["config", "set", "bad\nname", "1"], 2, &["\"bad\\nname\""]),
        (&["config", "get", ""], 2, &["config name must not be empty"]),
        (
            &["watch", "bad\npattern", "--count", "1"],
            2,
            &["\"bad\\npattern\""],
        ),
        // The store (a URL without a known scheme is not shown at all: it
        // could be a password).
        (
            &["--url", "postgres://db", "ping"],
            2,
            &["connect", "expected a URL starting with"],
        ),
    ];
    for (args, expected, named) in cases {
        let out = statehouse(args);
        let stderr = text(&out.stderr);
        assert_eq!(code(&out), Some(*expected), "statehouse {args:?}: {stderr}");
        for name in *named {
            assert!(
                stderr.contains(name),
                "statehouse {args:?} should name {name}: {stderr}"
            );
        }
    }
}
