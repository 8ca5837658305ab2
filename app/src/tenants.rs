//! The tenant facades: [`Tenant`] (one tenant, from
//! [`Statehouse::tenant`](crate::Statehouse::tenant)) and its repositories
//! [`Users`], [`HandlerStates`], [`Tables`] and [`SharedStates`], all over
//! the [`FieldStore`] port; and [`SharedState`], the task-local *current*
//! shared state of a request.
//!
//! Records are hashes with one JSON value per field: a struct is written
//! field by field (it must serialize to a JSON object) and read back the
//! same way, so single fields can be read and written atomically without
//! touching the rest.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use statehouse_domain::layout::TenantKeys;

use crate::blocking::{BlockingSection, block_on};
use statehouse_ports::{
    BoxError, Carry, FieldName, FieldStore, Fields, HandlerName, JsonError, PrimaryKey, RetryPolicy,
    StateName, StoreError, TableName, TenantId, TenantKey, TenantPattern, Ttl, UserId, ValidationExt,
};

/// The default TTL of each repository of a [`Tenant`] (`None`: records
/// do not expire). Writes apply the repository's TTL, or the override of
/// `with_ttl`, in the same atomic step; see [`FieldStore`]'s contract for
/// what each write does to the TTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantTtls {
    /// Of [`Users`].
    pub users: Option<Ttl>,
    /// Of [`HandlerStates`].
    pub handler_states: Option<Ttl>,
    /// Of [`Tables`].
    pub tables: Option<Ttl>,
    /// Of [`SharedStates`].
    pub shared_states: Option<Ttl>,
}

/// One tenant: the entry to its repositories. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use statehouse::Statehouse;
///
/// let acme = Statehouse::memory().tenant("acme")?;
/// acme.users().upsert("u1", &serde_json::json!({"name": "Ann", "visits": 1})).await?;
/// assert_eq!(acme.users().increment("u1", "visits", 2).await?, 3);
/// assert_eq!(acme.users().list().await?, ["u1"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Tenant {
    core: Core,
    ttls: TenantTtls,
}

impl Tenant {
    /// Tenant `id` over `store`; `policy` bounds the retries of
    /// read-modify-writes. A bad id is `InvalidInput` before any I/O.
    pub fn new(store: Arc<dyn FieldStore>, id: &str, policy: RetryPolicy) -> Result<Self, StoreError> {
        let tenant = TenantId::new(id).for_op("tenant", id)?;
        Ok(Self {
            core: Core {
                store,
                tenant,
                ttl: None,
                policy,
            },
            ttls: TenantTtls::default(),
        })
    }

    /// The same tenant with these repository TTLs.
    #[must_use]
    pub fn with_ttls(mut self, ttls: TenantTtls) -> Self {
        self.ttls = ttls;
        self
    }

    /// The tenant's id.
    pub fn id(&self) -> &TenantId {
        &self.core.tenant
    }

    /// The tenant's users.
    pub fn users(&self) -> Users {
        Users(self.core.with_ttl(self.ttls.users))
    }

    /// The tenant's handler states.
    pub fn handler_states(&self) -> HandlerStates {
        HandlerStates(self.core.with_ttl(self.ttls.handler_states))
    }

    /// The tenant's tables.
    pub fn tables(&self) -> Tables {
        Tables(self.core.with_ttl(self.ttls.tables))
    }

    /// The tenant's shared states.
    pub fn shared_states(&self) -> SharedStates {
        SharedStates(self.core.with_ttl(self.ttls.shared_states))
    }
}

/// What every repository holds: the port, the tenant, the TTL its writes
/// apply and the retry policy of read-modify-writes.
#[derive(Debug, Clone)]
struct Core {
    store: Arc<dyn FieldStore>,
    tenant: TenantId,
    ttl: Option<Ttl>,
    policy: RetryPolicy,
}

fn id<T>(
    what: fn(String) -> Result<T, statehouse_ports::ValidationError>,
    op: &'static str,
    value: &str,
) -> Result<T, StoreError> {
    what(value.to_owned()).for_op(op, value)
}

fn field(op: &'static str, name: &str) -> Result<FieldName, StoreError> {
    id(FieldName::new, op, name)
}

/// Ids read back from keys, sorted by id (not by escaped key).
fn sorted(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.collect();
    ids.sort_unstable();
    ids
}

