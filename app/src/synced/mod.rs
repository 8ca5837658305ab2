//! Synced models: a serde struct bound to the key `{TypeName}:{id}`, in
//! the hash layout (a field per model field, as Python's pydantic-state
//! writes it) or as one JSON string; read once, changed atomically and
//! written through, field by field in the hash layout.
//!
//! `Models` (the port and the retry policy, what handles load through and
//! what the CLI reads raw models with) and the builder are in `models.rs`;
//! the encoding of a model in each layout in `codec.rs`.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_domain::{Key, ModelLayout, SyncedModel, synced_key};
use statehouse_ports::{BoxError, Carry, ModelWrite, StoreError, StoredModel, ValidationExt};

use crate::Statehouse;

mod codec;
mod models;

pub use models::{Models, SyncedBuilder};

/// A local copy of one synced model, bound to its key
/// `{T::type_name()}:{id}` (see [`SyncedModel`]).
///
/// - [`load`](Self::load) reads the model, in whichever layout its key
///   holds (told by the key's Redis type: a hash or a string), or starts
///   from `T::default()` (with [`SyncedModel::set_id`]) when there is none,
///   without writing anything; [`exists`](Self::exists) says which;
/// - [`modify`](Self::modify) changes the model atomically against every
///   other writer (the one optimistic loop, with the store's
///   [`RetryPolicy`](crate::RetryPolicy)) and writes it through at once: in
///   the hash layout only the fields that changed (`HSET` changed, `HDEL`
///   the ones that became `None`), so two services changing different
///   fields never overwrite each other;
/// - [`set`](Self::set) writes one field (`HSET key field value` in the
///   hash layout, what a pydantic-state attribute assignment does);
/// - [`refresh`](Self::refresh) re-reads the model, to see what other
///   services wrote; [`value`](Self::value) borrows the local copy;
///   [`load_field`](Self::load_field) reads one field alone;
/// - [`delete`](Self::delete) removes the model.
///
/// A model that does not exist yet is written in [`SyncedModel::LAYOUT`]
/// (the hash layout unless the model says otherwise) or the layout given
/// to [`Synced::builder`]; an existing one keeps its layout. The byte rules
/// of the hash layout are those of
/// [`hash_fields`](statehouse_ports::hash_fields); the JSON layout writes
/// compact serde_json and reads any JSON (see the guide, `docs/synced.md`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use serde::{Deserialize, Serialize};
/// use statehouse::{Statehouse, StoredModel, Synced, SyncedModel};
///
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// struct Cart { id_: String, owner: String, total: f64 }
///
/// impl SyncedModel for Cart {
///     fn id(&self) -> String { self.id_.clone() }
///     fn set_id(&mut self, id: &str) { self.id_ = id.to_owned(); }
/// }
///
/// let state = Statehouse::memory();
/// let mut cart = Synced::<Cart>::load(&state, "ada").await?;
/// assert!(!cart.exists());
/// cart.modify(|cart| cart.owner = "Ada".into()).await?; // creates it: every field
/// cart.set("total", &12.5).await?; // one field
/// assert_eq!(cart.key(), "Cart:ada");
/// let Some(StoredModel::Hash(fields)) = state.models().load_raw("Cart", "ada").await? else { panic!() };
/// assert_eq!(fields["total"], b"12.5");
/// assert_eq!(fields["owner"], b"Ada");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Synced<T> {
    models: Models,
    id: String,
    key: Key,
    value: T,
    /// The layout the key held at the last read or write (`None`: no model).
    stored: Option<ModelLayout>,
    /// The layout a new model is written in.
    new_layout: ModelLayout,
    /// Hash fields this handle encoded (bytes the codec wrote for each
    /// field), so that a field stored as such need not be encoded again:
    /// a cache, checked against the stored bytes every time.
    canonical: BTreeMap<String, Vec<u8>>,
}

/// `T::default()` with its id set.
fn fresh<T: SyncedModel + Default>(id: &str) -> T {
    let mut value = T::default();
    value.set_id(id);
    value
}

