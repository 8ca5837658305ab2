use std::fmt;

use super::{escape_component, unescape_component};

/// One of the fixed [`TaskBucket::COUNT`] buckets that the tasks of a
/// namespace are spread over (so that, on Redis Cluster, they spread over
/// the primaries).
///
/// A task's bucket depends on its id only. Take the CRC-16/XMODEM
/// checksum `c` (polynomial `0x1021`, initial value 0, no reflection, no
/// final xor: the checksum Redis Cluster hashes keys with) of the id's UTF-8
/// bytes as given (not escaped); the bucket is the top 4 bits of
/// `c × 0x9E3779B1` modulo 2³² (Fibonacci hashing, so that ids that differ
/// in a few characters, `export-1`, `export-2`, …, spread evenly; a CRC
/// alone is linear and crowds them into a few buckets). In Python:
/// `((crc16(id.encode()) * 0x9E3779B1) & 0xFFFFFFFF) >> 28`. Any client in
/// any language can compute it; it never changes (changing it, or
/// [`COUNT`](Self::COUNT), would be a migration).
///
/// ```
/// use statehouse_domain::layout::TaskBucket;
///
/// // CRC-16/XMODEM("123456789") is 0x31C3, the check value of the standard.
/// assert_eq!(TaskBucket::crc16(b"123456789"), 0x31C3);
/// assert_eq!(TaskBucket::of("123456789").number(), (0x31C3u32.wrapping_mul(0x9E37_79B1) >> 28) as u16);
/// assert_eq!(TaskBucket::of("123456789").number(), 2);
/// assert_eq!(TaskBucket::of("job:1").number(), 13);
/// assert_eq!(TaskBucket::of("export-1").number(), 12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskBucket(u16);

impl TaskBucket {
    /// How many buckets a namespace has: fixed, part of the layout.
    pub const COUNT: u16 = 1 << Self::BITS;

    /// The bucket of task `id`.
    pub fn of(id: &str) -> Self {
        let mixed = u32::from(Self::crc16(id.as_bytes())).wrapping_mul(0x9E37_79B1);
        // The top 4 bits: below 16, so the cast keeps them.
        #[allow(clippy::cast_possible_truncation)]
        Self((mixed >> (32 - Self::BITS)) as u16)
    }

    /// `COUNT` is `2^BITS`.
    const BITS: u32 = 4;

    /// Bucket number `number`, if below [`COUNT`](Self::COUNT).
    pub fn new(number: u16) -> Option<Self> {
        (number < Self::COUNT).then_some(Self(number))
    }

    /// Every bucket, in number order.
    pub fn all() -> impl ExactSizeIterator<Item = TaskBucket> + Clone {
        (0..Self::COUNT).map(Self)
    }

    /// Its name in keys, `b0` … `b15` (its [`Display`](fmt::Display)).
    pub fn name(self) -> &'static str {
        const NAMES: [&str; TaskBucket::COUNT as usize] = [
            "b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", "b10", "b11", "b12", "b13", "b14",
            "b15",
        ];
        NAMES[self.index()]
    }

    /// Its number, `0..COUNT`.
    pub fn number(self) -> u16 {
        self.0
    }

    /// Its number as an index, `0..COUNT`.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// CRC-16/XMODEM of `bytes`: polynomial `0x1021`, initial value 0, no
    /// reflection, no final xor; the checksum of Redis Cluster's hash slots
    /// ([`hash_slot`](super::hash_slot)), the same function.
    pub fn crc16(bytes: &[u8]) -> u16 {
        super::slots::crc16(bytes)
    }
}

