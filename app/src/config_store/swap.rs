//! The updates of the config store: each a compare-and-set of the entry's
//! envelope ([`ChangeFeed::swap_announced`]) made the attempts of THE
//! optimistic loop ([`RetryPolicy::run`](statehouse_ports::RetryPolicy::run)),
//! and the cache taking the bytes it wrote.

use std::sync::Arc;

use serde::Serialize;
use statehouse_domain::{ConfigEntry, VersionMismatch};
use statehouse_ports::{Attempt, ChangeFeed, JsonError, Key, Optimistic, StoreError, Swapped};

use super::cache::{Cached, LazyValue, cached_of, holds, lock, same};
use super::{ConfigStore, OP_UPDATE, entry_key};

/// The operation errors of the entry's read-modify-write name (as the
/// document port's `update` did).
const UPDATE_OP: &str = "update";

/// Why no next envelope could be computed.
enum NextError {
    Store(StoreError),
    Mismatch(VersionMismatch),
}

impl ConfigStore {
    /// Writes `value` as the next version of `name`; returns that version.
    /// Atomic with the version bump: concurrent writers get consecutive
    /// versions. In history mode the previous value is kept.
    pub async fn update<T: Serialize + Sync + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<u64, StoreError> {
        self.write(OP_UPDATE, name, value, None).await
    }

    /// Like [`update`](Self::update), only if `name` is at
    /// `expected_version` (0: does not exist); otherwise
    /// [`StoreError::VersionConflict`] (kind `Conflict`, naming both
    /// versions) and nothing is written.
    pub async fn update_if<T: Serialize + Sync + ?Sized>(
        &self,
        name: &str,
        expected_version: u64,
        value: &T,
    ) -> Result<u64, StoreError> {
        self.write("config_update_if", name, value, Some(expected_version))
            .await
    }

    async fn write<T: Serialize + Sync + ?Sized>(
        &self,
        op: &'static str,
        name: &str,
        value: &T,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let key = entry_key(op, name)?;
        // What the entry holds as far as this handle knows: the cache's
        // bytes (one round trip when they are current), else a guess that
        // it is absent, which a refusal corrects with the current bytes.
        let (cached, expected, head) = match lock(&self.shared.cache).get(name).map(|slot| &slot.state) {
            Some(Cached::Present {
                bytes, version, keep, ..
            }) => (true, Some(Arc::clone(bytes)), Some((*version, *keep))),
            Some(Cached::Absent) => (true, None, Some((0, 0))),
            Some(Cached::Bad { .. }) => (true, None, None),
            None => (false, None, None),
        };
        let mut swap = Swap {
            store: self,
            op,
            name,
            key: &key,
            value,
            json: None,
            expected_version,
            expected,
            head,
            from_server: false,
        };
        let ((version, written, plain), _) = self.policy.run(UPDATE_OP, key.as_str(), &mut swap).await?;
        if cached && !self.adopt(name, swap.expected.as_deref(), written, plain.then_some(version)) {
            self.refresh_if_cached(name).await;
        }
        Ok(version)
    }

    /// The envelope that follows the stored bytes `current`, as the
    /// optimistic update's closure decided it.
    fn next_entry(
        &self,
        key: &Key,
        current: Option<&[u8]>,
        value: &serde_json::Value,
        expected_version: Option<u64>,
    ) -> Result<ConfigEntry, NextError> {
        let current = match current {
            None => None,
            Some(bytes) => Some(serde_json::from_slice::<ConfigEntry>(bytes).map_err(|error| {
                NextError::Store(StoreError::Aborted {
                    op: UPDATE_OP,
                    key: key.to_string(),
                    source: format!(
                        "the stored entry is not a config envelope: {}",
                        JsonError::without_data(&error)
                    )
                    .into(),
                })
            })?),
        };
        ConfigEntry::next(current.as_ref(), value.clone(), self.history, expected_version)
            .map_err(NextError::Mismatch)
    }

    /// After a local swap of a cached entry from `base` to `written`: if the
    /// cache still holds `base`, nothing newer was read, and `written` is
    /// what the store held right after the swap, so the cache takes it at
    /// once (and tells the watchers), without a read; the slot counts the
    /// local write so that a read in flight, which may predate it, is not
    /// applied over it (the task reads again instead). `false` when the
    /// cache holds something else: then the caller has it read again.
    ///
    /// `plain`: the version of `written` when it is an envelope in plain
    /// mode this handle built ([`plain_entry`]), which the cache takes
    /// without decoding it (the value is decoded when a reader asks).
    fn adopt(&self, name: &str, base: Option<&[u8]>, written: Vec<u8>, plain: Option<u64>) -> bool {
        let mut cache = lock(&self.shared.cache);
        let Some(slot) = cache.get_mut(name) else {
            return true;
        };
        if !holds(&slot.state, base) {
            return false;
        }
        slot.local += 1;
        let state = match plain {
            Some(version) => Cached::Present {
                version,
                keep: 0,
                value: LazyValue::default(),
                bytes: Arc::from(written),
            },
            None => cached_of(Some(&written)),
        };
        if !same(&slot.state, &state) {
            slot.state = state;
            slot.typed = None;
            slot.sinks.retain_mut(|sink| sink(name, &slot.state));
        }
        true
    }
}

