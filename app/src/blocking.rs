//! A blocking (synchronous) twin of the API, for code that is not async,
//! in the manner of `reqwest::blocking`.
//!
//! A [`Statehouse`] here owns a small tokio runtime (one worker thread) and
//! runs each call to completion on it. It can be shared between threads.
//! Do not use it from inside an async runtime: there, calls return an
//! [`InvalidInput`](StoreError::InvalidInput) error instead of blocking the
//! executor (use the async API there). tokio does not tell its blocking
//! threads from the ones driving tasks, so any thread of a runtime is
//! refused, except the closure of [`crate::SharedState::spawn_blocking`],
//! which statehouse runs on a blocking thread itself.
//!
//! ```
//! use statehouse::blocking::Statehouse;
//!
//! let state = Statehouse::connect("memory://")?;
//! let docs = state.documents();
//! docs.set("greeting", &"hello")?;
//! assert_eq!(docs.get::<String>("greeting")?.as_deref(), Some("hello"));
//! # Ok::<(), statehouse::StoreError>(())
//! ```

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::{
    KeyTtl, PageRequest, SetOptions, StoreError, TaskPage, TaskRecord, TaskStatus, Update,
};
use tokio::runtime::Runtime;

use crate::{Settings, SyncedModel};

#[path = "blocking_subjects.rs"]
mod subjects;
pub use subjects::{Subject, Subjects};
#[path = "blocking_tenants.rs"]
mod tenants;
pub use tenants::{HandlerStates, SharedStates, Tables, Tenant, UserStates, Users};

#[path = "blocking_queues.rs"]
mod queues;
pub use queues::{Queues, Triggers};

/// Blocking twin of [`crate::Statehouse`].
#[derive(Debug, Clone)]
pub struct Statehouse {
    inner: crate::Statehouse,
    runtime: Arc<OwnedRuntime>,
}

/// The runtime of the blocking API. Dropping a tokio runtime blocks until
/// its tasks stop, which panics inside another runtime; this shuts it down
/// in the background instead, so the last handle may be dropped anywhere.
#[derive(Debug)]
struct OwnedRuntime(Option<Runtime>);

impl std::ops::Deref for OwnedRuntime {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        // Only `drop` takes the runtime out.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("runtime used after drop"))
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

fn runtime() -> Result<Runtime, StoreError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("statehouse-blocking")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Operation {
            op: "connect",
            key: String::new(),
            source: Box::new(e),
        })
}

