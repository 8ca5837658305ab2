//! Redis-only behaviour: what happens when the server dies, hangs or comes
//! back, what a cancelled update leaves behind, and what commands the
//! adapter sends. Each test owns its `redis-server`.

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use statehouse::{Documents, ErrorKind, StoreError, Update};
use statehouse_redis::{RedisConfig, RedisStore, TXN_CLIENT_NAME};
use statehouse_tests::harness::RedisServer;

const RESPONSE: Duration = Duration::from_millis(400);

async fn store(server: &RedisServer, pool_size: u32) -> RedisStore {
    let mut config = RedisConfig::new(server.url()).with_timeouts(Duration::from_millis(400), RESPONSE);
    config.pool_size = pool_size;
    RedisStore::connect(config).await.unwrap()
}

fn docs(store: &RedisStore) -> Documents {
    Documents::new(Arc::new(store.clone()))
}

/// Retries `probe` until it succeeds, for at most 10 s.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Result<T, StoreError>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("{what}: still failing after 10 s: {error}"),
        }
    }
}

/// `(id, cmd)` of every client named `name` in `CLIENT LIST`.
fn clients_named(server: &RedisServer, name: &str) -> Vec<(String, String)> {
    server
        .client_list()
        .lines()
        .filter(|line| line.split(' ').any(|field| field == format!("name={name}")))
        .map(|line| {
            let field = |key: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(&format!("{key}=")).map(str::to_owned))
                    .unwrap_or_default()
            };
            (field("id"), field("cmd"))
        })
        .collect()
}

/// No client is inside MULTI, and (on Redis ≥ 7.4, which reports it) none
/// watches a key.
fn assert_no_open_transactions(server: &RedisServer) {
    let list = server.client_list();
    for line in list.lines() {
        for field in line.split(' ') {
            if let Some(multi) = field.strip_prefix("multi=") {
                assert_eq!(multi, "-1", "a client is inside MULTI: {line}");
            }
            if let Some(watched) = field.strip_prefix("watch=") {
                assert_eq!(watched, "0", "a client still watches keys: {line}");
            }
        }
    }
}

