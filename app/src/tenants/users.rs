//! [`Users`]: one hash per user of a tenant.

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::{Fields, JsonError, KeyStream, StoreError, TenantKey, TenantPattern, Ttl};

use super::records::{Core, field};

/// Users of one tenant: one hash per user (`t:{<tenant>}:user:<user>`),
/// one JSON value per field.
///
/// TTL per write (the repository's, or [`with_ttl`](Self::with_ttl)'s):
/// `upsert`, `set_field`, `modify_field`, `increment` and `append` refresh
/// it (a new user gets it; an existing one is extended to it, never
/// shortened; a persistent one stays persistent); without one they keep
/// the user's expiry. `delete_field` and reads never touch it.
#[derive(Debug, Clone)]
pub struct Users(pub(super) Core);

impl Users {
    /// The same repository with another TTL for its writes (an override
    /// per call: `users.with_ttl(Some(ttl)).upsert(…)`).
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self(self.0.with_ttl(ttl))
    }

    fn key(&self, op: &'static str, user: &str) -> Result<TenantKey, StoreError> {
        self.0.user_key(op, user)
    }

    /// Merges `value`'s fields into the user (creating it), keeping the
    /// fields it does not name.
    pub async fn upsert<T: Serialize + ?Sized>(&self, user: &str, value: &T) -> Result<(), StoreError> {
        const OP: &str = "upsert_user";
        self.0.upsert(OP, &self.key(OP, user)?, value).await
    }

    /// The user as `T` (`None` if missing).
    pub async fn get<T: DeserializeOwned>(&self, user: &str) -> Result<Option<T>, StoreError> {
        const OP: &str = "get_user";
        self.0.get(OP, &self.key(OP, user)?).await
    }

    /// The user field by field; a bad field fails alone.
    pub async fn get_fields(&self, user: &str) -> Result<Fields, StoreError> {
        const OP: &str = "get_user";
        self.0.store.get_all(&self.key(OP, user)?).await
    }

    /// One field of the user as `T` (`None` if missing).
    pub async fn get_field<T: DeserializeOwned>(
        &self,
        user: &str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        const OP: &str = "get_user_field";
        self.0.get_field(OP, &self.key(OP, user)?, name).await
    }

    /// Sets one field, leaving the others.
    pub async fn set_field<T: Serialize + ?Sized>(
        &self,
        user: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_user_field";
        self.0.set_field(OP, &self.key(OP, user)?, name, value).await
    }

    /// Atomic read-modify-write of one field (`f` may run more than once);
    /// returns the new value.
    pub async fn modify_field<T, F>(&self, user: &str, name: &str, f: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        const OP: &str = "modify_user_field";
        self.0.modify(OP, &self.key(OP, user)?, name, f).await
    }

    /// Deletes one field; returns whether it existed.
    pub async fn delete_field(&self, user: &str, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_user_field";
        let key = self.key(OP, user)?;
        Ok(self.0.store.delete_fields(&key, &[field(OP, name)?]).await? > 0)
    }

    /// Adds `by` to an integer field atomically (missing counts as 0);
    /// returns the new value. See [`FieldStore::increment`](crate::FieldStore::increment).
    pub async fn increment(&self, user: &str, name: &str, by: i64) -> Result<i64, StoreError> {
        const OP: &str = "increment";
        let key = self.key(OP, user)?;
        self.0
            .store
            .increment(&key, &field(OP, name)?, by, self.0.ttl)
            .await
    }

    /// Appends `item` to a JSON array field atomically (a missing or
    /// `null` field is an empty list); returns the new length. A field
    /// holding something else is `Deserialization`, and nothing is written.
    pub async fn append<T: Serialize + ?Sized>(
        &self,
        user: &str,
        name: &str,
        item: &T,
    ) -> Result<usize, StoreError> {
        const OP: &str = "append";
        self.0.append(OP, &self.key(OP, user)?, name, item).await
    }

    /// Deletes the user; returns whether it existed.
    pub async fn delete(&self, user: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_user";
        self.0.store.delete(&self.key(OP, user)?).await
    }

    /// Whether the user exists.
    pub async fn exists(&self, user: &str) -> Result<bool, StoreError> {
        const OP: &str = "user_exists";
        self.0.store.exists(&self.key(OP, user)?).await
    }

    /// The ids of the tenant's users, each once, in no particular order,
    /// as a stream (SCAN over the tenant's own pattern, page by page: memory
    /// stays flat; see [`KeyStream`]).
    pub fn stream(&self) -> KeyStream {
        let layout = self.0.keys();
        self.0
            .scan(&TenantPattern::users(self.0.tenant()))
            .filter_map(move |key| layout.user_of(&key))
    }

    /// [`stream`](Self::stream) collected: the ids, sorted. Holds them all:
    /// for tenants known to be small.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.stream().collect_sorted().await
    }

    /// The ids of the tenant's users whose field `name` holds `value`
    /// (compared as JSON), sorted. One SCAN, then one HMGET per user.
    pub async fn find<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "find_users";
        let name = field(OP, name)?;
        let wanted = serde_json::to_value(value).map_err(|error| StoreError::Serialization {
            op: OP,
            key: name.as_str().to_owned(),
            source: Box::new(JsonError::without_data(&error)),
        })?;
        let mut found = Vec::new();
        let mut users = self.stream();
        while let Some(user) = users.next().await? {
            let key = self.key(OP, &user)?;
            let loaded = self.0.store.get_fields(&key, std::slice::from_ref(&name)).await?;
            // A field that does not parse cannot equal `value`: skipped.
            if let Some(Some(Ok(current))) = loaded.into_iter().next()
                && current == wanted
            {
                found.push(user);
            }
        }
        found.sort_unstable();
        Ok(found)
    }
}
