//! Metrics of every port call through the [`metrics`] facade, recorded by
//! [`Traced`](super::Traced)'s policy (the layer every `Statehouse` stack
//! has) and by [`Retrying`](super::Retrying) for its retries; and, below
//! the ports, by the Redis adapter for its pool waits and the failovers it
//! follows.
//!
//! statehouse installs no recorder and depends on no exporter: the
//! application installs one (`metrics::set_global_recorder`, e.g. a
//! Prometheus exporter's), then switches recording on with
//! [`record_metrics`]. Off (the default), a call costs one relaxed atomic
//! load more and allocates nothing. The switch is THE one of the process,
//! kept in the ports crate ([`statehouse_ports::metrics_on`]) so that the
//! adapters read it too.
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `statehouse_calls_total` | counter | `op`, `outcome` (`ok` or the error kind) | every completed call |
//! | `statehouse_call_seconds` | histogram | `op` | how long each completed call took |
//! | `statehouse_errors_total` | counter | `op`, `kind` ([`ErrorKind::as_str`](statehouse_ports::ErrorKind::as_str)) | failed calls by kind (`connection` and `timeout` are the network's) |
//! | `statehouse_conflicts_total` | counter | `op` | conflicts of optimistic updates: each attempt a concurrent writer voided (attempts − 1 of a successful update, every attempt of one that gave up) |
//! | `statehouse_retries_total` | counter | `op` | temporary failures [`Retrying`](super::Retrying) tried again |
//! | `statehouse_wait_shortfalls_total` | counter | `op` | writes applied on the primary but confirmed by fewer replicas than the [`Durability`](statehouse_ports::Durability) asks (`WAIT` fell short: `not_durable` errors) |
//! | `statehouse_pool_wait_seconds` | histogram | none | how long a WATCH section (an update, a claim, …) waited for a pooled dedicated connection, a wait that failed or timed out included (Redis adapter) |
//! | `statehouse_failovers_total` | counter | `topology` (`sentinel`, `cluster`) | failovers the store followed: a switch to another Sentinel primary; a cluster slot map in which a replica took over its primary's slots (a slot moved by resharding is none) (Redis adapter) |
//! | `statehouse_combined_batch_size` | histogram | `op` | callers served by each combined round of concurrent updates of one key (`docs/hotkeys.md`; recorded by the adapter, or the config store, where a round ends, through [`combined_round`]) |
//!
//! `op` is the port operation (`get`, `update`, `save`, `enqueue`, …),
//! never a key or a value. A call the caller cancelled (its future
//! dropped) is not counted.
//!
//! Reconnections of the shared connection happen inside redis-rs and are
//! not counted: calls see them as `connection` and `timeout` errors.

use std::future::Future;
use std::time::Instant;

use statehouse_ports::{ErrorKind, StoreError};
pub use statehouse_ports::{FAILOVERS, POOL_WAIT_SECONDS, metrics_on};

/// Completed calls, by `op` and `outcome`.
pub const CALLS: &str = "statehouse_calls_total";
/// Call durations in seconds, by `op`.
pub const CALL_SECONDS: &str = "statehouse_call_seconds";
/// Failed calls, by `op` and `kind`.
pub const ERRORS: &str = "statehouse_errors_total";
/// Conflicts of optimistic updates, by `op`.
pub const CONFLICTS: &str = "statehouse_conflicts_total";
/// Retries of temporary failures by `Retrying`, by `op`.
pub const RETRIES: &str = "statehouse_retries_total";
/// Writes whose replicas fell short of the durability asked (`WAIT`), by `op`.
pub const WAIT_SHORTFALLS: &str = "statehouse_wait_shortfalls_total";

/// Switches the recording of metrics on (or off) for every `Statehouse` of
/// the process. Install a recorder first (`metrics::set_global_recorder`);
/// switching on also describes the metrics to it.
///
/// ```
/// // With an exporter's recorder installed:
/// statehouse::layers::record_metrics(true);
/// ```
pub fn record_metrics(on: bool) {
    if on {
        metrics::describe_counter!(CALLS, "statehouse port calls completed, by op and outcome");
        metrics::describe_histogram!(
            CALL_SECONDS,
            metrics::Unit::Seconds,
            "statehouse port call durations, by op"
        );
        metrics::describe_counter!(ERRORS, "statehouse port calls failed, by op and error kind");
        metrics::describe_counter!(
            CONFLICTS,
            "statehouse optimistic update attempts voided by a concurrent writer"
        );
        metrics::describe_counter!(
            RETRIES,
            "statehouse temporary failures retried by the Retrying layer"
        );
        metrics::describe_counter!(
            WAIT_SHORTFALLS,
            "statehouse writes applied but confirmed by fewer replicas than asked"
        );
        metrics::describe_histogram!(
            POOL_WAIT_SECONDS,
            metrics::Unit::Seconds,
            "statehouse WATCH sections' waits for a pooled connection"
        );
        metrics::describe_counter!(
            FAILOVERS,
            "statehouse failovers followed, by topology (sentinel, cluster)"
        );
        describe_combined_rounds();
    }
    statehouse_ports::set_metrics(on);
}

