//! [`TaskRepository`] on Redis.
//!
//! - A task lives in its bucket (`TaskBucket`, from its id): its record is a
//!   string (JSON) at `{ns:bN}:task:<id>`, its index entries are in the
//!   sorted sets `{ns:bN}:by-service:<name>` and `{ns:bN}:by-user:<id>` of
//!   that bucket, scored by update time in ms (`statehouse_domain::layout`).
//! - Every write is one WATCH section on the record (`txn::optimistic`)
//!   whose MULTI runs the `TASK_WRITE` script: record, index moves and TTLs
//!   in one atomic step, every key under the bucket's hash tag (one slot).
//!   Concurrent changes of one task from one store share a section
//!   (`txn::combined_as`, the `Combiner` of `rounds.tasks`).
//! - Reads (`get`, `list`, `count`) use the read connection (a replica when
//!   a read URL is configured); a listing merges the buckets' indexes
//!   (`list.rs`, through the ports' `BucketMerge`); pruning stale index
//!   entries goes to the write endpoint, through a script per bucket that
//!   re-checks each record there.
//! - `commands.rs` builds every command (no I/O; `tests.rs` checks their
//!   slots); `legacy.rs`: the migration from the layout before buckets.

use async_trait::async_trait;
use chrono::Utc;
use statehouse_ports::{
    HeldTask, KeyStream, LegacyMove, PageRequest, Role, StoreError, TaskChange, TaskId, TaskIndex, TaskPage,
    TaskRecord, TaskRepository, TaskSpace, TaskStatus, TaskStep, decode, encode, task_result, task_step,
};

use crate::RedisStore;
use crate::txn::{self, Decision};

mod commands;
mod legacy;
mod list;

use commands::TaskCommands;

impl RedisStore {
    /// The commands of `space` under this store's prefix.
    fn task_commands<'a>(&'a self, space: &'a TaskSpace) -> TaskCommands<'a> {
        TaskCommands::new(&self.keys, space)
    }

    /// THE read-modify-write of one task record, `key` (`TaskKeys::record`,
    /// which the caller built once): WATCH and GET it, let `decide` choose
    /// from its bytes (given the record's key and its Redis key), commit in
    /// MULTI/EXEC, retried under the space's policy.
    async fn on_record<T: Send>(
        &self,
        op: &'static str,
        space: &TaskSpace,
        key: &str,
        mut decide: impl FnMut(Option<Vec<u8>>, &str, &str) -> Result<Decision<T>, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let rkey = self.keys.raw(key);
        let mut get = redis::cmd("GET");
        get.arg(rkey.as_ref());
        let mut decide = |(current,): (Option<Vec<u8>>,)| decide(current, key, &rkey);
        let committed = txn::optimistic(
            &self.conns,
            op,
            key,
            &[rkey.as_ref()],
            &[get],
            space.policy(),
            &mut decide,
        )
        .await?;
        Ok(committed.value)
    }

    /// `set_status` and `append_log`: the change applied to the current
    /// record (the domain's rules, through [`TaskChange`]). Concurrent
    /// changes of one task are combined (`rounds.tasks`, `HeldTask`): one
    /// WATCH, GET and `TASK_WRITE` per round, each caller's change applied
    /// in its own task; a change with nobody to combine with runs alone.
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
            return self.change_alone(space, &key, change).await;
        };
        let mut own: TaskStep = None;
        let outcome = {
            let mut apply = task_step(space, &key, change, &mut own);
            match ticket.wait(op, &key, &mut apply).await {
                Role::Finished(outcome) => outcome,
                Role::Lead(pass) if pass.alone() => {
                    // Nobody to combine with: the change's own round.
                    drop(apply);
                    let outcome = self.change_alone(space, &key, change).await;
                    // A batch of one: nobody reads its attempt number.
                    pass.finish_as(outcome.as_ref().map(|_| 1));
                    return outcome;
                }
                Role::Lead(mut pass) => {
                    let rkey = self.keys.raw(&key);
                    let mut get = redis::cmd("GET");
                    get.arg(rkey.as_ref());
                    let commands = self.task_commands(space);
                    let writes = |held| match held {
                        // A change keeps the service and the user: no
                        // index is left.
                        HeldTask::Changed { record, encoded, ttl } => {
                            commands.write(&rkey, &record, &encoded, &[], ttl.as_millis())
                        }
                        // Only a change is ever written.
                        HeldTask::Missing | HeldTask::Stored(_) => redis::pipe(),
                    };
                    let section = (op, key.as_str(), &[rkey.as_ref()][..], &[get][..]);
                    let outcome = txn::combined_as(
                        &self.conns,
                        section,
                        space.policy(),
                        &mut pass,
                        &mut apply,
                        HeldTask::read,
                        writes,
                    )
                    .await;
                    pass.finish(&outcome);
                    outcome
                }
            }
        };
        task_result(op, &key, own, outcome)
    }

    /// A change of the task whose record is `key`, in a round of its own
    /// (combining off, or nobody to combine with).
    async fn change_alone(
        &self,
        space: &TaskSpace,
        key: &str,
        change: TaskChange<'_>,
    ) -> Result<TaskRecord, StoreError> {
        let op = change.op();
        self.on_record(op, space, key, |current, key, rkey| {
            let (record, encoded) = change.applied_to(space, key, current.as_deref())?;
            // A change keeps the service and the user: no index is left.
            Ok(Decision::Commit(
                self.task_commands(space)
                    .write(rkey, &record, &encoded, &[], space.ttl().as_millis()),
                record,
            ))
        })
        .await
    }
}

#[async_trait]
impl TaskRepository for RedisStore {
    async fn save(&self, space: &TaskSpace, mut record: TaskRecord) -> Result<TaskRecord, StoreError> {
        const OP: &str = "save";
        // Each attempt stamps the record in place: the one stored is the
        // last attempt's, which is the one handed back.
        let key = space.keys().record(record.id.as_str());
        self.on_record(OP, space, &key, |current, key, rkey| {
            let old = current.as_deref().map(TaskIndex::of_stored).unwrap_or_default();
            space.prepare(&mut record, Utc::now());
            let encoded = encode(OP, key, &record)?;
            Ok(Decision::Commit(
                self.task_commands(space)
                    .write(rkey, &record, &encoded, &old, space.ttl().as_millis()),
                (),
            ))
        })
        .await?;
        Ok(record)
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
                conn.query(redis::cmd("GET").arg(self.keys.raw(&key).as_ref())),
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
        self.list_tasks(space, index, page).await
    }

    async fn count(&self, space: &TaskSpace, index: &TaskIndex) -> Result<u64, StoreError> {
        self.count_tasks(space, index).await
    }

    async fn delete(&self, space: &TaskSpace, id: &TaskId) -> Result<bool, StoreError> {
        let key = space.keys().record(id.as_str());
        self.on_record("delete", space, &key, |current, _, rkey| {
            Ok(match current {
                None => Decision::Done(false),
                Some(bytes) => {
                    Decision::Commit(self.task_commands(space).delete(rkey, id.as_str(), &bytes), true)
                }
            })
        })
        .await
    }

    fn legacy_ids(&self, space: &TaskSpace) -> KeyStream {
        self.legacy_task_ids(space)
    }

    async fn migrate_legacy(&self, space: &TaskSpace, id: &TaskId) -> Result<LegacyMove, StoreError> {
        self.migrate_legacy_task(space, id).await
    }
}

#[cfg(test)]
mod tests;
