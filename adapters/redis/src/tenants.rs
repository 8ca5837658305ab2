//! [`FieldStore`] on Redis: one hash per tenant record, under the layout's
//! `t:{<tenant>}:…` keys (the store's prefix in front), one compact JSON
//! value per field.
//!
//! - `get_all`: one `HGETALL`; `get_fields`: one `HMGET`.
//! - `set_fields`: `HSET …`, one round trip, field by field (never a
//!   whole-hash overwrite); `merge_fields`: `MULTI; HSET; HGETALL; EXEC`.
//!   With a TTL both run the `TENANT_WRITE` script instead (`EVALSHA`: the
//!   same writes, and the TTL extended but never shortened, in one step);
//!   `replace_fields` always does (`DEL` first, keeping the expiry).
//! - `update_field`: the WATCH loop (`txn::optimistic`): `WATCH; HGET`, then
//!   `MULTI; HSET; EXEC` (with a TTL, `MULTI; EVALSHA TENANT_WRITE; EXEC`).
//! - `increment`: the `TENANT_INCREMENT` script (`HINCRBY`, then the TTL
//!   only if it went through), by `EVALSHA`; `append`: the `TENANT_APPEND`
//!   script (the item spliced into the field's array text, then the TTL
//!   likewise), one `EVALSHA` too.
//! - `scan`/`delete_matching`: `SCAN … MATCH … COUNT … TYPE hash`, never
//!   `KEYS`, streamed (`listing.rs`), then `DEL` in batches, page by page (all keys of one tenant share its hash
//!   tag, so a batch is one slot on Redis Cluster).

use std::collections::BTreeMap;

use async_trait::async_trait;
use statehouse_domain::{FieldName, TenantKey, TenantPattern, Ttl};
use statehouse_ports::{
    Boxed, FieldFn, FieldStore, FieldUpdated, Fields, JsonValue, KeyStream, Loaded, RetryPolicy, StoreError,
    decode_field, decode_fields, encode_field, field_writes, increment_overflow, not_an_array,
    not_an_integer,
};

use crate::RedisStore;
use crate::listing::Listing;
use crate::scripts::{self, TENANT_APPEND, TENANT_INCREMENT, TENANT_WRITE};
use crate::txn::{self, Decision};

/// How many keys one `DEL` of `delete_matching` takes.
const DELETE_BATCH: usize = 500;

/// The arguments of the `TENANT_WRITE` script after its key.
fn write_args(ttl: Option<Ttl>, mode: &str, writes: &[(String, String)]) -> Vec<String> {
    let mut args = Vec::with_capacity(2 + 2 * writes.len());
    args.push(ttl.map_or(0, Ttl::as_millis).to_string());
    args.push(mode.to_owned());
    for (field, text) in writes {
        args.push(field.clone());
        args.push(text.clone());
    }
    args
}

/// `HSET key f v …`.
fn hset(rkey: &str, writes: &[(String, String)]) -> redis::Cmd {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(rkey);
    for (field, text) in writes {
        cmd.arg(field).arg(text);
    }
    cmd
}

/// A field's value as one command argument: its compact JSON text (what
/// [`encode_field`] answers) written straight into the command, no `String`
/// per field.
struct JsonArg<'a>(&'a JsonValue);

impl redis::ToRedisArgs for JsonArg<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        // Writing a `Value` into memory cannot fail.
        let _ = serde_json::to_writer(out.writer_for_next_arg(), self.0);
    }
}

/// `HSET key f v …` of `fields` as given: a field named twice takes its
/// last value, as [`field_writes`] decides (HSET applies them in order).
fn hset_fields(rkey: &str, fields: &[(FieldName, JsonValue)]) -> redis::Cmd {
    // Sized for the key, the field names and short values, so that writing
    // them rarely grows the command.
    let size = 4
        + rkey.len()
        + fields
            .iter()
            .map(|(field, _)| field.as_str().len() + 16)
            .sum::<usize>();
    let mut cmd = redis::Cmd::with_capacity(2 + 2 * fields.len(), size);
    cmd.arg("HSET").arg(rkey);
    for (field, value) in fields {
        cmd.arg(field.as_str()).arg(JsonArg(value));
    }
    cmd
}

