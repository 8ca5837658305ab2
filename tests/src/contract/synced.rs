//! Contract: synced models ([`statehouse::Synced`] over the
//! [`SyncedStore`](statehouse_ports::SyncedStore) port), in both layouts.
//!
//! Most tests take the layout a new model is written in: the suite runs each
//! of them once per layout (`synced::hash::…` and `synced::json::…`, listed
//! once under `shared` in [`contract_suite!`](crate::contract_suite)), beside
//! the tests of one layout's own bytes in [`hash`] and [`json`]
//! (`synced/hash.rs`, `synced/json.rs`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use statehouse::{ErrorKind, Key, KeyTtl, ModelLayout, ModelWrite, StoredModel, Synced, SyncedModel};

use super::Backend;

pub mod hash;
pub mod json;

/// A model as a Python pydantic-state class would declare it (`id_`
/// included), with a validation rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Account {
    #[serde(rename = "id_")]
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) balance: i64,
    pub(crate) rate: f64,
    pub(crate) vip: bool,
    pub(crate) note: Option<String>,
    pub(crate) tags: Vec<String>,
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
pub(crate) struct Hits {
    pub(crate) n: u64,
}

impl SyncedModel for Hits {
    fn type_name() -> &'static str {
        "PageHits"
    }

    fn id(&self) -> String {
        String::new()
    }
}

/// Two counters, for writers of different fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Pair {
    a: u64,
    b: u64,
}

impl SyncedModel for Pair {
    fn id(&self) -> String {
        String::new()
    }
}

pub(crate) async fn load<T>(backend: &Backend, layout: ModelLayout, id: &str) -> Synced<T>
where
    T: SyncedModel + Serialize + for<'de> Deserialize<'de> + Default + Send,
{
    Synced::builder()
        .layout(layout)
        .load_from(&backend.models(), id)
        .await
        .unwrap()
}

/// What the key holds, below the facade.
pub(crate) async fn stored(backend: &Backend, key: &str) -> Option<StoredModel> {
    backend.synced.load_model(&Key::new(key).unwrap()).await.unwrap()
}

/// A hash model's fields as text, in field order.
pub(crate) fn fields_of(stored: Option<StoredModel>) -> Vec<(String, String)> {
    match stored {
        Some(StoredModel::Hash(fields)) => fields
            .into_iter()
            .map(|(field, value)| (field, String::from_utf8(value).unwrap()))
            .collect(),
        other => panic!("expected a hash, found {other:?}"),
    }
}

pub async fn an_absent_model_starts_from_default_and_writes_nothing(backend: Backend, layout: ModelLayout) {
    let account = load::<Account>(&backend, layout, "acc-1").await;
    assert!(!account.exists());
    assert_eq!(account.layout(), layout);
    assert_eq!(account.key(), "Account:acc-1");
    assert_eq!(account.id(), "acc-1");
    assert_eq!(
        account.value(),
        &Account {
            id: "acc-1".into(),
            ..Account::default()
        }
    );
    assert_eq!(stored(&backend, "Account:acc-1").await, None);
}

pub async fn modify_writes_the_new_model_in_its_layout(backend: Backend, layout: ModelLayout) {
    let mut account = load::<Account>(&backend, layout, "acc-1").await;
    let after = account
        .modify(|a| {
            a.owner = "Zoë".into();
            a.balance += 10;
            a.rate = 1e20;
        })
        .await
        .unwrap()
        .clone();
    assert!(account.exists());
    assert_eq!(account.layout(), layout);
    assert_eq!(after.balance, 10);
    match layout {
        ModelLayout::Hash => assert_eq!(
            fields_of(stored(&backend, "Account:acc-1").await),
            [
                ("balance", "10"),
                ("id_", "acc-1"),
                ("owner", "Zoë"),
                ("rate", "1e+20"),
                ("tags", "[]"),
                ("vip", "False"),
            ]
            .map(|(f, v)| (f.to_owned(), v.to_owned())),
            "every field of a new model, the None one left out"
        ),
        ModelLayout::Json => assert_eq!(
            stored(&backend, "Account:acc-1").await,
            Some(StoredModel::Json(
                r#"{"id_":"acc-1","owner":"Zoë","balance":10,"rate":1e+20,"vip":false,"note":null,"tags":[]}"#
                    .as_bytes()
                    .to_vec()
            ))
        ),
    }
    let again = load::<Account>(&backend, layout, "acc-1").await;
    assert!(again.exists());
    assert_eq!(again.value(), &after);
}

