//! One `redis-server`: start, stop, restart, pause, durability, replicas, the watchdog.

use std::time::{Duration, Instant};

use statehouse_tests::harness::RedisServer;

use super::{alive, run_leaking_child, wait_until_dead};

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
    let line = run_leaking_child("server::leak_shared_server_and_exit", LEAK_CHILD_ENV);
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