impl fmt::Display for TaskBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The keys of one task namespace (before the store's prefix), spread over
/// [`TaskBucket::COUNT`] buckets, each its own hash tag.
///
/// ```text
/// {ns:bN}:task:<id>          string  the task record (JSON); N = bucket of <id>
/// {ns:bN}:by-service:<name>  zset    ids of the service's tasks in bucket N, scored by update time (ms)
/// {ns:bN}:by-user:<id>       zset    ids of the user's tasks in bucket N, scored by update time (ms)
/// ```
///
/// A task's record and its index entries are all in its bucket, so every
/// write of a task touches one hash slot. A listing merges the index of
/// every bucket.
///
/// ```
/// use statehouse_domain::layout::{TaskBucket, TaskKeys};
///
/// let keys = TaskKeys::new("tasks");
/// let bucket = TaskBucket::of("job:1");
/// assert_eq!(keys.record("job:1"), "{tasks:b13}:task:job%3A1");
/// assert_eq!(keys.by_service(bucket, "mailer"), "{tasks:b13}:by-service:mailer");
/// assert_eq!(keys.by_user(bucket, "u 1"), "{tasks:b13}:by-user:u%201");
/// assert_eq!(keys.by_service_everywhere("mailer"), "{tasks:b*}:by-service:mailer");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskKeys {
    /// The escaped namespace.
    namespace: String,
}

impl TaskKeys {
    /// The keys of `namespace` (escaped, so any text is a valid namespace).
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: escape_component(namespace),
        }
    }

    /// The key of a task record, in the task's bucket.
    pub fn record(&self, id: &str) -> String {
        super::joined_escaped(
            &["{", &self.namespace, ":", TaskBucket::of(id).name(), "}:task:"],
            id,
        )
    }

    /// The index of a service's tasks in `bucket`.
    pub fn by_service(&self, bucket: TaskBucket, service: &str) -> String {
        super::joined_escaped(
            &["{", &self.namespace, ":", bucket.name(), "}:by-service:"],
            service,
        )
    }

    /// The index of a user's tasks in `bucket`.
    pub fn by_user(&self, bucket: TaskBucket, user: &str) -> String {
        super::joined_escaped(&["{", &self.namespace, ":", bucket.name(), "}:by-user:"], user)
    }

    /// The name of a service's index in every bucket, `{ns:b*}:by-service:<name>`:
    /// what a whole listing is about (spans, logs). Also a `SCAN` pattern
    /// matching exactly those keys.
    pub fn by_service_everywhere(&self, service: &str) -> String {
        format!(
            "{{{}:b*}}:by-service:{}",
            self.namespace,
            escape_component(service)
        )
    }

    /// The name of a user's index in every bucket, `{ns:b*}:by-user:<id>`.
    pub fn by_user_everywhere(&self, user: &str) -> String {
        format!("{{{}:b*}}:by-user:{}", self.namespace, escape_component(user))
    }

    /// The keys of the layout this namespace had before buckets, for the
    /// migration.
    pub fn legacy(&self) -> LegacyTaskKeys<'_> {
        LegacyTaskKeys {
            namespace: &self.namespace,
        }
    }
}

/// The keys of a task namespace in the layout before buckets (statehouse
/// before buckets: every key of a namespace under one hash tag `{ns}`, so on one
/// Redis Cluster node). Read only by the migration (`docs/tasks.md`), which
/// moves each task into its bucket and removes what it moved.
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
/// let legacy = keys.legacy();
/// assert_eq!(legacy.record("job:1"), "{tasks}:task:job%3A1");
/// assert_eq!(legacy.by_service("mailer"), "{tasks}:by-service:mailer");
/// assert_eq!(legacy.by_user("u 1"), "{tasks}:by-user:u%201");
/// assert_eq!(legacy.records(), "{tasks}:task:*");
/// assert_eq!(legacy.id_of("{tasks}:task:job%3A1").as_deref(), Some("job:1"));
/// assert_eq!(legacy.id_of("{tasks}:by-user:u"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyTaskKeys<'a> {
    namespace: &'a str,
}

