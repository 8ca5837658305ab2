//! Reads and writes of typed values, `MGET`, TTLs, conditional writes,
//! deletes and keys of another type.

use std::time::Duration;

use statehouse::{ErrorKind, KeyTtl, SetOptions, Update};

use super::{Profile, ada, expect_kind};
use crate::contract::Backend;

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
