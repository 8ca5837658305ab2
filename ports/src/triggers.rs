//! [`TriggerStore`]: per-tenant expiration triggers, delayed actions that
//! fire once, claimed with a lease.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use statehouse_domain::layout::{TriggerIndex, TriggerKeys};
use statehouse_domain::{ActionName, TenantId, TriggerId};

use crate::StoreError;

/// A trigger waiting in a tenant's due-time set, as
/// [`TriggerStore::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTrigger {
    /// What to do.
    pub action: String,
    /// What it is about.
    pub id: String,
    /// When it is (or was) due, by the store's clock; for a claimed
    /// trigger, when its lease ends (and it is handed out again).
    pub due_at: DateTime<Utc>,
    /// Whether a listener holds it (claimed, not yet acknowledged).
    pub claimed: bool,
}

/// A trigger handed to one claimer by [`TriggerStore::claim`]; give it
/// back to [`TriggerStore::ack`] once handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedTrigger {
    /// What to do.
    pub action: String,
    /// What it is about.
    pub id: String,
    /// The claim's token, from a counter per tenant: unique among the
    /// tenant's claims, and higher for a later claim, but not 1 for a
    /// first delivery (use [`deliveries`](Self::deliveries) for that). An
    /// ack must carry the latest token of the trigger.
    pub token: u64,
    /// How many times this trigger was handed out since it was last set:
    /// 1 for the first delivery, more when a lease ran out unacknowledged
    /// and it came again (a redelivery: an earlier claimer may have run
    /// it, or part of it). Setting the trigger again starts it at 1.
    pub deliveries: u32,
}

/// What one [`TriggerStore::claim`] got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// The triggers now held by the caller, earliest due first.
    pub triggers: Vec<ClaimedTrigger>,
    /// How long until the tenant's next trigger (or claimed trigger's
    /// lease) comes due, after this claim; `None` if it has none.
    pub next_due_in: Option<Duration>,
}

/// A tenant filed in the cross-tenant due index, as
/// [`TriggerStore::indexed`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedTenant {
    /// The tenant, verbatim.
    pub tenant: String,
    /// Its entry's time, by the store's clock: never later than the
    /// tenant's earliest trigger (earlier while a set is in flight or an
    /// entry is stale); for a tenant a listener took, the end of the
    /// take's lease.
    pub due_at: DateTime<Utc>,
}

/// What one [`TriggerStore::take_due`] took from the due index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueTenants {
    /// Tenants whose earliest trigger was due, earliest first: each now
    /// held by the caller in the index for the lease (another taker skips
    /// it) until [`TriggerStore::claim_indexed`] files it again.
    pub tenants: Vec<TenantId>,
    /// How long until the index's next entry comes due (any tenant, taken
    /// ones at the end of their lease), after this take; `None` if the
    /// index is empty.
    pub next_due_in: Option<Duration>,
}

