//! THE key layout of statehouse's own families: how ids that users give
//! become parts of Redis keys, and which keys each family uses.
//!
//! Both adapters build their keys here (the Redis adapter then puts the
//! store's prefix in front, in `adapters/redis/src/keys.rs`), so a task or a
//! tenant lives under the same key in Redis and in the memory keyspace, and
//! `docs/keys.md` describes both.
//!
//! # Escaping
//!
//! A component (task id, service, user id, namespace, …) is written with
//! [`escape_component`]: `%`, the separator `:`, the hash-tag braces `{` `}`,
//! the glob metacharacters `*` `?` `[` `]` `\` and white space are
//! percent-encoded (`%3A`, …). So:
//!
//! - two different components never give the same text (percent-encoding
//!   that also encodes `%` is injective), and since an escaped component
//!   never holds `:`, two different tuples of components never give the same
//!   key;
//! - an escaped component holds no glob metacharacter, so a pattern built
//!   from escaped components matches only what it names;
//! - an escaped component holds no brace, so the only hash tag of a key is
//!   the one the layout puts there.
//!
//! # Hash tags
//!
//! Every key one atomic step touches carries the same hash tag, so the
//! layout runs unchanged on Redis Cluster (multi-key transactions and
//! scripts need one slot). Tasks are tagged per namespace: `{tasks}` by
//! default. The cost: one namespace lives in one slot, on one node.
//!
//! Architecture invariant: no key of a family is built anywhere else.

use std::fmt::Write as _;

/// Escapes one key component; see the [module documentation](self).
///
/// ```
/// use statehouse_domain::layout::escape_component;
///
/// assert_eq!(escape_component("user:1"), "user%3A1");
/// assert_eq!(escape_component("a*b{c}"), "a%2Ab%7Bc%7D");
/// assert_eq!(escape_component("100%"), "100%25");
/// assert_eq!(escape_component("plain-id_42.x"), "plain-id_42.x");
/// ```
pub fn escape_component(component: &str) -> String {
    // Most ids need no escaping: one scan, one copy.
    if !component.chars().any(needs_escape) {
        return component.to_owned();
    }
    let mut escaped = String::with_capacity(component.len() + 8);
    for c in component.chars() {
        if needs_escape(c) {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(escaped, "%{byte:02X}");
            }
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Reverses [`escape_component`]; `None` if `escaped` is not the escaping
/// of any component (used to read keys back from listings).
///
/// ```
/// use statehouse_domain::layout::{escape_component, unescape_component};
///
/// assert_eq!(unescape_component(&escape_component("a:b %")).as_deref(), Some("a:b %"));
/// assert_eq!(unescape_component("bad%2"), None);
/// ```
pub fn unescape_component(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = escaped.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (escape_component(&text) == escaped).then_some(text)
}

fn needs_escape(c: char) -> bool {
    matches!(c, '%' | ':' | '{' | '}' | '*' | '?' | '[' | ']' | '\\') || c.is_whitespace()
}

/// The keys of one task namespace (before the store's prefix).
///
/// ```text
/// {ns}:task:<id>          string  the task record (JSON)
/// {ns}:by-service:<name>  zset    task ids of a service, scored by update time (ms)
/// {ns}:by-user:<id>       zset    task ids of a user, scored by update time (ms)
/// ```
///
/// ```
/// use statehouse_domain::layout::TaskKeys;
///
/// let keys = TaskKeys::new("tasks");
/// assert_eq!(keys.record("job:1"), "{tasks}:task:job%3A1");
/// assert_eq!(keys.by_service("mailer"), "{tasks}:by-service:mailer");
/// assert_eq!(keys.by_user("u 1"), "{tasks}:by-user:u%201");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskKeys {
    /// `{<escaped namespace>}:`, the start of every key.
    head: String,
}

impl TaskKeys {
    /// The keys of `namespace` (escaped, so any text is a valid namespace).
    pub fn new(namespace: &str) -> Self {
        Self {
            head: format!("{{{}}}:", escape_component(namespace)),
        }
    }

    /// The key of a task record.
    pub fn record(&self, id: &str) -> String {
        format!("{}task:{}", self.head, escape_component(id))
    }

    /// The index of a service's tasks.
    pub fn by_service(&self, service: &str) -> String {
        format!("{}by-service:{}", self.head, escape_component(service))
    }

    /// The index of a user's tasks.
    pub fn by_user(&self, user: &str) -> String {
        format!("{}by-user:{}", self.head, escape_component(user))
    }
}

/// The keys of subjects under one subject prefix (before the store's
/// prefix): `s:<subject prefix><subject>`, KRules' layout. Neither part is
/// escaped (Python services build the same key), so prefix `a:` with
/// subject `b` and prefix `a` with subject `:b` are the same key; patterns
/// escape the subject prefix, so a listing stays under it.
///
/// ```
/// use statehouse_domain::layout::SubjectKeys;
///
/// let keys = SubjectKeys::new("app:");
/// assert_eq!(keys.subject("user:1"), "s:app:user:1");
/// assert_eq!(SubjectKeys::new("a:").subject("b"), SubjectKeys::new("a").subject(":b"));
/// assert_eq!(SubjectKeys::new("x[1]").pattern("u*"), r"s:x\[1\]u*");
/// assert_eq!(keys.name_of("s:app:user:1"), Some("user:1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKeys {
    /// `s:<subject prefix>`.
    head: String,
    /// The same, glob characters escaped.
    head_pattern: String,
}

