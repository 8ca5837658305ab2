use std::future::Future;

use async_trait::async_trait;
use statehouse_domain::{Key, KeyPattern, Ttl};
use statehouse_ports::{
    DocumentStore, Fetched, KeyTtl, RetryPolicy, SetOptions, StoreError, UpdateFn, Updated,
};
use tracing::Instrument;

/// A `tracing` span around every port call: target `statehouse`, name
/// `store`, fields `op`, `key` (the pattern for listings, the first key and
/// a count for `get_many`) and `outcome` (`ok` or the error kind), plus
/// `attempts` for updates. Values and secrets are never recorded.
///
/// Spans are at `DEBUG` level: with no subscriber, or one filtering DEBUG
/// out, they cost next to nothing.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

impl<S> Traced<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

async fn traced<T>(
    op: &'static str,
    key: &str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    traced_with(op, key, call, |_, _| {}).await
}

async fn traced_with<T>(
    op: &'static str,
    key: &str,
    call: impl Future<Output = Result<T, StoreError>>,
    on_ok: impl FnOnce(&T, &tracing::Span),
) -> Result<T, StoreError> {
    // Without a subscriber interested in these spans, skip building them:
    // this layer is on every call's path.
    if !tracing::enabled!(target: "statehouse", tracing::Level::DEBUG) {
        return call.await;
    }
    let span = tracing::debug_span!(
        target: "statehouse",
        "store",
        op,
        key,
        outcome = tracing::field::Empty,
        attempts = tracing::field::Empty
    );
    let result = call.instrument(span.clone()).await;
    match &result {
        Ok(value) => {
            span.record("outcome", "ok");
            on_ok(value, &span);
        }
        Err(error) => {
            span.record("outcome", error.kind().as_str());
            tracing::debug!(target: "statehouse", parent: &span, %error, "store call failed");
        }
    }
    result
}

#[async_trait]
impl<S: DocumentStore> DocumentStore for Traced<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        traced("get", key.as_str(), self.inner.get(key)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Fetched>, StoreError> {
        let label = match keys {
            [] => String::new(),
            [only] => only.to_string(),
            [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
        };
        traced("get_many", &label, self.inner.get_many(keys)).await
    }

    async fn set(&self, key: &Key, value: &[u8], options: SetOptions) -> Result<bool, StoreError> {
        traced("set", key.as_str(), self.inner.set(key, value, options)).await
    }

    async fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        traced("delete", key.as_str(), self.inner.delete(key)).await
    }

    async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        traced("exists", key.as_str(), self.inner.exists(key)).await
    }

    async fn expire(&self, key: &Key, ttl: Ttl) -> Result<bool, StoreError> {
        traced("expire", key.as_str(), self.inner.expire(key, ttl)).await
    }

    async fn ttl(&self, key: &Key) -> Result<KeyTtl, StoreError> {
        traced("ttl", key.as_str(), self.inner.ttl(key)).await
    }

    async fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<String>, StoreError> {
        traced("list_keys", pattern.as_str(), self.inner.list_keys(pattern)).await
    }

    async fn update<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut UpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        traced_with(
            "update",
            key.as_str(),
            self.inner.update(key, policy, f),
            |updated, span| {
                span.record("attempts", updated.attempts);
            },
        )
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        traced("ping", "", self.inner.ping()).await
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use statehouse_memory::MemoryStore;
    use statehouse_ports::{DocumentStoreExt, SetOptions, Update};
    use tracing_subscriber::fmt::format::FmtSpan;

    use super::*;

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

    #[test]
    fn spans_name_op_key_and_outcome_but_never_values() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(FmtSpan::CLOSE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let store = Traced::new(MemoryStore::new());
                let key = Key::new("user:1").unwrap();
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
                let hash_key = Key::new("h").unwrap();
                store
                    .get_ref()
                    .insert_hash_for_tests(&hash_key, "f", b"HASH-SECRET");
                store.get(&hash_key).await.unwrap_err();
            });
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains(r#"op="set" key="user:1" outcome="ok""#), "{log}");
        assert!(log.contains(r#"op="get" key="user:1" outcome="ok""#), "{log}");
        assert!(
            log.contains(r#"op="update" key="user:1" outcome="ok" attempts=1"#),
            "{log}"
        );
        assert!(log.contains(r#"op="get" key="h" outcome="wrong_type""#), "{log}");
        for secret in ["SECRET-VALUE", "OTHER-SECRET", "HASH-SECRET", "broken"] {
            assert!(!log.contains(secret), "{secret} leaked into the log:\n{log}");
        }
    }
}
