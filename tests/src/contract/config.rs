//! Contract: the config store ([`statehouse::ConfigStore`]) over the
//! document port and the change feed. Two stores over one backend have
//! caches of their own, like two processes.

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
