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
//! scripts need one slot). Tasks are tagged per namespace and bucket
//! (`{tasks:b0}` … `{tasks:b15}` by default, the bucket derived from the
//! task id: [`TaskBucket`]), so a namespace spreads over the nodes.
//!
//! Architecture invariant: no key of a family is built anywhere else.

//!
//! # Files
//!
//! One file per family: `tasks.rs` ([`TaskKeys`]), `subjects.rs`
//! ([`SubjectKeys`]), `tenants.rs` ([`TenantKeys`]), `triggers.rs` and
//! `queues.rs` (the tenant's trigger and queue keys, and the key sets
//! the trigger and queue ports take: [`TriggerKeys`], [`QueueKeys`],
//! [`QueueIndex`], [`ServiceKeys`]),
//! `config.rs` ([`ConfigKeys`]), `changes.rs` ([`ChangeChannels`]); the
//! escaping is here; `slots.rs`: Redis Cluster's hash slot of a key
//! ([`hash_slot`]) and the proof that every multi-key step of every family
//! stays in one slot.

mod changes;
mod config;
mod queues;
mod slots;
mod subjects;
mod tasks;
mod tenants;
mod triggers;

pub use changes::ChangeChannels;
pub use config::ConfigKeys;
pub use queues::{QueueIndex, QueueKeys, ServiceKeys};
pub use slots::{SLOTS, hash_slot, hash_tag};
pub use subjects::SubjectKeys;
pub use tasks::{LegacyTaskKeys, TaskBucket, TaskKeys};
pub use tenants::TenantKeys;
pub use triggers::TriggerKeys;
pub use triggers::{INDEX_SHARDS, IndexShard, TriggerIndex};

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
    let mut escaped = String::with_capacity(component.len());
    push_escaped(&mut escaped, component);
    escaped
}

/// `head` (its parts, verbatim) then `component` escaped, in one
/// allocation and without the formatter: how the layouts build the keys of
/// every call.
pub(crate) fn joined_escaped(head: &[&str], component: &str) -> String {
    let mut key = String::with_capacity(head.iter().map(|part| part.len()).sum::<usize>() + component.len());
    for part in head {
        key.push_str(part);
    }
    push_escaped(&mut key, component);
    key
}

/// [`escape_component`] appended to `out`: THE escaping, for keys built
/// into one buffer (no `String` per component).
///
/// ```
/// use statehouse_domain::layout::push_escaped;
///
/// let mut key = String::from("t:{");
/// push_escaped(&mut key, "acme:eu");
/// assert_eq!(key, "t:{acme%3Aeu");
/// ```
pub fn push_escaped(out: &mut String, component: &str) {
    // Most ids need no escaping: one scan, one copy.
    if !component.chars().any(needs_escape) {
        out.push_str(component);
        return;
    }
    out.reserve(component.len() + 8);
    for c in component.chars() {
        if needs_escape(c) {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
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
    if !escaped.contains('%') {
        // Without a `%` the component is the text itself, which is its own
        // escaping exactly when no character of it needs one.
        return (!escaped.chars().any(needs_escape)).then(|| escaped.to_owned());
    }
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

/// `<first>:<second>`, both escaped.
fn pair_member(first: &str, second: &str) -> String {
    let mut member = String::with_capacity(first.len() + second.len() + 1);
    push_pair(&mut member, first, second);
    member
}

/// [`pair_member`] appended to `out`.
fn push_pair(out: &mut String, first: &str, second: &str) {
    push_escaped(out, first);
    out.push(':');
    push_escaped(out, second);
}

/// The reverse of [`pair_member`].
fn member_pair(member: &str) -> Option<(String, String)> {
    let (first, second) = member.split_once(':')?;
    Some((unescape_component(first)?, unescape_component(second)?))
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
}
