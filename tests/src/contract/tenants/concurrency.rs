//! Concurrent increments and writers on tenant records lose nothing.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::contract::Backend;

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
