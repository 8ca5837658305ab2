//! The keyspace: one map shared by every port of a [`MemoryStore`], like the
//! one keyspace of a Redis database.
//!
//! What a key holds is in `value.rs`, the contents under the lock (and each
//! change made as one Redis command makes it) in `state.rs`; here the
//! [`Keyspace`] itself, its clock and purge task, and its optimistic section,
//! the memory attempt of THE optimistic loop.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use statehouse_ports::{Attempt, Durability, Optimistic, Pass, RetryPolicy, StoreError};
use tokio::time::Instant;

pub(crate) use self::state::State;
pub(crate) use self::value::{Entry, Hash, Value, ZSet};

mod state;
mod value;

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

/// THE durability check of the memory store. It has no replicas: like a
/// Redis server without any, a write is applied and then, if `durability`
/// asks for replicas, reported as [`StoreError::NotDurable`] (0 of N
/// confirmed, at once: nothing could ever confirm it). Called after every
/// write, and after an optimistic section that committed; reads and
/// sections that wrote nothing never check.
pub(crate) fn unreplicated(durability: Durability, op: &'static str, key: &str) -> Result<(), StoreError> {
    match durability.wait() {
        None => Ok(()),
        Some((wanted, timeout)) => Err(StoreError::NotDurable {
            op,
            key: key.to_owned(),
            wanted,
            confirmed: 0,
            timeout,
        }),
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
    /// is `Conflict` (naming `key`). Returns the result and the attempts;
    /// a section that committed is then checked against `durability`
    /// ([`unreplicated`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn optimistic<R, W, T>(
        &self,
        op: &'static str,
        key: &str,
        watched: &[&str],
        (policy, durability): (RetryPolicy, Durability),
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
            committed: false,
        };
        let done = policy.run(op, key, &mut section).await?;
        if section.committed {
            unreplicated(durability, op, key)?;
        }
        Ok(done)
    }
}

impl Keyspace {
    /// The optimistic section of a combined round (`Combiner`, ports): like
    /// [`optimistic`](Self::optimistic), but the decision is the batch's
    /// pass: `read` under the lock, the value through every member's
    /// closure (`pass`, `apply`: the leader's own), then, if any changed
    /// it, `commit` of the final value under the lock unless a watched key
    /// was written since the read (a conflict reruns the whole batch).
    /// `commit` checks before it writes (a key of another type, as a Redis
    /// script refuses it): its error writes nothing and ends the round.
    /// Returns the attempt that committed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn combined<V, A>(
        &self,
        op: &'static str,
        key: &str,
        watched: &[&str],
        (policy, durability): (RetryPolicy, Durability),
        pass: &mut Pass<'_, '_, V>,
        apply: &mut A,
        read: impl FnMut(&mut State, Instant) -> Result<V, StoreError> + Send,
        commit: impl FnMut(&mut State, Instant, V) -> Result<(), StoreError> + Send,
    ) -> Result<u32, StoreError>
    where
        V: Send,
        A: FnMut(&V) -> Option<V> + Send,
    {
        let mut round = Round {
            keyspace: self,
            watched,
            pass,
            apply,
            read,
            commit,
            committed: false,
        };
        let ((), attempts) = policy.run(op, key, &mut round).await?;
        if round.committed {
            unreplicated(durability, op, key)?;
        }
        Ok(attempts)
    }
}

/// The attempts of a combined round, for [`RetryPolicy::run`].
struct Round<'a, 'p, 't, 'c, V, A, Read, Commit> {
    keyspace: &'a Keyspace,
    watched: &'a [&'a str],
    pass: &'p mut Pass<'t, 'c, V>,
    apply: &'p mut A,
    read: Read,
    commit: Commit,
    /// Whether an attempt committed (wrote).
    committed: bool,
}

impl<V, A, Read, Commit> Optimistic for Round<'_, '_, '_, '_, V, A, Read, Commit>
where
    V: Send,
    A: FnMut(&V) -> Option<V> + Send,
    Read: FnMut(&mut State, Instant) -> Result<V, StoreError> + Send,
    Commit: FnMut(&mut State, Instant, V) -> Result<(), StoreError> + Send,
{
    type Output = ();

    async fn attempt(&mut self, _: u32) -> Result<Attempt<()>, StoreError> {
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
        let (value, changed) = self.pass.apply(current, &mut *self.apply).await;
        if !changed {
            return Ok(Attempt::Done(()));
        }
        let mut state = self.keyspace.lock();
        if guard.release(&mut state) {
            return Ok(Attempt::Conflict);
        }
        self.pass.writing();
        (self.commit)(&mut state, Instant::now(), value)?;
        self.committed = true;
        Ok(Attempt::Done(()))
    }
}

/// The attempts of one optimistic section, for [`RetryPolicy::run`].
struct Section<'a, Read, Decide, Commit> {
    keyspace: &'a Keyspace,
    watched: &'a [&'a str],
    read: Read,
    decide: Decide,
    commit: Commit,
    /// Whether an attempt committed (wrote).
    committed: bool,
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
                    self.committed = true;
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

    /// A combined round whose write refuses (a key of another type, as a
    /// task's index can be): nothing is written, and the error is the
    /// round's outcome for every member, the leader's and the others'.
    #[tokio::test]
    async fn a_refused_combined_write_writes_nothing_and_fails_every_member() {
        use statehouse_ports::{Combiner, ErrorKind, Role};

        let keyspace = Keyspace::new();
        keyspace.lock().put("k", str_value("0"), None);
        let combiner: Combiner<Vec<u8>> = Combiner::default();
        let policy = RetryPolicy::default();
        let mut bump = |value: &Vec<u8>| Some([value.as_slice(), b"+1"].concat());
        let mut member_bump = bump;
        // The first caller's batch starts at once; the two that join
        // while it runs form the next batch, of two.
        let mut first = combiner.join("k", policy).expect("combining is on");
        let mut leader = combiner.join("k", policy).expect("combining is on");
        let mut member = combiner.join("k", policy).expect("combining is on");
        let Role::Lead(alone) = first.wait("update", "k", &mut bump).await else {
            panic!("the first caller leads its own batch")
        };
        alone.finish_as(Ok(1));
        let lead = async {
            let Role::Lead(mut pass) = leader.wait("update", "k", &mut bump).await else {
                panic!("the first to wait leads")
            };
            assert_eq!(pass.size(), 2);
            let outcome = keyspace
                .combined(
                    "update",
                    "k",
                    &["k"],
                    (policy, Durability::Primary),
                    &mut pass,
                    &mut bump,
                    |state, now| match state.live("k", now).map(|entry| &entry.value) {
                        Some(Value::Str(bytes)) => Ok(bytes.clone()),
                        _ => Err(StoreError::wrong_type("update", "k")),
                    },
                    |_, _, _| Err(StoreError::wrong_type("update", "k:index")),
                )
                .await;
            pass.finish(&outcome);
            outcome
        };
        let follow = async {
            match member.wait("update", "k", &mut member_bump).await {
                Role::Finished(outcome) => outcome,
                Role::Lead(_) => panic!("the member was handed the lead"),
            }
        };
        let (led, followed) = tokio::join!(lead, follow);
        assert_eq!(led.unwrap_err().kind(), ErrorKind::WrongType);
        assert_eq!(followed.unwrap_err().kind(), ErrorKind::WrongType);
        let stored = keyspace
            .lock()
            .live("k", Instant::now())
            .map(|entry| entry.value.clone());
        assert_eq!(stored, Some(str_value("0")));
    }
}