/// The envelope of a plain-mode entry (no history, `keep` 0), as
/// [`ConfigEntry`] writes it (`{"version":N,"value":…}`), serialized from
/// the caller's value in one pass.
#[derive(Serialize)]
struct PlainEntry<'a, T: ?Sized> {
    version: u64,
    value: &'a T,
}

/// The compare-and-set attempts of one config write, for
/// [`RetryPolicy::run`]: compute the next envelope from the bytes expected,
/// swap it in if the entry still holds them. A refusal answers the current
/// bytes, expected by the next attempt.
struct Swap<'a, T: ?Sized> {
    store: &'a ConfigStore,
    op: &'static str,
    name: &'a str,
    key: &'a Key,
    value: &'a T,
    /// `value` as JSON, made when an envelope must be built from a decoded
    /// one (history mode, or bytes from the server).
    json: Option<serde_json::Value>,
    expected_version: Option<u64>,
    /// The bytes the entry is expected to hold (`None`: absent).
    expected: Option<Arc<[u8]>>,
    /// The version and history length of `expected` as the cache decoded
    /// them (`(0, 0)`: absent), while `expected` is the cache's: a plain
    /// entry's next envelope is then built without decoding it again.
    head: Option<(u64, usize)>,
    /// Whether `expected` came from the server (the last refusal or a
    /// read) rather than the cache or a guess: only then is a refusal a
    /// conflict with another writer, and a bad or mismatching entry final.
    /// Until then, a refusal or a failure repeats the attempt on what the
    /// server holds, without counting.
    from_server: bool,
}

impl<T: Serialize + Sync + ?Sized> Swap<'_, T> {
    /// The next envelope's version and bytes, and whether it is one in
    /// plain mode built by [`PlainEntry`].
    fn next(&mut self) -> Result<(u64, Vec<u8>, bool), NextError> {
        let (op, name) = (self.op, self.name);
        if let Some((version, keep)) = self.head
            && self.store.history.unwrap_or(keep) == 0
            && self.expected_version.is_none_or(|expected| expected == version)
        {
            let next = PlainEntry {
                version: version + 1,
                value: self.value,
            };
            // Sized like the bytes it follows, so it is written without regrowing.
            let mut bytes = Vec::with_capacity(self.expected.as_ref().map_or(128, |held| held.len() + 32));
            serde_json::to_writer(&mut bytes, &next)
                .map_err(|error| NextError::Store(StoreError::serialization(op, name, error)))?;
            return Ok((next.version, bytes, true));
        }
        let json = match &mut self.json {
            Some(json) => json,
            none => none.insert(
                serde_json::to_value(self.value)
                    .map_err(|error| NextError::Store(StoreError::serialization(op, name, error)))?,
            ),
        };
        let next = self
            .store
            .next_entry(self.key, self.expected.as_deref(), json, self.expected_version)?;
        let bytes = serde_json::to_vec(&next)
            .map_err(|error| NextError::Store(StoreError::serialization(op, name, error)))?;
        Ok((next.version, bytes, false))
    }
}

impl<T: Serialize + Sync + ?Sized> Optimistic for Swap<'_, T> {
    /// The version written, the bytes, and whether they are a plain-mode
    /// envelope built here.
    type Output = (u64, Vec<u8>, bool);

    async fn attempt(&mut self, _: u32) -> Result<Attempt<(u64, Vec<u8>, bool)>, StoreError> {
        let (op, name) = (self.op, self.name);
        let (version, bytes, plain) = match self.next() {
            Ok(next) => next,
            Err(NextError::Store(error @ StoreError::Serialization { .. })) => return Err(error),
            Err(_) if !self.from_server => {
                // The cache may be behind: decide on what the server holds.
                self.expected = self.store.shared.documents.get(self.key).await?.map(Arc::from);
                self.head = None;
                self.from_server = true;
                return Ok(Attempt::Repeat);
            }
            Err(NextError::Store(error)) => return Err(error),
            Err(NextError::Mismatch(found)) => {
                return Err(StoreError::VersionConflict {
                    op,
                    key: name.to_owned(),
                    expected: found.expected,
                    actual: found.actual,
                });
            }
        };
        let swapped = self
            .store
            .shared
            .changes
            .swap_announced(self.key, self.expected.as_deref(), &bytes, Some(version))
            .await?;
        match swapped {
            Swapped::Swapped => Ok(Attempt::Done((version, bytes, plain))),
            Swapped::Refused(current) => {
                self.expected = current.map(Arc::from);
                self.head = None;
                if self.from_server {
                    Ok(Attempt::Conflict)
                } else {
                    self.from_server = true;
                    Ok(Attempt::Repeat)
                }
            }
        }
    }
}
