//! The updates of the config store: each a compare-and-set of the entry's
//! envelope ([`ChangeFeed::swap_announced`]) made the attempts of THE
//! optimistic loop ([`RetryPolicy::run`](statehouse_ports::RetryPolicy::run)),
//! and the cache taking the bytes it wrote.
//!
//! Concurrent updates of one entry through one store (its clones and the
//! handles made from it share the cache) are combined (`Combiner`, ports;
//! on unless the change feed's store has combining off): the first of a
//! batch leads one round for all, handing the envelope through every
//! caller's [`Step`] in arrival order (each builds the next envelope from
//! the one before, in its own task) and swapping the last one in with one
//! compare-and-set of the envelope the round started from. A refused swap
//! reruns the whole batch from the bytes the refusal answered.

use std::sync::Arc;

use serde::Serialize;
use statehouse_domain::{ConfigEntry, VersionMismatch};
use statehouse_ports::{
    Attempt, ChangeFeed, JsonError, Key, Landing, Optimistic, Pass, Role, StoreError, Swapped, Ticket,
};

use super::cache::{Cached, LazyValue, Shared, Writing, holds, lock, same};
use super::{ConfigStore, Held, OP_UPDATE, entry_key};

/// The operation errors of the entry's read-modify-write name (as the
/// document port's `update` did).
const UPDATE_OP: &str = "update";

/// Why no next envelope could be computed.
enum NextError {
    Store(StoreError),
    Mismatch(VersionMismatch),
}

/// The envelope an update builds.
struct Next {
    version: u64,
    /// Its history length (0: plain mode).
    keep: usize,
    bytes: Vec<u8>,
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
        let mut step = Step {
            store: self,
            op,
            name,
            key: &key,
            value,
            json: None,
            expected_version,
        };
        if self.shared.changes.combining()
            && let Some(ticket) = self.shared.combiner.join(key.as_str(), self.policy)
        {
            return self.combined(ticket, &mut step).await;
        }
        let (cached, expected) = self.held(name);
        let mut swap = Swap {
            step,
            expected: Expected::known(expected),
            cached,
        };
        let (version, _) = self.policy.run(UPDATE_OP, key.as_str(), &mut swap).await?;
        Ok(version)
    }

    /// Whether `name` is cached, and what the entry holds as far as this
    /// handle knows: the cache's bytes (one round trip when they are
    /// current), else a guess that it is absent, which a refusal corrects
    /// with the current bytes.
    fn held(&self, name: &str) -> (bool, Held) {
        match lock(&self.shared.cache).get(name).map(|slot| &slot.state) {
            Some(Cached::Present {
                bytes, version, keep, ..
            }) => (
                true,
                Held {
                    bytes: Some(Arc::clone(bytes)),
                    head: Some((*version, *keep)),
                },
            ),
            Some(Cached::Absent) => (
                true,
                Held {
                    bytes: None,
                    head: Some((0, 0)),
                },
            ),
            Some(Cached::Bad { .. }) => (true, Held::stored(None)),
            None => (false, Held::stored(None)),
        }
    }

    /// This caller's update in a combined round (its `ticket`): its step
    /// applied to the envelope handed to it, or, as the round's leader, the
    /// round itself. Returns the version its own step built, or its own
    /// error, once the round committed; the round's error otherwise.
    async fn combined<T: Serialize + Sync + ?Sized>(
        &self,
        mut ticket: Ticket<'_, Held>,
        step: &mut Step<'_, T>,
    ) -> Result<u64, StoreError> {
        let (op, name, key) = (step.op, step.name, step.key);
        let mut own: Option<Result<u64, NextError>> = None;
        let outcome = {
            let mut apply = |held: &Held| match step.next(held) {
                Ok(next) => {
                    own = Some(Ok(next.version));
                    Some(Held {
                        head: Some((next.version, next.keep)),
                        bytes: Some(Arc::from(next.bytes)),
                    })
                }
                Err(error) => {
                    own = Some(Err(error));
                    None
                }
            };
            match ticket.wait(OP_UPDATE, key.as_str(), &mut apply).await {
                Role::Finished(outcome) => outcome,
                Role::Lead(mut pass) => {
                    let (cached, base) = self.held(name);
                    let mut round = Round {
                        shared: &self.shared,
                        name,
                        key,
                        pass: &mut pass,
                        apply: &mut apply,
                        base: Expected::known(base),
                        cached,
                    };
                    let outcome = self
                        .policy
                        .run(UPDATE_OP, key.as_str(), &mut round)
                        .await
                        .map(|((), attempts)| attempts);
                    pass.finish(&outcome);
                    outcome
                }
            }
        };
        match (own, outcome) {
            // Its own value does not serialize: nothing else decides that.
            (Some(Err(NextError::Store(error @ StoreError::Serialization { .. }))), _) => Err(error),
            // The other decisions stand once the round committed (or wrote
            // nothing on what the store answered).
            (_, Err(error)) => Err(error),
            (Some(Ok(version)), Ok(_)) => Ok(version),
            (Some(Err(error)), Ok(_)) => Err(step.error(error)),
            (None, Ok(_)) => Err(StoreError::Operation {
                op,
                key: name.to_owned(),
                source: "the combined round ended without running this update".into(),
            }),
        }
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
}

