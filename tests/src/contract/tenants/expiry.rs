//! The TTL of every tenant write: default, override and refresh per operation.

use serde_json::{Value, json};
use statehouse::TenantTtls;

use super::{ms, ttl};
use crate::contract::Backend;

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
