//! Contract: the change feed ([`statehouse_ports::ChangeFeed`]).
//!
//! On Redis, events of plain writes and expiry need keyspace notifications;
//! the suite's shared server has them on (`harness::SHARED_ARGS`). Events of
//! announced writes do not (`tests/tests/redis_changes.rs` checks that on a
//! server without them).

use std::time::Duration;

use statehouse::{RetryPolicy, SetOptions, Update};
use statehouse_ports::{
    ChangeEvent, ChangeKind, DEFAULT_FEED_CAPACITY, FeedEvent, Key, KeyPattern, ResyncReason, Subscription,
    Watched,
};

use statehouse_ports::{ErrorKind, KeyTtl, Swapped, Ttl};

use super::Backend;

/// How long a test waits for an event that must come.
const PATIENCE: Duration = Duration::from_secs(10);

fn key(name: &str) -> Key {
    Key::new(name).unwrap()
}

/// Waits for the first event `wanted` accepts, returning it and every
/// change event seen before it.
pub async fn wait_for(
    sub: &mut Subscription,
    what: &str,
    mut wanted: impl FnMut(&FeedEvent) -> bool,
) -> (FeedEvent, Vec<ChangeEvent>) {
    let mut before = Vec::new();
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            match sub.next().await {
                Some(event) if wanted(&event) => return event,
                Some(FeedEvent::Change(change)) => before.push(change),
                Some(FeedEvent::Resync(_)) => {}
                None => panic!("the feed ended while waiting for {what}"),
            }
        }
    })
    .await;
    match found {
        Ok(event) => (event, before),
        Err(_) => panic!("no {what} within {PATIENCE:?}; saw {before:?}"),
    }
}

fn is_change(event: &FeedEvent, key: &str, kind: ChangeKind) -> bool {
    matches!(event, FeedEvent::Change(change) if change.key == key && change.kind == kind)
}

async fn announce(backend: &Backend, name: &str, value: Option<&str>, version: Option<u64>) {
    let value = value.map(|value| value.as_bytes().to_vec());
    backend
        .changes
        .update_announced(&key(name), RetryPolicy::default(), &mut |_| {
            let decision = match &value {
                Some(value) => Update::Set(value.clone()),
                None => Update::Delete,
            };
            Ok((decision, version))
        })
        .await
        .unwrap();
}

pub async fn a_subscription_starts_with_a_resync(backend: Backend) {
    let mut sub = backend
        .changes
        .subscribe(&Watched::Key(key("k")), DEFAULT_FEED_CAPACITY)
        .await
        .unwrap();
    assert_eq!(
        sub.next().await,
        Some(FeedEvent::Resync(ResyncReason::Subscribed))
    );
}

pub async fn announced_writes_arrive_with_their_version(backend: Backend) {
    let mut sub = backend
        .changes
        .subscribe(&Watched::Key(key("cfg")), DEFAULT_FEED_CAPACITY)
        .await
        .unwrap();
    announce(&backend, "cfg", Some("1"), Some(7)).await;
    announce(&backend, "cfg", None, None).await;
    let (set, _) = wait_for(&mut sub, "the announced set", |event| {
        matches!(event, FeedEvent::Change(change) if change.kind == ChangeKind::Set && change.version.is_some())
    })
    .await;
    assert_eq!(
        set,
        FeedEvent::Change(ChangeEvent {
            key: "cfg".into(),
            kind: ChangeKind::Set,
            version: Some(7),
        })
    );
    let (_, between) = wait_for(&mut sub, "the delete", |event| {
        is_change(event, "cfg", ChangeKind::Deleted)
    })
    .await;
    assert!(
        between.iter().all(|change| change.kind == ChangeKind::Set),
        "events of one key arrive in commit order: {between:?}"
    );
}

pub async fn plain_writes_deletes_and_expiry_arrive(backend: Backend) {
    let docs = backend.docs();
    let mut sub = backend
        .changes
        .subscribe(&Watched::Key(key("doc")), DEFAULT_FEED_CAPACITY)
        .await
        .unwrap();
    docs.set("doc", &1).await.unwrap();
    wait_for(&mut sub, "set", |event| is_change(event, "doc", ChangeKind::Set)).await;
    docs.delete("doc").await.unwrap();
    wait_for(&mut sub, "deleted", |event| {
        is_change(event, "doc", ChangeKind::Deleted)
    })
    .await;
    docs.set_with_ttl("doc", &2, Duration::from_millis(50))
        .await
        .unwrap();
    wait_for(&mut sub, "set with a TTL", |event| {
        is_change(event, "doc", ChangeKind::Set)
    })
    .await;
    backend.elapse(Duration::from_millis(400)).await;
    let (_, between) = wait_for(&mut sub, "expired", |event| {
        is_change(event, "doc", ChangeKind::Expired)
    })
    .await;
    assert!(between.is_empty(), "nothing else happened: {between:?}");
    assert_eq!(docs.get::<u32>("doc").await.unwrap(), None);
}