impl Shared {
    /// What the store holds under `key` now.
    async fn read(&self, key: &Key) -> Result<Held, StoreError> {
        Ok(Held::stored(self.documents.get(key).await?))
    }

    /// Swaps `new` (with its version and history length, `head`) in for
    /// `base` under `key`; once swapped, when the entry `name` was cached
    /// (`cached`), the cache takes `new` ([`took`](Self::took)).
    async fn swap(
        &self,
        name: &str,
        key: &Key,
        base: Option<&[u8]>,
        new: Arc<[u8]>,
        head: (u64, usize),
        cached: bool,
    ) -> Result<Swapped, StoreError> {
        let writing = cached.then(|| Writing::start(self, name, head.0));
        let swapped = self.changes.swap_announced(key, base, &new, Some(head.0)).await?;
        if cached && swapped == Swapped::Swapped {
            self.took(name, base, new, head).await;
        }
        drop(writing);
        Ok(swapped)
    }

    /// After a local swap of a cached entry from `base` to `written`: the
    /// cache takes it ([`adopt`](Self::adopt)), or, when it holds
    /// something else, reads the entry again (waited for, so the writer
    /// reads its own write).
    async fn took(&self, name: &str, base: Option<&[u8]>, written: Arc<[u8]>, head: (u64, usize)) {
        if !self.adopt(name, base, written, head) {
            self.refresh(name).await;
        }
    }

