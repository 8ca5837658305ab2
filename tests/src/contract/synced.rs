//! Contract: synced models ([`statehouse::Synced`] over the document port).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use statehouse::{ErrorKind, KeyTtl, SetOptions, Synced, SyncedModel};

use super::Backend;

/// A model that carries its id, validates, and keeps fields it does not know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Account {
    id: String,
    owner: String,
    balance: i64,
    tags: Vec<String>,
    /// Fields other services write that this one does not know.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl SyncedModel for Account {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn set_id(&mut self, id: &str) {
        self.id = id.to_owned();
    }

    fn validate(&self) -> Result<(), String> {
        if self.balance < 0 {
            return Err(format!(
                "balance must not be negative (would be {})",
                self.balance
            ));
        }
        Ok(())
    }
}

/// A model without an id field, under another type name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Hits {
    n: u64,
}

impl SyncedModel for Hits {
    fn type_name() -> &'static str {
        "PageHits"
    }

    fn id(&self) -> String {
        String::new()
    }
}

async fn load<T>(backend: &Backend, id: &str) -> Synced<T>
where
    T: SyncedModel + Serialize + for<'de> Deserialize<'de> + Default + Send,
{
    Synced::load_from(&backend.docs(), id).await.unwrap()
}

pub async fn an_absent_model_starts_from_default_and_writes_nothing(backend: Backend) {
    let account = load::<Account>(&backend, "acc-1").await;
    assert!(!account.exists());
    assert_eq!(account.key(), "Account:acc-1");
    assert_eq!(account.id(), "acc-1");
    assert_eq!(
        account.value(),
        &Account {
            id: "acc-1".into(),
            ..Account::default()
        }
    );
    assert!(!backend.docs().exists("Account:acc-1").await.unwrap());
}

pub async fn modify_writes_through_compact_json(backend: Backend) {
    let mut account = load::<Account>(&backend, "acc-1").await;
    let stored = account
        .modify(|a| {
            a.owner = "Zoë".into();
            a.balance += 10;
        })
        .await
        .unwrap()
        .clone();
    assert!(account.exists());
    assert_eq!(stored.balance, 10);
    let raw = backend.docs().get_raw("Account:acc-1").await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8(raw).unwrap(),
        r#"{"id":"acc-1","owner":"Zoë","balance":10,"tags":[]}"#
    );
    let again = load::<Account>(&backend, "acc-1").await;
    assert!(again.exists());
    assert_eq!(again.value(), &stored);
}

pub async fn the_type_name_is_the_rust_name_unless_overridden(backend: Backend) {
    let mut hits = load::<Hits>(&backend, "home").await;
    assert_eq!(hits.key(), "PageHits:home");
    hits.modify(|h| h.n += 1).await.unwrap();
    assert_eq!(
        backend.docs().get::<Hits>("PageHits:home").await.unwrap(),
        Some(Hits { n: 1 })
    );
    assert_eq!(backend.docs().list_keys("*").await.unwrap(), ["PageHits:home"]);
}

pub async fn a_python_json_dumps_document_loads_and_keeps_unknown_fields(backend: Backend) {
    // As Python's `json.dumps` writes it by default: spaces after `,` and
    // `:`, non-ASCII as \uXXXX (here "Zoë" and a surrogate pair for 🎉),
    // and a field this model does not know.
    let python = r#"{"id": "acc-7", "owner": "Zo\u00eb \ud83c\udf89", "balance": 42, "tags": ["vip", "eu"], "since": "2026-11-21"}"#;
    backend
        .docs()
        .set_raw("Account:acc-7", python, SetOptions::new())
        .await
        .unwrap();
    let mut account = load::<Account>(&backend, "acc-7").await;
    assert!(account.exists());
    assert_eq!(account.value().owner, "Zoë 🎉");
    assert_eq!(account.value().balance, 42);
    assert_eq!(account.value().tags, ["vip", "eu"]);
    account.modify(|a| a.balance -= 2).await.unwrap();
    let raw = backend.docs().get_raw("Account:acc-7").await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8(raw).unwrap(),
        r#"{"id":"acc-7","owner":"Zoë 🎉","balance":40,"tags":["vip","eu"],"since":"2026-11-21"}"#,
        "written back compact, the unknown field kept"
    );
}

