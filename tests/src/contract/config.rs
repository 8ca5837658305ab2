//! Contract: the config store ([`statehouse::ConfigStore`]) over the
//! document port and the change feed. Two stores over one backend have
//! caches of their own, like two processes.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use statehouse::{ConfigStore, ErrorKind, Snapshot, Versioned};
use tokio::sync::watch;

use super::Backend;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Limits {
    rate: u32,
    burst: u32,
}

fn limits(rate: u32) -> Limits {
    Limits {
        rate,
        burst: 2 * rate,
    }
}

fn store(backend: &Backend) -> ConfigStore {
    ConfigStore::new(backend.documents.clone(), backend.changes.clone())
}

const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until the watcher's snapshot satisfies `done`.
async fn until<T: Clone>(
    rx: &mut watch::Receiver<Snapshot<T>>,
    what: &str,
    done: impl FnMut(&Snapshot<T>) -> bool,
) -> Snapshot<T> {
    match tokio::time::timeout(PATIENCE, rx.wait_for(done)).await {
        Ok(Ok(snapshot)) => snapshot.clone(),
        Ok(Err(_)) => panic!("the watcher closed while waiting for {what}"),
        Err(_) => panic!("no {what} within {PATIENCE:?}"),
    }
}

fn at_version<T>(version: u64) -> impl FnMut(&Snapshot<T>) -> bool {
    move |snapshot| {
        snapshot
            .current
            .as_ref()
            .is_some_and(|current| current.version == version)
    }
}

pub async fn plain_mode_bumps_the_version_and_keeps_one_value(backend: Backend) {
    let config = store(&backend);
    assert_eq!(config.fetch::<Limits>("api").await.unwrap(), None);
    assert_eq!(config.versions("api").await.unwrap(), Vec::<u64>::new());
    assert_eq!(config.update("api", &limits(1)).await.unwrap(), 1);
    assert_eq!(config.update("api", &limits(2)).await.unwrap(), 2);
    assert_eq!(
        config.fetch_versioned::<Limits>("api").await.unwrap(),
        Some(Versioned {
            version: 2,
            value: limits(2)
        })
    );
    assert_eq!(config.cached_version("api"), Some(2));
    assert_eq!(config.versions("api").await.unwrap(), [2]);
    assert_eq!(config.fetch_version::<Limits>("api", 1).await.unwrap(), None);
}

pub async fn history_mode_keeps_a_bounded_history(backend: Backend) {
    let config = store(&backend).with_history(2);
    for rate in 1..=5 {
        assert_eq!(
            config.update("api", &limits(rate)).await.unwrap(),
            u64::from(rate)
        );
    }
    assert_eq!(config.versions("api").await.unwrap(), [5, 4, 3]);
    assert_eq!(
        config.fetch_version::<Limits>("api", 3).await.unwrap(),
        Some(limits(3))
    );
    assert_eq!(config.fetch_version::<Limits>("api", 2).await.unwrap(), None);
    let history = config.history("api").await.unwrap();
    assert_eq!(
        history.iter().map(|entry| entry.version).collect::<Vec<_>>(),
        [5, 4, 3]
    );
    assert_eq!(config.fetch::<Limits>("api").await.unwrap(), Some(limits(5)));
    // A handle that chose no mode keeps the entry's.
    store(&backend).update("api", &limits(6)).await.unwrap();
    assert_eq!(config.versions("api").await.unwrap(), [6, 5, 4]);
}

pub async fn update_if_is_a_compare_and_set(backend: Backend) {
    let (mine, theirs) = (store(&backend), store(&backend));
    assert_eq!(mine.update_if("flag", 0, &true).await.unwrap(), 1);
    assert_eq!(theirs.update_if("flag", 1, &false).await.unwrap(), 2);
    let error = mine.update_if("flag", 1, &true).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    assert_eq!(error.key(), "flag");
    assert!(
        error.to_string().contains("expected version 1, found 2"),
        "{error}"
    );
    assert_eq!(mine.fetch::<bool>("flag").await.unwrap(), Some(false));
    assert_eq!(mine.versions("flag").await.unwrap(), [2]);
}

