//! Atomic updates: what they write, their conflicts and retries.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use statehouse::{ErrorKind, KeyTtl, RetryPolicy, SetOptions, StoreError, Update};

use super::expect_kind;
use crate::contract::Backend;

pub async fn update_creates_changes_keeps_and_deletes(backend: Backend) {
    let docs = backend.docs();
    let created = docs
        .update("n", |n: Option<u32>| Update::Set(n.map_or(1, |n| n + 1)))
        .await;
    assert_eq!(created.unwrap(), Some(1));
    assert_eq!(
        docs.update("n", |n: Option<u32>| Update::Set(n.unwrap() * 10))
            .await
            .unwrap(),
        Some(10)
    );
    assert_eq!(
        docs.update("n", |_: Option<u32>| Update::Keep).await.unwrap(),
        Some(10)
    );
    assert_eq!(docs.get::<u32>("n").await.unwrap(), Some(10));
    assert_eq!(
        docs.update("n", |_: Option<u32>| Update::Delete).await.unwrap(),
        None
    );
    assert!(!docs.exists("n").await.unwrap());
    assert_eq!(
        docs.update("n", |_: Option<u32>| Update::Keep).await.unwrap(),
        None
    );
    assert_eq!(
        docs.update("n", |_: Option<u32>| Update::Delete).await.unwrap(),
        None
    );
    assert!(!docs.exists("n").await.unwrap());
}

pub async fn update_keeps_the_ttl(backend: Backend) {
    let docs = backend.docs();
    docs.set_with_ttl("lease", &1u32, Duration::from_secs(10))
        .await
        .unwrap();
    docs.update("lease", |n: Option<u32>| Update::Set(n.unwrap() + 1))
        .await
        .unwrap();
    assert!(matches!(docs.ttl("lease").await.unwrap(), KeyTtl::ExpiresIn(_)));
    assert!(docs.expire("lease", Duration::from_millis(100)).await.unwrap());
    docs.update("lease", |n: Option<u32>| Update::Set(n.unwrap() + 1))
        .await
        .unwrap();
    backend.elapse(Duration::from_millis(250)).await;
    assert!(
        !docs.exists("lease").await.unwrap(),
        "the update must not make the key persistent"
    );
}

#[derive(Debug, PartialEq)]
enum Refusal {
    Store(String),
    TooBig(u32),
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Refusal::Store(error.to_string())
    }
}

pub async fn update_closure_error_writes_nothing(backend: Backend) {
    let docs = backend.docs();
    docs.set("n", &7u32).await.unwrap();
    let result = docs
        .try_update("n", |n: Option<u32>| match n {
            Some(n) if n > 5 => Err(Refusal::TooBig(n)),
            n => Ok(Update::Set(n.unwrap_or(0) + 1)),
        })
        .await;
    assert_eq!(result, Err(Refusal::TooBig(7)));
    assert_eq!(docs.get::<u32>("n").await.unwrap(), Some(7));
    // The key is usable right after an aborted update.
    assert_eq!(
        docs.update("n", |n: Option<u32>| Update::Set(n.unwrap() + 1))
            .await
            .unwrap(),
        Some(8)
    );
}

pub async fn update_of_undecodable_value_does_not_call_the_closure(backend: Backend) {
    let docs = backend.docs();
    docs.set_raw("n", "not a number", SetOptions::new())
        .await
        .unwrap();
    let calls = AtomicU32::new(0);
    let result = docs
        .update("n", |n: Option<u32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            Update::Set(n.unwrap_or(0))
        })
        .await;
    let error = expect_kind(result, ErrorKind::Deserialization, "n");
    assert!(error.to_string().contains("u32"), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        docs.get_raw("n").await.unwrap().as_deref(),
        Some(&b"not a number"[..])
    );
}

/// A stored value of another shape than the closure's `T` (valid JSON, not
/// a `T`) is a decoding error naming the key, through `update` and
/// `try_update` alike, never `Aborted`; the closure never runs and nothing
/// is written.
pub async fn update_of_a_value_of_another_shape_is_deserialization_naming_the_key(backend: Backend) {
    let docs = backend.docs();
    docs.set("n", &"seven").await.unwrap();
    let calls = AtomicU32::new(0);
    let result = docs
        .update("n", |n: Option<u32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            Update::Set(n.unwrap_or(0))
        })
        .await;
    let error = expect_kind(result, ErrorKind::Deserialization, "n");
    assert!(error.to_string().contains("u32"), "names the type: {error}");
    assert!(!error.to_string().contains("seven"), "no data in errors: {error}");
    let result = docs
        .try_update("n", |n: Option<u32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, StoreError>(Update::Set(n.unwrap_or(0)))
        })
        .await;
    expect_kind(result, ErrorKind::Deserialization, "n");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the closure never sees it");
    assert_eq!(docs.get::<String>("n").await.unwrap().as_deref(), Some("seven"));
}

