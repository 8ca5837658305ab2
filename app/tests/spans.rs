//! What the tracing layers record. Its own test binary with one test: the
//! subscriber is process-global, as in an application, so no other test's
//! callsites can race its interest cache.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use statehouse::layers::{Retrying, Traced};
use statehouse::{DocumentStore, DocumentStoreExt, Key, RetryPolicy, SetOptions, StoreError, Update};
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
    runtime.block_on(async {
        let memory = MemoryStore::new();
        exercise(&Traced::new(memory.clone()), &memory, "t:").await;
        exercise(
            &Traced::new(Retrying::with_defaults(memory.clone())),
            &memory,
            "g:",
        )
        .await;
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
    for secret in ["SECRET-VALUE", "OTHER-SECRET", "HASH-SECRET", "broken"] {
        assert!(!log.contains(secret), "{secret} leaked into the log:\n{log}");
    }
}
