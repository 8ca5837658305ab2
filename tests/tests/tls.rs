//! `rediss://` end to end (feature `tls`): the whole facade over a TLS
//! connection to a real `redis-server`, and `rediss+sentinel://`: a
//! Sentinel set whose every node and sentinel serves, replicates and
//! announces over TLS only. `scripts/test.sh` runs it with `--features tls`.
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::time::Duration;

use std::sync::{Arc, OnceLock};

use statehouse::{ErrorKind, Settings, Statehouse, Update};
use statehouse_tests::harness::sentinel::{create_task_seen_on_replica, task_read_calls};
use statehouse_tests::harness::{Node, SentinelSet, TlsRedisServer, failover};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_work_over_verified_tls() {
    let server = TlsRedisServer::start();
    let mut settings = Settings::new(server.url());
    settings.tls_ca_file = Some(server.ca_file());
    let state = Statehouse::with_settings(settings).await.unwrap();
    assert_eq!(state.backend(), "redis");
    let docs = state.documents();
    docs.set("secure:1", &"hello").await.unwrap();
    assert_eq!(
        docs.get::<String>("secure:1").await.unwrap().as_deref(),
        Some("hello")
    );
    let n = docs
        .update("secure:n", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap();
    assert_eq!(n, Some(1));
    assert_eq!(
        docs.list_keys("secure:*").await.unwrap(),
        ["secure:1", "secure:n"]
    );

    // The plain port of the same server sees the same data: it really went there.
    let mut plain = server.server.connection();
    let value: String = redis::cmd("GET").arg("secure:1").query(&mut plain).unwrap();
    assert_eq!(value, "\"hello\"");
}

/// Without the private CA, the server's certificate is not trusted: the
/// connection is refused, not silently made insecure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_is_refused() {
    let server = TlsRedisServer::start();
    let mut settings = Settings::new(server.url());
    settings.connect_timeout = Duration::from_millis(500);
    let error = Statehouse::with_settings(settings).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connection, "{error:?}");
    assert!(format!("{error:?}").contains("certificate"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_ca_file_is_invalid_input_naming_the_file() {
    let mut settings = Settings::new("rediss://127.0.0.1:1");
    settings.tls_ca_file = Some("/nonexistent/ca.pem".into());
    let error = Statehouse::with_settings(settings).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error:?}");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
}

/// The data nodes' and the sentinels' passwords of the shared TLS set.
const PASSWORD: &str = "data-pw-5f1c";
const SENTINEL_PASSWORD: &str = "sentinel-pw-9b2e";

/// This process's Sentinel set with TLS and passwords (one primary, two
/// replicas, three sentinels), for the tests that cause no failover.
fn shared_tls_set() -> &'static SentinelSet {
    static SET: OnceLock<SentinelSet> = OnceLock::new();
    SET.get_or_init(|| {
        SentinelSet::builder()
            .tls()
            .password(PASSWORD)
            .sentinel_password(SENTINEL_PASSWORD)
            .start()
    })
}

/// Settings for `set`'s `rediss+sentinel://` URL trusting its CA.
fn tls_settings(set: &SentinelSet) -> Settings {
    let url = set.url();
    assert!(url.starts_with("rediss+sentinel://"), "{url}");
    let mut settings = Settings::new(url);
    settings.tls_ca_file = set.ca_file();
    settings
}

/// The calls of the task reads' commands in `node`'s `INFO commandstats`.
fn read_calls(node: &Node) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut node.connection())
        .unwrap();
    task_read_calls(&info)
}

