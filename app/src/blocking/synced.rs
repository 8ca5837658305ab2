//! The blocking twin of [`crate::Synced`].

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::StoreError;

use super::{OwnedRuntime, Statehouse, block_on};
use crate::{ModelLayout, SyncedModel};

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
/// counter.set("hits", &5)?;
/// assert_eq!(Synced::<Counter>::load(&state, "home")?.value().hits, 5);
/// assert_eq!(Synced::<Counter>::load_field::<u64>(&state, "home", "hits")?, Some(5));
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
        Self::builder().load(state, id)
    }

    /// See [`crate::Synced::builder`].
    pub fn builder() -> SyncedBuilder<T> {
        SyncedBuilder {
            inner: crate::Synced::<T>::builder(),
            model: PhantomData,
        }
    }

    /// See [`crate::Synced::load_field`].
    pub fn load_field<V: DeserializeOwned>(
        state: &Statehouse,
        id: &str,
        field: &str,
    ) -> Result<Option<V>, StoreError> {
        let models = state.inner.models();
        block_on(
            &state.runtime,
            "load_field",
            crate::Synced::<T>::load_field(&models, id, field),
        )
    }

    /// See [`crate::Synced::layout`].
    pub fn layout(&self) -> ModelLayout {
        self.inner.layout()
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

    /// See [`crate::Synced::set`].
    pub fn set<V: Serialize + ?Sized + Sync>(&mut self, field: &str, value: &V) -> Result<&T, StoreError> {
        block_on(&self.runtime, "set", self.inner.set(field, value))
    }

    /// See [`crate::Synced::delete`].
    pub fn delete(&mut self) -> Result<bool, StoreError> {
        block_on(&self.runtime, "delete", self.inner.delete())
    }
}

/// Blocking twin of [`crate::SyncedBuilder`].
#[derive(Debug)]
pub struct SyncedBuilder<T> {
    inner: crate::SyncedBuilder<T>,
    model: PhantomData<fn() -> T>,
}

impl<T> SyncedBuilder<T>
where
    T: SyncedModel + Serialize + DeserializeOwned + Default + Send,
{
    /// See [`crate::SyncedBuilder::layout`].
    #[must_use]
    pub fn layout(mut self, layout: ModelLayout) -> Self {
        self.inner = self.inner.layout(layout);
        self
    }

    /// See [`crate::SyncedBuilder::load`].
    pub fn load(self, state: &Statehouse, id: &str) -> Result<Synced<T>, StoreError> {
        let inner = block_on(&state.runtime, "load", self.inner.load(&state.inner, id))?;
        Ok(Synced {
            inner,
            runtime: state.runtime.clone(),
        })
    }
}
