//! `statehouse_combined_batch_size`: the size of every combined round of
//! concurrent updates of one key, recorded once the metrics are switched
//! on, and only then. Its own test binary: the recorder and the switch are
//! process-global, as in an application.

#![cfg(feature = "memory")]
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use statehouse::layers::{COMBINED_BATCH_SIZE, record_metrics};
use statehouse::{Ports, Statehouse, Update};
use statehouse_memory::MemoryStore;

/// Every histogram's samples, by `name{label=value,…}`.
#[derive(Debug, Default, Clone)]
struct Samples(Arc<Mutex<BTreeMap<String, Vec<f64>>>>);

struct Cell {
    name: String,
    samples: Samples,
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        let mut samples = self.samples.0.lock().unwrap();
        samples.entry(self.name.clone()).or_default().push(value);
    }
}

impl Recorder for Samples {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        Histogram::from_arc(Arc::new(Cell {
            name: format!("{}{{{}}}", key.name(), labels.join(",")),
            samples: self.clone(),
        }))
    }
}

/// 16 tasks × 50 `+1` updates of one document; the count is exact.
async fn hammer(state: &Statehouse, key: &str) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let docs = state.documents();
        let key = key.to_owned();
        tasks.spawn(async move {
            for _ in 0..50 {
                docs.update(&key, |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                    .await
                    .unwrap();
            }
        });
    }
    tasks.join_all().await;
    assert_eq!(state.documents().get::<u64>(key).await.unwrap(), Some(800));
}

/// A synced model: one counter.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Tally {
    n: u64,
}

impl statehouse::SyncedModel for Tally {
    fn id(&self) -> String {
        String::new()
    }
}

/// 16 tasks × 50 `+1` modifies of one synced model; the count is exact.
async fn hammer_model(state: &Statehouse) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let state = state.clone();
        tasks.spawn(async move {
            let mut tally = statehouse::Synced::<Tally>::load(&state, "hot").await.unwrap();
            for _ in 0..50 {
                tally.modify(|tally| tally.n += 1).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
    let tally = statehouse::Synced::<Tally>::load(state, "hot").await.unwrap();
    assert_eq!(tally.value().n, 800);
}

/// 16 tasks × 50 updates of one config entry through one store; the last
/// version is 800.
async fn hammer_config(state: &Statehouse, name: &str) {
    let config = state.config();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16u64 {
        let (config, name) = (config.clone(), name.to_owned());
        tasks.spawn(async move {
            for n in 0..50 {
                config.update(&name, &(task * 100 + n)).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
    assert_eq!(config.versions(name).await.unwrap(), [800]);
}

#[test]
fn combined_rounds_report_their_sizes_when_metrics_are_on() {
    let samples = Samples::default();
    metrics::set_global_recorder(samples.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let name = format!("{COMBINED_BATCH_SIZE}{{op=update}}");
    let config = format!("{COMBINED_BATCH_SIZE}{{op=config_update}}");
    runtime.block_on(async {
        // Off (the default): nothing recorded.
        hammer(&Statehouse::memory(), "off").await;
        hammer_config(&Statehouse::memory(), "off").await;
        assert!(samples.0.lock().unwrap().is_empty());

        record_metrics(true);
        hammer(&Statehouse::memory(), "on").await;
        let sizes = samples.0.lock().unwrap().get(&name).cloned().unwrap_or_default();
        // Each of the 800 updates was served by exactly one round.
        assert_eq!(sizes.iter().sum::<f64>(), 800.0, "{sizes:?}");
        assert!(
            sizes.iter().all(|&size| (1.0..=64.0).contains(&size)),
            "{sizes:?}"
        );
        // Synced models' rounds, under their port's operation.
        hammer_model(&Statehouse::memory()).await;
        let models = format!("{COMBINED_BATCH_SIZE}{{op=update_model}}");
        let sizes = samples
            .0
            .lock()
            .unwrap()
            .get(&models)
            .cloned()
            .unwrap_or_default();
        assert_eq!(sizes.iter().sum::<f64>(), 800.0, "{sizes:?}");
        hammer_config(&Statehouse::memory(), "on").await;
        let sizes = samples
            .0
            .lock()
            .unwrap()
            .get(&config)
            .cloned()
            .unwrap_or_default();
        assert_eq!(sizes.iter().sum::<f64>(), 800.0, "{config}: {sizes:?}");
        assert!(
            sizes.iter().all(|&size| (1.0..=64.0).contains(&size)),
            "{config}: {sizes:?}"
        );

        // Combining off: no rounds, nothing recorded.
        samples.0.lock().unwrap().clear();
        let off = Statehouse::from_ports(Ports::of(MemoryStore::new().with_combining(false)));
        hammer(&off, "uncombined").await;
        hammer_config(&off, "uncombined").await;
        assert_eq!(samples.0.lock().unwrap().get(&name), None);
        assert_eq!(samples.0.lock().unwrap().get(&config), None);
        record_metrics(false);
    });
}
