//! The keyspace: one map shared by every port of a [`MemoryStore`], like the
//! one keyspace of a Redis database.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use statehouse_ports::{
    Attempt, ChangeEvent, ChangeKind, FeedEvent, Optimistic, RetryPolicy, StoreError, SubscriptionSender,
    Watched,
};
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
    Hash(Hash),
    /// A Redis sorted set.
    ZSet(ZSet),
    /// A Redis list.
    List(VecDeque<Vec<u8>>),
}

impl Value {
    /// Whether this is an empty container, which Redis removes.
    fn is_empty_container(&self) -> bool {
        match self {
            Self::Str(_) => false,
            Self::Hash(hash) => hash.is_empty(),
            Self::ZSet(zset) => zset.len() == 0,
            Self::List(list) => list.is_empty(),
        }
    }
}

/// A Redis hash: fields and values, both bytes.
pub(crate) type Hash = BTreeMap<Vec<u8>, Vec<u8>>;

/// A Redis sorted set: members with scores, ordered by (score, member) with
/// members compared byte-wise, as Redis orders them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ZSet {
    scores: HashMap<String, Score>,
    order: BTreeSet<(Score, String)>,
}

/// A score, totally ordered (`f64::total_cmp`), like Redis' doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Score(pub(crate) f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl ZSet {
    /// Adds `member` or moves it to `score` (`ZADD`).
    pub(crate) fn insert(&mut self, member: &str, score: f64) {
        let score = Score(score);
        if let Some(old) = self.scores.insert(member.to_owned(), score) {
            self.order.remove(&(old, member.to_owned()));
        }
        self.order.insert((score, member.to_owned()));
    }

    /// Removes `member` (`ZREM`); returns whether it was there.
    pub(crate) fn remove(&mut self, member: &str) -> bool {
        match self.scores.remove(member) {
            Some(score) => {
                self.order.remove(&(score, member.to_owned()));
                true
            }
            None => false,
        }
    }

    /// Members with their scores, highest score first, then member
    /// descending (`ZRANGE … REV`).
    pub(crate) fn rev_iter(&self) -> impl Iterator<Item = (f64, &str)> {
        self.order
            .iter()
            .rev()
            .map(|(score, member)| (score.0, member.as_str()))
    }

    /// How many members (`ZCARD`).
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    /// Members with their scores, lowest score first, then member
    /// ascending (`ZRANGE`).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (f64, &str)> {
        self.order
            .iter()
            .map(|(score, member)| (score.0, member.as_str()))
    }

    /// The score of `member` (`ZSCORE`).
    pub(crate) fn score(&self, member: &str) -> Option<f64> {
        self.scores.get(member).map(|score| score.0)
    }
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

/// The shared keyspace behind a [`MemoryStore`](crate::MemoryStore).
#[derive(Debug)]
pub(crate) struct Keyspace {
    state: Mutex<State>,
    purger: Mutex<Option<tokio::task::AbortHandle>>,
    /// The store's clock, Redis' `TIME` in memory: the wall clock when the
    /// keyspace was made, advanced by tokio time (so paused tests move it).
    epoch_ms: i64,
    started: Instant,
}

impl Keyspace {
    /// How often the background task removes expired keys. Expired keys are
    /// never *readable* in between; this only bounds the memory they hold.
    pub(crate) const PURGE_EVERY: Duration = Duration::from_millis(250);

