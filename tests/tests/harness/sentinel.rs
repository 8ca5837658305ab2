//! A Sentinel set: the primary resolved, `SENTINEL FAILOVER`, a primary killed, passwords.

use std::time::Instant;

use statehouse_tests::harness::{Node, Role, SentinelSet};

use super::get_on;

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
