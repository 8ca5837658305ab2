//! The metrics the Redis adapter emits below the ports, recorded by a debugging recorder installed
//! for this test process: pool waits of WATCH sections, and the failovers a store followed, a
//! `SENTINEL FAILOVER` and a cluster primary killed (`statehouse_failovers_total{topology}`).
//! The metrics of every call (calls, errors by kind, conflicts, retries, WAIT shortfalls) are
//! recorded by the layers' own test (`app/src/layers/metered.rs`).

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use statehouse::layers::{FAILOVERS, POOL_WAIT_SECONDS, record_metrics};
use statehouse::{Statehouse, Update};
use statehouse_domain::layout::hash_slot;
use statehouse_tests::harness::{RedisCluster, SentinelSet, failover};

/// What was recorded: per `name{label=value,…}`, a counter's total or a histogram's sample count.
#[derive(Debug, Default, Clone)]
struct Debugging(Arc<Mutex<BTreeMap<String, u64>>>);

/// One metric of [`Debugging`], by its `name{labels}`.
struct Metric(String, Debugging);

impl CounterFn for Metric {
    fn increment(&self, value: u64) {
        *self.1.0.lock().unwrap().entry(self.0.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.1.0.lock().unwrap().insert(self.0.clone(), value);
    }
}

impl HistogramFn for Metric {
    fn record(&self, seconds: f64) {
        assert!(seconds >= 0.0, "{}: {seconds}", self.0);
        self.increment(1);
    }
}

impl Debugging {
    fn metric(&self, key: &Key) -> Arc<Metric> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Metric(
            format!("{}{{{}}}", key.name(), labels.join(",")),
            self.clone(),
        ))
    }

    /// The total (counter) or sample count (histogram) of `name{labels}`.
    fn get(&self, name: &str) -> u64 {
        self.0.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

impl Recorder for Debugging {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.metric(key))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.metric(key))
    }
}

/// The process's recorder, installed and switched on once (the tests of this file share it; each
/// reads only its own topology's failovers).
fn recorded() -> &'static Debugging {
    static RECORDER: OnceLock<Debugging> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = Debugging::default();
        metrics::set_global_recorder(recorder.clone()).unwrap();
        record_metrics(true);
        recorder
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Updates `key` (a WATCH section) until one succeeds and `done` holds, within `bound`; the
/// failures on the way (the failover) are expected.
fn update_until(
    runtime: &tokio::runtime::Runtime,
    state: &Statehouse,
    key: &str,
    bound: Duration,
    done: impl Fn() -> bool,
) {
    let deadline = Instant::now() + bound;
    loop {
        let updated = runtime.block_on(
            state
                .documents()
                .update(key, |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1)),
        );
        if updated.is_ok() && done() {
            return;
        }
        assert!(Instant::now() < deadline, "not within {bound:?}: {updated:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pool_waits_and_a_sentinel_failover_are_recorded() {
    let recorded = recorded();
    let set = SentinelSet::start();
    let runtime = runtime();
    let state = runtime.block_on(Statehouse::connect(&set.url())).unwrap();
    let waits = recorded.get(&format!("{POOL_WAIT_SECONDS}{{}}"));
    update_until(
        &runtime,
        &state,
        "metrics:sentinel",
        Duration::from_secs(10),
        || true,
    );
    assert!(
        recorded.get(&format!("{POOL_WAIT_SECONDS}{{}}")) > waits,
        "an update waited for a pooled connection: {recorded:?}"
    );

    let promotion = failover::sentinel_failover(&set);
    let failovers = format!("{FAILOVERS}{{topology=sentinel}}");
    update_until(&runtime, &state, "metrics:sentinel", set.failover_bound(), || {
        recorded.get(&failovers) >= 1
    });
    let topology = runtime.block_on(state.topology()).unwrap();
    let service = topology.sentinel.unwrap();
    assert_eq!(service.primary, format!("127.0.0.1:{}", promotion.new));
    assert_eq!(
        recorded.get(&failovers),
        service.switches,
        "one failover counted per switch of primary: {recorded:?}"
    );
}

#[test]
fn a_cluster_replica_taking_over_its_killed_primary_is_a_failover() {
    let recorded = recorded();
    let cluster = RedisCluster::start(3, 1);
    let runtime = runtime();
    let state = runtime.block_on(Statehouse::connect(&cluster.url())).unwrap();
    let key = "metrics:cluster";
    update_until(&runtime, &state, key, Duration::from_secs(10), || true);
    // A failover is a replica of the store's map taking over: wait until the nodes learnt the
    // replicas (by gossip, seconds after the harness is ready) and the map names them (a report
    // refreshes it).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !runtime
        .block_on(state.topology())
        .unwrap()
        .cluster
        .is_some_and(|map| map.ranges.iter().all(|range| !range.replicas.is_empty()))
    {
        assert!(
            Instant::now() < deadline,
            "the slot map names no replica per range"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let failovers = format!("{FAILOVERS}{{topology=cluster}}");
    assert_eq!(recorded.get(&failovers), 0, "{recorded:?}");

    let promotion = failover::cluster_kill_primary(&cluster, hash_slot(key.as_bytes()));
    // The store's slot map follows at its next WATCH section on that slot.
    update_until(&runtime, &state, key, cluster.failover_bound(), || {
        recorded.get(&failovers) >= 1
    });
    assert_eq!(recorded.get(&failovers), 1, "{recorded:?}");
    let topology = runtime.block_on(state.topology()).unwrap();
    let map = topology.cluster.unwrap();
    assert!(map.complete, "{map:?}");
    let new = format!("127.0.0.1:{}", promotion.new);
    assert!(map.ranges.iter().any(|range| range.primary == new), "{map:?}");
}
