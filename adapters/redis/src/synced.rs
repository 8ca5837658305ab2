//! [`SyncedStore`] on Redis: a synced model is the key `{TypeName}:{id}`
//! (prefixed like every document key) holding a hash of fields or a JSON
//! string.
//!
//! - `load_model`: `MULTI; TYPE; HGETALL; GET; EXEC` in one round trip
//!   (the read of the other layout answers `WRONGTYPE`, ignored): the
//!   layout is told by `TYPE`, the three see one state of the key.
//! - `write_fields`: `MULTI; HSET …; HDEL …; EXEC` on the shared
//!   connection: field by field, never a whole-hash overwrite.
//! - `update_model`: the WATCH loop (`txn::optimistic`): `WATCH; HGETALL`
//!   (or `GET` for the JSON layout), then `MULTI; HSET changed; HDEL
//!   removed; EXEC` (or `SET … KEEPTTL`). The read is the expected
//!   layout's; if the key holds the other one (the read answers
//!   `WRONGTYPE`), `load_model` tells which and the update runs again with
//!   that read. Concurrent updates of one model from this store are
//!   combined (`rounds.models`, `txn::combined_as`): the round's leader
//!   reads once (switching layouts the same way, for the whole batch), each
//!   caller's closure sees the model as the previous one left it
//!   (`HeldModel`), and one `MULTI … EXEC` writes what they changed
//!   (`HeldModel::writes`: `DEL` if a caller deleted the model, then the
//!   fields set and deleted, or the document).
//! - `delete_model`: the WATCH loop on `TYPE`, then `DEL` (a key of another
//!   type is `WrongType` and stays).

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::{RedisResult, Value};
use statehouse_domain::{Key, ModelLayout};
use statehouse_ports::{
    HeldModel, ModelFn, ModelStep, ModelUpdated, ModelWrite, Pass, RetryPolicy, Role, StoreError,
    StoredModel, SyncedStore, fields_of_a_string, model_result, model_step,
};

use crate::RedisStore;
use crate::txn::{self, Decision};

const LOAD: &str = "load_model";
const WRITE: &str = "write_fields";
const UPDATE: &str = "update_model";
const DELETE: &str = "delete_model";

/// How often an update looks again when the key holds another layout than
/// the one it read (another service rewrote the model in between).
const LAYOUT_SWITCHES: u32 = 3;

#[async_trait]
impl SyncedStore for RedisStore {
    async fn load_model(&self, key: &Key) -> Result<Option<StoredModel>, StoreError> {
        let rkey = self.keys.key(key);
        let mut pipe = redis::pipe();
        pipe.atomic().ignore_errors();
        pipe.cmd("TYPE").arg(rkey.as_ref());
        pipe.cmd("HGETALL").arg(rkey.as_ref());
        pipe.cmd("GET").arg(rkey.as_ref());
        let mut conn = self.conns.shared();
        let replies: Vec<RedisResult<Value>> = self
            .conns
            .run(LOAD, key.as_str(), pipe.query_async(&mut conn))
            .await?;
        let [kind, hash, string]: [RedisResult<Value>; 3] =
            replies.try_into().map_err(|replies: Vec<_>| {
                unexpected(
                    LOAD,
                    key,
                    format!("{} replies to TYPE, HGETALL and GET", replies.len()),
                )
            })?;
        let parsed = |reply: RedisResult<Value>| {
            reply.map_err(|error| self.conns.map_shared(LOAD, key.as_str(), error))
        };
        let kind: String = redis::from_redis_value(parsed(kind)?)
            .map_err(|error| unexpected(LOAD, key, format!("TYPE answered {error}")))?;
        match kind.as_str() {
            "none" => Ok(None),
            "hash" => {
                let fields: BTreeMap<Vec<u8>, Vec<u8>> = redis::from_redis_value(parsed(hash)?)
                    .map_err(|error| unexpected(LOAD, key, format!("HGETALL answered {error}")))?;
                Ok(Some(StoredModel::hash_from_raw(fields)))
            }
            "string" => {
                let bytes: Vec<u8> = redis::from_redis_value(parsed(string)?)
                    .map_err(|error| unexpected(LOAD, key, format!("GET answered {error}")))?;
                Ok(Some(StoredModel::Json(bytes)))
            }
            _ => Err(StoreError::wrong_type(LOAD, key.as_str())),
        }
    }

