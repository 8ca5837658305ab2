//! The Rust side of the interop suite: statehouse against the real Python
//! libraries, driven by `scripts/interop.sh`, which starts its own
//! `redis-server` and alternates these steps with the Python side's
//! (`tests/interop/interop.py`, same step names, same expectations):
//!
//! ```text
//! cargo run -p statehouse-tests --bin interop -- URL STEP [N]
//! ```
//!
//! - pydantic-state 0.0.7, hash models (`pydantic.rs`): `pydantic-read`
//!   (what Python wrote, typed, and the same bytes statehouse would write),
//!   `pydantic-write`, `pydantic-race N` (N `modify`s of `rust_writes`
//!   while Python assigns `py_writes`), `pydantic-check N`;
//! - krules-framework 3.3.0, subjects (`krules.rs`): `krules-read`,
//!   `krules-write`, `krules-race N` (N `set_with` increments against
//!   KRules' callable `set`), `krules-check TOTAL`;
//! - cledar-sdk 2.3.0, JSON documents (`cledar.rs`): `cledar-read`,
//!   `cledar-write`.
//!
//! Exit status 0 when the step's expectations hold, 1 naming the first that
//! does not, 2 on bad arguments.

use std::process::ExitCode;
use std::time::Duration;

use statehouse::{RetryPolicy, Settings, Statehouse};

mod cledar;
mod krules;
mod pydantic;

/// A failed step: what was expected and what was found.
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str = "usage: interop URL STEP [N]
steps: pydantic-read pydantic-write pydantic-race N pydantic-check N
       krules-read krules-write krules-race N krules-check TOTAL
       cledar-read cledar-write";

/// Fails unless `got == expected`, naming `what`.
fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, expected: T) -> Res<()> {
    if got == expected {
        Ok(())
    } else {
        Err(format!("{what} is {got:?}, expected {expected:?}").into())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, step, n) = match args.as_slice() {
        [url, step] => (url, step.as_str(), None),
        [url, step, n] => match n.parse::<u64>() {
            Ok(n) => (url, step.as_str(), Some(n)),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    let mut settings = Settings::new(url.as_str());
    // A race against a Python writer that never backs off: many attempts,
    // short backoffs. Only running out of them fails a step.
    settings.update_policy =
        RetryPolicy::new(100_000).with_backoff(Duration::from_micros(200), Duration::from_millis(5));
    let state = match Statehouse::with_settings(settings).await {
        Ok(state) => state,
        Err(error) => {
            eprintln!("interop {step}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match (step, n) {
        ("pydantic-read", None) => pydantic::read(&state).await,
        ("pydantic-write", None) => pydantic::write(&state).await,
        ("pydantic-race", Some(n)) => pydantic::race(&state, url, n).await,
        ("pydantic-check", Some(n)) => pydantic::check(&state, n).await,
        ("krules-read", None) => krules::read(&state).await,
        ("krules-write", None) => krules::write(&state).await,
        ("krules-race", Some(n)) => krules::race(&state, url, n).await,
        ("krules-check", Some(total)) => krules::check(&state, total).await,
        ("cledar-read", None) => cledar::read(&state).await,
        ("cledar-write", None) => cledar::write(&state).await,
        _ => return usage(),
    };
    match outcome {
        Ok(()) => {
            println!("rust {step}: ok");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("rust {step}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// The race's barrier (the Python side's `start_together`): both sides
/// announce they are ready, then wait for each other, so that their
/// updates overlap.
async fn start_together(url: &str, race: &str) -> Res<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let key = format!("interop:{race}:ready");
    redis::cmd("INCR").arg(&key).exec_async(&mut conn).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready: Option<u64> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        if ready.unwrap_or(0) >= 2 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{race}: the Python side never got ready").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until `ready` says the other side got far enough, polling; fails
/// if it does not within 30 s (the other side stalled).
async fn pace<F, Fut>(race: &str, mut ready: F) -> Res<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Res<bool>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !ready().await? {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{race}: the Python side stopped making progress").into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}
