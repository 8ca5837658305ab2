use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use statehouse_domain::{ChangeKind, ChangeNotice, Key, KeyPattern, Ttl};
use statehouse_ports::{
    AnnouncedUpdateFn, DocumentStep, DocumentStore, Fetched, KeyStream, KeyTtl, Pass, RetryPolicy, Role,
    SetCondition, SetOptions, StoreError, Update, UpdateFn, Updated, check_append_item, document_result,
    document_step, increment_overflow_document, not_an_array_document, not_an_integer_document,
};

use crate::RedisStore;
use crate::listing::Listing;
use crate::scripts::{self, DOC_APPEND, DOC_SWAP};
use crate::txn::{self, Decision};
use statehouse_ports::Swapped;

/// Keys per MGET command; larger requests are split into several MGETs sent
/// in one pipeline (one round trip), so no single command blocks the server
/// for long.
const MGET_CHUNK: usize = 1024;

/// The most arguments of a command [`RedisStore::key_cmd`] builds:
/// `SET key value PX ms NX`.
const KEY_CMD_ARGS: usize = 6;

impl RedisStore {
    /// `name key` as a command, with the key prefixed, its buffers sized
    /// for `rest` more bytes of arguments (`redis::cmd` starts empty and
    /// grows by reallocation, once per argument or two).
    fn key_cmd(&self, name: &str, key: &Key, rest: usize) -> redis::Cmd {
        let mut cmd = redis::Cmd::with_capacity(KEY_CMD_ARGS, name.len() + self.keys.arg_len(key) + rest);
        cmd.arg(name).arg(self.keys.arg(key));
        cmd
    }

    /// Runs one command on the shared connection, bounded and mapped.
    async fn query<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        key: &Key,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.conns.shared();
        self.conns.run(op, key.as_str(), conn.query(cmd)).await
    }

    /// Runs one write on the shared connection, bounded and mapped, its
    /// replicas waited for as the durability asks.
    async fn write<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        key: &Key,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let (mut conn, acks) = self.conns.writer();
        self.conns
            .run_write(acks, op, key.as_str(), conn.query(cmd))
            .await
    }
}

