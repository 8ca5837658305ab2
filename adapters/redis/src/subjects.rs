//! [`SubjectStore`] on Redis, in KRules' layout: one hash per subject at
//! `s:<subject prefix><subject>`, fields `p<name>`/`e<name>`, values JSON
//! text as Python's `json.dumps` writes it.
//!
//! - `load`: one `HGETALL`; `get_property`: one `HGET`.
//! - `store`: `MULTI; HSET …; HDEL …; EXEC` in one round trip, field by
//!   field (never a whole-hash overwrite), as KRules' own `store` does.
//! - `update_property`: the WATCH loop (`txn::optimistic`) on the hash:
//!   `WATCH; HGET`, then `MULTI; HSET; EXEC`.
//! - `list`: `SCAN … MATCH … COUNT … TYPE hash`, never `KEYS`.
//! - `exists`: `TYPE`; `delete_subject`: the WATCH loop on `TYPE`, then
//!   `DEL` (a key of another type is `WrongType` and stays).

use std::collections::BTreeMap;
use std::io::Write as _;

use async_trait::async_trait;
use statehouse_domain::{
    KeyPattern, PropertyKind, PropertyName, SubjectName, python_json, write_python_json,
};
use statehouse_ports::{
    FieldChanges, JsonValue, KeyStream, PropertyChange, PropertyFn, PropertyUpdated, StoreError, SubjectData,
    SubjectSpace, SubjectStore, decode_property, property_increment_overflow, property_not_an_integer,
};

use crate::RedisStore;
use crate::documents::{Refused, refusal};
use crate::listing::Listing;
use crate::txn::{self, Decision};

/// Room on the stack for one short argument, so that it is written into
/// the command in one piece (one `write_arg`) rather than through the
/// command's `io::Write` piece by piece.
const SHORT_ARG: usize = 64;

/// A property's hash field (`<marker><name>`) as one command argument,
/// written straight into the command.
struct FieldArg<'a>(PropertyKind, &'a PropertyName);

impl redis::ToRedisArgs for FieldArg<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        let mut arg = [0u8; SHORT_ARG];
        let marker = self.0.marker().encode_utf8(&mut arg).len();
        let name = self.1.as_str().as_bytes();
        match arg.get_mut(marker..marker + name.len()) {
            Some(rest) => {
                rest.copy_from_slice(name);
                out.write_arg(&arg[..marker + name.len()]);
            }
            None => {
                let mut arg_out = out.writer_for_next_arg();
                // Writing into the command's memory cannot fail.
                let _ = arg_out.write_all(&arg[..marker]);
                let _ = arg_out.write_all(name);
            }
        }
    }
}

/// A property's value as one command argument: the text Python's
/// `json.dumps` writes, written straight into the command (a number, a
/// bool or `null` from the stack in one piece).
struct PythonJsonArg<'a>(&'a JsonValue);

impl redis::ToRedisArgs for PythonJsonArg<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        if matches!(
            self.0,
            JsonValue::Number(_) | JsonValue::Bool(_) | JsonValue::Null
        ) {
            let mut arg = [0u8; SHORT_ARG];
            let mut rest = &mut arg[..];
            write_python_json(self.0, &mut rest);
            let unused = rest.len();
            // A scalar's text is far shorter than the room; if it were
            // not, it goes the long way below.
            if unused > 0 {
                out.write_arg(&arg[..SHORT_ARG - unused]);
                return;
            }
        }
        write_python_json(self.0, out.writer_for_next_arg());
    }
}

/// A command `name key …` with room for `args` more arguments of about
/// `size` bytes in all, so that writing them rarely grows it.
fn command(name: &str, rkey: &str, args: usize, size: usize) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(2 + args, name.len() + rkey.len() + size);
    cmd.arg(name).arg(rkey);
    cmd
}

