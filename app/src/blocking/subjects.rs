//! The blocking twins of [`crate::Subjects`] and [`crate::Subject`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use statehouse_ports::{PropertyKind, StoreError};

use super::{Keys, OwnedRuntime, block_on};
use crate::PropertyChanged;

/// Blocking twin of [`crate::Subjects`].
///
/// ```
/// use statehouse::blocking::Statehouse;
///
/// let subjects = Statehouse::connect("memory://")?.subjects();
/// let mut device = subjects.subject("device:7")?;
/// device.set("firmware", &"1.2.0")?;
/// device.store()?;
/// assert_eq!(device.set_with("boots", |n: Option<u32>| n.unwrap_or(0) + 1)?, 1);
/// assert_eq!(subjects.list("device:*")?, ["device:7"]);
/// # Ok::<(), statehouse::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Subjects {
    pub(super) inner: crate::Subjects,
    pub(super) runtime: Arc<OwnedRuntime>,
}

impl Subjects {
    /// See [`crate::Subjects::with_prefix`].
    #[must_use]
    pub fn with_prefix(self, prefix: &str) -> Self {
        Self {
            inner: self.inner.with_prefix(prefix),
            runtime: self.runtime,
        }
    }

    /// See [`crate::Subjects::subject`].
    pub fn subject(&self, name: &str) -> Result<Subject, StoreError> {
        Ok(Subject {
            inner: self.inner.subject(name)?,
            runtime: self.runtime.clone(),
        })
    }

    /// See [`crate::Subjects::stream`]: an iterator fetching page by page.
    pub fn stream(&self, pattern: &str) -> Result<Keys, StoreError> {
        let stream = self.inner.stream(pattern)?;
        Ok(Keys::new(stream, self.runtime.clone(), "list_subjects"))
    }

    /// See [`crate::Subjects::list`].
    pub fn list(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        block_on(&self.runtime, "list_subjects", self.inner.list(pattern))
    }

    /// See [`crate::Subjects::exists`].
    pub fn exists(&self, name: &str) -> Result<bool, StoreError> {
        block_on(&self.runtime, "exists", self.inner.exists(name))
    }

    /// See [`crate::Subjects::delete`].
    pub fn delete(&self, name: &str) -> Result<bool, StoreError> {
        block_on(&self.runtime, "delete_subject", self.inner.delete(name))
    }
}

/// Blocking twin of [`crate::Subject`]; every method behaves as its async
/// namesake.
#[derive(Debug)]
pub struct Subject {
    inner: crate::Subject,
    runtime: Arc<OwnedRuntime>,
}

impl Subject {
    /// See [`crate::Subject::name`].
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// See [`crate::Subject::on_change`].
    pub fn on_change(&mut self, callback: impl Fn(&PropertyChanged) + Send + Sync + 'static) {
        self.inner.on_change(callback);
    }

    /// See [`crate::Subject::reload`].
    pub fn reload(&mut self) {
        self.inner.reload();
    }

    /// See [`crate::Subject::get`].
    pub fn get<T: DeserializeOwned>(&mut self, prop: &str) -> Result<Option<T>, StoreError> {
        block_on(&self.runtime, "get_property", self.inner.get(prop))
    }

    /// See [`crate::Subject::get_of`].
    pub fn get_of<T: DeserializeOwned>(
        &mut self,
        kind: PropertyKind,
        prop: &str,
    ) -> Result<Option<T>, StoreError> {
        block_on(&self.runtime, "get_property", self.inner.get_of(kind, prop))
    }

    /// See [`crate::Subject::properties`].
    pub fn properties(&mut self, kind: PropertyKind) -> Result<BTreeMap<String, Value>, StoreError> {
        block_on(&self.runtime, "load", self.inner.properties(kind))
    }

    /// See [`crate::Subject::set`].
    pub fn set<T: Serialize + Sync + ?Sized>(&mut self, prop: &str, value: &T) -> Result<(), StoreError> {
        block_on(&self.runtime, "set", self.inner.set(prop, value))
    }

    /// See [`crate::Subject::set_of`].
    pub fn set_of<T: Serialize + Sync + ?Sized>(
        &mut self,
        kind: PropertyKind,
        prop: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        block_on(&self.runtime, "set", self.inner.set_of(kind, prop, value))
    }

    /// See [`crate::Subject::delete`].
    pub fn delete(&mut self, kind: PropertyKind, prop: &str) -> Result<(), StoreError> {
        block_on(&self.runtime, "delete", self.inner.delete(kind, prop))
    }

    /// See [`crate::Subject::store`].
    pub fn store(&mut self) -> Result<(), StoreError> {
        block_on(&self.runtime, "store", self.inner.store())
    }

    /// See [`crate::Subject::set_now`].
    pub fn set_now<T: Serialize + Sync + ?Sized>(&mut self, prop: &str, value: &T) -> Result<(), StoreError> {
        block_on(&self.runtime, "set_now", self.inner.set_now(prop, value))
    }

    /// See [`crate::Subject::set_with`].
    pub fn set_with<T, F>(&mut self, prop: &str, f: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        block_on(&self.runtime, "set_with", self.inner.set_with(prop, f))
    }
}
