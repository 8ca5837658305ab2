//! Tests of the test harness itself: one server, a Redis Cluster, a Sentinel set.

#![allow(clippy::unwrap_used, reason = "helpers fail a test by panicking")]

use std::process::Command;
use std::time::{Duration, Instant};

use statehouse_tests::harness::{MigrationStep, Node, RedisCluster, RedisServer, Role, SentinelSet};

/// Whether `pid` is a live process (a zombie or a vanished pid is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

fn get(server: &RedisServer, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut server.connection())
        .unwrap()
}

fn set(server: &RedisServer, key: &str, value: &str) {
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(&mut server.connection())
        .unwrap();
}

#[test]
fn start_answers_ping_set_and_get() {
    let server = RedisServer::start();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_ne!(server.port(), 6379);
    assert!(alive(server.pid()));
    let mut connection = server.connection();
    let pong: String = redis::cmd("PING").query(&mut connection).unwrap();
    assert_eq!(pong, "PONG");
    set(&server, "greeting", "hello");
    assert_eq!(get(&server, "greeting").as_deref(), Some("hello"));
    assert!(format!("{server:?}").contains(&server.port().to_string()));
}

#[test]
fn two_servers_have_different_ports_and_separate_data() {
    let first = RedisServer::start();
    let second = RedisServer::start();
    assert_ne!(first.port(), second.port());
    assert_ne!(first.pid(), second.pid());
    set(&first, "only-in-first", "1");
    assert_eq!(get(&first, "only-in-first").as_deref(), Some("1"));
    assert_eq!(get(&second, "only-in-first"), None);
}

#[test]
fn stop_makes_connecting_fail_and_is_idempotent() {
    let mut server = RedisServer::start();
    let pid = server.pid();
    server.stop();
    assert!(!alive(pid));
    let client = redis::Client::open(server.url()).unwrap();
    assert!(
        client
            .get_connection_with_timeout(Duration::from_secs(1))
            .is_err()
    );
    server.stop();
}

#[test]
fn restart_reuses_the_port_and_loses_the_data() {
    let mut server = RedisServer::start();
    let (port, old_pid) = (server.port(), server.pid());
    set(&server, "volatile", "1");
    server.restart();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), old_pid);
    assert!(!alive(old_pid));
    assert_eq!(
        get(&server, "volatile"),
        None,
        "nothing may be persisted across a restart"
    );
    // A stopped server restarts too.
    server.stop();
    server.restart();
    assert_eq!(server.port(), port);
    let pong: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn a_durable_server_keeps_acknowledged_writes_across_kill_and_restart() {
    let mut server = RedisServer::start_durable();
    let config = |name: &str| -> String {
        let pair: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query(&mut server.connection())
            .unwrap();
        pair[1].clone()
    };
    assert_eq!(config("appendonly"), "yes");
    assert_eq!(config("appendfsync"), "always");
    let (port, old_pid) = (server.port(), server.pid());
    // Acknowledged writes, then SIGKILL with no chance to flush anything.
    let mut connection = server.connection();
    for i in 0..100 {
        let () = redis::cmd("INCR").arg("counter").query(&mut connection).unwrap();
        set(&server, &format!("key{i}"), &i.to_string());
    }
    drop(connection);
    server.stop();
    assert!(!alive(old_pid));
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(get(&server, "counter").as_deref(), Some("100"));
    assert_eq!(get(&server, "key99").as_deref(), Some("99"));
    // And again: a restart of a running server keeps them too.
    set(&server, "after", "1");
    server.restart();
    assert_eq!(get(&server, "counter").as_deref(), Some("100"));
    assert_eq!(get(&server, "after").as_deref(), Some("1"));
}