impl LegacyTaskKeys<'_> {
    /// The key of a task record.
    pub fn record(&self, id: &str) -> String {
        format!("{{{}}}:task:{}", self.namespace, escape_component(id))
    }

    /// The index of a service's tasks.
    pub fn by_service(&self, service: &str) -> String {
        format!("{{{}}}:by-service:{}", self.namespace, escape_component(service))
    }

    /// The index of a user's tasks.
    pub fn by_user(&self, user: &str) -> String {
        format!("{{{}}}:by-user:{}", self.namespace, escape_component(user))
    }

    /// The `SCAN` pattern of every record (it holds no glob character but
    /// its last `*`: the namespace is escaped).
    pub fn records(&self) -> String {
        format!("{{{}}}:task:*", self.namespace)
    }

    /// The task id of a record key of this namespace; `None` for any other
    /// key, or one whose id is not an escaping.
    pub fn id_of(&self, key: &str) -> Option<String> {
        let escaped = key
            .strip_prefix('{')?
            .strip_prefix(self.namespace)?
            .strip_prefix("}:task:")?;
        unescape_component(escaped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_is_named_b_and_its_number() {
        for bucket in TaskBucket::all() {
            assert_eq!(bucket.name(), format!("b{}", bucket.number()));
            assert_eq!(bucket.to_string(), bucket.name());
        }
        let keys = TaskKeys::new("ns:1");
        let bucket = TaskBucket::of("job:1");
        assert_eq!(keys.record("job:1"), format!("{{ns%3A1:{bucket}}}:task:job%3A1"));
        assert_eq!(
            keys.by_service(bucket, "a b"),
            format!("{{ns%3A1:{bucket}}}:by-service:a%20b")
        );
        assert_eq!(
            keys.by_user(bucket, "u"),
            format!("{{ns%3A1:{bucket}}}:by-user:u")
        );
    }

    #[test]
    fn task_keys_of_different_tuples_never_collide() {
        let a = TaskKeys::new("a:b");
        let b = TaskKeys::new("a");
        assert_ne!(a.record("x"), b.record("b}:task:x"));
        assert_ne!(a.record("x"), b.record(":b}:task:x"));
        assert!(a.record("x").starts_with("{a%3Ab:b"));
        // A namespace never reads as another's bucket, nor as a legacy tag.
        let c = TaskKeys::new("a:b1");
        assert!(c.record("x").starts_with("{a%3Ab1:b"));
        assert_ne!(
            TaskKeys::new("tasks:b9").legacy().record("job:1"),
            TaskKeys::new("tasks").record("job:1")
        );
    }

    #[test]
    fn a_records_indexes_share_its_bucket_and_hash_tag() {
        let keys = TaskKeys::new("ns");
        for id in ["a", "b", "job:1", "export-42", "é", ""] {
            let bucket = TaskBucket::of(id);
            let tag = format!("{{ns:{bucket}}}:");
            assert!(keys.record(id).starts_with(&tag), "{id}");
            assert!(keys.by_service(bucket, "s").starts_with(&tag));
            assert!(keys.by_user(bucket, "u").starts_with(&tag));
        }
    }

    #[test]
    fn ids_spread_over_every_bucket() {
        let mut seen = [0usize; TaskBucket::COUNT as usize];
        for i in 0..1600 {
            seen[TaskBucket::of(&format!("task-{i}")).index()] += 1;
        }
        // 100 per bucket on average (a standard deviation of about 10 if
        // the buckets were random); sequential ids spread as evenly.
        assert!(seen.iter().all(|&n| (70..=130).contains(&n)), "{seen:?}");
        // Ids that differ in one character still reach every bucket.
        let mut few = [0usize; TaskBucket::COUNT as usize];
        for i in 0..100 {
            few[TaskBucket::of(&format!("export-2026-11-23-{i}")).index()] += 1;
        }
        assert!(few.iter().all(|&n| (1..=14).contains(&n)), "{few:?}");
        assert_eq!(TaskBucket::all().len(), usize::from(TaskBucket::COUNT));
        assert_eq!(TaskBucket::new(TaskBucket::COUNT), None);
    }

    #[test]
    fn legacy_ids_are_read_back_only_from_this_namespaces_records() {
        let keys = TaskKeys::new("a:b");
        let legacy = keys.legacy();
        assert_eq!(legacy.id_of(&legacy.record("x:1")).as_deref(), Some("x:1"));
        assert_eq!(legacy.id_of("{a%3Ab}:task:bad%2"), None);
        assert_eq!(TaskKeys::new("a").legacy().id_of(&legacy.record("x")), None);
        assert_eq!(
            legacy.id_of(&keys.record("x")),
            None,
            "bucketed keys are not legacy"
        );
    }
}
