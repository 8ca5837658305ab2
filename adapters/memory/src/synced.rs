//! [`SyncedStore`] in memory: a synced model is a hash or a string in the
//! one keyspace, under the same key as on Redis, written by the same
//! optimistic protocol (field by field for a hash, `SET … KEEPTTL` for a
//! string). Concurrent updates of one model are combined as on Redis
//! (`rounds.models`, `Keyspace::combined`, `HeldModel`).

use async_trait::async_trait;
use statehouse_domain::{Key, ModelLayout};
use statehouse_ports::{
    HeldModel, ModelFn, ModelStep, ModelUpdated, ModelWrite, RetryPolicy, Role, StoreError, StoredModel,
    SyncedStore, fields_of_a_string, model_result, model_step,
};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::store::{Decision, State, Value};

const LOAD: &str = "load_model";
const WRITE: &str = "write_fields";
const UPDATE: &str = "update_model";
const DELETE: &str = "delete_model";

/// The model under `key`, in its layout; `WrongType` for another type.
fn read_model(
    state: &mut State,
    op: &'static str,
    key: &Key,
    now: Instant,
) -> Result<Option<StoredModel>, StoreError> {
    match state.live(key.as_str(), now).map(|entry| &entry.value) {
        None => Ok(None),
        Some(Value::Hash(hash)) => Ok(Some(StoredModel::hash_from_raw(hash.clone()))),
        Some(Value::Str(bytes)) => Ok(Some(StoredModel::Json(bytes.clone()))),
        Some(_) => Err(StoreError::wrong_type(op, key.as_str())),
    }
}

/// The model under `key` as a combined round reads it; `WrongType` for
/// another type.
fn read_held(state: &mut State, key: &Key, now: Instant) -> Result<HeldModel, StoreError> {
    match state.live(key.as_str(), now).map(|entry| &entry.value) {
        None => Ok(HeldModel::of_string(None)),
        Some(Value::Hash(hash)) => Ok(HeldModel::of_hash(hash.clone())),
        Some(Value::Str(bytes)) => Ok(HeldModel::of_string(Some(bytes.clone()))),
        Some(_) => Err(StoreError::wrong_type(UPDATE, key.as_str())),
    }
}

/// `HSET` + `HDEL` of `set` and `delete` as one step; `WrongType` (nothing
/// written) unless the key holds a hash or nothing.
fn write(
    state: &mut State,
    op: &'static str,
    key: &Key,
    set: &[(String, Vec<u8>)],
    delete: &[String],
    now: Instant,
) -> Result<(), StoreError> {
    let sets: Vec<(&[u8], &[u8])> = set
        .iter()
        .map(|(field, value)| (field.as_bytes(), value.as_slice()))
        .collect();
    let deletes: Vec<&[u8]> = delete.iter().map(String::as_bytes).collect();
    state
        .hset_hdel(key.as_str(), &sets, &deletes, now)
        .map_err(|()| StoreError::wrong_type(op, key.as_str()))
}

#[async_trait]
impl SyncedStore for MemoryStore {
    async fn load_model(&self, key: &Key) -> Result<Option<StoredModel>, StoreError> {
        read_model(&mut self.keyspace.lock(), LOAD, key, Instant::now())
    }

    async fn write_fields(
        &self,
        key: &Key,
        set: &[(String, Vec<u8>)],
        delete: &[String],
    ) -> Result<(), StoreError> {
        self.replicated("write_fields", key.as_str(), async {
            if set.is_empty() && delete.is_empty() {
                return Ok(());
            }
            write(&mut self.keyspace.lock(), WRITE, key, set, delete, Instant::now())
        })
        .await
    }