#[test]
fn pause_black_holes_the_server_and_resume_brings_it_back() {
    let server = RedisServer::start();
    set(&server, "survives-pause", "yes");
    let mut connection = server.connection();
    connection
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    server.pause();
    let started = Instant::now();
    let err = redis::cmd("PING").query::<String>(&mut connection).unwrap_err();
    let waited = started.elapsed();
    assert!(err.is_timeout(), "expected a timeout, got {err:?}");
    assert!(
        waited >= Duration::from_millis(250),
        "timed out too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "timed out too late: {waited:?}");
    server.resume();
    assert_eq!(get(&server, "survives-pause").as_deref(), Some("yes"));
}

#[test]
fn log_is_written_and_mentions_readiness() {
    let server = RedisServer::start();
    let log = server.log();
    assert!(log.contains("Ready to accept connections"), "log:\n{log}");
}

#[test]
fn extra_args_reach_the_server() {
    let server = RedisServer::start_with_args(&["--notify-keyspace-events", "Ex"]);
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(config[0], "notify-keyspace-events");
    let flags = &config[1];
    assert!(flags.contains('E') && flags.contains('x'), "flags: {flags:?}");
}

#[test]
fn a_replica_syncs_from_its_primary_refuses_writes_and_follows_new_ones() {
    let primary = RedisServer::start();
    set(&primary, "before", "1");
    let replica = RedisServer::start_replica_of(&primary);
    assert_ne!(replica.port(), primary.port());
    let info = replica.replication_info();
    assert!(info.contains("role:slave"), "{info}");
    assert!(info.contains("master_link_status:up"), "{info}");
    assert!(
        info.contains(&format!("master_port:{}", primary.port())),
        "{info}"
    );
    assert_eq!(
        get(&replica, "before").as_deref(),
        Some("1"),
        "synced when start returns"
    );

    let err = redis::cmd("SET")
        .arg("on-replica")
        .arg("1")
        .query::<()>(&mut replica.connection())
        .unwrap_err();
    assert_eq!(err.code(), Some("READONLY"), "{err:?}");

    // WAIT waits for the writes of the connection it runs on: a fresh
    // connection has written nothing and would return at once. So the
    // write and the WAIT share one connection.
    let mut writer = primary.connection();
    let () = redis::cmd("SET")
        .arg("after")
        .arg("2")
        .query(&mut writer)
        .unwrap();
    let acked: u64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut writer).unwrap();
    assert_eq!(acked, 1, "the replica acknowledges the write");
    assert_eq!(get(&replica, "after").as_deref(), Some("2"));
    let primary_info = primary.replication_info();
    assert!(primary_info.contains("connected_slaves:1"), "{primary_info}");
}

#[test]
fn client_list_shows_connections() {
    let server = RedisServer::start();
    let list = server.client_list();
    assert!(list.contains("cmd=client"), "CLIENT LIST:\n{list}");
}

#[test]
fn drop_kills_the_server() {
    let server = RedisServer::start();
    let pid = server.pid();
    let url = server.url();
    drop(server);
    assert!(!alive(pid));
    let client = redis::Client::open(url).unwrap();
    assert!(
        client
            .get_connection_with_timeout(Duration::from_secs(1))
            .is_err()
    );
}

#[test]
fn missing_binary_panics_with_instructions() {
    let result = std::panic::catch_unwind(|| RedisServer::start_with_binary("/nonexistent", &[]));
    let payload = result.expect_err("starting /nonexistent must panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap();
    assert!(message.contains("STATEHOUSE_REDIS_SERVER"), "{message}");
    assert!(message.contains("/nonexistent"), "{message}");
    assert!(message.contains("apt-get install redis-server"), "{message}");
    assert!(message.contains("scripts/test.sh"), "{message}");
}

#[test]
fn a_server_that_exits_during_startup_panics_with_its_output() {
    let result = std::panic::catch_unwind(|| RedisServer::start_with_args(&["--no-such-directive", "1"]));
    let payload = result.expect_err("a bad directive must make start panic");
    let message = payload.downcast_ref::<String>().unwrap();
    assert!(message.contains("exited during startup"), "{message}");
    assert!(message.contains("Bad directive"), "{message}");
}

#[test]
fn restart_waits_for_its_port_to_be_released() {
    let mut server = RedisServer::start();
    let port = server.port();
    server.stop();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(squatter);
    });
    server.restart();
    release.join().unwrap();
    assert_eq!(server.port(), port);
    let pong: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn shared_is_one_server() {
    let first = RedisServer::shared();
    let second = RedisServer::shared();
    assert!(std::ptr::eq(first, second));
    let pong: String = redis::cmd("PING").query(&mut first.connection()).unwrap();
    assert_eq!(pong, "PONG");
}