impl SubjectKeys {
    /// The keys of subjects under `subject_prefix` (verbatim; may be empty).
    pub fn new(subject_prefix: &str) -> Self {
        let head = format!("s:{subject_prefix}");
        Self {
            head_pattern: crate::KeyPattern::escape(&head),
            head,
        }
    }

    /// The hash of `subject`.
    pub fn subject(&self, subject: &str) -> String {
        format!("{}{subject}", self.head)
    }

    /// The glob pattern of the subjects whose names match `pattern` (a
    /// glob over names): the head escaped, the pattern as given.
    pub fn pattern(&self, pattern: &str) -> String {
        format!("{}{pattern}", self.head_pattern)
    }

    /// The subject name of a key of this layout; `None` for another key.
    pub fn name_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.head.as_str())
            .filter(|name| !name.is_empty())
    }
}

/// The keys of one tenant (before the store's prefix). Every key starts
/// with `t:{<tenant>}:`, so all of a tenant's keys share one hash tag (one
/// slot on Redis Cluster) and every pattern below stays inside the tenant:
/// an escaped tenant holds no brace, `:` or glob character, so tenant `a`
/// never matches keys of tenant `ab`, `a:b` or `*`.
///
/// ```text
/// t:{<tenant>}:user:<user>               hash  a user's fields (JSON per field)
/// t:{<tenant>}:handler:<user>:<handler>  hash  a handler's state for a user
/// t:{<tenant>}:table:<table>:<pk>        hash  one row of a table
/// t:{<tenant>}:state:<user>:<name>       hash  a shared state of a user
/// ```
///
/// ```
/// use statehouse_domain::layout::TenantKeys;
///
/// let keys = TenantKeys::new("acme:eu");
/// assert_eq!(keys.user("u*1"), "t:{acme%3Aeu}:user:u%2A1");
/// assert_eq!(keys.handler("u1", "chat"), "t:{acme%3Aeu}:handler:u1:chat");
/// assert_eq!(keys.row("orders", "42"), "t:{acme%3Aeu}:table:orders:42");
/// assert_eq!(keys.state("u1", "draft"), "t:{acme%3Aeu}:state:u1:draft");
/// assert_eq!(keys.users_pattern(), "t:{acme%3Aeu}:user:*");
/// assert_eq!(keys.rows_of_pk_pattern("42"), "t:{acme%3Aeu}:table:*:42");
/// assert_eq!(keys.states_pattern("u1"), "t:{acme%3Aeu}:state:u1:*");
/// assert_eq!(keys.user_of("t:{acme%3Aeu}:user:u%2A1").as_deref(), Some("u*1"));
/// assert_eq!(keys.state_name_of("u1", "t:{acme%3Aeu}:state:u1:draft").as_deref(), Some("draft"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeys {
    /// `t:{<escaped tenant>}:`, the start of every key of the tenant.
    head: String,
}

