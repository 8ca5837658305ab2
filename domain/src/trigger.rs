//! Expiration triggers and batch queues: the names a caller gives them.
//!
//! A trigger is an `(action, identifier)` pair of a tenant that comes due
//! after a delay ("send `reminder` to `user-123` in an hour"); a batch
//! queue is named by service, batch and action ([`QueueName`]). Every name
//! is any text that is a valid key ([`validate_identifier`]); the layout
//! escapes it where it becomes part of a Redis key
//! ([`TriggerKeys`](crate::layout::TriggerKeys),
//! [`QueueKeys`](crate::layout::QueueKeys)).

use crate::layout::QueueIndex;
use crate::{MAX_KEY_BYTES, ServiceName, ValidationError, validate_identifier};

identifier!(
    /// The action of a trigger or a queue, e.g. `reminder`.
    ActionName,
    "action",
    MAX_KEY_BYTES
);

identifier!(
    /// What a trigger is about, e.g. `user-123` or `session:456`.
    TriggerId,
    "trigger id",
    MAX_KEY_BYTES
);

identifier!(
    /// The batch of a queue, e.g. `nightly`.
    BatchName,
    "batch",
    MAX_KEY_BYTES
);

/// Which queue: a tenant's queue is named by service, batch and action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName {
    /// The service that drains it.
    pub service: ServiceName,
    /// The batch.
    pub batch: BatchName,
    /// The action its items are for.
    pub action: ActionName,
}

impl QueueName {
    /// The queue `service`/`batch`/`action`.
    pub fn new(service: ServiceName, batch: BatchName, action: ActionName) -> Self {
        Self {
            service,
            batch,
            action,
        }
    }

    /// The queues named by the members of a tenant's index of a service's
    /// queues, as both adapters list them: THE one decoding of those
    /// members. A member this layout did not write is skipped.
    ///
    /// ```
    /// use statehouse_domain::layout::QueueIndex;
    /// use statehouse_domain::{QueueName, ServiceName, TenantId};
    ///
    /// let index = QueueIndex::new(&TenantId::new("acme")?, &ServiceName::new("mailer")?);
    /// let names = QueueName::of_members(&index, ["nightly:send", "no-separator", "b%3A1:act%7Bx%7D"]);
    /// let names: Vec<_> = names.iter().map(|q| (q.batch.as_str(), q.action.as_str())).collect();
    /// assert_eq!(names, [("nightly", "send"), ("b:1", "act{x}")]);
    /// # Ok::<(), statehouse_domain::ValidationError>(())
    /// ```
    pub fn of_members<'m>(index: &QueueIndex, members: impl IntoIterator<Item = &'m str>) -> Vec<Self> {
        members
            .into_iter()
            .filter_map(|member| {
                let (batch, action) = index.queue_of_member(member)?;
                Some(Self::new(
                    index.service().clone(),
                    BatchName::new(batch).ok()?,
                    ActionName::new(action).ok()?,
                ))
            })
            .collect()
    }
}
