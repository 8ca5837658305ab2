//! [`TaskRepository`] in memory: records as strings and indexes as sorted
//! sets in the one keyspace, under the same keys as on Redis
//! (`statehouse_domain::layout`), written by the same optimistic protocol.

use async_trait::async_trait;
use chrono::Utc;
use statehouse_ports::{
    PageRequest, StoreError, TaskChange, TaskId, TaskIndex, TaskPage, TaskRecord, TaskRepository, TaskSpace,
    TaskStatus, decode, encode,
};
use tokio::time::Instant;

use crate::MemoryStore;
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

/// Writes `record` (encoded as `bytes`) and its index entries, moving it out
/// of the `old` indexes it no longer belongs to; the TTL goes on every key
/// touched, never shortening a longer one. Checks every key's type first,
/// so a wrong type writes nothing (as the Redis script does).
fn write_task(
    state: &mut State,
    now: Instant,
    op: &'static str,
    space: &TaskSpace,
    record: &TaskRecord,
    bytes: Vec<u8>,
    old: &[TaskIndex],
) -> Result<(), StoreError> {
    let record_key = space.keys().record(record.id.as_str());
    let new = TaskIndex::of(record);
    let moved: Vec<&TaskIndex> = old.iter().filter(|index| !new.contains(index)).collect();
    if matches!(state.live(&record_key, now).map(|e| &e.value), Some(v) if !matches!(v, Value::Str(_))) {
        return Err(StoreError::wrong_type(op, &record_key));
    }
    for index in new.iter().chain(moved.iter().copied()) {
        let key = index.key(space);
        state
            .zset(&key, now)
            .map_err(|()| StoreError::wrong_type(op, &key))?;
    }
    let at = now + space.ttl().as_duration();
    let id = record.id.as_str();
    state.put_extending(&record_key, Value::Str(bytes), at, now);
    for index in moved {
        let key = index.key(space);
        state.zrem(&key, id, now);
        state.extend_expiry(&key, at, now);
    }
    // Millisecond timestamps are exact in an f64 (below 2^53).
    #[allow(clippy::cast_precision_loss)]
    let score = record.updated_millis() as f64;
    for index in &new {
        // Types were checked above.
        let _ = state.zadd_extending(&index.key(space), id, score, at, now);
    }
    Ok(())
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
                space.policy(),
                |state, now| read_record(state, op, &key, now),
                |current| decide(current, &key).map(Decision::<_, Result<TaskRecord, StoreError>>::Commit),
                |state, now, (record, encoded, old): Write| {
                    write_task(state, now, op, space, &record, encoded, &old).map(|()| record)
                },
            )
            .await?;
        written
    }

    /// `set_status` and `append_log`: the change applied to the current
    /// record (the domain's rules, through [`TaskChange`]).
    async fn change_task(
        &self,
        space: &TaskSpace,
        id: &TaskId,
        change: TaskChange<'_>,
    ) -> Result<TaskRecord, StoreError> {
        let op = change.op();
        self.on_record(op, space, id, |current, key| {
            let bytes = current.ok_or_else(|| StoreError::NotFound {
                op,
                key: key.to_owned(),
            })?;
            let mut record: TaskRecord = decode(op, key, &bytes)?;
            change.apply(space, key, &mut record, Utc::now())?;
            let encoded = encode(op, key, &record)?;
            Ok((record, encoded, Vec::new()))
        })
        .await
    }
}

#[async_trait]
impl TaskRepository for MemoryStore {
    async fn save(&self, space: &TaskSpace, record: &TaskRecord) -> Result<TaskRecord, StoreError> {
        const OP: &str = "save";
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
        let index_key = index.key(space);
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        let Some(zset) = state
            .zset(&index_key, now)
            .map_err(|()| StoreError::wrong_type(OP, &index_key))?
        else {
            return Ok(TaskPage {
                items: Vec::new(),
                next: None,
            });
        };
        // Millisecond scores are whole numbers.
        #[allow(clippy::cast_possible_truncation)]
        let candidates: Vec<(i64, String)> = zset
            .rev_iter()
            .map(|(score, id)| (score as i64, id.to_owned()))
            .filter(|(score, id)| page.cursor().is_none_or(|cursor| cursor.precedes(*score, id)))
            .collect();
        let mut items = Vec::new();
        let mut positions = Vec::new();
        let mut stale = Vec::new();
        for (score, id) in candidates {
            if items.len() > page.limit() {
                break;
            }
            let key = space.keys().record(&id);
            let item = match state.live(&key, now).map(|entry| &entry.value) {
                None => {
                    stale.push(id);
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
        for id in &stale {
            state.zrem(&index_key, id, now);
        }
        drop(state);
        Ok(TaskPage::cut(items, &positions, page.limit()))
    }

    async fn count(&self, space: &TaskSpace, index: &TaskIndex) -> Result<u64, StoreError> {
        let index_key = index.key(space);
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        let members: Vec<String> = match state
            .zset(&index_key, now)
            .map_err(|()| StoreError::wrong_type("count", &index_key))?
        {
            None => return Ok(0),
            Some(zset) => zset.rev_iter().map(|(_, id)| id.to_owned()).collect(),
        };
        let live = members
            .iter()
            .filter(|id| state.live(&space.keys().record(id), now).is_some())
            .count();
        Ok(u64::try_from(live).unwrap_or(u64::MAX))
    }

    async fn delete(&self, space: &TaskSpace, id: &TaskId) -> Result<bool, StoreError> {
        const OP: &str = "delete";
        let key = space.keys().record(id.as_str());
        let (existed, _) = self
            .keyspace
            .optimistic(
                OP,
                &key,
                &[key.as_str()],
                space.policy(),
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
                        state.zrem(&index.key(space), id.as_str(), now);
                    }
                    true
                },
            )
            .await?;
        Ok(existed)
    }
}