/// The template race: 16 workers x 250 increments through `update` must end
/// at exactly 4,000, and every increment must have seen a distinct value.
pub async fn concurrent_updates_lose_nothing(backend: Backend) {
    const WORKERS: u64 = 16;
    const INCREMENTS: u64 = 250;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let docs = backend.docs();
        workers.spawn(async move {
            let mut seen = Vec::with_capacity(INCREMENTS as usize);
            for _ in 0..INCREMENTS {
                let now = docs
                    .update("counter", |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                    .await
                    .unwrap();
                seen.push(now.unwrap());
            }
            seen
        });
    }
    let seen: Vec<u64> = workers.join_all().await.into_iter().flatten().collect();
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(seen.len() as u64, WORKERS * INCREMENTS);
    assert_eq!(
        distinct.len() as u64,
        WORKERS * INCREMENTS,
        "two updates saw the same value"
    );
    assert_eq!(distinct.last().copied(), Some(WORKERS * INCREMENTS));
    assert_eq!(
        backend.docs().get::<u64>("counter").await.unwrap(),
        Some(WORKERS * INCREMENTS)
    );
}

/// Forces exactly one conflict: the closure's first run writes the key
/// through another path, so the first commit must fail and the closure run
/// again on the new value.
pub async fn conflict_reruns_the_closure_exactly_twice(backend: Backend) {
    let docs = backend.docs();
    docs.set("contended", &1u64).await.unwrap();
    let interferer = backend.docs();
    let runtime = tokio::runtime::Handle::current();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let result = docs
        .update("contended", |n: Option<u64>| {
            seen.lock().unwrap().push(n);
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::task::block_in_place(|| runtime.block_on(interferer.set("contended", &100u64)))
                    .unwrap();
            }
            Update::Set(n.unwrap() + 1)
        })
        .await
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the closure runs again after a conflict"
    );
    assert_eq!(*seen.lock().unwrap(), [Some(1), Some(100)]);
    assert_eq!(result, Some(101));
    assert_eq!(docs.get::<u64>("contended").await.unwrap(), Some(101));
}

pub async fn one_attempt_policy_reports_conflict(backend: Backend) {
    let docs = backend.docs_with(RetryPolicy::no_retry());
    docs.set("contended", &1u64).await.unwrap();
    let interferer = backend.docs();
    let runtime = tokio::runtime::Handle::current();
    let calls = AtomicU32::new(0);
    let result = docs
        .update("contended", |n: Option<u64>| {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::block_in_place(|| runtime.block_on(interferer.set("contended", &100u64))).unwrap();
            Update::Set(n.unwrap() + 1)
        })
        .await;
    match result {
        Err(StoreError::Conflict { op, key, attempts }) => {
            assert_eq!((op, key.as_str(), attempts), ("update", "contended", 1));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        docs.get::<u64>("contended").await.unwrap(),
        Some(100),
        "nothing of ours was written"
    );
}

/// A write of the same value, or a delete and re-create, still counts as a
/// change: optimistic updates compare "was it written", not "does it look
/// the same" (no ABA).
pub async fn rewriting_the_same_value_still_conflicts(backend: Backend) {
    let docs = backend.docs();
    let interferer = backend.docs();
    let runtime = tokio::runtime::Handle::current();
    for interference in ["same value", "delete and re-create"] {
        docs.set("aba", &1u64).await.unwrap();
        let calls = AtomicU32::new(0);
        let result = docs
            .update("aba", |n: Option<u64>| {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::task::block_in_place(|| {
                        runtime.block_on(async {
                            if interference == "delete and re-create" {
                                interferer.delete("aba").await.unwrap();
                            }
                            interferer.set("aba", &1u64).await.unwrap();
                        })
                    });
                }
                Update::Set(n.unwrap() + 1)
            })
            .await
            .unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "{interference}: the closure must run again"
        );
        assert_eq!(result, Some(2), "{interference}");
    }
}
