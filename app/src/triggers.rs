use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use statehouse_domain::layout::TriggerKeys;
use statehouse_ports::{
    ActionName, BoxError, Claimed, ClaimedTrigger, PendingTrigger, StoreError, TenantId, TriggerId,
    TriggerStore, ValidationExt,
};
use tokio::sync::Notify;

/// Expiration triggers: per-tenant delayed actions ("remind user 123 in an
/// hour") that fire once, delivered by listeners that claim them with a
/// lease and acknowledge them. See the [guide](crate::guide::triggers).
///
/// Cheap to clone. Tenants, actions and ids are validated like keys: a bad
/// one is [`StoreError::InvalidInput`] before any I/O.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use std::time::Duration;
///
/// let triggers = statehouse::Statehouse::memory().triggers();
/// triggers.set("acme", "remind", "user-123", Duration::from_secs(3600)).await?;
/// triggers.set("acme", "remind", "user-123", Duration::from_secs(60)).await?; // moved, not doubled
/// let pending = triggers.list("acme").await?;
/// assert_eq!(pending.len(), 1);
/// assert!(triggers.due("acme").await?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Triggers {
    port: Arc<dyn TriggerStore>,
    /// Woken by every `set` through a facade sharing it, so a listener of
    /// this process re-claims at once instead of sleeping past a trigger
    /// set for sooner than its next wake-up (a hint: the sorted set stays
    /// the truth, and other processes' triggers are found at the next
    /// wake-up, at most [`ListenOptions::max_idle`] later).
    wake: Arc<Notify>,
}

/// How a listener claims and sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// At most this many triggers per claim. Default 100.
    pub batch: usize,
    /// How long a claimed trigger stays with this listener before it is
    /// handed out again, unless acknowledged. Default 30 s.
    pub lease: Duration,
    /// The longest sleep between claims when nothing is due sooner.
    /// Default 1 s.
    pub max_idle: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: Duration::from_secs(30),
            max_idle: Duration::from_secs(1),
        }
    }
}

/// The trigger keys of `tenant`, derived once per call (once per
/// listener) and passed down.
fn keys(op: &'static str, tenant: &str) -> Result<TriggerKeys, StoreError> {
    Ok(TriggerKeys::new(&TenantId::new(tenant).for_op(op, tenant)?))
}

fn names(op: &'static str, action: &str, id: &str) -> Result<(ActionName, TriggerId), StoreError> {
    Ok((
        ActionName::new(action).for_op(op, action)?,
        TriggerId::new(id).for_op(op, id)?,
    ))
}

impl Triggers {
    /// Triggers over `port`, with a wake-up hint of their own.
    pub fn new(port: Arc<dyn TriggerStore>) -> Self {
        Self::with_wake(port, Arc::new(Notify::new()))
    }

    /// Triggers over `port` sharing the wake-up hint `wake`.
    pub(crate) fn with_wake(port: Arc<dyn TriggerStore>, wake: Arc<Notify>) -> Self {
        Self { port, wake }
    }

    /// Sets the trigger `(action, id)` of `tenant` to fire after `delay`;
    /// setting it again moves its deadline (and voids an outstanding claim).
    pub async fn set(
        &self,
        tenant_name: &str,
        action: &str,
        id: &str,
        delay: Duration,
    ) -> Result<(), StoreError> {
        const OP: &str = "trigger_set";
        let keys = keys(OP, tenant_name)?;
        let (action, id) = names(OP, action, id)?;
        self.port.set(&keys, &action, &id, delay).await?;
        self.wake.notify_waiters();
        Ok(())
    }

    /// Cancels one trigger; whether it was pending.
    pub async fn cancel(&self, tenant_name: &str, action: &str, id: &str) -> Result<bool, StoreError> {
        const OP: &str = "trigger_cancel";
        let keys = keys(OP, tenant_name)?;
        let (action, id) = names(OP, action, id)?;
        self.port.cancel(&keys, &action, &id).await
    }

