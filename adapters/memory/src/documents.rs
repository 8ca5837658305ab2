use async_trait::async_trait;
use statehouse_domain::{Key, KeyPattern, Ttl};
use statehouse_ports::Swapped;
use statehouse_ports::{
    AnnouncedUpdateFn, DocumentStep, DocumentStore, Fetched, KeyStream, KeyTtl, RetryPolicy, Role,
    SetCondition, SetOptions, StoreError, Update, UpdateFn, Updated, append_to_array, canonical_integer,
    check_append_item, document_result, document_step, increment_overflow_document, not_an_array_document,
    not_an_integer_document,
};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::listing::Kind;
use crate::store::{Decision, State, Value};

const UPDATE: &str = "update";
const SWAP: &str = "swap";

/// The string value of a live key, `None` if missing, `WrongType` if it holds
/// something else.
fn read_str(
    state: &mut State,
    op: &'static str,
    key: &Key,
    now: Instant,
) -> Result<Option<Vec<u8>>, StoreError> {
    match state.live(key.as_str(), now).map(|entry| &entry.value) {
        None => Ok(None),
        Some(Value::Str(bytes)) => Ok(Some(bytes.clone())),
        Some(_) => Err(StoreError::wrong_type(op, key.as_str())),
    }
}

#[async_trait]
impl DocumentStore for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
        read_str(&mut self.keyspace.lock(), "get", key, Instant::now())
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Fetched>, StoreError> {
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        Ok(keys
            .iter()
            .map(|key| read_str(&mut state, "get_many", key, now))
            .collect())
    }

    async fn set(&self, key: &Key, value: &[u8], options: SetOptions) -> Result<bool, StoreError> {
        self.replicated("set", key.as_str(), async {
            let now = Instant::now();
            let mut state = self.keyspace.lock();
            let exists = state.live(key.as_str(), now).is_some();
            let write = match options.condition {
                SetCondition::IfAbsent => !exists,
                SetCondition::IfPresent => exists,
                SetCondition::Always => true,
            };
            if write {
                let expires_at = options.ttl.map(|ttl| now + ttl.as_duration());
                state.put(key.as_str(), Value::Str(value.to_vec()), expires_at);
            }
            Ok(write)
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        self.replicated("delete", key.as_str(), async {
            Ok(self.keyspace.lock().remove(key.as_str(), Instant::now()))
        })
        .await
    }

    async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        Ok(self.keyspace.lock().live(key.as_str(), Instant::now()).is_some())
    }

    async fn expire(&self, key: &Key, ttl: Ttl) -> Result<bool, StoreError> {
        self.replicated("expire", key.as_str(), async {
            let now = Instant::now();
            Ok(self
                .keyspace
                .lock()
                .set_expiry(key.as_str(), now + ttl.as_duration(), now))
        })
        .await
    }

    async fn ttl(&self, key: &Key) -> Result<KeyTtl, StoreError> {
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        Ok(match state.live(key.as_str(), now) {
            None => KeyTtl::Missing,
            Some(entry) => match entry.expires_at {
                None => KeyTtl::Persistent,
                // Redis' PTTL rounds to whole milliseconds; so does this.
                Some(at) => KeyTtl::ExpiresIn(std::time::Duration::from_millis(
                    u64::try_from((at - now).as_millis()).unwrap_or(u64::MAX),
                )),
            },
        })
    }

    fn list_keys(&self, pattern: &KeyPattern) -> KeyStream {
        self.scan_stream(pattern.as_str().to_owned(), Kind::Any)
    }

    async fn update<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut UpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        let Some(mut ticket) = self.rounds.documents.join(key.as_str(), policy) else {
            // Combining off: today's path, each update its own round at once.
            return self
                .update_str(key, policy, &mut |current| Ok((f(current)?, None)))
                .await;
        };
        let mut own: DocumentStep = None;
        let outcome = {
            let mut apply = document_step(f, &mut own);
            match ticket.wait(UPDATE, key.as_str(), &mut apply).await {
                Role::Finished(outcome) => outcome,
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
                            |state, now| read_str(state, UPDATE, key, now),
                            |state, now, write| {
                                state.announcing(None, |state| match write {
                                    Some(value) => {
                                        // Keep the TTL, like `SET … KEEPTTL`.
                                        let expires_at =
                                            state.live(key.as_str(), now).and_then(|entry| entry.expires_at);
                                        state.put(key.as_str(), Value::Str(value), expires_at);
                                    }
                                    None => {
                                        state.remove(key.as_str(), now);
                                    }
                                });
                                Ok(())
                            },
                        )
                        .await;
                    pass.finish(&outcome);
                    outcome
                }
            }
        };
        document_result(UPDATE, key, own, outcome)
    }

    async fn increment(&self, key: &Key, by: i64) -> Result<i64, StoreError> {
        const OP: &str = "increment";
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        let (new, expires_at) = match state.live(key.as_str(), now) {
            None => (by, None),
            Some(entry) => {
                let Value::Str(bytes) = &entry.value else {
                    return Err(StoreError::wrong_type(OP, key.as_str()));
                };
                let current = canonical_integer(bytes).ok_or_else(|| not_an_integer_document(OP, key))?;
                let new = current
                    .checked_add(by)
                    .ok_or_else(|| increment_overflow_document(OP, key))?;
                (new, entry.expires_at)
            }
        };
        // Keeps the TTL, like `INCRBY`.
        state.put(key.as_str(), Value::Str(new.to_string().into_bytes()), expires_at);
        drop(state);
        self.unreplicated(OP, key.as_str())?;
        Ok(new)
    }

    async fn append(&self, key: &Key, item: &[u8]) -> Result<usize, StoreError> {
        const OP: &str = "append";
        check_append_item(OP, key.as_str(), item)?;
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        let (bytes, len, expires_at) = match state.live(key.as_str(), now) {
            None => {
                let mut bytes = Vec::with_capacity(item.len() + 2);
                bytes.push(b'[');
                bytes.extend_from_slice(item);
                bytes.push(b']');
                (bytes, 1, None)
            }
            Some(entry) => {
                let Value::Str(current) = &entry.value else {
                    return Err(StoreError::wrong_type(OP, key.as_str()));
                };
                let (bytes, len) =
                    append_to_array(current, item).ok_or_else(|| not_an_array_document(OP, key))?;
                (bytes, len, entry.expires_at)
            }
        };
        // Keeps the TTL, like the Redis script's `SET … KEEPTTL`.
        state.put(key.as_str(), Value::Str(bytes), expires_at);
        drop(state);
        self.unreplicated(OP, key.as_str())?;
        Ok(len)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn topology(&self) -> Result<statehouse_ports::Topology, StoreError> {
        Ok(statehouse_ports::Topology::new(
            statehouse_ports::TopologyKind::Memory,
            Vec::new(),
        ))
    }
}

