//! The blocking twins of [`crate::Tenant`] and its repositories; every
//! method behaves as its async namesake.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::{Fields, StoreError, Ttl};

use super::{Keys, OwnedRuntime, block_on};
use crate::{HandlerKind, SharedKind, StateKind, TenantTtls};

/// Blocking twin of [`crate::Tenant`].
///
/// ```
/// use statehouse::blocking::Statehouse;
///
/// let acme = Statehouse::connect("memory://")?.tenant("acme")?;
/// acme.users().upsert("u1", &serde_json::json!({"name": "Ann"}))?;
/// assert_eq!(acme.users().increment("u1", "visits", 1)?, 1);
/// acme.shared_states().set("u1", "draft", &serde_json::json!({"text": "hi"}))?;
/// assert_eq!(acme.shared_states().list("u1")?, ["draft"]);
/// # Ok::<(), statehouse::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Tenant {
    pub(super) inner: crate::Tenant,
    pub(super) runtime: Arc<OwnedRuntime>,
}

impl Tenant {
    /// See [`crate::Tenant::with_ttls`].
    #[must_use]
    pub fn with_ttls(self, ttls: TenantTtls) -> Self {
        Self {
            inner: self.inner.with_ttls(ttls),
            runtime: self.runtime,
        }
    }

    /// See [`crate::Tenant::users`].
    pub fn users(&self) -> Users {
        Users(self.inner.users(), self.runtime.clone())
    }

    /// See [`crate::Tenant::handler_states`].
    pub fn handler_states(&self) -> HandlerStates {
        UserStates(self.inner.handler_states(), self.runtime.clone())
    }

    /// See [`crate::Tenant::tables`].
    pub fn tables(&self) -> Tables {
        Tables(self.inner.tables(), self.runtime.clone())
    }

    /// See [`crate::Tenant::shared_states`].
    pub fn shared_states(&self) -> SharedStates {
        UserStates(self.inner.shared_states(), self.runtime.clone())
    }
}

/// Blocking twin of [`crate::Users`].
#[derive(Debug, Clone)]
pub struct Users(crate::Users, Arc<OwnedRuntime>);

impl Users {
    /// See [`crate::Users::with_ttl`].
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self(self.0.with_ttl(ttl), self.1.clone())
    }

    /// See [`crate::Users::upsert`].
    pub fn upsert<T: Serialize + Sync + ?Sized>(&self, user: &str, value: &T) -> Result<(), StoreError> {
        block_on(&self.1, "upsert_user", self.0.upsert(user, value))
    }

    /// See [`crate::Users::get`].
    pub fn get<T: DeserializeOwned>(&self, user: &str) -> Result<Option<T>, StoreError> {
        block_on(&self.1, "get_user", self.0.get(user))
    }

    /// See [`crate::Users::get_fields`].
    pub fn get_fields(&self, user: &str) -> Result<Fields, StoreError> {
        block_on(&self.1, "get_user", self.0.get_fields(user))
    }

    /// See [`crate::Users::get_field`].
    pub fn get_field<T: DeserializeOwned>(&self, user: &str, name: &str) -> Result<Option<T>, StoreError> {
        block_on(&self.1, "get_user_field", self.0.get_field(user, name))
    }

    /// See [`crate::Users::set_field`].
    pub fn set_field<T: Serialize + Sync + ?Sized>(
        &self,
        user: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        block_on(&self.1, "set_user_field", self.0.set_field(user, name, value))
    }

    /// See [`crate::Users::modify_field`].
    pub fn modify_field<T, F>(&self, user: &str, name: &str, f: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        block_on(&self.1, "modify_user_field", self.0.modify_field(user, name, f))
    }

    /// See [`crate::Users::delete_field`].
    pub fn delete_field(&self, user: &str, name: &str) -> Result<bool, StoreError> {
        block_on(&self.1, "delete_user_field", self.0.delete_field(user, name))
    }

    /// See [`crate::Users::increment`].
    pub fn increment(&self, user: &str, name: &str, by: i64) -> Result<i64, StoreError> {
        block_on(&self.1, "increment", self.0.increment(user, name, by))
    }

    /// See [`crate::Users::append`].
    pub fn append<T: Serialize + Sync + ?Sized>(
        &self,
        user: &str,
        name: &str,
        item: &T,
    ) -> Result<usize, StoreError> {
        block_on(&self.1, "append", self.0.append(user, name, item))
    }

    /// See [`crate::Users::delete`].
    pub fn delete(&self, user: &str) -> Result<bool, StoreError> {
        block_on(&self.1, "delete_user", self.0.delete(user))
    }

    /// See [`crate::Users::exists`].
    pub fn exists(&self, user: &str) -> Result<bool, StoreError> {
        block_on(&self.1, "user_exists", self.0.exists(user))
    }

    /// See [`crate::Users::stream`]: an iterator fetching page by page.
    pub fn stream(&self) -> Keys {
        Keys::new(self.0.stream(), self.1.clone(), "scan")
    }

    /// See [`crate::Users::list`].
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        block_on(&self.1, "scan", self.0.list())
    }

    /// See [`crate::Users::find`].
    pub fn find<T: Serialize + Sync + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<Vec<String>, StoreError> {
        block_on(&self.1, "find_users", self.0.find(name, value))
    }
}

/// Blocking twin of [`crate::Tables`].
#[derive(Debug, Clone)]
pub struct Tables(crate::Tables, Arc<OwnedRuntime>);