/// The fields of a value that serializes to a JSON object.
fn object_fields<T: Serialize + ?Sized>(
    op: &'static str,
    key: &TenantKey,
    value: &T,
) -> Result<Vec<(FieldName, Value)>, StoreError> {
    let value = serde_json::to_value(value).map_err(|error| StoreError::Serialization {
        op,
        key: key.key().to_owned(),
        source: Box::new(JsonError::without_data(&error)),
    })?;
    let Value::Object(map) = value else {
        return Err(StoreError::invalid_input(
            op,
            key.key(),
            "a record must serialize to a JSON object (one hash field per member)",
        ));
    };
    map.into_iter()
        .map(|(name, value)| Ok((field(op, &name)?, value)))
        .collect()
}

fn to_value<T: Serialize + ?Sized>(
    op: &'static str,
    key: &TenantKey,
    field: &str,
    value: &T,
) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|error| StoreError::Serialization {
        op,
        key: key.field_key(field),
        source: Box::new(JsonError::without_data(&error)),
    })
}

fn from_value<T: DeserializeOwned>(op: &'static str, name: String, value: Value) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|error| {
        StoreError::deserialization(
            op,
            name,
            std::any::type_name::<T>(),
            JsonError::without_data(&error),
        )
    })
}

/// A whole record as `T`: `None` if it has no field; the first field that
/// does not parse fails the read (naming that field).
fn record<T: DeserializeOwned>(
    op: &'static str,
    key: &TenantKey,
    fields: Fields,
) -> Result<Option<T>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let mut map = Map::new();
    for (name, value) in fields {
        map.insert(name, value?);
    }
    from_value(op, key.key().to_owned(), Value::Object(map)).map(Some)
}

impl Core {
    fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self { ttl, ..self.clone() }
    }

    fn user(&self, op: &'static str, user: &str) -> Result<UserId, StoreError> {
        id(UserId::new, op, user)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        op: &'static str,
        key: &TenantKey,
    ) -> Result<Option<T>, StoreError> {
        record(op, key, self.store.get_all(key).await?)
    }

    async fn get_field<T: DeserializeOwned>(
        &self,
        op: &'static str,
        key: &TenantKey,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let name = field(op, name)?;
        let loaded = self.store.get_fields(key, std::slice::from_ref(&name)).await?;
        match loaded.into_iter().next().flatten() {
            None => Ok(None),
            Some(value) => from_value(op, key.field_key(name.as_str()), value?).map(Some),
        }
    }

    async fn set_field<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let name = field(op, name)?;
        let value = to_value(op, key, name.as_str(), value)?;
        self.store.set_fields(key, &[(name, value)], self.ttl).await
    }

    async fn merge<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        value: &T,
    ) -> Result<Fields, StoreError> {
        let fields = object_fields(op, key, value)?;
        self.store.merge_fields(key, &fields, self.ttl).await
    }

    async fn upsert<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        value: &T,
    ) -> Result<(), StoreError> {
        let fields = object_fields(op, key, value)?;
        self.store.set_fields(key, &fields, self.ttl).await
    }

    async fn replace<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        value: &T,
    ) -> Result<(), StoreError> {
        let fields = object_fields(op, key, value)?;
        self.store.replace_fields(key, &fields, self.ttl).await
    }

    async fn modify<T, F>(
        &self,
        op: &'static str,
        key: &TenantKey,
        name: &str,
        mut f: F,
    ) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        let name = field(op, name)?;
        let field_key = key.field_key(name.as_str());
        // A field that does not decode as `T`, or a value that does not
        // encode, comes back naming the field (never as `Aborted`).
        let mut carry = Carry::new();
        let mut closure = |current: Option<&Value>| -> Result<Value, BoxError> {
            carry.keep((|| {
                let current = current
                    .map(|value| from_value::<T>(op, field_key.clone(), value.clone()))
                    .transpose()?;
                to_value(op, key, name.as_str(), &f(current))
            })())
        };
        let updated = self
            .store
            .update_field(key, &name, self.ttl, self.policy, &mut closure)
            .await;
        from_value(op, field_key, carry.outcome(updated)?.new)
    }

    async fn append<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        name: &str,
        item: &T,
    ) -> Result<usize, StoreError> {
        let name = field(op, name)?;
        let item = to_value(op, key, name.as_str(), item)?;
        let field_key = key.field_key(name.as_str());
        let mut carry = Carry::new();
        let mut closure = |current: Option<&Value>| -> Result<Value, BoxError> {
            let mut list = match current {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(list)) => list.clone(),
                Some(_) => {
                    return carry.keep(Err(StoreError::deserialization(
                        op,
                        field_key.clone(),
                        "JSON array",
                        "the field holds no array",
                    )));
                }
            };
            list.push(item.clone());
            Ok(Value::Array(list))
        };
        let updated = self
            .store
            .update_field(key, &name, self.ttl, self.policy, &mut closure)
            .await;
        Ok(carry.outcome(updated)?.new.as_array().map_or(0, Vec::len))
    }

    async fn scan(&self, pattern: &TenantPattern) -> Result<Vec<String>, StoreError> {
        self.store.scan(pattern).await
    }

    fn keys(&self) -> TenantKeys {
        TenantKeys::new(self.tenant.as_str())
    }
}

