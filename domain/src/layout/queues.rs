use super::tenants::TenantKeys;
use super::{escape_component, member_pair, pair_member};
use crate::{QueueName, ServiceName, TenantId};

/// The keys of a tenant's batch queues: see [`TenantKeys`]' trigger and
/// queue keys (`triggers.rs`) for the table.
impl TenantKeys {
    /// The list of a queue's waiting item ids.
    pub fn queue(&self, service: &str, batch: &str, action: &str) -> String {
        self.key("queue", &[service, batch, action])
    }

    /// The hash of a queue's payloads (and its id counter, field `next`).
    pub fn queue_items(&self, service: &str, batch: &str, action: &str) -> String {
        self.key("queue-items", &[service, batch, action])
    }

    /// The sorted set of a queue's claimed item ids by lease end.
    pub fn queue_leases(&self, service: &str, batch: &str, action: &str) -> String {
        self.key("queue-leases", &[service, batch, action])
    }

    /// The sorted set of the tenant's queues of a service
    /// (members: [`queue_member`](Self::queue_member)).
    pub fn queues_of(&self, service: &str) -> String {
        self.key("queues", &[service])
    }

    /// The member of a queue in [`queues_of`](Self::queues_of):
    /// `<batch>:<action>`, both escaped.
    pub fn queue_member(&self, batch: &str, action: &str) -> String {
        pair_member(batch, action)
    }

    /// The `(batch, action)` of a queue member; `None` for other text.
    pub fn queue_of_member(&self, member: &str) -> Option<(String, String)> {
        member_pair(member)
    }
}

/// The keys that span tenants: a service's set of tenants with queued work
/// (issue 10). They carry the service's hash tag, not a tenant's, so they
/// live in another slot than the tenants' data. Built once (by the
/// `Queues` facade) and passed down through the queue port.
///
/// ```text
/// svc:{<service>}:pending  zset  tenants (verbatim) with queued work for the service, by first mark (ms)
/// ```
///
/// On one Redis server an enqueue writes the tenant's queue and this set
/// in one `MULTI` (atomic); on Redis Cluster the two are in different slots
/// and would have to be two steps, the mark first (a mark without work is
/// harmless: a worker finds the queue empty and removes it).
///
/// ```
/// use statehouse_domain::layout::ServiceKeys;
///
/// assert_eq!(ServiceKeys::new("mail:er").pending(), "svc:{mail%3Aer}:pending");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKeys {
    pending: String,
}

impl ServiceKeys {
    /// The keys of `service` (escaped).
    pub fn new(service: &str) -> Self {
        Self {
            pending: format!("svc:{{{}}}:pending", escape_component(service)),
        }
    }

    /// The sorted set of tenants with queued work for the service.
    pub fn pending(&self) -> &str {
        &self.pending
    }
}

/// The keys of one queue of one tenant, derived once from validated names
/// (by the `Queues` facade) and passed down through the queue port, so
/// neither the layers nor the adapters build them again.
///
/// ```
/// use statehouse_domain::layout::QueueKeys;
/// use statehouse_domain::{ActionName, BatchName, QueueName, ServiceName, TenantId};
///
/// let queue = QueueName::new(ServiceName::new("mailer")?, BatchName::new("nightly")?, ActionName::new("send")?);
/// let keys = QueueKeys::new(&TenantId::new("acme:eu")?, &queue);
/// assert_eq!(keys.list(), "t:{acme%3Aeu}:queue:mailer:nightly:send");
/// assert_eq!(keys.items(), "t:{acme%3Aeu}:queue-items:mailer:nightly:send");
/// assert_eq!(keys.leases(), "t:{acme%3Aeu}:queue-leases:mailer:nightly:send");
/// assert_eq!(keys.index(), "t:{acme%3Aeu}:queues:mailer");
/// assert_eq!(keys.member(), "nightly:send");
/// assert_eq!(keys.pending(), "svc:{mailer}:pending");
/// assert_eq!(keys.tenant().as_str(), "acme:eu");
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    tenant: TenantId,
    list: String,
    items: String,
    leases: String,
    index: String,
    member: String,
    pending: ServiceKeys,
}

impl QueueKeys {
    /// The keys of `queue` of `tenant`.
    pub fn new(tenant: &TenantId, queue: &QueueName) -> Self {
        let keys = TenantKeys::new(tenant.as_str());
        let (service, batch, action) = (
            queue.service.as_str(),
            queue.batch.as_str(),
            queue.action.as_str(),
        );
        Self {
            tenant: tenant.clone(),
            list: keys.queue(service, batch, action),
            items: keys.queue_items(service, batch, action),
            leases: keys.queue_leases(service, batch, action),
            index: keys.queues_of(service),
            member: keys.queue_member(batch, action),
            pending: ServiceKeys::new(service),
        }
    }

    /// The tenant (its id is the member of the service's pending set).
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The list of waiting item ids, oldest first: the key errors and
    /// spans name.
    pub fn list(&self) -> &str {
        &self.list
    }

    /// The hash of payloads (and the id counter, field `next`).
    pub fn items(&self) -> &str {
        &self.items
    }

    /// The sorted set of claimed item ids by lease end.
    pub fn leases(&self) -> &str {
        &self.leases
    }

    /// The tenant's index of its queues of the service.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// The queue's member in [`index`](Self::index): `<batch>:<action>`,
    /// both escaped.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The service's set of tenants with queued work.
    pub fn pending(&self) -> &str {
        self.pending.pending()
    }
}

/// A tenant's index of its queues of one service (what `queues` reads),
/// derived once and passed down through the queue port; it also reads the
/// index's members back ([`QueueName::of_members`]).
///
/// ```
/// use statehouse_domain::layout::QueueIndex;
/// use statehouse_domain::{ServiceName, TenantId};
///
/// let index = QueueIndex::new(&TenantId::new("acme")?, &ServiceName::new("mail er")?);
/// assert_eq!(index.key(), "t:{acme}:queues:mail%20er");
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueIndex {
    service: ServiceName,
    key: String,
}

impl QueueIndex {
    /// The index of `tenant`'s queues of `service`.
    pub fn new(tenant: &TenantId, service: &ServiceName) -> Self {
        Self {
            service: service.clone(),
            key: TenantKeys::new(tenant.as_str()).queues_of(service.as_str()),
        }
    }

    /// The service.
    pub fn service(&self) -> &ServiceName {
        &self.service
    }

    /// The sorted set of the queues' members, by first enqueue.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `(batch, action)` of a member; `None` for other text.
    pub(crate) fn queue_of_member(&self, member: &str) -> Option<(String, String)> {
        member_pair(member)
    }
}
