//! [`TaskRepository`] in memory: records as strings and indexes as sorted
//! sets in the one keyspace, under the same keys as on Redis (each task in
//! its bucket: `statehouse_domain::layout`), written by the same optimistic
//! protocol; a listing merges the buckets through the same `BucketMerge`
//! as the Redis adapter, reading the sorted sets under the lock.

use async_trait::async_trait;
use chrono::Utc;
use statehouse_ports::{
    BucketMerge, BucketRead, HeldTask, KeyStream, LegacyMove, PageRequest, Role, StoreError, TaskBucket,
    TaskChange, TaskId, TaskIndex, TaskPage, TaskRecord, TaskRepository, TaskSpace, TaskStatus, TaskStep,
    decode, encode, legacy_move, task_result, task_step,
};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::listing::Kind;
use crate::store::{Decision, State, Value};

/// The bytes of the record under `key`; `WrongType` if it is no string.
fn read_record(
    state: &mut State,
    op: &'static str,
    key: &str,
    now: Instant,
) -> Result<Option<Vec<u8>>, StoreError> {
    match state.live(key, now).map(|entry| &entry.value) {
        None => Ok(None),
        Some(Value::Str(bytes)) => Ok(Some(bytes.clone())),
        Some(_) => Err(StoreError::wrong_type(op, key)),
    }
}

/// Writes `record` (encoded as `bytes`) and its index entries in its
/// bucket, moving it out of the `old` indexes it no longer belongs to; every
/// key touched expires at `at` unless it lives longer. Checks every key's
/// type first, so a wrong type writes nothing (as the Redis script does).
#[allow(clippy::too_many_arguments)]
fn write_task(
    state: &mut State,
    now: Instant,
    op: &'static str,
    space: &TaskSpace,
    record: &TaskRecord,
    bytes: Vec<u8>,
    old: &[TaskIndex],
    at: Instant,
) -> Result<(), StoreError> {
    let id = record.id.as_str();
    let bucket = TaskBucket::of(id);
    let record_key = space.keys().record(id);
    let new = TaskIndex::of(record);
    let moved: Vec<&TaskIndex> = old.iter().filter(|index| !new.contains(index)).collect();
    if matches!(state.live(&record_key, now).map(|e| &e.value), Some(v) if !matches!(v, Value::Str(_))) {
        return Err(StoreError::wrong_type(op, &record_key));
    }
    for index in new.iter().chain(moved.iter().copied()) {
        let key = index.key(space, bucket);
        state
            .zset(&key, now)
            .map_err(|()| StoreError::wrong_type(op, &key))?;
    }
    state.put_extending(&record_key, Value::Str(bytes), at, now);
    for index in moved {
        let key = index.key(space, bucket);
        state.zrem(&key, id, now);
        state.extend_expiry(&key, at, now);
    }
    // Millisecond timestamps are exact in an f64 (below 2^53).
    #[allow(clippy::cast_precision_loss)]
    let score = record.updated_millis() as f64;
    for index in &new {
        // Types were checked above.
        let _ = state.zadd_extending(&index.key(space, bucket), id, score, at, now);
    }
    Ok(())
}

/// `ZRANGE <index in bucket> <max> -inf BYSCORE REV LIMIT 0 <count>` of a
/// listing's merge. A key of another type reads as empty (a listing
/// reports it on the bucket's first read, below).
fn read_bucket(state: &mut State, key: &str, read: &BucketRead, now: Instant) -> Vec<(i64, String)> {
    let Ok(Some(zset)) = state.zset(key, now) else {
        return Vec::new();
    };
    // Millisecond scores are whole numbers.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    zset.rev_iter()
        .skip_while(|(score, _)| read.max.is_some_and(|max| *score > max as f64))
        .take(read.count)
        .map(|(score, id)| (score as i64, id.to_owned()))
        .collect()
}

/// What a task write commits: the record, its JSON, and the indexes it
/// leaves.
type Write = (TaskRecord, Vec<u8>, Vec<TaskIndex>);

impl MemoryStore {
    /// THE write of one task record, the twin of the Redis adapter's:
    /// watch and read it, let `decide` build the write from its bytes
    /// (given the record's key), commit under the lock if nobody wrote it
    /// meanwhile. Returns the record as stored.
    async fn on_record(
        &self,
        op: &'static str,
        space: &TaskSpace,
        id: &TaskId,
        mut decide: impl FnMut(Option<Vec<u8>>, &str) -> Result<Write, StoreError> + Send,
    ) -> Result<TaskRecord, StoreError> {
        let key = space.keys().record(id.as_str());
        let (written, _) = self
            .keyspace
            .optimistic(
                op,
                &key,
                &[key.as_str()],
                self.section(space.policy()),
                |state, now| read_record(state, op, &key, now),
                |current| decide(current, &key).map(Decision::<_, Result<TaskRecord, StoreError>>::Commit),
                |state, now, (record, encoded, old): Write| {
                    let at = now + space.ttl().as_duration();
                    write_task(state, now, op, space, &record, encoded, &old, at).map(|()| record)
                },
            )
            .await?;
        written
    }