/// Set in the child process of [`watchdog_kills_a_leaked_server_when_the_process_exits`].
const LEAK_CHILD_ENV: &str = "STATEHOUSE_HARNESS_LEAK_CHILD";

/// Runs only as a child process: starts the shared server (a `static`, never dropped), reports its pid
/// and port, and lets the process exit.
#[test]
#[ignore = "helper, run as a child process by watchdog_kills_a_leaked_server_when_the_process_exits"]
fn leak_shared_server_and_exit() {
    if std::env::var_os(LEAK_CHILD_ENV).is_none() {
        return;
    }
    let server = RedisServer::shared();
    println!("LEAKED pid={} port={}", server.pid(), server.port());
}

#[test]
fn watchdog_kills_a_leaked_server_when_the_process_exits() {
    let line = run_leaking_child("leak_shared_server_and_exit", LEAK_CHILD_ENV);
    let mut fields = line.split(' ').map(|field| field.split_once('=').unwrap().1);
    let pid: u32 = fields.next().unwrap().parse().unwrap();
    let port: u16 = fields.next().unwrap().parse().unwrap();
    wait_until_dead(pid, Instant::now() + Duration::from_secs(5));
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    assert!(
        client
            .get_connection_with_timeout(Duration::from_secs(1))
            .is_err()
    );
}

/// Runs the ignored helper test `test` of this binary as a child process with `env` set, checks it
/// succeeded, and returns what it printed after `LEAKED `.
fn run_leaking_child(test: &str, env: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.split_once("LEAKED "))
        .unwrap()
        .1
        .to_owned()
}

/// Waits until `pid` is gone, failing at `deadline`.
fn wait_until_dead(pid: u32, deadline: Instant) {
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "redis-server pid {pid} outlived its test process"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Redis Cluster
// ---------------------------------------------------------------------------------------------

/// The error a plain (non-cluster) connection to `node` gets for `GET key`, if any.
fn get_on(node: &Node, key: &str) -> Result<Option<String>, redis::RedisError> {
    redis::cmd("GET").arg(key).query(&mut node.connection())
}

/// The port of a `MOVED`/`ASK` redirect.
fn redirect_port(err: &redis::RedisError) -> u16 {
    let (addr, _) = err
        .redirect_node()
        .unwrap_or_else(|| panic!("not a redirect: {err:?}"));
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// Slot ranges and their primary's port from `CLUSTER SLOTS` as `node` sees it.
fn cluster_slots(node: &Node) -> Vec<(u16, u16, u16)> {
    let reply: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut node.connection())
        .unwrap();
    reply
        .into_iter()
        .map(|range| {
            let redis::Value::Array(items) = range else {
                panic!("CLUSTER SLOTS entry {range:?}")
            };
            let first: u16 = redis::from_redis_value_ref(&items[0]).unwrap();
            let last: u16 = redis::from_redis_value_ref(&items[1]).unwrap();
            let (_, port): (String, u16) = match &items[2] {
                redis::Value::Array(primary) => (
                    redis::from_redis_value_ref(&primary[0]).unwrap(),
                    redis::from_redis_value_ref(&primary[1]).unwrap(),
                ),
                other => panic!("CLUSTER SLOTS primary {other:?}"),
            };
            (first, last, port)
        })
        .collect()
}

#[test]
fn a_cluster_of_three_primaries_covers_every_slot_and_keys_land_on_their_owner() {
    let started = Instant::now();
    let cluster = RedisCluster::start(3, 0);
    eprintln!("cluster of 3 primaries ready in {:?}", started.elapsed());

    assert_eq!(cluster.nodes().len(), 3);
    let ports: Vec<u16> = cluster.nodes().iter().map(|node| node.port()).collect();
    assert!(!ports.contains(&6379));
    assert_eq!(
        cluster.url(),
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
            ports[0], ports[1], ports[2]
        )
    );
    assert_eq!(
        cluster.seed_urls(),
        ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
    );
    for node in cluster.nodes() {
        assert_eq!(node.role(), Role::Primary);
        assert!(alive(node.pid()));
        assert_eq!(node.id().len(), 40, "{node:?}");
        assert!(node.log().contains("Cluster state changed: ok"), "{}", node.log());
    }
    assert_eq!(cluster.primaries().len(), 3);
    assert!(cluster.replicas().is_empty());

    // Every node sees all 16384 slots, split among the three primaries.
    for node in cluster.nodes() {
        let mut slots = cluster_slots(node);
        slots.sort_unstable();
        let covered: u32 = slots
            .iter()
            .map(|(first, last, _)| u32::from(last - first) + 1)
            .sum();
        assert_eq!(covered, 16_384, "{slots:?}");
        let owners: std::collections::BTreeSet<u16> = slots.iter().map(|(_, _, port)| *port).collect();
        assert_eq!(owners.len(), 3, "{slots:?}");
        for (first, last, port) in slots {
            assert_eq!(cluster.primary_for_slot(first).port(), port);
            assert_eq!(cluster.primary_for_slot(last).port(), port);
        }
    }

    // Redis' own CRC16 and hash tags.
    assert_eq!(cluster.slot_of("foo"), 12_182);
    assert_eq!(
        cluster.slot_of("{user1000}.following"),
        cluster.slot_of("{user1000}.followers")
    );

    // A key written on its owner is read there; every other node redirects to the owner.
    for i in 0..60 {
        let key = format!("harness-key-{i}");
        let owner = cluster.primary_for_key(&key);
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(i)
            .query(&mut owner.connection())
            .unwrap();
        assert_eq!(get_on(owner, &key).unwrap(), Some(i.to_string()));
        for other in cluster.nodes().iter().filter(|node| node.port() != owner.port()) {
            let err = get_on(other, &key).unwrap_err();
            assert_eq!(err.code(), Some("MOVED"), "{err:?}");
            assert_eq!(redirect_port(&err), owner.port());
        }
    }
    let counts = cluster.count_keys_per_primary();
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert_eq!(counts.values().sum::<u64>(), 60, "{counts:?}");
    assert!(counts.values().all(|count| *count > 0), "{counts:?}");

    let pids: Vec<u32> = cluster.nodes().iter().map(|node| node.pid()).collect();
    drop(cluster);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived the cluster");
    }
}

