//! The fault soak (`statehouse_tests::soak`, also the `soak` binary): ten seconds of every family
//! on the default stack while a durable server is killed, restarted, paused, resumed and has its
//! connections killed; and a volatile server, whose restarts lose acknowledged writes, to prove
//! that the accounting reports them.

use std::time::Duration;

use statehouse_tests::soak::{self, Family, FaultKind, Op, Options, Topology};

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
    let report = soak::run(options).await.unwrap();
    println!("{report}");

    // Work was done, before the faults, after each one, and by every operation of every family.
    assert!(
        report.ok_calls_before_faults > 0,
        "no work before the first fault"
    );
    for (i, fault) in report.faults.iter().enumerate() {
        assert!(fault.ok_calls_after > 0, "no work after fault {}", i + 1);
    }
    for op in Op::ALL {
        assert!(report.op(op).ok > 0, "no {} succeeded", op.name());
    }
    // Faults of every kind of the topology happened and failed some calls.
    for kind in Topology::Single.default_faults() {
        assert!(report.faults_of(kind) >= 1, "no {}", kind.name());
    }
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
    // Every family's writes were counted: some acknowledged, none lost, nothing applied twice.
    assert_eq!(report.families.len(), Family::ALL.len());
    for family in Family::ALL {
        let check = report.family(family);
        assert!(check.acknowledged > 0, "{check:?}");
        assert!(check.found >= check.acknowledged, "{check:?}");
        assert_eq!(check.lost, 0, "{check:?}");
        assert_eq!(check.excess, 0, "{check:?}");
    }
    assert_eq!(report.lost(), 0);
    assert_eq!(report.lost_increments(), 0);
    assert_eq!(report.excess_increments(), 0);
    assert!(report.reads_checked > 0);
    assert_eq!(report.read_violation_count, 0, "{:?}", report.read_violations);
    // No call waited past its bound, none hung.
    assert_eq!(total.hung, 0);
    assert_eq!(report.slow_call_count, 0, "{:?}", report.slow_calls);
    assert!(report.violations().is_empty(), "{:?}", report.violations());
    assert!(report.coverage_gaps().is_empty(), "{:?}", report.coverage_gaps());
}

/// The accounting can fail: a server without persistence comes back empty from each restart, so
/// writes it acknowledged are gone, and the soak must say how many, per family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volatile_server_loses_acknowledged_writes_and_the_soak_reports_how_many() {
    let mut options = Options::new(Duration::from_secs(6));
    options.durable = false;
    options.faults = vec![FaultKind::StopRestart];
    // Long healthy stretches: each family acknowledges writes between two restarts.
    options.healthy = (Duration::from_millis(1_500), Duration::from_millis(2_000));
    let report = soak::run(options).await.unwrap();
    println!("{report}");

    assert!(report.faults_of(FaultKind::StopRestart) >= 1);
    assert!(report.lost() > 0, "nothing reported lost");
    let violations = report.violations();
    let mut families_with_losses = 0;
    for check in &report.families {
        assert!(check.lost <= check.acknowledged, "{check:?}");
        if check.lost > 0 {
            families_with_losses += 1;
            assert!(!check.examples.is_empty(), "{check:?}");
            let reported = format!("{}: {} acknowledged", check.family.name(), check.lost);
            assert!(
                violations
                    .iter()
                    .any(|violation| violation.starts_with(&reported)),
                "{reported:?} not in {violations:?}"
            );
        }
    }
    // Every family writes before the first restart (at least 1.5 s of healthy work), and every
    // restart wipes everything: each family has lost some.
    assert_eq!(families_with_losses, Family::ALL.len(), "{:?}", report.families);
    assert!(report.to_json()["lost"].as_u64().unwrap() > 0);
    assert_eq!(report.to_json()["ok"], serde_json::Value::Bool(false));
}

#[tokio::test]
async fn a_fault_the_topology_cannot_take_is_refused_before_any_work() {
    let mut options = Options::new(Duration::from_secs(1));
    options.faults = vec![FaultKind::SentinelFailover];
    let error = soak::run(options).await.unwrap_err();
    assert!(
        error.contains("single topology cannot take a sentinel failover"),
        "{error}"
    );
}
