//! Listings are streams: every family's listing (documents, subjects,
//! tenant records) yields each matching key once, page by page, whatever
//! is written meanwhile, and never holds more than a page.
//!
//! Orders are never assumed: a stream comes in the backend's order.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use statehouse::{KeyStream, Subjects};
use statehouse_ports::{PropertyChange, PropertyKind, PropertyName, SubjectName, SubjectSpace};

use super::Backend;

/// The page size both backends use by default (Redis: `SCAN … COUNT`).
const PAGE: usize = 1000;

/// Reads `stream` to its end page by page: every key with how often it
/// came, and the sizes of the pages.
async fn drain(mut stream: KeyStream) -> (BTreeMap<String, usize>, Vec<usize>) {
    let mut seen = BTreeMap::new();
    let mut pages = Vec::new();
    while let Some(page) = stream.next_page().await.unwrap() {
        pages.push(page.len());
        for key in page {
            *seen.entry(key).or_insert(0) += 1;
        }
    }
    (seen, pages)
}

/// Fails naming every key that did not come exactly once.
fn assert_once(seen: &BTreeMap<String, usize>, expected: &BTreeSet<String>, what: &str) {
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "{what}: repeated {repeated:?}");
    let got: BTreeSet<String> = seen.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, not asked for {extra:?}"
    );
}

fn subjects(backend: &Backend, prefix: &str) -> (Subjects, SubjectSpace) {
    let space = SubjectSpace::new(prefix);
    (Subjects::new(backend.subjects.clone(), space.clone()), space)
}

async fn store_subject(backend: &Backend, space: &SubjectSpace, name: &str) {
    let change = PropertyChange::Set {
        kind: PropertyKind::Default,
        name: PropertyName::new("v").unwrap(),
        value: json!(1),
    };
    backend
        .subjects
        .store(space, &SubjectName::new(name).unwrap(), &[change])
        .await
        .unwrap();
}

pub async fn every_family_yields_each_key_once(backend: Backend) {
    let docs = backend.docs();
    let expected: BTreeSet<String> = (0..300).map(|i| format!("once:{i}")).collect();
    for key in &expected {
        docs.set(key, &1).await.unwrap();
    }
    let (seen, _) = drain(docs.stream_keys("once:*").unwrap()).await;
    assert_once(&seen, &expected, "documents");

    let (facade, space) = subjects(&backend, "once:");
    let names: BTreeSet<String> = (0..200).map(|i| format!("s{i}")).collect();
    for name in &names {
        store_subject(&backend, &space, name).await;
    }
    let (seen, _) = drain(facade.stream("*").unwrap()).await;
    assert_once(&seen, &names, "subjects");

    let tenant = backend.tenant("once");
    let users: BTreeSet<String> = (0..200).map(|i| format!("u{i}")).collect();
    for user in &users {
        tenant.users().set_field(user, "n", &1).await.unwrap();
        tenant.tables().set_field("orders", user, "n", &1).await.unwrap();
    }
    let (seen, _) = drain(tenant.users().stream()).await;
    assert_once(&seen, &users, "users");
    let (seen, _) = drain(tenant.tables().stream("orders").unwrap()).await;
    assert_once(&seen, &users, "table rows");
    // The collecting conveniences: the same keys, sorted.
    let listed = tenant.users().list().await.unwrap();
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "sorted, once each");
    assert_eq!(listed.len(), users.len());
}

