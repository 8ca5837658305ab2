//! A timeout reports the bound that elapsed: the connect timeout for a
//! server that accepts and never answers, the response timeout for a
//! handshake step or a call that gets no answer.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::time::{Duration, Instant};

use statehouse::{ErrorKind, Settings, Statehouse, StoreError, Update};
use statehouse_redis::{RedisConfig, RedisStore};
use support::FakeRedis;

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(3);

fn assert_timeout(error: &StoreError, bound: Duration) {
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:?}");
    assert!(
        error.to_string().contains(&format!("no answer within {bound:?}")),
        "expected the bound {bound:?}: {error}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_after_the_connect_timeout() {
    let server = FakeRedis::mute();
    let url = format!("redis://:hunter2@{}", server.addr());

    let started = Instant::now();
    let config = RedisConfig::new(url.clone()).with_timeouts(SHORT, LONG);
    let error = RedisStore::connect(config).await.unwrap_err();
    assert_timeout(&error, SHORT);
    assert!(started.elapsed() < LONG, "took {:?}", started.elapsed());
    assert!(!error.to_string().contains("hunter2"), "{error}");

    let mut settings = Settings::new(url);
    settings.connect_timeout = SHORT;
    settings.response_timeout = LONG;
    let error = Statehouse::with_settings(settings).await.unwrap_err();
    assert_timeout(&error, SHORT);
}

#[tokio::test]
async fn a_handshake_step_without_an_answer_times_out_after_the_response_timeout() {
    // Connecting works; naming the dedicated connection gets no answer.
    let server = FakeRedis::start(&["CLIENT SETNAME"]);
    let config = RedisConfig::new(format!("redis://{}", server.addr())).with_timeouts(LONG, SHORT);
    let started = Instant::now();
    let error = RedisStore::connect(config).await.unwrap_err();
    assert_timeout(&error, SHORT);
    assert!(started.elapsed() < LONG, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_call_without_an_answer_times_out_after_the_response_timeout() {
    let server = FakeRedis::start(&["GET"]);
    let config = RedisConfig::new(format!("redis://{}", server.addr())).with_timeouts(LONG, SHORT);
    let state = Statehouse::from_ports(statehouse::Ports::of(RedisStore::connect(config).await.unwrap()));
    let docs = state.documents();
    // On the shared connection.
    assert_timeout(&docs.get::<u32>("k").await.unwrap_err(), SHORT);
    // On a dedicated one (WATCH; GET).
    let error = docs
        .update("k", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap_err();
    assert_timeout(&error, SHORT);
}
