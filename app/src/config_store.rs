//! The config store: typed, versioned configuration entries with a local
//! cache kept current by the change feed, and watchers.
//!
//! # How it stays current
//!
//! An entry is one document, `config:<escaped name>` (`layout::ConfigKeys`),
//! holding a [`ConfigEntry`] envelope. An update is a compare-and-set of it
//! through the change feed's `swap_announced`: the next envelope is computed
//! from the bytes the cache holds and written only if the entry still holds
//! exactly those (one round trip when the cache is current); a refusal
//! answers the current bytes, from which the next try is computed (the
//! attempts of THE optimistic loop, [`RetryPolicy::run`]: a refusal of bytes
//! read from the server is a conflict, counted, with the policy's backoff;
//! a refusal of the cache's bytes is only repeated). So
//! the version bump, the history append and the change event are one atomic
//! step, and two writers always get two consecutive versions. A delete is
//! one optimistic `update_announced`.
//!
//! Each [`ConfigStore`] (and its clones) has one background task that owns
//! the cache: it subscribes to every entry's changes (one subscription; on
//! Redis one Pub/Sub connection), and re-reads an entry when its event
//! arrives, and every cached entry on `Resync` (subscribed, reconnected,
//! lagged). Loads for a first `fetch`/`watch` go through the same task, so
//! every cached value is exactly what the latest read returned, or what
//! this handle's own swap wrote over the value the cache still held: the
//! cache never looks newer than what was read or written, and never goes
//! back to an older read. A read that fails (the server is down) is retried
//! with the shared [`Backoff`] (50 ms to 2 s) until it succeeds. Dropping
//! the last clone stops the task and the subscription.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_domain::layout::ConfigKeys;
use statehouse_domain::{
    ChangeKind, ConfigEntry, ConfigHead, FeedEvent, MAX_KEY_BYTES, VersionMismatch, validate_identifier,
};
use statehouse_ports::Swapped;
use statehouse_ports::{
    Attempt, Backoff, ChangeFeed, DEFAULT_FEED_CAPACITY, DocumentStore, JsonError, Key, KeyPattern,
    Optimistic, RetryPolicy, StoreError, Subscription, Update, ValidationExt, Watched,
};
use tokio::sync::{mpsc, oneshot, watch};

/// A value with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The version (1 for the first write, +1 per update).
    pub version: u64,
    /// The value.
    pub value: T,
}

/// A stored value that does not decode as the watched or fetched type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config {name:?}{}: the stored value is not a valid {expected}: {message}", version.map(|v| format!(" version {v}")).unwrap_or_default())]
pub struct BadConfig {
    /// The entry's name.
    pub name: String,
    /// The version of the bad value (`None` if the envelope itself is bad).
    pub version: Option<u64>,
    /// The type expected.
    pub expected: &'static str,
    /// What is wrong (without the data).
    pub message: String,
}

impl From<BadConfig> for StoreError {
    fn from(bad: BadConfig) -> Self {
        let source = match bad.version {
            Some(version) => format!("version {version}: {}", bad.message),
            None => bad.message,
        };
        StoreError::deserialization("config_fetch", bad.name, bad.expected, source)
    }
}

/// What a watcher holds: the last good value and the last error (a value of
/// a later version that did not decode), cleared by the next good value.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<T> {
    /// The last value that decoded, with its version; `None` while the
    /// entry does not exist (or never held a good value).
    pub current: Option<Versioned<T>>,
    /// Set when the latest version did not decode; `current` stays the last
    /// good one.
    pub error: Option<BadConfig>,
}

/// Typed, versioned configuration, with a local cache kept current by the
/// change feed; see the guide ([`crate::guide::config`]).
///
/// Cloning is cheap: clones share the cache and the subscription.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    shared: Arc<Shared>,
    /// Stops the background task when the last clone is dropped.
    _task: Arc<TaskGuard>,
    /// The history length this handle writes; `None`: each entry's own.
    history: Option<usize>,
    policy: RetryPolicy,
}

/// The cached state of one entry.
#[derive(Debug, Clone)]
enum Cached {
    Absent,
    Present {
        version: u64,
        value: Arc<serde_json::Value>,
        /// The stored envelope, byte for byte: what an update expects.
        bytes: Arc<[u8]>,
    },
    /// The envelope does not decode.
    Bad {
        message: String,
    },
}

/// A watcher's callback: told of every new state; `false` once its
/// receivers are gone.
type Sink = Box<dyn FnMut(&str, &Cached) -> bool + Send>;