    pub(crate) fn new() -> Arc<Self> {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
        let keyspace = Arc::new(Self {
            state: Mutex::new(State::default()),
            purger: Mutex::new(None),
            epoch_ms,
            started: Instant::now(),
        });
        // Outside a runtime there is no task; writes still purge what is due.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&keyspace);
            let task = runtime.spawn(purge_loop(weak));
            *lock(&keyspace.purger) = Some(task.abort_handle());
        }
        keyspace
    }

    /// The store clock at `now`: milliseconds since the Unix epoch, as
    /// Redis' `TIME` reports them, moving with tokio time.
    pub(crate) fn clock_ms(&self, now: Instant) -> i64 {
        let elapsed = now.saturating_duration_since(self.started).as_millis();
        self.epoch_ms
            .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
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

/// What an optimistic read-modify-write decided after reading.
pub(crate) enum Decision<W, T> {
    /// Commit `W` if no watched key changed since the read, then return
    /// what the commit returns.
    Commit(W),
    /// Write nothing; return `T`.
    Done(T),
}

impl Keyspace {
    /// The optimistic read-modify-write of the memory store, the twin of
    /// the Redis adapter's WATCH section (`txn::optimistic`), under THE
    /// loop ([`RetryPolicy::run`]): `read` runs under the lock and the
    /// `watched` keys are watched; `decide` runs without the lock (it may
    /// run more than once); `commit` runs under the lock only if no watched
    /// key was written since the read, else the attempt is a conflict and
    /// starts over after the policy's backoff. Only running out of attempts
    /// is `Conflict` (naming `key`). Returns the result and the attempts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn optimistic<R, W, T>(
        &self,
        op: &'static str,
        key: &str,
        watched: &[&str],
        policy: RetryPolicy,
        read: impl FnMut(&mut State, Instant) -> Result<R, StoreError> + Send,
        decide: impl FnMut(R) -> Result<Decision<W, T>, StoreError> + Send,
        commit: impl FnMut(&mut State, Instant, W) -> T + Send,
    ) -> Result<(T, u32), StoreError>
    where
        T: Send,
    {
        let mut section = Section {
            keyspace: self,
            watched,
            read,
            decide,
            commit,
        };
        policy.run(op, key, &mut section).await
    }
}

/// The attempts of one optimistic section, for [`RetryPolicy::run`].
struct Section<'a, Read, Decide, Commit> {
    keyspace: &'a Keyspace,
    watched: &'a [&'a str],
    read: Read,
    decide: Decide,
    commit: Commit,
}

impl<R, W, T, Read, Decide, Commit> Optimistic for Section<'_, Read, Decide, Commit>
where
    T: Send,
    Read: FnMut(&mut State, Instant) -> Result<R, StoreError> + Send,
    Decide: FnMut(R) -> Result<Decision<W, T>, StoreError> + Send,
    Commit: FnMut(&mut State, Instant, W) -> T + Send,
{
    type Output = T;

    async fn attempt(&mut self, _: u32) -> Result<Attempt<T>, StoreError> {
        let mut guard = WatchGuard {
            keyspace: self.keyspace,
            keys: self.watched,
            seen: None,
        };
        let current = {
            let mut state = self.keyspace.lock();
            let current = (self.read)(&mut state, Instant::now())?;
            guard.seen = Some(self.watched.iter().map(|key| state.watch(key)).collect());
            current
        };
        match (self.decide)(current)? {
            Decision::Done(value) => Ok(Attempt::Done(value)),
            Decision::Commit(write) => {
                // Locking purges what is due, so a key that expired since
                // the read counts as written: the same as Redis aborting
                // EXEC for it.
                let mut state = self.keyspace.lock();
                if guard.release(&mut state) {
                    Ok(Attempt::Conflict)
                } else {
                    Ok(Attempt::Done((self.commit)(&mut state, Instant::now(), write)))
                }
            }
        }
    }
}

/// Holds the watch registrations of one attempt and drops them on every
/// path out of it, including cancellation of the caller's future.
struct WatchGuard<'a> {
    keyspace: &'a Keyspace,
    keys: &'a [&'a str],
    seen: Option<Vec<u64>>,
}

impl WatchGuard<'_> {
    /// Drops the registrations; returns whether any watched key was written
    /// since the read (a conflict).
    fn release(&mut self, state: &mut State) -> bool {
        match self.seen.take() {
            Some(seen) => {
                let mut touched = false;
                for (key, seen) in self.keys.iter().zip(seen) {
                    touched |= state.unwatch(key, seen);
                }
                touched
            }
            None => true,
        }
    }
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        if self.seen.is_some() {
            let mut state = self.keyspace.lock();
            self.release(&mut state);
        }
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
