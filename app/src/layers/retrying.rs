use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::layout::{QueueIndex, QueueKeys, ServiceKeys, TriggerKeys};
use statehouse_domain::{Key, KeyPattern, TenantId, Ttl};
use statehouse_ports::Swapped;
use statehouse_ports::{
    ActionName, Claimed, ClaimedTrigger, PendingTrigger, QueueItem, QueueName, QueueStore, TriggerId,
    TriggerStore,
};
use statehouse_ports::{AnnouncedUpdateFn, ChangeFeed, Subscription, Watched};
use statehouse_ports::{
    DocumentStore, Fetched, KeyTtl, PageRequest, RetryPolicy, SetCondition, SetOptions, StoreError, TaskId,
    TaskIndex, TaskPage, TaskRecord, TaskRepository, TaskSpace, TaskStatus, UpdateFn, Updated,
};
use statehouse_ports::{
    FieldFn, FieldName, FieldStore, FieldUpdated, Fields, Loaded, TenantKey, TenantPattern,
};
use statehouse_ports::{
    JsonValue, PropertyChange, PropertyFn, PropertyKind, PropertyName, PropertyUpdated, SubjectData,
    SubjectName, SubjectSpace, SubjectStore,
};

/// Retries calls that failed with a temporary error
/// ([`StoreError::is_retryable`]: connection or timeout), for operations that
/// are safe to repeat only.
///
/// | retried | never retried |
/// |---|---|
/// | `get`, `get_many`, `exists`, `ttl`, `list_keys`, `ping`, unconditional `set` | `set` with a condition (a lost reply would turn "written" into "not written"), `delete` (its answer could lie), `expire`, `update` (a timed-out EXEC has an unknown outcome) |
/// | change feed: `subscribe` | change feed: `update_announced`, `swap_announced` |
/// | tasks: `get`, `list`, `count` | tasks: `save`, `set_status`, `append_log`, `delete` |
/// | triggers: `set`, `list` | triggers: `cancel`, `cancel_all`, `claim`, `ack` |
/// | queues: `range`, `len`, `queues`, `pending` | queues: `enqueue`, `trim`, `claim`, `ack`, `remove_pending` |
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

    /// The default for transient failures: 3 tries of [`transient_policy`].
    pub fn with_defaults(inner: S) -> Self {
        Self::new(inner, transient_policy(3))
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    async fn retry<T, Fut>(&self, call: impl FnMut() -> Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        retry(self.policy, call).await
    }
}

/// The policy for temporary failures: `attempts` tries, backoff 25 ms to
/// 250 ms (a reconnection usually takes tens of milliseconds).
pub fn transient_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts).with_backoff(Duration::from_millis(25), Duration::from_millis(250))
}

/// Runs `call` again while it fails with a retryable error, at most
/// `policy.max_attempts()` times. Only for calls that are safe to repeat.
async fn retry<T, Fut>(policy: RetryPolicy, mut call: impl FnMut() -> Fut) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    // The first attempt is the hot path: keep it a plain await, and the
    // retry loop out of line.
    match call().await {
        Err(error) if error.is_retryable() && policy.max_attempts() > 1 => {
            retry_after(policy, error, call).await
        }
        done => done,
    }
}

