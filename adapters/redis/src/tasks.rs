//! [`TaskRepository`] on Redis.
//!
//! - A record is a string (JSON) at `{ns}:task:<id>`; its indexes are sorted
//!   sets `{ns}:by-service:<name>` and `{ns}:by-user:<id>` of task ids scored
//!   by update time in ms (`statehouse_domain::layout`).
//! - Every write is one WATCH section on the record (`txn::optimistic`)
//!   whose MULTI runs the `TASK_WRITE` script: record, index moves and TTLs
//!   in one atomic step, all under one hash tag.
//! - Reads (`get`, `list`, `count`) use the read connection (a replica when
//!   a read URL is configured); pruning stale index entries goes to the
//!   write endpoint, through a script that re-checks each record there.

use std::borrow::Cow;

use async_trait::async_trait;
use chrono::Utc;
use redis::Value;
use statehouse_ports::{
    PageRequest, StoreError, TaskChange, TaskId, TaskIndex, TaskPage, TaskRecord, TaskRepository, TaskSpace,
    TaskStatus, decode, encode,
};

use crate::RedisStore;
use crate::scripts::{self, PRUNE_INDEX, TASK_WRITE};
use crate::txn::{self, Decision};

/// Index entries read per `ZRANGE` of a listing, beyond the page itself.
const LIST_SLACK: usize = 8;
/// Index entries checked per round trip of a count.
const COUNT_CHUNK: isize = 1000;

impl RedisStore {
    /// The Redis key of a layout key, moving `key` when there is no prefix
    /// rather than copying it.
    fn raw_owned(&self, key: String) -> String {
        if let Cow::Owned(prefixed) = self.keys.raw(&key) {
            return prefixed;
        }
        key
    }

    /// The pipeline of one task write: the `TASK_WRITE` script for `record`
    /// (encoded as `bytes`, stored at the Redis key `rkey`), moving it out of
    /// the `old` indexes it left.
    fn task_write(
        &self,
        space: &TaskSpace,
        rkey: &str,
        record: &TaskRecord,
        bytes: &[u8],
        old: &[TaskIndex],
    ) -> redis::Pipeline {
        let new = TaskIndex::of(record);
        let mut keys = Vec::with_capacity(1 + new.len() + old.len());
        keys.push(rkey.to_owned());
        keys.extend(new.iter().map(|index| self.raw_owned(index.key(space))));
        keys.extend(
            old.iter()
                .filter(|index| !new.contains(index))
                .map(|index| self.raw_owned(index.key(space))),
        );
        let mut pipe = redis::pipe();
        pipe.add_command(scripts::evalsha(
            &TASK_WRITE,
            &keys,
            (
                bytes,
                space.ttl().as_millis(),
                record.updated_millis(),
                record.id.as_str(),
                new.len(),
            ),
        ))
        .ignore();
        pipe
    }

    /// THE read-modify-write of one task record: WATCH and GET it, let
    /// `decide` choose from its bytes (given the record's key and its Redis
    /// key), commit in MULTI/EXEC, retried under the space's policy.
    async fn on_record<T: Send>(
        &self,
        op: &'static str,
        space: &TaskSpace,
        id: &TaskId,
        mut decide: impl FnMut(Option<Vec<u8>>, &str, &str) -> Result<Decision<T>, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let key = space.keys().record(id.as_str());
        let rkey = self.keys.raw(&key);
        let mut get = redis::cmd("GET");
        get.arg(rkey.as_ref());
        let mut decide = |(current,): (Option<Vec<u8>>,)| decide(current, &key, &rkey);
        let committed = txn::optimistic(
            &self.conns,
            op,
            &key,
            &[rkey.as_ref()],
            &[get],
            space.policy(),
            &mut decide,
        )
        .await?;
        Ok(committed.value)
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
        self.on_record(op, space, id, |current, key, rkey| {
            let bytes = current.ok_or_else(|| StoreError::NotFound {
                op,
                key: key.to_owned(),
            })?;
            let mut record: TaskRecord = decode(op, key, &bytes)?;
            change.apply(space, key, &mut record, Utc::now())?;
            let encoded = encode(op, key, &record)?;
            // A change keeps the service and the user: no index is left.
            Ok(Decision::Commit(
                self.task_write(space, rkey, &record, &encoded, &[]),
                record,
            ))
        })
        .await
    }

    /// Removes index entries whose record is gone, on the write endpoint.
    /// Best effort: listings skip such entries anyway.
    async fn prune(&self, space: &TaskSpace, index_key: &str, stale: &[String]) {
        if stale.is_empty() {
            return;
        }
        let mut keys = vec![self.keys.raw(index_key).into_owned()];
        keys.extend(
            stale
                .iter()
                .map(|id| self.keys.raw(&space.keys().record(id)).into_owned()),
        );
        let cmd = scripts::evalsha(&PRUNE_INDEX, &keys, stale);
        let pruned: Result<u64, _> = scripts::run_shared(&self.conns, "prune", index_key, |mut conn| {
            let cmd = cmd.clone();
            async move { cmd.query_async(&mut conn).await }
        })
        .await;
        if let Err(error) = pruned {
            tracing::debug!(index = index_key, %error, "pruning stale index entries failed");
        }
    }
}