    /// Cancels every trigger of `id`; how many there were.
    pub async fn cancel_all(&self, tenant_name: &str, id: &str) -> Result<usize, StoreError> {
        const OP: &str = "trigger_cancel_all";
        let keys = keys(OP, tenant_name)?;
        let id = TriggerId::new(id).for_op(OP, id)?;
        self.port.cancel_all(&keys, &id).await
    }

    /// The tenant's triggers, earliest first.
    pub async fn list(&self, tenant_name: &str) -> Result<Vec<PendingTrigger>, StoreError> {
        self.port.list(&keys("trigger_list", tenant_name)?, false).await
    }

    /// The tenant's triggers due now (claimed or not), earliest first.
    pub async fn due(&self, tenant_name: &str) -> Result<Vec<PendingTrigger>, StoreError> {
        self.port.list(&keys("trigger_list", tenant_name)?, true).await
    }

    /// Claims at most `max` due triggers for `lease` (the building block of
    /// [`listen`](Self::listen)).
    pub async fn claim(&self, tenant_name: &str, max: usize, lease: Duration) -> Result<Claimed, StoreError> {
        self.port
            .claim(&keys("trigger_claim", tenant_name)?, max, lease)
            .await
    }

    /// Acknowledges a claimed trigger: it never fires again. `false` if the
    /// claim was stale (its lease ran out and it was handed out again, or
    /// it was set again or cancelled meanwhile).
    pub async fn ack(&self, tenant_name: &str, trigger: &ClaimedTrigger) -> Result<bool, StoreError> {
        self.port.ack(&keys("trigger_ack", tenant_name)?, trigger).await
    }

    /// Runs a listener for `tenant` until `stop` completes: claims due
    /// triggers, runs `handler` on each, acknowledges those it handled
    /// (`Ok`); a trigger whose handler failed is left to its lease and
    /// delivered again (its [`ClaimedTrigger::deliveries`] then above 1). Between claims it sleeps until the tenant's next
    /// trigger is due (at most `options.max_idle`, and less when a `set`
    /// through this facade wakes it), never polling faster.
    ///
    /// A temporary store failure (connection, timeout) is logged: a failed
    /// claim is tried again after `max_idle`, a failed ack leaves the
    /// trigger to its lease. Any other error ends the listener.
    pub async fn listen<F, Fut>(
        &self,
        tenant_name: &str,
        options: ListenOptions,
        stop: impl Future<Output = ()>,
        mut handler: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(ClaimedTrigger) -> Fut,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        let keys = keys("trigger_listen", tenant_name)?;
        let batch = options.batch.max(1);
        tokio::pin!(stop);
        loop {
            // A listener kept busy by full batches still stops when asked.
            tokio::select! {
                biased;
                () = &mut stop => return Ok(()),
                () = std::future::ready(()) => {}
            }
            // Registered before the claim, so a `set` between the claim
            // and the sleep still wakes this listener.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let sleep = match self.port.claim(&keys, batch, options.lease).await {
                Ok(claimed) => {
                    let full = claimed.triggers.len() >= batch;
                    for trigger in claimed.triggers {
                        match handler(trigger.clone()).await {
                            Ok(()) => match self.port.ack(&keys, &trigger).await {
                                Ok(_) => {}
                                // Unacknowledged: delivered again after its lease.
                                Err(error) if error.is_retryable() => tracing::warn!(
                                    target: "statehouse",
                                    %error,
                                    "acknowledging a trigger failed; it is delivered again after its lease"
                                ),
                                Err(error) => return Err(error),
                            },
                            Err(error) => tracing::warn!(
                                target: "statehouse",
                                action = %trigger.action,
                                %error,
                                "trigger handler failed; it is delivered again after its lease"
                            ),
                        }
                    }
                    if full {
                        continue;
                    }
                    claimed
                        .next_due_in
                        .map_or(options.max_idle, |next| next.min(options.max_idle))
                        .max(Duration::from_millis(1))
                }
                Err(error) if error.is_retryable() => {
                    tracing::warn!(target: "statehouse", %error, "claiming triggers failed; retrying");
                    options.max_idle
                }
                Err(error) => return Err(error),
            };
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(sleep) => {}
                () = &mut woken => {}
            }
        }
    }
}
