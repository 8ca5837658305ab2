//! The keyspace: one map shared by every port of a [`MemoryStore`], like the
//! one keyspace of a Redis database.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// A value and its bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    /// Unique per write across the store: a changed version means a changed key.
    pub(crate) version: u64,
    pub(crate) expires_at: Option<Instant>,
}

/// What a key holds. Redis keys have types; so do these, so that using a
/// key with the wrong kind of operation fails the same way on both backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A Redis string: what documents are stored as.
    Str(Vec<u8>),
    /// A Redis hash.
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// In-flight optimistic updates of one key (Redis' WATCH, in memory): every
/// write to a watched key bumps `touched`, and an update commits only if
/// `touched` is unchanged since its read. Tracking writes rather than
/// versions also catches "deleted and re-created" in between.
#[derive(Debug, Default)]
struct Watch {
    watchers: usize,
    touched: u64,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    entries: HashMap<String, Entry>,
    watches: HashMap<String, Watch>,
    /// Due times of keys with a TTL, earliest first. Entries are checked
    /// against the key's current version when popped, so a rewritten key
    /// leaves a stale item behind instead of needing a removal here.
    expiries: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_version: u64,
}

impl State {
    /// The live entry of `key`; an expired one is removed first (so it is
    /// never returned, even before the purge task gets to it).
    pub(crate) fn live(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        self.expire_if_due(key, now);
        self.entries.get(key)
    }

    /// Writes `value` under `key` with an optional expiry.
    pub(crate) fn put(&mut self, key: &str, value: Value, expires_at: Option<Instant>) {
        self.next_version += 1;
        let version = self.next_version;
        if let Some(at) = expires_at {
            self.expiries.push(Reverse((at, version, key.to_owned())));
        }
        self.entries.insert(
            key.to_owned(),
            Entry {
                value,
                version,
                expires_at,
            },
        );
        self.touch(key);
    }

    /// Removes `key`; returns whether it was live.
    pub(crate) fn remove(&mut self, key: &str, now: Instant) -> bool {
        self.expire_if_due(key, now);
        let existed = self.entries.remove(key).is_some();
        if existed {
            self.touch(key);
        }
        existed
    }

    /// Sets a new expiry on a live key; returns whether it existed.
    pub(crate) fn set_expiry(&mut self, key: &str, expires_at: Instant, now: Instant) -> bool {
        self.expire_if_due(key, now);
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        self.next_version += 1;
        entry.version = self.next_version;
        entry.expires_at = Some(expires_at);
        self.expiries
            .push(Reverse((expires_at, entry.version, key.to_owned())));
        self.touch(key);
        true
    }

    /// All live keys.
    pub(crate) fn live_keys(&self, now: Instant) -> impl Iterator<Item = &String> {
        self.entries
            .iter()
            .filter(move |(_, entry)| entry.expires_at.is_none_or(|at| at > now))
            .map(|(key, _)| key)
    }

    /// Registers an optimistic reader of `key` and returns the write count to
    /// compare against at commit.
    pub(crate) fn watch(&mut self, key: &str) -> u64 {
        let watch = self.watches.entry(key.to_owned()).or_default();
        watch.watchers += 1;
        watch.touched
    }

    /// Whether `key` was written since [`watch`](Self::watch) returned `seen`.
    /// Also drops one watcher registration.
    pub(crate) fn unwatch(&mut self, key: &str, seen: u64) -> bool {
        let Some(watch) = self.watches.get_mut(key) else {
            return true;
        };
        let touched = watch.touched != seen;
        watch.watchers -= 1;
        if watch.watchers == 0 {
            self.watches.remove(key);
        }
        touched
    }

    fn touch(&mut self, key: &str) {
        if let Some(watch) = self.watches.get_mut(key) {
            watch.touched += 1;
        }
    }

    fn expire_if_due(&mut self, key: &str, now: Instant) {
        let due = self
            .entries
            .get(key)
            .and_then(|entry| entry.expires_at)
            .is_some_and(|at| at <= now);
        if due {
            self.entries.remove(key);
            self.touch(key);
        }
    }

