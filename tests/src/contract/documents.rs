//! Contract: typed documents ([`statehouse_ports::DocumentStore`] through the `Documents` facade).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use statehouse::{ErrorKind, KeyPattern, KeyTtl, RetryPolicy, SetOptions, StoreError, Update};

use super::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Admin,
    Member,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    role: Role,
    joined: DateTime<Utc>,
    tags: Vec<String>,
    manager: Option<String>,
}

fn ada() -> Profile {
    Profile {
        name: "Ada".into(),
        role: Role::Admin,
        joined: Utc.with_ymd_and_hms(2026, 11, 21, 9, 30, 0).unwrap(),
        tags: vec!["math".into(), "engines".into()],
        manager: None,
    }
}

fn expect_kind<T: std::fmt::Debug>(result: Result<T, StoreError>, kind: ErrorKind, key: &str) -> StoreError {
    let error = result.expect_err("expected an error");
    assert_eq!(error.kind(), kind, "{error}");
    assert_eq!(error.key(), key, "{error}");
    error
}

pub async fn round_trips_a_typed_value(backend: Backend) {
    let docs = backend.docs();
    docs.set("profile:1", &ada()).await.unwrap();
    assert_eq!(docs.get::<Profile>("profile:1").await.unwrap(), Some(ada()));
    // The stored form follows the documented conventions.
    let raw = String::from_utf8(docs.get_raw("profile:1").await.unwrap().unwrap()).unwrap();
    assert!(raw.contains(r#""role":"admin""#), "{raw}");
    assert!(raw.contains(r#""joined":"2026-11-21T09:30:00Z""#), "{raw}");
    assert!(docs.exists("profile:1").await.unwrap());
}

pub async fn missing_key_reads_as_none(backend: Backend) {
    let docs = backend.docs();
    assert_eq!(docs.get::<Profile>("nobody").await.unwrap(), None);
    assert_eq!(docs.get_raw("nobody").await.unwrap(), None);
    assert!(!docs.exists("nobody").await.unwrap());
    assert_eq!(docs.ttl("nobody").await.unwrap(), KeyTtl::Missing);
    assert!(!docs.delete("nobody").await.unwrap());
    assert!(!docs.expire("nobody", Duration::from_secs(5)).await.unwrap());
    assert!(
        !docs.exists("nobody").await.unwrap(),
        "expire must not create the key"
    );
}

pub async fn null_and_missing_stay_distinct(backend: Backend) {
    let docs = backend.docs();
    docs.set("nothing", &None::<u32>).await.unwrap();
    assert_eq!(
        docs.get_raw("nothing").await.unwrap().as_deref(),
        Some(&b"null"[..])
    );
    assert_eq!(docs.get::<Option<u32>>("nothing").await.unwrap(), Some(None));
    assert_eq!(docs.get::<Option<u32>>("absent").await.unwrap(), None);
}

pub async fn undecodable_value_fails_naming_key_and_type(backend: Backend) {
    let docs = backend.docs();
    docs.set_raw("broken", "{not json", SetOptions::new())
        .await
        .unwrap();
    let error = expect_kind(
        docs.get::<Profile>("broken").await,
        ErrorKind::Deserialization,
        "broken",
    );
    assert!(error.to_string().contains("Profile"), "{error}");
    // Valid JSON of the wrong shape fails the same way.
    docs.set("number", &42).await.unwrap();
    expect_kind(
        docs.get::<Profile>("number").await,
        ErrorKind::Deserialization,
        "number",
    );
    // The raw bytes are still there, untouched.
    assert_eq!(
        docs.get_raw("broken").await.unwrap().as_deref(),
        Some(&b"{not json"[..])
    );
}

pub async fn mget_reports_failure_per_key(backend: Backend) {
    let docs = backend.docs();
    docs.set("good", &ada()).await.unwrap();
    docs.set_raw("bad-json", "{oops", SetOptions::new())
        .await
        .unwrap();
    backend.plant_hash("a-hash").await;
    let keys = ["good", "missing", "bad-json", "a-hash", "", "good"];
    let results = docs.mget::<Profile>(&keys).await.unwrap();
    assert_eq!(results.len(), keys.len());
    assert_eq!(results[0].as_ref().unwrap(), &Some(ada()));
    assert_eq!(results[1].as_ref().unwrap(), &None);
    let bad = results[2].as_ref().unwrap_err();
    assert_eq!(
        (bad.kind(), bad.key()),
        (ErrorKind::Deserialization, "bad-json"),
        "{bad}"
    );
    let hash = results[3].as_ref().unwrap_err();
    assert_eq!(
        (hash.kind(), hash.key()),
        (ErrorKind::WrongType, "a-hash"),
        "{hash}"
    );
    let invalid = results[4].as_ref().unwrap_err();
    assert_eq!(invalid.kind(), ErrorKind::InvalidInput, "{invalid}");
    assert_eq!(results[5].as_ref().unwrap(), &Some(ada()));
}

pub async fn mget_keeps_order_duplicates_and_large_batches(backend: Backend) {
    let docs = backend.docs();
    assert!(docs.mget::<u32>(&[] as &[&str]).await.unwrap().is_empty());
    docs.set("a", &1u32).await.unwrap();
    docs.set("b", &2u32).await.unwrap();
    let values: Vec<Option<u32>> = docs
        .mget::<u32>(&["b", "a", "b", "c"])
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, [Some(2), Some(1), Some(2), None]);

    // More keys than one MGET command carries.
    let store = backend.documents.clone();
    let keys: Vec<String> = (0..2500).map(|i| format!("batch:{i}")).collect();
    for (i, key) in keys.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
        statehouse::Documents::new(store.clone())
            .set(key, &i)
            .await
            .unwrap();
    }
    let results = docs.mget::<usize>(&keys).await.unwrap();
    for (i, result) in results.into_iter().enumerate() {
        let expected = (i % 3 != 0).then_some(i);
        assert_eq!(result.unwrap(), expected, "batch:{i}");
    }
}

pub async fn ttl_expires_the_key(backend: Backend) {
    let docs = backend.docs();
    docs.set_with_ttl("session", &"token", Duration::from_secs(10))
        .await
        .unwrap();
    match docs.ttl("session").await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(
            left > Duration::from_secs(9) && left <= Duration::from_secs(10),
            "{left:?}"
        ),
        other => panic!("expected a TTL, got {other:?}"),
    }
    assert!(docs.expire("session", Duration::from_millis(100)).await.unwrap());
    assert!(docs.exists("session").await.unwrap());
    backend.elapse(Duration::from_millis(250)).await;
    assert_eq!(docs.get::<String>("session").await.unwrap(), None);
    assert!(!docs.exists("session").await.unwrap());
    assert_eq!(docs.ttl("session").await.unwrap(), KeyTtl::Missing);
    assert!(docs.list_keys("sess*").await.unwrap().is_empty());
    let batch = docs.mget::<String>(&["session"]).await.unwrap();
    assert_eq!(batch[0].as_ref().unwrap(), &None);
}

pub async fn set_without_ttl_clears_the_ttl(backend: Backend) {
    let docs = backend.docs();
    docs.set_with_ttl("k", &1, Duration::from_secs(10)).await.unwrap();
    docs.set("k", &2).await.unwrap();
    assert_eq!(docs.ttl("k").await.unwrap(), KeyTtl::Persistent);
    backend.elapse(Duration::from_millis(50)).await;
    assert_eq!(docs.get::<i32>("k").await.unwrap(), Some(2));
}

pub async fn zero_ttl_is_invalid_input_and_writes_nothing(backend: Backend) {
    let docs = backend.docs();
    let error = expect_kind(
        docs.set_with_ttl("k", &1, Duration::ZERO).await,
        ErrorKind::InvalidInput,
        "k",
    );
    assert!(error.to_string().contains("at least 1 ms"), "{error}");
    assert!(!docs.exists("k").await.unwrap());
    docs.set("k", &1).await.unwrap();
    expect_kind(
        docs.expire("k", Duration::ZERO).await,
        ErrorKind::InvalidInput,
        "k",
    );
    assert_eq!(docs.ttl("k").await.unwrap(), KeyTtl::Persistent);
}

pub async fn set_if_absent_and_if_present(backend: Backend) {
    let docs = backend.docs();
    assert!(docs.set_if_absent("lock", &"first").await.unwrap());
    assert!(!docs.set_if_absent("lock", &"second").await.unwrap());
    assert_eq!(
        docs.get::<String>("lock").await.unwrap().as_deref(),
        Some("first")
    );

    assert!(
        !docs
            .set_with("other", &1, SetOptions::new().if_present())
            .await
            .unwrap()
    );
    assert!(!docs.exists("other").await.unwrap());
    assert!(
        docs.set_with("lock", &"third", SetOptions::new().if_present())
            .await
            .unwrap()
    );
    assert_eq!(
        docs.get::<String>("lock").await.unwrap().as_deref(),
        Some("third")
    );

    // A condition and a TTL in the same step.
    let ttl = statehouse::Ttl::from_secs(30).unwrap();
    assert!(
        docs.set_with("lease", &1, SetOptions::new().if_absent().ttl(ttl))
            .await
            .unwrap()
    );
    assert!(matches!(docs.ttl("lease").await.unwrap(), KeyTtl::ExpiresIn(_)));
}

pub async fn delete_reports_whether_the_key_existed(backend: Backend) {
    let docs = backend.docs();
    docs.set("k", &1).await.unwrap();
    assert!(docs.delete("k").await.unwrap());
    assert!(!docs.delete("k").await.unwrap());
    assert_eq!(docs.get::<i32>("k").await.unwrap(), None);
}

pub async fn lists_ten_thousand_keys_once_each(backend: Backend) {
    const N: usize = 10_000;
    const WRITERS: usize = 16;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let docs = backend.docs();
        writers.spawn(async move {
            for i in (w..N).step_by(WRITERS) {
                docs.set(&format!("bulk:{i:05}"), &i).await.unwrap();
            }
        });
    }
    writers.join_all().await;
    let docs = backend.docs();
    for other in ["bulky", "other:1", "BULK:1"] {
        docs.set(other, &0).await.unwrap();
    }
    let listed = docs.list_keys("bulk:*").await.unwrap();
    let expected: Vec<String> = (0..N).map(|i| format!("bulk:{i:05}")).collect();
    assert_eq!(listed.len(), N, "each key exactly once");
    assert_eq!(listed, expected, "sorted, complete, without prefix");
}