impl Tables {
    /// See [`crate::Tables::with_ttl`].
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self(self.0.with_ttl(ttl), self.1.clone())
    }

    /// See [`crate::Tables::set`].
    pub fn set<T: Serialize + Sync + ?Sized>(
        &self,
        table: &str,
        pk: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        block_on(&self.1, "set_row", self.0.set(table, pk, value))
    }

    /// See [`crate::Tables::get`].
    pub fn get<T: DeserializeOwned>(&self, table: &str, pk: &str) -> Result<Option<T>, StoreError> {
        block_on(&self.1, "get_row", self.0.get(table, pk))
    }

    /// See [`crate::Tables::set_field`].
    pub fn set_field<T: Serialize + Sync + ?Sized>(
        &self,
        table: &str,
        pk: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        block_on(&self.1, "set_row_field", self.0.set_field(table, pk, name, value))
    }

    /// See [`crate::Tables::delete`].
    pub fn delete(&self, table: &str, pk: &str) -> Result<bool, StoreError> {
        block_on(&self.1, "delete_row", self.0.delete(table, pk))
    }

    /// See [`crate::Tables::delete_pk`].
    pub fn delete_pk(&self, pk: &str) -> Result<u64, StoreError> {
        block_on(&self.1, "delete_pk", self.0.delete_pk(pk))
    }

    /// See [`crate::Tables::stream`]: an iterator fetching page by page.
    pub fn stream(&self, table: &str) -> Result<Keys, StoreError> {
        Ok(Keys::new(self.0.stream(table)?, self.1.clone(), "list_rows"))
    }

    /// See [`crate::Tables::list`].
    pub fn list(&self, table: &str) -> Result<Vec<String>, StoreError> {
        block_on(&self.1, "list_rows", self.0.list(table))
    }
}

/// Blocking twin of [`crate::HandlerStates`].
pub type HandlerStates = UserStates<HandlerKind>;

/// Blocking twin of [`crate::SharedStates`].
pub type SharedStates = UserStates<SharedKind>;

/// Blocking twin of [`crate::UserStates`] (handler states and shared
/// states); every method behaves as its async namesake.
#[derive(Debug, Clone)]
pub struct UserStates<K: StateKind>(crate::UserStates<K>, Arc<OwnedRuntime>);

impl<K: StateKind> UserStates<K> {
    /// See [`crate::UserStates::with_ttl`].
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self(self.0.with_ttl(ttl), self.1.clone())
    }

    /// See [`crate::UserStates::set`].
    pub fn set<T: Serialize + Sync + ?Sized>(
        &self,
        user: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        block_on(&self.1, K::OPS.set, self.0.set(user, name, value))
    }

    /// See [`crate::UserStates::get`].
    pub fn get<T: DeserializeOwned>(&self, user: &str, name: &str) -> Result<Option<T>, StoreError> {
        block_on(&self.1, K::OPS.get, self.0.get(user, name))
    }

    /// See [`crate::UserStates::get_fields`].
    pub fn get_fields(&self, user: &str, name: &str) -> Result<Fields, StoreError> {
        block_on(&self.1, K::OPS.get, self.0.get_fields(user, name))
    }

    /// See [`crate::UserStates::set_field`].
    pub fn set_field<T: Serialize + Sync + ?Sized>(
        &self,
        user: &str,
        name: &str,
        field_name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        block_on(
            &self.1,
            K::OPS.set_field,
            self.0.set_field(user, name, field_name, value),
        )
    }

    /// See [`crate::UserStates::get_field`].
    pub fn get_field<T: DeserializeOwned>(
        &self,
        user: &str,
        name: &str,
        field_name: &str,
    ) -> Result<Option<T>, StoreError> {
        block_on(
            &self.1,
            K::OPS.get_field,
            self.0.get_field(user, name, field_name),
        )
    }

    /// See [`crate::UserStates::modify_field`].
    pub fn modify_field<T, F>(&self, user: &str, name: &str, field_name: &str, f: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        block_on(
            &self.1,
            K::OPS.modify_field,
            self.0.modify_field(user, name, field_name, f),
        )
    }

    /// See [`crate::UserStates::merge`].
    pub fn merge<T: Serialize + Sync + ?Sized, R: DeserializeOwned>(
        &self,
        user: &str,
        name: &str,
        value: &T,
    ) -> Result<R, StoreError> {
        block_on(&self.1, K::OPS.merge, self.0.merge(user, name, value))
    }

    /// See [`crate::UserStates::delete`].
    pub fn delete(&self, user: &str, name: &str) -> Result<bool, StoreError> {
        block_on(&self.1, K::OPS.delete, self.0.delete(user, name))
    }

    /// See [`crate::UserStates::stream`]: an iterator fetching page by page.
    pub fn stream(&self, user: &str) -> Result<Keys, StoreError> {
        Ok(Keys::new(self.0.stream(user)?, self.1.clone(), K::OPS.list))
    }

    /// See [`crate::UserStates::list`].
    pub fn list(&self, user: &str) -> Result<Vec<String>, StoreError> {
        block_on(&self.1, K::OPS.list, self.0.list(user))
    }

    /// See [`crate::UserStates::clear`].
    pub fn clear(&self, user: &str) -> Result<u64, StoreError> {
        block_on(&self.1, K::OPS.clear, self.0.clear(user))
    }
}
