use std::fmt;
use std::future::Future;
use std::time::Duration;

use statehouse_ports::{Boxed, RetryPolicy, StoreError};

use super::{Layer, Layered, Op, metered};

/// Retries calls that failed with a temporary error
/// ([`StoreError::is_retryable`]: connection or timeout), for operations that
/// are safe to repeat only (which ones: each port's forwarding, `forward/`).
///
/// | retried | never retried |
/// |---|---|
/// | `get`, `get_many`, `exists`, `ttl`, `list_keys`, `ping`, unconditional `set` | `set` with a condition (a lost reply would turn "written" into "not written"), `delete` (its answer could lie), `expire`, `update` (a timed-out EXEC has an unknown outcome) |
/// | change feed: `subscribe` | change feed: `update_announced`, `swap_announced` |
/// | tasks: `get`, `list`, `count` | tasks: `save`, `set_status`, `append_log`, `delete` |
/// | subjects: `load`, `get_property`, `list`, `exists` | subjects: `store`, `update_property`, `delete_subject` |
/// | tenant fields: `get_all`, `get_fields`, `exists`, `scan`, `set_fields`, `replace_fields` | tenant fields: `merge_fields` (its answer must be the state right after its own write), `delete_fields`, `delete`, `update_field`, `increment`, `append`, `delete_matching` |
/// | triggers: `set`, `list` | triggers: `cancel`, `cancel_all`, `claim`, `ack` |
/// | queues: `range`, `len`, `queues`, `pending` | queues: `enqueue`, `trim`, `claim`, `ack`, `remove_pending` |
///
/// `Conflict` is never retried here: the update loop already spent its
/// attempts. The last error is returned as is once `policy` runs out.
pub type Retrying<S> = Layered<Retry, S>;

/// The policy of [`Retrying`].
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    policy: RetryPolicy,
}

impl Retry {
    /// Retries with `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        Self { policy }
    }

    /// The policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }
}

/// The policy for temporary failures: `attempts` tries, backoff 25 ms to
/// 250 ms (a reconnection usually takes tens of milliseconds).
pub fn transient_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts).with_backoff(Duration::from_millis(25), Duration::from_millis(250))
}

impl Layer for Retry {
    /// A call that must not be made twice goes through untouched.
    fn around<'f, T, K>(&'f self, _op: Op<K, T>, call: Boxed<'f, T>) -> Boxed<'f, T>
    where
        T: Send + 'f,
        K: fmt::Display + Send + Sync + 'f,
    {
        call
    }

    fn around_idempotent<'f, T, K, C>(&'f self, op: Op<K, T>, call: C) -> Boxed<'f, T>
    where
        T: Send + 'f,
        K: fmt::Display + Send + Sync + 'f,
        C: FnMut() -> Boxed<'f, T> + Send + 'f,
    {
        Box::pin(retry(self.policy, op.name, call))
    }
}

/// Runs `call` again while it fails with a retryable error, at most
/// `policy.max_attempts()` times. Only for calls that are safe to repeat.
async fn retry<T, Fut>(
    policy: RetryPolicy,
    op: &'static str,
    mut call: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    // The first attempt is the hot path: keep it a plain await, and the
    // retry loop out of line.
    match call().await {
        Err(error) if error.is_retryable() && policy.max_attempts() > 1 => {
            retry_after(policy, op, error, call).await
        }
        done => done,
    }
}