pub async fn glob_patterns_match_like_redis(backend: Backend) {
    let docs = backend.docs();
    let keys = [
        "h",
        "hallo",
        "hello",
        "hllo",
        "hxllo",
        "heeeello",
        "a*b",
        "a?b",
        "axb",
        "[x]",
        "x",
        r"back\slash",
        "user:1",
        "user:10",
        "user:2",
        "users:1",
        "ü:1",
        "-",
    ];
    for key in keys {
        docs.set(key, &key).await.unwrap();
    }
    let table: &[(&str, &[&str])] = &[
        ("h?llo", &["hallo", "hello", "hxllo"]),
        ("h*llo", &["hallo", "heeeello", "hello", "hllo", "hxllo"]),
        ("h[ae]llo", &["hallo", "hello"]),
        ("h[^e]llo", &["hallo", "hxllo"]),
        ("h[a-e]llo", &["hallo", "hello"]),
        ("h[e-a]llo", &["hallo", "hello"]),
        (r"a\*b", &["a*b"]),
        ("a?b", &["a*b", "a?b", "axb"]),
        (r"a\?b", &["a?b"]),
        (r"\[x\]", &["[x]"]),
        ("[x]", &["x"]),
        (r"back\\slash", &[r"back\slash"]),
        ("user:?", &["user:1", "user:2"]),
        ("user:*", &["user:1", "user:10", "user:2"]),
        ("user*", &["user:1", "user:10", "user:2", "users:1"]),
        ("ü:*", &["ü:1"]),
        ("?:1", &[]),
        ("??:1", &["ü:1"]),
        ("[-]", &["-"]),
        ("h", &["h"]),
        ("nomatch*", &[]),
    ];
    for (pattern, expected) in table {
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        let listed = docs.list_keys(pattern).await.unwrap();
        assert_eq!(listed, expected, "pattern {pattern:?} on {}", backend.name);
    }
    let mut all: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(docs.list_keys("*").await.unwrap(), all);
}

