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
//!   that read.
//! - `delete_model`: the WATCH loop on `TYPE`, then `DEL` (a key of another
//!   type is `WrongType` and stays).

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::{RedisResult, Value};
use statehouse_domain::{Key, ModelLayout};
use statehouse_ports::{
    ModelFn, ModelUpdated, ModelWrite, RetryPolicy, StoreError, StoredModel, SyncedStore,
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
        let mut layout = expected;
        let mut switches = 0;
        loop {
            match self.update_as(key, layout, policy, f).await {
                // The read of `layout` met a key of another type: the other
                // layout, or no model at all; `load_model` tells.
                Err(StoreError::WrongType { .. }) if switches < LAYOUT_SWITCHES => {
                    switches += 1;
                    if let Some(stored) = self.load_model(key).await? {
                        layout = stored.layout();
                    }
                }
                outcome => return outcome,
            }
        }
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
                let mut decide = |(fields,): (BTreeMap<Vec<u8>, Vec<u8>>,)| {
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
    Ok(match write {
        ModelWrite::Keep => Decision::Done(now),
        ModelWrite::Fields { set, delete } => {
            let left = match stored {
                Some(StoredModel::Json(_)) => return Err(fields_of_a_string(key)),
                Some(StoredModel::Hash(fields)) => fields.keys().any(|field| !delete.contains(field)),
                None => false,
            };
            let after = (left || !set.is_empty()).then_some(ModelLayout::Hash);
            // Deleting fields of a missing key writes nothing.
            let delete: &[String] = if stored.is_some() { &delete } else { &[] };
            match field_writes(rkey, &set, delete) {
                Some(writes) => Decision::Commit(writes, after),
                None => Decision::Done(now),
            }
        }
        ModelWrite::Json(bytes) => {
            let mut writes = redis::pipe();
            writes.cmd("SET").arg(rkey).arg(bytes).arg("KEEPTTL").ignore();
            Decision::Commit(writes, Some(ModelLayout::Json))
        }
        ModelWrite::Delete if stored.is_none() => Decision::Done(None),
        ModelWrite::Delete => {
            let mut writes = redis::pipe();
            writes.cmd("DEL").arg(rkey).ignore();
            Decision::Commit(writes, None)
        }
    })
}

/// `HSET rkey f v …` and `HDEL rkey f …` (each only if it has fields), or
/// `None` when there is nothing to write.
fn field_writes(rkey: &str, set: &[(String, Vec<u8>)], delete: &[String]) -> Option<redis::Pipeline> {
    if set.is_empty() && delete.is_empty() {
        return None;
    }
    let mut pipe = redis::pipe();
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
    Some(pipe)
}

/// The error of field writes to a model stored as one JSON string.
fn fields_of_a_string(key: &Key) -> StoreError {
    StoreError::invalid_input(
        UPDATE,
        key.as_str(),
        "field writes to a model stored as a JSON string (write the whole model instead)",
    )
}

fn unexpected(op: &'static str, key: &Key, what: String) -> StoreError {
    StoreError::Operation {
        op,
        key: key.to_string(),
        source: what.into(),
    }
}