#[async_trait]
impl DocumentStore for RedisStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        self.query("get", key, &self.key_cmd("GET", key, 0)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Fetched>, StoreError> {
        const OP: &str = "get_many";
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let label = keys.first().map(Key::as_str).unwrap_or_default();
        let mut conn = self.conns.shared();
        // Sized ahead: grown key by key, a command of 1,000 keys is
        // reallocated about fifteen times.
        let mget = |chunk: &[Key]| {
            let bytes: usize = chunk.iter().map(|key| self.keys.arg_len(key)).sum();
            let mut cmd = redis::Cmd::with_capacity(1 + chunk.len(), "MGET".len() + bytes);
            cmd.arg("MGET");
            for key in chunk {
                cmd.arg(self.keys.arg(key));
            }
            cmd
        };
        let values: Vec<Option<Vec<u8>>> = if keys.len() <= MGET_CHUNK {
            self.conns.run(OP, label, conn.query(&mget(keys))).await?
        } else {
            let mut pipe = redis::pipe();
            for chunk in keys.chunks(MGET_CHUNK) {
                pipe.add_command(mget(chunk));
            }
            let chunks: Vec<Vec<Option<Vec<u8>>>> =
                self.conns.run(OP, label, pipe.query_async(&mut conn)).await?;
            chunks.into_iter().flatten().collect()
        };
        if values.len() != keys.len() {
            return Err(StoreError::Operation {
                op: OP,
                key: label.to_owned(),
                source: format!("MGET answered {} values for {} keys", values.len(), keys.len()).into(),
            });
        }

        // MGET answers nil both for missing keys and for keys of another
        // type. Ask the type of the nil ones (one more round trip, only when
        // there are nils) so that a hash under a key fails that key alone.
        let nils: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        let mut types: Vec<String> = Vec::new();
        if !nils.is_empty() {
            let mut pipe = redis::pipe();
            for &i in &nils {
                pipe.cmd("TYPE").arg(self.keys.key(&keys[i]).as_ref());
            }
            types = self.conns.run(OP, label, pipe.query_async(&mut conn)).await?;
        }
        let mut foreign = nils.iter().zip(&types).filter_map(|(&i, kind)| {
            // "string" means the key was written after the MGET: reporting
            // it absent is what MGET saw, a consistent snapshot.
            (kind != "none" && kind != "string").then_some(i)
        });
        let mut next_foreign = foreign.next();
        Ok(values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                if next_foreign == Some(i) {
                    next_foreign = foreign.next();
                    Err(StoreError::wrong_type(OP, keys[i].as_str()))
                } else {
                    Ok(value)
                }
            })
            .collect())
    }

    async fn set(&self, key: &Key, value: &[u8], options: SetOptions) -> Result<bool, StoreError> {
        // The value, and room for `PX` with its milliseconds and `NX`.
        let mut cmd = self.key_cmd("SET", key, value.len() + 32);
        cmd.arg(value);
        if let Some(ttl) = options.ttl {
            cmd.arg("PX").arg(ttl.as_millis());
        }
        match options.condition {
            SetCondition::Always => {}
            SetCondition::IfAbsent => {
                cmd.arg("NX");
            }
            SetCondition::IfPresent => {
                cmd.arg("XX");
            }
        }
        let reply: Value = self.write("set", key, &cmd).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        let removed: u64 = self.write("delete", key, &self.key_cmd("DEL", key, 0)).await?;
        Ok(removed > 0)
    }

    async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        let count: u64 = self.query("exists", key, &self.key_cmd("EXISTS", key, 0)).await?;
        Ok(count > 0)
    }

    async fn expire(&self, key: &Key, ttl: Ttl) -> Result<bool, StoreError> {
        let mut cmd = self.key_cmd("PEXPIRE", key, 20);
        cmd.arg(ttl.as_millis());
        let set: u64 = self.write("expire", key, &cmd).await?;
        Ok(set == 1)
    }

    async fn ttl(&self, key: &Key) -> Result<KeyTtl, StoreError> {
        let millis: i64 = self.query("ttl", key, &self.key_cmd("PTTL", key, 0)).await?;
        Ok(match millis {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::ExpiresIn(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    fn list_keys(&self, pattern: &KeyPattern) -> KeyStream {
        self.scan_stream(Listing {
            op: "list_keys",
            label: pattern.as_str().to_owned(),
            rpattern: self.keys.pattern(pattern),
            kind: None,
        })
    }

    async fn update<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut UpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        const OP: &str = "update";
        let Some(mut ticket) = self.rounds.documents.join(key.as_str(), policy) else {
            // Combining off: today's path, each update its own round at once.
            return self
                .update_str(key, policy, &mut |current| Ok((f(current)?, None)), false)
                .await;
        };
        let mut own: DocumentStep = None;
        let outcome = {
            let mut apply = document_step(f, &mut own);
            match ticket.wait(OP, key.as_str(), &mut apply).await {
                Role::Finished(outcome) => outcome,
                Role::Lead(mut pass) => {
                    let outcome = self.lead_update(key, policy, &mut pass, &mut apply).await;
                    pass.finish(&outcome);
                    outcome
                }
            }
        };
        document_result(OP, key, own, outcome)
    }

    async fn increment(&self, key: &Key, by: i64) -> Result<i64, StoreError> {
        const OP: &str = "increment";
        let mut cmd = self.key_cmd("INCRBY", key, 20);
        cmd.arg(by);
        let (mut conn, acks) = self.conns.writer();
        let answer = self
            .conns
            .run_write(acks, OP, key.as_str(), async move {
                match conn.query::<i64>(&cmd).await {
                    Ok(value) => Ok(Ok(value)),
                    Err(error) => refusal(&error).map(Err).ok_or(error),
                }
            })
            .await?;
        answer.map_err(|refused| match refused {
            Refused::NotAnInteger => not_an_integer_document(OP, key),
            Refused::Overflow => increment_overflow_document(OP, key),
        })
    }

    async fn append(&self, key: &Key, item: &[u8]) -> Result<usize, StoreError> {
        const OP: &str = "append";
        check_append_item(OP, key.as_str(), item)?;
        let rkey = self.keys.key(key);
        let cmd = scripts::evalsha(&DOC_APPEND, &[rkey.as_ref()], item);
        let answer = scripts::run_shared(&self.conns, OP, key.as_str(), |mut conn| {
            let cmd = cmd.clone();
            async move {
                match conn.query::<usize>(&cmd).await {
                    Ok(len) => Ok(Ok(len)),
                    Err(error) if error.code() == Some("NOTARRAY") => Ok(Err(())),
                    Err(error) => Err(error),
                }
            }
        })
        .await?;
        answer.map_err(|()| not_an_array_document(OP, key))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conns.shared();
        self.conns
            .run("ping", "", conn.query::<()>(&redis::cmd("PING")))
            .await
    }

    async fn topology(&self) -> Result<statehouse_ports::Topology, StoreError> {
        Ok(self.conns.topology(&self.config).await)
    }
}

/// Why `INCRBY`/`HINCRBY` refused to add: the caller's error, not a
/// failure to map.
pub(crate) enum Refused {
    /// The value holds no integer.
    NotAnInteger,
    /// The sum would leave the `i64` range.
    Overflow,
}

/// The refusal an `INCRBY`/`HINCRBY` error reply says, if it is one
/// (`ERR value is not an integer…`, `ERR hash value is not an integer`,
/// `ERR increment or decrement would overflow`).
pub(crate) fn refusal(error: &redis::RedisError) -> Option<Refused> {
    if error.code() != Some("ERR") {
        return None;
    }
    let detail = error.detail().unwrap_or_default();
    if detail.contains("would overflow") {
        Some(Refused::Overflow)
    } else if detail.contains("not an integer") {
        Some(Refused::NotAnInteger)
    } else {
        None
    }
}

impl RedisStore {
    /// The WATCH section of a combined round of document updates, led by
    /// this caller (`Combiner`): one read, every member's closure, one
    /// write (`SET … KEEPTTL`, or `DEL`). Returns the attempt that
    /// committed.
    async fn lead_update<A>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        pass: &mut Pass<'_, '_, Option<Vec<u8>>>,
        apply: &mut A,
    ) -> Result<u32, StoreError>
    where
        A: FnMut(&Option<Vec<u8>>) -> Option<Option<Vec<u8>>> + Send,
    {
        const OP: &str = "update";
        let rkey = self.keys.key(key);
        let mut get = redis::cmd("GET");
        get.arg(rkey.as_ref());
        let writes = |value: Option<Vec<u8>>| {
            let mut writes = redis::pipe();
            match value {
                Some(value) => writes
                    .cmd("SET")
                    .arg(rkey.as_ref())
                    .arg(value)
                    .arg("KEEPTTL")
                    .ignore(),
                None => writes.cmd("DEL").arg(rkey.as_ref()).ignore(),
            };
            writes
        };
        txn::combined(
            &self.conns,
            OP,
            key.as_str(),
            &[rkey.as_ref()],
            &[get],
            policy,
            pass,
            apply,
            writes,
        )
        .await
    }

    /// THE document read-modify-write, for `update` and the change feed's
    /// `update_announced`: with `announce`, a committed write also
    /// publishes its change event (with the closure's version) in the same
    /// MULTI/EXEC.
    pub(crate) async fn update_str(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut AnnouncedUpdateFn<'_>,
        announce: bool,
    ) -> Result<Updated, StoreError> {
        const OP: &str = "update";
        let rkey = self.keys.key(key);
        let mut get = redis::cmd("GET");
        get.arg(rkey.as_ref());
        let mut decide = |(current,): (Option<Vec<u8>>,)| -> Result<Decision<Option<Vec<u8>>>, StoreError> {
            let (decision, version) = f(current.as_deref()).map_err(|source| StoreError::Aborted {
                op: OP,
                key: key.to_string(),
                source,
            })?;
            let mut writes = redis::pipe();
            let (kind, value) = match decision {
                Update::Keep => return Ok(Decision::Done(current)),
                Update::Set(value) => {
                    writes
                        .cmd("SET")
                        .arg(rkey.as_ref())
                        .arg(&value)
                        .arg("KEEPTTL")
                        .ignore();
                    (ChangeKind::Set, Some(value))
                }
                Update::Delete => {
                    writes.cmd("DEL").arg(rkey.as_ref()).ignore();
                    (ChangeKind::Deleted, None)
                }
            };
            if announce {
                writes
                    .cmd("PUBLISH")
                    .arg(self.keys.change_channel(key.as_str()))
                    .arg(ChangeNotice { kind, version }.to_json())
                    .ignore();
            }
            Ok(Decision::Commit(writes, value))
        };
        let committed = txn::optimistic(
            &self.conns,
            OP,
            key.as_str(),
            &[rkey.as_ref()],
            &[get],
            policy,
            &mut decide,
        )
        .await?;
        Ok(Updated {
            value: committed.value,
            attempts: committed.attempts,
        })
    }

    /// THE document compare-and-set, for the change feed's
    /// `swap_announced`: one `EVALSHA` of [`DOC_SWAP`] on the shared
    /// connection (no WATCH), publishing the same notice on the same channel
    /// as an announced `update_str`.
    pub(crate) async fn swap_str(
        &self,
        key: &Key,
        expected: Option<&[u8]>,
        new: &[u8],
        version: Option<u64>,
    ) -> Result<Swapped, StoreError> {
        const OP: &str = "swap";
        let rkey = self.keys.key(key);
        let notice = ChangeNotice {
            kind: ChangeKind::Set,
            version,
        }
        .to_json();
        let channel = self.keys.change_channel(key.as_str());
        let data = expected.map_or(0, <[u8]>::len) + new.len() + channel.len() + notice.len();
        let cmd = &scripts::evalsha_sized(
            &DOC_SWAP,
            &[rkey.as_ref()],
            (
                if expected.is_some() { "1" } else { "0" },
                expected.unwrap_or_default(),
                new,
                channel,
                notice,
            ),
            data,
        );
        let reply: Vec<Value> = scripts::run_shared(&self.conns, OP, key.as_str(), |mut conn| async move {
            conn.query(cmd).await
        })
        .await?;
        let unexpected = || StoreError::Operation {
            op: OP,
            key: key.to_string(),
            source: format!("the swap script answered {reply:?}").into(),
        };
        match reply.as_slice() {
            [Value::Int(1)] => Ok(Swapped::Swapped),
            [Value::Int(0)] | [Value::Int(0), Value::Nil | Value::Boolean(false)] => {
                Ok(Swapped::Refused(None))
            }
            [Value::Int(0), Value::BulkString(current)] => Ok(Swapped::Refused(Some(current.clone()))),
            _ => Err(unexpected()),
        }
    }
}