/// Users of one tenant: one hash per user (`t:{<tenant>}:user:<user>`),
/// one JSON value per field.
///
/// TTL per write (the repository's, or [`with_ttl`](Self::with_ttl)'s):
/// `upsert`, `set_field`, `modify_field`, `increment` and `append` refresh
/// it (a new user gets it; an existing one is extended to it, never
/// shortened; a persistent one stays persistent); without one they keep
/// the user's expiry. `delete_field` and reads never touch it.
#[derive(Debug, Clone)]
pub struct Users(Core);

impl Users {
    /// The same repository with another TTL for its writes (an override
    /// per call: `users.with_ttl(Some(ttl)).upsert(…)`).
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self(self.0.with_ttl(ttl))
    }

    fn key(&self, op: &'static str, user: &str) -> Result<TenantKey, StoreError> {
        Ok(TenantKey::user(&self.0.tenant, &self.0.user(op, user)?))
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
    /// returns the new value. See [`FieldStore::increment`].
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

    /// The ids of the tenant's users, sorted (by SCAN over the tenant's own
    /// pattern).
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        let keys = self.0.scan(&TenantPattern::users(&self.0.tenant)).await?;
        let layout = self.0.keys();
        Ok(sorted(keys.iter().filter_map(|key| layout.user_of(key))))
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
        for user in self.list().await? {
            let key = self.key(OP, &user)?;
            let loaded = self.0.store.get_fields(&key, std::slice::from_ref(&name)).await?;
            // A field that does not parse cannot equal `value`: skipped.
            if let Some(Some(Ok(current))) = loaded.into_iter().next()
                && current == wanted
            {
                found.push(user);
            }
        }
        Ok(found)
    }
}

/// Handler states of one tenant: conversation state per user and handler
/// (`t:{<tenant>}:handler:<user>:<handler>`).
///
/// TTL per write: `set`, `merge`, `set_field` and `modify_field` refresh
/// it as [`Users`] writes do (never shortened; without one the expiry is
/// kept, also by `set`, which replaces the fields).
#[derive(Debug, Clone)]
pub struct HandlerStates(Core);

