use std::sync::OnceLock;

use super::hash_slot;
use super::tenants::{TenantKeys, push_head};
use super::{member_pair, pair_member, push_escaped};
use crate::TenantId;

/// The kinds of a tenant's trigger keys, after the tenant's head.
const DUE: &str = "triggers:due";
const CLAIMS: &str = "triggers:claims";
const BY_ID: &str = "triggers:by-id:";

/// The keys of a tenant's expiration triggers and batch queues (issue 10),
/// all under the tenant's hash tag, so every per-tenant atomic step (a
/// claim, an ack, an enqueue) touches one slot.
///
/// ```text
/// t:{<tenant>}:triggers:due                     zset  "<action>:<id>" by due time (ms since the epoch;
///                                                     a claimed trigger: the end of its lease)
/// t:{<tenant>}:triggers:claims                  hash  "<action>:<id>" -> "<token>:<deliveries>" of a claimed
///                                                     trigger; field "#": the tenant's token counter; field
///                                                     "#sets": how many sets the tenant's triggers took
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
        format!("{}{DUE}", self.head)
    }

    /// The hash of claim tokens of the tenant's claimed triggers.
    pub fn trigger_claims(&self) -> String {
        format!("{}{CLAIMS}", self.head)
    }

    /// The sorted set of the trigger members (`<action>:<id>`) of one
    /// identifier.
    pub fn triggers_of(&self, id: &str) -> String {
        of_id(&self.head, id)
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
/// assert_eq!(keys.tenant().as_str(), "acme");
/// assert_eq!(keys.shard().tenants(), "triggers:{due-63}:tenants");
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Clone)]
pub struct TriggerKeys {
    id: TenantId,
    /// `<head>triggers:due<head>triggers:claims`: both keys in one buffer,
    /// the tenant's head (`t:{<tenant>}:`) its first `head` bytes.
    keys: String,
    head: usize,
    due: usize,
    /// Found when first asked for (only the due index's steps need it).
    shard: OnceLock<&'static IndexShard>,
}

/// `<head>triggers:by-id:<escaped id>`.
fn of_id(head: &str, id: &str) -> String {
    let mut key = String::with_capacity(head.len() + BY_ID.len() + id.len());
    key.push_str(head);
    key.push_str(BY_ID);
    push_escaped(&mut key, id);
    key
}

impl TriggerKeys {
    /// The trigger keys of `tenant`.
    pub fn new(tenant: &TenantId) -> Self {
        Self::of(tenant.clone())
    }

    /// The trigger keys of `tenant`, taking it (what the facade calls:
    /// one buffer for both keys, no other allocation).
    pub fn of(tenant: TenantId) -> Self {
        let text = tenant.as_str();
        let mut keys = String::with_capacity(2 * (text.len() + 5) + DUE.len() + CLAIMS.len());
        push_head(&mut keys, text);
        let head = keys.len();
        keys.push_str(DUE);
        let due = keys.len();
        keys.extend_from_within(..head);
        keys.push_str(CLAIMS);
        Self {
            id: tenant,
            keys,
            head,
            due,
            shard: OnceLock::new(),
        }
    }

    /// The tenant, verbatim: its member in the due index.
    pub fn tenant(&self) -> &TenantId {
        &self.id
    }

    /// The shard of the cross-tenant due index that files this tenant.
    pub fn shard(&self) -> &'static IndexShard {
        self.shard
            .get_or_init(|| TriggerIndex::all().shard_of_head(&self.keys[..self.head]))
    }

    /// The sorted set of the tenant's triggers by due time: the key errors
    /// and spans name.
    pub fn due(&self) -> &str {
        &self.keys[..self.due]
    }

    /// The hash of the claims of the tenant's claimed triggers.
    pub fn claims(&self) -> &str {
        &self.keys[self.due..]
    }

    /// The sorted set of the trigger members of identifier `id`.
    pub fn of_id(&self, id: &str) -> String {
        of_id(&self.keys[..self.head], id)
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

/// The keys of one tenant are equal: everything else derives from it.
impl PartialEq for TriggerKeys {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for TriggerKeys {}

impl std::fmt::Debug for TriggerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerKeys")
            .field("tenant", &self.id)
            .field("due", &self.due())
            .field("claims", &self.claims())
            .finish()
    }
}

/// How many shards the cross-tenant due index has: fixed, so every process
/// (and every language) files a tenant in the same one.
pub const INDEX_SHARDS: usize = 16;

