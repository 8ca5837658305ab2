//! Users, handler states, tables and shared states: typed and field by
//! field, the wire layout, bad fields and ids, keys of another type.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use statehouse::{ErrorKind, RetryPolicy, Tenant};
use statehouse_ports::{DocumentStoreExt, Key, KeyTtl, SetOptions};

use super::{Plan, Profile, profile, ttl};
use crate::contract::Backend;

pub async fn users_round_trip_typed_and_field_by_field(backend: Backend) {
    let users = backend.tenant("acme").users();
    assert_eq!(users.get::<Profile>("u1").await.unwrap(), None);
    assert!(!users.exists("u1").await.unwrap());
    users.upsert("u1", &profile()).await.unwrap();
    assert!(users.exists("u1").await.unwrap());
    assert_eq!(users.get::<Profile>("u1").await.unwrap(), Some(profile()));
    assert_eq!(
        users.get_field::<Plan>("u1", "plan").await.unwrap(),
        Some(Plan::Pro)
    );
    assert_eq!(users.get_field::<String>("u1", "missing").await.unwrap(), None);
    // A field holding null and a missing field stay distinct.
    users.set_field("u1", "nothing", &Value::Null).await.unwrap();
    assert_eq!(
        users.get_field::<Option<u32>>("u1", "nothing").await.unwrap(),
        Some(None)
    );
    assert_eq!(
        users.get_field::<Option<u32>>("u1", "missing").await.unwrap(),
        None
    );
    assert!(users.delete_field("u1", "nothing").await.unwrap());
    // Upsert merges: fields it does not name stay.
    users
        .upsert("u1", &json!({"plan": "free", "score": 7}))
        .await
        .unwrap();
    let fields = users.get_fields("u1").await.unwrap();
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(names, ["joined", "name", "plan", "score", "tags"]);
    assert_eq!(fields["plan"].as_ref().unwrap(), &json!("free"));
    // One field.
    users.set_field("u1", "name", &"Bea").await.unwrap();
    assert_eq!(
        users.get_field::<String>("u1", "name").await.unwrap().as_deref(),
        Some("Bea")
    );
    assert!(users.delete_field("u1", "score").await.unwrap());
    assert!(!users.delete_field("u1", "score").await.unwrap());
    let got: Profile = users.get("u1").await.unwrap().unwrap();
    assert_eq!((got.name.as_str(), got.plan), ("Bea", Plan::Free));
    assert!(users.delete("u1").await.unwrap());
    assert!(!users.delete("u1").await.unwrap());
    assert_eq!(users.get::<Profile>("u1").await.unwrap(), None);
}

