//! The `statehouse` binary, run as a user runs it (embedded memory store).

#![allow(clippy::expect_used, reason = "test code: a panic is a failed test")]

use std::process::{Command, Output};

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
    assert!(stdout.contains(r#""role":"admin""#), "{stdout}");
    assert!(stdout.contains("demo:counter = 200 (expected 200)"), "{stdout}");
    assert!(stdout.contains("after 350 ms: exists = false"), "{stdout}");
    assert!(stdout.contains("store alive = true"), "{stdout}");
}

#[test]
fn errors_are_clear_and_exit_non_zero() {
    let missing = statehouse(&["doc", "get", "nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(text(&missing.stderr), "error: \"nothing\" does not exist\n");

    let bad_json = statehouse(&["doc", "set", "k", "{oops"]);
    assert_eq!(bad_json.status.code(), Some(1));
    assert!(
        text(&bad_json.stderr).contains("not valid JSON"),
        "{}",
        text(&bad_json.stderr)
    );

    let bad_ttl = statehouse(&["doc", "set", "k", "1", "--ttl", "-5"]);
    assert_eq!(bad_ttl.status.code(), Some(1));
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
    assert_eq!(bad_url.status.code(), Some(1));
    let stderr = text(&bad_url.stderr);
    assert!(stderr.contains("cannot reach the store"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let usage = statehouse(&["doc", "frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));
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
    assert!(stdout.contains("{prefix}{key}"), "{stdout}");
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
