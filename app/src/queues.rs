use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_domain::layout::{QueueIndex, QueueKeys, ServiceKeys};
use statehouse_ports::{
    ActionName, BatchName, QueueItem, QueueName, QueueStore, ServiceName, StoreError, TenantId,
    ValidationExt, decode, encode,
};

/// Batch queues: per-tenant FIFO queues of JSON items, named by service,
/// batch and action, with a per-service set of tenants that have queued
/// work. See the [guide](crate::guide::queues).
///
/// Two ways to consume: [`claim`](Self::claim) + [`ack`](Self::ack)
/// (exclusive: two workers never get the same item, and a crashed
/// worker's items come back after their lease), or [`range`](Self::range)
/// and [`trim`](Self::trim) (simple, but **at-most-once per reader and
/// not exclusive**: two workers racing read the same items).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use std::time::Duration;
///
/// let queues = statehouse::Statehouse::memory().queues();
/// let q = queues.queue("mailer", "nightly", "send")?;
/// queues.enqueue("acme", &q, &["a", "b"]).await?;
/// assert_eq!(queues.pending("mailer").await?, ["acme"]);
/// let items = queues.claim::<String>("acme", &q, 10, Duration::from_secs(30)).await?;
/// assert_eq!(items.iter().map(|i| i.value.as_str()).collect::<Vec<_>>(), ["a", "b"]);
/// let ids: Vec<u64> = items.iter().map(|i| i.id).collect();
/// assert_eq!(queues.ack("acme", &q, &ids).await?, 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Queues {
    port: Arc<dyn QueueStore>,
}

/// A decoded queue item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<T> {
    /// Its id in the queue (increasing in enqueue order).
    pub id: u64,
    /// Its value.
    pub value: T,
}

fn tenant(op: &'static str, tenant: &str) -> Result<TenantId, StoreError> {
    TenantId::new(tenant).for_op(op, tenant)
}

fn service(op: &'static str, name: &str) -> Result<ServiceName, StoreError> {
    ServiceName::new(name).for_op(op, name)
}

/// The keys of `queue` of `tenant`, derived once per call and passed down.
fn keys(op: &'static str, tenant_name: &str, queue: &QueueName) -> Result<QueueKeys, StoreError> {
    Ok(QueueKeys::of(tenant(op, tenant_name)?, queue))
}

fn decoded<T: DeserializeOwned>(
    op: &'static str,
    keys: &QueueKeys,
    items: Vec<QueueItem>,
) -> Result<Vec<Item<T>>, StoreError> {
    items
        .into_iter()
        .map(|item| {
            Ok(Item {
                id: item.id,
                value: decode(op, keys.list(), &item.payload)?,
            })
        })
        .collect()
}

impl Queues {
    /// Queues over `port`.
    pub fn new(port: Arc<dyn QueueStore>) -> Self {
        Self { port }
    }

    /// The queue `service`/`batch`/`action`, validated.
    pub fn queue(&self, service_name: &str, batch: &str, action: &str) -> Result<QueueName, StoreError> {
        const OP: &str = "queue";
        Ok(QueueName::new(
            service(OP, service_name)?,
            BatchName::new(batch).for_op(OP, batch)?,
            ActionName::new(action).for_op(OP, action)?,
        ))
    }

    /// Appends `items` (as JSON) in order, atomically, and marks the
    /// tenant pending for the queue's service; returns their ids.
    pub async fn enqueue<T: Serialize>(
        &self,
        tenant_name: &str,
        queue: &QueueName,
        items: &[T],
    ) -> Result<Vec<u64>, StoreError> {
        const OP: &str = "enqueue";
        let keys = keys(OP, tenant_name, queue)?;
        let payloads = items
            .iter()
            .map(|item| encode(OP, keys.list(), item))
            .collect::<Result<Vec<_>, _>>()?;
        self.port.enqueue(&keys, &payloads).await
    }

    /// At most `count` waiting items from index `start` (0 = oldest), left
    /// in place.
    pub async fn range<T: DeserializeOwned>(
        &self,
        tenant_name: &str,
        queue: &QueueName,
        start: usize,
        count: usize,
    ) -> Result<Vec<Item<T>>, StoreError> {
        const OP: &str = "queue_range";
        let keys = keys(OP, tenant_name, queue)?;
        let items = self.port.range(&keys, start, count).await?;
        decoded(OP, &keys, items)
    }

    /// Removes the oldest `count` waiting items; how many went.
    pub async fn trim(
        &self,
        tenant_name: &str,
        queue: &QueueName,
        count: usize,
    ) -> Result<usize, StoreError> {
        self.port
            .trim(&keys("queue_trim", tenant_name, queue)?, count)
            .await
    }

    /// How many items wait (claimed ones not counted).
    pub async fn len(&self, tenant_name: &str, queue: &QueueName) -> Result<u64, StoreError> {
        self.port.len(&keys("queue_len", tenant_name, queue)?).await
    }

    /// The tenant's queues of `service` that hold items.
    pub async fn queues(&self, tenant_name: &str, service_name: &str) -> Result<Vec<QueueName>, StoreError> {
        const OP: &str = "queue_list";
        let index = QueueIndex::new(&tenant(OP, tenant_name)?, &service(OP, service_name)?);
        self.port.queues(&index).await
    }

    /// The tenants with queued work for `service`, oldest mark first.
    pub async fn pending(&self, service_name: &str) -> Result<Vec<String>, StoreError> {
        let service = service("queue_pending", service_name)?;
        self.port.pending(&ServiceKeys::new(service.as_str())).await
    }

    /// Drops a tenant's pending mark. Remove it *before* draining the
    /// tenant's queues: work enqueued meanwhile marks it again.
    pub async fn remove_pending(&self, service_name: &str, tenant_name: &str) -> Result<bool, StoreError> {
        const OP: &str = "queue_remove_pending";
        let tenant = tenant(OP, tenant_name)?;
        let service = service(OP, service_name)?;
        self.port
            .remove_pending(&ServiceKeys::new(service.as_str()), &tenant)
            .await
    }

    /// Claims up to `max` items for `lease`, oldest first (items whose
    /// lease ran out come first). Acknowledge each once handled.
    pub async fn claim<T: DeserializeOwned>(
        &self,
        tenant_name: &str,
        queue: &QueueName,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Item<T>>, StoreError> {
        const OP: &str = "queue_claim";
        let keys = keys(OP, tenant_name, queue)?;
        let items = self.port.claim(&keys, max, lease).await?;
        decoded(OP, &keys, items)
    }

    /// Acknowledges claimed items (removes them for good); how many were held.
    pub async fn ack(&self, tenant_name: &str, queue: &QueueName, ids: &[u64]) -> Result<usize, StoreError> {
        self.port.ack(&keys("queue_ack", tenant_name, queue)?, ids).await
    }
}
