//! The blocking twin of [`crate::Documents`].

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::{KeyTtl, SetOptions, StoreError, Update};

use super::{Keys, OwnedRuntime, block_on};

/// Blocking twin of [`crate::Documents`]; every method behaves as its async
/// namesake.
#[derive(Debug, Clone)]
pub struct Documents {
    pub(super) inner: crate::Documents,
    pub(super) runtime: Arc<OwnedRuntime>,
}

impl Documents {
    /// See [`crate::Documents::set`].
    pub fn set<T: Serialize + Sync + ?Sized>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        block_on(&self.runtime, "set", self.inner.set(key, value))
    }

    /// See [`crate::Documents::set_with_ttl`].
    pub fn set_with_ttl<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        block_on(&self.runtime, "set", self.inner.set_with_ttl(key, value, ttl))
    }

    /// See [`crate::Documents::set_with`].
    pub fn set_with<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<bool, StoreError> {
        block_on(&self.runtime, "set", self.inner.set_with(key, value, options))
    }

    /// See [`crate::Documents::get`].
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        block_on(&self.runtime, "get", self.inner.get(key))
    }

    /// See [`crate::Documents::get_raw`].
    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        block_on(&self.runtime, "get", self.inner.get_raw(key))
    }

    /// See [`crate::Documents::mget`].
    pub fn mget<T: DeserializeOwned>(
        &self,
        keys: &[impl AsRef<str>],
    ) -> Result<Vec<Result<Option<T>, StoreError>>, StoreError> {
        block_on(&self.runtime, "get_many", self.inner.mget(keys))
    }

    /// See [`crate::Documents::delete`].
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        block_on(&self.runtime, "delete", self.inner.delete(key))
    }

    /// See [`crate::Documents::exists`].
    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        block_on(&self.runtime, "exists", self.inner.exists(key))
    }

    /// See [`crate::Documents::expire`].
    pub fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        block_on(&self.runtime, "expire", self.inner.expire(key, ttl))
    }

    /// See [`crate::Documents::ttl`].
    pub fn ttl(&self, key: &str) -> Result<KeyTtl, StoreError> {
        block_on(&self.runtime, "ttl", self.inner.ttl(key))
    }

    /// See [`crate::Documents::stream_keys`]: an iterator fetching page by
    /// page.
    pub fn stream_keys(&self, pattern: &str) -> Result<Keys, StoreError> {
        let stream = self.inner.stream_keys(pattern)?;
        Ok(Keys::new(stream, self.runtime.clone(), "list_keys"))
    }

    /// See [`crate::Documents::list_keys`].
    pub fn list_keys(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        block_on(&self.runtime, "list_keys", self.inner.list_keys(pattern))
    }

    /// See [`crate::Documents::is_alive`].
    pub fn is_alive(&self) -> bool {
        block_on(&self.runtime, "ping", self.inner.ping()).is_ok()
    }

    /// See [`crate::Documents::update`].
    pub fn update<T, F>(&self, key: &str, f: F) -> Result<Option<T>, StoreError>
    where
        T: Serialize + DeserializeOwned + Send,
        F: FnMut(Option<T>) -> Update<T> + Send,
    {
        block_on(&self.runtime, "update", self.inner.update(key, f))
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