async fn retry_after<T, Fut>(
    policy: RetryPolicy,
    mut error: StoreError,
    mut call: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        tracing::debug!(target: "statehouse", %error, attempt, "temporary failure; retrying");
        tokio::time::sleep(policy.backoff(attempt)).await;
        attempt += 1;
        match call().await {
            Err(next) if next.is_retryable() && attempt < policy.max_attempts() => error = next,
            Err(next) if next.is_retryable() => {
                tracing::warn!(target: "statehouse", error = %next, attempts = attempt, "giving up after retries");
                return Err(next);
            }
            done => return done,
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
        match options.condition {
            SetCondition::Always => self.retry(|| self.inner.set(key, value, options)).await,
            SetCondition::IfAbsent | SetCondition::IfPresent => self.inner.set(key, value, options).await,
        }
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

/// Task calls: reads (`get`, `list`, `count`) are retried; writes are not
/// (a timed-out EXEC has an unknown outcome, and a repeated `append_log`
/// would log twice).
#[async_trait]
impl<S: TaskRepository> TaskRepository for Retrying<S> {
    async fn save(&self, space: &TaskSpace, record: &TaskRecord) -> Result<TaskRecord, StoreError> {
        self.inner.save(space, record).await
    }

    async fn get(&self, space: &TaskSpace, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        self.retry(|| self.inner.get(space, id)).await
    }

    async fn set_status<'m>(
        &self,
        space: &TaskSpace,
        id: &TaskId,
        status: TaskStatus,
        message: Option<&'m str>,
    ) -> Result<TaskRecord, StoreError> {
        self.inner.set_status(space, id, status, message).await
    }

    async fn append_log(
        &self,
        space: &TaskSpace,
        id: &TaskId,
        message: &str,
    ) -> Result<TaskRecord, StoreError> {
        self.inner.append_log(space, id, message).await
    }

    async fn list(
        &self,
        space: &TaskSpace,
        index: &TaskIndex,
        page: &PageRequest,
    ) -> Result<TaskPage, StoreError> {
        self.retry(|| self.inner.list(space, index, page)).await
    }

    async fn count(&self, space: &TaskSpace, index: &TaskIndex) -> Result<u64, StoreError> {
        self.retry(|| self.inner.count(space, index)).await
    }

    async fn delete(&self, space: &TaskSpace, id: &TaskId) -> Result<bool, StoreError> {
        self.inner.delete(space, id).await
    }
}

/// Subject calls: reads (`load`, `get_property`, `list`, `exists`) are
/// retried; writes are not (a timed-out EXEC has an unknown outcome).
#[async_trait]
impl<S: SubjectStore> SubjectStore for Retrying<S> {
    async fn load(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<SubjectData, StoreError> {
        self.retry(|| self.inner.load(space, subject)).await
    }

    async fn store(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        changes: &[PropertyChange],
    ) -> Result<(), StoreError> {
        self.inner.store(space, subject, changes).await
    }

    async fn get_property(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
    ) -> Result<Option<JsonValue>, StoreError> {
        self.retry(|| self.inner.get_property(space, subject, kind, name))
            .await
    }

    async fn update_property<'a>(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
        f: &mut PropertyFn<'a>,
    ) -> Result<PropertyUpdated, StoreError> {
        self.inner.update_property(space, subject, kind, name, f).await
    }

    async fn delete_subject(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<bool, StoreError> {
        self.inner.delete_subject(space, subject).await
    }

    async fn list(&self, space: &SubjectSpace, pattern: &KeyPattern) -> Result<Vec<String>, StoreError> {
        self.retry(|| self.inner.list(space, pattern)).await
    }

    async fn exists(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<bool, StoreError> {
        self.retry(|| self.inner.exists(space, subject)).await
    }
}

/// Tenant field calls: reads (`get_all`, `get_fields`, `exists`, `scan`)
/// and `set_fields`/`replace_fields` (setting the same values twice is the
/// same) are retried; `merge_fields` is a read too but its answer must be
/// the state right after its own write, `increment`, `update_field`,
/// `delete_fields`, `delete` and `delete_matching` are not.
#[async_trait]
impl<S: FieldStore> FieldStore for Retrying<S> {
    async fn get_all(&self, key: &TenantKey) -> Result<Fields, StoreError> {
        self.retry(|| self.inner.get_all(key)).await
    }

    async fn get_fields(
        &self,
        key: &TenantKey,
        fields: &[FieldName],
    ) -> Result<Vec<Option<Loaded>>, StoreError> {
        self.retry(|| self.inner.get_fields(key, fields)).await
    }

    async fn set_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, JsonValue)],
        ttl: Option<Ttl>,
    ) -> Result<(), StoreError> {
        self.retry(|| self.inner.set_fields(key, fields, ttl)).await
    }

    async fn merge_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, JsonValue)],
        ttl: Option<Ttl>,
    ) -> Result<Fields, StoreError> {
        self.inner.merge_fields(key, fields, ttl).await
    }

    async fn replace_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, JsonValue)],
        ttl: Option<Ttl>,
    ) -> Result<(), StoreError> {
        self.retry(|| self.inner.replace_fields(key, fields, ttl)).await
    }

    async fn delete_fields(&self, key: &TenantKey, fields: &[FieldName]) -> Result<u64, StoreError> {
        self.inner.delete_fields(key, fields).await
    }

    async fn delete(&self, key: &TenantKey) -> Result<bool, StoreError> {
        FieldStore::delete(&self.inner, key).await
    }

    async fn exists(&self, key: &TenantKey) -> Result<bool, StoreError> {
        self.retry(|| FieldStore::exists(&self.inner, key)).await
    }

    async fn update_field<'a>(
        &self,
        key: &TenantKey,
        field: &FieldName,
        ttl: Option<Ttl>,
        policy: RetryPolicy,
        f: &mut FieldFn<'a>,
    ) -> Result<FieldUpdated, StoreError> {
        self.inner.update_field(key, field, ttl, policy, f).await
    }

    async fn increment(
        &self,
        key: &TenantKey,
        field: &FieldName,
        by: i64,
        ttl: Option<Ttl>,
    ) -> Result<i64, StoreError> {
        self.inner.increment(key, field, by, ttl).await
    }

    async fn scan(&self, pattern: &TenantPattern) -> Result<Vec<String>, StoreError> {
        self.retry(|| self.inner.scan(pattern)).await
    }

    async fn delete_matching(&self, pattern: &TenantPattern) -> Result<u64, StoreError> {
        self.inner.delete_matching(pattern).await
    }
}