    /// After a local swap of a cached entry from `base` to `written`: if the
    /// cache still holds `base`, nothing newer was read, and `written` is
    /// what the store held right after the swap, so the cache takes it at
    /// once (and tells the watchers), without a read; the slot counts the
    /// local write so that a read in flight, which may predate it, is not
    /// applied over it (the task reads again instead). `false` when the
    /// cache holds something else: then the caller has it read again.
    ///
    /// `(version, keep)`: the head of `written`, an envelope built here,
    /// which the cache takes without decoding it (the value is decoded
    /// when a reader asks).
    fn adopt(
        &self,
        name: &str,
        base: Option<&[u8]>,
        written: Arc<[u8]>,
        (version, keep): (u64, usize),
    ) -> bool {
        let mut cache = lock(&self.cache);
        let Some(slot) = cache.get_mut(name) else {
            return true;
        };
        if !holds(&slot.state, base) {
            return false;
        }
        slot.local += 1;
        let state = Cached::Present {
            version,
            keep,
            value: LazyValue::default(),
            bytes: written,
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

/// One update's decision: its value written over the envelope it is
/// handed, as the next version.
struct Step<'a, T: ?Sized> {
    store: &'a ConfigStore,
    op: &'static str,
    name: &'a str,
    key: &'a Key,
    value: &'a T,
    /// `value` as JSON, made when an envelope must be built from a decoded
    /// one (history mode, or bytes from the server).
    json: Option<serde_json::Value>,
    expected_version: Option<u64>,
}

impl<T: Serialize + Sync + ?Sized> Step<'_, T> {
    /// The envelope that follows `held`.
    fn next(&mut self, held: &Held) -> Result<Next, NextError> {
        let (op, name) = (self.op, self.name);
        if let Some((version, keep)) = held.head
            && self.store.history.unwrap_or(keep) == 0
            && self.expected_version.is_none_or(|expected| expected == version)
        {
            let next = PlainEntry {
                version: version + 1,
                value: self.value,
            };
            // Sized like the bytes it follows, so it is written without regrowing.
            let mut bytes = Vec::with_capacity(held.bytes.as_ref().map_or(128, |held| held.len() + 32));
            serde_json::to_writer(&mut bytes, &next)
                .map_err(|error| NextError::Store(StoreError::serialization(op, name, error)))?;
            return Ok(Next {
                version: next.version,
                keep: 0,
                bytes,
            });
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
            .next_entry(self.key, held.bytes.as_deref(), json, self.expected_version)?;
        let bytes = serde_json::to_vec(&next)
            .map_err(|error| NextError::Store(StoreError::serialization(op, name, error)))?;
        Ok(Next {
            version: next.version,
            keep: next.keep,
            bytes,
        })
    }

    /// The caller's error of a decision that failed.
    fn error(&self, error: NextError) -> StoreError {
        match error {
            NextError::Store(error) => error,
            NextError::Mismatch(found) => StoreError::VersionConflict {
                op: self.op,
                key: self.name.to_owned(),
                expected: found.expected,
                actual: found.actual,
            },
        }
    }
}

/// The compare-and-set attempts of one config write on its own (combining
/// off), for [`RetryPolicy::run`]: compute the next envelope from the
/// bytes expected, swap it in if the entry still holds them. A refusal
/// answers the current bytes, expected by the next attempt.
struct Swap<'a, T: ?Sized> {
    step: Step<'a, T>,
    expected: Expected,
    /// Whether the entry was cached when the write began: the cache takes
    /// what it wrote.
    cached: bool,
}

/// What an update's attempts expect the entry to hold.
struct Expected {
    held: Held,
    /// Whether `held` came from the server (the last refusal or a read)
    /// rather than the cache or a guess: only then is a refusal a conflict
    /// with another writer, and a bad or mismatching entry final. Until
    /// then, a refusal or a failure repeats the attempt on what the server
    /// holds, without counting.
    from_server: bool,
}

impl Expected {
    /// Expects `held`, from the cache or a guess.
    fn known(held: Held) -> Self {
        Self {
            held,
            from_server: false,
        }
    }

    /// The swap was refused: the next attempt expects the bytes the refusal
    /// answered; a conflict when what was refused came from the server.
    fn refused<O>(&mut self, current: Option<Vec<u8>>) -> Attempt<O> {
        self.held = Held::stored(current);
        if std::mem::replace(&mut self.from_server, true) {
            Attempt::Conflict
        } else {
            Attempt::Repeat
        }
    }

    /// The decision failed on what was expected, perhaps on a cache that is
    /// behind: the next attempt decides on what the server holds.
    async fn reread<O>(&mut self, shared: &Shared, key: &Key) -> Result<Attempt<O>, StoreError> {
        self.held = shared.read(key).await?;
        self.from_server = true;
        Ok(Attempt::Repeat)
    }
}

impl<T: Serialize + Sync + ?Sized> Optimistic for Swap<'_, T> {
    /// The version written.
    type Output = u64;

    async fn attempt(&mut self, _: u32) -> Result<Attempt<u64>, StoreError> {
        let next = match self.step.next(&self.expected.held) {
            Ok(next) => next,
            Err(NextError::Store(error @ StoreError::Serialization { .. })) => return Err(error),
            Err(_) if !self.expected.from_server => {
                return self.expected.reread(&self.step.store.shared, self.step.key).await;
            }
            Err(error) => return Err(self.step.error(error)),
        };
        let swapped = self
            .step
            .store
            .shared
            .swap(
                self.step.name,
                self.step.key,
                self.expected.held.bytes.as_deref(),
                Arc::from(next.bytes),
                (next.version, next.keep),
                self.cached,
            )
            .await?;
        match swapped {
            Swapped::Swapped => Ok(Attempt::Done(next.version)),
            Swapped::Refused(current) => Ok(self.expected.refused(current)),
        }
    }
}

