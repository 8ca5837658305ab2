//! Listings and glob patterns; keys with glob characters; invalid keys.

use statehouse::{ErrorKind, KeyPattern, Update};

use super::expect_kind;
use crate::contract::Backend;

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
