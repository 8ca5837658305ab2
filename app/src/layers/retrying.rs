use std::fmt;
use std::future::Future;
use std::time::Duration;

use statehouse_ports::{Boxed, RetryPolicy, StoreError};

use super::{Layer, Layered, Op};

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
/// | tenant fields: `get_all`, `get_fields`, `exists`, `scan`, `set_fields`, `replace_fields` | tenant fields: `merge_fields` (its answer must be the state right after its own write), `delete_fields`, `delete`, `update_field`, `increment`, `delete_matching` |
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

    fn around_idempotent<'f, T, K, C>(&'f self, _op: Op<K, T>, call: C) -> Boxed<'f, T>
    where
        T: Send + 'f,
        K: fmt::Display + Send + Sync + 'f,
        C: FnMut() -> Boxed<'f, T> + Send + 'f,
    {
        Box::pin(retry(self.policy, call))
    }
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
