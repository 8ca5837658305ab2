//! [`SharedState`]: the shared states of one user, bound to a request as
//! the task-local *current* shared state.
//!
//! A `tokio::task_local!` rather than a global or a thread-local: a
//! binding belongs to the task that runs the scope (a request), follows it
//! across the runtime's threads, and ends with it; tasks spawned through
//! [`SharedState::spawn`] carry it, and blocking code gets an explicit
//! handle ([`BlockingSharedState`]).

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::{StoreError, TenantId, UserId};

use super::SharedStates;
use crate::blocking::{BlockingSection, block_on};

tokio::task_local! {
    static CURRENT: SharedState;
}

/// The shared states of one user of one tenant, as bound to a request with
/// [`scope`](Self::scope) and read back anywhere inside it with
/// [`current`](Self::current) (a `tokio::task_local!`).
///
/// A binding belongs to the task that runs the scope: plain
/// `tokio::spawn` does not carry it, [`spawn`](Self::spawn) does; blocking
/// code gets a [`BlockingSharedState`] (see
/// [`spawn_blocking`](Self::spawn_blocking)).
#[derive(Debug, Clone)]
pub struct SharedState {
    states: SharedStates,
    user: UserId,
}

impl SharedState {
    pub(super) fn new(states: SharedStates, user: UserId) -> Self {
        Self { states, user }
    }

    /// Runs `future` with `self` as the current shared state.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// The current shared state; `InvalidInput` (no panic) outside a scope.
    pub fn current() -> Result<Self, StoreError> {
        CURRENT.try_with(Clone::clone).map_err(|_| {
            StoreError::invalid_input(
                "current_shared_state",
                "",
                "no shared state is bound to this task: run it inside SharedState::scope, \
                 or spawn it with SharedState::spawn",
            )
        })
    }

    /// Spawns `future` as a task bound to the current shared state (if
    /// any; outside a scope it is spawned unbound).
    pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match Self::current() {
            Ok(state) => tokio::spawn(CURRENT.scope(state, future)),
            Err(_) => tokio::spawn(future),
        }
    }

    /// Runs `f` on tokio's blocking pool with a [`BlockingSharedState`] of
    /// the current shared state; `InvalidInput` outside a scope.
    pub fn spawn_blocking<R, F>(f: F) -> Result<tokio::task::JoinHandle<R>, StoreError>
    where
        F: FnOnce(BlockingSharedState) -> R + Send + 'static,
        R: Send + 'static,
    {
        let state = Self::current()?.blocking(tokio::runtime::Handle::current());
        Ok(tokio::task::spawn_blocking(move || {
            let _section = BlockingSection::enter();
            f(state)
        }))
    }

    /// A synchronous handle for blocking threads, running calls on `runtime`.
    pub fn blocking(self, runtime: tokio::runtime::Handle) -> BlockingSharedState {
        BlockingSharedState { inner: self, runtime }
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        self.states.tenant()
    }

    /// The user.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// See [`SharedStates::set`].
    pub async fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        self.states.set(self.user.as_str(), name, value).await
    }

    /// See [`SharedStates::get`].
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.states.get(self.user.as_str(), name).await
    }

    /// See [`SharedStates::set_field`].
    pub async fn set_field<T: Serialize + ?Sized>(
        &self,
        name: &str,
        field_name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        self.states
            .set_field(self.user.as_str(), name, field_name, value)
            .await
    }

    /// See [`SharedStates::get_field`].
    pub async fn get_field<T: DeserializeOwned>(
        &self,
        name: &str,
        field_name: &str,
    ) -> Result<Option<T>, StoreError> {
        self.states.get_field(self.user.as_str(), name, field_name).await
    }

    /// See [`SharedStates::list`].
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.states.list(self.user.as_str()).await
    }

    /// See [`SharedStates::delete`].
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        self.states.delete(self.user.as_str(), name).await
    }

    /// See [`SharedStates::clear`].
    pub async fn clear(&self) -> Result<u64, StoreError> {
        self.states.clear(self.user.as_str()).await
    }
}