#[async_trait]
impl SubjectStore for RedisStore {
    async fn load(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<SubjectData, StoreError> {
        const OP: &str = "load";
        let key = space.key(subject.as_str());
        let mut conn = self.conns.shared();
        let fields: BTreeMap<Vec<u8>, Vec<u8>> = self
            .conns
            .run(
                OP,
                &key,
                conn.query(redis::cmd("HGETALL").arg(self.keys.raw(&key).as_ref())),
            )
            .await?;
        Ok(SubjectData::from_fields(
            OP,
            &key,
            fields
                .iter()
                .map(|(field, value)| (field.as_slice(), value.as_slice())),
        ))
    }

    async fn store(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        changes: &[PropertyChange],
    ) -> Result<(), StoreError> {
        const OP: &str = "store";
        let key = space.key(subject.as_str());
        let writes = FieldChanges::of(changes);
        if writes.is_empty() {
            return Ok(());
        }
        let rkey = self.keys.raw(&key);
        let mut pipe = redis::Pipeline::with_capacity(2);
        pipe.atomic();
        // Field names and texts go straight into the commands (no `String`
        // per property), sized for the fields and short values.
        let field_len = |change: &PropertyChange| match change {
            PropertyChange::Set { name, .. } | PropertyChange::Delete { name, .. } => 1 + name.as_str().len(),
        };
        if writes.sets() > 0 {
            let size = writes.iter().map(|change| field_len(change) + 16).sum();
            let mut hset = command("HSET", &rkey, 2 * writes.sets(), size);
            for change in writes.iter() {
                if let PropertyChange::Set { kind, name, value } = change {
                    hset.arg(FieldArg(*kind, name)).arg(PythonJsonArg(value));
                }
            }
            pipe.add_command(hset).ignore();
        }
        if writes.deletes() > 0 {
            let size = writes.iter().map(field_len).sum();
            let mut hdel = command("HDEL", &rkey, writes.deletes(), size);
            for change in writes.iter() {
                if let PropertyChange::Delete { kind, name } = change {
                    hdel.arg(FieldArg(*kind, name));
                }
            }
            pipe.add_command(hdel).ignore();
        }
        let (mut conn, acks) = self.conns.writer();
        self.conns
            .run_write(acks, OP, &key, pipe.exec_async(&mut conn))
            .await
    }

    async fn get_property(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
    ) -> Result<Option<JsonValue>, StoreError> {
        const OP: &str = "get_property";
        let key = space.key(subject.as_str());
        let field = kind.field(name.as_str());
        let mut conn = self.conns.shared();
        let bytes: Option<Vec<u8>> = self
            .conns
            .run(
                OP,
                &key,
                conn.query(redis::cmd("HGET").arg(self.keys.raw(&key).as_ref()).arg(&field)),
            )
            .await?;
        bytes
            .map(|bytes| decode_property(OP, &key, &field, &bytes))
            .transpose()
    }

    async fn update_property<'a>(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
        f: &mut PropertyFn<'a>,
    ) -> Result<PropertyUpdated, StoreError> {
        const OP: &str = "update_property";
        let key = space.key(subject.as_str());
        let rkey = self.keys.raw(&key);
        let field = kind.field(name.as_str());
        let mut hget = redis::cmd("HGET");
        hget.arg(rkey.as_ref()).arg(&field);
        // Combined with the concurrent updates of this property.
        if let Some(updated) = txn::combined_field(
            &self.conns,
            &self.rounds.fields,
            OP,
            (&format!("{OP}\n{key}\n{field}"), key.as_str()),
            (rkey.as_ref(), field.as_str()),
            space.policy(),
            f,
            |bytes| decode_property(OP, &key, &field, bytes),
            |value| python_json(value).into_bytes(),
            |value| property_write(&rkey, &field, value.unwrap_or_default()),
        )
        .await
        {
            let (old, new, attempts) = updated?;
            return Ok(PropertyUpdated { old, new, attempts });
        }
        type Change = (Option<JsonValue>, JsonValue);
        let mut decide = |(current,): (Option<Vec<u8>>,)| -> Result<Decision<Change>, StoreError> {
            let old = current
                .map(|bytes| decode_property(OP, &key, &field, &bytes))
                .transpose()?;
            let new = f(old.as_ref()).map_err(|source| StoreError::Aborted {
                op: OP,
                key: key.clone(),
                source,
            })?;
            let writes = property_write(&rkey, &field, python_json(&new).into_bytes());
            Ok(Decision::Commit(writes, (old, new)))
        };
        let committed = txn::optimistic(
            &self.conns,
            OP,
            &key,
            &[rkey.as_ref()],
            &[hget],
            space.policy(),
            &mut decide,
        )
        .await?;
        let (old, new) = committed.value;
        Ok(PropertyUpdated {
            old,
            new,
            attempts: committed.attempts,
        })
    }

