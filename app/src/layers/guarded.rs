use async_trait::async_trait;
use statehouse_domain::{Key, KeyPattern, Ttl};
use statehouse_ports::{
    DocumentStore, Fetched, KeyTtl, RetryPolicy, SetCondition, SetOptions, StoreError, UpdateFn, Updated,
};

use super::retrying::{default_policy, retry};
use super::traced::{ManyKeys, traced, traced_with, tracing_on};

/// The default stack, `Traced<Retrying<S>>`, as one decorator: the same
/// spans and the same retries of temporary failures, but one future per call
/// instead of two. This is what [`Statehouse`](crate::Statehouse) puts over
/// every adapter; the contract suite runs through it.
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    policy: RetryPolicy,
}

impl<S> Guarded<S> {
    /// Guards `inner`, retrying temporary failures with `policy`.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    /// Guards `inner` with the default retries of
    /// [`Retrying::with_defaults`](super::Retrying::with_defaults).
    pub fn with_defaults(inner: S) -> Self {
        Self::new(inner, default_policy())
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: DocumentStore> DocumentStore for Guarded<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        let call = retry(self.policy, || self.inner.get(key));
        if !tracing_on() {
            return call.await;
        }
        traced("get", key, call).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Fetched>, StoreError> {
        traced(
            "get_many",
            &ManyKeys(keys),
            retry(self.policy, || self.inner.get_many(keys)),
        )
        .await
    }

    async fn set(&self, key: &Key, value: &[u8], options: SetOptions) -> Result<bool, StoreError> {
        let policy = match options.condition {
            SetCondition::Always => self.policy,
            SetCondition::IfAbsent | SetCondition::IfPresent => RetryPolicy::no_retry(),
        };
        let call = retry(policy, || self.inner.set(key, value, options));
        if !tracing_on() {
            return call.await;
        }
        traced("set", key, call).await
    }

    async fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        traced("delete", key, self.inner.delete(key)).await
    }

    async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        traced("exists", key, retry(self.policy, || self.inner.exists(key))).await
    }

    async fn expire(&self, key: &Key, ttl: Ttl) -> Result<bool, StoreError> {
        traced("expire", key, self.inner.expire(key, ttl)).await
    }

    async fn ttl(&self, key: &Key) -> Result<KeyTtl, StoreError> {
        traced("ttl", key, retry(self.policy, || self.inner.ttl(key))).await
    }

    async fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<String>, StoreError> {
        traced(
            "list_keys",
            pattern,
            retry(self.policy, || self.inner.list_keys(pattern)),
        )
        .await
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
        traced("ping", &"", retry(self.policy, || self.inner.ping())).await
    }
}