pub async fn keys_and_patterns_see_only_what_they_watch(backend: Backend) {
    let by_keys = Watched::Keys(vec![key("a"), key("b*"), key("end")]);
    let by_pattern = Watched::Pattern(KeyPattern::new("p:*").unwrap());
    let mut keys_sub = backend.changes.subscribe(&by_keys, 64).await.unwrap();
    let mut pattern_sub = backend.changes.subscribe(&by_pattern, 64).await.unwrap();
    for name in ["a", "b", "bx", "b*", "c", "p:1", "p", "q:1", "p:2"] {
        announce(&backend, name, Some("1"), Some(1)).await;
    }
    announce(&backend, "end", Some("1"), Some(1)).await;
    announce(&backend, "p:end", Some("1"), Some(1)).await;
    // Every watched key arrives; nothing else does. Changes of one key
    // arrive in order, but on a cluster those of keys on different
    // primaries may not (each primary tells its own), so this waits for
    // every watched key rather than for the last one written.
    let mut names = wait_for_keys(&mut keys_sub, &["a", "b*", "end"]).await;
    names.sort_unstable();
    names.dedup();
    assert_eq!(
        names,
        ["a", "b*", "end"],
        "a key with a glob character is watched verbatim"
    );
    let mut names = wait_for_keys(&mut pattern_sub, &["p:1", "p:2", "p:end"]).await;
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, ["p:1", "p:2", "p:end"]);
}