async fn retry_after<T, Fut>(
    policy: RetryPolicy,
    op: &'static str,
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
        metered::retried(op);
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

#[cfg(test)]
mod tests {
    //! Which calls `Retrying` repeats after a temporary failure: every
    //! method of the document, trigger and queue ports, and the
    //! non-obvious choices of the others (the list lives in `forward/`).

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use statehouse_domain::layout::{QueueIndex, QueueKeys, ServiceKeys, TriggerKeys};
    use statehouse_domain::{Key, KeyPattern, Ttl};
    use statehouse_ports::{
        ActionName, ChangeFeed, ClaimedTrigger, DocumentStore, FieldName, FieldStore, KeyPages, KeyStream,
        MockChangeFeed, MockDocumentStore, MockFieldStore, MockQueueStore, MockTaskRepository,
        MockTriggerStore, QueueName, QueueStore, RetryPolicy, ServiceName, SetOptions, StoreError, TaskId,
        TaskIndex, TaskRepository, TaskSpace, TenantId, TenantKey, TriggerId, TriggerStore, UserId, Watched,
    };

    use super::Retrying;

    const TRIES: usize = 3;

    /// A listing whose every page read fails; counts the reads.
    #[derive(Debug)]
    struct DownPages(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl KeyPages for DownPages {
        async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            down()
        }
    }

    fn down<T>() -> Result<T, StoreError> {
        Err(StoreError::Connection {
            op: "test",
            key: String::new(),
            source: "down".into(),
        })
    }

    fn retrying<S>(inner: S) -> Retrying<S> {
        Retrying::new(inner, RetryPolicy::new(TRIES as u32))
    }

    /// Expects `$method` to be called `$times` times, each failing.
    macro_rules! failing {
        ($mock:ident . $method:ident ($($arg:tt),*), $times:expr) => {
            $mock.$method().times($times).returning(|$($arg),*| down())
        };
    }

    #[tokio::test(start_paused = true)]
    async fn documents_retry_reads_and_unconditional_sets_only() {
        let mut mock = MockDocumentStore::new();
        failing!(mock.expect_get(_), TRIES);
        failing!(mock.expect_get_many(_), TRIES);
        failing!(mock.expect_exists(_), TRIES);
        failing!(mock.expect_ttl(_), TRIES);
        let reads = Arc::new(AtomicUsize::new(0));
        let pages = DownPages(reads.clone());
        mock.expect_list_keys()
            .times(1)
            .return_once(move |_| KeyStream::new(pages));
        failing!(mock.expect_ping(), TRIES);
        failing!(mock.expect_delete(_), 1);
        failing!(mock.expect_expire(_, _), 1);
        failing!(mock.expect_update(_, _, _), 1);
        mock.expect_set()
            .withf(|_, _, options| options.condition == statehouse_ports::SetCondition::Always)
            .times(TRIES)
            .returning(|_, _, _| down());
        mock.expect_set()
            .withf(|_, _, options| options.condition != statehouse_ports::SetCondition::Always)
            .times(2)
            .returning(|_, _, _| down());
        let store = retrying(mock);
        let key = Key::new("k").unwrap();
        assert!(store.get(&key).await.is_err());
        assert!(store.get_many(std::slice::from_ref(&key)).await.is_err());
        assert!(store.exists(&key).await.is_err());
        assert!(store.ttl(&key).await.is_err());
        let mut keys = store.list_keys(&KeyPattern::new("*").unwrap());
        assert!(keys.next().await.is_err());
        assert_eq!(
            reads.load(Ordering::Relaxed),
            TRIES,
            "a page is an idempotent read"
        );
        assert!(store.ping().await.is_err());
        assert!(store.delete(&key).await.is_err());
        assert!(store.expire(&key, Ttl::from_millis(10).unwrap()).await.is_err());
        let mut f = |_: Option<&[u8]>| -> Result<_, statehouse_ports::BoxError> { unreachable!() };
        assert!(store.update(&key, RetryPolicy::default(), &mut f).await.is_err());
        assert!(store.set(&key, b"v", SetOptions::new()).await.is_err());
        assert!(
            store
                .set(&key, b"v", SetOptions::new().if_absent())
                .await
                .is_err()
        );
        assert!(
            store
                .set(&key, b"v", SetOptions::new().if_present())
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn triggers_retry_set_and_list_only() {
        let mut mock = MockTriggerStore::new();
        failing!(mock.expect_set(_, _, _, _), TRIES);
        failing!(mock.expect_list(_, _), TRIES);
        failing!(mock.expect_cancel(_, _, _), 1);
        failing!(mock.expect_cancel_all(_, _), 1);
        failing!(mock.expect_claim(_, _, _), 1);
        failing!(mock.expect_ack(_, _), 1);
        let store = retrying(mock);
        let keys = TriggerKeys::new(&TenantId::new("t").unwrap());
        let (action, id) = (ActionName::new("a").unwrap(), TriggerId::new("i").unwrap());
        assert!(store.set(&keys, &action, &id, Duration::ZERO).await.is_err());
        assert!(store.list(&keys, false).await.is_err());
        assert!(store.cancel(&keys, &action, &id).await.is_err());
        assert!(store.cancel_all(&keys, &id).await.is_err());
        assert!(store.claim(&keys, 1, Duration::from_secs(1)).await.is_err());
        let claimed = ClaimedTrigger {
            action: "a".into(),
            id: "i".into(),
            token: 1,
            deliveries: 1,
        };
        assert!(store.ack(&keys, &claimed).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn queues_retry_reads_only() {
        let mut mock = MockQueueStore::new();
        failing!(mock.expect_range(_, _, _), TRIES);
        failing!(mock.expect_len(_), TRIES);
        failing!(mock.expect_queues(_), TRIES);
        failing!(mock.expect_pending(_), TRIES);
        failing!(mock.expect_enqueue(_, _), 1);
        failing!(mock.expect_trim(_, _), 1);
        failing!(mock.expect_claim(_, _, _), 1);
        failing!(mock.expect_ack(_, _), 1);
        failing!(mock.expect_remove_pending(_, _), 1);
        let store = retrying(mock);
        let tenant = TenantId::new("t").unwrap();
        let service = ServiceName::new("s").unwrap();
        let name = QueueName::new(service.clone(), "b".parse().unwrap(), "a".parse().unwrap());
        let queue = QueueKeys::new(&tenant, &name);
        let pending = ServiceKeys::new(service.as_str());
        assert!(store.range(&queue, 0, 1).await.is_err());
        assert!(store.len(&queue).await.is_err());
        assert!(store.queues(&QueueIndex::new(&tenant, &service)).await.is_err());
        assert!(store.pending(&pending).await.is_err());
        assert!(store.enqueue(&queue, &[b"x".to_vec()]).await.is_err());
        assert!(store.trim(&queue, 1).await.is_err());
        assert!(store.claim(&queue, 1, Duration::from_secs(1)).await.is_err());
        assert!(store.ack(&queue, &[1]).await.is_err());
        assert!(store.remove_pending(&pending, &tenant).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_other_ports_retry_reads_and_idempotent_writes_only() {
        let mut tasks = MockTaskRepository::new();
        failing!(tasks.expect_count(_, _), TRIES);
        failing!(tasks.expect_append_log(_, _, _), 1);
        let tasks = retrying(tasks);
        let space = TaskSpace::default();
        let index = TaskIndex::Service(ServiceName::new("s").unwrap());
        assert!(tasks.count(&space, &index).await.is_err());
        let id = TaskId::new("j").unwrap();
        assert!(tasks.append_log(&space, &id, "line").await.is_err());

        let mut fields = MockFieldStore::new();
        failing!(fields.expect_replace_fields(_, _, _), TRIES);
        failing!(fields.expect_merge_fields(_, _, _), 1);
        failing!(fields.expect_increment(_, _, _, _), 1);
        let fields = retrying(fields);
        let key = TenantKey::user(&TenantId::new("t").unwrap(), &UserId::new("u").unwrap());
        assert!(fields.replace_fields(&key, &[], None).await.is_err());
        assert!(fields.merge_fields(&key, &[], None).await.is_err());
        let field = FieldName::new("n").unwrap();
        assert!(fields.increment(&key, &field, 1, None).await.is_err());

        let mut changes = MockChangeFeed::new();
        failing!(changes.expect_subscribe(_, _), TRIES);
        failing!(changes.expect_swap_announced(_, _, _, _), 1);
        let changes = retrying(changes);
        let key = Key::new("k").unwrap();
        assert!(changes.subscribe(&Watched::Key(key.clone()), 1).await.is_err());
        assert!(changes.swap_announced(&key, None, b"v", None).await.is_err());
    }
}