pub async fn the_type_name_is_the_rust_name_unless_overridden(backend: Backend, layout: ModelLayout) {
    let mut hits = load::<Hits>(&backend, layout, "home").await;
    assert_eq!(hits.key(), "PageHits:home");
    hits.modify(|h| h.n += 1).await.unwrap();
    let again = load::<Hits>(&backend, ModelLayout::default(), "home").await;
    assert_eq!(again.value(), &Hits { n: 1 });
    assert_eq!(backend.docs().list_keys("*").await.unwrap(), ["PageHits:home"]);
}

pub async fn a_rejected_change_names_key_and_reason_and_writes_nothing(
    backend: Backend,
    layout: ModelLayout,
) {
    let mut account = load::<Account>(&backend, layout, "acc-1").await;
    account.modify(|a| a.balance = 5).await.unwrap();
    let before = stored(&backend, "Account:acc-1").await;
    let error = account.modify(|a| a.balance -= 8).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(error.key(), "Account:acc-1");
    assert_eq!(
        error.to_string(),
        r#"modify "Account:acc-1": invalid input: Account rejected the change: balance must not be negative (would be -3)"#
    );
    let error = account.set("balance", &-1).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.op()),
        (ErrorKind::InvalidInput, "set"),
        "{error}"
    );
    assert_eq!(account.value().balance, 5, "the local copy is unchanged");
    assert_eq!(stored(&backend, "Account:acc-1").await, before);

    // Nothing is created either.
    let mut fresh = load::<Account>(&backend, layout, "acc-2").await;
    assert!(fresh.modify(|a| a.balance = -1).await.is_err());
    assert!(fresh.set("balance", &-1).await.is_err());
    assert_eq!(stored(&backend, "Account:acc-2").await, None);
    assert!(!fresh.exists());
}