impl TenantKeys {
    /// The keys of `tenant` (escaped, so any text is a valid tenant).
    pub fn new(tenant: &str) -> Self {
        Self {
            head: format!("t:{{{}}}:", escape_component(tenant)),
        }
    }

    /// `t:{<escaped tenant>}:`, the start of every key of the tenant.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The glob of every key of the tenant.
    pub fn all_pattern(&self) -> String {
        format!("{}*", self.head)
    }

    /// A key of the tenant from already escaped parts, joined by `:`
    /// (`kind` is a fixed word of the layout, never user input).
    pub fn key(&self, kind: &str, parts: &[&str]) -> String {
        let mut key = String::with_capacity(self.head.len() + kind.len() + 32);
        key.push_str(&self.head);
        key.push_str(kind);
        for part in parts {
            key.push(':');
            key.push_str(&escape_component(part));
        }
        key
    }

    /// The hash of a user.
    pub fn user(&self, user: &str) -> String {
        self.key("user", &[user])
    }

    /// The glob of every user hash of the tenant.
    pub fn users_pattern(&self) -> String {
        format!("{}user:*", self.head)
    }

    /// The user id of a key of [`users_pattern`](Self::users_pattern);
    /// `None` for another key.
    pub fn user_of(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(self.head.as_str())?.strip_prefix("user:")?;
        unescape_component(rest)
    }

    /// The hash of a handler's state for a user.
    pub fn handler(&self, user: &str, handler: &str) -> String {
        self.key("handler", &[user, handler])
    }

    /// The hash of one row of a table.
    pub fn row(&self, table: &str, primary_key: &str) -> String {
        self.key("table", &[table, primary_key])
    }

    /// The glob of the rows of one primary key in every table of the
    /// tenant (table names are escaped, so `*` spans exactly one component).
    pub fn rows_of_pk_pattern(&self, primary_key: &str) -> String {
        format!("{}table:*:{}", self.head, escape_component(primary_key))
    }

    /// The glob of every row of one table of the tenant.
    pub fn rows_pattern(&self, table: &str) -> String {
        format!("{}table:{}:*", self.head, escape_component(table))
    }

    /// The table and primary key of a row key of the tenant; `None` for
    /// another key.
    pub fn row_of(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(self.head.as_str())?.strip_prefix("table:")?;
        let (table, primary_key) = rest.split_once(':')?;
        Some((unescape_component(table)?, unescape_component(primary_key)?))
    }

    /// The glob of every handler state of a user.
    pub fn handlers_pattern(&self, user: &str) -> String {
        format!("{}handler:{}:*", self.head, escape_component(user))
    }

    /// The handler name of a key of
    /// [`handlers_pattern`](Self::handlers_pattern) for `user`; `None` for
    /// another key.
    pub fn handler_name_of(&self, user: &str, key: &str) -> Option<String> {
        let rest = key
            .strip_prefix(self.head.as_str())?
            .strip_prefix("handler:")?
            .strip_prefix(escape_component(user).as_str())?
            .strip_prefix(':')?;
        unescape_component(rest)
    }

    /// The hash of a user's shared state `name`.
    pub fn state(&self, user: &str, name: &str) -> String {
        self.key("state", &[user, name])
    }

    /// The glob of every shared state of a user.
    pub fn states_pattern(&self, user: &str) -> String {
        format!("{}state:{}:*", self.head, escape_component(user))
    }

