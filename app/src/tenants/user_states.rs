//! [`UserStates`]: records per user and name, the one core of the two
//! repositories of that shape, [`HandlerStates`] (per user and handler)
//! and [`SharedStates`] (per user and state name), which differ only in
//! their keys and the names of their operations ([`StateKind`]).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_domain::TenantSpace;
use statehouse_domain::layout::TenantKeys;
use statehouse_ports::{
    Fields, HandlerName, KeyStream, StateName, StoreError, TenantId, TenantKey, TenantPattern, Ttl, UserId,
};

use super::SharedState;
use super::records::{Core, key_of, record};

/// Handler states of one tenant: conversation state per user and handler
/// (`t:{<tenant>}:handler:<user>:<handler>`). See [`UserStates`].
pub type HandlerStates = UserStates<HandlerKind>;

/// Shared states of one tenant: scratch space per user and state name, for
/// tools and agents (`t:{<tenant>}:state:<user>:<name>`); one user's, bound
/// to a request, is the current [`SharedState`]. See [`UserStates`].
pub type SharedStates = UserStates<SharedKind>;

/// The records of [`HandlerStates`]: named by handler.
#[derive(Debug, Clone, Copy)]
pub enum HandlerKind {}

/// The records of [`SharedStates`]: named by state name.
#[derive(Debug, Clone, Copy)]
pub enum SharedKind {}

/// Which records a [`UserStates`] holds: [`HandlerKind`] or [`SharedKind`]
/// (sealed).
pub trait StateKind: sealed::Kind + std::fmt::Debug + Clone + Send + Sync + 'static {}

impl StateKind for HandlerKind {}
impl StateKind for SharedKind {}

mod sealed {
    use super::{StoreError, TenantId, TenantKey, TenantKeys, TenantPattern, TenantSpace, UserId};

    /// The names of a kind's operations, as its errors and spans name them.
    #[derive(Debug)]
    pub struct Ops {
        pub set: &'static str,
        pub get: &'static str,
        pub set_field: &'static str,
        pub get_field: &'static str,
        pub modify_field: &'static str,
        pub merge: &'static str,
        pub delete: &'static str,
        pub list: &'static str,
        pub clear: &'static str,
    }

    /// What a kind decides: its keys and the names of its operations.
    pub trait Kind {
        const OPS: Ops;

        /// The key of record `name` of `user` in `space` (both validated
        /// for `op`).
        fn key(
            space: &TenantSpace,
            op: &'static str,
            user: &str,
            name: &str,
        ) -> Result<TenantKey, StoreError>;

        /// The pattern of every record of `user`.
        fn pattern(tenant: &TenantId, user: &UserId) -> TenantPattern;

        /// The record's name in a key `pattern` matched.
        fn name_of(layout: &TenantKeys, user: &str, key: &str) -> Option<String>;
    }
}

impl sealed::Kind for HandlerKind {
    const OPS: sealed::Ops = sealed::Ops {
        set: "set_handler_state",
        get: "get_handler_state",
        set_field: "set_handler_field",
        get_field: "get_handler_field",
        modify_field: "modify_handler_field",
        merge: "merge_handler_state",
        delete: "delete_handler_state",
        list: "list_handlers",
        clear: "clear_handlers",
    };

    fn key(space: &TenantSpace, op: &'static str, user: &str, name: &str) -> Result<TenantKey, StoreError> {
        key_of(
            op,
            space.handler(user, name),
            &[(user, UserId::validate), (name, HandlerName::validate)],
        )
    }

    fn pattern(tenant: &TenantId, user: &UserId) -> TenantPattern {
        TenantPattern::handlers(tenant, user)
    }

    fn name_of(layout: &TenantKeys, user: &str, key: &str) -> Option<String> {
        layout.handler_name_of(user, key)
    }
}

impl sealed::Kind for SharedKind {
    const OPS: sealed::Ops = sealed::Ops {
        set: "set_state",
        get: "get_state",
        set_field: "set_state_field",
        get_field: "get_state_field",
        modify_field: "modify_state_field",
        merge: "merge_state",
        delete: "delete_state",
        list: "list_states",
        clear: "clear_states",
    };

    fn key(space: &TenantSpace, op: &'static str, user: &str, name: &str) -> Result<TenantKey, StoreError> {
        key_of(
            op,
            space.state(user, name),
            &[(user, UserId::validate), (name, StateName::validate)],
        )
    }

    fn pattern(tenant: &TenantId, user: &UserId) -> TenantPattern {
        TenantPattern::states(tenant, user)
    }

    fn name_of(layout: &TenantKeys, user: &str, key: &str) -> Option<String> {
        layout.state_name_of(user, key)
    }
}

