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
}