impl<T> Synced<T>
where
    T: SyncedModel + Serialize + DeserializeOwned + Default + Send,
{
    /// Loads model `id` from `state` (see [`load_from`](Self::load_from)).
    pub async fn load(state: &Statehouse, id: &str) -> Result<Self, StoreError> {
        Self::load_from(&state.models(), id).await
    }

    /// Loads model `id` through `models`: the stored model, in the layout
    /// its key holds, or `T::default()` with the id set if there is none
    /// (nothing is written until [`modify`](Self::modify) or
    /// [`set`](Self::set)). A bad id or type name is
    /// [`StoreError::InvalidInput`] before any I/O; a stored model that does
    /// not decode as `T` is [`StoreError::Deserialization`] naming the key
    /// (and, in the hash layout, the field and the type it should hold:
    /// `"Order:7 field total"`); a key of another type is `WrongType`.
    pub async fn load_from(models: &Models, id: &str) -> Result<Self, StoreError> {
        Self::builder().load_from(models, id).await
    }

    /// Options for loading: the layout a new model is written in.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
    /// # use serde::{Deserialize, Serialize};
    /// use statehouse::{ModelLayout, Statehouse, Synced, SyncedModel};
    /// # #[derive(Default, Serialize, Deserialize)] struct Hits { n: u64 }
    /// # impl SyncedModel for Hits { fn id(&self) -> String { String::new() } }
    ///
    /// let state = Statehouse::memory();
    /// let mut hits = Synced::<Hits>::builder().layout(ModelLayout::Json).load(&state, "home").await?;
    /// hits.modify(|h| h.n += 1).await?;
    /// assert_eq!(state.documents().get_raw("Hits:home").await?.unwrap(), br#"{"n":1}"#);
    /// # Ok(()) }
    /// ```
    pub fn builder() -> SyncedBuilder<T> {
        SyncedBuilder {
            layout: T::LAYOUT,
            model: PhantomData,
        }
    }

    /// The handle of an absent model, before its first read.
    fn unloaded(models: &Models, id: &str, new_layout: ModelLayout) -> Result<Self, StoreError> {
        let key = synced_key::<T>(id).for_op("load", &format!("{}:{id}", T::type_name()))?;
        Ok(Self {
            models: models.clone(),
            id: id.to_owned(),
            key,
            value: fresh(id),
            stored: None,
            new_layout,
            canonical: BTreeMap::new(),
        })
    }

    /// Reads field `field` of model `id` alone, as `V` (`None` when the
    /// model or the field is missing): for a model that does not decode as a
    /// whole (a bad field), the other fields stay readable. In the JSON
    /// layout the field is read from the document's JSON object.
    pub async fn load_field<V: DeserializeOwned>(
        models: &Models,
        id: &str,
        field: &str,
    ) -> Result<Option<V>, StoreError> {
        const OP: &str = "load_field";
        let key = synced_key::<T>(id).for_op(OP, &format!("{}:{id}", T::type_name()))?;
        let stored = models.store().load_model(&key).await?;
        stored
            .map(|stored| codec::field::<V>(OP, key.as_str(), &stored, field))
            .transpose()
            .map(Option::flatten)
    }

    /// The local copy, as of the last load, refresh, modify or set.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The local copy, taken out.
    pub fn into_value(self) -> T {
        self.value
    }

    /// Whether the model existed at the last load, refresh, modify, set or
    /// delete.
    pub fn exists(&self) -> bool {
        self.stored.is_some()
    }

    /// The layout of the stored model, or, when there is none, the layout
    /// a new one is written in.
    pub fn layout(&self) -> ModelLayout {
        self.stored.unwrap_or(self.new_layout)
    }

    /// The id this handle is bound to.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The model's key, `{TypeName}:{id}` (without the store's prefix).
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// Re-reads the model: what other services wrote since. If it is gone,
    /// the local copy starts over from `T::default()`.
    pub async fn refresh(&mut self) -> Result<&T, StoreError> {
        match self.models.store().load_model(&self.key).await? {
            Some(stored) => {
                self.value = codec::decode("load", self.key.as_str(), &stored, || fresh(&self.id))?;
                self.stored = Some(stored.layout());
            }
            None => {
                self.value = fresh(&self.id);
                self.stored = None;
            }
        }
        Ok(&self.value)
    }

    /// Applies `change` to the **stored** model (or to a fresh default if
    /// there is none) and writes the result at once, atomically: if another
    /// writer changes the model in between, the read-change-write starts
    /// over. Returns the model as stored, which is also the new local copy.
    /// A TTL on the key is kept.
    ///
    /// In the hash layout only the fields whose encoding changed are
    /// written (`HSET`), and fields that became `None` are deleted (`HDEL`);
    /// fields the model does not know (another service's) are left alone.
    /// A new model is written whole. In the JSON layout the whole document
    /// is written.
    ///
    /// `change` **may run more than once**, each time on the latest stored
    /// value (never on the local copy): keep it a pure function of the
    /// model it gets. After the retry policy's attempts it fails with
    /// [`StoreError::Conflict`].
    ///
    /// The changed model must pass [`SyncedModel::validate`] and keep its
    /// id; otherwise the change is rejected with
    /// [`StoreError::InvalidInput`] naming the key and the reason, and
    /// nothing is written.
    ///
    /// Concurrent `modify`s of one model through one store are combined
    /// into one round (`docs/hotkeys.md`), each with the outcome it would
    /// have had alone; `change` must not `modify` this model itself (that
    /// call would wait for the round `change` runs in).
    pub async fn modify<F>(&mut self, mut change: F) -> Result<&T, StoreError>
    where
        F: FnMut(&mut T) + Send,
    {
        self.try_modify(|value| {
            change(value);
            Ok::<_, StoreError>(())
        })
        .await
    }

    /// Like [`modify`](Self::modify), with a change that can fail: its
    /// error aborts the change (nothing is written) and comes back as is.
    pub async fn try_modify<E, F>(&mut self, change: F) -> Result<&T, E>
    where
        E: From<StoreError> + Send,
        F: FnMut(&mut T) -> Result<(), E> + Send,
    {
        self.update("modify", change).await
    }

    /// Writes field `field` of the model: `value` encoded as the layout
    /// says (see [`hash_fields`](statehouse_ports::hash_fields); `None`
    /// deletes the field). Returns the new local copy: in the hash layout
    /// the local copy with the field changed (the other fields as of the
    /// last read), otherwise the model as stored.
    ///
    /// In the hash layout, of a model that exists, this is one `HSET` (or
    /// `HDEL`) of that field and nothing else, without reading: what a
    /// pydantic-state attribute assignment does. Otherwise (a model that
    /// does not exist yet, which is written whole, or the JSON layout, whose
    /// document is one value) it is a [`modify`](Self::modify) of that
    /// field.
    ///
    /// The field must be one of the model's, and the value must be one it
    /// holds (it is checked against the local copy: decoding, `validate`,
    /// the id); otherwise [`StoreError::InvalidInput`] naming the key and
    /// field, and nothing is written.
    pub async fn set<V: Serialize + ?Sized + Sync>(
        &mut self,
        field: &str,
        value: &V,
    ) -> Result<&T, StoreError> {
        if self.stored == Some(ModelLayout::Hash) {
            let codec::Changed {
                model: changed,
                written,
                encoded,
            } = codec::with_hash_field(&self.key, &self.value, field, value)?;
            check(&self.key, &changed, &self.value.id()).map_err(|error| retag(error, "set"))?;
            let (set, delete) = match written {
                Some(bytes) => (vec![(field.to_owned(), bytes)], Vec::new()),
                None => (Vec::new(), vec![field.to_owned()]),
            };
            self.models.store().write_fields(&self.key, &set, &delete).await?;
            self.value = changed;
            self.canonical.extend(encoded);
            return Ok(&self.value);
        }
        // Checked once against the local copy, so that a bad field or
        // value is refused before any I/O, then applied to the stored model.
        let (layout, key) = (self.layout(), self.key.clone());
        codec::with_field(layout, &key, &self.value, field, value)?;
        self.update("set", |model: &mut T| {
            *model = codec::with_field(layout, &key, model, field, value)?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    /// Deletes the model. Returns whether it existed; the local copy
    /// starts over from `T::default()`.
    pub async fn delete(&mut self) -> Result<bool, StoreError> {
        let existed = self.models.store().delete_model(&self.key).await?;
        self.value = fresh(&self.id);
        self.stored = None;
        Ok(existed)
    }

    /// THE read-change-write of a synced model, through the port's one
    /// optimistic loop: decodes the stored model (or a fresh default),
    /// applies `change`, checks it, and writes the difference.
    async fn update<E, F>(&mut self, op: &'static str, mut change: F) -> Result<&T, E>
    where
        E: From<StoreError> + Send,
        F: FnMut(&mut T) -> Result<(), E> + Send,
    {
        let (id, key, new_layout) = (self.id.as_str(), &self.key, self.new_layout);
        let canonical = &self.canonical;
        let mut encoded: Option<codec::HashFields> = None;
        // The change's own error, a decoding or a rejection, comes back as
        // it is (never as the port's `Aborted`).
        let mut carry = Carry::<E>::new();
        let mut last: Option<T> = None;
        let mut step = |stored: Option<&StoredModel>| -> Result<ModelWrite, BoxError> {
            carry.keep((|| {
                let (mut value, before) = match stored {
                    Some(stored) => {
                        let value: T = codec::decode("update", key.as_str(), stored, || fresh(id))?;
                        let before = match stored {
                            StoredModel::Hash(fields) => {
                                Some(codec::Before::of(key.as_str(), fields, &value, canonical)?)
                            }
                            StoredModel::Json(_) => None,
                        };
                        (value, before)
                    }
                    None => (fresh(id), None),
                };
                let id_before = value.id();
                change(&mut value)?;
                check(key, &value, &id_before).map_err(|error| E::from(retag(error, op)))?;
                let layout = stored.map_or(new_layout, StoredModel::layout);
                let (write, fields) = codec::write(key.as_str(), layout, &value, before)?;
                encoded = fields;
                last = Some(value);
                Ok(write)
            })())
        };
        let updated = self
            .models
            .store()
            .update_model(
                key,
                self.stored.unwrap_or(new_layout),
                self.models.retry_policy(),
                &mut step,
            )
            .await;
        let updated = carry.outcome(updated)?;
        self.canonical.extend(encoded.unwrap_or_default());
        match last {
            Some(value) => {
                self.value = value;
                self.stored = updated.layout;
            }
            // A store that reports another outcome is answered by re-reading.
            None => {
                self.refresh().await?;
            }
        }
        Ok(&self.value)
    }
}

/// Rejects a changed model that moved to another id or fails `validate`.
fn check<T: SyncedModel>(key: &Key, value: &T, before: &str) -> Result<(), StoreError> {
    let after = value.id();
    if after != before {
        return Err(StoreError::invalid_input(
            "modify",
            key.as_str(),
            format!(
                "the change moved the model from id {before:?} to {after:?}; \
                 a synced model's id is fixed by its key"
            ),
        ));
    }
    value.validate().map_err(|reason| {
        StoreError::invalid_input(
            "modify",
            key.as_str(),
            format!("{} rejected the change: {reason}", T::type_name()),
        )
    })
}

/// A rejection of `check` under the operation that was asked for.
fn retag(error: StoreError, op: &'static str) -> StoreError {
    match error {
        StoreError::InvalidInput { key, reason, .. } => StoreError::InvalidInput { op, key, reason },
        other => other,
    }
}
