//! Redis Cluster's hash slots, computed client-side: which slot a key
//! lives in, so that a WATCH section can go to the primary owning its keys
//! and check that they share one slot before sending anything.
//!
//! The rule is Redis' own (`keyHashSlot` in `cluster.c`): CRC16 (XMODEM:
//! polynomial 0x1021, initial value 0, no reflection) of the key, modulo
//! 16384; if the key holds a `{` followed later by a `}` with at least one
//! byte between them, only those bytes (the first such hash tag) are hashed.
//!
//! The tests below prove, for every multi-key atomic step of every family,
//! that its keys share one slot (the one documented exception, the queues'
//! pending mark, is tested as such).

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// The hash slot of `key` (its hash tag's, if it has one), as Redis
/// computes it.
///
/// ```
/// use statehouse_domain::layout::hash_slot;
///
/// assert_eq!(hash_slot(b"foo"), 12_182);
/// assert_eq!(hash_slot(b"{user1000}.following"), hash_slot(b"{user1000}.followers"));
/// assert_eq!(hash_slot(b"{}foo"), hash_slot(b"{}foo"));
/// ```
pub fn hash_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// The part of `key` Redis hashes: the bytes between the first `{` and the
/// first `}` after it, if there are any; else the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// CRC16/XMODEM, bitwise (keys are short; no table needed); also what a
/// task's bucket is derived from (`TaskBucket`).
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{ConfigKeys, QueueIndex, QueueKeys, TaskBucket, TaskKeys, TenantKeys, TriggerKeys};
    use crate::{ActionName, BatchName, QueueName, ServiceName, TenantId};

    /// Asserts that every key of one atomic step is in one slot, naming
    /// the step and the keys otherwise.
    fn one_slot(step: &str, keys: &[&str]) {
        let slots: Vec<u16> = keys.iter().map(|key| hash_slot(key.as_bytes())).collect();
        assert!(
            slots.windows(2).all(|pair| pair[0] == pair[1]),
            "{step}: keys in different slots: {:?}",
            keys.iter().zip(&slots).collect::<Vec<_>>()
        );
    }

    /// A store prefix goes in front of every key: it never holds a brace
    /// pair of its own in these tests, as `docs/scaling.md` asks.
    fn prefixed(prefix: &str, keys: &[String]) -> Vec<String> {
        keys.iter().map(|key| format!("{prefix}{key}")).collect()
    }

    #[test]
    fn redis_own_examples() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(hash_slot(b"foo"), 12_182);
        assert_eq!(hash_slot(b""), 0);
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(
            hash_tag(b"foo{}{bar}"),
            b"foo{}{bar}",
            "an empty tag hashes the whole key"
        );
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_slot("{é}x".as_bytes()), hash_slot("é".as_bytes()));
    }

    #[test]
    fn a_task_write_touches_one_slot() {
        // TaskRepository::save/update: the record, the indexes it joins and
        // those it leaves (another service or user), one script.
        // All in the task's bucket (the commands as sent are checked in
        // adapters/redis/src/tasks/tests.rs).
        let keys = TaskKeys::new("tasks-eu");
        let bucket = TaskBucket::of("job:1");
        let step = [
            keys.record("job:1"),
            keys.by_service(bucket, "mailer"),
            keys.by_user(bucket, "u 1"),
            keys.by_service(bucket, "billing"),
            keys.by_user(bucket, "u 2"),
        ];
        one_slot("task write", &step.iter().map(String::as_str).collect::<Vec<_>>());
        // Index pruning, per bucket: the index and the records it checks.
        let a = TaskBucket::of("a");
        let b = (0..)
            .map(|i| format!("b{i}"))
            .find(|id| TaskBucket::of(id) == a)
            .unwrap();
        let prune = prefixed(
            "app:",
            &[keys.by_service(a, "mailer"), keys.record("a"), keys.record(&b)],
        );
        one_slot(
            "task prune",
            &prune.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }

    #[test]
    fn a_tenant_write_touches_one_hash_and_every_key_of_a_tenant_shares_its_slot() {
        // FieldStore steps touch one hash; the tenant's keys share its tag,
        // so its triggers and queues sit beside its hashes.
        let keys = TenantKeys::new("acme:eu");
        let all = prefixed(
            "p1:",
            &[
                keys.user("u1"),
                keys.handler("u1", "h"),
                keys.row("orders", "42"),
                keys.state("u1", "cart"),
                keys.triggers_due(),
                keys.trigger_claims(),
                keys.triggers_of("x"),
                keys.queue("svc", "b", "a"),
                keys.queue_items("svc", "b", "a"),
                keys.queue_leases("svc", "b", "a"),
                keys.queues_of("svc"),
            ],
        );
        one_slot("tenant keys", &all.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn a_trigger_step_touches_one_slot() -> Result<(), crate::ValidationError> {
        // set/cancel/claim/ack: the due set, the claims and the per-id set.
        let triggers = TriggerKeys::new(&TenantId::new("acme")?);
        let step = [
            triggers.due().to_owned(),
            triggers.claims().to_owned(),
            triggers.of_id("user:1"),
        ];
        one_slot(
            "trigger step",
            &step.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        Ok(())
    }

    #[test]
    fn a_queue_step_touches_one_slot_but_the_pending_mark() -> Result<(), crate::ValidationError> {
        let tenant = TenantId::new("acme")?;
        let name = QueueName::new(
            ServiceName::new("mailer")?,
            BatchName::new("daily")?,
            ActionName::new("send")?,
        );
        let queue = QueueKeys::new(&tenant, &name);
        // enqueue/claim/ack/range/trim: one script over these four keys.
        let step = [queue.list(), queue.items(), queue.leases(), queue.index()];
        one_slot("queue step", &step);
        let index = QueueIndex::new(&tenant, &ServiceName::new("mailer")?);
        one_slot("queue index", &[queue.list(), index.key()]);
        // The documented exception: the service's pending set is in its own
        // slot, a step of its own on a cluster (mark, then push).
        assert_ne!(
            hash_slot(queue.pending().as_bytes()),
            hash_slot(queue.list().as_bytes()),
            "the pending set is the service's, not the tenant's"
        );
        Ok(())
    }

    #[test]
    fn single_key_families_spread_by_key() {
        // Documents, synced models, subjects and config entries are one key
        // per step (a document update watches one key): their keys spread.
        let slots: std::collections::BTreeSet<u16> = (0..64)
            .map(|i| hash_slot(ConfigKeys::entry(&format!("app{i}")).as_bytes()))
            .collect();
        assert!(slots.len() > 32, "config entries should spread: {slots:?}");
    }
}
