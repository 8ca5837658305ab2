//! No password ever shows: random passwords (every printable ASCII
//! character, raw or percent-encoded) in every URL form, through
//! redaction, `Debug`/`Display`, connect errors (with their sources), logs
//! and spans. (The CLI's stdout and stderr: `app/cli/tests/secrets.rs`,
//! over cases of the same generator.)
//!
//! Each password holds a random run of letters and digits that nothing
//! else contains; the tests assert that run never appears. A failure
//! prints its seed: `STATEHOUSE_TEST_SEED=<seed>` replays it.
//!
//! Its own test binary: the tracing subscriber is process-global.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::time::Duration;

use statehouse::{Settings, Statehouse};
use statehouse_redis::{RedisConfig, RedisStore, redact_url};
use support::{FakeRedis, Rng, assert_hidden, case, log, rendered};

/// Cases without network: redaction and `Debug`/`Display`.
const OFFLINE_CASES: usize = 5000;
/// Cases that connect (refused, or to the fake server).
const ONLINE_CASES: usize = 300;
const TIMEOUT: Duration = Duration::from_millis(200);

#[test]
fn redaction_debug_and_display_never_show_a_password() {
    let mut rng = Rng::new();
    let seed = rng.seed;
    for _ in 0..OFFLINE_CASES {
        let case = case(&mut rng, "127.0.0.1:6390", false);
        assert_hidden(seed, &case, "redact_url", &redact_url(&case.url));
        let config = RedisConfig::new(case.url.clone());
        assert_hidden(seed, &case, "RedisConfig Debug", &format!("{config:?}"));
        assert_hidden(seed, &case, "RedisConfig Display", &config.to_string());
        let settings = Settings::new(case.url.clone());
        assert_hidden(seed, &case, "Settings Debug", &format!("{settings:?}"));
        assert_hidden(seed, &case, "Settings Display", &settings.to_string());
        assert_hidden(seed, &case, "Settings redacted_url", &settings.redacted_url());
    }
}

#[test]
fn connect_errors_and_logs_never_show_a_password() {
    let log = log();
    // A third of the cases reach a server (one that says OK to anything,
    // AUTH included): then the call spans are checked too.
    let fake = FakeRedis::start(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = Rng::new();
    let seed = rng.seed;
    let mut cases = Vec::with_capacity(ONLINE_CASES);
    let mut connected = 0;
    for i in 0..ONLINE_CASES {
        let host = if i % 3 == 0 {
            fake.addr()
        } else {
            "127.0.0.1:1".to_owned()
        };
        let case = case(&mut rng, &host, true);

        let config = RedisConfig::new(case.url.clone()).with_timeouts(TIMEOUT, TIMEOUT);
        match runtime.block_on(RedisStore::connect(config)) {
            Ok(store) => assert_hidden(seed, &case, "RedisStore Debug", &format!("{store:?}")),
            Err(error) => assert_hidden(seed, &case, "RedisStore::connect error", &rendered(&error)),
        }

        let mut settings = Settings::new(case.url.clone());
        settings.connect_timeout = TIMEOUT;
        settings.response_timeout = TIMEOUT;
        match runtime.block_on(Statehouse::with_settings(settings)) {
            Ok(state) => {
                connected += 1;
                assert_hidden(seed, &case, "Statehouse Debug", &format!("{state:?}"));
                let pinged = runtime.block_on(state.documents().ping());
                if let Err(error) = pinged {
                    assert_hidden(seed, &case, "ping error", &rendered(&error));
                }
            }
            Err(error) => assert_hidden(seed, &case, "Statehouse::with_settings error", &rendered(&error)),
        }
        cases.push(case);
    }
    assert!(connected > 0, "no case reached the fake server (seed {seed})");

    log.assert_spans_hide(seed, &cases);
}

/// redis-rs quotes the value of a `protocol` parameter it cannot read; a
/// password holding `&protocol=` makes that value part of the password.
#[tokio::test]
async fn redis_rs_errors_that_quote_the_password_are_withheld() {
    for url in [
        "redis://127.0.0.1:1/0?pass=ab&protocol=SECRETRUN",
        "unix:///tmp/statehouse-secrets-none.sock?pass=ab&protocol=SECRETRUN",
    ] {
        let config = RedisConfig::new(url).with_timeouts(TIMEOUT, TIMEOUT);
        let error = RedisStore::connect(config).await.unwrap_err();
        let shown = rendered(&error);
        assert!(!shown.contains("SECRETRUN"), "{shown}");
        assert!(shown.contains("details withheld"), "{shown}");
    }
}
