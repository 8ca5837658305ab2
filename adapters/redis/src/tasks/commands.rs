//! The commands of the task family, built without I/O, so that a unit test
//! (`tests.rs`) checks what is sent: every multi-key command, and every
//! MULTI with the key it WATCHes, names keys of one hash slot.

use std::borrow::Cow;

use statehouse_ports::{BucketRead, TaskBucket, TaskIndex, TaskRecord, TaskSpace};

use crate::keys::Keys;
use crate::scripts::{self, PRUNE_INDEX, TASK_WRITE};

/// The Redis commands of one task space under one store prefix.
pub(super) struct TaskCommands<'a> {
    keys: &'a Keys,
    space: &'a TaskSpace,
}

impl<'a> TaskCommands<'a> {
    pub(super) fn new(keys: &'a Keys, space: &'a TaskSpace) -> Self {
        Self { keys, space }
    }

    /// The Redis key of a layout key, moving `key` when there is no prefix
    /// rather than copying it.
    fn raw(&self, key: String) -> String {
        if let Cow::Owned(prefixed) = self.keys.raw(&key) {
            return prefixed;
        }
        key
    }

    /// The Redis key of the record of task `id`.
    pub(super) fn record(&self, id: &str) -> String {
        self.raw(self.space.keys().record(id))
    }

    /// The Redis key of `index` in `bucket`.
    pub(super) fn index(&self, index: &TaskIndex, bucket: TaskBucket) -> String {
        self.raw(index.key(self.space, bucket))
    }

    /// One task write, for the MULTI of the WATCH section on `rkey` (the
    /// record's Redis key): the `TASK_WRITE` script storing `bytes` (the
    /// encoding of `record`) with `ttl_ms`, adding the record to its
    /// indexes and removing it from the `old` ones it left, all in the
    /// task's bucket.
    pub(super) fn write(
        &self,
        rkey: &str,
        record: &TaskRecord,
        bytes: &[u8],
        old: &[TaskIndex],
        ttl_ms: u64,
    ) -> redis::Pipeline {
        let bucket = TaskBucket::of(record.id.as_str());
        let new = TaskIndex::of(record);
        let mut keys = Vec::with_capacity(1 + new.len() + old.len());
        keys.push(rkey.to_owned());
        keys.extend(new.iter().map(|index| self.index(index, bucket)));
        keys.extend(
            old.iter()
                .filter(|index| !new.contains(index))
                .map(|index| self.index(index, bucket)),
        );
        let mut pipe = redis::pipe();
        pipe.add_command(scripts::evalsha(
            &TASK_WRITE,
            &keys,
            (
                bytes,
                ttl_ms,
                record.updated_millis(),
                record.id.as_str(),
                new.len(),
            ),
        ))
        .ignore();
        pipe
    }

    /// The deletion of task `id` (record at `rkey`, stored as `bytes`), for
    /// the MULTI of the WATCH section on `rkey`: the record and its entries
    /// in the indexes it names.
    pub(super) fn delete(&self, rkey: &str, id: &str, bytes: &[u8]) -> redis::Pipeline {
        let bucket = TaskBucket::of(id);
        let mut writes = redis::pipe();
        writes.cmd("DEL").arg(rkey).ignore();
        for index in TaskIndex::of_stored(bytes) {
            writes
                .cmd("ZREM")
                .arg(self.index(&index, bucket))
                .arg(id)
                .ignore();
        }
        writes
    }

    /// The reads a listing's merge asks for: a `ZRANGE … BYSCORE REV LIMIT 0
    /// <count> WITHSCORES` of `index` per bucket.
    pub(super) fn bucket_reads(&self, index: &TaskIndex, reads: &[BucketRead]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for read in reads {
            let max = read.max.map_or_else(|| "+inf".to_owned(), |max| max.to_string());
            pipe.cmd("ZRANGE")
                .arg(self.index(index, read.bucket))
                .arg(max)
                .arg("-inf")
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(read.count)
                .arg("WITHSCORES");
        }
        pipe
    }

    /// One `MGET` per group of task ids of one bucket.
    pub(super) fn record_reads<'i>(
        &self,
        groups: impl IntoIterator<Item = impl IntoIterator<Item = &'i str>>,
    ) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for ids in groups {
            let mget = pipe.cmd("MGET");
            for id in ids {
                mget.arg(self.record(id));
            }
        }
        pipe
    }

    /// A count's chunks: `ZRANGE <index in bucket> <start> <start + chunk - 1>`
    /// per `(bucket, start)`.
    pub(super) fn count_ranges(
        &self,
        index: &TaskIndex,
        chunks: &[(TaskBucket, usize)],
        chunk: usize,
    ) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for (bucket, start) in chunks {
            pipe.cmd("ZRANGE")
                .arg(self.index(index, *bucket))
                .arg(*start)
                .arg(start + chunk - 1);
        }
        pipe
    }

    /// One `EXISTS` per group of task ids of one bucket.
    pub(super) fn exists<'i>(
        &self,
        groups: impl IntoIterator<Item = impl IntoIterator<Item = &'i str>>,
    ) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for ids in groups {
            let exists = pipe.cmd("EXISTS");
            for id in ids {
                exists.arg(self.record(id));
            }
        }
        pipe
    }

    /// The pruning of stale entries `(bucket, id)` of `index`: the
    /// `PRUNE_INDEX` script once per bucket, with that bucket's index and
    /// records.
    pub(super) fn prune(&self, index: &TaskIndex, stale: &[(TaskBucket, String)]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for bucket in TaskBucket::all() {
            let ids: Vec<&str> = stale
                .iter()
                .filter(|(b, _)| *b == bucket)
                .map(|(_, id)| id.as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let mut keys = vec![self.index(index, bucket)];
            keys.extend(ids.iter().map(|id| self.record(id)));
            pipe.add_command(scripts::evalsha(&PRUNE_INDEX, &keys, &ids));
        }
        pipe
    }

    /// The Redis key of task `id`'s record in the layout before buckets.
    pub(super) fn legacy_record(&self, id: &str) -> String {
        self.raw(self.space.keys().legacy().record(id))
    }

    /// The removal of a legacy record (at `rlegacy`, stored as `bytes`) and
    /// of task `id`'s entries in the legacy indexes it names, for the MULTI
    /// of the WATCH section on `rlegacy`.
    pub(super) fn legacy_remove(&self, rlegacy: &str, id: &str, bytes: &[u8]) -> redis::Pipeline {
        let mut writes = redis::pipe();
        writes.cmd("DEL").arg(rlegacy).ignore();
        for index in TaskIndex::of_stored(bytes) {
            writes
                .cmd("ZREM")
                .arg(self.raw(index.legacy_key(self.space)))
                .arg(id)
                .ignore();
        }
        writes
    }
}
