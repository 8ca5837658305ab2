//! [`SyncedStore`]: synced models under `{TypeName}:{id}`, in either
//! [`ModelLayout`]: a hash with a field per model field, or a JSON string.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use statehouse_domain::{Key, ModelLayout};

use crate::{BoxError, RetryPolicy, StoreError};

/// A synced model as stored, in the layout its key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredModel {
    /// A hash (`HGETALL`): field name to bytes. Fields whose names are not
    /// UTF-8 are left out (no model field has such a name); nothing
    /// rewrites them.
    Hash(BTreeMap<String, Vec<u8>>),
    /// A JSON string (`GET`), as it is.
    Json(Vec<u8>),
}

impl StoredModel {
    /// The layout it is stored in.
    pub fn layout(&self) -> ModelLayout {
        match self {
            Self::Hash(_) => ModelLayout::Hash,
            Self::Json(_) => ModelLayout::Json,
        }
    }

    /// The hash's fields from raw `(field, value)` pairs (what `HGETALL`
    /// answers), leaving out names that are not UTF-8.
    pub fn hash_from_raw(fields: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Self {
        Self::Hash(
            fields
                .into_iter()
                .filter_map(|(field, value)| Some((String::from_utf8(field).ok()?, value)))
                .collect(),
        )
    }
}

/// What an update closure decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelWrite {
    /// Write nothing.
    Keep,
    /// Hash layout: set these fields (`HSET`) and delete those (`HDEL`), in
    /// one atomic step, leaving every other field as it is. A missing key
    /// becomes a hash of the set fields.
    Fields {
        /// `(field, bytes)` to set.
        set: Vec<(String, Vec<u8>)>,
        /// Fields to delete.
        delete: Vec<String>,
    },
    /// JSON layout: the whole model as one string (`SET … KEEPTTL`),
    /// replacing what the key held.
    Json(Vec<u8>),
    /// Delete the model.
    Delete,
}

impl ModelWrite {
    /// The field writes that turn a model encoded as `old` into one encoded
    /// as `new` (both `(field, bytes)`, as
    /// [`hash_fields::to_fields`](crate::hash_fields::to_fields) writes
    /// them): the fields that are new or changed, and the fields `old` had
    /// and `new` has not. Fields of neither (another service's) are not
    /// touched; nothing changed is [`Keep`](Self::Keep).
    ///
    /// ```
    /// use statehouse_ports::ModelWrite;
    ///
    /// let field = |name: &str, value: &str| (name.to_owned(), value.as_bytes().to_vec());
    /// let old = [field("a", "1"), field("b", "2"), field("c", "3")];
    /// let new = [field("a", "1"), field("b", "20"), field("d", "4")];
    /// assert_eq!(
    ///     ModelWrite::changes(&old, &new),
    ///     ModelWrite::Fields { set: vec![field("b", "20"), field("d", "4")], delete: vec!["c".to_owned()] }
    /// );
    /// assert_eq!(ModelWrite::changes(&old, &old), ModelWrite::Keep);
    /// ```
    pub fn changes(old: &[(String, Vec<u8>)], new: &[(String, Vec<u8>)]) -> Self {
        if old.len() > 64 || new.len() > 64 {
            return Self::changes_of_many(old, new);
        }
        // A model has few fields: scans, without building maps.
        fn find<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
            fields
                .iter()
                .find(|(field, _)| field == name)
                .map(|(_, value)| value.as_slice())
        }
        let set: Vec<(String, Vec<u8>)> = new
            .iter()
            .filter(|(field, value)| find(old, field) != Some(value.as_slice()))
            .cloned()
            .collect();
        let delete: Vec<String> = old
            .iter()
            .filter(|(field, _)| find(new, field).is_none())
            .map(|(field, _)| field.clone())
            .collect();
        if set.is_empty() && delete.is_empty() {
            Self::Keep
        } else {
            Self::Fields { set, delete }
        }
    }
}

impl ModelWrite {
    /// [`changes`](Self::changes) of models with many fields (a map).
    fn changes_of_many(old: &[(String, Vec<u8>)], new: &[(String, Vec<u8>)]) -> Self {
        let before: BTreeMap<&str, &[u8]> = old
            .iter()
            .map(|(field, value)| (field.as_str(), value.as_slice()))
            .collect();
        let after: BTreeMap<&str, &[u8]> = new
            .iter()
            .map(|(field, value)| (field.as_str(), value.as_slice()))
            .collect();
        let set: Vec<(String, Vec<u8>)> = new
            .iter()
            .filter(|(field, value)| before.get(field.as_str()) != Some(&value.as_slice()))
            .cloned()
            .collect();
        let delete: Vec<String> = old
            .iter()
            .filter(|(field, _)| !after.contains_key(field.as_str()))
            .map(|(field, _)| field.clone())
            .collect();
        if set.is_empty() && delete.is_empty() {
            Self::Keep
        } else {
            Self::Fields { set, delete }
        }
    }
}