/// The keys of the changes `sub` delivers until every one of `wanted` has
/// come (any other key included, to be checked by the caller).
async fn wait_for_keys(sub: &mut Subscription, wanted: &[&str]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let done = tokio::time::timeout(PATIENCE, async {
        while !wanted.iter().all(|key| seen.iter().any(|seen| seen == key)) {
            match sub.next().await {
                Some(FeedEvent::Change(change)) => seen.push(change.key.as_str().to_owned()),
                Some(FeedEvent::Resync(_)) => {}
                None => panic!("the feed ended while waiting for {wanted:?}"),
            }
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "not all of {wanted:?} within {PATIENCE:?}; saw {seen:?}"
    );
    seen
}

pub async fn a_slow_subscriber_lags_without_holding_up_the_others(backend: Backend) {
    let watched = Watched::Key(key("hot"));
    let mut slow = backend.changes.subscribe(&watched, 4).await.unwrap();
    let mut fast = backend
        .changes
        .subscribe(&watched, DEFAULT_FEED_CAPACITY)
        .await
        .unwrap();
    for version in 1..=50 {
        announce(&backend, "hot", Some("v"), Some(version)).await;
    }
    // The fast one sees every version, in order, while the slow one reads
    // nothing.
    let mut versions = Vec::new();
    wait_for(&mut fast, "version 50", |event| {
        if let FeedEvent::Change(ChangeEvent {
            version: Some(version),
            ..
        }) = event
        {
            versions.push(*version);
        }
        versions.last() == Some(&50)
    })
    .await;
    assert_eq!(versions, (1..=50).collect::<Vec<_>>());
    // The slow one gets what fit, then the lag, never a silent loss.
    let mut buffered = 0;
    loop {
        match tokio::time::timeout(PATIENCE, slow.next()).await {
            Ok(Some(FeedEvent::Resync(ResyncReason::Lagged))) => break,
            Ok(Some(_)) => buffered += 1,
            other => panic!("expected the lag, got {other:?}"),
        }
    }
    assert!(buffered <= 4, "{buffered} events buffered in a buffer of 4");
}

pub async fn a_dropped_subscription_stops_and_others_go_on(backend: Backend) {
    let watched = Watched::Key(key("k"));
    let dropped = backend.changes.subscribe(&watched, 4).await.unwrap();
    let mut kept = backend.changes.subscribe(&watched, 4).await.unwrap();
    drop(dropped);
    for version in 1..=3 {
        announce(&backend, "k", Some("v"), Some(version)).await;
        let (event, _) = wait_for(
            &mut kept,
            "the write",
            |event| matches!(event, FeedEvent::Change(change) if change.version == Some(version)),
        )
        .await;
        assert!(matches!(event, FeedEvent::Change(_)));
    }
}

pub async fn a_ttl_change_alone_is_no_event(backend: Backend) {
    let docs = backend.docs();
    docs.set("k", &1).await.unwrap();
    let mut sub = backend
        .changes
        .subscribe(&Watched::Key(key("k")), DEFAULT_FEED_CAPACITY)
        .await
        .unwrap();
    docs.expire("k", Duration::from_secs(60)).await.unwrap();
    backend
        .documents
        .set(&key("k"), b"2", SetOptions::new())
        .await
        .unwrap();
    let (_, before) = wait_for(&mut sub, "the set", |event| {
        is_change(event, "k", ChangeKind::Set)
    })
    .await;
    assert!(before.is_empty(), "{before:?}");
}

async fn swap(backend: &Backend, name: &str, expected: Option<&str>, new: &str, version: u64) -> Swapped {
    backend
        .changes
        .swap_announced(
            &key(name),
            expected.map(str::as_bytes),
            new.as_bytes(),
            Some(version),
        )
        .await
        .unwrap()
}

pub async fn a_swap_on_a_match_writes_and_announces_in_one_step(backend: Backend) {
    let mut sub = backend
        .changes
        .subscribe(&Watched::Key(key("sw")), DEFAULT_FEED_CAPACITY)
        .await
        .unwrap();
    assert_eq!(swap(&backend, "sw", None, "a", 1).await, Swapped::Swapped);
    assert_eq!(swap(&backend, "sw", Some("a"), "b", 2).await, Swapped::Swapped);
    assert_eq!(
        backend.documents.get(&key("sw")).await.unwrap().as_deref(),
        Some(&b"b"[..])
    );
    let mut versions = Vec::new();
    wait_for(&mut sub, "version 2", |event| {
        if let FeedEvent::Change(ChangeEvent {
            key,
            kind: ChangeKind::Set,
            version: Some(version),
        }) = event
        {
            assert_eq!(key, "sw");
            versions.push(*version);
        }
        versions.last() == Some(&2)
    })
    .await;
    assert_eq!(versions, [1, 2], "each swap announced once, in commit order");
}

pub async fn a_swap_on_a_mismatch_answers_the_current_bytes_and_writes_nothing(backend: Backend) {
    backend
        .documents
        .set(&key("x"), b"a", SetOptions::new())
        .await
        .unwrap();
    let mut sub = backend
        .changes
        .subscribe(&Watched::Keys(vec![key("x"), key("y")]), DEFAULT_FEED_CAPACITY)
        .await
        .unwrap();
    assert_eq!(
        swap(&backend, "x", Some("z"), "b", 5).await,
        Swapped::Refused(Some(b"a".to_vec()))
    );
    assert_eq!(
        swap(&backend, "x", None, "b", 5).await,
        Swapped::Refused(Some(b"a".to_vec())),
        "absent expected, present found"
    );
    assert_eq!(
        swap(&backend, "y", Some("a"), "b", 5).await,
        Swapped::Refused(None),
        "present expected, absent found"
    );
    assert_eq!(
        backend.documents.get(&key("x")).await.unwrap().as_deref(),
        Some(&b"a"[..])
    );
    assert_eq!(backend.documents.get(&key("y")).await.unwrap(), None);
    // The next event is the next write's: the refusals announced nothing.
    assert_eq!(swap(&backend, "y", None, "c", 9).await, Swapped::Swapped);
    let (_, before) = wait_for(
        &mut sub,
        "the swap of y",
        |event| matches!(event, FeedEvent::Change(change) if change.version == Some(9)),
    )
    .await;
    // (Redis may also tell the same write by keyspace notification.)
    assert!(
        before
            .iter()
            .all(|change| change.key == "y" && change.kind == ChangeKind::Set && change.version.is_none()),
        "refusals are no events: {before:?}"
    );
}

pub async fn a_swap_keeps_the_ttl(backend: Backend) {
    let ttl = Ttl::from_secs(60).unwrap();
    backend
        .documents
        .set(&key("t"), b"a", SetOptions::new().ttl(ttl))
        .await
        .unwrap();
    assert_eq!(swap(&backend, "t", Some("a"), "b", 2).await, Swapped::Swapped);
    match backend.documents.ttl(&key("t")).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(
            left > Duration::from_secs(50) && left <= Duration::from_secs(60),
            "{left:?}"
        ),
        other => panic!("the TTL was lost: {other:?}"),
    }
    assert_eq!(swap(&backend, "p", None, "a", 1).await, Swapped::Swapped);
    assert_eq!(
        backend.documents.ttl(&key("p")).await.unwrap(),
        KeyTtl::Persistent,
        "a new key has no TTL"
    );
}

pub async fn a_swap_of_a_key_of_another_type_is_wrong_type(backend: Backend) {
    backend.plant_hash("h").await;
    for expected in [None, Some(&b"a"[..])] {
        let error = backend
            .changes
            .swap_announced(&key("h"), expected, b"b", Some(1))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
        assert_eq!(error.key(), "h");
    }
    let still = backend.documents.get(&key("h")).await.unwrap_err();
    assert_eq!(
        still.kind(),
        ErrorKind::WrongType,
        "the hash is still there: {still}"
    );
}
