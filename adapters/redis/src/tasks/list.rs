//! Listing and counting a task index: every bucket's sorted set, merged.
//!
//! A page is two round trips as a rule: one pipeline of a `ZRANGE … BYSCORE
//! REV LIMIT` per bucket (what the ports' `BucketMerge` asks for), then one
//! pipeline of an `MGET` per bucket of the entries it hands out (each `MGET`
//! names keys of one bucket: one slot). More follow only when a bucket's
//! share of the page ran out or entries were stale.

use redis::Value;
use statehouse_ports::{
    BucketMerge, BucketRead, PageRequest, StoreError, TaskBucket, TaskIndex, TaskPage, TaskRecord, TaskSpace,
    decode,
};

use crate::RedisStore;
use crate::conn::Shared;
use crate::scripts;

/// Index entries checked per bucket and round trip of a count.
const COUNT_CHUNK: usize = 1000;

/// `(score, id)` of an index entry as Redis answers it (`WITHSCORES`).
type Entry = (String, f64);

impl RedisStore {
    /// The answers to `reads` of `index`, in one pipeline.
    async fn read_buckets(
        &self,
        conn: &mut Shared,
        label: &str,
        space: &TaskSpace,
        index: &TaskIndex,
        reads: &[BucketRead],
    ) -> Result<Vec<Vec<(i64, String)>>, StoreError> {
        let pipe = self.task_commands(space).bucket_reads(index, reads);
        let answers: Vec<Vec<Entry>> = self.conns.run("list", label, pipe.query_async(conn)).await?;
        // Millisecond scores are whole numbers.
        #[allow(clippy::cast_possible_truncation)]
        let answers = answers
            .into_iter()
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|(id, score)| (score as i64, id))
                    .collect()
            })
            .collect();
        Ok(answers)
    }

    /// `list`: one page of `index`, its buckets merged newest first.
    pub(super) async fn list_tasks(
        &self,
        space: &TaskSpace,
        index: &TaskIndex,
        page: &PageRequest,
    ) -> Result<TaskPage, StoreError> {
        const OP: &str = "list";
        let label = index.everywhere(space);
        let mut merge = BucketMerge::new(page);
        let mut conn = self.conns.reader();
        let mut items = Vec::new();
        let mut positions = Vec::new();
        let mut stale: Vec<(TaskBucket, String)> = Vec::new();
        while items.len() <= page.limit() {
            let want = page.limit() + 1 - items.len();
            let mut candidates = Vec::with_capacity(want);
            loop {
                candidates.extend(merge.next(want - candidates.len()));
                if candidates.len() >= want || merge.is_done() {
                    break;
                }
                let reads = merge.reads();
                let answers = self.read_buckets(&mut conn, &label, space, index, &reads).await?;
                for (read, entries) in reads.iter().zip(answers) {
                    merge.take(read, entries);
                }
            }
            if candidates.is_empty() {
                break;
            }
            // One MGET per bucket, in the order buckets first appear.
            let mut groups: Vec<(TaskBucket, Vec<usize>)> = Vec::new();
            for (at, (bucket, _, _)) in candidates.iter().enumerate() {
                match groups.iter_mut().find(|(b, _)| b == bucket) {
                    Some((_, members)) => members.push(at),
                    None => groups.push((*bucket, vec![at])),
                }
            }
            let record_keys: Vec<String> = candidates
                .iter()
                .map(|(_, _, id)| space.keys().record(id))
                .collect();
            let pipe = self.task_commands(space).record_reads(
                groups
                    .iter()
                    .map(|(_, members)| members.iter().map(|&at| candidates[at].2.as_str())),
            );
            let answers: Vec<Vec<Value>> = self.conns.run(OP, &label, pipe.query_async(&mut conn)).await?;
            let mut values: Vec<Value> = vec![Value::Nil; candidates.len()];
            for ((_, members), answer) in groups.iter().zip(answers) {
                for (&at, value) in members.iter().zip(answer) {
                    values[at] = value;
                }
            }
            for (((bucket, score, id), key), value) in candidates.into_iter().zip(&record_keys).zip(values) {
                let item = match value {
                    Value::Nil => {
                        stale.push((bucket, id));
                        continue;
                    }
                    Value::BulkString(bytes) => match decode::<TaskRecord>(OP, key, &bytes) {
                        // An entry left behind by a record that moved elsewhere.
                        Ok(record) if !index.holds(&record) => continue,
                        other => other,
                    },
                    _ => Err(StoreError::Operation {
                        op: OP,
                        key: key.clone(),
                        source: "MGET answered something other than a string or nil".into(),
                    }),
                };
                items.push(item);
                positions.push((score, id));
            }
            if merge.is_done() {
                break;
            }
        }
        self.prune(space, index, &stale).await;
        Ok(TaskPage::cut(items, &positions, page.limit()))
    }

    /// `count`: the live entries of `index` in every bucket, checked
    /// [`COUNT_CHUNK`] per bucket and round trip.
    pub(super) async fn count_tasks(&self, space: &TaskSpace, index: &TaskIndex) -> Result<u64, StoreError> {
        const OP: &str = "count";
        let label = index.everywhere(space);
        let commands = self.task_commands(space);
        let mut conn = self.conns.reader();
        let mut live = 0;
        let mut pending: Vec<(TaskBucket, usize)> = TaskBucket::all().map(|bucket| (bucket, 0)).collect();
        while !pending.is_empty() {
            let ranges = commands.count_ranges(index, &pending, COUNT_CHUNK);
            let chunks: Vec<Vec<String>> = self.conns.run(OP, &label, ranges.query_async(&mut conn)).await?;
            let next = pending
                .iter()
                .zip(&chunks)
                .filter(|(_, ids)| ids.len() == COUNT_CHUNK)
                .map(|((bucket, start), _)| (*bucket, start + COUNT_CHUNK))
                .collect();
            let groups: Vec<&Vec<String>> = chunks.iter().filter(|ids| !ids.is_empty()).collect();
            if !groups.is_empty() {
                let exists = commands.exists(groups.iter().map(|ids| ids.iter().map(String::as_str)));
                let found: Vec<u64> = self.conns.run(OP, &label, exists.query_async(&mut conn)).await?;
                live += found.iter().sum::<u64>();
            }
            pending = next;
        }
        Ok(live)
    }

    /// Removes index entries whose record is gone, on the write endpoint:
    /// the `PRUNE_INDEX` script once per bucket (its keys in that bucket).
    /// Best effort: listings skip such entries anyway.
    async fn prune(&self, space: &TaskSpace, index: &TaskIndex, stale: &[(TaskBucket, String)]) {
        if stale.is_empty() {
            return;
        }
        let label = index.everywhere(space);
        let pipe = self.task_commands(space).prune(index, stale);
        let pruned: Result<Vec<u64>, _> = scripts::run_shared(&self.conns, "prune", &label, |mut conn| {
            let pipe = pipe.clone();
            async move { pipe.query_async(&mut conn).await }
        })
        .await;
        if let Err(error) = pruned {
            tracing::debug!(index = label, %error, "pruning stale index entries failed");
        }
    }
}