thread_local! {
    /// Set while statehouse runs synchronous code on a runtime's blocking
    /// thread ([`crate::SharedState::spawn_blocking`]): a thread with a
    /// runtime context where blocking is safe.
    static BLOCKING_SECTION: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as a blocking section while it lives (see
/// [`block_on`]).
pub(crate) struct BlockingSection {
    outer: bool,
}

impl BlockingSection {
    pub(crate) fn enter() -> Self {
        Self {
            outer: BLOCKING_SECTION.replace(true),
        }
    }
}

impl Drop for BlockingSection {
    fn drop(&mut self) {
        BLOCKING_SECTION.set(self.outer);
    }
}

/// What runs a future to completion on the calling thread: the blocking
/// API's own runtime, or the handle a [`crate::BlockingSharedState`] was
/// made with.
pub(crate) trait Runner {
    fn run<F: Future>(&self, future: F) -> F::Output;
}

impl Runner for Arc<OwnedRuntime> {
    fn run<F: Future>(&self, future: F) -> F::Output {
        self.block_on(future)
    }
}

impl Runner for tokio::runtime::Handle {
    fn run<F: Future>(&self, future: F) -> F::Output {
        self.block_on(future)
    }
}

/// THE way the blocking API blocks: runs `call` on `runner`, or, on a
/// thread with a runtime context, refuses with `InvalidInput` instead of
/// blocking an executor (where tokio would panic). tokio tells no thread
/// that drives async tasks from one of its blocking threads, so a runtime
/// context is refused unless statehouse itself runs the code there on a
/// blocking thread ([`BlockingSection`]: [`crate::SharedState::spawn_blocking`]).
pub(crate) fn block_on<T, E: From<StoreError>>(
    runner: &impl Runner,
    op: &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    if tokio::runtime::Handle::try_current().is_ok() && !BLOCKING_SECTION.get() {
        return Err(E::from(StoreError::invalid_input(
            op,
            "",
            "the blocking API was called inside an async runtime; use the async API there \
             (or SharedState::spawn_blocking for synchronous code)",
        )));
    }
    runner.run(call)
}

impl Statehouse {
    /// See [`crate::Statehouse::connect`].
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::with_settings(Settings::new(url))
    }

    /// See [`crate::Statehouse::from_env`].
    pub fn from_env() -> Result<Self, StoreError> {
        Self::with_settings(Settings::from_env()?)
    }

    /// See [`crate::Statehouse::with_settings`].
    pub fn with_settings(settings: Settings) -> Result<Self, StoreError> {
        let runtime = Arc::new(OwnedRuntime(Some(runtime()?)));
        let inner = block_on(&runtime, "connect", crate::Statehouse::with_settings(settings))?;
        Ok(Self { inner, runtime })
    }

    /// Blocking typed documents.
    pub fn documents(&self) -> Documents {
        Documents {
            inner: self.inner.documents(),
            runtime: self.runtime.clone(),
        }
    }

    /// Blocking task records.
    pub fn tasks(&self) -> Tasks {
        Tasks {
            inner: self.inner.tasks(),
            runtime: self.runtime.clone(),
        }
    }

    /// Blocking subjects (KRules' layout).
    pub fn subjects(&self) -> Subjects {
        Subjects {
            inner: self.inner.subjects(),
            runtime: self.runtime.clone(),
        }
    }

    /// Blocking repositories of tenant `id`; see [`crate::Statehouse::tenant`].
    pub fn tenant(&self, id: &str) -> Result<Tenant, StoreError> {
        Ok(Tenant {
            inner: self.inner.tenant(id)?,
            runtime: self.runtime.clone(),
        })
    }

    /// Blocking expiration triggers.
    pub fn triggers(&self) -> Triggers {
        Triggers {
            inner: self.inner.triggers(),
            runtime: self.runtime.clone(),
        }
    }

    /// Blocking batch queues.
    pub fn queues(&self) -> Queues {
        Queues {
            inner: self.inner.queues(),
            runtime: self.runtime.clone(),
        }
    }

    /// Blocking typed, versioned configuration (see
    /// [`crate::Statehouse::config`]: keep it, clones share its cache).
    pub fn config(&self) -> Config {
        Config {
            inner: self.inner.config(),
            runtime: self.runtime.clone(),
        }
    }

    /// The async twin, sharing the same connections.
    pub fn as_async(&self) -> &crate::Statehouse {
        &self.inner
    }
}

/// Blocking twin of [`crate::Documents`]; every method behaves as its async
/// namesake.
#[derive(Debug, Clone)]
pub struct Documents {
    inner: crate::Documents,
    runtime: Arc<OwnedRuntime>,
}

impl Documents {
    fn run<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        block_on(&self.runtime, op, call)
    }

    /// See [`crate::Documents::set`].
    pub fn set<T: Serialize + Sync + ?Sized>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.run("set", self.inner.set(key, value))
    }

    /// See [`crate::Documents::set_with_ttl`].
    pub fn set_with_ttl<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.run("set", self.inner.set_with_ttl(key, value, ttl))
    }

    /// See [`crate::Documents::set_with`].
    pub fn set_with<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<bool, StoreError> {
        self.run("set", self.inner.set_with(key, value, options))
    }

    /// See [`crate::Documents::get`].
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.run("get", self.inner.get(key))
    }

    /// See [`crate::Documents::get_raw`].
    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run("get", self.inner.get_raw(key))
    }

    /// See [`crate::Documents::mget`].
    pub fn mget<T: DeserializeOwned>(
        &self,
        keys: &[impl AsRef<str>],
    ) -> Result<Vec<Result<Option<T>, StoreError>>, StoreError> {
        self.run("get_many", self.inner.mget(keys))
    }

    /// See [`crate::Documents::delete`].
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.run("delete", self.inner.delete(key))
    }

    /// See [`crate::Documents::exists`].
    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.run("exists", self.inner.exists(key))
    }

    /// See [`crate::Documents::expire`].
    pub fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.run("expire", self.inner.expire(key, ttl))
    }

    /// See [`crate::Documents::ttl`].
    pub fn ttl(&self, key: &str) -> Result<KeyTtl, StoreError> {
        self.run("ttl", self.inner.ttl(key))
    }

    /// See [`crate::Documents::list_keys`].
    pub fn list_keys(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        self.run("list_keys", self.inner.list_keys(pattern))
    }

    /// See [`crate::Documents::is_alive`].
    pub fn is_alive(&self) -> bool {
        self.run("ping", self.inner.ping()).is_ok()
    }

    /// See [`crate::Documents::update`].
    pub fn update<T, F>(&self, key: &str, f: F) -> Result<Option<T>, StoreError>
    where
        T: Serialize + DeserializeOwned + Send,
        F: FnMut(Option<T>) -> Update<T> + Send,
    {
        self.run("update", self.inner.update(key, f))
    }

    /// See [`crate::Documents::try_update`].
    pub fn try_update<T, E, F>(&self, key: &str, f: F) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned + Send,
        E: From<StoreError> + Send,
        F: FnMut(Option<T>) -> Result<Update<T>, E> + Send,
    {
        block_on(&self.runtime, "update", self.inner.try_update(key, f))
    }
}