    async fn write_fields(
        &self,
        key: &Key,
        set: &[(String, Vec<u8>)],
        delete: &[String],
    ) -> Result<(), StoreError> {
        let Some(mut pipe) = field_writes(&self.keys.key(key), set, delete) else {
            return Ok(());
        };
        pipe.atomic();
        let (mut conn, acks) = self.conns.writer();
        self.conns
            .run_write(acks, WRITE, key.as_str(), pipe.exec_async(&mut conn))
            .await
    }

    async fn update_model<'a>(
        &self,
        key: &Key,
        expected: ModelLayout,
        policy: RetryPolicy,
        f: &mut ModelFn<'a>,
    ) -> Result<ModelUpdated, StoreError> {
        let (mut layout, mut switches) = (expected, 0);
        let Some(mut ticket) = self.rounds.models.join(key.as_str(), policy) else {
            // Combining off: today's path, each update its own round at once.
            return self.update_alone(key, layout, policy, f).await;
        };
        let mut own: ModelStep = None;
        let outcome = {
            let mut apply = model_step((UPDATE, key.as_str()), f, &mut own);
            match ticket.wait(UPDATE, key.as_str(), &mut apply).await {
                Role::Finished(outcome) => outcome,
                Role::Lead(pass) if pass.alone() => {
                    // Nobody to combine with: today's path, without
                    // handing the model through the batch.
                    drop(apply);
                    let outcome = self.update_alone(key, layout, policy, f).await;
                    pass.finish_as(outcome.as_ref().map(|updated| updated.attempts));
                    return outcome;
                }
                Role::Lead(mut pass) => {
                    // The whole batch's round, run again in the other
                    // layout as one update would be.
                    let outcome = loop {
                        let outcome = self
                            .lead_update_model(key, layout, policy, &mut pass, &mut apply)
                            .await;
                        match self.switch_layout(key, layout, &outcome, &mut switches).await {
                            Ok(Some(other)) => layout = other,
                            Ok(None) => break outcome,
                            Err(error) => break Err(error),
                        }
                    };
                    pass.finish(&outcome);
                    outcome
                }
            }
        };
        model_result(UPDATE, key.as_str(), own, outcome)
    }

    async fn delete_model(&self, key: &Key) -> Result<bool, StoreError> {
        let rkey = self.keys.key(key);
        let mut read_type = redis::cmd("TYPE");
        read_type.arg(rkey.as_ref());
        // The WATCH loop, so that a key that turns into another type between
        // the check and the DEL is not deleted.
        let mut decide = |(kind,): (String,)| -> Result<Decision<bool>, StoreError> {
            match kind.as_str() {
                "none" => Ok(Decision::Done(false)),
                "hash" | "string" => {
                    let mut writes = redis::pipe();
                    writes.cmd("DEL").arg(rkey.as_ref()).ignore();
                    Ok(Decision::Commit(writes, true))
                }
                _ => Err(StoreError::wrong_type(DELETE, key.as_str())),
            }
        };
        let committed = txn::optimistic(
            &self.conns,
            DELETE,
            key.as_str(),
            &[rkey.as_ref()],
            &[read_type],
            RetryPolicy::default(),
            &mut decide,
        )
        .await?;
        Ok(committed.value)
    }
}

impl RedisStore {
    /// After an update's run reading `layout` that ended in `outcome`: if
    /// its read met a key of another type (`WrongType`: the other layout,
    /// or no model at all), the layout to run again with, as `load_model`
    /// tells (another service may rewrite the model in between: at most
    /// [`LAYOUT_SWITCHES`] times, counted in `switches`); `None`: the
    /// outcome stands.
    async fn switch_layout<T>(
        &self,
        key: &Key,
        layout: ModelLayout,
        outcome: &Result<T, StoreError>,
        switches: &mut u32,
    ) -> Result<Option<ModelLayout>, StoreError> {
        if !matches!(outcome, Err(StoreError::WrongType { .. })) || *switches >= LAYOUT_SWITCHES {
            return Ok(None);
        }
        *switches += 1;
        // Gone meanwhile (no model): the same read finds none.
        let stored = self.load_model(key).await?;
        Ok(Some(stored.map_or(layout, |stored| stored.layout())))
    }