pub async fn escaped_pattern_matches_only_the_literal(backend: Backend) {
    let docs = backend.docs();
    for key in ["lit*[1]?", "lit*[1]x", "litX[1]?", r"lit\*"] {
        docs.set(key, &1).await.unwrap();
    }
    let pattern = KeyPattern::escape("lit*[1]?");
    assert_eq!(docs.list_keys(&pattern).await.unwrap(), ["lit*[1]?"]);
    let prefixed = KeyPattern::prefixed("lit*").unwrap();
    assert_eq!(
        docs.list_keys(prefixed.as_str()).await.unwrap(),
        ["lit*[1]?", "lit*[1]x"]
    );
}

pub async fn keys_with_glob_characters_are_used_verbatim(backend: Backend) {
    let docs = backend.docs();
    docs.set("star*", &"star").await.unwrap();
    docs.set("stars", &"plain").await.unwrap();
    assert_eq!(
        docs.get::<String>("star*").await.unwrap().as_deref(),
        Some("star")
    );
    assert!(docs.delete("star*").await.unwrap());
    assert_eq!(
        docs.get::<String>("stars").await.unwrap().as_deref(),
        Some("plain")
    );
}

pub async fn invalid_keys_are_rejected_before_any_io(backend: Backend) {
    let docs = backend.docs();
    let error = expect_kind(docs.get::<u32>("").await, ErrorKind::InvalidInput, "");
    assert!(error.to_string().contains("must not be empty"), "{error}");
    let long = "k".repeat(513);
    let error = expect_kind(docs.set(&long, &1).await, ErrorKind::InvalidInput, &long);
    assert!(error.to_string().contains("at most 512 bytes"), "{error}");
    let error = expect_kind(docs.delete("a\nb").await, ErrorKind::InvalidInput, "a\nb");
    assert!(error.to_string().contains("control character"), "{error}");
    expect_kind(docs.list_keys("").await, ErrorKind::InvalidInput, "");
    expect_kind(
        docs.update("", |n: Option<u32>| Update::Set(n.unwrap_or(0)))
            .await,
        ErrorKind::InvalidInput,
        "",
    );
}

