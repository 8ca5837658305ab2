//! `statehouse status` against real servers: a primary with its replica, the replica itself, a
//! password-protected server, and an endpoint that does not answer.

use statehouse_tests::harness::RedisServer;

#[allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]
fn status(url: &str, json: bool) -> (i32, String, String) {
    let mut argv = vec!["statehouse", "--url", url, "--timeout-ms", "1000", "status"];
    if json {
        argv.push("--json");
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = statehouse_cli::main_with(argv.iter().map(Into::into), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn status_shows_a_primary_with_its_replica_and_the_replica_with_its_primary() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    let replica_addr = format!("127.0.0.1:{}", replica.port());
    let primary_addr = format!("127.0.0.1:{}", primary.port());
    // The replica's link is up when the harness returns; the primary counts it online once it
    // acknowledged the sync.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !primary.replication_info().contains("state=online") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            primary.replication_info()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let (code, out, err) = status(&primary.url(), false);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("topology: single"), "{out}");
    assert!(
        out.contains(&format!(
            "write endpoint {} ({primary_addr}): primary",
            primary.url()
        )),
        "{out}"
    );
    assert!(out.contains("1 replicas connected"), "{out}");
    assert!(out.contains(&format!("replica {replica_addr}: online")), "{out}");

    let (code, out, _) = status(&primary.url(), true);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(json["topology"], "single");
    assert_eq!(json["endpoints"][0]["role"], "primary");
    assert_eq!(
        json["endpoints"][0]["replicas"][0]["address"],
        replica_addr.as_str()
    );
    assert_eq!(json["endpoints"][0]["replicas"][0]["state"], "online");
    assert!(json["endpoints"][0]["offset"].as_u64().is_some(), "{json}");

    let (code, out, _) = status(&replica.url(), true);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(json["endpoints"][0]["role"], "replica");
    assert_eq!(json["endpoints"][0]["primary"], primary_addr.as_str());
    assert_eq!(json["endpoints"][0]["link"], "up");
}

#[test]
fn status_never_shows_the_password_and_reports_an_unreachable_endpoint() {
    let server = RedisServer::start();
    // The password set after the start (the harness waits for PING without one).
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("hunter2")
        .query(&mut server.connection())
        .unwrap();
    let url = format!("redis://:hunter2@127.0.0.1:{}", server.port());
    for json in [false, true] {
        let (code, out, err) = status(&url, json);
        assert_eq!(code, 0, "{out}{err}");
        assert!(!out.contains("hunter2") && !err.contains("hunter2"), "{out}{err}");
        assert!(out.contains("primary"), "{out}");
    }
    // The wrong password: refused, reported, never shown.
    let wrong = format!("redis://:wrong-secret@127.0.0.1:{}", server.port());
    let (code, out, err) = status(&wrong, false);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("UNREACHABLE"), "{out}");
    assert!(
        !out.contains("wrong-secret") && !err.contains("wrong-secret"),
        "{out}{err}"
    );

    // Nothing listens on port 1.
    let (code, out, err) = status("redis://:hunter2@127.0.0.1:1", true);
    assert_eq!(code, 3, "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        json["endpoints"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("connect"),
        "{json}"
    );
    assert!(
        err.contains("cannot reach the write endpoint redis://***@127.0.0.1:1"),
        "{err}"
    );
    assert!(!out.contains("hunter2") && !err.contains("hunter2"), "{out}{err}");
}

#[test]
fn status_of_the_memory_store_says_there_is_no_server() {
    let (code, out, _) = status("memory://", false);
    assert_eq!(code, 0);
    assert!(out.contains("topology: memory"), "{out}");
    assert!(out.contains("no server"), "{out}");
}
