//! Durability on demand against a Sentinel service of its own (one
//! primary, two replicas): with a replica frozen (SIGSTOP: the primary
//! still counts it connected, it acknowledges nothing), a write asking for
//! both replicas is applied and fails with `NotDurable` (1 of 2) within the
//! call's response timeout, on every write path (a plain command, a
//! script, a WATCH section); asking for one replica it succeeds. The
//! contract suite (`durability::…`) covers the rest on every backend.

use std::process::Command;
use std::time::{Duration, Instant};

use statehouse::{Durability, ErrorKind, Settings, Statehouse, StoreError, Update};
use statehouse_tests::harness::SentinelSet;

/// Sends `signal` (`STOP`, `CONT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Resumes a frozen replica however the test ends.
struct Frozen(u32);

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_replica_makes_writes_asking_for_both_not_durable_within_the_timeout_and_they_are_applied() {
    const WAIT: Duration = Duration::from_millis(500);
    let set = tokio::task::spawn_blocking(SentinelSet::start).await.unwrap();
    let settings = Settings::new(set.url()).with_durability(Durability::replicas(2, WAIT));
    let bound = settings.response_timeout + Duration::from_secs(1);
    let both = Statehouse::with_settings(settings).await.unwrap();
    let one = both.with_durability(Durability::replicas(1, WAIT)).unwrap();
    let plain = both.with_durability(Durability::Primary).unwrap();

    // Both replicas up: acknowledged.
    both.documents().set("before", &1_u32).await.unwrap();

    let replicas = set.replicas();
    assert_eq!(replicas.len(), 2, "the set has two replicas");
    let frozen = Frozen(replicas[0].pid());
    signal(frozen.0, "STOP");

    let queues = both.queues();
    let queue = queues.queue("mailer", "daily", "send").unwrap();
    let tenant = both.tenant("acme").unwrap();
    let docs = both.documents();
    let writes: Vec<(&str, Instant, Result<(), StoreError>)> = vec![
        {
            let started = Instant::now();
            ("a plain SET", started, docs.set("during", &2_u32).await)
        },
        {
            let started = Instant::now();
            let outcome = queues.enqueue("acme", &queue, &["mail"]).await.map(|_| ());
            ("a script (enqueue)", started, outcome)
        },
        {
            let started = Instant::now();
            let outcome = docs
                .update("counter", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
                .await
                .map(|_| ());
            ("a WATCH section (update)", started, outcome)
        },
        {
            let started = Instant::now();
            let outcome = tenant
                .tables()
                .set("orders", "o1", &serde_json::json!({"n": 3}))
                .await;
            ("a tenant row", started, outcome)
        },
    ];
    for (write, started, outcome) in writes {
        let took = started.elapsed();
        let error = outcome.expect_err(write);
        assert_eq!(error.kind(), ErrorKind::NotDurable, "{write}: {error}");
        match &error {
            StoreError::NotDurable {
                wanted, confirmed, ..
            } => assert_eq!((*wanted, *confirmed), (2, 1), "{write}: {error}"),
            other => panic!("{write}: {other:?}"),
        }
        // WAIT answers when its timeout ran out; the call within its bound.
        assert!(
            took >= WAIT,
            "{write}: answered after {took:?}, before the WAIT timed out"
        );
        // The response timeout bounds the call; a busy 2-core box may
        // schedule this process late (1 s more).
        assert!(took <= bound, "{write}: answered after {took:?}");
    }

    // Every write was applied on the primary.
    let docs = plain.documents();
    assert_eq!(docs.get::<u32>("during").await.unwrap(), Some(2));
    assert_eq!(docs.get::<u32>("counter").await.unwrap(), Some(1));
    assert_eq!(plain.queues().len("acme", &queue).await.unwrap(), 1);
    assert_eq!(
        plain
            .tenant("acme")
            .unwrap()
            .tables()
            .get::<serde_json::Value>("orders", "o1")
            .await
            .unwrap(),
        Some(serde_json::json!({"n": 3}))
    );

    // One replica still confirms.
    one.documents().set("one", &4_u32).await.unwrap();
    one.documents()
        .update("counter", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
        .await
        .unwrap();
    drop(frozen);
    set.stop();
}

#[tokio::test]
async fn a_wait_timeout_over_half_the_response_timeout_is_refused() {
    let settings = Settings::new("redis://127.0.0.1:1")
        .with_durability(Durability::replicas(1, Duration::from_millis(1500)));
    let error = Statehouse::with_settings(settings).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("half the response timeout"), "{error}");
}