/// The attempts of a combined round, led by one of its callers, for
/// [`RetryPolicy::run`]: the envelope the round starts from (`base`)
/// through every caller's step ([`Pass::apply`]), then one swap of the
/// last envelope for `base`, in a task of its own when others wait on it
/// ([`Pass::write`]). A round in which no step built anything writes
/// nothing, once its steps decided on what the store holds.
struct Round<'r, 'p, 't, 'c, A> {
    shared: &'r Arc<Shared>,
    name: &'r str,
    key: &'r Key,
    pass: &'p mut Pass<'t, 'c, Held>,
    apply: &'p mut A,
    /// What the round starts from.
    base: Expected,
    /// As [`Swap::cached`].
    cached: bool,
}

impl<A: FnMut(&Held) -> Option<Held> + Send> Optimistic for Round<'_, '_, '_, '_, A> {
    type Output = ();

    async fn attempt(&mut self, attempt: u32) -> Result<Attempt<()>, StoreError> {
        let (last, changed) = self.pass.apply(self.base.held.clone(), &mut *self.apply).await;
        if !changed {
            if self.base.from_server {
                return Ok(Attempt::Done(()));
            }
            return self.base.reread(self.shared, self.key).await;
        }
        let (Some(new), Some(head)) = (last.bytes, last.head) else {
            return Err(StoreError::Operation {
                op: OP_UPDATE,
                key: self.name.to_owned(),
                source: "a combined round's steps built no envelope".into(),
            });
        };
        let (shared, name, key, base, cached) = (
            Arc::clone(self.shared),
            self.name.to_owned(),
            self.key.clone(),
            self.base.held.bytes.clone(),
            self.cached,
        );
        let write = async move { shared.swap(&name, &key, base.as_deref(), new, head, cached).await };
        match self.pass.write(attempt, write, landing).await? {
            Swapped::Swapped => Ok(Attempt::Done(())),
            Swapped::Refused(current) => {
                self.pass.conflicted();
                Ok(self.base.refused(current))
            }
        }
    }
}

/// How a combined round's swap landed, as its batch sees it.
fn landing(swapped: &Result<Swapped, StoreError>) -> Landing<'_> {
    match swapped {
        Ok(Swapped::Swapped) => Landing::Committed,
        Ok(Swapped::Refused(_)) => Landing::NotWritten,
        Err(error) => Landing::Failed(error),
    }
}