/// A [`SharedState`] for synchronous code on a blocking thread: each call
/// blocks on the runtime handle it was made with. Use it in the closure of
/// [`SharedState::spawn_blocking`], or on a thread outside the runtime;
/// on a thread with a runtime context (an async task, a blocking thread
/// of your own) a call is [`StoreError::InvalidInput`], never a panic, as
/// everywhere in the [blocking API](crate::blocking).
#[derive(Debug, Clone)]
pub struct BlockingSharedState {
    inner: SharedState,
    runtime: tokio::runtime::Handle,
}

impl BlockingSharedState {
    /// The async handle.
    pub fn as_async(&self) -> &SharedState {
        &self.inner
    }

    /// See [`SharedStates::set`].
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        block_on(&self.runtime, "set_state", self.inner.set(name, value))
    }

    /// See [`SharedStates::get`].
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        block_on(&self.runtime, "get_state", self.inner.get(name))
    }

    /// See [`SharedStates::set_field`].
    pub fn set_field<T: Serialize + ?Sized>(
        &self,
        name: &str,
        field_name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        block_on(
            &self.runtime,
            "set_state_field",
            self.inner.set_field(name, field_name, value),
        )
    }

    /// See [`SharedStates::get_field`].
    pub fn get_field<T: DeserializeOwned>(
        &self,
        name: &str,
        field_name: &str,
    ) -> Result<Option<T>, StoreError> {
        block_on(
            &self.runtime,
            "get_state_field",
            self.inner.get_field(name, field_name),
        )
    }

    /// See [`SharedStates::list`].
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        block_on(&self.runtime, "list_states", self.inner.list())
    }

    /// See [`SharedStates::delete`].
    pub fn delete(&self, name: &str) -> Result<bool, StoreError> {
        block_on(&self.runtime, "delete_state", self.inner.delete(name))
    }

    /// See [`SharedStates::clear`].
    pub fn clear(&self) -> Result<u64, StoreError> {
        block_on(&self.runtime, "clear_states", self.inner.clear())
    }
}

#[cfg(test)]
#[cfg(feature = "memory")]
mod tests {
    use serde_json::{Value, json};
    use statehouse_ports::ErrorKind;

    use super::*;

    fn alice() -> SharedState {
        crate::Statehouse::memory()
            .tenant("acme")
            .unwrap()
            .shared_states()
            .for_user("alice")
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocking_shared_state_refuses_an_async_thread_with_a_clear_error() {
        let blocking = alice().blocking(tokio::runtime::Handle::current());
        let error = blocking.get::<Value>("draft").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
        assert!(error.to_string().contains("inside an async runtime"), "{error}");
        let error = blocking.set("draft", &json!({"text": "hi"})).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
        assert!(blocking.list().is_err());
        assert!(blocking.delete("draft").is_err());
        assert!(blocking.clear().is_err());
        assert_eq!(
            alice().list().await.unwrap(),
            Vec::<String>::new(),
            "nothing written"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocking_shared_state_works_on_a_blocking_thread_and_a_plain_one() {
        let alice = alice();
        let listed = alice
            .clone()
            .scope(async {
                SharedState::spawn_blocking(|state| {
                    state.set("draft", &json!({"text": "hi"}))?;
                    state.list()
                })
                .unwrap()
                .await
                .unwrap()
            })
            .await
            .unwrap();
        assert_eq!(listed, ["draft"]);
        let blocking = alice.clone().blocking(tokio::runtime::Handle::current());
        let text = std::thread::spawn(move || blocking.get_field::<String>("draft", "text"))
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(text.as_deref(), Some("hi"));
        // delete and clear, as their async namesakes.
        let cleared = alice
            .clone()
            .scope(async {
                SharedState::spawn_blocking(|state| {
                    state.set("other", &json!({"n": 1}))?;
                    let deleted = (state.delete("draft")?, state.delete("draft")?);
                    Ok::<_, StoreError>((deleted, state.clear()?, state.list()?))
                })
                .unwrap()
                .await
                .unwrap()
            })
            .await
            .unwrap();
        assert_eq!(cleared, ((true, false), 1, Vec::<String>::new()));
    }
}