impl MemoryStore {
    /// THE document read-modify-write, for `update` and the change feed's
    /// `update_announced`: the closure decides and names the version its
    /// events announce (`None`: no version).
    pub(crate) async fn update_str(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut AnnouncedUpdateFn<'_>,
    ) -> Result<Updated, StoreError> {
        let (value, attempts) = self
            .keyspace
            .optimistic(
                UPDATE,
                key.as_str(),
                &[key.as_str()],
                self.section(policy),
                |state, now| read_str(state, UPDATE, key, now),
                |current| {
                    let (decision, version) =
                        f(current.as_deref()).map_err(|source| StoreError::Aborted {
                            op: UPDATE,
                            key: key.to_string(),
                            source,
                        })?;
                    Ok(match decision {
                        Update::Keep => Decision::Done(current),
                        Update::Set(value) => Decision::Commit((Some(value), version)),
                        Update::Delete => Decision::Commit((None, version)),
                    })
                },
                |state, now, (write, version)| {
                    state.announcing(version, |state| match &write {
                        Some(value) => {
                            // Keep the TTL, like `SET … KEEPTTL`.
                            let expires_at = state.live(key.as_str(), now).and_then(|entry| entry.expires_at);
                            state.put(key.as_str(), Value::Str(value.clone()), expires_at);
                        }
                        None => {
                            state.remove(key.as_str(), now);
                        }
                    });
                    write
                },
            )
            .await?;
        Ok(Updated { value, attempts })
    }

    /// THE document compare-and-set, for the change feed's `swap_announced`:
    /// under the keyspace lock, so it is one atomic step; on a match the
    /// write keeps the TTL and emits the same event as `update_str` does.
    pub(crate) fn swap_str(
        &self,
        key: &Key,
        expected: Option<&[u8]>,
        new: &[u8],
        version: Option<u64>,
    ) -> Result<Swapped, StoreError> {
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        let current = read_str(&mut state, SWAP, key, now)?;
        if current.as_deref() != expected {
            return Ok(Swapped::Refused(current));
        }
        state.announcing(version, |state| {
            // Keep the TTL, like `SET … KEEPTTL`.
            let expires_at = state.live(key.as_str(), now).and_then(|entry| entry.expires_at);
            state.put(key.as_str(), Value::Str(new.to_vec()), expires_at);
        });
        Ok(Swapped::Swapped)
    }
}