/// Over `rediss+sentinel://` (with the CA file, passwords for the data nodes
/// and the sentinels, and a `?role=replica` read URL): documents, tasks,
/// subjects and config round trip; the sentinels, the primary and the
/// replica are reached with TLS only (every address the library learns is a
/// TLS port: a plain connection to one fails), the pooled WATCH
/// connections sit on the primary's TLS port, and task reads run on a
/// replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_service_over_tls_round_trips_every_family_on_tls_ports_only() {
    let set = tokio::task::spawn_blocking(shared_tls_set).await.unwrap();
    let mut settings = tls_settings(set);
    settings.prefix = "roundtrip:".to_owned();
    settings.read_url = Some(format!("{}&role=replica", set.url()));
    let state = Statehouse::with_settings(settings).await.unwrap();

    let docs = state.documents();
    docs.set("doc:1", &"hello").await.unwrap();
    assert_eq!(
        docs.get::<String>("doc:1").await.unwrap().as_deref(),
        Some("hello")
    );
    let n = docs
        .update("doc:n", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap();
    assert_eq!(n, Some(1));

    let tasks = state.tasks();
    create_task_seen_on_replica(&tasks, "t1").await;

    let mut subject = state.subjects().subject("user:1").unwrap();
    subject.set("visits", &3u32).await.unwrap();
    subject.store().await.unwrap();
    let mut again = state.subjects().subject("user:1").unwrap();
    assert_eq!(again.get::<u32>("visits").await.unwrap(), Some(3));

    let config = state.config();
    config.update("limit", &10u32).await.unwrap();
    assert_eq!(config.fetch::<u32>("limit").await.unwrap(), Some(10));

    // Where it went, asked on the nodes' plain ports (the harness's own).
    let primary = set.primary();
    let tls_port = set.announced_port(primary);
    assert_ne!(tls_port, primary.port());
    let value: String = redis::cmd("GET")
        .arg("roundtrip:doc:1")
        .query(&mut primary.connection())
        .unwrap();
    assert_eq!(value, "\"hello\"");
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut primary.connection())
        .unwrap();
    let pooled: Vec<&str> = clients
        .lines()
        .filter(|line| line.contains(&format!("name={}", statehouse_redis::TXN_CLIENT_NAME)))
        .collect();
    assert!(
        !pooled.is_empty(),
        "no pooled connection on the primary: {clients}"
    );
    for line in pooled {
        assert!(
            line.contains(&format!("laddr=127.0.0.1:{tls_port} ")),
            "a pooled connection not on the TLS port {tls_port}: {line}"
        );
    }
    let replicas: Vec<&Node> = set.replicas();
    let before: u64 = replicas.iter().map(|node| read_calls(node)).sum();
    for _ in 0..5 {
        assert!(tasks.get("t1").await.unwrap().is_some());
    }
    let after: u64 = replicas.iter().map(|node| read_calls(node)).sum();
    assert!(
        after - before >= 5,
        "{} of 5 task reads on the replicas",
        after - before
    );
}

/// `SENTINEL FAILOVER` on a TLS set: the same `Statehouse` writes to the
/// promoted replica over TLS within 5 s of its promotion (plus a connect
/// and a response timeout per step of noticing, resolving, connecting),
/// and reads there what it wrote before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_is_followed_over_tls() {
    let set = Arc::new(
        tokio::task::spawn_blocking(|| SentinelSet::builder().tls().start())
            .await
            .unwrap(),
    );
    let settings = tls_settings(&set);
    let bound = Duration::from_secs(5) + (settings.connect_timeout + settings.response_timeout) * 3;
    let state = Statehouse::with_settings(settings).await.unwrap();
    let docs = state.documents();
    docs.set("before", &1u32).await.unwrap();

    let faulted = set.clone();
    let promotion = tokio::task::spawn_blocking(move || failover::sentinel_failover(&faulted))
        .await
        .unwrap();
    let promoted = promotion.began + promotion.promoted_after;
    // The old primary takes writes until statehouse hears of the switch
    // (docs/reliability.md, "What a SENTINEL FAILOVER loses"): write until
    // a write lands on the promoted node.
    for written in 1u32.. {
        let last = match docs.set("after", &written).await {
            Ok(()) => {
                let (check, port) = (set.clone(), promotion.new);
                let seen: Option<String> = tokio::task::spawn_blocking(move || {
                    let node = check
                        .data_nodes()
                        .iter()
                        .find(|node| node.port() == port)
                        .unwrap();
                    redis::cmd("GET")
                        .arg("after")
                        .query(&mut node.connection())
                        .unwrap()
                })
                .await
                .unwrap();
                if seen == Some(written.to_string()) {
                    break;
                }
                format!("write {written} acknowledged, the promoted node has {seen:?}")
            }
            Err(error) => error.to_string(),
        };
        assert!(
            promoted.elapsed() < bound,
            "no write reached the promoted node within {bound:?} of the promotion: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(docs.get::<u32>("before").await.unwrap(), Some(1));
    drop(state);
    tokio::task::spawn_blocking(move || drop(set)).await.unwrap();
}

/// A `rediss+sentinel://` URL carrying both passwords: a service the
/// sentinels do not know, and the CA left out (the certificate is not
/// trusted), fail naming the cause, and neither the error nor the settings
/// show a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_tls_url_with_passwords_is_redacted_in_errors() {
    let set = tokio::task::spawn_blocking(shared_tls_set).await.unwrap();
    let shown = |text: String| {
        assert!(
            !text.contains(PASSWORD) && !text.contains(SENTINEL_PASSWORD),
            "a password shows: {text}"
        );
        text
    };

    let mut settings = tls_settings(set);
    settings.url = set.url_for("no-such-service");
    shown(format!("{settings:?} {settings}"));
    let error = Statehouse::with_settings(settings).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connection, "{error:?}");
    let text = shown(format!("{error} {error:?}"));
    assert!(text.contains("no-such-service"), "{text}");

    let mut settings = tls_settings(set);
    settings.tls_ca_file = None;
    settings.connect_timeout = Duration::from_millis(500);
    let error = Statehouse::with_settings(settings).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connection, "{error:?}");
    let text = shown(format!("{error} {error:?}"));
    assert!(text.contains("certificate"), "{text}");
}
