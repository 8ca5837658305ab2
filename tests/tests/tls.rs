//! `rediss://` end to end (feature `tls`): the whole facade over a TLS
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]
//! connection to a real `redis-server`. `scripts/test.sh` runs it with
//! `--features tls`.

use std::time::Duration;

use statehouse::{ErrorKind, Settings, Statehouse, Update};
use statehouse_tests::harness::TlsRedisServer;

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
