//! The config store's cache and the one background task that keeps it:
//! it subscribes to every entry's changes, re-reads what an event (or a
//! resync) makes stale, serves the first loads of `fetch` and `watch`, and
//! tells the watchers.

use std::any::Any;
use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use statehouse_domain::layout::ConfigKeys;
use statehouse_domain::{ChangeKind, ConfigHead, FeedEvent};
use statehouse_ports::{
    Backoff, ChangeFeed, Combiner, DocumentStore, JsonError, Key, StoreError, Subscription,
};
use tokio::sync::{mpsc, oneshot};

use super::Held;
use super::{OP_FETCH, entry_key};

/// The cached state of one entry.
#[derive(Debug, Clone)]
pub(super) enum Cached {
    Absent,
    Present {
        version: u64,
        /// The entry's history length (0: plain mode), what the next write
        /// keeps unless its writer chooses one.
        keep: usize,
        /// The value, decoded from `bytes` when first asked for.
        value: LazyValue,
        /// The stored envelope, byte for byte: what an update expects.
        bytes: Arc<[u8]>,
    },
    /// The envelope does not decode.
    Bad {
        message: String,
    },
}

/// The value of a cached envelope as JSON, decoded from its bytes only when asked for (comparing
/// two states of one version): fetches and watchers decode their type from the bytes, and an
/// update adopting the bytes it wrote does not decode them again.
#[derive(Debug, Clone, Default)]
pub(super) struct LazyValue(Arc<OnceLock<serde_json::Value>>);

impl LazyValue {
    /// The value of the envelope `bytes` (which decoded as one when cached;
    /// `null` if they no longer would, which cannot happen).
    pub(super) fn get(&self, bytes: &[u8]) -> &serde_json::Value {
        self.0.get_or_init(|| {
            serde_json::from_slice::<ConfigHead>(bytes).map_or(serde_json::Value::Null, |head| head.value)
        })
    }
}

/// What [`cached_of`] reads of an envelope: its version and history length
/// (`ConfigEntry::keep`); the value is checked to be JSON but not built
/// (readers decode their type from the bytes), the history skipped.
#[derive(Deserialize)]
struct Head {
    version: u64,
    #[allow(dead_code)]
    value: serde::de::IgnoredAny,
    #[serde(default)]
    keep: usize,
}

/// A watcher's callback: told of every new state; `false` once its
/// receivers are gone.
pub(super) type Sink = Box<dyn FnMut(&str, &Cached) -> bool + Send>;

pub(super) struct Slot {
    pub(super) state: Cached,
    /// The value decoded as the last type asked for, for the current state.
    pub(super) typed: Option<(TypeId, Arc<dyn Any + Send + Sync>)>,
    pub(super) sinks: Vec<Sink>,
    /// How many local writes the slot took ([`ConfigStore::adopt`]): a read
    /// that started before one may predate it and is not applied.
    pub(super) local: u64,
    /// The versions local writes are swapping in right now ([`Writing`]):
    /// a notice of one of them is this process's own write as
    /// a rule, which the cache takes from the writer without a read.
    pub(super) writing: Vec<u64>,
    /// A notice of a version in `writing` came and was not read: when the
    /// last of those writes ends without the cache holding its version (a
    /// refused swap: the notice was another writer's), the entry is read.
    pub(super) unread: bool,
}

impl Slot {
    /// An entry not read yet.
    pub(super) fn new() -> Self {
        Self {
            state: Cached::Absent,
            typed: None,
            sinks: Vec::new(),
            local: 0,
            writing: Vec::new(),
            unread: false,
        }
    }
}