pub async fn a_rejected_change_names_key_and_reason_and_writes_nothing(backend: Backend) {
    let mut account = load::<Account>(&backend, "acc-1").await;
    account.modify(|a| a.balance = 5).await.unwrap();
    let before = backend.docs().get_raw("Account:acc-1").await.unwrap();
    let error = account.modify(|a| a.balance -= 8).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(error.key(), "Account:acc-1");
    assert_eq!(
        error.to_string(),
        r#"modify "Account:acc-1": invalid input: Account rejected the change: balance must not be negative (would be -3)"#
    );
    assert_eq!(account.value().balance, 5, "the local copy is unchanged");
    assert_eq!(backend.docs().get_raw("Account:acc-1").await.unwrap(), before);

    // Nothing is created either.
    let mut fresh = load::<Account>(&backend, "acc-2").await;
    assert!(fresh.modify(|a| a.balance = -1).await.is_err());
    assert!(!backend.docs().exists("Account:acc-2").await.unwrap());
    assert!(!fresh.exists());
}

pub async fn a_change_may_not_move_the_model_to_another_id(backend: Backend) {
    let mut account = load::<Account>(&backend, "acc-1").await;
    let error = account.modify(|a| a.id = "acc-2".into()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(error.key(), "Account:acc-1");
    assert!(error.to_string().contains("fixed by its key"), "{error}");
    assert!(backend.docs().list_keys("*").await.unwrap().is_empty());
}

pub async fn two_handles_see_each_other_after_refresh(backend: Backend) {
    let mut here = load::<Account>(&backend, "shared").await;
    let mut there = load::<Account>(&backend, "shared").await;
    here.modify(|a| a.tags.push("from-here".into())).await.unwrap();
    assert!(there.value().tags.is_empty(), "no refresh, no change");
    assert_eq!(there.refresh().await.unwrap().tags, ["from-here"]);
    // A change applies to the stored model, not to a stale local copy.
    there.modify(|a| a.tags.push("from-there".into())).await.unwrap();
    here.modify(|a| a.balance += 1).await.unwrap();
    assert_eq!(here.value().tags, ["from-here", "from-there"]);
    here.refresh().await.unwrap();
    there.refresh().await.unwrap();
    assert_eq!(here.value(), there.value());
    assert_eq!(there.value().balance, 1);
}

pub async fn an_undecodable_document_is_deserialization_naming_the_key(backend: Backend) {
    let docs = backend.docs();
    docs.set_raw(
        "Account:bad",
        r#"{"id": "bad", "balance": "lots"}"#,
        SetOptions::new(),
    )
    .await
    .unwrap();
    let error = Synced::<Account>::load_from(&docs, "bad").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization, "{error}");
    assert_eq!(error.key(), "Account:bad");
    assert!(!error.to_string().contains("lots"), "{error}");

    // A handle whose document went bad fails to modify, and writes nothing.
    docs.set(
        "Account:ok",
        &serde_json::json!({"id": "ok", "owner": "", "balance": 0, "tags": []}),
    )
    .await
    .unwrap();
    let mut ok = load::<Account>(&backend, "ok").await;
    docs.set_raw("Account:ok", "[1, 2]", SetOptions::new())
        .await
        .unwrap();
    let error = ok.modify(|a| a.balance += 1).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::Deserialization, "Account:ok")
    );
    assert_eq!(docs.get_raw("Account:ok").await.unwrap().unwrap(), b"[1, 2]");
}

