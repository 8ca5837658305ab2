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

use statehouse_ports::StoreError;
use tokio::runtime::Runtime;

use crate::Settings;

mod config;
mod documents;
mod listing;
mod queues;
mod subjects;
mod synced;
mod tasks;
mod tenants;
mod triggers;

pub use config::Config;
pub use documents::Documents;
pub use listing::Keys;
pub use queues::Queues;
pub use subjects::{Subject, Subjects};
pub use synced::{Synced, SyncedBuilder};
pub use tasks::Tasks;
pub use tenants::{HandlerStates, SharedStates, Tables, Tenant, UserStates, Users};
pub use triggers::{Stop, Triggers};

/// Blocking twin of [`crate::Statehouse`].
#[derive(Debug, Clone)]
pub struct Statehouse {
    pub(super) inner: crate::Statehouse,
    pub(super) runtime: Arc<OwnedRuntime>,
}

/// The runtime of the blocking API. Dropping a tokio runtime blocks until
/// its tasks stop, which panics inside another runtime; this shuts it down
/// in the background instead, so the last handle may be dropped anywhere.
#[derive(Debug)]
pub(crate) struct OwnedRuntime(Option<Runtime>);

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

#[cfg(all(test, feature = "memory"))]
mod tests {
    use statehouse_ports::Update;

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
