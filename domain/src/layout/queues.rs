use super::tenants::TenantKeys;
use super::{escape_component, member_pair, pair_member};

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
/// live in another slot than the tenants' data.
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
    head: String,
}

impl ServiceKeys {
    /// The keys of `service` (escaped).
    pub fn new(service: &str) -> Self {
        Self {
            head: format!("svc:{{{}}}:", escape_component(service)),
        }
    }

    /// The sorted set of tenants with queued work for the service.
    pub fn pending(&self) -> String {
        format!("{}pending", self.head)
    }
}
