//! The blocking twin of [`crate::Queues`].

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::{QueueName, StoreError};

use super::{OwnedRuntime, block_on};
use crate::Item;

/// Blocking twin of [`crate::Queues`].
///
/// ```
/// use std::time::Duration;
/// use statehouse::blocking::Statehouse;
///
/// let queues = Statehouse::connect("memory://")?.queues();
/// let q = queues.queue("mailer", "nightly", "send")?;
/// queues.enqueue("acme", &q, &[1, 2, 3])?;
/// let items = queues.claim::<u32>("acme", &q, 2, Duration::from_secs(30))?;
/// assert_eq!(items.iter().map(|i| i.value).collect::<Vec<_>>(), [1, 2]);
/// assert_eq!(queues.ack("acme", &q, &[items[0].id, items[1].id])?, 2);
/// assert_eq!(queues.len("acme", &q)?, 1);
/// # Ok::<(), statehouse::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Queues {
    pub(super) inner: crate::Queues,
    pub(super) runtime: Arc<OwnedRuntime>,
}

impl Queues {
    /// See [`crate::Queues::queue`].
    pub fn queue(&self, service: &str, batch: &str, action: &str) -> Result<QueueName, StoreError> {
        self.inner.queue(service, batch, action)
    }

    /// See [`crate::Queues::enqueue`].
    pub fn enqueue<T: Serialize + Sync>(
        &self,
        tenant: &str,
        queue: &QueueName,
        items: &[T],
    ) -> Result<Vec<u64>, StoreError> {
        block_on(&self.runtime, "enqueue", self.inner.enqueue(tenant, queue, items))
    }

    /// See [`crate::Queues::range`].
    pub fn range<T: DeserializeOwned>(
        &self,
        tenant: &str,
        queue: &QueueName,
        start: usize,
        count: usize,
    ) -> Result<Vec<Item<T>>, StoreError> {
        block_on(
            &self.runtime,
            "queue_range",
            self.inner.range(tenant, queue, start, count),
        )
    }

    /// See [`crate::Queues::trim`].
    pub fn trim(&self, tenant: &str, queue: &QueueName, count: usize) -> Result<usize, StoreError> {
        block_on(&self.runtime, "queue_trim", self.inner.trim(tenant, queue, count))
    }

    /// See [`crate::Queues::len`].
    pub fn len(&self, tenant: &str, queue: &QueueName) -> Result<u64, StoreError> {
        block_on(&self.runtime, "queue_len", self.inner.len(tenant, queue))
    }

    /// See [`crate::Queues::queues`].
    pub fn queues(&self, tenant: &str, service: &str) -> Result<Vec<QueueName>, StoreError> {
        block_on(&self.runtime, "queue_list", self.inner.queues(tenant, service))
    }

    /// See [`crate::Queues::pending`].
    pub fn pending(&self, service: &str) -> Result<Vec<String>, StoreError> {
        block_on(&self.runtime, "queue_pending", self.inner.pending(service))
    }

    /// See [`crate::Queues::remove_pending`].
    pub fn remove_pending(&self, service: &str, tenant: &str) -> Result<bool, StoreError> {
        block_on(
            &self.runtime,
            "queue_remove_pending",
            self.inner.remove_pending(service, tenant),
        )
    }

    /// See [`crate::Queues::claim`].
    pub fn claim<T: DeserializeOwned>(
        &self,
        tenant: &str,
        queue: &QueueName,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Item<T>>, StoreError> {
        block_on(
            &self.runtime,
            "queue_claim",
            self.inner.claim(tenant, queue, max, lease),
        )
    }

    /// See [`crate::Queues::ack`].
    pub fn ack(&self, tenant: &str, queue: &QueueName, ids: &[u64]) -> Result<usize, StoreError> {
        block_on(&self.runtime, "queue_ack", self.inner.ack(tenant, queue, ids))
    }
}
