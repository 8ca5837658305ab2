//! What the tracing layers record. Its own test binary with one test: the
//! subscriber is process-global, as in an application, so no other test's
//! callsites can race its interest cache.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use statehouse::layers::{Retrying, Traced};
use statehouse::{
    ActionName, ChangeFeed, DocumentStore, DocumentStoreExt, FieldName, FieldStore, Key, PropertyKind,
    PropertyName, QueueName, QueueStore, RetryPolicy, ServiceName, SetOptions, StoreError, SubjectName,
    SubjectSpace, SubjectStore, TaskId, TaskRecord, TaskRepository, TaskSpace, TenantId, TenantKey,
    TriggerId, TriggerStore, Update, UserId, Watched,
};
use statehouse_domain::layout::{QueueKeys, TriggerKeys};
use statehouse_memory::MemoryStore;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn exercise(store: &dyn DocumentStore, memory: &MemoryStore, prefix: &str) {
    let key = Key::new(format!("{prefix}user:1")).unwrap();
    store
        .set_json(&key, &"SECRET-VALUE", SetOptions::new())
        .await
        .unwrap();
    store.get(&key).await.unwrap();
    store
        .update_json(&key, RetryPolicy::default(), |_: Option<String>| {
            Ok::<_, StoreError>(Update::Set("OTHER-SECRET".to_owned()))
        })
        .await
        .unwrap();
    store.set(&key, b"{broken", SetOptions::new()).await.unwrap();
    store.get_json::<String>(&key).await.unwrap_err();
    let hash_key = Key::new(format!("{prefix}h")).unwrap();
    memory.insert_hash_for_tests(&hash_key, "f", b"HASH-SECRET");
    store.get(&hash_key).await.unwrap_err();
    store.get_many(&[key.clone(), hash_key]).await.unwrap();
}

/// One call of every other port, through the same generic forwarding;
/// returns the lines the log must hold.
async fn exercise_ports<S>(store: &S, tenant: &str) -> Vec<String>
where
    S: TaskRepository + SubjectStore + FieldStore + TriggerStore + QueueStore + ChangeFeed,
{
    let mut expected = Vec::new();
    let space = TaskSpace::default();
    let id = TaskId::new(format!("{tenant}job:1")).unwrap();
    let record = TaskRecord::new(
        id.clone(),
        ServiceName::new("mailer").unwrap(),
        UserId::new("u1").unwrap(),
        chrono::Utc::now(),
    );
    store.save(&space, record).await.unwrap();
    TaskRepository::get(store, &space, &id).await.unwrap();
    let task_key = space.keys().record(id.as_str());
    expected.push(format!(r#"op="save" key={task_key} outcome="ok""#));
    expected.push(format!(r#"op="get" key={task_key} outcome="ok""#));

    let subjects = SubjectSpace::default();
    let subject = SubjectName::new(format!("{tenant}s1")).unwrap();
    let property = PropertyName::new("count").unwrap();
    store
        .update_property(&subjects, &subject, PropertyKind::Default, &property, &mut |_| {
            Ok(serde_json::json!("SUBJECT-SECRET"))
        })
        .await
        .unwrap();
    let subject_key = subjects.key(subject.as_str());
    expected.push(format!(
        r#"op="update_property" key={subject_key} outcome="ok" attempts=1"#
    ));

    let tenant_id = TenantId::new(tenant).unwrap();
    let user = TenantKey::user(&tenant_id, &UserId::new("u1").unwrap());
    store
        .update_field(
            &user,
            &FieldName::new("age").unwrap(),
            None,
            RetryPolicy::default(),
            &mut |_| Ok(serde_json::json!("FIELD-SECRET")),
        )
        .await
        .unwrap();
    expected.push(format!(r#"op="update_field" key={user} outcome="ok" attempts=1"#));

    let triggers = TriggerKeys::new(&tenant_id);
    let (action, trigger) = (ActionName::new("remind").unwrap(), TriggerId::new("u1").unwrap());
    store
        .set(&triggers, &action, &trigger, Duration::from_secs(60))
        .await
        .unwrap();
    store.cancel_all(&triggers, &trigger).await.unwrap();
    expected.push(format!(r#"op="trigger_set" key={} outcome="ok""#, triggers.due()));
    expected.push(format!(
        r#"op="trigger_cancel_all" key={} outcome="ok""#,
        triggers.of_id("u1")
    ));

    let queue = QueueName::new(
        ServiceName::new("mailer").unwrap(),
        "b".parse().unwrap(),
        "send".parse().unwrap(),
    );
    let queue = QueueKeys::new(&tenant_id, &queue);
    store.enqueue(&queue, &[b"QUEUE-SECRET".to_vec()]).await.unwrap();
    expected.push(format!(r#"op="enqueue" key={} outcome="ok""#, queue.list()));

    let watched = Watched::Key(Key::new(format!("{tenant}watched")).unwrap());
    drop(store.subscribe(&watched, 8).await.unwrap());
    expected.push(format!(r#"op="subscribe" key={} outcome="ok""#, watched.label()));
    expected
}

#[test]
fn spans_name_op_key_and_outcome_but_never_values() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let expected_ports = runtime.block_on(async {
        let memory = MemoryStore::new();
        exercise(&Traced::new(memory.clone()), &memory, "t:").await;
        exercise(
            &Traced::new(Retrying::with_defaults(memory.clone())),
            &memory,
            "g:",
        )
        .await;
        let mut expected = exercise_ports(&Traced::new(memory.clone()), "t").await;
        expected.extend(exercise_ports(&Traced::new(Retrying::with_defaults(memory.clone())), "g").await);
        expected
    });

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for prefix in ["t:", "g:"] {
        for expected in [
            format!(r#"op="set" key={prefix}user:1 outcome="ok""#),
            format!(r#"op="get" key={prefix}user:1 outcome="ok""#),
            format!(r#"op="update" key={prefix}user:1 outcome="ok" attempts=1"#),
            format!(r#"op="get" key={prefix}h outcome="wrong_type""#),
            format!(r#"op="get_many" key={prefix}user:1 (+1 more) outcome="ok""#),
        ] {
            assert!(log.contains(&expected), "missing {expected:?} in:\n{log}");
        }
    }
    for expected in expected_ports {
        assert!(log.contains(&expected), "missing {expected:?} in:\n{log}");
    }
    for secret in [
        "SECRET-VALUE",
        "OTHER-SECRET",
        "HASH-SECRET",
        "broken",
        "SUBJECT-SECRET",
        "FIELD-SECRET",
        "QUEUE-SECRET",
    ] {
        assert!(!log.contains(secret), "{secret} leaked into the log:\n{log}");
    }
}