/// The fields of an `HGETALL` reply (a RESP2 array of names and values in
/// turn, or a RESP3 map), decoded, each name moved out of the reply (no
/// copy); `None` for another shape.
fn hash_fields(op: &'static str, key: &TenantKey, reply: redis::Value) -> Option<Fields> {
    use redis::Value;
    fn is_bytes(value: &Value) -> bool {
        matches!(value, Value::BulkString(_) | Value::SimpleString(_))
    }
    fn bytes(value: Value) -> Vec<u8> {
        match value {
            Value::BulkString(bytes) => bytes,
            Value::SimpleString(text) => text.into_bytes(),
            // Checked before: never another kind.
            _ => Vec::new(),
        }
    }
    match reply {
        Value::Array(items) if items.len() % 2 == 0 && items.iter().all(is_bytes) => {
            let mut items = items.into_iter();
            let pairs = std::iter::from_fn(|| Some((bytes(items.next()?), bytes(items.next()?))));
            Some(decode_fields(op, key, pairs))
        }
        Value::Map(pairs)
            if pairs
                .iter()
                .all(|(name, value)| is_bytes(name) && is_bytes(value)) =>
        {
            Some(decode_fields(
                op,
                key,
                pairs.into_iter().map(|(name, value)| (bytes(name), bytes(value))),
            ))
        }
        Value::Nil => Some(Fields::new()),
        _ => None,
    }
}

impl RedisStore {
    /// Runs the `TENANT_WRITE` script on the shared connection. Its future
    /// is boxed: the script runner's (with its reload of the scripts) is
    /// large, and held inline it would make the future of every call that
    /// may take this path as large, the calls without a TTL included (a
    /// large allocation per call costs several times a small one).
    fn run_write<'a, T: redis::FromRedisValue + Send + 'a>(
        &'a self,
        op: &'static str,
        key: &'a TenantKey,
        ttl: Option<Ttl>,
        mode: &'a str,
        writes: &'a [(String, String)],
    ) -> Boxed<'a, T> {
        Box::pin(async move {
            let rkey = self.keys.raw(key.key());
            let cmd = &scripts::evalsha(&TENANT_WRITE, &[rkey.as_ref()], write_args(ttl, mode, writes));
            scripts::run_shared(&self.conns, op, key.key(), |mut conn| async move {
                conn.query(cmd).await
            })
            .await
        })
    }

    /// The tenant hashes matching `pattern` (without the store prefix),
    /// once each, as a stream.
    fn scan_hashes(&self, op: &'static str, pattern: &TenantPattern) -> KeyStream {
        self.scan_stream(Listing {
            op,
            label: pattern.pattern().to_owned(),
            rpattern: self.keys.raw_pattern(pattern.pattern()),
            kind: Some("hash"),
        })
    }
}

#[async_trait]
impl FieldStore for RedisStore {
    async fn get_all(&self, key: &TenantKey) -> Result<Fields, StoreError> {
        const OP: &str = "get_all";
        let mut conn = self.conns.shared();
        let fields: BTreeMap<Vec<u8>, Vec<u8>> = self
            .conns
            .run(
                OP,
                key.key(),
                conn.query(redis::cmd("HGETALL").arg(self.keys.raw(key.key()).as_ref())),
            )
            .await?;
        Ok(decode_fields(OP, key, fields))
    }

    async fn get_fields(
        &self,
        key: &TenantKey,
        fields: &[FieldName],
    ) -> Result<Vec<Option<Loaded>>, StoreError> {
        const OP: &str = "get_fields";
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conns.shared();
        let values: Vec<Option<Vec<u8>>> = self
            .conns
            .run(
                OP,
                key.key(),
                conn.query(
                    redis::cmd("HMGET")
                        .arg(self.keys.raw(key.key()).as_ref())
                        .arg(fields.iter().map(FieldName::as_str).collect::<Vec<_>>()),
                ),
            )
            .await?;
        Ok(fields
            .iter()
            .zip(values)
            .map(|(field, bytes)| bytes.map(|bytes| decode_field(OP, key, field.as_str(), &bytes)))
            .collect())
    }