#[test]
fn a_cluster_with_replicas_links_one_replica_to_each_primary() {
    let started = Instant::now();
    let cluster = RedisCluster::start(3, 1);
    eprintln!(
        "cluster of 3 primaries + 3 replicas ready in {:?}",
        started.elapsed()
    );
    assert_eq!(cluster.nodes().len(), 6);
    let primaries = cluster.primaries();
    let replicas = cluster.replicas();
    assert_eq!(primaries.len(), 3);
    assert_eq!(replicas.len(), 3);
    let mut followed = std::collections::BTreeSet::new();
    for replica in &replicas {
        assert_eq!(replica.role(), Role::Replica);
        let info = replica.replication_info();
        assert!(info.contains("master_link_status:up"), "{info}");
        let port: u16 = info
            .lines()
            .find_map(|line| line.trim().strip_prefix("master_port:"))
            .unwrap()
            .parse()
            .unwrap();
        assert!(primaries.iter().any(|primary| primary.port() == port), "{info}");
        followed.insert(port);
    }
    assert_eq!(followed.len(), 3, "each primary has its own replica");

    // A write acknowledged by the replica (WAIT on the writing connection) is read there
    // (READONLY lets a cluster replica serve reads of its primary's slots).
    let key = "{replicated}.key";
    let owner = cluster.primary_for_key(key);
    let mut writer = owner.connection();
    let () = redis::cmd("SET").arg(key).arg("v").query(&mut writer).unwrap();
    let acked: u64 = redis::cmd("WAIT").arg(1).arg(5_000).query(&mut writer).unwrap();
    assert_eq!(acked, 1);
    let replica = replicas
        .iter()
        .find(|replica| {
            replica
                .replication_info()
                .contains(&format!("master_port:{}", owner.port()))
        })
        .unwrap();
    let mut reader = replica.connection();
    let () = redis::cmd("READONLY").query(&mut reader).unwrap();
    let value: Option<String> = redis::cmd("GET").arg(key).query(&mut reader).unwrap();
    assert_eq!(value.as_deref(), Some("v"));
    assert_eq!(cluster.count_keys_per_primary().values().sum::<u64>(), 1);
}