/// Per-tenant expiration triggers: `(action, identifier)` pairs that come
/// due after a delay and are handed to exactly one listener at a time.
///
/// Every call takes the tenant's [`TriggerKeys`], derived once by the
/// caller from the validated tenant, so no layer or adapter builds them
/// again.
///
/// # Contract
///
/// Every implementation behaves the same; the contract suite in
/// `statehouse-tests` (`triggers::…`) runs one list of tests against each.
///
/// - A tenant's triggers are one sorted set by due time (milliseconds of
///   the store's clock: Redis' `TIME`, or tokio time on the memory store),
///   not keyspace notifications: a trigger that comes due while no
///   listener runs is delivered when one claims.
/// - `set` puts the trigger at now + `delay`; setting it again before it is
///   acknowledged moves its deadline (one trigger, never two) and voids an
///   outstanding claim (its ack does nothing).
/// - `claim` hands out at most `max` triggers due now, earliest first, in
///   one atomic step: each moves to now + `lease` and gets a new token
///   (from a per-tenant counter: unique, increasing, not per trigger), so
///   two claimers never hold the same trigger at once; a trigger not
///   acknowledged within its lease is handed out again (a higher token).
/// - Each claim also counts the trigger's deliveries
///   ([`ClaimedTrigger::deliveries`]): 1 the first time, one more at each
///   redelivery after a lease ran out; `set` (again) restarts the count,
///   `ack` and `cancel` drop it with the trigger.
/// - `ack` with the latest token removes the trigger: it never fires again.
///   A stale token (the lease ran out and it was claimed again, or it was
///   set again or cancelled) removes nothing and answers `false`.
/// - `cancel` removes one trigger, `cancel_all` every action of one
///   identifier; `list` reports a tenant's triggers earliest first (with
///   `only_due`, those due now).
/// - Every key of one tenant shares the tenant's hash tag; each per-tenant
///   step is one atomic step on one slot.
///
/// ## The due index across tenants
///
/// - `set` files the tenant in the cross-tenant due index
///   ([`TriggerIndex`]: shards outside every tenant's slot) *before* it
///   writes the trigger, at a due time no later than the trigger's, and
///   counts the mark; when that lowers its shard's earliest entry, it
///   publishes a wake-up hint on the change channel of the shard's
///   [`wake`](statehouse_domain::layout::IndexShard::wake) name (a hint
///   only, possibly lost: the index is the truth).
/// - `indexed` reads the index (tenants and their entries' times,
///   earliest first across the shards) without changing it.
/// - `take_due` takes up to `max` tenants whose index entry is due,
///   earliest first, in one atomic step per group of shards: each entry
///   moves to the end of `lease`, so other takers skip the tenant meanwhile.
/// - `claim_indexed` claims like `claim`; when it got nothing (a stale
///   entry) or a full batch (more may be due: the tenant goes behind the
///   others due) it files the tenant again at once, at its next due time
///   (removed when it has none). Otherwise the entry keeps its take's lease
///   and the caller files it once it handled the triggers: `ack_indexed`
///   acknowledges like `ack`, several triggers at once, and files the
///   tenant again the same way; `claim_indexed` with `max` 0 files it
///   without acknowledging anything. An entry is only ever moved later or
///   removed when every set marked for the tenant was seen by that claim
///   or ack (its count of sets); otherwise (a set in flight) it is looked
///   at again soon (at least 50 ms, and at most as long as the mark is
///   old), and a mark left by a set that never wrote (a failed or dead
///   writer) is adopted after a minute. So a trigger is never filed later
///   than it is due, and entries without triggers (after `ack`, `cancel`)
///   are pruned by the next claimer that meets them.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TriggerStore: Debug + Send + Sync + 'static {
    /// Sets (or moves) the trigger `(action, id)` of `tenant` to fire after `delay`.
    async fn set(
        &self,
        triggers: &TriggerKeys,
        action: &ActionName,
        id: &TriggerId,
        delay: Duration,
    ) -> Result<(), StoreError>;

    /// Removes one trigger; returns whether it was pending.
    async fn cancel(
        &self,
        triggers: &TriggerKeys,
        action: &ActionName,
        id: &TriggerId,
    ) -> Result<bool, StoreError>;

    /// Removes every trigger of `id`; returns how many there were.
    async fn cancel_all(&self, triggers: &TriggerKeys, id: &TriggerId) -> Result<usize, StoreError>;

    /// The tenant's triggers, earliest first; only those due now if `only_due`.
    async fn list(&self, triggers: &TriggerKeys, only_due: bool) -> Result<Vec<PendingTrigger>, StoreError>;

    /// Claims at most `max` due triggers for `lease`.
    async fn claim(&self, triggers: &TriggerKeys, max: usize, lease: Duration)
    -> Result<Claimed, StoreError>;

    /// Acknowledges a claimed trigger; `false` if the claim was stale.
    async fn ack(&self, triggers: &TriggerKeys, trigger: &ClaimedTrigger) -> Result<bool, StoreError>;

    /// Takes up to `max` tenants with due triggers from the due index, for
    /// `lease`.
    async fn take_due(
        &self,
        index: &TriggerIndex,
        max: usize,
        lease: Duration,
    ) -> Result<DueTenants, StoreError>;

    /// The first `limit` entries of the due index, earliest first across
    /// its shards, read without changing anything.
    async fn indexed(&self, index: &TriggerIndex, limit: usize) -> Result<Vec<IndexedTenant>, StoreError>;

    /// Claims at most `max` due triggers for `lease`; files the tenant in
    /// the due index again at its next due time if it got none or `max`.
    async fn claim_indexed(
        &self,
        triggers: &TriggerKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Claimed, StoreError>;

    /// Acknowledges claimed triggers of one tenant, then files the tenant
    /// in the due index at its next due time; returns how many were held.
    async fn ack_indexed(
        &self,
        triggers: &TriggerKeys,
        handled: &[ClaimedTrigger],
    ) -> Result<usize, StoreError>;

    /// The claims of a round of an all-tenants listener: `claim_indexed`
    /// of each of `tenants`, sent together (on Redis one pipeline of claim
    /// scripts, then one of the refiles they call for); one answer per
    /// tenant, in order. An error may leave some of the tenants claimed:
    /// their triggers come back after `lease`.
    async fn claim_round(
        &self,
        tenants: &[TriggerKeys],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut claimed = Vec::with_capacity(tenants.len());
        for triggers in tenants {
            claimed.push(self.claim_indexed(triggers, max, lease).await?);
        }
        Ok(claimed)
    }

    /// The acks of a round: `ack_indexed` of each tenant's handled
    /// triggers, and for a tenant with none handled, `claim_indexed` with
    /// `max` 0 (filing it only), sent together (on Redis one pipeline of
    /// scripts, then one of the refiles); returns how many were held in
    /// all. An error may leave some acknowledged.
    async fn ack_round(&self, acks: &[(TriggerKeys, Vec<ClaimedTrigger>)]) -> Result<usize, StoreError> {
        let mut held = 0;
        for (triggers, handled) in acks {
            held += if handled.is_empty() {
                self.claim_indexed(triggers, 0, Duration::from_millis(1))
                    .await
                    .map(|_| 0)?
            } else {
                self.ack_indexed(triggers, handled).await?
            };
        }
        Ok(held)
    }
}

