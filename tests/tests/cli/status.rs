//! `statehouse status` against real servers: a primary with its replica, the replica itself, a
//! password-protected server, an endpoint that does not answer, a Sentinel service (its primary,
//! replicas and sentinels, one of them dead) and a cluster with a replica per primary.

use std::time::{Duration, Instant};

use statehouse_tests::harness::{RedisCluster, RedisServer, SentinelSet};

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

/// Asserts that no output shows any of `secrets`.
fn shows_none(secrets: &[&str], outputs: &[&str]) {
    for secret in secrets {
        for output in outputs {
            assert!(!output.contains(secret), "{secret} shown in {output}");
        }
    }
}

#[test]
fn status_of_a_sentinel_service_names_its_primary_replicas_and_sentinels() {
    let set = SentinelSet::builder()
        .password("data-hunter2")
        .sentinel_password("sentinel-hunter2")
        .start();
    let secrets = ["data-hunter2", "sentinel-hunter2"];
    let primary = set.primary().addr();
    let mut replicas: Vec<String> = set.replicas().iter().map(|node| node.addr()).collect();
    replicas.sort();

    let (code, out, err) = status(&set.url(), true);
    assert_eq!(code, 0, "{out}{err}");
    shows_none(&secrets, &[&out, &err]);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(json["topology"], "sentinel", "{json}");
    assert_eq!(json["sentinel"]["service"], set.service(), "{json}");
    assert_eq!(json["sentinel"]["primary"], primary.as_str(), "{json}");
    assert_eq!(
        json["sentinel"]["sentinels"].as_array().unwrap().len(),
        3,
        "{json}"
    );
    let write = &json["endpoints"][0];
    assert_eq!(write["endpoint"], "write", "{json}");
    assert_eq!(write["address"], primary.as_str(), "{json}");
    assert_eq!(write["role"], "primary", "{json}");
    // The pool holds the connection that probed the primary when statehouse connected, idle.
    assert_eq!(write["pool"]["size"], 32, "{json}");
    assert_eq!(write["pool"]["in_use"], 0, "{json}");
    assert!(write["pool"]["open"].as_u64().unwrap() >= 1, "{json}");
    let nodes = json["nodes"].as_array().unwrap();
    let mut seen: Vec<String> = nodes
        .iter()
        .filter(|node| node["endpoint"] == "replica")
        .map(|node| {
            assert_eq!(node["role"], "replica", "{node}");
            assert_eq!(node["primary"], primary.as_str(), "{node}");
            assert!(node["lag_bytes"].as_u64().is_some(), "{node}");
            node["address"].as_str().unwrap().to_owned()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, replicas, "{json}");
    let sentinels: Vec<&serde_json::Value> = nodes
        .iter()
        .filter(|node| node["endpoint"] == "sentinel")
        .collect();
    assert_eq!(sentinels.len(), 3, "{json}");
    assert!(sentinels.iter().all(|node| node["role"] == "sentinel"), "{json}");

    let (code, out, err) = status(&set.url(), false);
    assert_eq!(code, 0, "{out}{err}");
    shows_none(&secrets, &[&out, &err]);
    assert!(out.contains("topology: sentinel"), "{out}");
    assert!(
        out.contains(&format!("service {}: primary {primary}", set.service())),
        "{out}"
    );
    assert!(
        out.contains(&format!("replica {}: replica of {primary}", replicas[0])),
        "{out}"
    );

    // A dead sentinel: statehouse connects through the others; the status shows it unreachable.
    let dead = &set.sentinels()[2];
    set.kill(dead);
    let (code, out, err) = status(&set.url(), false);
    assert_eq!(code, 3, "{out}{err}");
    shows_none(&secrets, &[&out, &err]);
    assert!(
        out.contains(&format!("sentinel {}: UNREACHABLE", dead.addr())),
        "{out}"
    );
    assert!(
        err.contains(&format!("cannot reach the sentinel {}", dead.addr())),
        "{err}"
    );
}

#[test]
fn status_of_a_cluster_shows_every_slot_covered_every_primary_and_replica() {
    let cluster = RedisCluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .password("cluster-hunter2")
        .start();
    // The nodes learn the replicas by gossip, seconds after the slots (the harness is ready once
    // the slots agree): ask until `CLUSTER SLOTS` names a replica per range.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, out, err, json) = loop {
        let (code, out, err) = status(&cluster.url(), true);
        let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let replicated = json["cluster"]["ranges"].as_array().is_some_and(|ranges| {
            ranges.iter().all(|range| {
                range["replicas"]
                    .as_array()
                    .is_some_and(|replicas| !replicas.is_empty())
            })
        });
        if replicated || Instant::now() > deadline {
            break (code, out, err, json);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(code, 0, "{out}{err}");
    shows_none(&["cluster-hunter2"], &[&out, &err]);
    assert_eq!(json["topology"], "cluster", "{json}");
    assert_eq!(json["cluster"]["covered"], 16384, "{json}");
    assert_eq!(json["cluster"]["complete"], true, "{json}");
    let ranges = json["cluster"]["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 3, "{json}");
    assert!(
        ranges
            .iter()
            .all(|range| range["replicas"].as_array().unwrap().len() == 1),
        "{json}"
    );
    let endpoints = json["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 3, "{json}");
    for endpoint in endpoints {
        assert_eq!(endpoint["role"], "primary", "{endpoint}");
        assert_eq!(endpoint["pool"]["size"], 32, "{endpoint}");
        assert_eq!(endpoint["pool"]["in_use"], 0, "{endpoint}");
    }
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{json}");
    for node in nodes {
        assert_eq!(node["role"], "replica", "{node}");
        let primary = node["primary"].as_str().unwrap();
        assert!(
            endpoints.iter().any(|endpoint| endpoint["address"] == primary),
            "{node} replicates no primary of {json}"
        );
        assert!(node["lag_bytes"].as_u64().is_some(), "{node}");
    }

    let (code, out, err) = status(&cluster.url(), false);
    assert_eq!(code, 0, "{out}{err}");
    shows_none(&["cluster-hunter2"], &[&out, &err]);
    assert!(
        out.contains("slots: 16384 of 16384 covered, map changed 0 times"),
        "{out}"
    );
}
