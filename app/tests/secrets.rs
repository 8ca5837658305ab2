//! No password ever shows: random passwords (every printable ASCII
//! character, raw or percent-encoded) in every URL form, through
//! redaction, `Debug`/`Display`, connect errors (with their sources), logs
//! and spans, and the CLI's stdout and stderr.
//!
//! Each password holds a random run of letters and digits that nothing
//! else contains; the tests assert that run never appears. A failure
//! prints its seed: `STATEHOUSE_TEST_SEED=<seed>` replays it.
//!
//! Its own test binary: the tracing subscriber is process-global.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use statehouse::{Settings, Statehouse};
use statehouse_redis::{RedisConfig, RedisStore, redact_url};
use support::{Case, FakeRedis, Rng, case, rendered};
use tracing_subscriber::fmt::format::FmtSpan;

/// Cases without network: redaction and `Debug`/`Display`.
const OFFLINE_CASES: usize = 5000;
/// Cases that connect (refused, or to the fake server) and run the CLI.
const ONLINE_CASES: usize = 300;
const TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged at any level, by any target, in this process.
fn log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

fn assert_hidden(seed: u64, case: &Case, what: &str, shown: &str) {
    assert!(
        !shown.contains(&case.run),
        "the password's run {run:?} shows in {what} (form {form:?}, url {url:?}, seed {seed}; \
         replay with STATEHOUSE_TEST_SEED={seed}):\n{shown}",
        run = case.run,
        form = case.form,
        url = case.url,
    );
}

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
fn connect_errors_logs_and_cli_output_never_show_a_password() {
    let log = log();
    // A third of the cases reach a server (one that says OK to anything,
    // AUTH included): then the CLI's success output and the call spans
    // are checked too.
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

        for command in [&["ping"][..], &["layout"], &["doc", "get", "k"]] {
            let mut args = vec!["statehouse", "--url", &case.url, "--timeout-ms", "200"];
            args.extend_from_slice(command);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            statehouse::cli::main_with(args.iter().map(Into::into), &mut out, &mut err);
            let what = format!("the CLI's output of {command:?}");
            assert_hidden(seed, &case, &what, &String::from_utf8_lossy(&out));
            assert_hidden(seed, &case, &what, &String::from_utf8_lossy(&err));
        }
        cases.push(case);
    }
    assert!(connected > 0, "no case reached the fake server (seed {seed})");

    let log = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("op=\"ping\""),
        "the call spans were not captured:\n{log}"
    );
    for case in &cases {
        assert_hidden(seed, case, "the log", &log);
    }
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