    async fn set_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, JsonValue)],
        ttl: Option<Ttl>,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_fields";
        if fields.is_empty() {
            return Ok(());
        }
        if ttl.is_some() {
            let _: i64 = self.run_write(OP, key, ttl, "set", &field_writes(fields)).await?;
            return Ok(());
        }
        let (mut conn, acks) = self.conns.writer();
        self.conns
            .run_write(
                acks,
                OP,
                key.key(),
                conn.query::<()>(&hset_fields(&self.keys.raw(key.key()), fields)),
            )
            .await
    }

    async fn merge_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, JsonValue)],
        ttl: Option<Ttl>,
    ) -> Result<Fields, StoreError> {
        const OP: &str = "merge_fields";
        if fields.is_empty() {
            return self.get_all(key).await;
        }
        if ttl.is_some() {
            let merged: BTreeMap<Vec<u8>, Vec<u8>> = self
                .run_write(OP, key, ttl, "merge", &field_writes(fields))
                .await?;
            return Ok(decode_fields(OP, key, merged));
        }
        let rkey = self.keys.raw(key.key());
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.add_command(hset_fields(&rkey, fields)).ignore();
        pipe.cmd("HGETALL").arg(rkey.as_ref());
        let (mut conn, acks) = self.conns.writer();
        // The hash's fields are decoded from the reply itself, each name
        // moved out of it (no copy of each name and value first).
        let (merged,): (redis::Value,) = self
            .conns
            .run_write(acks, OP, key.key(), pipe.query_async(&mut conn))
            .await?;
        hash_fields(OP, key, merged).ok_or_else(|| StoreError::Operation {
            op: OP,
            key: key.key().to_owned(),
            source: "HGETALL answered something other than a hash's fields".into(),
        })
    }

    async fn replace_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, JsonValue)],
        ttl: Option<Ttl>,
    ) -> Result<(), StoreError> {
        const OP: &str = "replace_fields";
        let writes = field_writes(fields);
        let _: i64 = self.run_write(OP, key, ttl, "replace", &writes).await?;
        Ok(())
    }

    async fn delete_fields(&self, key: &TenantKey, fields: &[FieldName]) -> Result<u64, StoreError> {
        const OP: &str = "delete_fields";
        if fields.is_empty() {
            return Ok(0);
        }
        let (mut conn, acks) = self.conns.writer();
        self.conns
            .run_write(
                acks,
                OP,
                key.key(),
                conn.query(
                    redis::cmd("HDEL")
                        .arg(self.keys.raw(key.key()).as_ref())
                        .arg(fields.iter().map(FieldName::as_str).collect::<Vec<_>>()),
                ),
            )
            .await
    }

    async fn delete(&self, key: &TenantKey) -> Result<bool, StoreError> {
        const OP: &str = "delete";
        let (mut conn, acks) = self.conns.writer();
        let deleted: u64 = self
            .conns
            .run_write(
                acks,
                OP,
                key.key(),
                conn.query(redis::cmd("DEL").arg(self.keys.raw(key.key()).as_ref())),
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn exists(&self, key: &TenantKey) -> Result<bool, StoreError> {
        const OP: &str = "exists";
        let mut conn = self.conns.shared();
        let found: u64 = self
            .conns
            .run(
                OP,
                key.key(),
                conn.query(redis::cmd("EXISTS").arg(self.keys.raw(key.key()).as_ref())),
            )
            .await?;
        Ok(found > 0)
    }

    async fn update_field<'a>(
        &self,
        key: &TenantKey,
        field: &FieldName,
        ttl: Option<Ttl>,
        policy: RetryPolicy,
        f: &mut FieldFn<'a>,
    ) -> Result<FieldUpdated, StoreError> {
        const OP: &str = "update_field";
        let rkey = self.keys.raw(key.key());
        let mut hget = redis::cmd("HGET");
        hget.arg(rkey.as_ref()).arg(field.as_str());
        // Combined with the concurrent updates of this field (and TTL).
        if let Some(updated) = txn::combined_field(
            &self.conns,
            &self.rounds.fields,
            OP,
            (
                &format!("{OP}\n{}\n{}\n{ttl:?}", key.key(), field.as_str()),
                key.key(),
            ),
            (rkey.as_ref(), field.as_str()),
            policy,
            f,
            |bytes| decode_field(OP, key, field.as_str(), bytes),
            |value| encode_field(value).into_bytes(),
            |value| {
                let text = String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into_owned();
                field_write(&rkey, ttl, field, text)
            },
        )
        .await
        {
            let (old, new, attempts) = updated?;
            return Ok(FieldUpdated { old, new, attempts });
        }
        type Change = (Option<JsonValue>, JsonValue);
        let mut decide = |(current,): (Option<Vec<u8>>,)| -> Result<Decision<Change>, StoreError> {
            let old = current
                .map(|bytes| decode_field(OP, key, field.as_str(), &bytes))
                .transpose()?;
            let new = f(old.as_ref()).map_err(|source| StoreError::Aborted {
                op: OP,
                key: key.key().to_owned(),
                source,
            })?;
            let writes = field_write(&rkey, ttl, field, encode_field(&new));
            Ok(Decision::Commit(writes, (old, new)))
        };
        let committed = txn::optimistic(
            &self.conns,
            OP,
            key.key(),
            &[rkey.as_ref()],
            &[hget],
            policy,
            &mut decide,
        )
        .await?;
        let (old, new) = committed.value;
        Ok(FieldUpdated {
            old,
            new,
            attempts: committed.attempts,
        })
    }

    async fn increment(
        &self,
        key: &TenantKey,
        field: &FieldName,
        by: i64,
        ttl: Option<Ttl>,
    ) -> Result<i64, StoreError> {
        const OP: &str = "increment";
        /// The script's own refusals, kept apart from errors to map.
        enum Refused {
            NotAnInteger,
            Overflow,
        }
        let rkey = self.keys.raw(key.key());
        let cmd = &scripts::evalsha(
            &TENANT_INCREMENT,
            &[rkey.as_ref()],
            (field.as_str(), by, ttl.map_or(0, Ttl::as_millis)),
        );
        let result = scripts::run_shared(&self.conns, OP, key.key(), |mut conn| async move {
            match conn.query::<i64>(cmd).await {
                Ok(value) => Ok(Ok(value)),
                Err(error) if error.code() == Some("NOTINT") => Ok(Err(Refused::NotAnInteger)),
                Err(error) if error.code() == Some("OVERFLOW") => Ok(Err(Refused::Overflow)),
                Err(error) => Err(error),
            }
        })
        .await?;
        match result {
            Ok(value) => Ok(value),
            Err(Refused::NotAnInteger) => Err(not_an_integer(OP, key, field.as_str())),
            Err(Refused::Overflow) => Err(increment_overflow(OP, key, field.as_str())),
        }
    }

    async fn append(
        &self,
        key: &TenantKey,
        field: &FieldName,
        item: &[u8],
        ttl: Option<Ttl>,
    ) -> Result<usize, StoreError> {
        const OP: &str = "append";
        let rkey = self.keys.raw(key.key());
        let cmd = &scripts::evalsha(
            &TENANT_APPEND,
            &[rkey.as_ref()],
            (field.as_str(), item, ttl.map_or(0, Ttl::as_millis)),
        );
        let answer = scripts::run_shared(&self.conns, OP, key.key(), |mut conn| async move {
            match conn.query::<usize>(cmd).await {
                Ok(len) => Ok(Some(len)),
                Err(error) if error.code() == Some("NOTARRAY") => Ok(None),
                Err(error) => Err(error),
            }
        })
        .await?;
        answer.ok_or_else(|| not_an_array(OP, key, field.as_str()))
    }

    fn scan(&self, pattern: &TenantPattern) -> KeyStream {
        self.scan_hashes("scan", pattern)
    }

    async fn delete_matching(&self, pattern: &TenantPattern) -> Result<u64, StoreError> {
        const OP: &str = "delete_matching";
        let mut keys = self.scan_hashes(OP, pattern);
        let mut deleted = 0;
        // A batch short of replicas was deleted: the others are deleted all
        // the same, then the shortfall reported.
        let mut shortfall = crate::conn::Shortfall::none();
        // Page by page as the listing goes: deleting keys the scan has
        // returned never hides others from it, and a key it repeats is not
        // counted twice (`DEL` counts what existed).
        while let Some(page) = keys.next_page().await? {
            deleted += self.delete_page(OP, pattern, &page, &mut shortfall).await?;
        }
        shortfall.after(Ok(deleted))
    }
}