pub async fn concurrent_writers_get_distinct_consecutive_versions(backend: Backend) {
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let config = store(&backend);
            tokio::spawn(async move {
                let mut versions = Vec::new();
                for n in 0..25 {
                    versions.push(config.update("counter", &(writer * 100 + n)).await.unwrap());
                }
                versions
            })
        })
        .collect();
    let mut versions = Vec::new();
    for writer in writers {
        versions.extend(writer.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=100).collect::<Vec<u64>>());
}

pub async fn a_remote_update_reaches_the_cache_and_the_watchers(backend: Backend) {
    let (writer, reader) = (store(&backend), store(&backend));
    writer.update("api", &limits(1)).await.unwrap();
    assert_eq!(reader.fetch::<Limits>("api").await.unwrap(), Some(limits(1)));
    let mut rx = reader.watch::<Limits>("api").await.unwrap();
    assert_eq!(rx.borrow().current.as_ref().map(|c| c.version), Some(1));
    writer.update("api", &limits(2)).await.unwrap();
    let seen = until(&mut rx, "version 2", at_version(2)).await;
    assert_eq!(seen.current.unwrap().value, limits(2));
    // The cache was refreshed by the same event before the watcher heard.
    assert_eq!(reader.cached_version("api"), Some(2));
    assert_eq!(reader.fetch::<Limits>("api").await.unwrap(), Some(limits(2)));
    writer.delete("api").await.unwrap();
    until(&mut rx, "the delete", |snapshot| snapshot.current.is_none()).await;
    assert_eq!(reader.fetch::<Limits>("api").await.unwrap(), None);
    assert_eq!(reader.cached_version("api"), None);
}

pub async fn bad_data_names_key_and_version_and_keeps_the_last_good_value(backend: Backend) {
    let (writer, reader) = (store(&backend), store(&backend));
    writer.update("api", &limits(1)).await.unwrap();
    let mut rx = reader.watch::<Limits>("api").await.unwrap();
    writer.update("api", &"not limits").await.unwrap();
    let seen = until(&mut rx, "the bad version", |snapshot| snapshot.error.is_some()).await;
    let error = seen.error.unwrap();
    assert_eq!((error.name.as_str(), error.version), ("api", Some(2)));
    assert_eq!(
        seen.current.unwrap().value,
        limits(1),
        "the last good value stays"
    );
    let fetched = reader.fetch::<Limits>("api").await.unwrap_err();
    assert_eq!(fetched.kind(), ErrorKind::Deserialization, "{fetched}");
    assert_eq!(fetched.key(), "api");
    assert!(fetched.to_string().contains("version 2"), "{fetched}");
    // The watcher keeps running: the next good version arrives.
    writer.update("api", &limits(3)).await.unwrap();
    let seen = until(&mut rx, "version 3", at_version(3)).await;
    assert_eq!(seen.error, None);
}

pub async fn rapid_updates_end_with_every_watcher_on_the_last_value(backend: Backend) {
    let writer = store(&backend);
    writer.update("hot", &0u32).await.unwrap();
    let mut watchers = Vec::new();
    for _ in 0..3 {
        let reader = store(&backend);
        let rx = reader.watch::<u32>("hot").await.unwrap();
        watchers.push((reader, rx));
    }
    for n in 1..=1000u32 {
        writer.update("hot", &n).await.unwrap();
    }
    for (reader, rx) in &mut watchers {
        let seen = until(rx, "the last value", at_version(1001)).await;
        assert_eq!(seen.current.unwrap().value, 1000);
        assert_eq!(reader.fetch::<u32>("hot").await.unwrap(), Some(1000));
    }
}

