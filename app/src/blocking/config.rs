//! The blocking twin of [`crate::ConfigStore`].

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::StoreError;

use super::{OwnedRuntime, block_on};

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
    pub(super) inner: crate::ConfigStore,
    pub(super) runtime: Arc<OwnedRuntime>,
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