/// One hash per record at `t:{<tenant>}:user:<user>`, one compact JSON
/// value per field: enums lowercase, timestamps RFC 3339 UTC.
pub async fn the_wire_layout_is_one_json_value_per_field(backend: Backend) {
    let acme = backend.tenant("acme:eu");
    acme.users().upsert("u:1", &profile()).await.unwrap();
    let key = "t:{acme%3Aeu}:user:u%3A1";
    let raw = |field: &'static str| backend.hget_raw(key, field.as_bytes());
    assert_eq!(raw("name").await.as_deref(), Some(&b"\"Ann\""[..]));
    assert_eq!(raw("plan").await.as_deref(), Some(&b"\"pro\""[..]));
    assert_eq!(
        raw("joined").await.as_deref(),
        Some(&b"\"2026-11-23T08:30:00Z\""[..])
    );
    assert_eq!(raw("tags").await.as_deref(), Some(&b"[\"beta\"]"[..]));
    acme.tables()
        .set("orders", "42", &json!({"total": 9.5}))
        .await
        .unwrap();
    assert_eq!(
        backend
            .hget_raw("t:{acme%3Aeu}:table:orders:42", b"total")
            .await
            .as_deref(),
        Some(&b"9.5"[..])
    );
    // A field another process wrote reads back.
    backend.hset_raw(key, b"city", br#"{"zip": 80331}"#).await;
    assert_eq!(
        acme.users().get_field::<Value>("u:1", "city").await.unwrap(),
        Some(json!({"zip": 80331}))
    );
}

pub async fn a_bad_field_fails_alone_naming_tenant_key_and_field(backend: Backend) {
    let users = backend.tenant("acme").users();
    users
        .upsert("u1", &json!({"name": "Ann", "age": 30}))
        .await
        .unwrap();
    backend.hset_raw("t:{acme}:user:u1", b"age", b"{not json").await;
    let fields = users.get_fields("u1").await.unwrap();
    assert_eq!(fields["name"].as_ref().unwrap(), &json!("Ann"));
    let error = fields["age"].as_ref().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization);
    assert_eq!(error.key(), "t:{acme}:user:u1 field age (tenant acme)");
    assert!(
        !error.to_string().contains("not json"),
        "no data in errors: {error}"
    );
    // Field by field, the good one reads.
    assert_eq!(
        users.get_field::<String>("u1", "name").await.unwrap().as_deref(),
        Some("Ann")
    );
    let error = users.get_field::<u32>("u1", "age").await.unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (
            ErrorKind::Deserialization,
            "t:{acme}:user:u1 field age (tenant acme)"
        )
    );
    // The whole record fails naming the bad field.
    let error = users.get::<Value>("u1").await.unwrap_err();
    assert_eq!(error.key(), "t:{acme}:user:u1 field age (tenant acme)");
    // A read-modify-write of it fails before the closure runs.
    let mut ran = false;
    let error = users
        .modify_field("u1", "age", |age: Option<u32>| {
            ran = true;
            age.unwrap_or(0) + 1
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization);
    assert!(!ran);
    // A field of the wrong type for `T` names the field too.
    let error = users.get_field::<u32>("u1", "name").await.unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (
            ErrorKind::Deserialization,
            "t:{acme}:user:u1 field name (tenant acme)"
        )
    );
}

/// A field of another shape than the closure's `T` (valid JSON, not a `T`)
/// is a decoding error naming tenant, key and field in every repository,
/// never `Aborted`; the closure never runs and nothing is written.
pub async fn modify_field_of_a_value_of_another_shape_names_the_field(backend: Backend) {
    let acme = backend.tenant("acme");
    let (users, handlers, tables, states) = (
        acme.users(),
        acme.handler_states(),
        acme.tables(),
        acme.shared_states(),
    );
    users.set_field("u1", "name", &"Ann").await.unwrap();
    handlers
        .set_field("u1", "checkout", "step", &"two")
        .await
        .unwrap();
    tables.set_field("orders", "o1", "total", &"lots").await.unwrap();
    states.set_field("u1", "draft", "n", &[1, 2]).await.unwrap();
    let mut ran = 0;
    let mut bump = |n: Option<u32>| {
        ran += 1;
        n.unwrap_or(0) + 1
    };
    let failures = [
        (
            users.modify_field("u1", "name", &mut bump).await,
            "t:{acme}:user:u1 field name (tenant acme)",
        ),
        (
            handlers.modify_field("u1", "checkout", "step", &mut bump).await,
            "t:{acme}:handler:u1:checkout field step (tenant acme)",
        ),
        (
            tables.modify_field("orders", "o1", "total", &mut bump).await,
            "t:{acme}:table:orders:o1 field total (tenant acme)",
        ),
        (
            states.modify_field("u1", "draft", "n", &mut bump).await,
            "t:{acme}:state:u1:draft field n (tenant acme)",
        ),
    ];
    for (result, key) in failures {
        let error = result.unwrap_err();
        assert_eq!(
            (error.kind(), error.key()),
            (ErrorKind::Deserialization, key),
            "{error}"
        );
        assert!(error.to_string().contains("u32"), "names the type: {error}");
        assert!(!error.to_string().contains("Ann"), "no data in errors: {error}");
    }
    assert_eq!(ran, 0, "the closure never sees it");
    assert_eq!(
        users.get_field::<String>("u1", "name").await.unwrap().as_deref(),
        Some("Ann")
    );
    assert_eq!(
        states.get_field::<Vec<u32>>("u1", "draft", "n").await.unwrap(),
        Some(vec![1, 2])
    );
}