impl HandlerStates {
    /// The same repository with another TTL for its writes.
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self(self.0.with_ttl(ttl))
    }

    fn key(&self, op: &'static str, user: &str, handler: &str) -> Result<TenantKey, StoreError> {
        let handler = id(HandlerName::new, op, handler)?;
        Ok(TenantKey::handler(
            &self.0.tenant,
            &self.0.user(op, user)?,
            &handler,
        ))
    }

    /// Replaces the handler's state by `value`'s fields.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        user: &str,
        handler: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_handler_state";
        self.0.replace(OP, &self.key(OP, user, handler)?, value).await
    }

    /// The handler's state as `T` (`None` if missing).
    pub async fn get<T: DeserializeOwned>(&self, user: &str, handler: &str) -> Result<Option<T>, StoreError> {
        const OP: &str = "get_handler_state";
        self.0.get(OP, &self.key(OP, user, handler)?).await
    }

    /// The handler's state field by field.
    pub async fn get_fields(&self, user: &str, handler: &str) -> Result<Fields, StoreError> {
        const OP: &str = "get_handler_state";
        self.0.store.get_all(&self.key(OP, user, handler)?).await
    }

    /// Sets one field of the state, leaving the others.
    pub async fn set_field<T: Serialize + ?Sized>(
        &self,
        user: &str,
        handler: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_handler_field";
        self.0
            .set_field(OP, &self.key(OP, user, handler)?, name, value)
            .await
    }

    /// Atomic read-modify-write of one field; returns the new value.
    pub async fn modify_field<T, F>(
        &self,
        user: &str,
        handler: &str,
        name: &str,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        const OP: &str = "modify_handler_field";
        self.0.modify(OP, &self.key(OP, user, handler)?, name, f).await
    }

    /// Merge-upsert: writes `value`'s fields, keeps the fields it does not
    /// name, and returns the merged state as `R`, all in one atomic step.
    pub async fn merge<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        user: &str,
        handler: &str,
        value: &T,
    ) -> Result<R, StoreError> {
        const OP: &str = "merge_handler_state";
        let key = self.key(OP, user, handler)?;
        let merged = self.0.merge(OP, &key, value).await?;
        record(OP, &key, merged)?.ok_or_else(|| StoreError::NotFound {
            op: OP,
            key: key.key().to_owned(),
        })
    }

    /// Deletes the handler's state; returns whether it existed.
    pub async fn delete(&self, user: &str, handler: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_handler_state";
        self.0.store.delete(&self.key(OP, user, handler)?).await
    }

    /// The handlers with a state for `user`, sorted.
    pub async fn list(&self, user: &str) -> Result<Vec<String>, StoreError> {
        const OP: &str = "list_handlers";
        let user = self.0.user(OP, user)?;
        let keys = self
            .0
            .scan(&TenantPattern::handlers(&self.0.tenant, &user))
            .await?;
        let layout = self.0.keys();
        Ok(sorted(
            keys.iter()
                .filter_map(|key| layout.handler_name_of(user.as_str(), key)),
        ))
    }
}

/// Tables of one tenant: rows by table name and primary key
/// (`t:{<tenant>}:table:<table>:<pk>`).
///
/// TTL per write: `set`, `set_field` and `modify_field` refresh it as
/// [`Users`] writes do (never shortened; without one the expiry is kept,
/// also by `set`, which replaces the fields).
#[derive(Debug, Clone)]
pub struct Tables(Core);

impl Tables {
    /// The same repository with another TTL for its writes.
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self(self.0.with_ttl(ttl))
    }

    fn key(&self, op: &'static str, table: &str, pk: &str) -> Result<TenantKey, StoreError> {
        let table = id(TableName::new, op, table)?;
        let pk = id(PrimaryKey::new, op, pk)?;
        Ok(TenantKey::row(&self.0.tenant, &table, &pk))
    }

    /// Replaces the row by `value`'s fields.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        table: &str,
        pk: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_row";
        self.0.replace(OP, &self.key(OP, table, pk)?, value).await
    }

    /// The row as `T` (`None` if missing).
    pub async fn get<T: DeserializeOwned>(&self, table: &str, pk: &str) -> Result<Option<T>, StoreError> {
        const OP: &str = "get_row";
        self.0.get(OP, &self.key(OP, table, pk)?).await
    }

    /// The row field by field.
    pub async fn get_fields(&self, table: &str, pk: &str) -> Result<Fields, StoreError> {
        const OP: &str = "get_row";
        self.0.store.get_all(&self.key(OP, table, pk)?).await
    }

    /// Sets one field of the row, leaving the others.
    pub async fn set_field<T: Serialize + ?Sized>(
        &self,
        table: &str,
        pk: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_row_field";
        self.0.set_field(OP, &self.key(OP, table, pk)?, name, value).await
    }

    /// Atomic read-modify-write of one field; returns the new value.
    pub async fn modify_field<T, F>(&self, table: &str, pk: &str, name: &str, f: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        const OP: &str = "modify_row_field";
        self.0.modify(OP, &self.key(OP, table, pk)?, name, f).await
    }

    /// Deletes the row; returns whether it existed.
    pub async fn delete(&self, table: &str, pk: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_row";
        self.0.store.delete(&self.key(OP, table, pk)?).await
    }

    /// Deletes the rows of `pk` in every table of the tenant (SCAN over the
    /// tenant's own pattern); returns how many.
    pub async fn delete_pk(&self, pk: &str) -> Result<u64, StoreError> {
        const OP: &str = "delete_pk";
        let pk = id(PrimaryKey::new, OP, pk)?;
        self.0
            .store
            .delete_matching(&TenantPattern::rows_of_pk(&self.0.tenant, &pk))
            .await
    }

    /// The primary keys of `table`, sorted.
    pub async fn list(&self, table: &str) -> Result<Vec<String>, StoreError> {
        const OP: &str = "list_rows";
        let table = id(TableName::new, OP, table)?;
        let keys = self
            .0
            .scan(&TenantPattern::rows_of_table(&self.0.tenant, &table))
            .await?;
        let layout = self.0.keys();
        Ok(sorted(
            keys.iter()
                .filter_map(|key| layout.row_of(key))
                .filter(|(of, _)| of == table.as_str())
                .map(|(_, pk)| pk),
        ))
    }
}