pub async fn names_are_escaped_and_validated(backend: Backend) {
    let config = store(&backend);
    config.update("a:b*", &1).await.unwrap();
    config.update("a", &2).await.unwrap();
    assert_eq!(config.fetch::<u32>("a:b*").await.unwrap(), Some(1));
    assert_eq!(
        backend.docs().list_keys("config:*").await.unwrap(),
        ["config:a", "config:a%3Ab%2A"]
    );
    let error = config.update("", &1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
}

pub async fn a_stale_cache_costs_a_retry_never_a_wrong_version(backend: Backend) {
    let (mine, theirs) = (store(&backend), store(&backend));
    assert_eq!(mine.update("rate", &limits(1)).await.unwrap(), 1);
    assert_eq!(mine.fetch::<Limits>("rate").await.unwrap(), Some(limits(1)));
    // Another writer moves on; this handle's cache may still hold version 1
    // when it writes: the swap is refused and retried from what is stored.
    assert_eq!(theirs.update("rate", &limits(2)).await.unwrap(), 2);
    assert_eq!(mine.update("rate", &limits(3)).await.unwrap(), 3);
    assert_eq!(theirs.update("rate", &limits(4)).await.unwrap(), 4);
    assert_eq!(mine.update_if("rate", 4, &limits(5)).await.unwrap(), 5);
    let error = mine.update_if("rate", 4, &limits(6)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    assert!(
        error.to_string().contains("expected version 4, found 5"),
        "{error}"
    );
    assert_eq!(theirs.versions("rate").await.unwrap(), [5]);
    assert_eq!(
        mine.cached_version("rate"),
        Some(5),
        "the cache took its own write"
    );
}

/// What one call of a 16-task run answered: the version written with its
/// value, or refused (a conflict), or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Wrote(u64, u64),
    Refused,
    Cancelled,
}

/// 16 tasks × `each` calls of `call(config, task, n)` through one store
/// (clones of it, so concurrent updates are combined into rounds), each
/// task's calls one after another. Checks that the versions written are
/// distinct overall and increasing per task; returns them with their
/// values, in version order, and how many calls wrote nothing (refused or
/// cancelled).
async fn sixteen_tasks<Fut>(
    config: &ConfigStore,
    each: u64,
    call: fn(ConfigStore, u64, u64) -> Fut,
) -> (Vec<(u64, u64)>, u64)
where
    Fut: Future<Output = Call> + Send + 'static,
{
    const TASKS: u64 = 16;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let config = config.clone();
        tasks.spawn(async move {
            let mut calls = Vec::with_capacity(each as usize);
            for n in 0..each {
                calls.push(call(config.clone(), task, n).await);
            }
            calls
        });
    }
    let mut written = Vec::new();
    let mut nothing = 0;
    for (task, calls) in tasks.join_all().await.into_iter().enumerate() {
        let mut last = 0;
        for call in calls {
            match call {
                Call::Wrote(version, value) => {
                    assert!(version > last, "task {task}: version {version} after {last}");
                    last = version;
                    written.push((version, value));
                }
                Call::Refused | Call::Cancelled => nothing += 1,
            }
        }
    }
    written.sort_unstable();
    assert!(
        written.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "a version given twice"
    );
    (written, nothing)
}

/// The versions written are 1, 2, … with none left out.
fn assert_consecutive(written: &[(u64, u64)]) {
    assert_eq!(
        written.iter().map(|&(version, _)| version).collect::<Vec<_>>(),
        (1..=written.len() as u64).collect::<Vec<_>>(),
        "every caller's version distinct, consecutive overall"
    );
}

/// An update of `hot` to a value of its own.
async fn update_hot(config: ConfigStore, task: u64, n: u64) -> Call {
    let value = task * 1000 + n;
    Call::Wrote(config.update("hot", &value).await.unwrap(), value)
}

/// The last of `written` is what the entry `name` holds, read by a store
/// with an empty cache.
async fn ends_at_the_last(backend: &Backend, name: &str, written: &[(u64, u64)]) {
    let &(version, value) = written.last().unwrap();
    assert_eq!(
        store(backend).fetch_versioned::<u64>(name).await.unwrap(),
        Some(Versioned { version, value })
    );
}