    /// The state name of a key of [`states_pattern`](Self::states_pattern)
    /// for `user`; `None` for another key.
    pub fn state_name_of(&self, user: &str, key: &str) -> Option<String> {
        let rest = key
            .strip_prefix(self.head.as_str())?
            .strip_prefix("state:")?
            .strip_prefix(escape_component(user).as_str())?
            .strip_prefix(':')?;
        unescape_component(rest)
    }
}

/// The keys of a tenant's expiration triggers and batch queues (issue 10),
/// all under the tenant's hash tag, so every per-tenant atomic step (a
/// claim, an ack, an enqueue) touches one slot.
///
/// ```text
/// t:{<tenant>}:triggers:due                     zset  "<action>:<id>" by due time (ms since the epoch;
///                                                     a claimed trigger: the end of its lease)
/// t:{<tenant>}:triggers:claims                  hash  "<action>:<id>" -> claim token of a claimed trigger;
///                                                     field "#": the tenant's token counter
/// t:{<tenant>}:triggers:by-id:<id>              zset  the members "<action>:<id>" of one identifier (score 0)
/// t:{<tenant>}:queue:<service>:<batch>:<action>         list  item ids waiting, oldest first
/// t:{<tenant>}:queue-items:<service>:<batch>:<action>   hash  item id -> payload; field "next": the id counter
/// t:{<tenant>}:queue-leases:<service>:<batch>:<action>  zset  claimed item ids by lease end (ms)
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

/// `<first>:<second>`, both escaped.
fn pair_member(first: &str, second: &str) -> String {
    format!("{}:{}", escape_component(first), escape_component(second))
}