    /// `set_status` and `append_log`: the change applied to the current
    /// record (the domain's rules, through [`TaskChange`]). Concurrent
    /// changes of one task are combined as on Redis (`rounds.tasks`,
    /// `Keyspace::combined`, `HeldTask`); a change with nobody to combine
    /// with runs alone.
    async fn change_task(
        &self,
        space: &TaskSpace,
        id: &TaskId,
        change: TaskChange<'_>,
    ) -> Result<TaskRecord, StoreError> {
        let op = change.op();
        let key = space.keys().record(id.as_str());
        let Some(mut ticket) = self.rounds.tasks.join(&key, space.policy()) else {
            // Combining off: each change its own round at once.
            return self.change_alone(space, id, change).await;
        };
        let mut own: TaskStep = None;
        let outcome = {
            let mut apply = task_step(space, &key, change, &mut own);
            match ticket.wait(op, &key, &mut apply).await {
                Role::Finished(outcome) => outcome,
                Role::Lead(pass) if pass.alone() => {
                    // Nobody to combine with: the change's own round.
                    drop(apply);
                    let outcome = self.change_alone(space, id, change).await;
                    // A batch of one: nobody reads its attempt number.
                    pass.finish_as(outcome.as_ref().map(|_| 1));
                    return outcome;
                }
                Role::Lead(mut pass) => {
                    let outcome = self
                        .keyspace
                        .combined(
                            op,
                            &key,
                            &[key.as_str()],
                            self.section(space.policy()),
                            &mut pass,
                            &mut apply,
                            |state, now| read_record(state, op, &key, now).map(HeldTask::read),
                            |state, now, held| match held {
                                HeldTask::Changed { record, encoded, ttl } => {
                                    let at = now + ttl.as_duration();
                                    // A change keeps the service and the
                                    // user: no index is left.
                                    write_task(state, now, op, space, &record, encoded, &[], at)
                                }
                                // Only a change is ever written.
                                HeldTask::Missing | HeldTask::Stored(_) => Ok(()),
                            },
                        )
                        .await;
                    pass.finish(&outcome);
                    outcome
                }
            }
        };
        task_result(op, &key, own, outcome)
    }

    /// A change of one task in a round of its own (combining off, or
    /// nobody to combine with).
    async fn change_alone(
        &self,
        space: &TaskSpace,
        id: &TaskId,
        change: TaskChange<'_>,
    ) -> Result<TaskRecord, StoreError> {
        let op = change.op();
        self.on_record(op, space, id, |current, key| {
            let (record, encoded) = change.applied_to(space, key, current.as_deref())?;
            Ok((record, encoded, Vec::new()))
        })
        .await
    }

    /// Fails with `WrongType` if a bucket's key of `index` holds another
    /// type, as Redis' `ZRANGE` does; named as the Redis adapter names it
    /// (the index in every bucket: a pipeline's error does not say which).
    fn check_index_types(
        state: &mut State,
        op: &'static str,
        space: &TaskSpace,
        index: &TaskIndex,
        now: Instant,
    ) -> Result<(), StoreError> {
        for bucket in TaskBucket::all() {
            state
                .zset(&index.key(space, bucket), now)
                .map_err(|()| StoreError::wrong_type(op, index.everywhere(space)))?;
        }
        Ok(())
    }
}

#[async_trait]
impl TaskRepository for MemoryStore {
    async fn save(&self, space: &TaskSpace, record: TaskRecord) -> Result<TaskRecord, StoreError> {
        const OP: &str = "save";
        let record = &record;
        self.on_record(OP, space, &record.id, |current, key| {
            let old = current.as_deref().map(TaskIndex::of_stored).unwrap_or_default();
            let mut record = record.clone();
            space.prepare(&mut record, Utc::now());
            let encoded = encode(OP, key, &record)?;
            Ok((record, encoded, old))
        })
        .await
    }

    async fn get(&self, space: &TaskSpace, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        const OP: &str = "get";
        let key = space.keys().record(id.as_str());
        let bytes = read_record(&mut self.keyspace.lock(), OP, &key, Instant::now())?;
        bytes.map(|bytes| decode(OP, &key, &bytes)).transpose()
    }