pub async fn sixteen_tasks_updating_one_entry_get_consecutive_versions_and_watchers_the_last(
    backend: Backend,
) {
    const EACH: u64 = 50;
    let config = store(&backend);
    let reader = store(&backend);
    let mut rx = reader.watch::<u64>("hot").await.unwrap();
    let (written, _) = sixteen_tasks(&config, EACH, update_hot).await;
    assert_eq!(written.len() as u64, 16 * EACH);
    assert_consecutive(&written);
    ends_at_the_last(&backend, "hot", &written).await;
    let &(last, value) = written.last().unwrap();
    assert_eq!(
        config.fetch_versioned::<u64>("hot").await.unwrap(),
        Some(Versioned { version: last, value }),
        "the writers' store reads its own writes"
    );
    let seen = until(&mut rx, "the last version", at_version(last)).await;
    assert_eq!(
        seen.current.unwrap().value,
        value,
        "the caller's value at its version"
    );
}

pub async fn combined_updates_in_history_mode_keep_every_value_in_version_order(backend: Backend) {
    const EACH: u64 = 25;
    let config = store(&backend).with_history(16 * EACH as usize);
    let (written, _) = sixteen_tasks(&config, EACH, update_hot).await;
    assert_eq!(written.len() as u64, 16 * EACH);
    assert_consecutive(&written);
    // Newest first, every version down to 1, each with its caller's value.
    let expected: Vec<(u64, serde_json::Value)> = written
        .iter()
        .rev()
        .map(|&(version, value)| (version, serde_json::json!(value)))
        .collect();
    let held: Vec<(u64, serde_json::Value)> = config
        .history("hot")
        .await
        .unwrap()
        .into_iter()
        .map(|entry| (entry.version, entry.value))
        .collect();
    assert_eq!(held, expected);
}

/// A version the entry never reaches.
const NEVER: u64 = 1_000_000;

/// An update of `mix`, or an `update_if` of it expecting the version just
/// read (written as the next, or refused: another writer got there first),
/// or one expecting a version never reached (refused).
async fn update_or_update_if(config: ConfigStore, task: u64, n: u64) -> Call {
    let value = task * 1000 + n;
    let expected = match (task + n) % 4 {
        0 => NEVER,
        1 => config
            .fetch_versioned::<u64>("mix")
            .await
            .unwrap()
            .map_or(0, |entry| entry.version),
        _ => return Call::Wrote(config.update("mix", &value).await.unwrap(), value),
    };
    match config.update_if("mix", expected, &value).await {
        Ok(version) => {
            assert_eq!(version, expected + 1);
            Call::Wrote(version, value)
        }
        Err(error) => {
            assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
            assert!(
                error
                    .to_string()
                    .contains(&format!("expected version {expected},")),
                "{error}"
            );
            Call::Refused
        }
    }
}

pub async fn a_conflicting_update_if_fails_alone_among_combined_updates(backend: Backend) {
    const EACH: u64 = 40;
    let (written, refused) = sixteen_tasks(&store(&backend), EACH, update_or_update_if).await;
    assert_eq!(written.len() as u64 + refused, 16 * EACH);
    assert!(refused >= 16 * EACH / 4, "every impossible update_if was refused");
    assert_consecutive(&written);
    ends_at_the_last(&backend, "mix", &written).await;
}

/// An update of `cancel`, every third one cancelled at once or a little
/// later: before, during or after its round.
async fn update_or_cancel(config: ConfigStore, task: u64, n: u64) -> Call {
    let value = task * 1000 + n;
    let update = config.update("cancel", &value);
    if !(task + n).is_multiple_of(3) {
        return Call::Wrote(update.await.unwrap(), value);
    }
    let wait = Duration::from_micros(50 * (n % 7));
    match tokio::time::timeout(wait, update).await {
        Ok(version) => Call::Wrote(version.unwrap(), value),
        Err(_) => Call::Cancelled,
    }
}

pub async fn a_cancelled_update_takes_only_its_own_version(backend: Backend) {
    const EACH: u64 = 60;
    let (written, cancelled) = sixteen_tasks(&store(&backend), EACH, update_or_cancel).await;
    let stored = store(&backend)
        .fetch_versioned::<u64>("cancel")
        .await
        .unwrap()
        .map_or(0, |entry| entry.version);
    // Every completed update took one version; a cancelled one at most one.
    let completed = written.len() as u64;
    assert!(
        stored >= completed && stored <= completed + cancelled,
        "stored {stored}, completed {completed}, cancelled {cancelled}"
    );
    assert!(written.last().is_none_or(|&(last, _)| last <= stored));
}
