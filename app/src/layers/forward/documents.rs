use std::fmt;

use statehouse_domain::{Key, KeyPattern, Ttl};
use statehouse_ports::{
    Boxed, DocumentStore, Fetched, KeyStream, KeyTtl, RetryPolicy, SetCondition, SetOptions, Topology,
    UpdateFn, Updated,
};

use super::{Layer, Layered, Op, paged};

/// The `key` of a `get_many` call: the first key and how many more,
/// formatted only if a layer asks.
struct ManyKeys<'a>(&'a [Key]);

impl fmt::Display for ManyKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => Ok(()),
            [only] => write!(f, "{only}"),
            [first, rest @ ..] => write!(f, "{first} (+{} more)", rest.len()),
        }
    }
}

/// Idempotent: the reads, `ping`, and `set` without a condition. Not:
/// `set` with a condition (a lost reply would turn "written" into "not
/// written"), `delete` (its answer could lie), `expire`, `update`,
/// `increment`, `append`.
impl<L: Layer, S: DocumentStore> DocumentStore for Layered<L, S> {
    fn get<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, Option<Vec<u8>>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("get", key), || self.inner.get(key))
    }

    fn get_many<'s, 'k, 'f>(&'s self, keys: &'k [Key]) -> Boxed<'f, Vec<Fetched>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("get_many", ManyKeys(keys)), || self.inner.get_many(keys))
    }

    fn set<'s, 'k, 'v, 'f>(&'s self, key: &'k Key, value: &'v [u8], options: SetOptions) -> Boxed<'f, bool>
    where
        's: 'f,
        'k: 'f,
        'v: 'f,
        Self: 'f,
    {
        let op = Op::new("set", key);
        match options.condition {
            SetCondition::Always => self
                .layer
                .around_idempotent(op, move || self.inner.set(key, value, options)),
            SetCondition::IfAbsent | SetCondition::IfPresent => {
                self.layer.around(op, self.inner.set(key, value, options))
            }
        }
    }

    fn delete<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer.around(Op::new("delete", key), self.inner.delete(key))
    }

    fn exists<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("exists", key), || self.inner.exists(key))
    }

    fn expire<'s, 'k, 'f>(&'s self, key: &'k Key, ttl: Ttl) -> Boxed<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around(Op::new("expire", key), self.inner.expire(key, ttl))
    }

    fn ttl<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, KeyTtl>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("ttl", key), || self.inner.ttl(key))
    }

    fn list_keys(&self, pattern: &KeyPattern) -> KeyStream {
        paged(
            &self.layer,
            "list_keys",
            pattern.to_string(),
            self.inner.list_keys(pattern),
        )
    }

    fn update<'a, 's, 'k, 'u, 'f>(
        &'s self,
        key: &'k Key,
        policy: RetryPolicy,
        f: &'u mut UpdateFn<'a>,
    ) -> Boxed<'f, Updated>
    where
        'a: 'f,
        's: 'f,
        'k: 'f,
        'u: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("update", key).counting(|updated: &Updated| updated.attempts),
            self.inner.update(key, policy, f),
        )
    }

    fn increment<'s, 'k, 'f>(&'s self, key: &'k Key, by: i64) -> Boxed<'f, i64>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around(Op::new("increment", key), self.inner.increment(key, by))
    }

    fn append<'s, 'k, 'v, 'f>(&'s self, key: &'k Key, item: &'v [u8]) -> Boxed<'f, usize>
    where
        's: 'f,
        'k: 'f,
        'v: 'f,
        Self: 'f,
    {
        self.layer
            .around(Op::new("append", key), self.inner.append(key, item))
    }

    fn ping<'s, 'f>(&'s self) -> Boxed<'f, ()>
    where
        's: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("ping", ""), || self.inner.ping())
    }

    /// A report of what the store holds, not a data call: the inner store's answer, through no layer.
    fn topology<'s, 'f>(&'s self) -> Boxed<'f, Topology>
    where
        's: 'f,
        Self: 'f,
    {
        self.inner.topology()
    }
}