/// The synchronous closure of [`SyncedStore::update_model`]: it gets the
/// stored model (`None` when the key is missing) and decides what to write.
/// An `Err` aborts the update ([`StoreError::Aborted`]), writing nothing.
///
/// It **may run more than once** (when the key changes between read and
/// write); keep it free of side effects.
pub type ModelFn<'a> = dyn FnMut(Option<&StoredModel>) -> Result<ModelWrite, BoxError> + Send + 'a;

/// The result of [`SyncedStore::update_model`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUpdated {
    /// The layout the key holds after the update; `None` when it holds no
    /// model (deleted, or nothing written to a missing key).
    pub layout: Option<ModelLayout>,
    /// How many times the closure ran (1 without conflicts).
    pub attempts: u32,
}

/// Synced models: the key `{TypeName}:{id}` (a [`Key`], in the documents'
/// namespace) holding a hash of fields or a JSON string.
///
/// # Contract
///
/// Every implementation behaves the same; the contract suite in
/// `statehouse-tests` (`synced::hash::…`, `synced::json::…`) runs one list of
/// tests against each.
///
/// - `load_model` answers the model in the layout the key holds, told
///   apart by its type (a hash, a string), in one atomic step; a missing
///   key is `None`; a key of another type is [`StoreError::WrongType`].
/// - `write_fields` sets and deletes hash fields in one atomic step
///   without reading (`HSET` + `HDEL`), leaving every other field as it is,
///   so two writers of different fields lose nothing; a missing key
///   becomes a hash. A key holding a string (the JSON layout) or another
///   type is `WrongType`, and nothing is written. The expiry is kept.
/// - `update_model` is an atomic read-modify-write of the model under
///   `policy`, through the one optimistic loop: the closure sees the model
///   in whichever layout the key holds at that moment (`expected` is only
///   the layout tried first), and its decision is written only if the key
///   did not change in between; otherwise it runs again, and running out of
///   attempts is [`StoreError::Conflict`]. [`ModelWrite::Fields`] writes
///   only the fields it names (on a key holding a string it is `WrongType`,
///   nothing written); [`ModelWrite::Json`] replaces the model. Writes keep
///   the key's TTL. A key of another type is `WrongType`.
/// - `delete_model` deletes a model of either layout and says whether
///   there was one; a key of another type is `WrongType`, and stays.
/// - Errors name the key without the store's prefix.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SyncedStore: Debug + Send + Sync + 'static {
    /// The model under `key`, in its layout, or `None`.
    async fn load_model(&self, key: &Key) -> Result<Option<StoredModel>, StoreError>;

    /// Sets `set` and deletes `delete` among the hash fields of `key`, at
    /// once, without reading.
    async fn write_fields(
        &self,
        key: &Key,
        set: &[(String, Vec<u8>)],
        delete: &[String],
    ) -> Result<(), StoreError>;

    /// Atomic read-modify-write of the model under `key`; see [`ModelFn`].
    async fn update_model<'a>(
        &self,
        key: &Key,
        expected: ModelLayout,
        policy: RetryPolicy,
        f: &mut ModelFn<'a>,
    ) -> Result<ModelUpdated, StoreError>;

    /// Deletes the model under `key`; returns whether there was one.
    async fn delete_model(&self, key: &Key) -> Result<bool, StoreError>;
}

macro_rules! forward_synced_store {
    ($wrapper:ident) => {
        #[async_trait]
        impl<T: SyncedStore + ?Sized> SyncedStore for $wrapper<T> {
            async fn load_model(&self, key: &Key) -> Result<Option<StoredModel>, StoreError> {
                (**self).load_model(key).await
            }

            async fn write_fields(
                &self,
                key: &Key,
                set: &[(String, Vec<u8>)],
                delete: &[String],
            ) -> Result<(), StoreError> {
                (**self).write_fields(key, set, delete).await
            }

            async fn update_model<'a>(
                &self,
                key: &Key,
                expected: ModelLayout,
                policy: RetryPolicy,
                f: &mut ModelFn<'a>,
            ) -> Result<ModelUpdated, StoreError> {
                (**self).update_model(key, expected, policy, f).await
            }

            async fn delete_model(&self, key: &Key) -> Result<bool, StoreError> {
                (**self).delete_model(key).await
            }
        }
    };
}

forward_synced_store!(Arc);
forward_synced_store!(Box);

/// Compile-time check: the trait stays usable as `Arc<dyn SyncedStore>`.
const _: fn(Arc<dyn SyncedStore>) = |_| {};