    async fn set_status<'m>(
        &self,
        space: &TaskSpace,
        id: &TaskId,
        status: TaskStatus,
        message: Option<&'m str>,
    ) -> Result<TaskRecord, StoreError> {
        self.change_task(space, id, TaskChange::Status { status, message })
            .await
    }

    async fn append_log(
        &self,
        space: &TaskSpace,
        id: &TaskId,
        message: &str,
    ) -> Result<TaskRecord, StoreError> {
        self.change_task(space, id, TaskChange::Log(message)).await
    }

    async fn list(
        &self,
        space: &TaskSpace,
        index: &TaskIndex,
        page: &PageRequest,
    ) -> Result<TaskPage, StoreError> {
        const OP: &str = "list";
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        Self::check_index_types(&mut state, OP, space, index, now)?;
        let mut merge = BucketMerge::new(page);
        let mut items = Vec::new();
        let mut positions = Vec::new();
        let mut stale = Vec::new();
        while items.len() <= page.limit() {
            for read in merge.reads() {
                let entries = read_bucket(&mut state, &index.key(space, read.bucket), &read, now);
                merge.take(&read, entries);
            }
            let next = merge.next(page.limit() + 1 - items.len());
            if next.is_empty() && merge.is_done() {
                break;
            }
            for (bucket, score, id) in next {
                let key = space.keys().record(&id);
                let item = match state.live(&key, now).map(|entry| &entry.value) {
                    None => {
                        stale.push((bucket, id));
                        continue;
                    }
                    Some(Value::Str(bytes)) => match decode::<TaskRecord>(OP, &key, bytes) {
                        // An entry left behind by a record that moved elsewhere.
                        Ok(record) if !index.holds(&record) => continue,
                        other => other,
                    },
                    // Not a record (Redis' MGET reads it as nil): skipped, kept.
                    Some(_) => continue,
                };
                items.push(item);
                positions.push((score, id));
            }
        }
        for (bucket, id) in &stale {
            state.zrem(&index.key(space, *bucket), id, now);
        }
        drop(state);
        Ok(TaskPage::cut(items, &positions, page.limit()))
    }

    async fn count(&self, space: &TaskSpace, index: &TaskIndex) -> Result<u64, StoreError> {
        const OP: &str = "count";
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        Self::check_index_types(&mut state, OP, space, index, now)?;
        let mut live = 0;
        for bucket in TaskBucket::all() {
            let members: Vec<String> = match state.zset(&index.key(space, bucket), now) {
                Ok(Some(zset)) => zset.rev_iter().map(|(_, id)| id.to_owned()).collect(),
                _ => continue,
            };
            live += members
                .iter()
                .filter(|id| state.live(&space.keys().record(id), now).is_some())
                .count();
        }
        Ok(u64::try_from(live).unwrap_or(u64::MAX))
    }

    async fn delete(&self, space: &TaskSpace, id: &TaskId) -> Result<bool, StoreError> {
        const OP: &str = "delete";
        let key = space.keys().record(id.as_str());
        let bucket = TaskBucket::of(id.as_str());
        let (existed, _) = self
            .keyspace
            .optimistic(
                OP,
                &key,
                &[key.as_str()],
                self.section(space.policy()),
                |state, now| read_record(state, OP, &key, now),
                |current| {
                    Ok(match current {
                        None => Decision::Done(false),
                        Some(bytes) => Decision::Commit(TaskIndex::of_stored(&bytes)),
                    })
                },
                |state, now, old| {
                    state.remove(&key, now);
                    for index in old {
                        state.zrem(&index.key(space, bucket), id.as_str(), now);
                    }
                    true
                },
            )
            .await?;
        Ok(existed)
    }

    fn legacy_ids(&self, space: &TaskSpace) -> KeyStream {
        let keys = space.keys().clone();
        self.scan_stream(keys.legacy().records(), Kind::Any)
            .filter_map(move |key| {
                keys.legacy()
                    .id_of(&key)
                    .filter(|id| TaskId::new(id.as_str()).is_ok())
            })
    }

    /// One atomic step here (the Redis adapter needs two on a cluster,
    /// with the same outcome).
    async fn migrate_legacy(&self, space: &TaskSpace, id: &TaskId) -> Result<LegacyMove, StoreError> {
        const OP: &str = "migrate_legacy";
        let legacy_key = space.keys().legacy().record(id.as_str());
        let key = space.keys().record(id.as_str());
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        let Some(bytes) = read_record(&mut state, OP, &legacy_key, now)? else {
            return Ok(LegacyMove::Absent);
        };
        let at = state
            .live(&legacy_key, now)
            .and_then(|entry| entry.expires_at)
            .unwrap_or(now + space.ttl().as_duration());
        let current = read_record(&mut state, OP, &key, now)?;
        let outcome = match legacy_move(OP, &legacy_key, &bytes, current.as_deref())? {
            None => LegacyMove::Superseded,
            Some(record) => {
                let old = current.as_deref().map(TaskIndex::of_stored).unwrap_or_default();
                write_task(&mut state, now, OP, space, &record, bytes.clone(), &old, at)?;
                LegacyMove::Moved
            }
        };
        state.remove(&legacy_key, now);
        for index in TaskIndex::of_stored(&bytes) {
            state.zrem(&index.legacy_key(space), id.as_str(), now);
        }
        Ok(outcome)
    }
}
