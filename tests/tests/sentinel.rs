//! The contract suite on the Redis adapter connected to a Sentinel service
//! (`redis+sentinel://…`: one primary, two replicas, three sentinels),
//! started once for this test process; each test under its own key prefix.
//! Then a failover under load: calls fail within their bound or succeed,
//! and succeed again soon after the promotion, without a new store.

use std::future::Future;

use statehouse_tests::backends::{Stack, run_sentinel};
use statehouse_tests::contract::{Backend, Flavor};

fn run<Fut: Future<Output = ()> + Send + 'static>(flavor: Flavor, body: impl FnOnce(Backend) -> Fut) {
    run_sentinel(Stack::Bare, flavor, body);
}

statehouse_tests::contract_suite!(run);

/// Under a load of document increments (one counter per worker, so no
/// conflict retries), `SENTINEL FAILOVER`: every call succeeds or fails
/// within its bound, and every call started 5 s after the promotion
/// succeeds, on the same `Statehouse` (no restart of the caller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_under_load_fails_calls_within_their_bound_then_they_succeed_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use statehouse::{Settings, Statehouse, Update};
    use statehouse_tests::harness::{SentinelSet, failover};

    const WORKERS: usize = 4;
    const RECOVERY: Duration = Duration::from_secs(5);

    let set = Arc::new(tokio::task::spawn_blocking(SentinelSet::start).await.unwrap());
    let settings = Settings::new(set.url());
    // An update without conflicts: WATCH and GET, then MULTI/EXEC (2 round
    // trips), repeated once on a fresh connection when its pooled one was
    // dropped, plus opening that connection; on a busy box, 1 s more.
    let bound = settings.connect_timeout + settings.response_timeout * 4 + Duration::from_secs(1);
    let state = Statehouse::with_settings(settings).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (docs, stop) = (state.documents(), stop.clone());
        workers.push(tokio::spawn(async move {
            let key = format!("failover:counter:{worker}");
            // (started, took, succeeded, error text)
            let mut calls: Vec<(Instant, Duration, Result<(), String>)> = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let started = Instant::now();
                let outcome = docs
                    .update(&key, |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                    .await;
                calls.push((
                    started,
                    started.elapsed(),
                    outcome.map(|_| ()).map_err(|e| e.to_string()),
                ));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            calls
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let faulted = set.clone();
    let promotion = tokio::task::spawn_blocking(move || failover::sentinel_failover(&faulted))
        .await
        .unwrap();
    let promoted = promotion.began + promotion.promoted_after;
    // Load on until well past the promised recovery.
    tokio::time::sleep_until((promoted + RECOVERY + Duration::from_secs(3)).into()).await;
    stop.store(true, Ordering::Release);

    let (mut failed, mut after_recovery) = (0, 0);
    for worker in workers {
        for (started, took, outcome) in worker.await.unwrap() {
            if let Err(error) = &outcome {
                failed += 1;
                assert!(
                    took <= bound,
                    "a call failed after {took:?}, past its bound {bound:?}: {error}"
                );
            }
            if started >= promoted + RECOVERY {
                after_recovery += 1;
                assert!(
                    outcome.is_ok(),
                    "a call started {:?} after the promotion failed: {outcome:?}",
                    started - promoted
                );
            }
        }
    }
    assert!(after_recovery > 0, "no call ran 5 s after the promotion");
    eprintln!(
        "sentinel failover: promoted after {:?}; {failed} calls failed; {after_recovery} calls after recovery all succeeded",
        promotion.promoted_after
    );
    drop(state);
    tokio::task::spawn_blocking(move || drop(set)).await.unwrap();
}
