//! Contract: synced models in the JSON layout, byte for byte: any JSON is
//! read (Python's `json.dumps` spacing and escapes), compact serde_json is
//! written, and a flattened map keeps what other services store.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use statehouse::{ErrorKind, ModelLayout, SetOptions, StoredModel, Synced, SyncedModel};

use super::{Account, Backend, load, stored};

const JSON: ModelLayout = ModelLayout::Json;

/// A model that keeps the fields it does not know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: String,
    name: String,
    balance: i64,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl SyncedModel for Profile {
    const LAYOUT: ModelLayout = ModelLayout::Json;

    fn id(&self) -> String {
        self.id.clone()
    }

    fn set_id(&mut self, id: &str) {
        self.id = id.to_owned();
    }
}

pub async fn a_python_json_dumps_document_loads_and_keeps_unknown_fields(backend: Backend) {
    // As Python's `json.dumps` writes it by default: spaces after `,` and
    // `:`, non-ASCII as \uXXXX (here "Zoë" and a surrogate pair for 🎉),
    // and fields this model does not know.
    let python = r#"{"id": "p-7", "name": "Zo\u00eb \ud83c\udf89", "balance": 42, "langs": ["en", "fr"], "since": "2026-11-21"}"#;
    backend
        .docs()
        .set_raw("Profile:p-7", python, SetOptions::new())
        .await
        .unwrap();
    let mut profile = Synced::<Profile>::load_from(&backend.models(), "p-7")
        .await
        .unwrap();
    assert_eq!(profile.layout(), JSON);
    assert_eq!(profile.value().name, "Zoë 🎉");
    profile.modify(|p| p.balance -= 2).await.unwrap();
    profile.set("name", "Ann").await.unwrap();
    assert_eq!(
        stored(&backend, "Profile:p-7").await,
        Some(StoredModel::Json(
            br#"{"id":"p-7","name":"Ann","balance":40,"langs":["en","fr"],"since":"2026-11-21"}"#.to_vec()
        )),
        "written back compact, the unknown fields kept"
    );
    let langs = Synced::<Profile>::load_field::<Vec<String>>(&backend.models(), "p-7", "langs").await;
    assert_eq!(langs.unwrap().unwrap(), ["en", "fr"]);
}

pub async fn a_model_declared_json_is_written_as_json(backend: Backend) {
    let mut profile = Synced::<Profile>::load_from(&backend.models(), "p-1")
        .await
        .unwrap();
    assert_eq!(profile.layout(), JSON, "Profile::LAYOUT");
    profile.modify(|p| p.name = "Ada".into()).await.unwrap();
    assert_eq!(
        backend.docs().get_raw("Profile:p-1").await.unwrap().unwrap(),
        br#"{"id":"p-1","name":"Ada","balance":0}"#
    );
}

pub async fn an_undecodable_document_is_deserialization_naming_the_key(backend: Backend) {
    let docs = backend.docs();
    docs.set_raw(
        "Account:bad",
        r#"{"id_": "bad", "owner": "Ann", "balance": "lots"}"#,
        SetOptions::new(),
    )
    .await
    .unwrap();
    let models = backend.models();
    let error = Synced::<Account>::load_from(&models, "bad").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization, "{error}");
    assert_eq!(error.key(), "Account:bad");
    assert!(!error.to_string().contains("lots"), "{error}");
    let owner = Synced::<Account>::load_field::<String>(&models, "bad", "owner").await;
    assert_eq!(
        owner.unwrap().as_deref(),
        Some("Ann"),
        "the other fields stay readable"
    );

    // A handle whose document went bad fails to modify, and writes nothing.
    let mut ok = load::<Account>(&backend, JSON, "ok").await;
    ok.modify(|a| a.owner = "Ann".into()).await.unwrap();
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
