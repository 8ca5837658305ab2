//! Contract: tenant repositories ([`statehouse_ports::FieldStore`] and the
//! [`statehouse::Tenant`] facades over it): field-level atomicity, TTL per
//! operation, typed JSON per field, strict isolation between tenants and
//! users, and the task-local current shared state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use statehouse::{ErrorKind, RetryPolicy, SharedState, Tenant, TenantTtls, Ttl};
use statehouse_domain::layout::TenantKeys;
use statehouse_ports::{DocumentStoreExt, Key, KeyTtl, SetOptions, TenantId, TenantPattern};

use super::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Plan {
    Free,
    Pro,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    plan: Plan,
    joined: DateTime<Utc>,
    tags: Vec<String>,
}

fn profile() -> Profile {
    Profile {
        name: "Ann".into(),
        plan: Plan::Pro,
        joined: Utc.with_ymd_and_hms(2026, 11, 23, 8, 30, 0).unwrap(),
        tags: vec!["beta".into()],
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ttl(n: u64) -> Option<Ttl> {
    Some(Ttl::from_millis(n).unwrap())
}

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
    assert_eq!(
        users.get_field::<String>("u1", "name").await.unwrap().as_deref(),
        Some("Ann")
    );
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

/// What every write does to the TTL, per operation, on both adapters: a
/// new record gets it, a refresh extends but never shortens it, a
/// persistent record stays persistent, no TTL keeps the expiry.
pub async fn ttl_default_override_and_refresh_per_operation(backend: Backend) {
    let acme = backend.tenant("acme").with_ttls(TenantTtls {
        users: ttl(1000),
        ..TenantTtls::default()
    });
    let users = acme.users();
    let plain = backend.tenant("acme").users();
    // upsert gives a new user the repository default.
    users.upsert("u1", &json!({"a": 1})).await.unwrap();
    backend.elapse(ms(600)).await;
    // set_field refreshes it.
    users.set_field("u1", "b", &2).await.unwrap();
    backend.elapse(ms(600)).await;
    assert!(users.exists("u1").await.unwrap(), "refreshed by set_field");
    // increment, modify_field and append refresh too.
    users.increment("u1", "n", 1).await.unwrap();
    backend.elapse(ms(600)).await;
    users
        .modify_field("u1", "m", |m: Option<u32>| m.unwrap_or(0) + 1)
        .await
        .unwrap();
    backend.elapse(ms(600)).await;
    users.append("u1", "l", &1).await.unwrap();
    backend.elapse(ms(600)).await;
    assert!(users.exists("u1").await.unwrap(), "refreshed by each write");
    // delete_field and reads do not refresh.
    users.delete_field("u1", "b").await.unwrap();
    users.get::<Value>("u1").await.unwrap();
    users.get_fields("u1").await.unwrap();
    backend.elapse(ms(500)).await;
    assert!(
        !users.exists("u1").await.unwrap(),
        "expired: neither delete_field nor reads refresh"
    );

    // Override per call: a longer TTL for this write.
    users
        .with_ttl(ttl(3000))
        .upsert("u2", &json!({"a": 1}))
        .await
        .unwrap();
    backend.elapse(ms(1000)).await;
    // A refresh with the shorter default never shortens it ...
    users.set_field("u2", "b", &1).await.unwrap();
    users.increment("u2", "n", 1).await.unwrap();
    backend.elapse(ms(1500)).await;
    assert!(users.exists("u2").await.unwrap(), "not shortened to 1 s");
    // ... and it still ends when the override said.
    backend.elapse(ms(600)).await;
    assert!(!users.exists("u2").await.unwrap());

    // Without a TTL, writes keep the current expiry.
    users.upsert("u3", &json!({"a": 1})).await.unwrap();
    backend.elapse(ms(600)).await;
    plain.set_field("u3", "b", &1).await.unwrap();
    plain.increment("u3", "n", 1).await.unwrap();
    plain.upsert("u3", &json!({"c": 1})).await.unwrap();
    backend.elapse(ms(500)).await;
    assert!(
        !plain.exists("u3").await.unwrap(),
        "writes without a TTL kept the expiry"
    );
    // A new record without a TTL is persistent, and stays so under writes
    // with one.
    plain.upsert("u4", &json!({"a": 1})).await.unwrap();
    users.set_field("u4", "b", &1).await.unwrap();
    users.increment("u4", "n", 1).await.unwrap();
    backend.elapse(ms(2000)).await;
    assert!(plain.exists("u4").await.unwrap(), "persistent stays persistent");

    // A failed increment writes nothing, not even the TTL.
    users.upsert("u5", &json!({"name": "x"})).await.unwrap();
    backend.elapse(ms(600)).await;
    assert!(
        plain
            .with_ttl(ttl(5000))
            .increment("u5", "name", 1)
            .await
            .is_err()
    );
    backend.elapse(ms(500)).await;
    assert!(
        !users.exists("u5").await.unwrap(),
        "the failed increment set no TTL"
    );

    // set replaces the fields: with a TTL it refreshes like the others,
    // without one it keeps the expiry; merge refreshes.
    let states = backend.tenant("acme").handler_states();
    let states_1s = states.with_ttl(ttl(1000));
    states_1s.set("u1", "h", &json!({"a": 1})).await.unwrap();
    backend.elapse(ms(600)).await;
    states_1s.set("u1", "h", &json!({"a": 2})).await.unwrap();
    backend.elapse(ms(600)).await;
    let got: Option<Value> = states.get("u1", "h").await.unwrap();
    assert_eq!(got, Some(json!({"a": 2})), "set with a TTL refreshed");
    states.set("u1", "h", &json!({"a": 3})).await.unwrap();
    backend.elapse(ms(500)).await;
    assert!(
        states.get::<Value>("u1", "h").await.unwrap().is_none(),
        "set without a TTL kept the expiry"
    );
    states_1s.set("u1", "h", &json!({"a": 4})).await.unwrap();
    backend.elapse(ms(600)).await;
    let _: Value = states_1s.merge("u1", "h", &json!({"b": 1})).await.unwrap();
    backend.elapse(ms(600)).await;
    assert!(
        states.get::<Value>("u1", "h").await.unwrap().is_some(),
        "merge refreshed"
    );
    backend.elapse(ms(500)).await;
    assert!(states.get::<Value>("u1", "h").await.unwrap().is_none());
    // A persistent state stays persistent under set with a TTL.
    states.set("u2", "h", &json!({"a": 1})).await.unwrap();
    states_1s.set("u2", "h", &json!({"a": 2})).await.unwrap();
    backend.elapse(ms(1500)).await;
    assert!(states.get::<Value>("u2", "h").await.unwrap().is_some());
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

/// A small deterministic PRNG (xorshift64*), so the property test needs no
/// dependency and every run checks the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// An id the validator allows, built from the nastiest pieces: key
    /// separators, globs, braces, backslashes, spaces, `%` escapes, unicode,
    /// and ids that are prefixes of each other.
    fn id(&mut self) -> String {
        const PIECES: [&str; 26] = [
            ":", "*", "?", "[", "]", "{", "}", "\\", " ", "%", "%3A", "%2A", "a", "b", "ab", "é", "😀",
            "{a}", "user", "state", "table:", "*:*", "\u{a0}", "-", "\u{200b}", "^",
        ];
        let len = 1 + self.below(3);
        (0..len).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }
}

/// Random tuples with nasty ids: different tuples never share a key, and
/// no get, find, list or clear of one tenant or user reads, returns or
/// deletes another's data.
pub async fn isolation_holds_for_random_nasty_ids(backend: Backend) {
    let mut rng = Rng(0x5EED_1234_ABCD_0042);
    let mut tenants: Vec<String> = (0..6).map(|_| rng.id()).collect();
    tenants.extend(["*", "a:b", "a", "b", "ab", "a*", " ", "\u{a0}"].map(String::from));
    tenants.sort();
    tenants.dedup();
    let users: Vec<String> = {
        let mut users: Vec<String> = (0..5).map(|_| rng.id()).collect();
        // The empty-looking ids the validator allows, and prefixes.
        users.extend(["u", "u:x", "u*", " ", "\u{200b}", "%"].map(String::from));
        users.sort();
        users.dedup();
        users
    };
    let names: Vec<String> = {
        let mut names: Vec<String> = (0..3).map(|_| rng.id()).collect();
        names.sort();
        names.dedup();
        names
    };
    // 1. Keys: every (kind, tenant, a, b) tuple has its own key.
    let mut seen: BTreeMap<String, (String, &str, String, String)> = BTreeMap::new();
    for tenant in &tenants {
        let keys = TenantKeys::new(tenant);
        for a in users.iter().chain(&names) {
            for b in users.iter().chain(&names) {
                for (kind, key) in [
                    ("handler", keys.handler(a, b)),
                    ("table", keys.row(a, b)),
                    ("state", keys.state(a, b)),
                ] {
                    let tuple = (tenant.clone(), kind, a.clone(), b.clone());
                    if let Some(other) = seen.insert(key.clone(), tuple.clone()) {
                        panic!("{tuple:?} and {other:?} share {key}");
                    }
                }
            }
            let tuple = (tenant.clone(), "user", a.clone(), String::new());
            if let Some(other) = seen.insert(keys.user(a), tuple.clone())
                && other != tuple
            {
                panic!("{tuple:?} and {other:?} share a user key");
            }
        }
    }
    // 2. Data: each tenant's user writes a marker naming its tuple.
    let marker = |tenant: &str, user: &str, name: &str| json!({"owner": format!("{tenant}|{user}|{name}"), "flag": "x"});
    let mut written = 0;
    for tenant in &tenants {
        let t = backend.tenant(tenant);
        for user in &users {
            t.users().upsert(user, &marker(tenant, user, "")).await.unwrap();
            for name in &names {
                t.shared_states()
                    .set(user, name, &marker(tenant, user, name))
                    .await
                    .unwrap();
                t.handler_states()
                    .set(user, name, &marker(tenant, user, name))
                    .await
                    .unwrap();
                t.tables()
                    .set(name, user, &marker(tenant, user, name))
                    .await
                    .unwrap();
                written += 3;
            }
        }
    }
    assert!(written > 100, "{written}");
    for tenant in &tenants {
        let t = backend.tenant(tenant);
        assert_eq!(
            t.users().list().await.unwrap(),
            users,
            "users of {tenant:?} (sorted ids)"
        );
        // Below the facade: the port's SCAN of the tenant's patterns returns
        // only the tenant's own keys, each once.
        let id = TenantId::new(tenant.as_str()).unwrap();
        let head = TenantKeys::new(tenant).head().to_owned();
        let keys = backend.tenants.scan(&TenantPattern::users(&id)).await.unwrap();
        assert_eq!(keys.len(), users.len(), "user keys of {tenant:?}");
        assert!(keys.iter().all(|key| key.starts_with(&head)), "{keys:?}");
        let keys = backend.tenants.scan(&TenantPattern::all(&id)).await.unwrap();
        assert_eq!(
            keys.len(),
            users.len() * (1 + 3 * names.len()),
            "keys of {tenant:?}"
        );
        assert!(keys.iter().all(|key| key.starts_with(&head)), "{keys:?}");
        let found = t
            .users()
            .find("owner", &format!("{tenant}|{}|", users[0]))
            .await
            .unwrap();
        assert_eq!(found, [users[0].clone()], "find in {tenant:?}");
        assert_eq!(
            t.users().find("flag", &"x").await.unwrap(),
            users,
            "find in {tenant:?}"
        );
        for user in &users {
            let got: Value = t.users().get(user).await.unwrap().unwrap();
            assert_eq!(got, marker(tenant, user, ""), "user {user:?} of {tenant:?}");
            let states = t.shared_states().list(user).await.unwrap();
            assert_eq!(states, names, "states of {user:?} in {tenant:?}");
            let handlers = t.handler_states().list(user).await.unwrap();
            assert_eq!(handlers, names);
            for name in &names {
                let got: Value = t.shared_states().get(user, name).await.unwrap().unwrap();
                assert_eq!(got, marker(tenant, user, name));
                let got: Value = t.tables().get(name, user).await.unwrap().unwrap();
                assert_eq!(got, marker(tenant, user, name));
            }
        }
    }
    // 3. Clear and delete-by-pk touch only their own tenant and user.
    let (victim_tenant, victim_user) = (&tenants[0], &users[0]);
    let t = backend.tenant(victim_tenant);
    assert_eq!(
        t.shared_states().clear(victim_user).await.unwrap(),
        names.len() as u64
    );
    assert_eq!(
        t.tables().delete_pk(victim_user).await.unwrap(),
        names.len() as u64
    );
    for tenant in &tenants {
        let t = backend.tenant(tenant);
        for user in &users {
            let victim = tenant == victim_tenant && user == victim_user;
            let states = t.shared_states().list(user).await.unwrap();
            assert_eq!(states.is_empty(), victim, "states of {user:?} in {tenant:?}");
            for name in &names {
                let row = t.tables().get::<Value>(name, user).await.unwrap();
                assert_eq!(row.is_none(), victim, "row {name:?}/{user:?} in {tenant:?}");
                let handler = t.handler_states().get::<Value>(user, name).await.unwrap();
                assert!(handler.is_some(), "handler states are never cleared here");
            }
            assert!(t.users().exists(user).await.unwrap());
        }
    }
}

/// The tenants the issue names: `*`, `a:b` beside `a` and `b`, and a tenant
/// that is a prefix of another.
pub async fn tenants_named_star_colon_and_prefix_stay_apart(backend: Backend) {
    let names = ["*", "a:b", "a", "b", "ab", "a*", "[a]", "{a}"];
    for name in names {
        let t = backend.tenant(name);
        t.users().upsert("u", &json!({"tenant": name})).await.unwrap();
        t.shared_states()
            .set("u", "s", &json!({"tenant": name}))
            .await
            .unwrap();
        t.tables().set("t", "1", &json!({"tenant": name})).await.unwrap();
    }
    for name in names {
        let t = backend.tenant(name);
        assert_eq!(t.users().list().await.unwrap(), ["u"], "{name}");
        assert_eq!(t.users().find("tenant", &name).await.unwrap(), ["u"], "{name}");
        assert_eq!(t.tables().list("t").await.unwrap(), ["1"], "{name}");
        assert_eq!(
            t.users()
                .get_field::<String>("u", "tenant")
                .await
                .unwrap()
                .as_deref(),
            Some(name)
        );
    }
    // Clearing in `*`, `a` and `a:b` leaves the others.
    for name in ["*", "a", "a:b"] {
        let t = backend.tenant(name);
        assert_eq!(t.shared_states().clear("u").await.unwrap(), 1, "{name}");
        assert_eq!(t.tables().delete_pk("1").await.unwrap(), 1, "{name}");
    }
    for name in ["b", "ab", "a*", "[a]", "{a}"] {
        let t = backend.tenant(name);
        assert_eq!(t.shared_states().list("u").await.unwrap(), ["s"], "{name}");
        assert_eq!(t.tables().list("t").await.unwrap(), ["1"], "{name}");
    }
}

pub async fn increments_from_16_tasks_end_exact(backend: Backend) {
    let users = backend.tenant("acme").users();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..250 {
                users.increment("u1", "count", 1).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(users.get_field::<i64>("u1", "count").await.unwrap(), Some(4000));
}

/// Two writers on different fields of one record lose nothing; concurrent
/// read-modify-writes and appends on one field lose nothing either.
pub async fn writers_on_different_fields_lose_nothing(backend: Backend) {
    let states = backend.tenant("acme").handler_states();
    states.set("u1", "h", &json!({"keep": "me"})).await.unwrap();
    let mut tasks = Vec::new();
    for writer in ["a", "b"] {
        let states = states.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100u32 {
                states.set_field("u1", "h", writer, &i).await.unwrap();
                states
                    .modify_field("u1", "h", &format!("{writer}_count"), |n: Option<u32>| {
                        n.unwrap_or(0) + 1
                    })
                    .await
                    .unwrap();
                let _: Value = states
                    .merge("u1", "h", &json!({format!("{writer}_merged"): i}))
                    .await
                    .unwrap();
            }
        }));
    }
    let users = backend.tenant("acme").users();
    for writer in 0..4 {
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                users.append("u1", "log", &format!("{writer}-{i}")).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let state: Value = states.get("u1", "h").await.unwrap().unwrap();
    assert_eq!(
        state,
        json!({"keep": "me", "a": 99, "b": 99, "a_count": 100, "b_count": 100, "a_merged": 99, "b_merged": 99})
    );
    let log: Vec<String> = users.get_field("u1", "log").await.unwrap().unwrap();
    assert_eq!(log.len(), 100);
    assert_eq!(log.iter().collect::<BTreeSet<_>>().len(), 100);
}

/// The current shared state: a clear error outside a scope, carried by
/// `SharedState::spawn` (not by plain `tokio::spawn`), usable from blocking
/// code; many concurrent requests of different tenants and users, through
/// nested tasks and a blocking tool, never see another's state.
pub async fn the_current_shared_state_never_leaks_between_requests(backend: Backend) {
    let error = SharedState::current().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.to_string().contains("SharedState::scope"), "{error}");
    assert!(SharedState::spawn_blocking(|_| ()).is_err());

    let backend = Arc::new(backend);
    let mut requests = Vec::new();
    for request in 0..24u32 {
        let backend = backend.clone();
        requests.push(tokio::spawn(async move {
            let tenant = ["acme", "a:b", "*"][request as usize % 3];
            let user = format!("user-{}", request % 8);
            let owner = format!("{tenant}|{user}");
            let state = backend.tenant(tenant).shared_states().for_user(&user).unwrap();
            state
                .scope(async move {
                    let current = SharedState::current().unwrap();
                    assert_eq!(
                        (current.tenant().as_str(), current.user().as_str()),
                        (tenant, user.as_str())
                    );
                    current
                        .set(&format!("req-{request}"), &json!({"owner": owner}))
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                    // A nested task carries the binding, and so does its own child.
                    let nested = SharedState::spawn(async move {
                        let inner = SharedState::spawn(async {
                            SharedState::current().map(|s| (s.tenant().clone(), s.user().clone()))
                        });
                        let here = SharedState::current().unwrap();
                        let got: Value = here.get(&format!("req-{request}")).await.unwrap().unwrap();
                        (got, inner.await.unwrap().unwrap())
                    });
                    let (got, (t, u)) = nested.await.unwrap();
                    assert_eq!(got["owner"], json!(format!("{tenant}|{user}")));
                    assert_eq!((t.as_str(), u.as_str()), (tenant, user.as_str()));
                    // Plain tokio::spawn does not carry it.
                    assert!(
                        tokio::spawn(async { SharedState::current().is_err() })
                            .await
                            .unwrap()
                    );
                    // A synchronous tool on a blocking thread.
                    let name = format!("req-{request}");
                    let tool = SharedState::spawn_blocking(move |state| {
                        let got: Value = state.get(&name).unwrap().unwrap();
                        state.set_field(&name, "tool", &"ran").unwrap();
                        (got, state.list().unwrap())
                    })
                    .unwrap();
                    let (got, listed) = tool.await.unwrap();
                    assert_eq!(got["owner"], json!(format!("{tenant}|{user}")));
                    for name in &listed {
                        let n: u32 = name.trim_start_matches("req-").parse().unwrap();
                        assert_eq!(n % 8, request % 8, "only this user's states: {listed:?}");
                        assert_eq!(n % 3, request % 3, "only this tenant's states: {listed:?}");
                    }
                    let current = SharedState::current().unwrap();
                    assert_eq!(
                        current
                            .get_field::<String>(&format!("req-{request}"), "tool")
                            .await
                            .unwrap()
                            .as_deref(),
                        Some("ran")
                    );
                })
                .await;
        }));
    }
    for request in requests {
        request.await.unwrap();
    }
    // Every state holds its own owner.
    for request in 0..24u32 {
        let tenant = ["acme", "a:b", "*"][request as usize % 3];
        let user = format!("user-{}", request % 8);
        let got: Value = backend
            .tenant(tenant)
            .shared_states()
            .get(&user, &format!("req-{request}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, json!({"owner": format!("{tenant}|{user}"), "tool": "ran"}));
    }
}
