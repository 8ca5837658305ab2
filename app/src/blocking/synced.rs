//! The blocking twin of [`crate::Synced`].

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::StoreError;

use super::{OwnedRuntime, Statehouse, block_on};
use crate::SyncedModel;

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
    pub(super) inner: crate::Synced<T>,
    pub(super) runtime: Arc<OwnedRuntime>,
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