pub(super) struct Shared {
    pub(super) documents: Arc<dyn DocumentStore>,
    pub(super) changes: Arc<dyn ChangeFeed>,
    pub(super) cache: Mutex<HashMap<String, Slot>>,
    /// Requests to the background task; set once it runs.
    pub(super) requests: tokio::sync::OnceCell<mpsc::UnboundedSender<Request>>,
    pub(super) task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Concurrent updates of one entry, combined (`Combiner`, ports;
    /// `swap.rs`).
    pub(super) combiner: Combiner<Held>,
}

impl Shared {
    /// After a local write: when `name` is cached, waits until the cache
    /// has read it again (so the writer reads its own writes). A failure
    /// only leaves the refresh to the feed.
    pub(super) async fn refresh(&self, name: &str) {
        if !lock(&self.cache).contains_key(name) {
            return;
        }
        // Set: entries are cached by the task only.
        let Some(requests) = self.requests.get() else {
            return;
        };
        let (done, answer) = oneshot::channel();
        if requests.send(Request::Load(name.to_owned(), done)).is_ok() {
            let _ = answer.await;
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCache")
            .field("entries", &lock(&self.cache).len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(super) struct TaskGuard(pub(super) Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.0.task).take() {
            task.abort();
        }
    }
}

/// What the background task is asked to do.
pub(super) enum Request {
    /// Read the entry (caching it from now on) and answer once cached.
    Load(String, oneshot::Sender<Result<(), StoreError>>),
    /// Like `Load`, then add a watcher.
    Watch(String, Sink, oneshot::Sender<Result<(), StoreError>>),
    /// Read a cached entry again; nobody waits for it (a local write's
    /// notice left unread, see [`Writing`]).
    Reread(String),
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The state stored bytes describe.
pub(super) fn cached_of(bytes: Option<&[u8]>) -> Cached {
    match bytes {
        None => Cached::Absent,
        Some(bytes) => match serde_json::from_slice::<Head>(bytes) {
            Ok(head) => Cached::Present {
                version: head.version,
                keep: head.keep,
                value: LazyValue::default(),
                bytes: Arc::from(bytes),
            },
            Err(error) => Cached::Bad {
                message: JsonError::without_data(&error).to_string(),
            },
        },
    }
}

/// The bounds of the backoff of re-reads that failed.
pub(super) const RETRY_MIN: Duration = Duration::from_millis(50);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(2);

/// The background task: owns the cache's contents.
pub(super) async fn run(
    shared: std::sync::Weak<Shared>,
    mut subscription: Subscription,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    // Entries whose re-read failed and must be tried again.
    let mut pending: HashSet<String> = HashSet::new();
    // Entries whose read raced with a local write and must be read again.
    let mut redo: HashSet<String> = HashSet::new();
    // The wait before pending entries are tried again: the shared backoff,
    // growing while re-reads keep failing, from the start after a success.
    let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
    let mut delay = backoff.next_delay();
    loop {
        let mut stale: HashSet<String> = HashSet::new();
        let mut answers: Vec<(oneshot::Sender<Result<(), StoreError>>, String)> = Vec::new();
        let mut sinks: Vec<(String, Sink)> = Vec::new();
        tokio::select! {
            event = subscription.next() => {
                let Some(event) = event else { return };
                let Some(shared) = shared.upgrade() else { return };
                note(&shared, event, &mut stale);
                // Take whatever else is buffered: one read per entry.
                while let Some(event) = subscription.try_next() {
                    note(&shared, event, &mut stale);
                }
            }
            request = requests.recv() => {
                let Some(request) = request else { return };
                let mut take = |request: Request| match request {
                    Request::Load(name, done) => {
                        stale.insert(name.clone());
                        answers.push((done, name));
                    }
                    Request::Watch(name, sink, done) => {
                        stale.insert(name.clone());
                        sinks.push((name.clone(), sink));
                        answers.push((done, name));
                    }
                    Request::Reread(name) => {
                        stale.insert(name);
                    }
                };
                take(request);
                while let Ok(request) = requests.try_recv() {
                    take(request);
                }
            }
            () = tokio::time::sleep(delay), if !pending.is_empty() => {
                delay = backoff.next_delay();
            }
            () = std::future::ready(()), if !redo.is_empty() => {}
        }
        let Some(shared) = shared.upgrade() else { return };
        stale.extend(pending.drain());
        stale.extend(redo.drain());
        if stale.is_empty() {
            continue;
        }
        let names: Vec<String> = stale.into_iter().collect();
        let seen: Vec<u64> = {
            let cache = lock(&shared.cache);
            names
                .iter()
                .map(|name| cache.get(name).map_or(0, |slot| slot.local))
                .collect()
        };
        let read = read_entries(&shared, &names).await;
        match read {
            Ok(states) => {
                backoff.reset();
                delay = backoff.next_delay();
                redo.extend(apply(&shared, &names, &seen, states, sinks));
                for (done, _) in answers {
                    let _ = done.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::debug!(target: "statehouse", %error, "config: re-read failed; retrying");
                // Cached entries are tried again; first loads fail now.
                let cache = lock(&shared.cache);
                pending.extend(names.into_iter().filter(|name| cache.contains_key(name)));
                drop(cache);
                let failed = error.to_string();
                for (done, name) in answers {
                    let _ = done.send(Err(StoreError::Operation {
                        op: OP_FETCH,
                        key: name,
                        source: failed.clone().into(),
                    }));
                }
            }
        }
    }
}

/// Adds the entries an event makes stale.
pub(super) fn note(shared: &Shared, event: FeedEvent, stale: &mut HashSet<String>) {
    let mut cache = lock(&shared.cache);
    match event {
        FeedEvent::Change(change) => {
            if let Some(name) = ConfigKeys::name_of(&change.key)
                && let Some(slot) = cache.get_mut(&name)
            {
                // A set announcing the version the cache holds was read (or
                // written here) already: events of a key come in commit
                // order, and a version comes back only after a delete, whose
                // event made the entry stale first.
                let announced = match (change.kind, change.version) {
                    (ChangeKind::Set, Some(announced)) => Some(announced),
                    _ => None,
                };
                let known = matches!(
                    (&slot.state, announced),
                    (Cached::Present { version, .. }, Some(announced)) if *version == announced
                );
                // The notice of a version a local write is swapping in,
                // which most often arrives before the write's answer: the
                // writer hands the cache its bytes, or has it read them
                // when its swap did not land (`Writing`).
                let own = announced.is_some_and(|announced| slot.writing.contains(&announced));
                if own {
                    slot.unread = true;
                } else if !known {
                    stale.insert(name);
                }
            }
        }
        FeedEvent::Resync(_) => stale.extend(cache.keys().cloned()),
    }
}

/// A local write of `version` of a cached entry, from before its swap is
/// sent until the cache took its outcome: the feed's notice of that version
/// (as a rule this write's own, and often in before the swap's answer) is
/// not read ([`note`] marks the slot `unread`). When the
/// last such write ends, on any path (an answer, an error, the caller
/// cancelled), an entry whose notice was left unread and whose cache does
/// not hold that version (the swap was refused: the notice was another
/// writer's; or its outcome is unknown) is read again.
pub(super) struct Writing<'s> {
    shared: &'s Shared,
    name: &'s str,
    version: u64,
}

impl<'s> Writing<'s> {
    pub(super) fn start(shared: &'s Shared, name: &'s str, version: u64) -> Self {
        if let Some(slot) = lock(&shared.cache).get_mut(name) {
            slot.writing.push(version);
        }
        Self {
            shared,
            name,
            version,
        }
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut cache = lock(&self.shared.cache);
        let Some(slot) = cache.get_mut(self.name) else {
            return;
        };
        if let Some(at) = slot.writing.iter().position(|version| *version == self.version) {
            slot.writing.swap_remove(at);
        }
        if !slot.unread || !slot.writing.is_empty() {
            return;
        }
        slot.unread = false;
        let holds_it = matches!(&slot.state, Cached::Present { version, .. } if *version == self.version);
        drop(cache);
        if !holds_it && let Some(requests) = self.shared.requests.get() {
            let _ = requests.send(Request::Reread(self.name.to_owned()));
        }
    }
}

/// Reads the entries `names`, in one call.
pub(super) async fn read_entries(shared: &Shared, names: &[String]) -> Result<Vec<Cached>, StoreError> {
    let keys = names
        .iter()
        .map(|name| entry_key(OP_FETCH, name))
        .collect::<Result<Vec<Key>, _>>()?;
    let fetched = shared.documents.get_many(&keys).await?;
    fetched
        .into_iter()
        .map(|one| one.map(|bytes| cached_of(bytes.as_deref())))
        .collect()
}

/// Puts what was read into the cache and tells the watchers of changed
/// entries (and the new watchers, of the current state). `seen` is each
/// slot's count of local writes when the read started: a slot that took a
/// local write since keeps it (the read may predate it), and its name is
/// returned, to be read again.
pub(super) fn apply(
    shared: &Shared,
    names: &[String],
    seen: &[u64],
    states: Vec<Cached>,
    mut sinks: Vec<(String, Sink)>,
) -> Vec<String> {
    let mut raced = Vec::new();
    let mut cache = lock(&shared.cache);
    for ((name, state), seen) in names.iter().zip(states).zip(seen) {
        let slot = cache.entry(name.clone()).or_insert_with(Slot::new);
        if slot.local != *seen {
            raced.push(name.clone());
            continue;
        }
        let changed = !same(&slot.state, &state);
        if changed {
            slot.state = state;
            slot.typed = None;
            slot.sinks.retain_mut(|sink| sink(name, &slot.state));
        }
    }
    for (name, mut sink) in sinks.drain(..) {
        if let Some(slot) = cache.get_mut(&name)
            && sink(&name, &slot.state)
        {
            slot.sinks.push(sink);
        }
    }
    raced
}

/// Whether `state` is what the stored bytes `bytes` (`None`: absent) describe.
pub(super) fn holds(state: &Cached, bytes: Option<&[u8]>) -> bool {
    match (state, bytes) {
        (Cached::Absent, None) => true,
        (Cached::Present { bytes: held, .. }, Some(bytes)) => **held == *bytes,
        _ => false,
    }
}

/// Whether two states are the same version of the same thing.
pub(super) fn same(a: &Cached, b: &Cached) -> bool {
    match (a, b) {
        (Cached::Absent, Cached::Absent) => true,
        (
            Cached::Present {
                version: x,
                value: v,
                bytes: p,
                ..
            },
            Cached::Present {
                version: y,
                value: w,
                bytes: q,
                ..
            },
        ) => p == q || (x == y && v.get(p) == w.get(q)),
        (Cached::Bad { message: x }, Cached::Bad { message: y }) => x == y,
        _ => false,
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use statehouse_domain::ChangeEvent;

    use super::*;

    fn shared() -> Shared {
        let store = statehouse_memory::MemoryStore::new();
        Shared {
            documents: Arc::new(store.clone()),
            changes: Arc::new(store),
            cache: Mutex::new(HashMap::new()),
            requests: tokio::sync::OnceCell::new(),
            task: Mutex::new(None),
            combiner: Combiner::default(),
        }
    }

    fn envelope(version: u64) -> Vec<u8> {
        format!(r#"{{"version":{version},"value":{version}}}"#).into_bytes()
    }

    fn version_of(shared: &Shared, name: &str) -> Option<u64> {
        match lock(&shared.cache).get(name).map(|slot| &slot.state) {
            Some(Cached::Present { version, .. }) => Some(*version),
            _ => None,
        }
    }

    #[test]
    fn a_read_that_raced_a_local_write_is_not_applied_but_repeated() {
        let shared = shared();
        let names = vec!["a".to_owned()];
        let raced = apply(
            &shared,
            &names,
            &[0],
            vec![cached_of(Some(&envelope(1)))],
            Vec::new(),
        );
        assert!(raced.is_empty());
        // A read starts (seeing 0 local writes), then a local write lands.
        lock(&shared.cache).get_mut("a").unwrap().local += 1;
        lock(&shared.cache).get_mut("a").unwrap().state = cached_of(Some(&envelope(2)));
        let raced = apply(
            &shared,
            &names,
            &[0],
            vec![cached_of(Some(&envelope(1)))],
            Vec::new(),
        );
        assert_eq!(raced, names, "read again");
        assert_eq!(version_of(&shared, "a"), Some(2), "never back to the older read");
        let raced = apply(
            &shared,
            &names,
            &[1],
            vec![cached_of(Some(&envelope(3)))],
            Vec::new(),
        );
        assert!(raced.is_empty());
        assert_eq!(version_of(&shared, "a"), Some(3));
    }

    /// A cache holding version `version` of entry `a`.
    fn holding_a(version: u64) -> Shared {
        let shared = shared();
        apply(
            &shared,
            &["a".to_owned()],
            &[0],
            vec![cached_of(Some(&envelope(version)))],
            Vec::new(),
        );
        shared
    }

    fn set_event(version: u64) -> FeedEvent {
        FeedEvent::Change(ChangeEvent {
            key: "config:a".into(),
            kind: ChangeKind::Set,
            version: Some(version),
        })
    }

    #[test]
    fn the_notice_of_a_local_write_is_read_only_if_the_write_did_not_land() {
        let shared = holding_a(4);
        let (sender, mut requests) = mpsc::unbounded_channel();
        assert!(shared.requests.set(sender).is_ok());
        let read_asked = |requests: &mut mpsc::UnboundedReceiver<Request>| match requests.try_recv() {
            Ok(Request::Reread(name)) => Some(name),
            Ok(Request::Load(name, _) | Request::Watch(name, ..)) => panic!("a load of {name}"),
            Err(_) => None,
        };

        // The write lands: the cache takes version 5 from the writer, and
        // its notice, in before the answer, is never read.
        let writing = Writing::start(&shared, "a", 5);
        let mut stale = HashSet::new();
        note(&shared, set_event(5), &mut stale);
        assert!(stale.is_empty(), "the writer's own notice is not read");
        lock(&shared.cache).get_mut("a").unwrap().state = cached_of(Some(&envelope(5)));
        drop(writing);
        assert_eq!(read_asked(&mut requests), None);

        // The swap is refused (or its outcome unknown): the notice of 6
        // was another writer's, and the entry is read once the write ends.
        let writing = Writing::start(&shared, "a", 6);
        note(&shared, set_event(6), &mut stale);
        assert!(stale.is_empty());
        drop(writing);
        assert_eq!(read_asked(&mut requests).as_deref(), Some("a"));
        assert_eq!(read_asked(&mut requests), None, "one read");

        // Two local writes of one version, one refused: the read waits for
        // the last, and is not needed once the other landed.
        let (first, second) = (Writing::start(&shared, "a", 6), Writing::start(&shared, "a", 6));
        note(&shared, set_event(6), &mut stale);
        drop(first);
        assert_eq!(read_asked(&mut requests), None, "a write of 6 is still out");
        lock(&shared.cache).get_mut("a").unwrap().state = cached_of(Some(&envelope(6)));
        drop(second);
        assert_eq!(read_asked(&mut requests), None);

        // No local write out: a notice of another version is read.
        note(&shared, set_event(7), &mut stale);
        assert!(stale.contains("a"));
    }

    #[test]
    fn only_an_event_of_another_version_makes_an_entry_stale() {
        let shared = holding_a(4);
        let event = |kind, version| {
            FeedEvent::Change(ChangeEvent {
                key: "config:a".into(),
                kind,
                version,
            })
        };
        for (kind, version, stale) in [
            (ChangeKind::Set, Some(4), false),
            (ChangeKind::Set, Some(5), true),
            (ChangeKind::Set, None, true),
            (ChangeKind::Deleted, None, true),
            (ChangeKind::Expired, None, true),
        ] {
            let mut names = HashSet::new();
            note(&shared, event(kind, version), &mut names);
            assert_eq!(names.contains("a"), stale, "{kind:?} {version:?}");
        }
    }
}