/// Blocking twin of [`crate::Tasks`]; every method behaves as its async
/// namesake.
///
/// ```
/// use statehouse::TaskStatus;
/// use statehouse::blocking::Statehouse;
///
/// let tasks = Statehouse::connect("memory://")?.tasks();
/// tasks.create("report-7", "reports", "ada")?;
/// tasks.set_status("report-7", TaskStatus::Running, Some("rendering"))?;
/// assert_eq!(tasks.get("report-7")?.map(|t| t.status), Some(TaskStatus::Running));
/// # Ok::<(), statehouse::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Tasks {
    inner: crate::Tasks,
    runtime: Arc<OwnedRuntime>,
}

impl Tasks {
    fn run<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        block_on(&self.runtime, op, call)
    }

    /// See [`crate::Tasks::create`].
    pub fn create(&self, id: &str, service: &str, user: &str) -> Result<TaskRecord, StoreError> {
        self.run("save", self.inner.create(id, service, user))
    }

    /// See [`crate::Tasks::create_with`].
    pub fn create_with(
        &self,
        id: &str,
        service: &str,
        user: &str,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<TaskRecord, StoreError> {
        self.run("save", self.inner.create_with(id, service, user, metadata))
    }

    /// See [`crate::Tasks::save`].
    pub fn save(&self, record: &TaskRecord) -> Result<TaskRecord, StoreError> {
        self.run("save", self.inner.save(record))
    }

    /// See [`crate::Tasks::get`].
    pub fn get(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.run("get", self.inner.get(id))
    }

    /// See [`crate::Tasks::set_status`].
    pub fn set_status(
        &self,
        id: &str,
        status: TaskStatus,
        message: Option<&str>,
    ) -> Result<TaskRecord, StoreError> {
        self.run("set_status", self.inner.set_status(id, status, message))
    }

    /// See [`crate::Tasks::append_log`].
    pub fn append_log(&self, id: &str, message: &str) -> Result<TaskRecord, StoreError> {
        self.run("append_log", self.inner.append_log(id, message))
    }

    /// See [`crate::Tasks::list_by_service`].
    pub fn list_by_service(&self, service: &str, page: PageRequest) -> Result<TaskPage, StoreError> {
        self.run("list", self.inner.list_by_service(service, page))
    }

    /// See [`crate::Tasks::list_by_user`].
    pub fn list_by_user(&self, user: &str, page: PageRequest) -> Result<TaskPage, StoreError> {
        self.run("list", self.inner.list_by_user(user, page))
    }

    /// See [`crate::Tasks::count_by_service`].
    pub fn count_by_service(&self, service: &str) -> Result<u64, StoreError> {
        self.run("count", self.inner.count_by_service(service))
    }

    /// See [`crate::Tasks::count_by_user`].
    pub fn count_by_user(&self, user: &str) -> Result<u64, StoreError> {
        self.run("count", self.inner.count_by_user(user))
    }

    /// See [`crate::Tasks::delete`].
    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.run("delete", self.inner.delete(id))
    }
}

/// Blocking twin of [`crate::Synced`]; every method behaves as its async
/// namesake.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use statehouse::SyncedModel;
/// use statehouse::blocking::{Statehouse, Synced};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Counter { hits: u64 }
/// impl SyncedModel for Counter {
///     fn id(&self) -> String { String::new() }
/// }
///
/// let state = Statehouse::connect("memory://")?;
/// let mut counter = Synced::<Counter>::load(&state, "home")?;
/// counter.modify(|c| c.hits += 1)?;
/// assert_eq!(Synced::<Counter>::load(&state, "home")?.value().hits, 1);
/// # Ok::<(), statehouse::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Synced<T> {
    inner: crate::Synced<T>,
    runtime: Arc<OwnedRuntime>,
}