    /// The WATCH section of a combined round of model updates, led by this
    /// caller (`Combiner`), reading the key as `layout`: one read
    /// (`HGETALL` or `GET`), every member's closure, then the writes that
    /// turn what was read into the final model (`HeldModel::writes`), in
    /// one `MULTI`/`EXEC`. Returns the attempt that committed.
    async fn lead_update_model<A>(
        &self,
        key: &Key,
        layout: ModelLayout,
        policy: RetryPolicy,
        pass: &mut Pass<'_, '_, HeldModel>,
        apply: &mut A,
    ) -> Result<u32, StoreError>
    where
        A: FnMut(&HeldModel) -> Option<HeldModel> + Send,
    {
        let rkey = self.keys.key(key);
        let watched = [rkey.as_ref()];
        let writes = |held: HeldModel| {
            let mut pipe = redis::pipe();
            for write in &held.writes() {
                add_write(&mut pipe, &rkey, write);
            }
            pipe
        };
        let conns = &self.conns;
        match layout {
            ModelLayout::Hash => {
                let mut read = redis::cmd("HGETALL");
                read.arg(rkey.as_ref());
                let section = (UPDATE, key.as_str(), &watched[..], &[read][..]);
                let value_of = |fields: BTreeMap<Vec<u8>, Vec<u8>>| HeldModel::of_hash(fields);
                txn::combined_as(conns, section, policy, pass, apply, value_of, writes).await
            }
            ModelLayout::Json => {
                let mut read = redis::cmd("GET");
                read.arg(rkey.as_ref());
                let section = (UPDATE, key.as_str(), &watched[..], &[read][..]);
                txn::combined_as(conns, section, policy, pass, apply, HeldModel::of_string, writes).await
            }
        }
    }

    /// One update of its own (no batch): the WATCH loop in the layout
    /// expected, run again in the other one if the key holds it.
    async fn update_alone(
        &self,
        key: &Key,
        mut layout: ModelLayout,
        policy: RetryPolicy,
        f: &mut ModelFn<'_>,
    ) -> Result<ModelUpdated, StoreError> {
        let mut switches = 0;
        loop {
            let outcome = self.update_as(key, layout, policy, f).await;
            match self.switch_layout(key, layout, &outcome, &mut switches).await {
                Ok(Some(other)) => layout = other,
                Ok(None) => return outcome,
                Err(error) => return Err(error),
            }
        }
    }

    /// One run of the WATCH loop reading the key as `layout`.
    async fn update_as(
        &self,
        key: &Key,
        layout: ModelLayout,
        policy: RetryPolicy,
        f: &mut ModelFn<'_>,
    ) -> Result<ModelUpdated, StoreError> {
        let rkey = self.keys.key(key);
        let watched = [rkey.as_ref()];
        let committed = match layout {
            ModelLayout::Hash => {
                let mut read = redis::cmd("HGETALL");
                read.arg(rkey.as_ref());
                // The pairs as they come: one map built, the port's.
                let mut decide = |(fields,): (Vec<(Vec<u8>, Vec<u8>)>,)| {
                    let stored = (!fields.is_empty()).then(|| StoredModel::hash_from_raw(fields));
                    decide(key, &rkey, stored.as_ref(), f)
                };
                txn::optimistic(
                    &self.conns,
                    UPDATE,
                    key.as_str(),
                    &watched,
                    &[read],
                    policy,
                    &mut decide,
                )
                .await?
            }
            ModelLayout::Json => {
                let mut read = redis::cmd("GET");
                read.arg(rkey.as_ref());
                let mut decide = |(bytes,): (Option<Vec<u8>>,)| {
                    let stored = bytes.map(StoredModel::Json);
                    decide(key, &rkey, stored.as_ref(), f)
                };
                txn::optimistic(
                    &self.conns,
                    UPDATE,
                    key.as_str(),
                    &watched,
                    &[read],
                    policy,
                    &mut decide,
                )
                .await?
            }
        };
        Ok(ModelUpdated {
            layout: committed.value,
            attempts: committed.attempts,
        })
    }
}