struct Slot {
    state: Cached,
    /// The value decoded as the last type asked for, for the current state.
    typed: Option<(TypeId, Arc<dyn Any + Send + Sync>)>,
    sinks: Vec<Sink>,
    /// How many local writes the slot took ([`ConfigStore::adopt`]): a read
    /// that started before one may predate it and is not applied.
    local: u64,
}

struct Shared {
    documents: Arc<dyn DocumentStore>,
    changes: Arc<dyn ChangeFeed>,
    cache: Mutex<HashMap<String, Slot>>,
    /// Requests to the background task; set once it runs.
    requests: tokio::sync::OnceCell<mpsc::UnboundedSender<Request>>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCache")
            .field("entries", &lock(&self.cache).len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct TaskGuard(Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.0.task).take() {
            task.abort();
        }
    }
}

/// What the background task is asked to do.
enum Request {
    /// Read the entry (caching it from now on) and answer once cached.
    Load(String, oneshot::Sender<Result<(), StoreError>>),
    /// Like `Load`, then add a watcher.
    Watch(String, Sink, oneshot::Sender<Result<(), StoreError>>),
}

const OP_FETCH: &str = "config_fetch";
/// The operation errors of the entry's read-modify-write name (as the
/// document port's `update` did).
const UPDATE_OP: &str = "update";

/// Why no next envelope could be computed.
enum NextError {
    Store(StoreError),
    Mismatch(VersionMismatch),
}
const OP_UPDATE: &str = "config_update";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn entry_key(op: &'static str, name: &str) -> Result<Key, StoreError> {
    validate_identifier("config name", name, MAX_KEY_BYTES).for_op(op, name)?;
    Key::new(ConfigKeys::entry(name)).for_op(op, name)
}

/// The state stored bytes describe.
fn cached_of(bytes: Option<&[u8]>) -> Cached {
    match bytes {
        None => Cached::Absent,
        Some(bytes) => match serde_json::from_slice::<ConfigHead>(bytes) {
            Ok(head) => Cached::Present {
                version: head.version,
                value: Arc::new(head.value),
                bytes: Arc::from(bytes),
            },
            Err(error) => Cached::Bad {
                message: JsonError::without_data(&error).to_string(),
            },
        },
    }
}

fn decode<T: DeserializeOwned>(name: &str, version: u64, value: &serde_json::Value) -> Result<T, BadConfig> {
    T::deserialize(value).map_err(|error| BadConfig {
        name: name.to_owned(),
        version: Some(version),
        expected: std::any::type_name::<T>(),
        message: JsonError::without_data(&error).to_string(),
    })
}

impl ConfigStore {
    /// A store over these ports, keeping each entry's mode (new entries
    /// plain, see [`with_history`](Self::with_history)), with the
    /// default update retry policy. [`Statehouse::config`](crate::Statehouse::config)
    /// builds one over its ports.
    pub fn new(documents: Arc<dyn DocumentStore>, changes: Arc<dyn ChangeFeed>) -> Self {
        let shared = Arc::new(Shared {
            documents,
            changes,
            cache: Mutex::new(HashMap::new()),
            requests: tokio::sync::OnceCell::new(),
            task: Mutex::new(None),
        });
        Self {
            _task: Arc::new(TaskGuard(shared.clone())),
            shared,
            history: None,
            policy: RetryPolicy::default(),
        }
    }

    /// History mode: each update through this handle keeps up to `len`
    /// older versions readable ([`fetch_version`](Self::fetch_version),
    /// [`versions`](Self::versions)); 0 is plain mode. The entry remembers
    /// its length: a handle that did not choose one (the default) keeps
    /// each entry's mode, and creates new entries in plain mode. The cache
    /// stays shared with the handle this came from.
    #[must_use]
    pub fn with_history(mut self, len: usize) -> Self {
        self.history = Some(len);
        self
    }

