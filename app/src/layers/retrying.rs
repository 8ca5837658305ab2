use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::{Key, KeyPattern, Ttl};
use statehouse_ports::{
    DocumentStore, Fetched, KeyTtl, RetryPolicy, SetCondition, SetOptions, StoreError, UpdateFn, Updated,
};

/// Retries calls that failed with a temporary error
/// ([`StoreError::is_retryable`]: connection or timeout), for operations that
/// are safe to repeat only.
///
/// | retried | never retried |
/// |---|---|
/// | `get`, `get_many`, `exists`, `ttl`, `list_keys`, `ping`, unconditional `set` | `set` with a condition (a lost reply would turn "written" into "not written"), `delete` (its answer could lie), `expire`, `update` (a timed-out EXEC has an unknown outcome) |
///
/// `Conflict` is never retried here: the update loop already spent its
/// attempts. The last error is returned as is once `policy` runs out.
#[derive(Debug, Clone)]
pub struct Retrying<S> {
    inner: S,
    policy: RetryPolicy,
}

impl<S> Retrying<S> {
    /// Retries with `policy`: at most `policy.max_attempts()` tries, with its
    /// backoff in between.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    /// The default for transient failures: 3 tries, backoff 25 ms to 250 ms.
    pub fn with_defaults(inner: S) -> Self {
        Self::new(
            inner,
            RetryPolicy::new(3).with_backoff(Duration::from_millis(25), Duration::from_millis(250)),
        )
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    async fn retry<T, Fut>(&self, mut call: impl FnMut() -> Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(error) if error.is_retryable() && attempt < self.policy.max_attempts() => {
                    tracing::debug!(target: "statehouse", %error, attempt, "temporary failure; retrying");
                    tokio::time::sleep(self.policy.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(error) if error.is_retryable() && attempt > 1 => {
                    tracing::warn!(target: "statehouse", %error, attempts = attempt, "giving up after retries");
                    return Err(error);
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl<S: DocumentStore> DocumentStore for Retrying<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.retry(|| self.inner.get(key)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Fetched>, StoreError> {
        self.retry(|| self.inner.get_many(keys)).await
    }

    async fn set(&self, key: &Key, value: &[u8], options: SetOptions) -> Result<bool, StoreError> {
        if options.condition != SetCondition::Always {
            return self.inner.set(key, value, options).await;
        }
        self.retry(|| self.inner.set(key, value, options)).await
    }

    async fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        self.retry(|| self.inner.exists(key)).await
    }

    async fn expire(&self, key: &Key, ttl: Ttl) -> Result<bool, StoreError> {
        self.inner.expire(key, ttl).await
    }

    async fn ttl(&self, key: &Key) -> Result<KeyTtl, StoreError> {
        self.retry(|| self.inner.ttl(key)).await
    }

    async fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<String>, StoreError> {
        self.retry(|| self.inner.list_keys(pattern)).await
    }

    async fn update<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut UpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        self.inner.update(key, policy, f).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.retry(|| self.inner.ping()).await
    }
}