impl<T> Synced<T>
where
    T: SyncedModel + Serialize + DeserializeOwned + Default + Send,
{
    /// See [`crate::Synced::load`].
    pub fn load(state: &Statehouse, id: &str) -> Result<Self, StoreError> {
        let inner = block_on(&state.runtime, "load", crate::Synced::load(&state.inner, id))?;
        Ok(Self {
            inner,
            runtime: state.runtime.clone(),
        })
    }

    /// See [`crate::Synced::value`].
    pub fn value(&self) -> &T {
        self.inner.value()
    }

    /// See [`crate::Synced::into_value`].
    pub fn into_value(self) -> T {
        self.inner.into_value()
    }

    /// See [`crate::Synced::exists`].
    pub fn exists(&self) -> bool {
        self.inner.exists()
    }

    /// See [`crate::Synced::id`].
    pub fn id(&self) -> &str {
        self.inner.id()
    }

    /// See [`crate::Synced::key`].
    pub fn key(&self) -> &str {
        self.inner.key()
    }

    /// See [`crate::Synced::refresh`].
    pub fn refresh(&mut self) -> Result<&T, StoreError> {
        block_on(&self.runtime, "get", self.inner.refresh())
    }

    /// See [`crate::Synced::modify`].
    pub fn modify<F>(&mut self, change: F) -> Result<&T, StoreError>
    where
        F: FnMut(&mut T) + Send,
    {
        block_on(&self.runtime, "update", self.inner.modify(change))
    }

    /// See [`crate::Synced::try_modify`].
    pub fn try_modify<E, F>(&mut self, change: F) -> Result<&T, E>
    where
        E: From<StoreError> + Send,
        F: FnMut(&mut T) -> Result<(), E> + Send,
    {
        block_on(&self.runtime, "update", self.inner.try_modify(change))
    }

    /// See [`crate::Synced::delete`].
    pub fn delete(&mut self) -> Result<bool, StoreError> {
        block_on(&self.runtime, "delete", self.inner.delete())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_from_plain_threads() {
        let state = Statehouse::connect("memory://").unwrap();
        let docs = state.documents();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let docs = docs.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        docs.update("n", |n: Option<u32>| Update::Set(n.unwrap_or(0) + 1))
                            .unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(docs.get::<u32>("n").unwrap(), Some(100));
        assert_eq!(docs.list_keys("*").unwrap(), ["n"]);
        assert!(docs.is_alive());
    }

    #[tokio::test]
    async fn refuses_to_block_inside_a_runtime() {
        let state = std::thread::spawn(|| Statehouse::connect("memory://").unwrap())
            .join()
            .unwrap();
        let err = state.documents().get::<u32>("n").unwrap_err();
        assert!(err.to_string().contains("inside an async runtime"), "{err}");
        let err = state
            .documents()
            .try_update("n", |_: Option<u32>| Ok::<_, StoreError>(Update::Keep));
        assert!(err.is_err());
    }
}

/// Blocking twin of [`crate::ConfigStore`]; every method behaves as its
/// async namesake. The cache is kept current by a task on this API's
/// runtime, so fetches answer from memory between calls too.
///
/// ```
/// use statehouse::blocking::Statehouse;
///
/// let state = Statehouse::connect("memory://")?;
/// let config = state.config();
/// assert_eq!(config.update("feature:x", &true)?, 1);
/// assert_eq!(config.fetch::<bool>("feature:x")?, Some(true));
/// assert_eq!(config.cached_version("feature:x"), Some(1));
/// # Ok::<(), statehouse::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    inner: crate::ConfigStore,
    runtime: Arc<OwnedRuntime>,
}

impl Config {
    /// See [`crate::ConfigStore::with_history`].
    #[must_use]
    pub fn with_history(mut self, len: usize) -> Self {
        self.inner = self.inner.with_history(len);
        self
    }

    /// See [`crate::ConfigStore::fetch`].
    pub fn fetch<T>(&self, name: &str) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        block_on(&self.runtime, "config_fetch", self.inner.fetch(name))
    }

    /// See [`crate::ConfigStore::fetch_versioned`].
    pub fn fetch_versioned<T>(&self, name: &str) -> Result<Option<crate::Versioned<T>>, StoreError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        block_on(&self.runtime, "config_fetch", self.inner.fetch_versioned(name))
    }

    /// See [`crate::ConfigStore::update`].
    pub fn update<T: Serialize + Sync + ?Sized>(&self, name: &str, value: &T) -> Result<u64, StoreError> {
        block_on(&self.runtime, "config_update", self.inner.update(name, value))
    }

    /// See [`crate::ConfigStore::update_if`].
    pub fn update_if<T: Serialize + Sync + ?Sized>(
        &self,
        name: &str,
        expected_version: u64,
        value: &T,
    ) -> Result<u64, StoreError> {
        block_on(
            &self.runtime,
            "config_update_if",
            self.inner.update_if(name, expected_version, value),
        )
    }

    /// See [`crate::ConfigStore::delete`].
    pub fn delete(&self, name: &str) -> Result<bool, StoreError> {
        block_on(&self.runtime, "config_delete", self.inner.delete(name))
    }

    /// See [`crate::ConfigStore::versions`].
    pub fn versions(&self, name: &str) -> Result<Vec<u64>, StoreError> {
        block_on(&self.runtime, "config_versions", self.inner.versions(name))
    }

    /// See [`crate::ConfigStore::cached_version`].
    pub fn cached_version(&self, name: &str) -> Option<u64> {
        self.inner.cached_version(name)
    }

    /// The async twin, sharing the same cache.
    pub fn as_async(&self) -> &crate::ConfigStore {
        &self.inner
    }
}
