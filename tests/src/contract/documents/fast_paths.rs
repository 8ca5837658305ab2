//! Server-side fast paths: `increment` and `append`, one round trip each,
//! atomic, with the same refusals as the tenant increment.

use std::collections::BTreeSet;
use std::time::Duration;

use statehouse::{ErrorKind, KeyTtl};

use super::expect_kind;
use crate::contract::Backend;

pub async fn increment_adds_keeps_the_ttl_and_starts_missing_keys_at_zero(backend: Backend) {
    let docs = backend.docs();
    assert_eq!(docs.increment("hits", 5).await.unwrap(), 5);
    assert_eq!(docs.ttl("hits").await.unwrap(), KeyTtl::Persistent);
    assert_eq!(docs.increment("hits", -7).await.unwrap(), -2);
    assert_eq!(docs.get::<i64>("hits").await.unwrap(), Some(-2));
    assert_eq!(docs.get_raw("hits").await.unwrap().as_deref(), Some(&b"-2"[..]));

    docs.set_with_ttl("lease", &40i64, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(docs.increment("lease", 2).await.unwrap(), 42);
    assert!(matches!(docs.ttl("lease").await.unwrap(), KeyTtl::ExpiresIn(_)));
    assert!(docs.expire("lease", Duration::from_millis(100)).await.unwrap());
    docs.increment("lease", 1).await.unwrap();
    backend.elapse(Duration::from_millis(250)).await;
    assert!(!docs.exists("lease").await.unwrap(), "the increment kept the TTL");
}

pub async fn increment_refuses_non_integers_overflow_and_other_types_writing_nothing(backend: Backend) {
    let docs = backend.docs();
    for (key, text) in [
        ("float", &b"7.5"[..]),
        ("string", b"\"7\""),
        ("padded", b" 7"),
        ("zero-led", b"07"),
        ("object", b"{\"n\":1}"),
    ] {
        docs.set_raw(key, text, Default::default()).await.unwrap();
        let error = expect_kind(docs.increment(key, 1).await, ErrorKind::Deserialization, key);
        assert!(error.to_string().contains("integer"), "{error}");
        assert_eq!(docs.get_raw(key).await.unwrap().as_deref(), Some(text), "{key}");
    }
    docs.set("big", &(i64::MAX - 1)).await.unwrap();
    expect_kind(docs.increment("big", 2).await, ErrorKind::InvalidInput, "big");
    assert_eq!(docs.get::<i64>("big").await.unwrap(), Some(i64::MAX - 1));
    docs.set("small", &i64::MIN).await.unwrap();
    expect_kind(
        docs.increment("small", -1).await,
        ErrorKind::InvalidInput,
        "small",
    );
    assert_eq!(docs.increment("big", 1).await.unwrap(), i64::MAX);

    backend.plant_hash("h").await;
    expect_kind(docs.increment("h", 1).await, ErrorKind::WrongType, "h");
    expect_kind(docs.increment("", 1).await, ErrorKind::InvalidInput, "");
}

pub async fn append_extends_an_array_keeps_its_text_and_ttl(backend: Backend) {
    let docs = backend.docs();
    assert_eq!(docs.append("inbox", "a").await.unwrap(), 1);
    assert_eq!(
        docs.append("inbox", &serde_json::json!({"b": [1, null]}))
            .await
            .unwrap(),
        2
    );
    assert_eq!(docs.append("inbox", &()).await.unwrap(), 3);
    assert_eq!(
        docs.get_raw("inbox").await.unwrap().as_deref(),
        Some(&br#"["a",{"b":[1,null]},null]"#[..])
    );
    assert_eq!(docs.ttl("inbox").await.unwrap(), KeyTtl::Persistent);

    // Another client's formatting up to the closing bracket stays as it is.
    docs.set_raw("spaced", b"[ 1, 2 ]\n", Default::default())
        .await
        .unwrap();
    assert_eq!(docs.append("spaced", &3).await.unwrap(), 3);
    assert_eq!(
        docs.get_raw("spaced").await.unwrap().as_deref(),
        Some(&b"[ 1, 2 ,3]\n"[..])
    );
    docs.set_raw("empty", b"[ ]", Default::default()).await.unwrap();
    assert_eq!(docs.append("empty", "x").await.unwrap(), 1);
    assert_eq!(
        docs.get::<Vec<String>>("empty").await.unwrap(),
        Some(vec!["x".to_owned()])
    );

    docs.set_with_ttl("log", &Vec::<u8>::new(), Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(docs.append("log", &1).await.unwrap(), 1);
    assert!(matches!(docs.ttl("log").await.unwrap(), KeyTtl::ExpiresIn(_)));
    backend.elapse(Duration::from_millis(250)).await;
    assert!(!docs.exists("log").await.unwrap(), "the append kept the TTL");
}

pub async fn append_refuses_non_arrays_and_other_types_writing_nothing(backend: Backend) {
    let docs = backend.docs();
    for (key, text) in [
        ("object", &b"{\"a\":1}"[..]),
        ("empty-object", b"{}"),
        ("number", b"7"),
        ("string", b"\"[1]\""),
        ("broken", b"[1,"),
        ("not-json", b"]"),
    ] {
        docs.set_raw(key, text, Default::default()).await.unwrap();
        let error = expect_kind(docs.append(key, &1).await, ErrorKind::Deserialization, key);
        assert!(error.to_string().contains("array"), "{error}");
        assert_eq!(docs.get_raw(key).await.unwrap().as_deref(), Some(text), "{key}");
    }
    backend.plant_hash("h").await;
    expect_kind(docs.append("h", &1).await, ErrorKind::WrongType, "h");
    let raw = backend.documents.clone();
    let key = statehouse_ports::Key::new("raw").unwrap();
    let error = raw.append(&key, b"{not json").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(!docs.exists("raw").await.unwrap());
}

pub async fn increments_and_appends_from_16_tasks_end_exact(backend: Backend) {
    const TASKS: i64 = 16;
    const EACH: i64 = 100;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let docs = backend.docs();
        tasks.spawn(async move {
            let mut seen = Vec::new();
            for i in 0..EACH {
                seen.push(docs.increment("counter", 1).await.unwrap());
                docs.append("items", &(task * EACH + i)).await.unwrap();
            }
            seen
        });
    }
    let seen: Vec<i64> = tasks.join_all().await.into_iter().flatten().collect();
    let distinct: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(
        distinct.len() as i64,
        TASKS * EACH,
        "two increments answered the same value"
    );
    assert_eq!(distinct.last().copied(), Some(TASKS * EACH));
    let docs = backend.docs();
    assert_eq!(docs.get::<i64>("counter").await.unwrap(), Some(TASKS * EACH));
    let items: BTreeSet<i64> = docs
        .get::<Vec<i64>>("items")
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(items, (0..TASKS * EACH).collect());
}