pub async fn increment_is_integer_only_and_append_needs_an_array(backend: Backend) {
    let users = backend.tenant("acme").users();
    assert_eq!(users.increment("u1", "visits", 5).await.unwrap(), 5);
    assert_eq!(users.increment("u1", "visits", -7).await.unwrap(), -2);
    assert_eq!(users.get_field::<i64>("u1", "visits").await.unwrap(), Some(-2));
    users.set_field("u1", "ratio", &1.5).await.unwrap();
    users.set_field("u1", "name", &"Ann").await.unwrap();
    for field in ["ratio", "name"] {
        let error = users.increment("u1", field, 1).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Deserialization, "{field}: {error}");
        assert_eq!(
            error.key(),
            format!("t:{{acme}}:user:u1 field {field} (tenant acme)")
        );
    }
    users.set_field("u1", "big", &i64::MAX).await.unwrap();
    let error = users.increment("u1", "big", 1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(users.get_field::<i64>("u1", "big").await.unwrap(), Some(i64::MAX));
    assert_eq!(users.get_field::<f64>("u1", "ratio").await.unwrap(), Some(1.5));
    // Floats go through modify_field.
    let ratio = users
        .modify_field("u1", "ratio", |r: Option<f64>| r.unwrap_or(0.0) + 0.25)
        .await
        .unwrap();
    assert!((ratio - 1.75).abs() < f64::EPSILON);
    // Append.
    assert_eq!(users.append("u1", "log", &json!({"at": 1})).await.unwrap(), 1);
    assert_eq!(users.append("u1", "log", &"two").await.unwrap(), 2);
    assert_eq!(
        users.get_field::<Value>("u1", "log").await.unwrap(),
        Some(json!([{"at": 1}, "two"]))
    );
    let error = users.append("u1", "name", &1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization, "{error}");
    assert_eq!(error.key(), "t:{acme}:user:u1 field name (tenant acme)");
    assert_eq!(
        users.get_field::<String>("u1", "name").await.unwrap().as_deref(),
        Some("Ann")
    );
    // `null` is an empty list, and so is `[]`; an object is no list.
    users.set_field("u1", "none", &Value::Null).await.unwrap();
    users.set_field("u1", "empty", &json!([])).await.unwrap();
    users.set_field("u1", "object", &json!({"a": [1]})).await.unwrap();
    assert_eq!(users.append("u1", "none", &[1, 2]).await.unwrap(), 1);
    assert_eq!(users.append("u1", "empty", &Value::Null).await.unwrap(), 1);
    assert_eq!(users.append("u1", "empty", &json!({"k": "v"})).await.unwrap(), 2);
    let error = users.append("u1", "object", &1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization, "{error}");
    for (field, value) in [
        ("none", json!([[1, 2]])),
        ("empty", json!([null, {"k": "v"}])),
        ("object", json!({"a": [1]})),
    ] {
        assert_eq!(
            users.get_field::<Value>("u1", field).await.unwrap(),
            Some(value),
            "{field}"
        );
    }
}