pub async fn a_change_may_not_move_the_model_to_another_id(backend: Backend, layout: ModelLayout) {
    let mut account = load::<Account>(&backend, layout, "acc-1").await;
    let error = account.modify(|a| a.id = "acc-2".into()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(error.key(), "Account:acc-1");
    assert!(error.to_string().contains("fixed by its key"), "{error}");
    let error = account.set("id_", "acc-2").await.unwrap_err();
    assert!(error.to_string().contains("fixed by its key"), "{error}");
    assert!(backend.docs().list_keys("*").await.unwrap().is_empty());
}

pub async fn two_handles_see_each_other_after_refresh(backend: Backend, layout: ModelLayout) {
    let mut here = load::<Account>(&backend, layout, "shared").await;
    let mut there = load::<Account>(&backend, layout, "shared").await;
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

pub async fn a_stored_model_keeps_its_layout_whatever_the_new_layout(backend: Backend, layout: ModelLayout) {
    let other = match layout {
        ModelLayout::Hash => ModelLayout::Json,
        ModelLayout::Json => ModelLayout::Hash,
    };
    let mut written = load::<Account>(&backend, other, "acc-9").await;
    written.modify(|a| a.owner = "Ann".into()).await.unwrap();

    let mut account = load::<Account>(&backend, layout, "acc-9").await;
    assert_eq!(account.layout(), other, "load tells the layout the key holds");
    assert_eq!(account.value().owner, "Ann");
    account.modify(|a| a.balance = 7).await.unwrap();
    account.set("vip", &true).await.unwrap();
    assert_eq!(stored(&backend, "Account:acc-9").await.unwrap().layout(), other);

    // Rewritten in the other layout behind a handle's back: its next
    // modify reads what the key holds now.
    written.delete().await.unwrap();
    let mut rewritten = load::<Account>(&backend, layout, "acc-9").await;
    rewritten.modify(|a| a.balance = 1).await.unwrap();
    let stored_now = account.modify(|a| a.balance += 1).await.unwrap().clone();
    assert_eq!(stored_now.balance, 2);
    assert_eq!(account.layout(), layout);
    assert_eq!(stored(&backend, "Account:acc-9").await.unwrap().layout(), layout);
}

pub async fn set_writes_one_field_and_keeps_what_others_wrote(backend: Backend, layout: ModelLayout) {
    // Setting a field of a model that does not exist writes it whole.
    let mut mine = load::<Account>(&backend, layout, "acc-3").await;
    assert_eq!(mine.set("owner", "Ann").await.unwrap().owner, "Ann");
    assert!(mine.exists());
    let mut theirs = load::<Account>(&backend, layout, "acc-3").await;
    assert_eq!(theirs.value().owner, "Ann");

    // Two stale handles set different fields: neither is lost.
    mine.set("balance", &12).await.unwrap();
    theirs.set("note", &Some("from theirs")).await.unwrap();
    mine.set("rate", &0.25).await.unwrap();
    let fresh = load::<Account>(&backend, layout, "acc-3").await.into_value();
    assert_eq!(
        (fresh.balance, fresh.note.as_deref(), fresh.rate),
        (12, Some("from theirs"), 0.25)
    );
    match layout {
        // One HSET: a handle's copy is its own writes over what it last read.
        ModelLayout::Hash => {
            assert_eq!(mine.value().note, None);
            assert_eq!(theirs.value().balance, 0);
        }
        // A modify of the field: the copy is the model as stored.
        ModelLayout::Json => assert_eq!(mine.value(), &fresh),
    }

    // None removes an optional field; the value is checked as the model reads it.
    theirs.set("note", &None::<String>).await.unwrap();
    mine.set("tags", &["x", "y"]).await.unwrap();
    let fresh = load::<Account>(&backend, layout, "acc-3").await.into_value();
    assert_eq!(
        (fresh.note, fresh.tags),
        (None, vec!["x".to_owned(), "y".to_owned()])
    );
    if layout == ModelLayout::Hash {
        let fields = fields_of(stored(&backend, "Account:acc-3").await);
        assert!(
            fields.iter().all(|(field, _)| field != "note"),
            "HDEL: {fields:?}"
        );
    }
}

pub async fn set_refuses_unknown_fields_and_values_the_field_does_not_take(
    backend: Backend,
    layout: ModelLayout,
) {
    let mut account = load::<Account>(&backend, layout, "acc-4").await;
    account.modify(|a| a.owner = "Ann".into()).await.unwrap();
    let before = stored(&backend, "Account:acc-4").await;
    for (field, error) in [
        ("nope", account.set("nope", &1).await.unwrap_err()),
        ("balance", account.set("balance", "lots").await.unwrap_err()),
        ("vip", account.set("vip", &3.5).await.unwrap_err()),
        ("owner", account.set("owner", &None::<String>).await.unwrap_err()),
    ] {
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{field}: {error}");
        assert_eq!(error.key(), format!("Account:acc-4 field {field}"));
        assert!(!error.to_string().contains("lots"), "{error}");
    }
    assert_eq!(stored(&backend, "Account:acc-4").await, before);
    assert_eq!(account.value().owner, "Ann");
}

pub async fn ids_are_kept_verbatim_and_validated_before_any_io(backend: Backend, layout: ModelLayout) {
    // Verbatim: separators and glob characters are the id's own.
    let mut odd = load::<Hits>(&backend, layout, "a:b*[c]").await;
    odd.modify(|h| h.n = 3).await.unwrap();
    assert_eq!(backend.docs().list_keys("*").await.unwrap(), ["PageHits:a:b*[c]"]);

    let models = backend.models();
    for (id, reason) in [
        ("", "synced model id must not be empty"),
        (
            "a\nb",
            "synced model id contains the control character U+000A at byte 1",
        ),
    ] {
        let error = Synced::<Hits>::builder()
            .layout(layout)
            .load_from(&models, id)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
        assert!(error.to_string().ends_with(reason), "{error}");
    }
    let long = "x".repeat(600);
    let error = Synced::<Hits>::load_from(&models, &long).await.unwrap_err();
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
    let error = Synced::<Colon>::load_from(&models, "1").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("must not contain ':'"), "{error}");
    assert_eq!(backend.docs().list_keys("*").await.unwrap(), ["PageHits:a:b*[c]"]);
}

pub async fn delete_removes_the_model_and_resets_the_copy(backend: Backend, layout: ModelLayout) {
    let mut account = load::<Account>(&backend, layout, "acc-1").await;
    account.modify(|a| a.balance = 3).await.unwrap();
    assert!(account.delete().await.unwrap());
    assert!(!account.exists());
    assert_eq!(account.value().balance, 0);
    assert_eq!(account.value().id, "acc-1");
    assert!(!account.delete().await.unwrap());
    assert_eq!(stored(&backend, "Account:acc-1").await, None);
}

pub async fn modify_and_set_keep_the_ttl(backend: Backend, layout: ModelLayout) {
    let mut hits = load::<Hits>(&backend, layout, "lease").await;
    hits.modify(|h| h.n = 1).await.unwrap();
    let docs = backend.docs();
    assert!(
        docs.expire("PageHits:lease", Duration::from_secs(10))
            .await
            .unwrap()
    );
    hits.modify(|h| h.n += 1).await.unwrap();
    hits.set("n", &5).await.unwrap();
    assert!(matches!(
        docs.ttl("PageHits:lease").await.unwrap(),
        KeyTtl::ExpiresIn(_)
    ));
    assert_eq!(load::<Hits>(&backend, layout, "lease").await.value().n, 5);
}

pub async fn a_key_of_another_type_is_wrong_type_and_stays(backend: Backend, layout: ModelLayout) {
    // A task index (a sorted set), found where the task layout put it and
    // read as a model: type name up to the first `:`, the rest the id.
    backend.tasks().create("t", "svc", "u").await.unwrap();
    let listed = backend.docs().list_keys("*:by-service:svc").await.unwrap();
    let [index] = listed.as_slice() else {
        panic!("one index expected, found {listed:?}")
    };
    let (type_name, id) = index.split_once(':').unwrap();
    let error = backend.models().load_raw(type_name, id).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::WrongType, index.as_str())
    );
    // Every write fails alike, through the port a handle uses, whatever
    // layout it expected, and writes nothing.
    let key = Key::new(index.as_str()).unwrap();
    let port = &backend.synced;
    let mut write = |_: Option<&StoredModel>| Ok(ModelWrite::Json(b"{}".to_vec()));
    let error = port
        .update_model(&key, layout, statehouse::RetryPolicy::default(), &mut write)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    let error = port
        .write_fields(&key, &[("n".to_owned(), b"1".to_vec())], &[])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    let error = port.delete_model(&key).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    let error = backend
        .models()
        .set_raw_field(type_name, id, "n", "1")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    assert_eq!(backend.tasks().count_by_service("svc").await.unwrap(), 1);
}