#[async_trait]
impl TaskRepository for RedisStore {
    async fn save(&self, space: &TaskSpace, record: &TaskRecord) -> Result<TaskRecord, StoreError> {
        const OP: &str = "save";
        self.on_record(OP, space, &record.id, |current, key, rkey| {
            let old = current.as_deref().map(TaskIndex::of_stored).unwrap_or_default();
            let mut record = record.clone();
            space.prepare(&mut record, Utc::now());
            let encoded = encode(OP, key, &record)?;
            Ok(Decision::Commit(
                self.task_write(space, rkey, &record, &encoded, &old),
                record,
            ))
        })
        .await
    }

    async fn get(&self, space: &TaskSpace, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        const OP: &str = "get";
        let key = space.keys().record(id.as_str());
        let mut conn = self.conns.reader();
        let bytes: Option<Vec<u8>> = self
            .conns
            .run(
                OP,
                &key,
                redis::cmd("GET")
                    .arg(self.keys.raw(&key).as_ref())
                    .query_async(&mut conn),
            )
            .await?;
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
        let rindex = self.keys.raw(&index_key);
        let max = page
            .cursor()
            .map_or_else(|| "+inf".to_owned(), |cursor| cursor.updated_millis.to_string());
        let batch = page.limit() + 1 + LIST_SLACK;
        let mut conn = self.conns.reader();
        let mut items = Vec::new();
        let mut positions = Vec::new();
        let mut stale = Vec::new();
        let mut offset = 0;
        while items.len() <= page.limit() {
            // Newest first; among equal scores Redis orders members
            // descending, as the cursor expects.
            let entries: Vec<(String, f64)> = self
                .conns
                .run(
                    OP,
                    &index_key,
                    redis::cmd("ZRANGE")
                        .arg(rindex.as_ref())
                        .arg(&max)
                        .arg("-inf")
                        .arg("BYSCORE")
                        .arg("REV")
                        .arg("LIMIT")
                        .arg(offset)
                        .arg(batch)
                        .arg("WITHSCORES")
                        .query_async(&mut conn),
                )
                .await?;
            let fetched = entries.len();
            offset += fetched;
            // Millisecond scores are whole numbers.
            #[allow(clippy::cast_possible_truncation)]
            let candidates: Vec<(i64, String)> = entries
                .into_iter()
                .map(|(id, score)| (score as i64, id))
                .filter(|(score, id)| page.cursor().is_none_or(|cursor| cursor.precedes(*score, id)))
                .collect();
            if !candidates.is_empty() {
                let record_keys: Vec<String> =
                    candidates.iter().map(|(_, id)| space.keys().record(id)).collect();
                let mut mget = redis::cmd("MGET");
                for key in &record_keys {
                    mget.arg(self.keys.raw(key).as_ref());
                }
                let values: Vec<Value> = self
                    .conns
                    .run(OP, &index_key, mget.query_async(&mut conn))
                    .await?;
                for ((position, key), value) in candidates.into_iter().zip(&record_keys).zip(values) {
                    if items.len() > page.limit() {
                        break;
                    }
                    let item = match value {
                        Value::Nil => {
                            stale.push(position.1);
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
                    positions.push(position);
                }
            }
            if fetched < batch {
                break;
            }
        }
        self.prune(space, &index_key, &stale).await;
        Ok(TaskPage::cut(items, &positions, page.limit()))
    }

    async fn count(&self, space: &TaskSpace, index: &TaskIndex) -> Result<u64, StoreError> {
        const OP: &str = "count";
        let index_key = index.key(space);
        let rindex = self.keys.raw(&index_key);
        let mut conn = self.conns.reader();
        let mut live = 0;
        let mut start: isize = 0;
        loop {
            let ids: Vec<String> = self
                .conns
                .run(
                    OP,
                    &index_key,
                    redis::cmd("ZRANGE")
                        .arg(rindex.as_ref())
                        .arg(start)
                        .arg(start + COUNT_CHUNK - 1)
                        .query_async(&mut conn),
                )
                .await?;
            if ids.is_empty() {
                break;
            }
            let mut exists = redis::cmd("EXISTS");
            for id in &ids {
                exists.arg(self.keys.raw(&space.keys().record(id)).as_ref());
            }
            let found: u64 = self
                .conns
                .run(OP, &index_key, exists.query_async(&mut conn))
                .await?;
            live += found;
            if ids.len() < COUNT_CHUNK.unsigned_abs() {
                break;
            }
            start += COUNT_CHUNK;
        }
        Ok(live)
    }

    async fn delete(&self, space: &TaskSpace, id: &TaskId) -> Result<bool, StoreError> {
        self.on_record("delete", space, id, |current, _, rkey| {
            let Some(bytes) = current else {
                return Ok(Decision::Done(false));
            };
            let mut writes = redis::pipe();
            writes.cmd("DEL").arg(rkey).ignore();
            for index in TaskIndex::of_stored(&bytes) {
                writes
                    .cmd("ZREM")
                    .arg(self.keys.raw(&index.key(space)).as_ref())
                    .arg(id.as_str())
                    .ignore();
            }
            Ok(Decision::Commit(writes, true))
        })
        .await
    }
}
