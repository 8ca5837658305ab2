//! What `Statehouse::connect` does with each URL, in whatever build of the
//! features `redis` and `memory` this is: a URL whose adapter is compiled in
//! connects (or fails to reach its server), one whose adapter is not is an
//! `InvalidInput` error naming the feature to enable, and no password ever
//! shows. `scripts/test.sh` runs this file in each build:
//! `cargo test -p statehouse --no-default-features --features redis --test features`
//! (and `--features memory`, and the default).

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use statehouse::{ErrorKind, Settings, Statehouse};

#[tokio::test]
async fn memory_urls_connect_with_the_memory_feature_only() {
    let result = Statehouse::connect("memory://").await;
    if cfg!(feature = "memory") {
        assert_eq!(result.unwrap().backend(), "memory");
    } else {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
        assert!(
            err.to_string().contains("enable the crate's `memory` feature"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn redis_urls_connect_with_the_redis_feature_only() {
    for url in [
        "redis://:hunter2@127.0.0.1:1",
        "unix:///tmp/none.sock?pass=hunter2",
    ] {
        let mut settings = Settings::new(url);
        settings.connect_timeout = std::time::Duration::from_millis(300);
        let err = Statehouse::with_settings(settings).await.unwrap_err();
        assert!(!format!("{err}{err:?}").contains("hunter2"), "{err:?}");
        if cfg!(feature = "redis") {
            // Compiled in: it tried, and nothing listens there.
            assert_eq!(err.kind(), ErrorKind::Connection, "{url}: {err:?}");
        } else {
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url}: {err:?}");
            assert!(
                err.to_string().contains("enable the crate's `redis` feature"),
                "{err}"
            );
        }
    }
}

#[test]
fn settings_never_show_a_password_in_any_build() {
    for url in [
        "redis://user:hunter2@db:6379",
        "rediss://:hunter2@db",
        "memory://x:hunter2@",
        "hunter2",
        "REDIS://:hunter2@db",
    ] {
        let settings = Settings::new(url);
        for shown in [
            settings.redacted_url(),
            settings.to_string(),
            format!("{settings:?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{url}: {shown}");
        }
    }
    assert_eq!(Settings::new("memory://").redacted_url(), "memory://");
}