#[test]
fn migrating_a_slot_moves_its_keys_and_redirects_clients_at_every_step() {
    let cluster = RedisCluster::start(3, 0);
    let slot = cluster.slot_of("{migrated}");
    let from = cluster.primary_for_slot(slot);
    let to = cluster
        .primaries()
        .into_iter()
        .find(|node| node.port() != from.port())
        .unwrap();
    for i in 0..25 {
        let () = redis::cmd("SET")
            .arg(format!("{{migrated}}:{i}"))
            .arg(i)
            .query(&mut from.connection())
            .unwrap();
    }
    assert_eq!(cluster.count_keys_in_slot(slot), 25);

    let mut steps = Vec::new();
    let moved = cluster.migrate_slot_with(slot, from, to, |step| {
        match step {
            MigrationStep::Migrating => {
                // A key still on the source is served there; a missing one is sent to the target.
                assert_eq!(get_on(from, "{migrated}:0").unwrap().as_deref(), Some("0"));
                let err = get_on(from, "{migrated}:new").unwrap_err();
                assert_eq!(err.code(), Some("ASK"), "{err:?}");
                assert_eq!(redirect_port(&err), to.port());
            }
            MigrationStep::Moved { total: 10, .. } => {
                // Ten keys moved: the source sends those to the target with ASK and still
                // serves the other fifteen.
                let mut moved = Vec::new();
                for i in 0..25 {
                    let key = format!("{{migrated}}:{i}");
                    match get_on(from, &key) {
                        Ok(value) => assert_eq!(value, Some(i.to_string())),
                        Err(err) => {
                            assert_eq!(err.code(), Some("ASK"), "{err:?}");
                            assert_eq!(redirect_port(&err), to.port());
                            moved.push((key, i));
                        }
                    }
                }
                assert_eq!(moved.len(), 10, "{moved:?}");
                // The target serves a moved key only to a client that said ASKING.
                let (key, i) = &moved[0];
                let err = get_on(to, key).unwrap_err();
                assert_eq!(err.code(), Some("MOVED"), "{err:?}");
                assert_eq!(redirect_port(&err), from.port());
                let mut asking = to.connection();
                let () = redis::cmd("ASKING").query(&mut asking).unwrap();
                let value: Option<String> = redis::cmd("GET").arg(key).query(&mut asking).unwrap();
                assert_eq!(value, Some(i.to_string()));
            }
            MigrationStep::AssignedOnTarget => {
                assert_eq!(get_on(to, "{migrated}:0").unwrap().as_deref(), Some("0"));
            }
            MigrationStep::AssignedOnSource => {
                let err = get_on(from, "{migrated}:0").unwrap_err();
                assert_eq!(err.code(), Some("MOVED"), "{err:?}");
                assert_eq!(redirect_port(&err), to.port());
            }
            _ => {}
        }
        steps.push(step);
    });
    assert_eq!(moved, 25);
    assert_eq!(
        steps,
        [
            MigrationStep::Importing,
            MigrationStep::Migrating,
            MigrationStep::Moved { keys: 10, total: 10 },
            MigrationStep::Moved { keys: 10, total: 20 },
            MigrationStep::Moved { keys: 5, total: 25 },
            MigrationStep::AssignedOnTarget,
            MigrationStep::AssignedOnSource,
            MigrationStep::Done,
        ]
    );
    assert_eq!(cluster.primary_for_slot(slot).port(), to.port());
    assert_eq!(cluster.count_keys_in_slot(slot), 25);
    let on_source: u64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query(&mut from.connection())
        .unwrap();
    assert_eq!(on_source, 0);
    // Every node, the third one included, redirects to the new owner at once.
    for node in cluster.nodes().iter().filter(|node| node.port() != to.port()) {
        let err = get_on(node, "{migrated}:7").unwrap_err();
        assert_eq!(err.code(), Some("MOVED"), "{err:?}");
        assert_eq!(redirect_port(&err), to.port());
    }
    assert_eq!(get_on(to, "{migrated}:7").unwrap().as_deref(), Some("7"));
    cluster.wait_until_healthy(Duration::from_secs(10));
}

