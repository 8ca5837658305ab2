//! Ten seconds of the fault soak (`statehouse_tests::soak`, also the `soak` binary): 32 tasks on
//! the default stack while a durable server is killed, restarted, paused and resumed.

use std::time::Duration;

use statehouse_tests::soak::{self, FaultKind, Op, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_seconds_of_faults_lose_no_acknowledged_write_and_never_hang() {
    // The defaults: response timeout 500 ms, and a connect timeout of 2 s, so
    // an update waiting for the pool to open a connection (connect + response
    // timeout: the bug this soak found) would stand out past its bound.
    let options = Options::new(Duration::from_secs(10));
    assert!(
        options.connect_timeout + options.response_timeout
            > options.bound(Op::Update) + Duration::from_millis(500)
    );
    let report = soak::run(options).await;
    println!("{report}");

    // Work was done, before the faults, after each one, and by updates.
    assert!(
        report.ok_calls_before_faults > 0,
        "no work before the first fault"
    );
    for (i, fault) in report.faults.iter().enumerate() {
        assert!(fault.ok_calls_after > 0, "no work after fault {}", i + 1);
    }
    assert!(report.op(Op::Update).ok > 0);
    assert!(report.op(Op::Set).ok > 0 && report.op(Op::Get).ok > 0 && report.op(Op::Mget).ok > 0);
    // Faults of both kinds happened and failed some calls.
    assert!(report.faults_of(FaultKind::StopRestart) >= 1, "no stop/restart");
    assert!(report.faults_of(FaultKind::PauseResume) >= 1, "no pause/resume");
    let total = report.total();
    assert!(
        total.errors.values().sum::<u64>() > 0,
        "no call failed: the faults did not bite"
    );
    // Every fault was recovered from, by plain calls and by updates.
    for (i, fault) in report.faults.iter().enumerate() {
        assert!(fault.recovery.is_some(), "fault {} not recovered from", i + 1);
        assert!(fault.update_recovery.is_some(), "no update after fault {}", i + 1);
    }
    // Nothing acknowledged lost, nothing applied twice, no stale read.
    assert_eq!(report.lost_increments(), 0);
    assert_eq!(report.excess_increments(), 0);
    for counter in &report.counters {
        assert!(counter.acknowledged > 0, "{counter:?}");
    }
    assert!(report.reads_checked > 0);
    assert_eq!(report.read_violation_count, 0, "{:?}", report.read_violations);
    // No call waited past its bound, none hung.
    assert_eq!(total.hung, 0);
    assert_eq!(report.slow_call_count, 0, "{:?}", report.slow_calls);
    assert!(report.violations().is_empty(), "{:?}", report.violations());
    assert!(report.coverage_gaps().is_empty(), "{:?}", report.coverage_gaps());
}
