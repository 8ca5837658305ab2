//! Contract: concurrent updates of one key from one store are combined
//! (`Combiner`, ports) into rounds that behave exactly like the updates
//! run one after another: every closure that counted saw the value the
//! previous one left, a closure that errors or keeps affects only its
//! caller, and a cancelled caller takes only its own closure with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use statehouse::Update;

use crate::contract::Backend;

/// Checks that `(input, output)` pairs form one chain from nothing:
/// `None -> 1`, `1 -> 2`, ..., each link once, ending at `last`.
fn assert_one_chain(pairs: &[(Option<u64>, u64)], last: u64) {
    let mut links: BTreeMap<u64, u64> = BTreeMap::new();
    for &(input, output) in pairs {
        let from = input.unwrap_or(0);
        assert_eq!(output, from + 1, "a closure's output is its input plus one");
        assert!(
            links.insert(from, output).is_none(),
            "two committed closures saw the same value {from}"
        );
    }
    assert_eq!(links.len() as u64, last, "one link per committed update");
    assert_eq!(
        links.keys().copied().collect::<Vec<_>>(),
        (0..last).collect::<Vec<_>>()
    );
}

pub async fn sixteen_tasks_updating_one_key_form_one_chain(backend: Backend) {
    const TASKS: u64 = 16;
    const EACH: u64 = 500;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let docs = backend.docs();
        tasks.spawn(async move {
            let mut pairs = Vec::with_capacity(EACH as usize);
            for _ in 0..EACH {
                let mut seen = None;
                let out = docs
                    .update("hot", |n: Option<u64>| {
                        seen = n;
                        Update::Set(n.unwrap_or(0) + 1)
                    })
                    .await
                    .unwrap()
                    .unwrap();
                pairs.push((seen, out));
            }
            pairs
        });
    }
    let pairs: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    assert_one_chain(&pairs, TASKS * EACH);
    assert_eq!(
        backend.docs().get::<u64>("hot").await.unwrap(),
        Some(TASKS * EACH)
    );
}

#[derive(Debug, PartialEq)]
struct Refused(u64);

impl From<statehouse::StoreError> for Refused {
    fn from(error: statehouse::StoreError) -> Self {
        panic!("unexpected store error: {error}")
    }
}

pub async fn an_erroring_or_keeping_closure_affects_only_its_caller(backend: Backend) {
    const TASKS: u64 = 16;
    const EACH: u64 = 200;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let docs = backend.docs();
        tasks.spawn(async move {
            let mut pairs = Vec::new();
            for round in 0..EACH {
                match (task + round) % 4 {
                    // Refuses: nothing written, its own error back.
                    0 => {
                        let mut seen = None;
                        let result = docs
                            .try_update("mixed", |n: Option<u64>| {
                                seen = n;
                                Err::<Update<u64>, _>(Refused(n.unwrap_or(0)))
                            })
                            .await;
                        assert_eq!(result, Err(Refused(seen.unwrap_or(0))));
                    }
                    // Keeps: answers the value it saw, writes nothing.
                    1 => {
                        let mut seen = None;
                        let kept = docs
                            .update("mixed", |n: Option<u64>| {
                                seen = n;
                                Update::Keep
                            })
                            .await
                            .unwrap();
                        assert_eq!(kept, seen, "a keeping closure gets the value it saw");
                    }
                    _ => {
                        let mut seen = None;
                        let out = docs
                            .update("mixed", |n: Option<u64>| {
                                seen = n;
                                Update::Set(n.unwrap_or(0) + 1)
                            })
                            .await
                            .unwrap()
                            .unwrap();
                        pairs.push((seen, out));
                    }
                }
            }
            pairs
        });
    }
    let pairs: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    let increments = pairs.len() as u64;
    assert_eq!(increments, TASKS * EACH / 2);
    assert_one_chain(&pairs, increments);
    assert_eq!(
        backend.docs().get::<u64>("mixed").await.unwrap(),
        Some(increments)
    );
}

/// An update's new value, or `None` if the caller leading its round was
/// cancelled while its write was out (the outcome is unknown, as it is for
/// the cancelled caller itself: a `Connection` error naming the key).
fn outcome(result: Result<Option<u64>, statehouse::StoreError>) -> Option<u64> {
    match result {
        Ok(value) => Some(value.expect("a value after Set")),
        Err(error) => {
            assert_eq!(error.kind(), statehouse::ErrorKind::Connection, "{error}");
            assert_eq!(error.key(), "cancel", "{error}");
            None
        }
    }
}

pub async fn a_cancelled_caller_takes_only_its_own_closure(backend: Backend) {
    const TASKS: u64 = 16;
    const EACH: u64 = 100;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let docs = backend.docs();
        let done = done.clone();
        tasks.spawn(async move {
            let mut pairs = Vec::new();
            let mut cancelled = 0u64;
            let mut unknown = 0u64;
            for round in 0..EACH {
                let mut seen = None;
                let update = docs.update("cancel", |n: Option<u64>| {
                    seen = n;
                    Update::Set(n.unwrap_or(0) + 1)
                });
                if (task + round) % 3 == 0 {
                    // Cancelled at once or a little later: before, during
                    // or after its round.
                    let wait = Duration::from_micros(50 * (round % 7));
                    match tokio::time::timeout(wait, update).await {
                        Ok(out) => match outcome(out) {
                            Some(out) => pairs.push((seen, out)),
                            None => unknown += 1,
                        },
                        Err(_) => cancelled += 1,
                    }
                } else {
                    match outcome(update.await) {
                        Some(out) => pairs.push((seen, out)),
                        None => unknown += 1,
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (pairs, cancelled + unknown)
        });
    }
    let mut pairs = Vec::new();
    let mut cancelled = 0;
    for (mine, dropped) in tasks.join_all().await {
        pairs.extend(mine);
        cancelled += dropped;
    }
    assert_eq!(done.load(Ordering::Relaxed), TASKS * EACH, "no caller hung");
    let stored = backend.docs().get::<u64>("cancel").await.unwrap().unwrap_or(0);
    let completed = pairs.len() as u64;
    // Every completed update counted once; a cancelled one (or one whose
    // round's leader was cancelled while writing) at most once.
    assert!(
        stored >= completed && stored <= completed + cancelled,
        "stored {stored}, completed {completed}, cancelled {cancelled}"
    );
    let mut links = BTreeMap::new();
    for (input, output) in pairs {
        assert_eq!(output, input.unwrap_or(0) + 1);
        assert!(links.insert(input, output).is_none(), "two updates saw {input:?}");
    }
}