pub async fn concurrent_modifies_from_many_handles_lose_nothing(backend: Backend, layout: ModelLayout) {
    const WORKERS: u64 = 8;
    const INCREMENTS: u64 = 50;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let models = backend.models();
        workers.spawn(async move {
            let mut hits = Synced::<Hits>::builder()
                .layout(layout)
                .load_from(&models, "busy")
                .await
                .unwrap();
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
    let hits = load::<Hits>(&backend, layout, "busy").await;
    assert_eq!(hits.value().n, WORKERS * INCREMENTS);
}

pub async fn writers_of_different_fields_lose_nothing(backend: Backend, layout: ModelLayout) {
    const ROUNDS: u64 = 40;
    let mut workers = tokio::task::JoinSet::new();
    for field in ["a", "b"] {
        let models = backend.models();
        workers.spawn(async move {
            let mut pair = Synced::<Pair>::builder()
                .layout(layout)
                .load_from(&models, "p")
                .await
                .unwrap();
            for round in 1..=ROUNDS {
                // Alternately an atomic increment and a blind field write.
                if round % 2 == 1 {
                    pair.modify(|p| match field {
                        "a" => p.a += 1,
                        _ => p.b += 1,
                    })
                    .await
                    .unwrap();
                } else {
                    pair.set(field, &round).await.unwrap();
                }
            }
        });
    }
    workers.join_all().await;
    let pair = load::<Pair>(&backend, layout, "p").await;
    assert_eq!(pair.value(), &Pair { a: ROUNDS, b: ROUNDS });
}

pub async fn a_conflict_reruns_the_change_on_the_new_value(backend: Backend, layout: ModelLayout) {
    let mut hits = load::<Hits>(&backend, layout, "contended").await;
    hits.modify(|h| h.n = 1).await.unwrap();
    let interferer = Arc::new(tokio::sync::Mutex::new(
        load::<Hits>(&backend, layout, "contended").await,
    ));
    let key = Key::new("PageHits:contended").unwrap();
    let runtime = tokio::runtime::Handle::current();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stored = hits
        .modify(|h| {
            seen.lock().unwrap().push(h.n);
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                // Another writer that does not read: an update of this key
                // through this store would wait for the round this closure
                // runs in (combining, `docs/hotkeys.md`).
                tokio::task::block_in_place(|| {
                    runtime.block_on(async {
                        match layout {
                            ModelLayout::Hash => interferer.lock().await.set("n", &100).await.map(|_| ()),
                            ModelLayout::Json => backend
                                .documents
                                .set(&key, br#"{"n":100}"#, statehouse::SetOptions::new())
                                .await
                                .map(|_| ()),
                        }
                    })
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