pub async fn ids_are_kept_verbatim_and_validated_before_any_io(backend: Backend) {
    // Verbatim: separators and glob characters are the id's own.
    let mut odd = load::<Hits>(&backend, "a:b*[c]").await;
    odd.modify(|h| h.n = 3).await.unwrap();
    assert_eq!(backend.docs().list_keys("*").await.unwrap(), ["PageHits:a:b*[c]"]);

    let docs = backend.docs();
    for (id, reason) in [
        ("", "synced model id must not be empty"),
        (
            "a\nb",
            "synced model id contains the control character U+000A at byte 1",
        ),
    ] {
        let error = Synced::<Hits>::load_from(&docs, id).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
        assert!(error.to_string().ends_with(reason), "{error}");
    }
    let long = "x".repeat(600);
    let error = Synced::<Hits>::load_from(&docs, &long).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");

    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Colon;
    impl SyncedModel for Colon {
        fn type_name() -> &'static str {
            "Shop:Order"
        }
        fn id(&self) -> String {
            String::new()
        }
    }
    let error = Synced::<Colon>::load_from(&docs, "1").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("must not contain ':'"), "{error}");
    assert_eq!(docs.list_keys("*").await.unwrap(), ["PageHits:a:b*[c]"]);
}

pub async fn delete_removes_the_document_and_resets_the_copy(backend: Backend) {
    let mut account = load::<Account>(&backend, "acc-1").await;
    account.modify(|a| a.balance = 3).await.unwrap();
    assert!(account.delete().await.unwrap());
    assert!(!account.exists());
    assert_eq!(account.value().balance, 0);
    assert_eq!(account.value().id, "acc-1");
    assert!(!account.delete().await.unwrap());
    assert!(!backend.docs().exists("Account:acc-1").await.unwrap());
}

pub async fn modify_keeps_the_ttl(backend: Backend) {
    let docs = backend.docs();
    docs.set_with_ttl("PageHits:lease", &Hits { n: 1 }, Duration::from_secs(10))
        .await
        .unwrap();
    let mut hits = load::<Hits>(&backend, "lease").await;
    hits.modify(|h| h.n += 1).await.unwrap();
    assert!(matches!(
        docs.ttl("PageHits:lease").await.unwrap(),
        KeyTtl::ExpiresIn(_)
    ));
}

pub async fn concurrent_modifies_from_many_handles_lose_nothing(backend: Backend) {
    const WORKERS: u64 = 8;
    const INCREMENTS: u64 = 50;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let docs = backend.docs();
        workers.spawn(async move {
            let mut hits = Synced::<Hits>::load_from(&docs, "busy").await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..INCREMENTS {
                seen.push(hits.modify(|h| h.n += 1).await.unwrap().n);
            }
            seen
        });
    }
    let seen: Vec<u64> = workers.join_all().await.into_iter().flatten().collect();
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(
        distinct.len() as u64,
        WORKERS * INCREMENTS,
        "two modifies saw the same value"
    );
    let hits = load::<Hits>(&backend, "busy").await;
    assert_eq!(hits.value().n, WORKERS * INCREMENTS);
}

pub async fn a_conflict_reruns_the_change_on_the_new_value(backend: Backend) {
    let mut hits = load::<Hits>(&backend, "contended").await;
    hits.modify(|h| h.n = 1).await.unwrap();
    let interferer = backend.docs();
    let runtime = tokio::runtime::Handle::current();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stored = hits
        .modify(|h| {
            seen.lock().unwrap().push(h.n);
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::task::block_in_place(|| {
                    runtime.block_on(interferer.set("PageHits:contended", &Hits { n: 100 }))
                })
                .unwrap();
            }
            h.n += 1;
        })
        .await
        .unwrap()
        .n;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the change runs again after a conflict"
    );
    assert_eq!(*seen.lock().unwrap(), [1, 100]);
    assert_eq!((stored, hits.value().n), (101, 101));
}