/// Shared states of one tenant: scratch space per user and state name, for
/// tools and agents (`t:{<tenant>}:state:<user>:<name>`).
///
/// TTL per write: `set`, `set_field` and `modify_field` refresh it as
/// [`Users`] writes do (never shortened; without one the expiry is kept,
/// also by `set`, which replaces the fields).
#[derive(Debug, Clone)]
pub struct SharedStates(Core);

impl SharedStates {
    /// The same repository with another TTL for its writes.
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self(self.0.with_ttl(ttl))
    }

    fn key(&self, op: &'static str, user: &str, name: &str) -> Result<TenantKey, StoreError> {
        let name = id(StateName::new, op, name)?;
        Ok(TenantKey::state(&self.0.tenant, &self.0.user(op, user)?, &name))
    }

    /// Replaces the state by `value`'s fields.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        user: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_state";
        self.0.replace(OP, &self.key(OP, user, name)?, value).await
    }

    /// The state as `T` (`None` if missing).
    pub async fn get<T: DeserializeOwned>(&self, user: &str, name: &str) -> Result<Option<T>, StoreError> {
        const OP: &str = "get_state";
        self.0.get(OP, &self.key(OP, user, name)?).await
    }

    /// The state field by field.
    pub async fn get_fields(&self, user: &str, name: &str) -> Result<Fields, StoreError> {
        const OP: &str = "get_state";
        self.0.store.get_all(&self.key(OP, user, name)?).await
    }

    /// Sets one field of the state, leaving the others.
    pub async fn set_field<T: Serialize + ?Sized>(
        &self,
        user: &str,
        name: &str,
        field_name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_state_field";
        self.0
            .set_field(OP, &self.key(OP, user, name)?, field_name, value)
            .await
    }

    /// One field of the state as `T` (`None` if missing).
    pub async fn get_field<T: DeserializeOwned>(
        &self,
        user: &str,
        name: &str,
        field_name: &str,
    ) -> Result<Option<T>, StoreError> {
        const OP: &str = "get_state_field";
        self.0.get_field(OP, &self.key(OP, user, name)?, field_name).await
    }

    /// Atomic read-modify-write of one field; returns the new value.
    pub async fn modify_field<T, F>(
        &self,
        user: &str,
        name: &str,
        field_name: &str,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        const OP: &str = "modify_state_field";
        self.0.modify(OP, &self.key(OP, user, name)?, field_name, f).await
    }

    /// The names of `user`'s states, sorted.
    pub async fn list(&self, user: &str) -> Result<Vec<String>, StoreError> {
        const OP: &str = "list_states";
        let user = self.0.user(OP, user)?;
        let keys = self.0.scan(&TenantPattern::states(&self.0.tenant, &user)).await?;
        let layout = self.0.keys();
        Ok(sorted(
            keys.iter()
                .filter_map(|key| layout.state_name_of(user.as_str(), key)),
        ))
    }

    /// Deletes one state; returns whether it existed.
    pub async fn delete(&self, user: &str, name: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_state";
        self.0.store.delete(&self.key(OP, user, name)?).await
    }

    /// Deletes every state of `user` (SCAN over the tenant's own pattern for
    /// that user); returns how many.
    pub async fn clear(&self, user: &str) -> Result<u64, StoreError> {
        const OP: &str = "clear_states";
        let user = self.0.user(OP, user)?;
        self.0
            .store
            .delete_matching(&TenantPattern::states(&self.0.tenant, &user))
            .await
    }

    /// The shared state of one user, as a handle for
    /// [`SharedState::scope`].
    pub fn for_user(&self, user: &str) -> Result<SharedState, StoreError> {
        let user = self.0.user("shared_state", user)?;
        Ok(SharedState {
            states: self.clone(),
            user,
        })
    }
}

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
        &self.states.0.tenant
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
