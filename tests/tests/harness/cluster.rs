//! A Redis Cluster: slots, redirects, resharding, a primary killed, passwords, the watchdogs.

use std::time::{Duration, Instant};

use statehouse_tests::harness::{MigrationStep, Node, RedisCluster, Role};

use super::{alive, get_on, run_leaking_child, wait_until_dead};

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

/// The soak's connection kill (`CLIENT KILL TYPE normal` on every node) also closes the connection
/// the harness keeps to each node for its own queries; the harness opens a new one, and none of its
/// queries fails for it (they used to panic with "unexpected end of file").
#[test]
fn the_harness_queries_survive_a_kill_of_every_client_connection() {
    let cluster = RedisCluster::start(3, 0);
    let slot = cluster.slot_of("{killed}");
    // Asks every node: each now has a connection kept by the harness.
    let owner = cluster.primary_for_slot(slot).port();
    for node in cluster.nodes() {
        let killed: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query(&mut node.connection())
            .unwrap();
        assert!(
            killed >= 1,
            "{}: no connection of the harness to kill",
            node.addr()
        );
    }
    assert_eq!(cluster.primary_for_slot(slot).port(), owner);
    assert_eq!(cluster.slot_of("{killed}"), slot);
    assert_eq!(cluster.primaries().len(), 3);
    assert_eq!(cluster.count_keys_per_primary().len(), 3);
    assert_eq!(cluster.nodes()[0].role(), Role::Primary);
    cluster.wait_until_healthy(Duration::from_secs(10));
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
    let line = run_leaking_child("cluster::leak_shared_cluster_and_exit", LEAK_CLUSTER_CHILD_ENV);
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
