use super::tenants::{TenantKeys, push_head, push_key};
use super::{member_pair, pair_member, push_escaped, push_pair};
use crate::{QueueName, ServiceName, TenantId};

/// The kinds of a tenant's queue keys, after the tenant's head.
const LIST: &str = "queue";
const ITEMS: &str = "queue-items";
const LEASES: &str = "queue-leases";
const INDEX: &str = "queues";

/// The keys of a tenant's batch queues: see [`TenantKeys`]' trigger and
/// queue keys (`triggers.rs`) for the table.
impl TenantKeys {
    /// The list of a queue's waiting item ids.
    pub fn queue(&self, service: &str, batch: &str, action: &str) -> String {
        self.key(LIST, &[service, batch, action])
    }

    /// The hash of a queue's payloads (and its id counter, field `next`).
    pub fn queue_items(&self, service: &str, batch: &str, action: &str) -> String {
        self.key(ITEMS, &[service, batch, action])
    }

    /// The sorted set of a queue's claimed item ids by lease end.
    pub fn queue_leases(&self, service: &str, batch: &str, action: &str) -> String {
        self.key(LEASES, &[service, batch, action])
    }

    /// The sorted set of the tenant's queues of a service
    /// (members: [`queue_member`](Self::queue_member)).
    pub fn queues_of(&self, service: &str) -> String {
        self.key(INDEX, &[service])
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
        let mut pending = String::with_capacity(service.len() + 13);
        push_pending(&mut pending, service);
        Self { pending }
    }

    /// The sorted set of tenants with queued work for the service.
    pub fn pending(&self) -> &str {
        &self.pending
    }
}

/// `svc:{<escaped service>}:pending`, appended to `out`.
fn push_pending(out: &mut String, service: &str) {
    out.push_str("svc:{");
    push_escaped(out, service);
    out.push_str("}:pending");
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
#[derive(Clone, PartialEq, Eq)]
pub struct QueueKeys {
    tenant: TenantId,
    /// The list, items, leases and index keys, the member and the pending
    /// set, one after the other in one buffer, each ending at its `ends`.
    keys: String,
    ends: [usize; 6],
}

impl QueueKeys {
    /// The keys of `queue` of `tenant`.
    pub fn new(tenant: &TenantId, queue: &QueueName) -> Self {
        Self::of(tenant.clone(), queue)
    }

    /// The keys of `queue` of `tenant`, taking it (what the facade calls:
    /// one buffer for all of them, no other allocation).
    pub fn of(tenant: TenantId, queue: &QueueName) -> Self {
        let (service, batch, action) = (
            queue.service.as_str(),
            queue.batch.as_str(),
            queue.action.as_str(),
        );
        let name = service.len() + batch.len() + action.len();
        let mut keys = String::with_capacity(
            4 * (tenant.as_str().len() + 5) + 4 * name + LIST.len() + ITEMS.len() + LEASES.len() + 48,
        );
        push_head(&mut keys, tenant.as_str());
        let head = keys.len();
        let mut ends = [0; 6];
        push_key(&mut keys, "", LIST, &[service, batch, action]);
        ends[0] = keys.len();
        // The other two keys of the queue: the head, their kind, the same
        // escaped `:<service>:<batch>:<action>`.
        let parts = head + LIST.len()..ends[0];
        for (end, kind) in ends[1..3].iter_mut().zip([ITEMS, LEASES]) {
            keys.extend_from_within(..head);
            keys.push_str(kind);
            keys.extend_from_within(parts.clone());
            *end = keys.len();
        }
        keys.extend_from_within(..head);
        push_key(&mut keys, "", INDEX, &[service]);
        ends[3] = keys.len();
        push_pair(&mut keys, batch, action);
        ends[4] = keys.len();
        push_pending(&mut keys, service);
        ends[5] = keys.len();
        Self { tenant, keys, ends }
    }

    /// The `n`-th key of the buffer.
    fn part(&self, n: usize) -> &str {
        let start = n.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.keys[start..self.ends[n]]
    }

    /// The tenant (its id is the member of the service's pending set).
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The list of waiting item ids, oldest first: the key errors and
    /// spans name.
    pub fn list(&self) -> &str {
        self.part(0)
    }

    /// The hash of payloads (and the id counter, field `next`).
    pub fn items(&self) -> &str {
        self.part(1)
    }

    /// The sorted set of claimed item ids by lease end.
    pub fn leases(&self) -> &str {
        self.part(2)
    }

    /// The tenant's index of its queues of the service.
    pub fn index(&self) -> &str {
        self.part(3)
    }

    /// The queue's member in [`index`](Self::index): `<batch>:<action>`,
    /// both escaped.
    pub fn member(&self) -> &str {
        self.part(4)
    }

    /// The service's set of tenants with queued work.
    pub fn pending(&self) -> &str {
        self.part(5)
    }
}

impl std::fmt::Debug for QueueKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueKeys")
            .field("tenant", &self.tenant)
            .field("list", &self.list())
            .field("member", &self.member())
            .field("pending", &self.pending())
            .finish()
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