#[cfg(all(test, feature = "memory"))]
#[allow(clippy::unwrap_used, reason = "test support: a panic is a failed test")]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Poll;

    use async_trait::async_trait;
    use statehouse_memory::MemoryStore;
    use statehouse_ports::{AnnouncedUpdateFn, ErrorKind, RetryPolicy, Subscription, Updated, Watched};
    use tokio::sync::Semaphore;

    use super::*;

    /// The memory store's change feed, whose swaps are counted and wait for
    /// a permit of `gate` (none at first).
    #[derive(Debug)]
    struct Gated {
        inner: MemoryStore,
        swaps: AtomicUsize,
        gate: Semaphore,
    }

    #[async_trait]
    impl ChangeFeed for Gated {
        async fn subscribe(&self, watched: &Watched, capacity: usize) -> Result<Subscription, StoreError> {
            self.inner.subscribe(watched, capacity).await
        }

        async fn update_announced<'a>(
            &self,
            key: &Key,
            policy: RetryPolicy,
            f: &mut AnnouncedUpdateFn<'a>,
        ) -> Result<Updated, StoreError> {
            self.inner.update_announced(key, policy, f).await
        }

        async fn swap_announced<'a>(
            &self,
            key: &Key,
            expected: Option<&'a [u8]>,
            new: &[u8],
            version: Option<u64>,
        ) -> Result<Swapped, StoreError> {
            self.swaps.fetch_add(1, Ordering::SeqCst);
            self.gate
                .acquire()
                .await
                .map_err(|_| StoreError::invalid_input("swap", key.as_str(), "gate closed"))?
                .forget();
            self.inner.swap_announced(key, expected, new, version).await
        }

        fn combining(&self) -> bool {
            self.inner.combining()
        }
    }

    type Update<'a> = Pin<Box<dyn Future<Output = Result<u64, StoreError>> + Send + 'a>>;

    /// A store over a gated feed (of a memory store `combining` or not),
    /// with `hot` cached (absent).
    async fn gated(combining: bool) -> (ConfigStore, Arc<Gated>) {
        let memory = MemoryStore::new().with_combining(combining);
        let feed = Arc::new(Gated {
            inner: memory.clone(),
            swaps: AtomicUsize::new(0),
            gate: Semaphore::new(0),
        });
        let config = ConfigStore::new(Arc::new(memory), feed.clone());
        assert_eq!(config.fetch::<u64>("hot").await.unwrap(), None);
        (config, feed)
    }

    /// Updates of `hot` to each of `values`, in this order (not polled yet).
    fn updates<'a>(config: &'a ConfigStore, values: &'a [u64]) -> Vec<Update<'a>> {
        values
            .iter()
            .map(|n| -> Update<'a> { Box::pin(config.update("hot", n)) })
            .collect()
    }

    /// Polls the first update until its swap waits at the gate and every
    /// other until it waits (in the lane behind it, or `waiting` swaps in
    /// all at the gate); drops the updates at the indexes in `cancel`;
    /// opens the gate and runs the rest to the end. Returns each update's
    /// result (`None`: cancelled).
    async fn run(
        feed: &Gated,
        waiting: usize,
        first: Update<'_>,
        others: Vec<Update<'_>>,
        cancel: &[usize],
    ) -> (Result<u64, StoreError>, Vec<Option<Result<u64, StoreError>>>) {
        let mut first = Some(first);
        let mut others: Vec<Option<Update<'_>>> = others.into_iter().map(Some).collect();
        std::future::poll_fn(|cx| {
            for update in first.iter_mut().chain(others.iter_mut().flatten()) {
                assert!(update.as_mut().poll(cx).is_pending(), "queued behind the gate");
            }
            Poll::Ready(())
        })
        .await;
        assert_eq!(feed.swaps.load(Ordering::SeqCst), waiting, "swaps at the gate");
        for &index in cancel {
            others[index] = None;
        }
        feed.gate.add_permits(1000);
        let mut first_result = None;
        let mut results: Vec<Option<Result<u64, StoreError>>> = others.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            if let Some(update) = first.as_mut()
                && let Poll::Ready(result) = update.as_mut().poll(cx)
            {
                first_result = Some(result);
                first = None;
            }
            for (slot, result) in others.iter_mut().zip(results.iter_mut()) {
                if let Some(update) = slot
                    && let Poll::Ready(done) = update.as_mut().poll(cx)
                {
                    *result = Some(done);
                    *slot = None;
                }
            }
            if first.is_none() && others.iter().all(Option::is_none) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        (first_result.unwrap(), results)
    }

    #[tokio::test]
    async fn updates_queued_behind_a_round_are_one_swap_in_arrival_order() {
        let (config, feed) = gated(true).await;
        let config = config.with_history(20);
        let values: Vec<u64> = (0..=16).collect();
        let mut others = updates(&config, &values);
        let first = others.remove(0);
        let (first, others) = run(&feed, 1, first, others, &[]).await;
        assert_eq!(first.unwrap(), 1);
        for (n, result) in (1..=16u64).zip(others) {
            assert_eq!(result.unwrap().unwrap(), n + 1, "caller {n}: its own version");
        }
        assert_eq!(feed.swaps.load(Ordering::SeqCst), 2, "one swap for the 16 queued");
        let history = config.history("hot").await.unwrap();
        let held: Vec<(u64, serde_json::Value)> = history
            .into_iter()
            .map(|entry| (entry.version, entry.value))
            .collect();
        let expected: Vec<(u64, serde_json::Value)> =
            (0..=16u64).rev().map(|n| (n + 1, serde_json::json!(n))).collect();
        assert_eq!(held, expected, "every value, in version order");
        assert_eq!(
            config.cached_version("hot"),
            Some(17),
            "the cache took the round's write"
        );
    }

    #[tokio::test]
    async fn a_mismatching_update_if_fails_alone_and_a_cancelled_update_takes_no_version() {
        let (config, feed) = gated(true).await;
        let first: Update<'_> = Box::pin(config.update("hot", &0u64));
        let others: Vec<Update<'_>> = vec![
            Box::pin(config.update("hot", &1u64)),
            // Expects version 1, finds 2 (the update before it).
            Box::pin(config.update_if("hot", 1, &2u64)),
            Box::pin(config.update_if("hot", 2, &3u64)),
            // Cancelled before its round.
            Box::pin(config.update("hot", &4u64)),
            Box::pin(config.update("hot", &5u64)),
        ];
        let (first, others) = run(&feed, 1, first, others, &[3]).await;
        assert_eq!(first.unwrap(), 1);
        let mut others = others.into_iter();
        assert_eq!(others.next().unwrap().unwrap().unwrap(), 2);
        let error = others.next().unwrap().unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
        assert!(
            error.to_string().contains("expected version 1, found 2"),
            "{error}"
        );
        assert_eq!(others.next().unwrap().unwrap().unwrap(), 3);
        assert!(others.next().unwrap().is_none(), "cancelled");
        assert_eq!(others.next().unwrap().unwrap().unwrap(), 4);
        assert_eq!(feed.swaps.load(Ordering::SeqCst), 2);
        assert_eq!(
            config.fetch_versioned::<u64>("hot").await.unwrap(),
            Some(super::super::Versioned { version: 4, value: 5 })
        );
    }

    #[tokio::test]
    async fn with_combining_off_every_update_swaps_on_its_own_at_once() {
        let (config, feed) = gated(false).await;
        let values: Vec<u64> = (0..=16).collect();
        let mut others = updates(&config, &values);
        let first = others.remove(0);
        // All 17 swap at once (none waits in a lane).
        let (first, others) = run(&feed, 17, first, others, &[]).await;
        let mut versions = vec![first.unwrap()];
        versions.extend(others.into_iter().map(|result| result.unwrap().unwrap()));
        versions.sort_unstable();
        assert_eq!(versions, (1..=17).collect::<Vec<u64>>());
    }

    /// Polls each update still running once; keeps what finished.
    async fn poll_once(updates: &mut [Option<Update<'_>>], results: &mut [Option<Result<u64, StoreError>>]) {
        std::future::poll_fn(|cx| {
            for (slot, result) in updates.iter_mut().zip(results.iter_mut()) {
                if let Some(update) = slot
                    && let Poll::Ready(done) = update.as_mut().poll(cx)
                {
                    *result = Some(done);
                    *slot = None;
                }
            }
            Poll::Ready(())
        })
        .await;
        tokio::task::yield_now().await;
    }

    #[tokio::test]
    async fn a_leader_cancelled_during_its_swap_changes_no_other_outcome() {
        let (config, feed) = gated(true).await;
        let values: Vec<u64> = (0..=4).collect();
        let mut updates: Vec<Option<Update<'_>>> = updates(&config, &values).into_iter().map(Some).collect();
        let mut results: Vec<Option<Result<u64, StoreError>>> = values.iter().map(|_| None).collect();
        poll_once(&mut updates, &mut results).await;
        assert_eq!(
            feed.swaps.load(Ordering::SeqCst),
            1,
            "the first update's swap waits"
        );
        // The first round's swap goes; the next round (1 leading 2, 3, 4)
        // sends its swap, from a task of its own, to the gate.
        feed.gate.add_permits(1);
        while results[0].is_none() || feed.swaps.load(Ordering::SeqCst) < 2 {
            poll_once(&mut updates, &mut results).await;
        }
        assert!(updates[1].is_some(), "the leader waits for its swap");
        updates[1] = None;
        feed.gate.add_permits(1000);
        while updates.iter().any(Option::is_some) {
            poll_once(&mut updates, &mut results).await;
        }
        assert_eq!(results[0].take().unwrap().unwrap(), 1);
        for (n, result) in results.iter_mut().enumerate().skip(2) {
            let version = result.take().unwrap().unwrap();
            assert_eq!(
                version,
                n as u64 + 1,
                "caller {n}: after the cancelled leader's version"
            );
        }
        assert_eq!(feed.swaps.load(Ordering::SeqCst), 2);
        assert_eq!(
            config.cached_version("hot"),
            Some(5),
            "the round's task updated the cache"
        );
        assert_eq!(
            config.fetch_versioned::<u64>("hot").await.unwrap(),
            Some(super::super::Versioned { version: 5, value: 4 })
        );
    }
}