/// Records of one tenant per user and name: a handler's state
/// ([`HandlerStates`]) or a named shared state ([`SharedStates`]), each a
/// hash with one JSON value per field.
///
/// TTL per write: `set`, `merge`, `set_field` and `modify_field` refresh
/// it as [`Users`](crate::Users) writes do (never shortened; without one
/// the expiry is kept, also by `set`, which replaces the fields).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use serde_json::{Value, json};
/// use statehouse::Statehouse;
///
/// let acme = Statehouse::memory().tenant("acme")?;
/// let handlers = acme.handler_states();
/// handlers.set("u1", "checkout", &json!({"step": 1})).await?;
/// let merged: Value = handlers.merge("u1", "checkout", &json!({"cart": 7})).await?;
/// assert_eq!(merged, json!({"step": 1, "cart": 7}));
/// acme.shared_states().set_field("u1", "draft", "text", &"hi").await?;
/// assert_eq!(acme.shared_states().list("u1").await?, ["draft"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct UserStates<K: StateKind> {
    core: Core,
    kind: PhantomData<K>,
}

impl<K: StateKind> UserStates<K> {
    pub(super) fn new(core: Core) -> Self {
        Self {
            core,
            kind: PhantomData,
        }
    }

    /// The same repository with another TTL for its writes.
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self::new(self.core.with_ttl(ttl))
    }

    fn key(&self, op: &'static str, user: &str, name: &str) -> Result<TenantKey, StoreError> {
        K::key(&self.core.space, op, user, name)
    }

    /// Replaces the record by `value`'s fields.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        user: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let op = K::OPS.set;
        self.core.replace(op, &self.key(op, user, name)?, value).await
    }

    /// The record as `T` (`None` if missing).
    pub async fn get<T: DeserializeOwned>(&self, user: &str, name: &str) -> Result<Option<T>, StoreError> {
        let op = K::OPS.get;
        self.core.get(op, &self.key(op, user, name)?).await
    }

    /// The record field by field; a bad field fails alone.
    pub async fn get_fields(&self, user: &str, name: &str) -> Result<Fields, StoreError> {
        let op = K::OPS.get;
        self.core.store.get_all(&self.key(op, user, name)?).await
    }

    /// Sets one field of the record, leaving the others.
    pub async fn set_field<T: Serialize + ?Sized>(
        &self,
        user: &str,
        name: &str,
        field_name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let op = K::OPS.set_field;
        self.core
            .set_field(op, &self.key(op, user, name)?, field_name, value)
            .await
    }

    /// One field of the record as `T` (`None` if missing).
    pub async fn get_field<T: DeserializeOwned>(
        &self,
        user: &str,
        name: &str,
        field_name: &str,
    ) -> Result<Option<T>, StoreError> {
        let op = K::OPS.get_field;
        self.core
            .get_field(op, &self.key(op, user, name)?, field_name)
            .await
    }

    /// Atomic read-modify-write of one field (`f` may run more than once);
    /// returns the new value. A stored value that does not decode as `T`
    /// is `Deserialization` naming the field, and nothing is written.
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
        let op = K::OPS.modify_field;
        self.core
            .modify(op, &self.key(op, user, name)?, field_name, f)
            .await
    }

    /// Merge-upsert: writes `value`'s fields, keeps the fields it does not
    /// name, and returns the merged record as `R`, all in one atomic step.
    pub async fn merge<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        user: &str,
        name: &str,
        value: &T,
    ) -> Result<R, StoreError> {
        let op = K::OPS.merge;
        let key = self.key(op, user, name)?;
        let merged = self.core.merge(op, &key, value).await?;
        record(op, &key, merged)?.ok_or_else(|| StoreError::NotFound {
            op,
            key: key.key().to_owned(),
        })
    }

    /// Deletes the record; returns whether it existed.
    pub async fn delete(&self, user: &str, name: &str) -> Result<bool, StoreError> {
        let op = K::OPS.delete;
        self.core.store.delete(&self.key(op, user, name)?).await
    }

    /// The names of `user`'s records, each once, in no particular order,
    /// as a stream (SCAN over the tenant's own pattern for that user, page
    /// by page: memory stays flat; see [`KeyStream`]). A bad user id fails
    /// here, before any I/O.
    pub fn stream(&self, user: &str) -> Result<KeyStream, StoreError> {
        let op = K::OPS.list;
        let user = self.core.user(op, user)?;
        let layout = self.core.keys();
        Ok(self
            .core
            .scan(&K::pattern(self.core.tenant(), &user))
            .filter_map(move |key| K::name_of(&layout, user.as_str(), &key)))
    }

    /// [`stream`](Self::stream) collected: the names, sorted. Holds them
    /// all: for users known to have few records.
    pub async fn list(&self, user: &str) -> Result<Vec<String>, StoreError> {
        self.stream(user)?.collect_sorted().await
    }

    /// Deletes every record of `user` (SCAN over the tenant's own pattern
    /// for that user); returns how many.
    pub async fn clear(&self, user: &str) -> Result<u64, StoreError> {
        let op = K::OPS.clear;
        let user = self.core.user(op, user)?;
        self.core
            .store
            .delete_matching(&K::pattern(self.core.tenant(), &user))
            .await
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        self.core.tenant()
    }
}

impl SharedStates {
    /// The shared state of one user, as a handle for
    /// [`SharedState::scope`].
    pub fn for_user(&self, user: &str) -> Result<SharedState, StoreError> {
        let user = self.core.user("shared_state", user)?;
        Ok(SharedState::new(self.clone(), user))
    }
}
