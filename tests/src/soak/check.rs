//! The check after the run: every family's writes read back on a fresh `Statehouse` (nothing
//! cached, nothing in flight), against the accounting.

use std::time::{Duration, Instant};

use statehouse::{Settings, Statehouse, StoreError};

use super::engine::Shared;
use super::ledger::{CounterCheck, FamilyCheck, Items};
use super::task::{TaskStats, Written};
use super::{PREFIX, config, documents, queues, subjects, tasks, tenants, triggers};

/// How long a read of the check may keep failing (the topology has recovered from its last fault,
/// but a replica may still be catching up) before the soak gives up.
const READ_BACK_LIMIT: Duration = Duration::from_secs(30);

/// Runs `read` until it succeeds, for at most [`READ_BACK_LIMIT`].
///
/// # Panics
///
/// If it still fails then (naming `what` and the last error): the check cannot count.
pub(super) async fn read_back<T, F, Fut>(what: &str, mut read: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + READ_BACK_LIMIT;
    loop {
        match read().await {
            Ok(value) => return value,
            Err(error) if Instant::now() >= deadline => {
                panic!("soak: the check cannot read {what} after the run: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Reads back each task's items with `read` (given a clone of `state`, the task and its items;
/// returning an owner for examples, the items and the item numbers found), the tasks
/// concurrently.
pub(super) async fn read_items<F, Fut>(
    state: &Statehouse,
    written: Vec<(usize, Items)>,
    read: F,
) -> Vec<(String, Items, Vec<u64>)>
where
    F: Fn(Statehouse, usize, Items) -> Fut,
    Fut: Future<Output = (String, Items, Vec<u64>)> + Send + 'static,
{
    let mut reads = tokio::task::JoinSet::new();
    for (task, items) in written {
        reads.spawn(read(state.clone(), task, items));
    }
    let mut found = Vec::new();
    while let Some(joined) = reads.join_next().await {
        found.push(joined.unwrap());
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The check of every family, in [`Family::ALL`](super::Family::ALL) order, and every counter.
///
/// # Panics
///
/// If the topology at `url` cannot be read back (see [`read_back`]).
pub(super) async fn after_run(
    url: String,
    shared: &Shared,
    written: Vec<(usize, Written)>,
    stats: &mut TaskStats,
) -> (Vec<FamilyCheck>, Vec<CounterCheck>) {
    let mut settings = Settings::new(url);
    settings.prefix = PREFIX.to_owned();
    settings.connect_timeout = Duration::from_secs(5);
    settings.response_timeout = Duration::from_secs(5);
    let state = read_back("the topology", || Statehouse::with_settings(settings.clone())).await;

    let mut own = Vec::new();
    let (mut task_records, mut trigger_items, mut queue_items) = (Vec::new(), Vec::new(), Vec::new());
    for (task, written) in written {
        own.extend(written.own);
        task_records.push((task, written.tasks));
        trigger_items.push((task, written.triggers));
        queue_items.push((task, written.queue_items));
    }

    let mut counters = Vec::new();
    let (documents, of_documents) = documents::check(&state, shared, &own, stats).await;
    counters.extend(of_documents);
    let tasks = tasks::check(&state, task_records).await;
    let (subjects, of_subjects) = subjects::check(&state, shared).await;
    counters.extend(of_subjects);
    let (tenants, of_tenants) = tenants::check(&state, shared).await;
    counters.extend(of_tenants);
    let triggers = triggers::check(&state, trigger_items).await;
    let queues = queues::check(&state, queue_items).await;
    let (config, of_config) = config::check(&state, shared).await;
    counters.extend(of_config);
    (
        vec![documents, tasks, subjects, tenants, triggers, queues, config],
        counters,
    )
}