    /// Removes every key whose expiry has passed; cost proportional to the
    /// number of due items.
    pub(crate) fn purge_due(&mut self, now: Instant) {
        while let Some(Reverse((at, version, _))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            let version = *version;
            let Some(Reverse((_, _, key))) = self.expiries.pop() else {
                break;
            };
            if self
                .entries
                .get(&key)
                .is_some_and(|entry| entry.version == version)
            {
                self.entries.remove(&key);
                self.touch(&key);
            }
        }
        // Rewritten keys leave stale heap items; rebuild when they dominate.
        if self.expiries.len() > 64 && self.expiries.len() > 4 * self.entries.len() {
            let entries = &self.entries;
            self.expiries.retain(|Reverse((_, version, key))| {
                entries.get(key).is_some_and(|entry| entry.version == *version)
            });
        }
    }
}

/// The shared keyspace behind a [`MemoryStore`](crate::MemoryStore).
#[derive(Debug)]
pub(crate) struct Keyspace {
    state: Mutex<State>,
    purger: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Keyspace {
    /// How often the background task removes expired keys. Expired keys are
    /// never *readable* in between; this only bounds the memory they hold.
    pub(crate) const PURGE_EVERY: Duration = Duration::from_millis(250);

    pub(crate) fn new() -> Arc<Self> {
        let keyspace = Arc::new(Self {
            state: Mutex::new(State::default()),
            purger: Mutex::new(None),
        });
        // Outside a runtime there is no task; writes still purge what is due.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&keyspace);
            let task = runtime.spawn(purge_loop(weak));
            *lock(&keyspace.purger) = Some(task.abort_handle());
        }
        keyspace
    }

    /// Locks the state. The lock is a `std::sync::Mutex`: it is only ever
    /// held for a few map operations and never across an `.await`, which is
    /// the case where a blocking mutex is both correct and fastest.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = lock(&self.state);
        state.purge_due(Instant::now());
        state
    }
}

impl Drop for Keyspace {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.purger).take() {
            task.abort();
        }
    }
}

/// Locks a mutex, recovering from poisoning: the state is only mutated by
/// this crate's short, non-panicking sections, so a poisoned lock (a panic
/// in an unrelated thread holding it) leaves consistent data behind.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn purge_loop(keyspace: Weak<Keyspace>) {
    loop {
        tokio::time::sleep(Keyspace::PURGE_EVERY).await;
        let Some(keyspace) = keyspace.upgrade() else {
            return;
        };
        drop(keyspace.lock());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str_value(s: &str) -> Value {
        Value::Str(s.as_bytes().to_vec())
    }

    #[tokio::test(start_paused = true)]
    async fn the_background_task_purges_expired_keys_nobody_reads() {
        let keyspace = Keyspace::new();
        let now = Instant::now();
        {
            let mut state = keyspace.lock();
            state.put("short", str_value("a"), Some(now + Duration::from_millis(100)));
            state.put("long", str_value("b"), Some(now + Duration::from_secs(3600)));
            state.put("forever", str_value("c"), None);
        }
        tokio::time::sleep(Keyspace::PURGE_EVERY * 2).await;
        let state = lock(&keyspace.state);
        let mut left: Vec<&String> = state.entries.keys().collect();
        left.sort();
        assert_eq!(left, ["forever", "long"]);
    }

    #[test]
    fn rewritten_keys_do_not_pile_up_in_the_expiry_heap() {
        let mut state = State::default();
        let now = Instant::now();
        for _ in 0..1000 {
            state.put("k", str_value("v"), Some(now + Duration::from_secs(60)));
            state.purge_due(now);
        }
        assert!(
            state.expiries.len() <= 64 + 4,
            "{} stale items",
            state.expiries.len()
        );
    }

    #[test]
    fn a_watch_sees_delete_and_recreate_as_a_change() {
        let mut state = State::default();
        let now = Instant::now();
        state.put("k", str_value("v"), None);
        let seen = state.watch("k");
        state.remove("k", now);
        state.put("k", str_value("v"), None);
        assert!(state.unwatch("k", seen), "same value, but written in between");
        let seen = state.watch("k");
        assert!(!state.unwatch("k", seen));
        assert!(state.watches.is_empty(), "registrations are dropped");
    }
}