/// The hash tags of the index shards, shard `i` first: each tag's slot
/// lies in the `i`-th sixteenth of Redis Cluster's 16,384 slots
/// (`i * 1024 ..= i * 1024 + 1023`), so the shards spread over a cluster's
/// primaries as its slot ranges do, and a tenant's shard sits in the same
/// range as the tenant's own slot (often on the same node).
const SHARD_TAGS: [&str; INDEX_SHARDS] = [
    "due-21", "due-10", "due-1", "due-61", "due-20", "due-11", "due-0", "due-60", "due-23", "due-12",
    "due-3", "due-63", "due-22", "due-13", "due-2", "due-62",
];

/// One shard of the cross-tenant due index: every key under the shard's
/// own hash tag (one slot), outside every tenant's slot.
///
/// ```text
/// triggers:{<tag>}:tenants  zset  tenants (verbatim) with pending triggers, by their earliest due time
///                                 (ms, server clock; never later than the tenant's own, earlier is harmless)
/// triggers:{<tag>}:marks    hash  tenant -> "<sets>:<ms>": how many sets marked the tenant, and when the last did
/// triggers:{<tag>}:wake     -     not a key: its change channel carries the wake-up hint
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct IndexShard {
    number: usize,
    tenants: String,
    marks: String,
    wake: String,
}

impl IndexShard {
    /// The shard's number, `0..INDEX_SHARDS`.
    pub fn number(&self) -> usize {
        self.number
    }

    /// The sorted set of the shard's tenants by earliest due time.
    pub fn tenants(&self) -> &str {
        &self.tenants
    }

    /// The hash of the shard's set marks.
    pub fn marks(&self) -> &str {
        &self.marks
    }

    /// The name whose change channel (`ChangeChannels::channel`) carries
    /// the shard's wake-up hints; never written as a key.
    pub fn wake(&self) -> &str {
        &self.wake
    }
}

/// The cross-tenant due index of triggers: which tenants have pending
/// triggers, and the earliest due time of each, in [`INDEX_SHARDS`]
/// shards ([`IndexShard`]). A tenant is filed in shard
/// `hash_slot(<its tag>) / 1024`: the top four bits of its slot.
///
/// ```
/// use statehouse_domain::TenantId;
/// use statehouse_domain::layout::{TenantKeys, TriggerIndex, hash_slot};
///
/// let index = TriggerIndex::all();
/// assert_eq!(index.shards().len(), 16);
/// let first = &index.shards()[0];
/// assert_eq!(first.tenants(), "triggers:{due-21}:tenants");
/// assert_eq!(first.marks(), "triggers:{due-21}:marks");
/// assert_eq!(first.wake(), "triggers:{due-21}:wake");
/// assert_eq!(usize::from(hash_slot(first.tenants().as_bytes()) / 1024), 0);
/// let shard = index.shard_of(&TenantKeys::new("acme"));
/// assert_eq!(usize::from(hash_slot(b"t:{acme}:triggers:due") / 1024), shard.number());
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct TriggerIndex {
    shards: Vec<IndexShard>,
}

static INDEX: std::sync::LazyLock<TriggerIndex> = std::sync::LazyLock::new(|| TriggerIndex {
    shards: SHARD_TAGS
        .iter()
        .enumerate()
        .map(|(number, tag)| IndexShard {
            number,
            tenants: format!("triggers:{{{tag}}}:tenants"),
            marks: format!("triggers:{{{tag}}}:marks"),
            wake: format!("triggers:{{{tag}}}:wake"),
        })
        .collect(),
});

impl TriggerIndex {
    /// The index (built once).
    pub fn all() -> &'static Self {
        &INDEX
    }

    /// Every shard, by number.
    pub fn shards(&self) -> &[IndexShard] {
        &self.shards
    }

    /// The shard that files the tenant of `keys`.
    pub fn shard_of(&self, keys: &TenantKeys) -> &IndexShard {
        self.shard_of_head(keys.head())
    }

    /// The shard that files the tenant of the keys starting with `head`.
    fn shard_of_head(&self, head: &str) -> &IndexShard {
        let number = usize::from(hash_slot(head.as_bytes()) / 1024);
        &self.shards[number % self.shards.len()]
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

    #[test]
    fn each_shard_tag_lies_in_its_sixteenth_of_the_slots() {
        for (number, shard) in TriggerIndex::all().shards().iter().enumerate() {
            assert_eq!(shard.number(), number);
            for key in [shard.tenants(), shard.marks(), shard.wake()] {
                assert_eq!(usize::from(hash_slot(key.as_bytes()) / 1024), number, "{key}");
            }
        }
    }

    #[test]
    fn tenants_spread_over_the_shards() {
        let mut counts = [0usize; INDEX_SHARDS];
        for n in 0..16_000 {
            counts[TriggerIndex::all()
                .shard_of(&TenantKeys::new(&format!("tenant-{n}")))
                .number()] += 1;
        }
        assert!(counts.iter().all(|&count| count > 500), "{counts:?}");
    }
}