#[test]
fn a_killed_cluster_primary_is_replaced_by_its_replica_and_rejoins_as_a_replica() {
    let cluster = RedisCluster::start(3, 1);
    let key = "{failover}.key";
    let slot = cluster.slot_of(key);
    let old = cluster.primary_for_slot(slot);
    let replica = cluster
        .replicas()
        .into_iter()
        .find(|replica| {
            replica
                .replication_info()
                .contains(&format!("master_port:{}", old.port()))
        })
        .unwrap();
    let mut writer = old.connection();
    let () = redis::cmd("SET").arg(key).arg("kept").query(&mut writer).unwrap();
    let acked: u64 = redis::cmd("WAIT").arg(1).arg(5_000).query(&mut writer).unwrap();
    assert_eq!(acked, 1);
    drop(writer);

    let old_pid = old.pid();
    let killed = cluster.kill_primary(slot);
    assert_eq!(killed.port(), old.port());
    assert!(!killed.is_running() && !alive(old_pid));
    let started = Instant::now();
    let new = cluster.wait_for_new_primary(slot, old, cluster.failover_bound());
    eprintln!(
        "cluster replica promoted {:?} after the kill (node timeout {:?}, bound {:?})",
        started.elapsed(),
        cluster.node_timeout(),
        cluster.failover_bound()
    );
    assert_eq!(
        new.port(),
        replica.port(),
        "the killed primary's own replica takes over"
    );
    assert_eq!(new.role(), Role::Primary);
    assert_eq!(cluster.primary_for_slot(slot).port(), new.port());
    assert_eq!(get_on(new, key).unwrap().as_deref(), Some("kept"));
    assert_eq!(cluster.primaries().len(), 3);
    cluster.wait_until_healthy(Duration::from_secs(10));

    let started = Instant::now();
    cluster.restart_node(old);
    eprintln!("killed primary back as a replica in {:?}", started.elapsed());
    assert_eq!(old.role(), Role::Replica);
    assert!(
        old.replication_info()
            .contains(&format!("master_port:{}", new.port())),
        "{}",
        old.replication_info()
    );
    assert_eq!(cluster.primary_for_slot(slot).port(), new.port());
}

#[test]
fn a_cluster_with_a_password_refuses_strangers_and_carries_it_in_its_urls() {
    let cluster = RedisCluster::builder().password("cluster secret").start();
    let port = cluster.nodes()[0].port();
    assert!(
        cluster
            .url()
            .starts_with("redis+cluster://:cluster%20secret@127.0.0.1:")
    );
    assert_eq!(
        cluster.seed_urls()[0],
        format!("redis://:cluster%20secret@127.0.0.1:{port}")
    );
    assert!(!format!("{cluster:?}").contains("secret"), "{cluster:?}");
    let mut stranger = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let err = redis::cmd("PING").query::<String>(&mut stranger).unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err:?}");
    let mut member = redis::Client::open(cluster.seed_urls()[0].as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = redis::cmd("PING").query(&mut member).unwrap();
    assert_eq!(pong, "PONG");
    // Resharding authenticates its MIGRATE.
    let slot = cluster.slot_of("{secret}");
    let from = cluster.primary_for_slot(slot);
    let () = redis::cmd("SET")
        .arg("{secret}")
        .arg(1)
        .query(&mut from.connection())
        .unwrap();
    let to = cluster
        .primaries()
        .into_iter()
        .find(|node| node.port() != from.port())
        .unwrap();
    assert_eq!(cluster.migrate_slot(slot, from, to), 1);
    assert_eq!(get_on(to, "{secret}").unwrap().as_deref(), Some("1"));
}

#[test]
fn shared_cluster_is_one_cluster_with_keyspace_notifications() {
    let first = RedisCluster::shared();
    let second = RedisCluster::shared();
    assert!(std::ptr::eq(first, second));
    assert_eq!(first.primaries().len(), 3);
    for node in first.nodes() {
        let config: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query(&mut node.connection())
            .unwrap();
        assert!(config[1].contains('K'), "{config:?}");
    }
}

/// Set in the child process of [`watchdogs_kill_a_leaked_shared_cluster_when_the_process_exits`].
const LEAK_CLUSTER_CHILD_ENV: &str = "STATEHOUSE_HARNESS_LEAK_CLUSTER_CHILD";

