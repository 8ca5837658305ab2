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

    async fn set(&self, key: &Key, value: Vec<u8>, options: SetOptions) -> Result<bool, StoreError> {
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
