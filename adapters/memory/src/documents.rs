use async_trait::async_trait;
use statehouse_domain::{Key, KeyPattern, Ttl};
use statehouse_ports::{
    DocumentStore, Fetched, KeyTtl, RetryPolicy, SetCondition, SetOptions, StoreError, Update, UpdateFn,
    Updated,
};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::glob;
use crate::store::{State, Value};

const UPDATE: &str = "update";

fn wrong_type(op: &'static str, key: &Key) -> StoreError {
    StoreError::WrongType {
        op,
        key: key.to_string(),
    }
}

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
        Some(_) => Err(wrong_type(op, key)),
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
    }

    async fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        Ok(self.keyspace.lock().remove(key.as_str(), Instant::now()))
    }

    async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        Ok(self.keyspace.lock().live(key.as_str(), Instant::now()).is_some())
    }

    async fn expire(&self, key: &Key, ttl: Ttl) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(self
            .keyspace
            .lock()
            .set_expiry(key.as_str(), now + ttl.as_duration(), now))
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

    async fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<String>, StoreError> {
        let now = Instant::now();
        let state = self.keyspace.lock();
        let mut keys: Vec<String> = state
            .live_keys(now)
            .filter(|key| glob::matches(pattern.as_str().as_bytes(), key.as_bytes()))
            .cloned()
            .collect();
        drop(state);
        keys.sort_unstable();
        Ok(keys)
    }

    async fn update<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut UpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        for attempt in 1..=policy.max_attempts() {
            // Read under the lock, decide outside it, commit under it only if
            // nobody wrote the key in between: the same optimistic protocol
            // as WATCH/MULTI/EXEC, so conflicts and re-runs behave alike.
            let (current, seen) = {
                let mut state = self.keyspace.lock();
                let current = read_str(&mut state, UPDATE, key, Instant::now())?;
                (current, state.watch(key.as_str()))
            };
            let mut watch = WatchGuard {
                store: self,
                key,
                seen: Some(seen),
            };
            let decision = match f(current.as_deref()) {
                Ok(decision) => decision,
                Err(source) => {
                    return Err(StoreError::Aborted {
                        op: UPDATE,
                        key: key.to_string(),
                        source,
                    });
                }
            };
            let write = match decision {
                Update::Keep => {
                    return Ok(Updated {
                        value: current,
                        attempts: attempt,
                    });
                }
                Update::Set(value) => Some(value),
                Update::Delete => None,
            };
            if let Some(updated) = self.commit(key, write, &mut watch, attempt) {
                return Ok(updated);
            }
            if attempt < policy.max_attempts() {
                tokio::time::sleep(policy.backoff(attempt)).await;
            }
        }
        Err(StoreError::Conflict {
            op: UPDATE,
            key: key.to_string(),
            attempts: policy.max_attempts(),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl MemoryStore {
    /// Writes an update's decision (`Some` value to set, `None` to delete)
    /// if the key was not written since the read; `None` on conflict.
    fn commit(
        &self,
        key: &Key,
        write: Option<Vec<u8>>,
        watch: &mut WatchGuard<'_>,
        attempt: u32,
    ) -> Option<Updated> {
        let now = Instant::now();
        // Locking purges what is due, so a key that expired since the read
        // counts as written: the same as Redis aborting EXEC for it.
        let mut state = self.keyspace.lock();
        if watch.release(&mut state) {
            return None;
        }
        match &write {
            Some(value) => {
                // Keep the TTL, like `SET … KEEPTTL`.
                let expires_at = state.live(key.as_str(), now).and_then(|entry| entry.expires_at);
                state.put(key.as_str(), Value::Str(value.clone()), expires_at);
            }
            None => {
                state.remove(key.as_str(), now);
            }
        }
        Some(Updated {
            value: write,
            attempts: attempt,
        })
    }
}

/// Holds one watch registration and drops it on every path out of an
/// attempt, including cancellation of the caller's future.
struct WatchGuard<'s> {
    store: &'s MemoryStore,
    key: &'s Key,
    seen: Option<u64>,
}

impl WatchGuard<'_> {
    /// Drops the registration; returns whether the key was written since the
    /// read (a conflict).
    fn release(&mut self, state: &mut State) -> bool {
        match self.seen.take() {
            Some(seen) => state.unwatch(self.key.as_str(), seen),
            None => true,
        }
    }
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        if self.seen.is_some() {
            let mut state = self.store.keyspace.lock();
            self.release(&mut state);
        }
    }
}
