use super::tenants::TenantKeys;
use super::{escape_component, member_pair, pair_member};
use crate::TenantId;

/// The keys of a tenant's expiration triggers and batch queues (issue 10),
/// all under the tenant's hash tag, so every per-tenant atomic step (a
/// claim, an ack, an enqueue) touches one slot.
///
/// ```text
/// t:{<tenant>}:triggers:due                     zset  "<action>:<id>" by due time (ms since the epoch;
///                                                     a claimed trigger: the end of its lease)
/// t:{<tenant>}:triggers:claims                  hash  "<action>:<id>" -> "<token>:<deliveries>" of a claimed
///                                                     trigger; field "#": the tenant's token counter
/// t:{<tenant>}:triggers:by-id:<id>              zset  the members "<action>:<id>" of one identifier (score 0)
/// t:{<tenant>}:queue:<service>:<batch>:<action>         list  item ids waiting, oldest first
/// t:{<tenant>}:queue-items:<service>:<batch>:<action>   hash  item id -> payload; field "next": the id counter
/// t:{<tenant>}:queue-leases:<service>:<batch>:<action>  zset  claimed item ids by lease end (ms); a lapsed
///                                                             lease a claim found: id - 2^53 (queue order)
/// t:{<tenant>}:queues:<service>                 zset  "<batch>:<action>" of the tenant's queues by first enqueue (ms)
/// ```
///
/// ```
/// use statehouse_domain::layout::TenantKeys;
///
/// let keys = TenantKeys::new("acme");
/// assert_eq!(keys.triggers_due(), "t:{acme}:triggers:due");
/// assert_eq!(keys.trigger_member("remind", "user:1"), "remind:user%3A1");
/// assert_eq!(keys.trigger_of_member("remind:user%3A1"), Some(("remind".into(), "user:1".into())));
/// assert_eq!(keys.triggers_of("user:1"), "t:{acme}:triggers:by-id:user%3A1");
/// assert_eq!(keys.queue("mailer", "nightly", "send"), "t:{acme}:queue:mailer:nightly:send");
/// assert_eq!(keys.queues_of("mailer"), "t:{acme}:queues:mailer");
/// ```
impl TenantKeys {
    /// The sorted set of the tenant's triggers by due time.
    pub fn triggers_due(&self) -> String {
        format!("{}triggers:due", self.head)
    }

    /// The hash of claim tokens of the tenant's claimed triggers.
    pub fn trigger_claims(&self) -> String {
        format!("{}triggers:claims", self.head)
    }

    /// The sorted set of the trigger members (`<action>:<id>`) of one
    /// identifier.
    pub fn triggers_of(&self, id: &str) -> String {
        format!("{}triggers:by-id:{}", self.head, escape_component(id))
    }

    /// The member of a trigger in [`triggers_due`](Self::triggers_due)
    /// and [`trigger_claims`](Self::trigger_claims): `<action>:<id>`,
    /// both escaped (so the pair reads back unambiguously).
    pub fn trigger_member(&self, action: &str, id: &str) -> String {
        pair_member(action, id)
    }

    /// The `(action, id)` of a trigger member; `None` for other text.
    pub fn trigger_of_member(&self, member: &str) -> Option<(String, String)> {
        member_pair(member)
    }
}

/// The keys of one tenant's expiration triggers, derived once from the
/// validated tenant (by the `Triggers` facade, once per listener) and
/// passed down through the trigger port, so neither the layers nor the
/// adapters build them again.
///
/// ```
/// use statehouse_domain::TenantId;
/// use statehouse_domain::layout::TriggerKeys;
///
/// let keys = TriggerKeys::new(&TenantId::new("acme")?);
/// assert_eq!(keys.due(), "t:{acme}:triggers:due");
/// assert_eq!(keys.claims(), "t:{acme}:triggers:claims");
/// assert_eq!(keys.of_id("user:1"), "t:{acme}:triggers:by-id:user%3A1");
/// assert_eq!(keys.member("remind", "user:1"), "remind:user%3A1");
/// assert_eq!(keys.of_member("remind:user%3A1"), Some(("remind".into(), "user:1".into())));
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerKeys {
    tenant: TenantKeys,
    due: String,
    claims: String,
}

impl TriggerKeys {
    /// The trigger keys of `tenant`.
    pub fn new(tenant: &TenantId) -> Self {
        let tenant = TenantKeys::new(tenant.as_str());
        Self {
            due: tenant.triggers_due(),
            claims: tenant.trigger_claims(),
            tenant,
        }
    }

    /// The sorted set of the tenant's triggers by due time: the key errors
    /// and spans name.
    pub fn due(&self) -> &str {
        &self.due
    }

    /// The hash of the claims of the tenant's claimed triggers.
    pub fn claims(&self) -> &str {
        &self.claims
    }

    /// The sorted set of the trigger members of identifier `id`.
    pub fn of_id(&self, id: &str) -> String {
        self.tenant.triggers_of(id)
    }

    /// The member of the trigger `(action, id)`: `<action>:<id>`, both
    /// escaped.
    pub fn member(&self, action: &str, id: &str) -> String {
        pair_member(action, id)
    }

    /// The `(action, id)` of a member; `None` for other text.
    pub fn of_member(&self, member: &str) -> Option<(String, String)> {
        member_pair(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn trigger_and_queue_members_read_back_and_never_collide() {
        let keys = TenantKeys::new("t");
        let names = ["a", "a:b", ":", "%3A", "*", "b c"];
        let mut seen = HashMap::new();
        for first in names {
            for second in names {
                let member = keys.trigger_member(first, second);
                assert_eq!(
                    keys.trigger_of_member(&member),
                    Some((first.into(), second.into()))
                );
                assert!(seen.insert(member, (first, second)).is_none());
                assert!(keys.queue("s", first, second).starts_with("t:{t}:queue:s:"));
            }
        }
        assert_eq!(keys.trigger_of_member("no-separator"), None);
    }
}