/// Runs the closure on what was read and turns its decision into the
/// section's writes; the section's value is the layout afterwards.
fn decide(
    key: &Key,
    rkey: &str,
    stored: Option<&StoredModel>,
    f: &mut ModelFn<'_>,
) -> Result<Decision<Option<ModelLayout>>, StoreError> {
    let write = f(stored).map_err(|source| StoreError::Aborted {
        op: UPDATE,
        key: key.to_string(),
        source,
    })?;
    let now = stored.map(StoredModel::layout);
    let mut writes = redis::pipe();
    Ok(match write {
        ModelWrite::Keep => Decision::Done(now),
        ModelWrite::Fields { set, delete } => {
            let left = match stored {
                Some(StoredModel::Json(_)) => return Err(fields_of_a_string(UPDATE, key.as_str())),
                Some(StoredModel::Hash(fields)) => fields.keys().any(|field| !delete.contains(field)),
                None => false,
            };
            let after = (left || !set.is_empty()).then_some(ModelLayout::Hash);
            // Deleting fields of a missing key writes nothing.
            let delete: &[String] = if stored.is_some() { &delete } else { &[] };
            if add_fields(&mut writes, rkey, &set, delete) {
                Decision::Commit(writes, after)
            } else {
                Decision::Done(now)
            }
        }
        ModelWrite::Delete if stored.is_none() => Decision::Done(None),
        write => {
            let after = match &write {
                ModelWrite::Json(_) => Some(ModelLayout::Json),
                _ => None,
            };
            add_write(&mut writes, rkey, &write);
            Decision::Commit(writes, after)
        }
    })
}

/// Adds the commands of `write` to `pipe`: `HSET`/`HDEL` of fields (see
/// [`add_fields`]), `SET rkey … KEEPTTL` of a document, `DEL rkey`.
fn add_write(pipe: &mut redis::Pipeline, rkey: &str, write: &ModelWrite) {
    match write {
        ModelWrite::Keep => {}
        ModelWrite::Fields { set, delete } => {
            add_fields(pipe, rkey, set, delete);
        }
        ModelWrite::Json(bytes) => {
            pipe.cmd("SET").arg(rkey).arg(bytes).arg("KEEPTTL").ignore();
        }
        ModelWrite::Delete => {
            pipe.cmd("DEL").arg(rkey).ignore();
        }
    }
}

/// Adds `HSET rkey f v …` and `HDEL rkey f …` (each only if it has
/// fields) to `pipe`; returns whether there was anything to write.
fn add_fields(pipe: &mut redis::Pipeline, rkey: &str, set: &[(String, Vec<u8>)], delete: &[String]) -> bool {
    if !set.is_empty() {
        let hset = pipe.cmd("HSET").arg(rkey);
        for (field, value) in set {
            hset.arg(field).arg(value);
        }
        hset.ignore();
    }
    if !delete.is_empty() {
        pipe.cmd("HDEL").arg(rkey).arg(delete).ignore();
    }
    !(set.is_empty() && delete.is_empty())
}

/// `HSET rkey f v …` and `HDEL rkey f …` (each only if it has fields), or
/// `None` when there is nothing to write.
fn field_writes(rkey: &str, set: &[(String, Vec<u8>)], delete: &[String]) -> Option<redis::Pipeline> {
    let mut pipe = redis::pipe();
    add_fields(&mut pipe, rkey, set, delete).then_some(pipe)
}

fn unexpected(op: &'static str, key: &Key, what: String) -> StoreError {
    StoreError::Operation {
        op,
        key: key.to_string(),
        source: what.into(),
    }
}