fn command_calls(server: &RedisServer, command: &str) -> u64 {
    server.command_calls().of(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_fails_fast_and_the_same_client_recovers_after_restart() {
    let mut server = RedisServer::start();
    let store = store(&server, 4).await;
    let docs = docs(&store);
    docs.set("k", &1).await.unwrap();
    docs.update("n", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap();

    server.stop();
    let started = Instant::now();
    let error = docs.get::<u32>("k").await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(error.key(), "k");
    assert!(
        started.elapsed() < RESPONSE + Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let error = docs
        .update("n", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");

    server.restart();
    // The same store, not rebuilt: the shared connection reconnects by itself,
    // and the pool replaces its dead connections.
    eventually("set after restart", async || docs.set("k", &2).await).await;
    assert_eq!(docs.get::<u32>("k").await.unwrap(), Some(2));
    let n = eventually("update after restart", async || {
        docs.update("n", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
            .await
    })
    .await;
    assert_eq!(n, Some(1), "the restarted server keeps nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_times_out_within_the_bound_and_answers_after_resume() {
    let server = RedisServer::start();
    let store = store(&server, 4).await;
    let docs = docs(&store);
    docs.set("k", &1).await.unwrap();

    server.pause();
    for attempt in 0..2 {
        let started = Instant::now();
        let error = docs.get::<u32>("k").await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(error.kind(), ErrorKind::Timeout, "attempt {attempt}: {error:?}");
        assert!(
            error
                .to_string()
                .ends_with(&format!("no answer within {RESPONSE:?}")),
            "attempt {attempt}: {error}"
        );
        assert!(
            took >= RESPONSE - Duration::from_millis(50) && took < RESPONSE + Duration::from_secs(1),
            "attempt {attempt} took {took:?}"
        );
    }
    let error = docs
        .update("k", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:?}");
    server.resume();

    eventually("get after resume", async || docs.get::<u32>("k").await).await;
    // The timed-out update may or may not have been applied (its outcome is
    // unknown by design), but the key is consistent and writable.
    let now = docs
        .update("k", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 10))
        .await
        .unwrap()
        .unwrap();
    assert!(now == 11 || now == 12, "{now}");
    assert_no_open_transactions(&server);
}

/// A caller that gives up on an update while WATCH is in flight must not
/// hand a still-watching connection to the next update: with one pooled
/// connection, a stale WATCH would abort the next EXEC after any write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_update_leaves_no_watch_behind() {
    let server = RedisServer::start();
    let store = store(&server, 1).await;
    let docs = docs(&store);
    docs.update("k", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap();
    let before = clients_named(&server, TXN_CLIENT_NAME);
    assert_eq!(before.len(), 1, "{before:?}");
    let (watching_id, _) = before[0].clone();

    server.pause();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(150),
        docs.update("k", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 100)),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the update should still be waiting on the paused server"
    );
    server.resume();

    // The server now runs the WATCH that was in flight. The connection that
    // sent it must be closed, not pooled.
    let deadline = Instant::now() + Duration::from_secs(5);
    while clients_named(&server, TXN_CLIENT_NAME)
        .iter()
        .any(|(id, _)| *id == watching_id)
    {
        assert!(
            Instant::now() < deadline,
            "the cancelled WATCH connection is still open: {}",
            server.client_list()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut other = server.connection();
    redis::cmd("SET").arg("k").arg("5").exec(&mut other).unwrap();
    let calls = AtomicU32::new(0);
    let now = docs
        .update("k", |n: Option<u32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            Update::Set(n.unwrap_or(0) + 1)
        })
        .await
        .unwrap();
    assert_eq!(now, Some(6));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the next update was aborted by a stale WATCH"
    );
    assert_no_open_transactions(&server);
}

/// A closure error ends the section with UNWATCH: the connection is clean,
/// so it is reused (not discarded) and carries no watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closure_error_unwatches_and_keeps_the_connection() {
    let server = RedisServer::start();
    let store = store(&server, 1).await;
    let docs = docs(&store);
    docs.set("k", &1u32).await.unwrap();
    let refused: Result<Option<u32>, StoreError> = docs
        .try_update("k", |_: Option<u32>| {
            Err(StoreError::invalid_input("update", "k", "refused by the test"))
        })
        .await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::InvalidInput);
    let before = clients_named(&server, TXN_CLIENT_NAME);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].1, "unwatch", "{before:?}");

    let mut other = server.connection();
    redis::cmd("SET").arg("k").arg("5").exec(&mut other).unwrap();
    let calls = AtomicU32::new(0);
    docs.update("k", |n: Option<u32>| {
        calls.fetch_add(1, Ordering::SeqCst);
        Update::Set(n.unwrap() + 1)
    })
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        clients_named(&server, TXN_CLIENT_NAME)[0].0,
        before[0].0,
        "same connection reused"
    );
    assert_no_open_transactions(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_only_the_commands_it_needs() {
    let server = RedisServer::start();
    let store = store(&server, 2).await;
    let docs = docs(&store);
    let pings_at_connect = command_calls(&server, "ping");
    for i in 0..100 {
        docs.set(&format!("k{i}"), &i).await.unwrap();
        docs.get::<u32>(&format!("k{i}")).await.unwrap();
    }
    docs.set_with_ttl("ttl", &1, Duration::from_secs(60))
        .await
        .unwrap();
    docs.update("k1", |n: Option<u32>| Update::Set(n.unwrap() + 1))
        .await
        .unwrap();
    assert_eq!(docs.list_keys("k*").await.unwrap().len(), 100);

    assert_eq!(
        command_calls(&server, "get"),
        100 + 1,
        "one GET per get, one in the update"
    );
    assert_eq!(command_calls(&server, "set"), 100 + 1 + 1);
    assert_eq!(
        command_calls(&server, "ping"),
        pings_at_connect,
        "no PING before commands"
    );
    assert_eq!(command_calls(&server, "keys"), 0, "never KEYS");
    assert!(command_calls(&server, "scan") >= 1);
    assert_eq!(
        command_calls(&server, "expire") + command_calls(&server, "pexpire"),
        0,
        "TTL set with the write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_isolate_stores_even_with_glob_characters() {
    let server = RedisServer::start();
    let connect =
        |prefix: &str| RedisStore::connect(RedisConfig::new(server.url()).with_prefix(prefix.to_owned()));
    let literal = docs(&connect("p[1]:").await.unwrap());
    let plain = docs(&connect("p1:").await.unwrap());
    literal.set("x", &"literal").await.unwrap();
    plain.set("x", &"plain").await.unwrap();
    plain.set("y", &"plain").await.unwrap();

    assert_eq!(literal.list_keys("*").await.unwrap(), ["x"]);
    assert_eq!(plain.list_keys("*").await.unwrap(), ["x", "y"]);
    assert_eq!(
        literal.get::<String>("x").await.unwrap().as_deref(),
        Some("literal")
    );
    assert_eq!(plain.get::<String>("x").await.unwrap().as_deref(), Some("plain"));

    let mut raw = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut raw).unwrap();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["p1:x", "p1:y", "p[1]:x"]);
}

/// An update's wait for a dedicated connection counts against the response
/// timeout: when the pool has to open a connection to a dead or frozen
/// server, the update fails within the response timeout, not after the
/// pool's own connect + response wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_needing_a_new_connection_fails_within_the_response_timeout() {
    let mut server = RedisServer::start();
    // A connect timeout far above the response timeout makes any wait for
    // the pool's connect bound plain to see.
    let mut config = RedisConfig::new(server.url()).with_timeouts(Duration::from_secs(3), RESPONSE);
    config.pool_size = 1;
    let store = RedisStore::connect(config).await.unwrap();
    let docs = docs(&store);
    let increment = || docs.update("n", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1));
    increment().await.unwrap();
    let within = RESPONSE + Duration::from_millis(300);

    // Frozen: the first update times out on the pooled connection, which is
    // discarded; the next must open a new one, whose handshake never answers.
    server.pause();
    for attempt in 0..3 {
        let started = Instant::now();
        let error = increment().await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(
            error.kind(),
            ErrorKind::Timeout,
            "paused, attempt {attempt}: {error:?}"
        );
        assert!(took < within, "paused, attempt {attempt} took {took:?}");
    }
    server.resume();
    eventually("update after resume", async || increment().await).await;

    // Dead: the pooled connection fails at once, and the replacement cannot
    // connect at all.
    server.stop();
    for attempt in 0..3 {
        let started = Instant::now();
        let error = increment().await.unwrap_err();
        let took = started.elapsed();
        assert!(error.is_retryable(), "stopped, attempt {attempt}: {error:?}");
        assert!(took < within, "stopped, attempt {attempt} took {took:?}");
    }
    server.restart();
    eventually("update after restart", async || increment().await).await;
    assert_no_open_transactions(&server);
}
