//! [`Triggers`]: the facade of expiration triggers, and its listeners
//! (their loop's state in `listening.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use statehouse_domain::layout::{TriggerIndex, TriggerKeys};
use statehouse_ports::{
    ActionName, BoxError, ChangeFeed, Claimed, ClaimedTrigger, IndexedTenant, PendingTrigger, StoreError,
    TenantId, TriggerId, TriggerStore, ValidationExt,
};
use tokio::sync::Notify;

mod listening;

use listening::{Listening, ack_failed, deadline, earliest, handler_failed};

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
    /// the truth).
    wake: Arc<Notify>,
    /// The change feed carrying other processes' wake-up hints to
    /// [`listen_all`](Self::listen_all) (`None`: found at the next
    /// wake-up, at most [`ListenOptions::max_idle`] later).
    hints: Option<Arc<dyn ChangeFeed>>,
}

/// How a listener claims and sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// At most this many triggers per claim (of one tenant). Default 100.
    pub batch: usize,
    /// At most this many tenants per round of
    /// [`listen_all`](Triggers::listen_all). Default 32.
    pub tenants: usize,
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
            tenants: 32,
            lease: Duration::from_secs(30),
            max_idle: Duration::from_secs(1),
        }
    }
}

/// The trigger keys of `tenant`, derived once per call (once per
/// listener) and passed down.
fn keys(op: &'static str, tenant: &str) -> Result<TriggerKeys, StoreError> {
    Ok(TriggerKeys::of(TenantId::new(tenant).for_op(op, tenant)?))
}

fn names(op: &'static str, action: &str, id: &str) -> Result<(ActionName, TriggerId), StoreError> {
    Ok((
        ActionName::new(action).for_op(op, action)?,
        TriggerId::new(id).for_op(op, id)?,
    ))
}

impl Triggers {
    /// Triggers over `port`, with an in-process wake-up hint of their own
    /// and no cross-process one (see [`with_hints`](Self::with_hints)).
    pub fn new(port: Arc<dyn TriggerStore>) -> Self {
        Self::with_wake(port, Arc::new(Notify::new()))
    }

    /// Triggers over `port` sharing the wake-up hint `wake`.
    pub(crate) fn with_wake(port: Arc<dyn TriggerStore>, wake: Arc<Notify>) -> Self {
        Self {
            port,
            wake,
            hints: None,
        }
    }