/// The reverse of [`pair_member`].
fn member_pair(member: &str) -> Option<(String, String)> {
    let (first, second) = member.split_once(':')?;
    Some((unescape_component(first)?, unescape_component(second)?))
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

/// The keys of versioned configuration entries (before the store's prefix):
/// `config:<escaped name>`, one string (a JSON envelope) per entry, so an
/// update is a single-key atomic step and needs no hash tag.
///
/// ```
/// use statehouse_domain::layout::ConfigKeys;
///
/// assert_eq!(ConfigKeys::entry("app:limits"), "config:app%3Alimits");
/// assert_eq!(ConfigKeys::name_of("config:app%3Alimits").as_deref(), Some("app:limits"));
/// assert_eq!(ConfigKeys::pattern(), "config:*");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigKeys;

impl ConfigKeys {
    /// The start of every entry's key.
    pub const HEAD: &'static str = "config:";

    /// The key of the entry `name`.
    pub fn entry(name: &str) -> String {
        format!("{}{}", Self::HEAD, escape_component(name))
    }

    /// The glob of every entry.
    pub fn pattern() -> String {
        format!("{}*", Self::HEAD)
    }

    /// The entry name of a key of [`pattern`](Self::pattern); `None` for
    /// another key.
    pub fn name_of(key: &str) -> Option<String> {
        unescape_component(key.strip_prefix(Self::HEAD)?)
    }
}

/// The Pub/Sub channels of statehouse's change events (before the store's
/// prefix): `statehouse:changes:<key>`, the key verbatim as the caller names
/// it (so a key pattern is a channel pattern after the fixed head, which
/// holds no glob character; the head is fixed, so the channel names its key
/// exactly). The payload is a [`ChangeNotice`](crate::ChangeNotice) as JSON.
///
/// ```
/// use statehouse_domain::layout::ChangeChannels;
///
/// assert_eq!(ChangeChannels::channel("config:app"), "statehouse:changes:config:app");
/// assert_eq!(ChangeChannels::pattern("config:*"), "statehouse:changes:config:*");
/// assert_eq!(ChangeChannels::key_of("statehouse:changes:a:b"), Some("a:b"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeChannels;

impl ChangeChannels {
    /// The start of every change channel.
    pub const HEAD: &'static str = "statehouse:changes:";

    /// The channel of `key`'s changes.
    pub fn channel(key: &str) -> String {
        format!("{}{key}", Self::HEAD)
    }

    /// The channel pattern of the keys matching the glob `pattern`.
    pub fn pattern(pattern: &str) -> String {
        format!("{}{pattern}", Self::HEAD)
    }

    /// The key a channel is about; `None` for another channel.
    pub fn key_of(channel: &str) -> Option<&str> {
        channel.strip_prefix(Self::HEAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn escaped_components_hold_no_separator_brace_or_glob_character() {
        let nasty = "a:b{c}*?[x]\\ %é\t";
        let escaped = escape_component(nasty);
        assert!(
            !escaped.contains([':', '{', '}', '*', '?', '[', ']', '\\', ' ', '\t']),
            "{escaped}"
        );
        assert_eq!(unescape_component(&escaped).as_deref(), Some(nasty));
    }

    #[test]
    fn different_components_never_share_an_escaping() {
        let samples = [
            "a", "a:", ":a", "a%3A", "a%", "%", "%25", "a b", "a%20b", "{a}", "%7Ba%7D", "*", "%2A", "é",
            "%C3%A9",
        ];
        let mut seen = HashMap::new();
        for sample in samples {
            if let Some(other) = seen.insert(escape_component(sample), sample) {
                panic!("{sample:?} and {other:?} collide");
            }
        }
    }

    #[test]
    fn unescape_rejects_text_that_is_no_escaping() {
        for bad in ["%", "%4", "%zz", "a:b", "%61", "%C3"] {
            assert_eq!(unescape_component(bad), None, "{bad}");
        }
    }

    #[test]
    fn task_keys_of_different_tuples_never_collide() {
        let a = TaskKeys::new("a:b");
        let b = TaskKeys::new("a");
        assert_ne!(a.record("x"), b.record("b}:task:x"));
        assert_ne!(a.record("x"), b.record(":b}:task:x"));
        assert!(a.record("x").starts_with("{a%3Ab}:"));
    }

    #[test]
    fn tenant_keys_of_different_tuples_never_collide() {
        let names = [
            "a", "b", "a:b", ":b", "a:", "*", "ab", "", " ", "{a}", "a%3Ab", "é",
        ];
        let mut seen = HashMap::new();
        for tenant in names {
            let keys = TenantKeys::new(tenant);
            for first in names {
                for second in names {
                    for key in [
                        keys.user(first),
                        keys.handler(first, second),
                        keys.row(first, second),
                        keys.state(first, second),
                    ] {
                        let tuple = (tenant, first, second, key.clone());
                        if let Some(other) = seen.insert(key, tuple.clone()) {
                            // The user key has one component: equal only
                            // when the tuple is the same user.
                            assert!(
                                other.0 == tuple.0 && other.1 == tuple.1 && key_kind(&other.3) == "user",
                                "{tuple:?} and {other:?} collide"
                            );
                        }
                    }
                }
            }
        }
    }

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

    fn key_kind(key: &str) -> &str {
        key.split(':').nth(2).unwrap_or_default()
    }

    #[test]
    fn tenant_patterns_match_only_their_tenant() {
        let glob_free = |p: &str| p.trim_end_matches('*').replace("table:*:", "");
        let a = TenantKeys::new("a");
        assert!(
            !TenantKeys::new("ab")
                .user("x")
                .starts_with(&glob_free(&a.users_pattern()))
        );
        assert!(
            !TenantKeys::new("a:b")
                .user("x")
                .starts_with(&glob_free(&a.users_pattern()))
        );
        let star = TenantKeys::new("*");
        assert_eq!(star.users_pattern(), "t:{%2A}:user:*");
        assert_eq!(a.state_name_of("u", &a.state("u:x", "n")), None);
        assert_eq!(a.state_name_of("u", &a.state("u", "n:x")).as_deref(), Some("n:x"));
    }
}