macro_rules! forward_trigger_store {
    ($wrapper:ident) => {
        #[async_trait]
        impl<T: TriggerStore + ?Sized> TriggerStore for $wrapper<T> {
            async fn set(
                &self,
                triggers: &TriggerKeys,
                action: &ActionName,
                id: &TriggerId,
                delay: Duration,
            ) -> Result<(), StoreError> {
                (**self).set(triggers, action, id, delay).await
            }

            async fn cancel(
                &self,
                triggers: &TriggerKeys,
                action: &ActionName,
                id: &TriggerId,
            ) -> Result<bool, StoreError> {
                (**self).cancel(triggers, action, id).await
            }

            async fn cancel_all(&self, triggers: &TriggerKeys, id: &TriggerId) -> Result<usize, StoreError> {
                (**self).cancel_all(triggers, id).await
            }

            async fn list(
                &self,
                triggers: &TriggerKeys,
                only_due: bool,
            ) -> Result<Vec<PendingTrigger>, StoreError> {
                (**self).list(triggers, only_due).await
            }

            async fn claim(
                &self,
                triggers: &TriggerKeys,
                max: usize,
                lease: Duration,
            ) -> Result<Claimed, StoreError> {
                (**self).claim(triggers, max, lease).await
            }

            async fn ack(
                &self,
                triggers: &TriggerKeys,
                trigger: &ClaimedTrigger,
            ) -> Result<bool, StoreError> {
                (**self).ack(triggers, trigger).await
            }

            async fn take_due(
                &self,
                index: &TriggerIndex,
                max: usize,
                lease: Duration,
            ) -> Result<DueTenants, StoreError> {
                (**self).take_due(index, max, lease).await
            }

            async fn indexed(
                &self,
                index: &TriggerIndex,
                limit: usize,
            ) -> Result<Vec<IndexedTenant>, StoreError> {
                (**self).indexed(index, limit).await
            }

            async fn claim_indexed(
                &self,
                triggers: &TriggerKeys,
                max: usize,
                lease: Duration,
            ) -> Result<Claimed, StoreError> {
                (**self).claim_indexed(triggers, max, lease).await
            }

            async fn ack_indexed(
                &self,
                triggers: &TriggerKeys,
                handled: &[ClaimedTrigger],
            ) -> Result<usize, StoreError> {
                (**self).ack_indexed(triggers, handled).await
            }

            async fn claim_round(
                &self,
                tenants: &[TriggerKeys],
                max: usize,
                lease: Duration,
            ) -> Result<Vec<Claimed>, StoreError> {
                (**self).claim_round(tenants, max, lease).await
            }

            async fn ack_round(
                &self,
                acks: &[(TriggerKeys, Vec<ClaimedTrigger>)],
            ) -> Result<usize, StoreError> {
                (**self).ack_round(acks).await
            }
        }
    };
}

forward_trigger_store!(Arc);
forward_trigger_store!(Box);

/// Compile-time check: the trait stays usable as `Arc<dyn TriggerStore>`.
const _: fn(Arc<dyn TriggerStore>) = |_| {};

/// Milliseconds since the epoch as a UTC time (the store clock's unit);
/// out-of-range values clamp to the epoch.
pub fn millis_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