pub async fn find_returns_the_users_holding_a_value(backend: Backend) {
    let acme = backend.tenant("acme");
    let users = acme.users();
    users.upsert("u1", &json!({"plan": "pro"})).await.unwrap();
    users.upsert("u2", &json!({"plan": "free"})).await.unwrap();
    users
        .upsert("u:3", &json!({"plan": "pro", "x": 1}))
        .await
        .unwrap();
    users.upsert("u4", &json!({"other": "pro"})).await.unwrap();
    backend
        .tenant("acme2")
        .users()
        .upsert("u5", &json!({"plan": "pro"}))
        .await
        .unwrap();
    assert_eq!(users.find("plan", &Plan::Pro).await.unwrap(), ["u1", "u:3"]);
    assert_eq!(users.find("plan", &"none").await.unwrap(), Vec::<String>::new());
    assert_eq!(
        users.list().await.unwrap(),
        ["u1", "u2", "u4", "u:3"]
            .map(String::from)
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Conversation {
    step: u32,
    topic: String,
    #[serde(default)]
    draft: Option<String>,
}

pub async fn handler_merge_keeps_unmentioned_fields_and_returns_the_merged_state(backend: Backend) {
    let states = backend.tenant("acme").handler_states();
    states
        .set(
            "u1",
            "support",
            &Conversation {
                step: 1,
                topic: "billing".into(),
                draft: Some("hi".into()),
            },
        )
        .await
        .unwrap();
    let merged: Conversation = states.merge("u1", "support", &json!({"step": 2})).await.unwrap();
    assert_eq!(
        merged,
        Conversation {
            step: 2,
            topic: "billing".into(),
            draft: Some("hi".into())
        }
    );
    // set replaces the whole state.
    states
        .set("u1", "support", &json!({"step": 3, "topic": "refund"}))
        .await
        .unwrap();
    let got: Conversation = states.get("u1", "support").await.unwrap().unwrap();
    assert_eq!(
        got,
        Conversation {
            step: 3,
            topic: "refund".into(),
            draft: None
        }
    );
    states
        .set_field("u1", "support", "draft", &"again")
        .await
        .unwrap();
    assert_eq!(
        states
            .modify_field("u1", "support", "step", |s: Option<u32>| s.unwrap_or(0) + 1)
            .await
            .unwrap(),
        4
    );
    // A merge into a missing state creates it.
    let fresh: Value = states.merge("u1", "sales", &json!({"step": 1})).await.unwrap();
    assert_eq!(fresh, json!({"step": 1}));
    assert_eq!(states.list("u1").await.unwrap(), ["sales", "support"]);
    assert!(states.delete("u1", "sales").await.unwrap());
    assert_eq!(states.list("u1").await.unwrap(), ["support"]);
}

pub async fn tables_delete_pk_across_tables_and_nothing_else(backend: Backend) {
    let acme = backend.tenant("acme");
    let other = backend.tenant("acme2");
    let tables = acme.tables();
    for (table, pk) in [
        ("orders", "42"),
        ("invoices", "42"),
        ("orders", "142"),
        ("orders", "4"),
        ("o:x", "42"),
        ("orders", "42:1"),
    ] {
        tables
            .set(table, pk, &json!({"table": table, "pk": pk}))
            .await
            .unwrap();
    }
    other
        .tables()
        .set("orders", "42", &json!({"pk": "42"}))
        .await
        .unwrap();
    acme.users().upsert("42", &json!({"pk": "42"})).await.unwrap();
    assert_eq!(
        tables.get::<Value>("orders", "42").await.unwrap(),
        Some(json!({"table": "orders", "pk": "42"}))
    );
    assert_eq!(tables.list("orders").await.unwrap(), ["142", "4", "42", "42:1"]);
    tables.set_field("orders", "4", "paid", &true).await.unwrap();
    assert!(tables.delete("orders", "4").await.unwrap());
    assert!(!tables.delete("orders", "4").await.unwrap());
    assert_eq!(tables.delete_pk("42").await.unwrap(), 3);
    assert_eq!(tables.list("orders").await.unwrap(), ["142", "42:1"]);
    assert_eq!(tables.list("invoices").await.unwrap(), Vec::<String>::new());
    assert_eq!(tables.list("o:x").await.unwrap(), Vec::<String>::new());
    assert!(
        other
            .tables()
            .get::<Value>("orders", "42")
            .await
            .unwrap()
            .is_some(),
        "other tenant untouched"
    );
    assert!(
        acme.users().exists("42").await.unwrap(),
        "other families untouched"
    );
    assert_eq!(tables.delete_pk("42").await.unwrap(), 0);
}

pub async fn shared_states_list_delete_and_clear_only_their_user(backend: Backend) {
    let acme = backend.tenant("acme");
    let states = acme.shared_states();
    for user in ["u", "u:x", "u*", "uu", "u x"] {
        for name in ["draft", "scratch:1"] {
            states
                .set(user, name, &json!({"user": user, "name": name}))
                .await
                .unwrap();
        }
    }
    backend
        .tenant("acme:u")
        .shared_states()
        .set("u", "draft", &json!({"x": 1}))
        .await
        .unwrap();
    states.set_field("u", "draft", "seen", &true).await.unwrap();
    assert_eq!(
        states.get_field::<bool>("u", "draft", "seen").await.unwrap(),
        Some(true)
    );
    assert_eq!(
        states
            .get_field::<String>("u", "draft", "user")
            .await
            .unwrap()
            .as_deref(),
        Some("u")
    );
    assert_eq!(states.list("u").await.unwrap(), ["draft", "scratch:1"]);
    assert_eq!(states.list("u*").await.unwrap(), ["draft", "scratch:1"]);
    assert!(states.delete("u", "scratch:1").await.unwrap());
    assert_eq!(states.list("u").await.unwrap(), ["draft"]);
    assert_eq!(states.clear("u*").await.unwrap(), 2);
    assert_eq!(states.list("u*").await.unwrap(), Vec::<String>::new());
    for user in ["u", "u:x", "uu", "u x"] {
        assert!(!states.list(user).await.unwrap().is_empty(), "{user} untouched");
    }
    assert_eq!(states.clear("u").await.unwrap(), 1);
    assert_eq!(states.list("u:x").await.unwrap(), ["draft", "scratch:1"]);
    assert_eq!(
        backend.tenant("acme:u").shared_states().list("u").await.unwrap(),
        ["draft"]
    );
}

pub async fn invalid_ids_are_rejected_before_any_io(backend: Backend) {
    assert_eq!(
        Tenant::new(backend.tenants.clone(), "", RetryPolicy::default())
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        Tenant::new(backend.tenants.clone(), "a\nb", RetryPolicy::default())
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    let acme = backend.tenant("acme");
    assert_eq!(
        acme.users().get::<Value>("").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        acme.users().set_field("u", "", &1).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        acme.tables().set("", "1", &json!({})).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        acme.shared_states().clear("\u{7}").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // A record must be a JSON object.
    assert_eq!(
        acme.users().upsert("u", &5).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(
        acme.users().list().await.unwrap().is_empty(),
        "nothing was written"
    );
}

pub async fn a_key_of_another_type_is_wrong_type(backend: Backend) {
    let key = Key::new("t:{acme}:user:u1").unwrap();
    backend
        .documents
        .set_json(&key, &"a string", SetOptions::new())
        .await
        .unwrap();
    let users = backend.tenant("acme").users();
    for error in [
        users.get::<Value>("u1").await.unwrap_err(),
        users.set_field("u1", "a", &1).await.unwrap_err(),
        users.increment("u1", "a", 1).await.unwrap_err(),
        users
            .modify_field("u1", "a", |a: Option<u32>| a.unwrap_or(0))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(
            (error.kind(), error.key()),
            (ErrorKind::WrongType, "t:{acme}:user:u1"),
            "{error}"
        );
    }
    assert_eq!(
        backend
            .documents
            .get_json::<String>(&key)
            .await
            .unwrap()
            .as_deref(),
        Some("a string")
    );
    assert_eq!(backend.documents.ttl(&key).await.unwrap(), KeyTtl::Persistent);
    // A failed increment sets no TTL (its script checks the type first) ...
    let error = users
        .with_ttl(ttl(60_000))
        .increment("u1", "a", 1)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType);
    assert_eq!(backend.documents.ttl(&key).await.unwrap(), KeyTtl::Persistent);
    // ... and neither does any write with a TTL (the script checks first).
    for error in [
        users
            .with_ttl(ttl(60_000))
            .set_field("u1", "a", &1)
            .await
            .unwrap_err(),
        users
            .with_ttl(ttl(60_000))
            .upsert("u1", &json!({"a": 1}))
            .await
            .unwrap_err(),
        users
            .with_ttl(ttl(60_000))
            .modify_field("u1", "a", |a: Option<u32>| a.unwrap_or(0))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    }
    let states = backend.tenant("acme").handler_states().with_ttl(ttl(60_000));
    let state_key = Key::new("t:{acme}:handler:u1:h").unwrap();
    backend
        .documents
        .set_json(&state_key, &1, SetOptions::new())
        .await
        .unwrap();
    let error = states.set("u1", "h", &json!({"a": 1})).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType);
    let error = states
        .merge::<_, Value>("u1", "h", &json!({"a": 1}))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType);
    for key in [&key, &state_key] {
        assert_eq!(backend.documents.ttl(key).await.unwrap(), KeyTtl::Persistent);
    }
    assert_eq!(
        backend.documents.get_json::<u32>(&state_key).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        backend
            .documents
            .get_json::<String>(&key)
            .await
            .unwrap()
            .as_deref(),
        Some("a string")
    );
}
