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
//! step, and two writers always get two consecutive versions. Concurrent
//! updates of one entry through one store are combined (`swap.rs`, the
//! `Combiner` of the ports): one compare-and-set for a batch, each caller's
//! envelope built on the one before in arrival order, unless the feed's
//! store has combining off (`ChangeFeed::combining`). A delete is one
//! optimistic `update_announced`.
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

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use statehouse_domain::layout::ConfigKeys;
use statehouse_domain::{ConfigEntry, MAX_KEY_BYTES, validate_identifier};
use statehouse_ports::{
    ChangeFeed, DEFAULT_FEED_CAPACITY, DocumentStore, JsonError, Key, KeyPattern, RetryPolicy, StoreError,
    Update, ValidationExt, Watched,
};
use tokio::sync::{mpsc, oneshot, watch};

use self::cache::{Cached, Request, Shared, Sink, TaskGuard, lock, run};

mod cache;
mod swap;

/// An envelope an update builds on: what the entry holds as far as the
/// updater knows, or what the updates before it in a combined round built.
#[derive(Debug, Clone)]
struct Held {
    /// The envelope's bytes (`None`: absent).
    bytes: Option<Arc<[u8]>>,
    /// Its version and history length when known without decoding it
    /// (`(0, 0)`: absent): from the cache, or built by an update (`swap.rs`).
    /// `None`: decode.
    head: Option<(u64, usize)>,
}

impl Held {
    /// Bytes the store answered (a read, a refused swap), not decoded yet.
    fn stored(bytes: Option<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.map(Arc::from),
            head: None,
        }
    }
}

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

const OP_FETCH: &str = "config_fetch";
const OP_UPDATE: &str = "config_update";

fn entry_key(op: &'static str, name: &str) -> Result<Key, StoreError> {
    validate_identifier("config name", name, MAX_KEY_BYTES).for_op(op, name)?;
    Key::new(ConfigKeys::entry(name)).for_op(op, name)
}

fn decode<T: DeserializeOwned>(name: &str, version: u64, value: &serde_json::Value) -> Result<T, BadConfig> {
    T::deserialize(value).map_err(|error| bad_value::<T>(name, version, &error))
}

/// The value of the envelope `bytes` as `T`, decoded from the bytes in one
/// pass (the version and history are skipped).
fn decode_bytes<T: DeserializeOwned>(name: &str, version: u64, bytes: &[u8]) -> Result<T, BadConfig> {
    #[derive(serde::Deserialize)]
    struct ValueOf<T> {
        value: T,
    }
    serde_json::from_slice::<ValueOf<T>>(bytes)
        .map(|envelope| envelope.value)
        .map_err(|error| bad_value::<T>(name, version, &error))
}

fn bad_value<T>(name: &str, version: u64, error: &serde_json::Error) -> BadConfig {
    BadConfig {
        name: name.to_owned(),
        version: Some(version),
        expected: std::any::type_name::<T>(),
        message: JsonError::without_data(error).to_string(),
    }
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
            combiner: statehouse_ports::Combiner::default(),
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
            Cached::Present { version, bytes, .. } => {
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
                match decode_bytes::<T>(name, version, bytes) {
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
                Cached::Present { version, bytes, .. } => match decode_bytes::<T>(name, *version, bytes) {
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
        self.shared.refresh(name).await;
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

fn gone(name: &str) -> StoreError {
    StoreError::Operation {
        op: OP_FETCH,
        key: name.to_owned(),
        source: "the config store's background task has stopped".into(),
    }
}
