//! [`State`]: the keyspace's contents under its lock: entries, expiries,
//! the watches of optimistic updates, and the change feed's subscribers;
//! each method changes it as one Redis command does.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use statehouse_ports::{ChangeEvent, ChangeKind, FeedEvent, SubscriptionSender, Watched};
use tokio::time::Instant;

use super::{Entry, Hash, Value, ZSet};

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
    pub(super) entries: HashMap<String, Entry>,
    watches: HashMap<String, Watch>,
    /// Due times of keys with a TTL, earliest first. Entries are checked
    /// against the key's current version when popped, so a rewritten key
    /// leaves a stale item behind instead of needing a removal here.
    expiries: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_version: u64,
    /// The change feed's subscribers (`changes.rs`).
    feed: Feed,
}

/// The subscribers of the change feed, told of every change under the lock
/// (sending never waits: a full buffer marks its subscriber lagged).
#[derive(Debug, Default)]
struct Feed {
    subscribers: Vec<(Watched, SubscriptionSender)>,
    /// The version an announced write (`update_announced`) names, for the
    /// events of its commit.
    announced: Option<u64>,
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
        self.emit(key, ChangeKind::Set);
    }

    /// Removes `key`; returns whether it was live.
    pub(crate) fn remove(&mut self, key: &str, now: Instant) -> bool {
        self.expire_if_due(key, now);
        let existed = self.entries.remove(key).is_some();
        if existed {
            self.touch(key);
            self.emit(key, ChangeKind::Deleted);
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

    /// Changes the value of a live key in place (no new version, no expiry
    /// change) and tells its watchers. `None` if the key is missing.
    fn modify<T>(&mut self, key: &str, now: Instant, f: impl FnOnce(&mut Value) -> T) -> Option<T> {
        self.expire_if_due(key, now);
        let result = f(&mut self.entries.get_mut(key)?.value);
        self.touch(key);
        self.emit(key, ChangeKind::Set);
        Some(result)
    }

    /// Makes a live key expire at `at` unless it already lives longer: a
    /// persistent key stays persistent, a later expiry stays. What every
    /// TTL refresh of the families does ("never shortens a longer TTL").
    pub(crate) fn extend_expiry(&mut self, key: &str, at: Instant, now: Instant) {
        let longer = match self.live(key, now) {
            None => return,
            Some(entry) => entry.expires_at.is_none_or(|current| current >= at),
        };
        if !longer {
            self.set_expiry(key, at, now);
        }
    }

    /// Writes `value` under `key`, expiring at `at` unless the key already
    /// lives longer (then its expiry, or persistence, is kept).
    pub(crate) fn put_extending(&mut self, key: &str, value: Value, at: Instant, now: Instant) {
        let keep = self
            .live(key, now)
            .map(|entry| entry.expires_at)
            .filter(|current| current.is_none_or(|current| current >= at));
        self.put(key, value, keep.unwrap_or(Some(at)));
    }

    /// The sorted set under `key`; `None` if missing, `Err(())` if the key
    /// holds another type.
    pub(crate) fn zset(&mut self, key: &str, now: Instant) -> Result<Option<&ZSet>, ()> {
        match self.live(key, now).map(|entry| &entry.value) {
            None => Ok(None),
            Some(Value::ZSet(zset)) => Ok(Some(zset)),
            Some(_) => Err(()),
        }
    }

    /// `ZADD key score member`, then the key expires at `at` unless it lives
    /// longer; a new sorted set gets exactly `at`. `Err(())` (nothing
    /// written) if the key holds another type.
    pub(crate) fn zadd_extending(
        &mut self,
        key: &str,
        member: &str,
        score: f64,
        at: Instant,
        now: Instant,
    ) -> Result<(), ()> {
        if self.zset(key, now)?.is_none() {
            let mut zset = ZSet::default();
            zset.insert(member, score);
            self.put(key, Value::ZSet(zset), Some(at));
            return Ok(());
        }
        self.modify(key, now, |value| {
            if let Value::ZSet(zset) = value {
                zset.insert(member, score);
            }
        });
        self.extend_expiry(key, at, now);
        Ok(())
    }

    /// `ZREM key member`; an emptied set is removed, as Redis does. A key
    /// of another type is left alone.
    pub(crate) fn zrem(&mut self, key: &str, member: &str, now: Instant) {
        if !matches!(self.zset(key, now), Ok(Some(zset)) if zset.scores.contains_key(member)) {
            return;
        }
        let emptied = self.modify(key, now, |value| match value {
            Value::ZSet(zset) => zset.remove(member) && zset.len() == 0,
            _ => false,
        });
        if emptied == Some(true) {
            self.remove(key, now);
        }
    }

    /// The hash under `key`; `None` if missing, `Err(())` if the key holds
    /// another type.
    pub(crate) fn hash(&mut self, key: &str, now: Instant) -> Result<Option<&Hash>, ()> {
        match self.live(key, now).map(|entry| &entry.value) {
            None => Ok(None),
            Some(Value::Hash(hash)) => Ok(Some(hash)),
            Some(_) => Err(()),
        }
    }

    /// `HGET key field`; `Err(())` if the key holds another type.
    pub(crate) fn hget(&mut self, key: &str, field: &[u8], now: Instant) -> Result<Option<Vec<u8>>, ()> {
        Ok(self.hash(key, now)?.and_then(|hash| hash.get(field).cloned()))
    }

    /// `HSET key f v …` then `HDEL key f …` as one step: a new hash has no
    /// expiry, an existing one keeps its own, and an emptied hash is removed
    /// (as Redis removes it). `Err(())` (nothing written) if the key holds
    /// another type.
    pub(crate) fn hset_hdel(
        &mut self,
        key: &str,
        sets: &[(&[u8], &[u8])],
        deletes: &[&[u8]],
        now: Instant,
    ) -> Result<(), ()> {
        if self.hash(key, now)?.is_none() {
            if sets.is_empty() {
                return Ok(());
            }
            let mut hash = BTreeMap::new();
            for (field, value) in sets {
                hash.insert(field.to_vec(), value.to_vec());
            }
            for field in deletes {
                hash.remove(*field);
            }
            if !hash.is_empty() {
                self.put(key, Value::Hash(hash), None);
            }
            return Ok(());
        }
        let emptied = self.modify(key, now, |value| match value {
            Value::Hash(hash) => {
                for (field, value) in sets {
                    hash.insert(field.to_vec(), value.to_vec());
                }
                for field in deletes {
                    hash.remove(*field);
                }
                hash.is_empty()
            }
            _ => false,
        });
        if emptied == Some(true) {
            self.remove(key, now);
        }
        Ok(())
    }

    /// Changes the value under `key` in place, as one Redis command on a
    /// container does: a missing key starts as `empty` (a new key has no
    /// expiry, an existing one keeps its own), watchers are told, and a
    /// container left empty is removed. `Err(())` (nothing written) if the
    /// key holds another type than `empty`.
    pub(crate) fn edit<T>(
        &mut self,
        key: &str,
        now: Instant,
        empty: Value,
        f: impl FnOnce(&mut Value) -> T,
    ) -> Result<T, ()> {
        match self.live(key, now) {
            Some(entry) if std::mem::discriminant(&entry.value) != std::mem::discriminant(&empty) => {
                return Err(());
            }
            Some(_) => {}
            None => {
                let mut value = empty;
                let result = f(&mut value);
                if !value.is_empty_container() {
                    self.put(key, value, None);
                }
                return Ok(result);
            }
        }
        let (result, emptied) = self
            .modify(key, now, |value| {
                let result = f(value);
                (result, value.is_empty_container())
            })
            .ok_or(())?;
        if emptied {
            self.remove(key, now);
        }
        Ok(result)
    }

    /// [`edit`](Self::edit) of a sorted set.
    pub(crate) fn edit_zset<T>(
        &mut self,
        key: &str,
        now: Instant,
        f: impl FnOnce(&mut ZSet) -> T,
    ) -> Result<T, ()> {
        self.edit(key, now, Value::ZSet(ZSet::default()), |value| match value {
            Value::ZSet(zset) => Some(f(zset)),
            _ => None,
        })?
        .ok_or(())
    }

    /// [`edit`](Self::edit) of a hash.
    pub(crate) fn edit_hash<T>(
        &mut self,
        key: &str,
        now: Instant,
        f: impl FnOnce(&mut Hash) -> T,
    ) -> Result<T, ()> {
        self.edit(key, now, Value::Hash(Hash::new()), |value| match value {
            Value::Hash(hash) => Some(f(hash)),
            _ => None,
        })?
        .ok_or(())
    }

    /// [`edit`](Self::edit) of a list.
    pub(crate) fn edit_list<T>(
        &mut self,
        key: &str,
        now: Instant,
        f: impl FnOnce(&mut VecDeque<Vec<u8>>) -> T,
    ) -> Result<T, ()> {
        self.edit(key, now, Value::List(VecDeque::new()), |value| match value {
            Value::List(list) => Some(f(list)),
            _ => None,
        })?
        .ok_or(())
    }

    /// The list under `key`; `None` if missing, `Err(())` if the key holds
    /// another type.
    pub(crate) fn list(&mut self, key: &str, now: Instant) -> Result<Option<&VecDeque<Vec<u8>>>, ()> {
        match self.live(key, now).map(|entry| &entry.value) {
            None => Ok(None),
            Some(Value::List(list)) => Ok(Some(list)),
            Some(_) => Err(()),
        }
    }

    /// All live keys, with their values.
    pub(crate) fn live_entries(&self, now: Instant) -> impl Iterator<Item = (&String, &Value)> {
        self.entries
            .iter()
            .filter(move |(_, entry)| entry.expires_at.is_none_or(|at| at > now))
            .map(|(key, entry)| (key, &entry.value))
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

    /// Adds a subscriber of the change feed.
    pub(crate) fn subscribe(&mut self, watched: Watched, sender: SubscriptionSender) {
        self.feed.subscribers.push((watched, sender));
    }

    /// How many change-feed subscribers are registered (dropped ones are
    /// forgotten at the next change of any key).
    #[cfg(test)]
    pub(crate) fn subscribers(&self) -> usize {
        self.feed.subscribers.len()
    }

    /// Runs `write` with its change events naming `version`.
    pub(crate) fn announcing<T>(&mut self, version: Option<u64>, write: impl FnOnce(&mut Self) -> T) -> T {
        self.feed.announced = version;
        let result = write(self);
        self.feed.announced = None;
        result
    }

    /// Tells the subscribers watching `key` of a change without writing
    /// anything: a published hint (Redis' `PUBLISH` on the key's change
    /// channel, as the trigger index's wake-up hint).
    pub(crate) fn publish(&mut self, key: &str) {
        self.emit(key, ChangeKind::Set);
    }

    /// Tells the subscribers watching `key` of a change; forgets dropped
    /// subscriptions.
    fn emit(&mut self, key: &str, kind: ChangeKind) {
        if self.feed.subscribers.is_empty() {
            return;
        }
        let version = match kind {
            ChangeKind::Expired => None,
            ChangeKind::Set | ChangeKind::Deleted => self.feed.announced,
        };
        self.feed.subscribers.retain(|(watched, sender)| {
            let watches = match watched {
                Watched::Key(watched) => watched.as_str() == key,
                Watched::Keys(keys) => keys.iter().any(|watched| watched.as_str() == key),
                Watched::Pattern(pattern) => {
                    crate::glob::matches(pattern.as_str().as_bytes(), key.as_bytes())
                }
            };
            if !watches {
                return !sender.is_closed();
            }
            sender.send(FeedEvent::Change(ChangeEvent {
                key: key.to_owned(),
                kind,
                version,
            }))
        });
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
            self.emit(key, ChangeKind::Expired);
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
                self.emit(&key, ChangeKind::Expired);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn str_value(s: &str) -> Value {
        Value::Str(s.as_bytes().to_vec())
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