/// Runs only as a child process: starts the shared cluster (a `static`, never dropped), reports its
/// pids, and lets the process exit.
#[test]
#[ignore = "helper, run as a child process by watchdogs_kill_a_leaked_shared_cluster_when_the_process_exits"]
fn leak_shared_cluster_and_exit() {
    if std::env::var_os(LEAK_CLUSTER_CHILD_ENV).is_none() {
        return;
    }
    let pids: Vec<String> = RedisCluster::shared()
        .nodes()
        .iter()
        .map(|node| node.pid().to_string())
        .collect();
    println!("LEAKED pids={}", pids.join(","));
}

#[test]
fn watchdogs_kill_a_leaked_shared_cluster_when_the_process_exits() {
    let line = run_leaking_child("leak_shared_cluster_and_exit", LEAK_CLUSTER_CHILD_ENV);
    let pids: Vec<u32> = line
        .strip_prefix("pids=")
        .unwrap()
        .split(',')
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    for pid in pids {
        wait_until_dead(pid, deadline);
    }
}

// ---------------------------------------------------------------------------------------------
// Sentinel
// ---------------------------------------------------------------------------------------------

/// What `sentinel` reports for the service (`SENTINEL get-master-addr-by-name`).
fn sentinel_primary_port(set: &SentinelSet, sentinel: &Node) -> u16 {
    let (_, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(set.service())
        .query(&mut sentinel.connection())
        .unwrap();
    port
}

/// Writes `key` on the primary and waits until both replicas acknowledged it.
fn write_replicated(set: &SentinelSet, key: &str, value: &str) {
    let mut writer = set.primary().connection();
    let () = redis::cmd("SET").arg(key).arg(value).query(&mut writer).unwrap();
    let acked: u64 = redis::cmd("WAIT").arg(2).arg(5_000).query(&mut writer).unwrap();
    assert_eq!(acked, 2);
}

#[test]
fn a_sentinel_set_resolves_its_primary_and_knows_replicas_and_sentinels() {
    let started = Instant::now();
    let set = SentinelSet::start();
    eprintln!(
        "sentinel set (1 primary, 2 replicas, 3 sentinels) ready in {:?}",
        started.elapsed()
    );
    let sentinels: Vec<u16> = set.sentinels().iter().map(|node| node.port()).collect();
    assert_eq!(sentinels.len(), 3);
    assert_eq!(
        set.url(),
        format!(
            "redis+sentinel://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/statehouse",
            sentinels[0], sentinels[1], sentinels[2]
        )
    );
    assert_eq!(set.url_for("other"), set.url().replace("/statehouse", "/other"));
    assert_eq!(
        set.sentinel_urls()[1],
        format!("redis://127.0.0.1:{}", sentinels[1])
    );

    let primary = set.primary();
    assert_eq!(primary.port(), set.data_nodes()[0].port());
    assert_eq!(primary.role(), Role::Primary);
    let replicas = set.replicas();
    assert_eq!(replicas.len(), 2);
    for replica in &replicas {
        assert_eq!(replica.role(), Role::Replica);
        let info = replica.replication_info();
        assert!(
            info.contains(&format!("master_port:{}", primary.port())),
            "{info}"
        );
    }
    for sentinel in set.sentinels() {
        assert_eq!(sentinel.role(), Role::Sentinel);
        assert_eq!(sentinel_primary_port(&set, sentinel), primary.port());
        let mut connection = sentinel.connection();
        let listed: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg("statehouse")
            .query(&mut connection)
            .unwrap();
        assert_eq!(listed.len(), 2);
        let listed: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg("SENTINELS")
            .arg("statehouse")
            .query(&mut connection)
            .unwrap();
        assert_eq!(listed.len(), 2);
    }
    write_replicated(&set, "sentinel-key", "v");
    for replica in replicas {
        assert_eq!(get_on(replica, "sentinel-key").unwrap().as_deref(), Some("v"));
    }
}

#[test]
fn a_sentinel_failover_elects_a_new_primary_and_demotes_the_old_one() {
    let set = SentinelSet::start();
    write_replicated(&set, "before-failover", "1");
    let started = Instant::now();
    let old = set.failover();
    let new = set.wait_for_new_primary(old, set.failover_bound());
    eprintln!("SENTINEL FAILOVER done in {:?}", started.elapsed());
    assert_ne!(new.port(), old.port());
    assert_eq!(new.role(), Role::Primary);
    for sentinel in set.sentinels() {
        assert_eq!(sentinel_primary_port(&set, sentinel), new.port());
    }
    assert_eq!(set.primary().port(), new.port());
    assert_eq!(get_on(new, "before-failover").unwrap().as_deref(), Some("1"));

    // The old primary, still running, is turned into a replica of the new one.
    set.wait_until_settled(set.failover_bound());
    assert_eq!(old.role(), Role::Replica);
    assert!(
        old.replication_info()
            .contains(&format!("master_port:{}", new.port()))
    );
    let err = redis::cmd("SET")
        .arg("on-old")
        .arg("1")
        .query::<()>(&mut old.connection())
        .unwrap_err();
    assert_eq!(err.code(), Some("READONLY"), "{err:?}");
    write_replicated(&set, "after-failover", "2");
    assert_eq!(get_on(old, "after-failover").unwrap().as_deref(), Some("2"));
}

#[test]
fn a_killed_sentinel_primary_is_replaced_and_comes_back_as_a_replica() {
    let set = SentinelSet::start();
    write_replicated(&set, "before-kill", "1");
    let old = set.kill_primary();
    assert!(!old.is_running());
    let started = Instant::now();
    let new = set.wait_for_new_primary(old, set.failover_bound());
    eprintln!(
        "sentinels promoted a replica {:?} after the kill (down-after {:?}, bound {:?})",
        started.elapsed(),
        set.down_after(),
        set.failover_bound()
    );
    assert_ne!(new.port(), old.port());
    for sentinel in set.sentinels() {
        assert_eq!(sentinel_primary_port(&set, sentinel), new.port());
    }
    assert_eq!(get_on(new, "before-kill").unwrap().as_deref(), Some("1"));
    set.wait_until_settled(set.failover_bound());
    assert_eq!(set.replicas().len(), 1);

    let started = Instant::now();
    set.restart_node(old);
    eprintln!(
        "killed sentinel primary back as a replica in {:?}",
        started.elapsed()
    );
    assert_eq!(old.role(), Role::Replica);
    assert_eq!(get_on(old, "before-kill").unwrap().as_deref(), Some("1"));
    assert_eq!(set.replicas().len(), 2);
}

#[test]
fn sentinel_passwords_protect_data_nodes_and_sentinels_separately() {
    let set = SentinelSet::builder()
        .password("data secret")
        .sentinel_password("sentinel-secret")
        .start();
    let url = set.url();
    assert!(
        url.starts_with("redis+sentinel://:data%20secret@127.0.0.1:"),
        "{url}"
    );
    assert!(
        url.ends_with("/statehouse?sentinel_password=sentinel-secret"),
        "{url}"
    );
    assert!(!format!("{set:?}").contains("secret"), "{set:?}");
    let stranger = |port: u16| {
        let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("PING").query::<String>(&mut connection).unwrap_err()
    };
    assert_eq!(stranger(set.primary().port()).code(), Some("NOAUTH"));
    assert_eq!(stranger(set.sentinels()[0].port()).code(), Some("NOAUTH"));
    // Each password opens only its own side.
    let wrong = redis::Client::open(format!(
        "redis://:sentinel-secret@127.0.0.1:{}",
        set.primary().port()
    ))
    .unwrap();
    assert!(wrong.get_connection().is_err());
    let mut sentinel = redis::Client::open(set.sentinel_urls()[0].as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = redis::cmd("PING").query(&mut sentinel).unwrap();
    assert_eq!(pong, "PONG");

    // The sentinels agree (with each other's password) and fail over (with the data password).
    write_replicated(&set, "guarded", "1");
    let old = set.kill_primary();
    let new = set.wait_for_new_primary(old, set.failover_bound());
    assert_eq!(get_on(new, "guarded").unwrap().as_deref(), Some("1"));
    set.wait_until_settled(set.failover_bound());
}