/// Callers served by each combined round, by `op`.
pub const COMBINED_BATCH_SIZE: &str = "statehouse_combined_batch_size";

/// Describes [`COMBINED_BATCH_SIZE`] and has the combiners of every store
/// of the process tell [`combined_round`] of each round that ends.
fn describe_combined_rounds() {
    metrics::describe_histogram!(
        COMBINED_BATCH_SIZE,
        metrics::Unit::Count,
        "statehouse callers served by one combined round of updates of one key, by op"
    );
    statehouse_ports::combine::observe_rounds(combined_round);
}

/// Records one combined round of `op` that served `size` callers, if
/// recording is on.
fn combined_round(op: &'static str, size: usize) {
    if metrics_on() {
        metrics::histogram!(COMBINED_BATCH_SIZE, "op" => op).record(size as f64);
    }
}

/// `call`, recorded as operation `op` once it completes.
pub(super) async fn measured<T, F>(
    op: &'static str,
    attempts: Option<fn(&T) -> u32>,
    call: F,
) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let started = Instant::now();
    let result = call.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) => error.kind().as_str(),
    };
    metrics::counter!(CALLS, "op" => op, "outcome" => outcome).increment(1);
    metrics::histogram!(CALL_SECONDS, "op" => op).record(started.elapsed().as_secs_f64());
    let conflicts = match &result {
        Ok(value) => attempts.map_or(0, |attempts| attempts(value).saturating_sub(1)),
        Err(StoreError::Conflict { attempts, .. }) => *attempts,
        Err(_) => 0,
    };
    if let Err(error) = &result {
        metrics::counter!(ERRORS, "op" => op, "kind" => outcome).increment(1);
        if error.kind() == ErrorKind::Conflict && conflicts == 0 {
            // A compare-and-set that lost (`VersionConflict`): one voided attempt.
            metrics::counter!(CONFLICTS, "op" => op).increment(1);
        }
        if error.kind() == ErrorKind::NotDurable {
            metrics::counter!(WAIT_SHORTFALLS, "op" => op).increment(1);
        }
    }
    if conflicts > 0 {
        metrics::counter!(CONFLICTS, "op" => op).increment(u64::from(conflicts));
    }
    result
}

/// Counts one retry of `op` by `Retrying`, if recording is on.
pub(super) fn retried(op: &'static str) {
    if metrics_on() {
        metrics::counter!(RETRIES, "op" => op).increment(1);
    }
}