    async fn update_model<'a>(
        &self,
        key: &Key,
        _expected: ModelLayout,
        policy: RetryPolicy,
        f: &mut ModelFn<'a>,
    ) -> Result<ModelUpdated, StoreError> {
        let Some(mut ticket) = self.rounds.models.join(key.as_str(), policy) else {
            // Combining off: today's path, each update its own round at once.
            return self.update_alone(key, policy, f).await;
        };
        let mut own: ModelStep = None;
        let outcome = {
            let mut apply = model_step((UPDATE, key.as_str()), f, &mut own);
            match ticket.wait(UPDATE, key.as_str(), &mut apply).await {
                Role::Finished(outcome) => outcome,
                Role::Lead(pass) if pass.alone() => {
                    // Nobody to combine with: today's path, as on Redis.
                    drop(apply);
                    let outcome = self.update_alone(key, policy, f).await;
                    pass.finish_as(outcome.as_ref().map(|updated| updated.attempts));
                    return outcome;
                }
                Role::Lead(mut pass) => {
                    let outcome = self
                        .keyspace
                        .combined(
                            UPDATE,
                            key.as_str(),
                            &[key.as_str()],
                            self.section(policy),
                            &mut pass,
                            &mut apply,
                            |state, now| read_held(state, key, now),
                            |state, now, held| {
                                for write in held.writes() {
                                    // The key held a model of the layout
                                    // read, under the lock since: nothing
                                    // is refused.
                                    let _ = commit(state, key, write, now);
                                }
                                Ok(())
                            },
                        )
                        .await;
                    pass.finish(&outcome);
                    outcome
                }
            }
        };
        model_result(UPDATE, key.as_str(), own, outcome)
    }

    async fn delete_model(&self, key: &Key) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        match read_model(&mut state, DELETE, key, now)? {
            // A deletion writes; as on Redis, whose WATCH section then
            // waits for the replicas.
            Some(_) => {
                let removed = state.remove(key.as_str(), now);
                drop(state);
                self.unreplicated(DELETE, key.as_str()).map(|()| removed)
            }
            None => Ok(false),
        }
    }
}

impl MemoryStore {
    /// An update of its own (combining off): one optimistic section.
    async fn update_alone(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut ModelFn<'_>,
    ) -> Result<ModelUpdated, StoreError> {
        let (layout, attempts) = self
            .keyspace
            .optimistic(
                UPDATE,
                key.as_str(),
                &[key.as_str()],
                self.section(policy),
                |state, now| read_model(state, UPDATE, key, now),
                |stored| {
                    let write = f(stored.as_ref()).map_err(|source| StoreError::Aborted {
                        op: UPDATE,
                        key: key.to_string(),
                        source,
                    })?;
                    let now = stored.as_ref().map(StoredModel::layout);
                    Ok(match write {
                        ModelWrite::Keep => Decision::Done(Ok(now)),
                        ModelWrite::Fields { .. } if now == Some(ModelLayout::Json) => {
                            return Err(fields_of_a_string(UPDATE, key.as_str()));
                        }
                        ModelWrite::Fields { set, delete }
                            if set.is_empty() && (delete.is_empty() || now.is_none()) =>
                        {
                            Decision::Done(Ok(now))
                        }
                        ModelWrite::Delete if now.is_none() => Decision::Done(Ok(None)),
                        write => Decision::Commit(write),
                    })
                },
                |state, now, write| commit(state, key, write, now),
            )
            .await?;
        Ok(ModelUpdated {
            layout: layout?,
            attempts,
        })
    }
}

/// The commit of one update's `change`: the layout afterwards (`None` if
/// the model was deleted or its hash emptied).
fn commit(
    state: &mut State,
    key: &Key,
    change: ModelWrite,
    now: Instant,
) -> Result<Option<ModelLayout>, StoreError> {
    match change {
        ModelWrite::Fields { set, delete } => {
            write(state, UPDATE, key, &set, &delete, now)?;
            Ok(state.live(key.as_str(), now).map(|_| ModelLayout::Hash))
        }
        ModelWrite::Json(bytes) => {
            // Keep the TTL, like `SET … KEEPTTL`.
            let expires_at = state.live(key.as_str(), now).and_then(|entry| entry.expires_at);
            state.put(key.as_str(), Value::Str(bytes), expires_at);
            Ok(Some(ModelLayout::Json))
        }
        ModelWrite::Delete => {
            state.remove(key.as_str(), now);
            Ok(None)
        }
        // Decided as `Done` before a commit; here for completeness.
        ModelWrite::Keep => Ok(read_model(state, UPDATE, key, now)?.map(|model| model.layout())),
    }
}