/// Retried: `set` (setting a trigger again only moves its deadline) and
/// `list`. Never: `cancel`, `cancel_all` (their answers could lie), `claim`
/// and `ack` (a lost claim reply holds triggers until their lease ends; a
/// repeated ack answers `false`).
#[async_trait]
impl<S: TriggerStore> TriggerStore for Retrying<S> {
    async fn set(
        &self,
        triggers: &TriggerKeys,
        action: &ActionName,
        id: &TriggerId,
        delay: Duration,
    ) -> Result<(), StoreError> {
        self.retry(|| self.inner.set(triggers, action, id, delay)).await
    }

    async fn cancel(
        &self,
        triggers: &TriggerKeys,
        action: &ActionName,
        id: &TriggerId,
    ) -> Result<bool, StoreError> {
        self.inner.cancel(triggers, action, id).await
    }

    async fn cancel_all(&self, triggers: &TriggerKeys, id: &TriggerId) -> Result<usize, StoreError> {
        self.inner.cancel_all(triggers, id).await
    }

    async fn list(&self, triggers: &TriggerKeys, only_due: bool) -> Result<Vec<PendingTrigger>, StoreError> {
        self.retry(|| self.inner.list(triggers, only_due)).await
    }

    async fn claim(
        &self,
        triggers: &TriggerKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        self.inner.claim(triggers, max, lease).await
    }

    async fn ack(&self, triggers: &TriggerKeys, trigger: &ClaimedTrigger) -> Result<bool, StoreError> {
        self.inner.ack(triggers, trigger).await
    }
}

/// Retried: the reads (`range`, `len`, `queues`, `pending`). Never the
/// writes: an enqueue repeated after a lost reply would queue twice.
#[async_trait]
impl<S: QueueStore> QueueStore for Retrying<S> {
    async fn enqueue(&self, queue: &QueueKeys, payloads: &[Vec<u8>]) -> Result<Vec<u64>, StoreError> {
        self.inner.enqueue(queue, payloads).await
    }

    async fn range(
        &self,
        queue: &QueueKeys,
        start: usize,
        count: usize,
    ) -> Result<Vec<QueueItem>, StoreError> {
        self.retry(|| self.inner.range(queue, start, count)).await
    }

    async fn trim(&self, queue: &QueueKeys, count: usize) -> Result<usize, StoreError> {
        self.inner.trim(queue, count).await
    }

    async fn len(&self, queue: &QueueKeys) -> Result<u64, StoreError> {
        self.retry(|| self.inner.len(queue)).await
    }

    async fn queues(&self, index: &QueueIndex) -> Result<Vec<QueueName>, StoreError> {
        self.retry(|| self.inner.queues(index)).await
    }

    async fn pending(&self, service: &ServiceKeys) -> Result<Vec<String>, StoreError> {
        self.retry(|| self.inner.pending(service)).await
    }

    async fn remove_pending(&self, service: &ServiceKeys, tenant: &TenantId) -> Result<bool, StoreError> {
        self.inner.remove_pending(service, tenant).await
    }

    async fn claim(
        &self,
        queue: &QueueKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<QueueItem>, StoreError> {
        self.inner.claim(queue, max, lease).await
    }

    async fn ack(&self, queue: &QueueKeys, ids: &[u64]) -> Result<usize, StoreError> {
        self.inner.ack(queue, ids).await
    }
}

/// Change feed calls: `subscribe` is retried (subscribing again is
/// harmless); `update_announced` is not (a timed-out EXEC has an unknown
/// outcome).
#[async_trait]
impl<S: ChangeFeed> ChangeFeed for Retrying<S> {
    async fn subscribe(&self, watched: &Watched, capacity: usize) -> Result<Subscription, StoreError> {
        self.retry(|| self.inner.subscribe(watched, capacity)).await
    }

    async fn update_announced<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut AnnouncedUpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        self.inner.update_announced(key, policy, f).await
    }

    /// Never retried: a timed-out swap has an unknown outcome, and a
    /// refusal is the caller's to decide on.
    async fn swap_announced<'a>(
        &self,
        key: &Key,
        expected: Option<&'a [u8]>,
        new: &[u8],
        version: Option<u64>,
    ) -> Result<Swapped, StoreError> {
        self.inner.swap_announced(key, expected, new, version).await
    }
}