#[cfg(test)]
mod tests {
    //! The metrics of a stack, recorded by a hand-written recorder: calls and outcomes, errors by
    //! kind, conflicts of updates, retries; nothing while recording is off.

    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString,
        Unit,
    };
    use statehouse_domain::Key as StoreKey;
    use statehouse_ports::{DocumentStore, MockDocumentStore, RetryPolicy, StoreError, Updated};

    use super::{CALL_SECONDS, CALLS, CONFLICTS, ERRORS, RETRIES, WAIT_SHORTFALLS, record_metrics};
    use crate::layers::{Retrying, Traced, transient_policy};

    /// Every counter's total and every histogram's sample count, by `name{label=value,…}`.
    #[derive(Debug, Default)]
    struct Recorded {
        counters: Mutex<BTreeMap<String, u64>>,
        samples: Mutex<BTreeMap<String, usize>>,
    }

    #[derive(Debug, Default, Clone)]
    struct TestRecorder(Arc<Recorded>);

    struct Cell {
        name: String,
        recorded: Arc<Recorded>,
    }

    impl CounterFn for Cell {
        fn increment(&self, value: u64) {
            *self
                .recorded
                .counters
                .lock()
                .unwrap()
                .entry(self.name.clone())
                .or_default() += value;
        }

        fn absolute(&self, value: u64) {
            self.recorded
                .counters
                .lock()
                .unwrap()
                .insert(self.name.clone(), value);
        }
    }

    impl HistogramFn for Cell {
        fn record(&self, value: f64) {
            assert!(value >= 0.0, "{}: {value}", self.name);
            *self
                .recorded
                .samples
                .lock()
                .unwrap()
                .entry(self.name.clone())
                .or_default() += 1;
        }
    }

    impl TestRecorder {
        fn cell(&self, key: &Key) -> Arc<Cell> {
            let mut labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            Arc::new(Cell {
                name: format!("{}{{{}}}", key.name(), labels.join(",")),
                recorded: self.0.clone(),
            })
        }

        fn counter(&self, name: &str) -> u64 {
            self.0.counters.lock().unwrap().get(name).copied().unwrap_or(0)
        }

        fn samples(&self, name: &str) -> usize {
            self.0.samples.lock().unwrap().get(name).copied().unwrap_or(0)
        }

        fn is_empty(&self) -> bool {
            self.0.counters.lock().unwrap().is_empty() && self.0.samples.lock().unwrap().is_empty()
        }
    }

    impl Recorder for TestRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.cell(key))
        }

        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }

        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.cell(key))
        }
    }

    fn down(op: &'static str) -> StoreError {
        StoreError::Connection {
            op,
            key: "k".to_owned(),
            source: "down".into(),
        }
    }

    /// A store whose `get` fails twice with a connection error then answers, whose `exists` times
    /// out, and whose updates took 3 attempts, then gave up after 5.
    fn store() -> MockDocumentStore {
        let mut mock = MockDocumentStore::new();
        let mut gets = 0;
        mock.expect_get().returning(move |_| {
            gets += 1;
            if gets <= 2 { Err(down("get")) } else { Ok(None) }
        });
        mock.expect_exists().returning(|_| {
            Err(StoreError::Timeout {
                op: "exists",
                key: "k".to_owned(),
                after: std::time::Duration::from_millis(1),
            })
        });
        mock.expect_set().returning(|_, _, _| {
            Err(StoreError::NotDurable {
                op: "set",
                key: "k".to_owned(),
                wanted: 1,
                confirmed: 0,
                timeout: std::time::Duration::from_millis(1),
            })
        });
        let mut updates = 0;
        mock.expect_update().returning(move |_, _, _| {
            updates += 1;
            if updates == 1 {
                Ok(Updated {
                    value: None,
                    attempts: 3,
                })
            } else {
                Err(StoreError::Conflict {
                    op: "update",
                    key: "k".to_owned(),
                    attempts: 5,
                })
            }
        });
        mock
    }

    /// Runs `calls` on a current-thread runtime with `recorder` as this thread's recorder.
    fn with_recorder(recorder: &TestRecorder, calls: impl Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        metrics::with_local_recorder(recorder, || runtime.block_on(calls));
    }

    async fn calls(stack: &dyn DocumentStore) {
        let key = StoreKey::new("k").unwrap();
        assert_eq!(stack.get(&key).await.unwrap(), None);
        assert!(stack.exists(&key).await.is_err());
        let mut set_one = |_: Option<&[u8]>| Ok(statehouse_ports::Update::Set(b"1".to_vec()));
        assert_eq!(
            stack
                .update(&key, RetryPolicy::default(), &mut set_one)
                .await
                .unwrap()
                .attempts,
            3
        );
        let err = stack
            .update(&key, RetryPolicy::default(), &mut set_one)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { attempts: 5, .. }), "{err:?}");
        let options = statehouse_ports::SetOptions::default();
        let err = stack.set(&key, b"1", options).await.unwrap_err();
        assert!(matches!(err, StoreError::NotDurable { .. }), "{err:?}");
    }

    #[test]
    fn calls_errors_conflicts_and_retries_are_recorded_only_when_switched_on() {
        // Off (the default): nothing reaches the recorder.
        let recorder = TestRecorder::default();
        let stack = Traced::new(Retrying::new(store(), transient_policy(3)));
        with_recorder(&recorder, calls(&stack));
        assert!(recorder.is_empty(), "{:?}", recorder.0);

        record_metrics(true);
        assert!(
            statehouse_ports::metrics_on(),
            "one switch: the one the adapters read"
        );
        let recorder = TestRecorder::default();
        let stack = Traced::new(Retrying::new(store(), transient_policy(3)));
        with_recorder(&recorder, calls(&stack));
        let got = |name: &str| recorder.counter(name);
        assert_eq!(got(&format!("{CALLS}{{op=get,outcome=ok}}")), 1);
        assert_eq!(
            got(&format!("{RETRIES}{{op=get}}")),
            2,
            "two connection errors retried"
        );
        assert_eq!(got(&format!("{CALLS}{{op=exists,outcome=timeout}}")), 1);
        assert_eq!(got(&format!("{ERRORS}{{kind=timeout,op=exists}}")), 1);
        assert_eq!(
            got(&format!("{RETRIES}{{op=exists}}")),
            2,
            "a timed-out read is retried too"
        );
        assert_eq!(got(&format!("{CALLS}{{op=update,outcome=ok}}")), 1);
        assert_eq!(got(&format!("{CALLS}{{op=update,outcome=conflict}}")), 1);
        assert_eq!(got(&format!("{ERRORS}{{kind=conflict,op=update}}")), 1);
        assert_eq!(
            got(&format!("{CONFLICTS}{{op=update}}")),
            2 + 5,
            "2 conflicts before the third attempt committed, 5 before giving up"
        );
        assert_eq!(
            got(&format!("{RETRIES}{{op=update}}")),
            0,
            "updates are never retried by the layer"
        );
        assert_eq!(got(&format!("{WAIT_SHORTFALLS}{{op=set}}")), 1);
        assert_eq!(got(&format!("{ERRORS}{{kind=not_durable,op=set}}")), 1);
        assert_eq!(
            got(&format!("{RETRIES}{{op=set}}")),
            0,
            "a write that was applied is not retried"
        );
        assert_eq!(recorder.samples(&format!("{CALL_SECONDS}{{op=get}}")), 1);
        assert_eq!(recorder.samples(&format!("{CALL_SECONDS}{{op=update}}")), 2);
        // Labels are operations and outcomes, never keys.
        for name in recorder.0.counters.lock().unwrap().keys() {
            assert!(!name.contains("=k,") && !name.contains("=k}"), "{name}");
        }
    }
}