    /// The retry policy of updates (conflicts between writers).
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The current value of `name`, `None` if it does not exist.
    ///
    /// The first fetch of a name reads the store and caches the entry; from
    /// then on fetches answer from memory, and the cache follows the change
    /// feed. A value that does not decode as `T` is
    /// [`StoreError::Deserialization`] naming the entry and its version.
    pub async fn fetch<T>(&self, name: &str) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        Ok(self.fetch_versioned::<T>(name).await?.map(|entry| entry.value))
    }

    /// Like [`fetch`](Self::fetch), with the version.
    pub async fn fetch_versioned<T>(&self, name: &str) -> Result<Option<Versioned<T>>, StoreError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if let Some(found) = self.cached::<T>(name) {
            return found;
        }
        entry_key(OP_FETCH, name)?;
        let (done, answer) = oneshot::channel();
        self.request(Request::Load(name.to_owned(), done)).await?;
        answer.await.map_err(|_| gone(name))??;
        self.cached::<T>(name).unwrap_or_else(|| Err(gone(name)))
    }

    /// The cached answer, if `name` is cached.
    fn cached<T>(&self, name: &str) -> Option<Result<Option<Versioned<T>>, StoreError>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let mut cache = lock(&self.shared.cache);
        let slot = cache.get_mut(name)?;
        Some(match &slot.state {
            Cached::Absent => Ok(None),
            Cached::Bad { message } => Err(BadConfig {
                name: name.to_owned(),
                version: None,
                expected: std::any::type_name::<T>(),
                message: message.clone(),
            }
            .into()),
            Cached::Present { version, value, .. } => {
                let version = *version;
                if let Some((type_id, typed)) = &slot.typed
                    && *type_id == TypeId::of::<T>()
                    && let Some(typed) = typed.downcast_ref::<T>()
                {
                    return Some(Ok(Some(Versioned {
                        version,
                        value: typed.clone(),
                    })));
                }
                match decode::<T>(name, version, value) {
                    Ok(typed) => {
                        slot.typed = Some((TypeId::of::<T>(), Arc::new(typed.clone())));
                        Ok(Some(Versioned {
                            version,
                            value: typed,
                        }))
                    }
                    Err(bad) => Err(bad.into()),
                }
            }
        })
    }

    /// The version of `name` in the cache: `None` if it is not cached (never
    /// fetched or watched here) or absent. Never newer than what was read.
    pub fn cached_version(&self, name: &str) -> Option<u64> {
        match lock(&self.shared.cache).get(name).map(|slot| &slot.state) {
            Some(Cached::Present { version, .. }) => Some(*version),
            _ => None,
        }
    }

    /// A watcher of `name`: a `tokio::sync::watch` receiver whose value is
    /// the latest good value (with its version) and the latest decode
    /// error. It holds the current state at once and changes with every
    /// update the feed reports (`changed` waits for the first change after
    /// this call). Dropping every receiver ends the watch.
    pub async fn watch<T>(&self, name: &str) -> Result<watch::Receiver<Snapshot<T>>, StoreError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        entry_key(OP_FETCH, name)?;
        let (sender, receiver) = watch::channel(Snapshot {
            current: None,
            error: None,
        });
        let sink: Sink = Box::new(move |name, state| {
            match state {
                Cached::Absent => sender.send_replace(Snapshot {
                    current: None,
                    error: None,
                }),
                Cached::Bad { message } => {
                    let error = BadConfig {
                        name: name.to_owned(),
                        version: None,
                        expected: std::any::type_name::<T>(),
                        message: message.clone(),
                    };
                    sender.send_modify(|snapshot| snapshot.error = Some(error));
                    return !sender.is_closed();
                }
                Cached::Present { version, value, .. } => match decode::<T>(name, *version, value) {
                    Ok(value) => sender.send_replace(Snapshot {
                        current: Some(Versioned {
                            version: *version,
                            value,
                        }),
                        error: None,
                    }),
                    Err(error) => {
                        sender.send_modify(|snapshot| snapshot.error = Some(error));
                        return !sender.is_closed();
                    }
                },
            };
            !sender.is_closed()
        });
        let (done, answer) = oneshot::channel();
        self.request(Request::Watch(name.to_owned(), sink, done)).await?;
        answer.await.map_err(|_| gone(name))??;
        let mut receiver = receiver;
        // The current state is the starting point: `changed` waits for
        // the next one.
        receiver.borrow_and_update();
        Ok(receiver)
    }

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
        let value =
            serde_json::to_value(value).map_err(|error| StoreError::serialization(op, name, error))?;
        // What the entry holds as far as this handle knows: the cache's
        // bytes (one round trip when they are current), else a guess that
        // it is absent, which a refusal corrects with the current bytes.
        let (cached, expected) = match lock(&self.shared.cache).get(name).map(|slot| &slot.state) {
            Some(Cached::Present { bytes, .. }) => (true, Some(bytes.to_vec())),
            Some(Cached::Absent) => (true, None),
            Some(Cached::Bad { .. }) => (true, None),
            None => (false, None),
        };
        let mut swap = Swap {
            store: self,
            op,
            name,
            key: &key,
            value: &value,
            expected_version,
            expected,
            from_server: false,
        };
        let ((version, written), _) = self.policy.run(UPDATE_OP, key.as_str(), &mut swap).await?;
        if cached && !self.adopt(name, swap.expected.as_deref(), &written) {
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
    fn adopt(&self, name: &str, base: Option<&[u8]>, written: &[u8]) -> bool {
        let mut cache = lock(&self.shared.cache);
        let Some(slot) = cache.get_mut(name) else {
            return true;
        };
        if !holds(&slot.state, base) {
            return false;
        }
        slot.local += 1;
        let state = cached_of(Some(written));
        if !same(&slot.state, &state) {
            slot.state = state;
            slot.typed = None;
            slot.sinks.retain_mut(|sink| sink(name, &slot.state));
        }
        true
    }

    /// Deletes `name` (and its history); returns whether it existed.
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        let key = entry_key("config_delete", name)?;
        let mut existed = false;
        self.shared
            .changes
            .update_announced(&key, self.policy, &mut |current| {
                existed = current.is_some();
                Ok((if existed { Update::Delete } else { Update::Keep }, None))
            })
            .await?;
        self.refresh_if_cached(name).await;
        Ok(existed)
    }

    /// The versions of `name` held in the store, newest first (one in plain
    /// mode); empty if it does not exist. Reads the store.
    pub async fn versions(&self, name: &str) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .entry("config_versions", name)
            .await?
            .map(|entry| entry.versions())
            .unwrap_or_default())
    }

    /// The value of `name` at `version`, `None` if that version is not held
    /// (never written, or dropped from the bounded history). Reads the store.
    pub async fn fetch_version<T: DeserializeOwned>(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<T>, StoreError> {
        let Some(entry) = self.entry("config_fetch_version", name).await? else {
            return Ok(None);
        };
        match entry.at(version) {
            None => Ok(None),
            Some(value) => Ok(Some(decode::<T>(name, version, value)?)),
        }
    }

    /// Every version held, newest first, with its raw JSON value.
    pub async fn history(&self, name: &str) -> Result<Vec<Versioned<serde_json::Value>>, StoreError> {
        let Some(entry) = self.entry("config_history", name).await? else {
            return Ok(Vec::new());
        };
        Ok(std::iter::once(Versioned {
            version: entry.version,
            value: entry.value,
        })
        .chain(entry.history.into_iter().map(|past| Versioned {
            version: past.version,
            value: past.value,
        }))
        .collect())
    }

    /// The whole stored envelope of `name`.
    async fn entry(&self, op: &'static str, name: &str) -> Result<Option<ConfigEntry>, StoreError> {
        let key = entry_key(op, name)?;
        match self.shared.documents.get(&key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                StoreError::deserialization(op, name, "config entry", JsonError::without_data(&error))
            }),
        }
    }

    /// After a local write: when `name` is cached, waits until the cache has
    /// read it again (so this handle reads its own writes). A failure only
    /// leaves the refresh to the feed.
    async fn refresh_if_cached(&self, name: &str) {
        if !lock(&self.shared.cache).contains_key(name) {
            return;
        }
        let (done, answer) = oneshot::channel();
        if self.request(Request::Load(name.to_owned(), done)).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Sends `request` to the background task, starting it (and its
    /// subscription) first if needed.
    async fn request(&self, request: Request) -> Result<(), StoreError> {
        let requests = self
            .shared
            .requests
            .get_or_try_init(|| async {
                let pattern = KeyPattern::new(ConfigKeys::pattern()).for_op("config_watch", "")?;
                let subscription = self
                    .shared
                    .changes
                    .subscribe(&Watched::Pattern(pattern), DEFAULT_FEED_CAPACITY)
                    .await?;
                let (sender, receiver) = mpsc::unbounded_channel();
                let task = tokio::spawn(run(Arc::downgrade(&self.shared), subscription, receiver));
                *lock(&self.shared.task) = Some(task.abort_handle());
                Ok::<_, StoreError>(sender)
            })
            .await?;
        requests.send(request).map_err(|_| gone(""))
    }
}

/// The compare-and-set attempts of one config write, for
/// [`RetryPolicy::run`]: compute the next envelope from the bytes expected,
/// swap it in if the entry still holds them. A refusal answers the current
/// bytes, expected by the next attempt.
struct Swap<'a> {
    store: &'a ConfigStore,
    op: &'static str,
    name: &'a str,
    key: &'a Key,
    value: &'a serde_json::Value,
    expected_version: Option<u64>,
    /// The bytes the entry is expected to hold (`None`: absent).
    expected: Option<Vec<u8>>,
    /// Whether `expected` came from the server (the last refusal or a
    /// read) rather than the cache or a guess: only then is a refusal a
    /// conflict with another writer, and a bad or mismatching entry final.
    /// Until then, a refusal or a failure repeats the attempt on what the
    /// server holds, without counting.
    from_server: bool,
}

