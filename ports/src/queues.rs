//! [`QueueStore`]: per-tenant FIFO batch queues, with a per-service set of
//! tenants that have queued work, and a leased consume path.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::QueueName;
use statehouse_domain::TenantId;
use statehouse_domain::layout::{QueueIndex, QueueKeys, ServiceKeys};

use crate::StoreError;

/// One item of a queue: its id (increasing in enqueue order within the
/// queue) and its payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    /// The item's id in its queue.
    pub id: u64,
    /// What was enqueued.
    pub payload: Vec<u8>,
}

/// Per-tenant FIFO batch queues.
///
/// Every call takes the key set it works on, derived once by the caller
/// from validated names ([`QueueKeys`]: one queue of one tenant;
/// [`QueueIndex`]: a tenant's queues of a service; [`ServiceKeys`]: a
/// service's pending tenants), so no layer or adapter builds a key again.
///
/// # Contract
///
/// Every implementation behaves the same; the contract suite in
/// `statehouse-tests` (`queues::…`) runs one list of tests against each.
///
/// - A queue keeps items in enqueue order (FIFO); `enqueue` appends one or
///   many items atomically, gives each the next id of the queue, and marks
///   the tenant pending for the service in the same step (one `MULTI` on a
///   single Redis server; see `docs/queues.md` for Cluster). The mark is
///   written even when the tenant's step fails (a `MULTI` does not roll
///   back); a mark without work is harmless.
/// - `range` reads waiting items by index (0 = oldest) without removing
///   them; `trim` removes the oldest `count`; `len` counts waiting items.
///   Range + trim alone is **at-most-once per reader, not exclusive**: two
///   workers reading the same range both process it.
/// - `claim` atomically takes up to `max` items for `lease`: first items
///   whose lease ran out (a crashed worker's), then waiting ones, oldest
///   first, both in queue order (by id, whatever lease each had: a claim
///   is always in increasing id order). Two claimers never get the same item while its lease runs.
///   `ack` removes claimed items for good (ids not held: ignored, not
///   counted); an unacknowledged item comes back after its lease. Acks go
///   by id, without a claim token: a late ack (after the lease ran out)
///   still removes the item, even if it was handed to another worker
///   meanwhile, whose own ack then counts it no more. Delivery is at least
///   once; keep the lease longer than a batch takes.
/// - `pending` lists the tenants marked for a service, oldest mark first;
///   `remove_pending` drops a mark. A worker removes the mark *before*
///   draining, so work enqueued meanwhile marks the tenant again.
/// - `queues` lists a tenant's queues of a service that hold items
///   (waiting or claimed); a queue leaves it once empty and acknowledged.
/// - The keys of one tenant share its hash tag; the pending set of a
///   service has the service's (another slot).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait QueueStore: Debug + Send + Sync + 'static {
    /// Appends `payloads` in order; returns their ids.
    async fn enqueue(&self, queue: &QueueKeys, payloads: &[Vec<u8>]) -> Result<Vec<u64>, StoreError>;

    /// At most `count` waiting items from index `start` (0 = oldest).
    async fn range(
        &self,
        queue: &QueueKeys,
        start: usize,
        count: usize,
    ) -> Result<Vec<QueueItem>, StoreError>;

    /// Removes the oldest `count` waiting items; returns how many went.
    async fn trim(&self, queue: &QueueKeys, count: usize) -> Result<usize, StoreError>;

    /// How many items wait (claimed ones not counted).
    async fn len(&self, queue: &QueueKeys) -> Result<u64, StoreError>;

    /// The tenant's queues of the index's service holding items, by first
    /// enqueue.
    async fn queues(&self, index: &QueueIndex) -> Result<Vec<QueueName>, StoreError>;

    /// The tenants with queued work for the service, oldest mark first.
    async fn pending(&self, service: &ServiceKeys) -> Result<Vec<String>, StoreError>;

    /// Drops `tenant`'s pending mark for the service; whether it was there.
    async fn remove_pending(&self, service: &ServiceKeys, tenant: &TenantId) -> Result<bool, StoreError>;

    /// Claims up to `max` items for `lease`, oldest first.
    async fn claim(
        &self,
        queue: &QueueKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<QueueItem>, StoreError>;

    /// Acknowledges claimed items; returns how many were held.
    async fn ack(&self, queue: &QueueKeys, ids: &[u64]) -> Result<usize, StoreError>;
}

macro_rules! forward_queue_store {
    ($wrapper:ident) => {
        #[async_trait]
        impl<T: QueueStore + ?Sized> QueueStore for $wrapper<T> {
            async fn enqueue(&self, queue: &QueueKeys, payloads: &[Vec<u8>]) -> Result<Vec<u64>, StoreError> {
                (**self).enqueue(queue, payloads).await
            }

            async fn range(
                &self,
                queue: &QueueKeys,
                start: usize,
                count: usize,
            ) -> Result<Vec<QueueItem>, StoreError> {
                (**self).range(queue, start, count).await
            }

            async fn trim(&self, queue: &QueueKeys, count: usize) -> Result<usize, StoreError> {
                (**self).trim(queue, count).await
            }

            async fn len(&self, queue: &QueueKeys) -> Result<u64, StoreError> {
                (**self).len(queue).await
            }

            async fn queues(&self, index: &QueueIndex) -> Result<Vec<QueueName>, StoreError> {
                (**self).queues(index).await
            }

            async fn pending(&self, service: &ServiceKeys) -> Result<Vec<String>, StoreError> {
                (**self).pending(service).await
            }

            async fn remove_pending(
                &self,
                service: &ServiceKeys,
                tenant: &TenantId,
            ) -> Result<bool, StoreError> {
                (**self).remove_pending(service, tenant).await
            }

            async fn claim(
                &self,
                queue: &QueueKeys,
                max: usize,
                lease: Duration,
            ) -> Result<Vec<QueueItem>, StoreError> {
                (**self).claim(queue, max, lease).await
            }

            async fn ack(&self, queue: &QueueKeys, ids: &[u64]) -> Result<usize, StoreError> {
                (**self).ack(queue, ids).await
            }
        }
    };
}

forward_queue_store!(Arc);
forward_queue_store!(Box);

/// Compile-time check: the trait stays usable as `Arc<dyn QueueStore>`.
const _: fn(Arc<dyn QueueStore>) = |_| {};