impl RedisStore {
    /// Deletes one page of `delete_matching`, in batches; returns how many
    /// existed.
    async fn delete_page(
        &self,
        op: &'static str,
        pattern: &TenantPattern,
        keys: &[String],
        shortfall: &mut crate::conn::Shortfall,
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for batch in keys.chunks(DELETE_BATCH) {
            let raw: Vec<String> = batch.iter().map(|key| self.keys.raw(key).into_owned()).collect();
            let (mut conn, acks) = self.conns.writer();
            let count: u64 = self
                .conns
                .run(op, pattern.pattern(), conn.query(redis::cmd("DEL").arg(raw)))
                .await?;
            deleted += count;
            shortfall.keep(self.conns.confirm(op, pattern.pattern(), &acks))?;
        }
        Ok(deleted)
    }
}

/// The write of one field's new value `text` (`update_field`): `HSET`, or
/// with a TTL the `TENANT_WRITE` script.
fn field_write(rkey: &str, ttl: Option<Ttl>, field: &FieldName, text: String) -> redis::Pipeline {
    let write = [(field.as_str().to_owned(), text)];
    let mut writes = redis::pipe();
    if ttl.is_some() {
        let args = write_args(ttl, "set", &write);
        writes.add_command(scripts::evalsha(&TENANT_WRITE, &[rkey], args));
    } else {
        writes.add_command(hset(rkey, &write));
    }
    writes.ignore();
    writes
}