    async fn increment_property(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
        by: i64,
    ) -> Result<i64, StoreError> {
        const OP: &str = "increment_property";
        let key = space.key(subject.as_str());
        let field = kind.field(name.as_str());
        let mut cmd = redis::cmd("HINCRBY");
        cmd.arg(self.keys.raw(&key).as_ref()).arg(&field).arg(by);
        let (mut conn, acks) = self.conns.writer();
        let answer = self
            .conns
            .run_write(acks, OP, &key, async move {
                match conn.query::<i64>(&cmd).await {
                    Ok(value) => Ok(Ok(value)),
                    Err(error) => refusal(&error).map(Err).ok_or(error),
                }
            })
            .await?;
        answer.map_err(|refused| match refused {
            Refused::NotAnInteger => property_not_an_integer(OP, &key, &field),
            Refused::Overflow => property_increment_overflow(OP, &key, &field),
        })
    }

    async fn delete_subject(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<bool, StoreError> {
        const OP: &str = "delete_subject";
        let key = space.key(subject.as_str());
        let rkey = self.keys.raw(&key);
        let mut read_type = redis::cmd("TYPE");
        read_type.arg(rkey.as_ref());
        // The WATCH loop, so that a key that turns into another type between
        // the check and the DEL is not deleted.
        let mut decide = |(kind,): (String,)| -> Result<Decision<bool>, StoreError> {
            if !is_subject_type(OP, &key, &kind)? {
                return Ok(Decision::Done(false));
            }
            let mut writes = redis::pipe();
            writes.cmd("DEL").arg(rkey.as_ref()).ignore();
            Ok(Decision::Commit(writes, true))
        };
        let committed = txn::optimistic(
            &self.conns,
            OP,
            &key,
            &[rkey.as_ref()],
            &[read_type],
            space.policy(),
            &mut decide,
        )
        .await?;
        Ok(committed.value)
    }

    fn list(&self, space: &SubjectSpace, pattern: &KeyPattern) -> KeyStream {
        let relative = space.keys().pattern(pattern.as_str());
        let keys = space.keys().clone();
        self.scan_stream(Listing {
            op: "list_subjects",
            // The store prefix, escaped, then the subject head, escaped.
            rpattern: self.keys.raw_pattern(&relative),
            label: relative,
            kind: Some("hash"),
        })
        .filter_map(move |key| keys.name_of(&key).map(str::to_owned))
    }

    async fn exists(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<bool, StoreError> {
        const OP: &str = "exists";
        let key = space.key(subject.as_str());
        let mut conn = self.conns.shared();
        let kind: String = self
            .conns
            .run(
                OP,
                &key,
                conn.query(redis::cmd("TYPE").arg(self.keys.raw(&key).as_ref())),
            )
            .await?;
        is_subject_type(OP, &key, &kind)
    }
}

/// Whether a key whose `TYPE` is `kind` holds a subject (`hash`) or nothing
/// (`none`); another type is `WrongType`.
fn is_subject_type(op: &'static str, key: &str, kind: &str) -> Result<bool, StoreError> {
    match kind {
        "hash" => Ok(true),
        "none" => Ok(false),
        _ => Err(StoreError::wrong_type(op, key)),
    }
}

/// The write of one property's new value: `HSET rkey field text`.
fn property_write(rkey: &str, field: &str, text: Vec<u8>) -> redis::Pipeline {
    let mut writes = redis::pipe();
    writes.cmd("HSET").arg(rkey).arg(field).arg(text).ignore();
    writes
}