pub async fn large_and_unicode_values_round_trip(backend: Backend) {
    let docs = backend.docs();
    let big = "é".repeat(512 * 1024);
    docs.set("ключ:☃", &big).await.unwrap();
    assert_eq!(docs.get::<String>("ключ:☃").await.unwrap(), Some(big));
    assert_eq!(docs.list_keys("ключ:*").await.unwrap(), ["ключ:☃"]);
    let binary: Vec<u8> = (0..=255).collect();
    docs.set_raw("bytes", binary.clone(), SetOptions::new())
        .await
        .unwrap();
    assert_eq!(docs.get_raw("bytes").await.unwrap(), Some(binary));
}

pub async fn hash_under_a_key_is_wrong_type(backend: Backend) {
    let docs = backend.docs();
    backend.plant_hash("h").await;
    expect_kind(docs.get::<u32>("h").await, ErrorKind::WrongType, "h");
    expect_kind(docs.get_raw("h").await, ErrorKind::WrongType, "h");
    expect_kind(
        docs.update("h", |n: Option<u32>| Update::Set(n.unwrap_or(0)))
            .await,
        ErrorKind::WrongType,
        "h",
    );
    // Other operations work on any type, as in Redis.
    assert!(docs.exists("h").await.unwrap());
    assert_eq!(docs.list_keys("h").await.unwrap(), ["h"]);
    docs.set("h", &1).await.unwrap();
    assert_eq!(docs.get::<u32>("h").await.unwrap(), Some(1));
}

pub async fn ping_answers(backend: Backend) {
    let docs = backend.docs();
    docs.ping().await.unwrap();
    assert!(docs.is_alive().await);
}

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
