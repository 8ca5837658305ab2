use std::fmt;
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

pub(crate) async fn traced<T>(
    op: &'static str,
    key: &(dyn fmt::Display + Sync),
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    traced_with(op, key, call, |_, _| {}).await
}

pub(crate) async fn traced_with<T>(
    op: &'static str,
    key: &(dyn fmt::Display + Sync),
    call: impl Future<Output = Result<T, StoreError>>,
    on_ok: impl FnOnce(&T, &tracing::Span),
) -> Result<T, StoreError> {
    // Without a subscriber interested in these spans, skip building them:
    // this layer is on every call's path.
    if !tracing_on() {
        return call.await;
    }
    let span = tracing::debug_span!(
        target: "statehouse",
        "store",
        op,
        %key,
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

/// Whether a subscriber wants the layer's spans (cheap: the answer is
/// cached per call site).
pub(crate) fn tracing_on() -> bool {
    tracing::enabled!(target: "statehouse", tracing::Level::DEBUG)
}

/// The `key` of a `get_many` span: the first key and how many more,
/// formatted only if the span is recorded.
pub(crate) struct ManyKeys<'a>(pub(crate) &'a [Key]);

impl fmt::Display for ManyKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => Ok(()),
            [only] => write!(f, "{only}"),
            [first, rest @ ..] => write!(f, "{first} (+{} more)", rest.len()),
        }
    }
}

#[async_trait]
impl<S: DocumentStore> DocumentStore for Traced<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        traced("get", key, self.inner.get(key)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Fetched>, StoreError> {
        traced("get_many", &ManyKeys(keys), self.inner.get_many(keys)).await
    }

    async fn set(&self, key: &Key, value: &[u8], options: SetOptions) -> Result<bool, StoreError> {
        traced("set", key, self.inner.set(key, value, options)).await
    }

    async fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        traced("delete", key, self.inner.delete(key)).await
    }

    async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        traced("exists", key, self.inner.exists(key)).await
    }

    async fn expire(&self, key: &Key, ttl: Ttl) -> Result<bool, StoreError> {
        traced("expire", key, self.inner.expire(key, ttl)).await
    }

    async fn ttl(&self, key: &Key) -> Result<KeyTtl, StoreError> {
        traced("ttl", key, self.inner.ttl(key)).await
    }

    async fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<String>, StoreError> {
        traced("list_keys", pattern, self.inner.list_keys(pattern)).await
    }

    async fn update<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut UpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        traced_with(
            "update",
            key,
            self.inner.update(key, policy, f),
            |updated, span| {
                span.record("attempts", updated.attempts);
            },
        )
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        traced("ping", &"", self.inner.ping()).await
    }
}