impl Optimistic for Swap<'_> {
    /// The version written, and the bytes.
    type Output = (u64, Vec<u8>);

    async fn attempt(&mut self, _: u32) -> Result<Attempt<(u64, Vec<u8>)>, StoreError> {
        let (op, name) = (self.op, self.name);
        let next = match self.store.next_entry(
            self.key,
            self.expected.as_deref(),
            self.value,
            self.expected_version,
        ) {
            Ok(next) => next,
            Err(_) if !self.from_server => {
                // The cache may be behind: decide on what the server holds.
                self.expected = self.store.shared.documents.get(self.key).await?;
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
        let bytes = serde_json::to_vec(&next).map_err(|error| StoreError::serialization(op, name, error))?;
        let swapped = self
            .store
            .shared
            .changes
            .swap_announced(self.key, self.expected.as_deref(), &bytes, Some(next.version))
            .await?;
        match swapped {
            Swapped::Swapped => Ok(Attempt::Done((next.version, bytes))),
            Swapped::Refused(current) => {
                self.expected = current;
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

fn gone(name: &str) -> StoreError {
    StoreError::Operation {
        op: OP_FETCH,
        key: name.to_owned(),
        source: "the config store's background task has stopped".into(),
    }
}

/// The bounds of the backoff of re-reads that failed.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The background task: owns the cache's contents.
async fn run(
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
fn note(shared: &Shared, event: FeedEvent, stale: &mut HashSet<String>) {
    let cache = lock(&shared.cache);
    match event {
        FeedEvent::Change(change) => {
            if let Some(name) = ConfigKeys::name_of(&change.key)
                && let Some(slot) = cache.get(&name)
            {
                // A set announcing the version the cache holds was read (or
                // written here) already: events of a key come in commit
                // order, and a version comes back only after a delete, whose
                // event made the entry stale first.
                let known = matches!(
                    (&slot.state, change.kind, change.version),
                    (Cached::Present { version, .. }, ChangeKind::Set, Some(announced)) if *version == announced
                );
                if !known {
                    stale.insert(name);
                }
            }
        }
        FeedEvent::Resync(_) => stale.extend(cache.keys().cloned()),
    }
}

/// Reads the entries `names`, in one call.
async fn read_entries(shared: &Shared, names: &[String]) -> Result<Vec<Cached>, StoreError> {
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
fn apply(
    shared: &Shared,
    names: &[String],
    seen: &[u64],
    states: Vec<Cached>,
    mut sinks: Vec<(String, Sink)>,
) -> Vec<String> {
    let mut raced = Vec::new();
    let mut cache = lock(&shared.cache);
    for ((name, state), seen) in names.iter().zip(states).zip(seen) {
        let slot = cache.entry(name.clone()).or_insert_with(|| Slot {
            state: Cached::Absent,
            typed: None,
            sinks: Vec::new(),
            local: 0,
        });
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
fn holds(state: &Cached, bytes: Option<&[u8]>) -> bool {
    match (state, bytes) {
        (Cached::Absent, None) => true,
        (Cached::Present { bytes: held, .. }, Some(bytes)) => **held == *bytes,
        _ => false,
    }
}

/// Whether two states are the same version of the same thing.
fn same(a: &Cached, b: &Cached) -> bool {
    match (a, b) {
        (Cached::Absent, Cached::Absent) => true,
        (
            Cached::Present {
                version: x, value: v, ..
            },
            Cached::Present {
                version: y, value: w, ..
            },
        ) => x == y && v == w,
        (Cached::Bad { message: x }, Cached::Bad { message: y }) => x == y,
        _ => false,
    }
}

#[cfg(test)]
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

    #[test]
    fn only_an_event_of_another_version_makes_an_entry_stale() {
        let shared = shared();
        apply(
            &shared,
            &["a".to_owned()],
            &[0],
            vec![cached_of(Some(&envelope(4)))],
            Vec::new(),
        );
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