pub async fn patterns_and_prefixes_bound_every_listing(backend: Backend) {
    let docs = backend.docs();
    for key in ["p:1", "p:2", "p:x:3", "P:1", "p", "q:1", "p*[1]", "p*x"] {
        docs.set(key, &key).await.unwrap();
    }
    let table: &[(&str, &[&str])] = &[
        ("p:?", &["p:1", "p:2"]),
        ("p:*", &["p:1", "p:2", "p:x:3"]),
        ("p", &["p"]),
        ("[pq]:1", &["p:1", "q:1"]),
        (r"p\*\[1\]", &["p*[1]"]),
        ("nothing:*", &[]),
    ];
    for (pattern, expected) in table {
        let expected: BTreeSet<String> = expected.iter().map(|key| (*key).to_owned()).collect();
        let (seen, _) = drain(docs.stream_keys(pattern).unwrap()).await;
        assert_once(&seen, &expected, pattern);
    }

    // Subjects: the space's prefix is literal, and only subjects are listed.
    let (literal, space) = subjects(&backend, "sp[1]:");
    let (lookalike, other) = subjects(&backend, "sp1:");
    store_subject(&backend, &space, "a").await;
    store_subject(&backend, &space, "b").await;
    store_subject(&backend, &other, "c").await;
    docs.set("sp[1]:doc", &1).await.unwrap();
    let (seen, _) = drain(literal.stream("*").unwrap()).await;
    assert_once(&seen, &["a".into(), "b".into()].into(), "subjects of sp[1]:");
    let (seen, _) = drain(lookalike.stream("*").unwrap()).await;
    assert_once(&seen, &["c".into()].into(), "subjects of sp1:");

    // Tenants: a listing never leaves its tenant, nor its table or user.
    for id in ["acme", "acme*", "acme:x"] {
        let tenant = backend.tenant(id);
        tenant
            .users()
            .set_field(&format!("{id}-u"), "n", &1)
            .await
            .unwrap();
        tenant.tables().set_field("t", "1", "n", &1).await.unwrap();
        tenant.tables().set_field("t:x", "2", "n", &1).await.unwrap();
    }
    for id in ["acme", "acme*", "acme:x"] {
        let tenant = backend.tenant(id);
        let (seen, _) = drain(tenant.users().stream()).await;
        assert_once(&seen, &[format!("{id}-u")].into(), id);
        let (seen, _) = drain(tenant.tables().stream("t").unwrap()).await;
        assert_once(&seen, &["1".into()].into(), id);
    }
    assert!(
        docs.stream_keys("").is_err(),
        "a bad pattern fails before any I/O"
    );
}

pub async fn keys_written_during_a_listing_never_hide_the_others(backend: Backend) {
    let docs = backend.docs();
    let stable: BTreeSet<String> = (0..2500).map(|i| format!("live:stable:{i}")).collect();
    for key in &stable {
        docs.set(key, &1).await.unwrap();
    }
    let mut stream = docs.stream_keys("live:*").unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut written = 0;
    while let Some(page) = stream.next_page().await.unwrap() {
        for key in page {
            *seen.entry(key).or_insert(0) += 1;
        }
        // Between pages: new matching keys, and some of them deleted again.
        for _ in 0..200 {
            docs.set(&format!("live:new:{written}"), &1).await.unwrap();
            written += 1;
        }
        for gone in (written - 200..written).step_by(2) {
            docs.delete(&format!("live:new:{gone}")).await.unwrap();
        }
    }
    let (constant, churn): (BTreeMap<_, _>, BTreeMap<_, _>) = seen
        .into_iter()
        .partition(|(key, _)| key.starts_with("live:stable:"));
    assert_once(&constant, &stable, "keys present for the whole listing");
    assert!(
        churn
            .iter()
            .all(|(key, n)| key.starts_with("live:new:") && *n == 1),
        "keys written meanwhile may come, once each"
    );
}

pub async fn an_empty_listing_ends_at_once(backend: Backend) {
    let docs = backend.docs();
    docs.set("other", &1).await.unwrap();
    let mut stream = docs.stream_keys("empty:*").unwrap();
    assert_eq!(stream.next().await.unwrap(), None);
    assert_eq!(stream.next().await.unwrap(), None, "the end stays the end");
    assert_eq!(stream.next_page().await.unwrap(), None);
    assert!(docs.list_keys("empty:*").await.unwrap().is_empty());
    let (facade, _) = subjects(&backend, "empty:");
    assert!(facade.stream("*").unwrap().collect().await.unwrap().is_empty());
    let tenant = backend.tenant("empty");
    assert!(tenant.users().stream().collect().await.unwrap().is_empty());
    assert!(
        tenant
            .tables()
            .stream("t")
            .unwrap()
            .collect()
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tenant
            .shared_states()
            .stream("u")
            .unwrap()
            .collect()
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_listing_spans_pages_and_holds_one_page_at_a_time(backend: Backend) {
    let docs = backend.docs();
    let expected: BTreeSet<String> = (0..(2 * PAGE + PAGE / 2)).map(|i| format!("paged:{i}")).collect();
    for key in &expected {
        docs.set(key, &1).await.unwrap();
    }
    let (seen, pages) = drain(docs.stream_keys("paged:*").unwrap()).await;
    assert_once(&seen, &expected, "documents");
    assert!(pages.len() >= 2, "{} keys in {pages:?} pages", expected.len());
    // A page is one step of the listing: about the page size (on Redis, a
    // step counts the keys it examined, so it may end a bucket later).
    assert!(pages.iter().all(|&n| n < 2 * PAGE), "pages of {pages:?}");
    assert!(pages.iter().all(|&n| n > 0), "no empty page is handed out");
}