    /// The same triggers, whose [`listen_all`](Self::listen_all) listeners
    /// also wake at other processes' hints from `feed` (what
    /// [`Statehouse::triggers`](crate::Statehouse::triggers) sets up).
    #[must_use]
    pub fn with_hints(mut self, feed: Arc<dyn ChangeFeed>) -> Self {
        self.hints = Some(feed);
        self
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
        let set = self.port.set(&keys, &action, &id, delay).await;
        // A `NotDurable` set was applied on the primary: the listeners of
        // this process must hear of it as of any other.
        if matches!(set, Ok(()) | Err(StoreError::NotDurable { .. })) {
            self.wake.notify_waiters();
        }
        set
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

    /// The cross-tenant due index, read without changing it: the first
    /// `limit` tenants with pending triggers, each with its entry's time
    /// (never later than its earliest trigger; for a tenant a
    /// [`listen_all`](Self::listen_all) listener is serving, the end of
    /// its lease), earliest first.
    pub async fn index(&self, limit: usize) -> Result<Vec<IndexedTenant>, StoreError> {
        self.port.indexed(TriggerIndex::all(), limit).await
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
    /// delivered again (its [`ClaimedTrigger::deliveries`] then above 1).
    /// Between claims it sleeps until the tenant's next trigger is due (at
    /// most `options.max_idle`, and less when a `set` through this facade
    /// wakes it), never polling faster.
    ///
    /// A temporary store failure (connection, timeout) is logged: a failed
    /// claim is tried again after a backoff (50 ms doubling up to
    /// `max_idle`), a failed ack leaves the trigger to its lease. Any other
    /// error ends the listener.
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
        let mut listening = Listening::new(self, options, stop, false);
        let ListenOptions { batch, lease, .. } = listening.options;
        loop {
            if listening.stop_requested().await {
                return Ok(());
            }
            let woken = listening.woken();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let claimed = match self.port.claim(&keys, batch, lease).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    if listening
                        .recover(woken, error, "claiming triggers failed")
                        .await?
                    {
                        continue;
                    }
                    return Ok(());
                }
            };
            listening.succeeded();
            let full = claimed.triggers.len() >= batch;
            let next = deadline(claimed.next_due_in);
            for trigger in claimed.triggers {
                match handler(trigger.clone()).await {
                    Ok(()) => {
                        if let Err(error) = self.port.ack(&keys, &trigger).await {
                            ack_failed(error)?;
                        }
                    }
                    Err(error) => handler_failed(&trigger, &error),
                }
            }
            if !full && !listening.rest(woken, next).await {
                return Ok(());
            }
        }
    }

    /// Runs a listener for every tenant at once until `stop` completes:
    /// the all-tenants worker. Each round takes up to `options.tenants`
    /// tenants whose earliest trigger is due from the cross-tenant due
    /// index (earliest first; a tenant taken is skipped by other listeners
    /// while this one serves it), claims up to `options.batch` due
    /// triggers of each, runs `handler` on each with its tenant, and
    /// acknowledges a tenant's handled triggers together. A tenant with
    /// more due than one batch goes to the back of the line for the next
    /// round, so one busy tenant cannot starve the others.
    ///
    /// Between rounds it sleeps until the earliest due time of any tenant
    /// (at most `options.max_idle`): a `set` through this facade wakes it
    /// at once, and so does a `set` in another process for sooner than any
    /// trigger before it when the facade has a change feed (as
    /// [`Statehouse::triggers`](crate::Statehouse::triggers) has): a
    /// Pub/Sub hint, only ever a hint, the index stays the truth. Any
    /// number of listeners in any number of processes share the work; each
    /// due trigger goes to exactly one at a time, with a lease, as with
    /// [`listen`](Self::listen). Failures are handled as there. The claims
    /// of a round's tenants go out together, and so do their acks, after
    /// the handlers ran one after the other; when `stop` completes in the
    /// middle of a round, the handlers of the tenants not yet served are
    /// skipped (their triggers come back after the lease).
    pub async fn listen_all<F, Fut>(
        &self,
        options: ListenOptions,
        stop: impl Future<Output = ()>,
        mut handler: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(TenantId, ClaimedTrigger) -> Fut,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        let mut listening = Listening::new(self, options, stop, true);
        let ListenOptions { tenants, lease, .. } = listening.options;
        loop {
            if listening.stop_requested().await {
                return Ok(());
            }
            let woken = listening.woken();
            tokio::pin!(woken);
            woken.as_mut().enable();
            listening.refresh_hints().await;
            let due = match self.port.take_due(TriggerIndex::all(), tenants, lease).await {
                Ok(due) => due,
                Err(error) => {
                    if listening
                        .recover(woken, error, "taking due tenants failed")
                        .await?
                    {
                        continue;
                    }
                    return Ok(());
                }
            };
            listening.succeeded();
            let full = due.tenants.len() >= tenants;
            let round = listening.serve_round(due.tenants, &mut handler).await?;
            if let Some(error) = round.failed {
                // The tenants whose claim failed come back after the lease.
                if listening
                    .recover(woken, error, "claiming triggers failed")
                    .await?
                {
                    continue;
                }
                return Ok(());
            }
            let next = earliest(deadline(due.next_due_in), round.next);
            if !full && !listening.rest(woken, next).await {
                return Ok(());
            }
        }
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use statehouse_ports::{Durability, ErrorKind};
    use tokio::sync::{Notify, mpsc};

    use super::{ListenOptions, Triggers};
    use crate::Statehouse;

    /// A set answered `NotDurable` was applied: it wakes this process's
    /// idle listeners like any set (the listener here has no hints and a
    /// one-hour idle, so only the wake-up can deliver it in time).
    #[tokio::test]
    async fn a_set_applied_but_not_durable_still_wakes_local_listeners() {
        let state = Statehouse::memory();
        let durable = state
            .with_durability(Durability::replicas(1, Duration::from_millis(50)))
            .unwrap();
        let wake = Arc::new(Notify::new());
        let listening = Triggers::with_wake(state.ports().triggers.clone(), wake.clone());
        let setting = Triggers::with_wake(durable.ports().triggers.clone(), wake);
        let (delivered, mut deliveries) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = ListenOptions {
            max_idle: Duration::from_secs(3600),
            ..ListenOptions::default()
        };
        let listener = tokio::spawn(async move {
            listening
                .listen_all(
                    options,
                    async move {
                        let _ = stopped.await;
                    },
                    move |tenant, _| {
                        let _ = delivered.send(tenant.to_string());
                        async { Ok(()) }
                    },
                )
                .await
        });
        // Let the listener take its first (empty) look and go idle.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let error = setting
            .set("acme", "remind", "u1", Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotDurable, "{error}");
        let tenant = tokio::time::timeout(Duration::from_secs(60), deliveries.recv())
            .await
            .expect("woken long before its one-hour idle")
            .unwrap();
        assert_eq!(tenant, "acme");
        let _ = stop.send(());
        listener.await.unwrap().unwrap();
    }
}
