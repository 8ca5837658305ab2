//! Synced models: a serde struct bound to the JSON document
//! `{TypeName}:{id}`, read once, changed atomically and written through.

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_domain::{Key, SyncedModel, synced_key};
use statehouse_ports::{BoxError, Carry, StoreError, Update, ValidationExt, decode, encode};

use crate::{Documents, Statehouse};

/// A local copy of one synced model, bound to its document
/// `{T::type_name()}:{id}` (see [`SyncedModel`]).
///
/// - [`load`](Self::load) reads the document, or starts from
///   `T::default()` (with [`SyncedModel::set_id`]) when there is none,
///   without writing anything; [`exists`](Self::exists) says which;
/// - [`modify`](Self::modify) changes the model atomically against every
///   other writer (the documents' optimistic update, with the same
///   [`RetryPolicy`](crate::RetryPolicy)) and writes it through at once;
///   the local copy becomes what was stored;
/// - [`refresh`](Self::refresh) re-reads the document, to see what other
///   services wrote; [`value`](Self::value) borrows the local copy;
/// - [`delete`](Self::delete) removes the document.
///
/// The document is plain JSON (serde_json's compact form), so services in
/// other languages read and write the same key; it reads any valid JSON
/// (`json.dumps` spacing, `\uXXXX` escapes). Fields it does not know are
/// dropped when it writes: keep them with a `#[serde(flatten)]` map (see
/// the guide, `docs/synced.md`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use serde::{Deserialize, Serialize};
/// use statehouse::{Statehouse, Synced, SyncedModel};
///
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// struct Cart { id: String, items: Vec<String> }
///
/// impl SyncedModel for Cart {
///     fn id(&self) -> String { self.id.clone() }
///     fn set_id(&mut self, id: &str) { self.id = id.to_owned(); }
/// }
///
/// let state = Statehouse::memory();
/// let mut cart = Synced::<Cart>::load(&state, "ada").await?;
/// assert!(!cart.exists());
/// cart.modify(|cart| cart.items.push("tea".into())).await?;
/// assert_eq!(cart.key(), "Cart:ada");
/// assert_eq!(
///     state.documents().get_raw("Cart:ada").await?.unwrap(),
///     br#"{"id":"ada","items":["tea"]}"#
/// );
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Synced<T> {
    docs: Documents,
    id: String,
    key: Key,
    value: T,
    exists: bool,
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
    /// Loads model `id` from `state`'s documents (see [`load_from`](Self::load_from)).
    pub async fn load(state: &Statehouse, id: &str) -> Result<Self, StoreError> {
        Self::load_from(&state.documents(), id).await
    }

    /// Loads model `id` through `docs`: the stored document, or
    /// `T::default()` with the id set if there is none (nothing is written
    /// until [`modify`](Self::modify)). A bad id or type name is
    /// [`StoreError::InvalidInput`] before any I/O; a stored document that
    /// does not decode as `T` is [`StoreError::Deserialization`] naming the
    /// key.
    pub async fn load_from(docs: &Documents, id: &str) -> Result<Self, StoreError> {
        let key = synced_key::<T>(id).for_op("load", &format!("{}:{id}", T::type_name()))?;
        let mut synced = Self {
            docs: docs.clone(),
            id: id.to_owned(),
            key,
            value: fresh(id),
            exists: false,
        };
        synced.refresh().await?;
        Ok(synced)
    }

    /// The local copy, as of the last load, refresh or modify.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The local copy, taken out.
    pub fn into_value(self) -> T {
        self.value
    }

    /// Whether the document existed at the last load, refresh, modify or
    /// delete.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The id this handle is bound to.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The document's key, `{TypeName}:{id}` (without the store's prefix).
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// Re-reads the document: what other services wrote since. If it is
    /// gone, the local copy starts over from `T::default()`.
    pub async fn refresh(&mut self) -> Result<&T, StoreError> {
        match self.docs.get::<T>(self.key.as_str()).await? {
            Some(value) => {
                self.value = value;
                self.exists = true;
            }
            None => {
                self.value = fresh(&self.id);
                self.exists = false;
            }
        }
        Ok(&self.value)
    }

    /// Applies `change` to the **stored** model (or to a fresh default if
    /// there is none) and writes the result at once, atomically: if another
    /// writer changes the document in between, the read-change-write starts
    /// over. Returns the model as stored, which is also the new local copy.
    /// A TTL on the document is kept.
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
    pub async fn try_modify<E, F>(&mut self, mut change: F) -> Result<&T, E>
    where
        E: From<StoreError> + Send,
        F: FnMut(&mut T) -> Result<(), E> + Send,
    {
        // Straight on the port rather than through `update_json`: the
        // closure keeps the model it encoded, so the committed value needs
        // no second decode.
        let (id, key) = (self.id.as_str(), &self.key);
        // The change's own error, a decoding or a rejection, comes back as
        // it is (never as the port's `Aborted`).
        let mut carry = Carry::<E>::new();
        let mut last: Option<T> = None;
        let mut step = |old: Option<&[u8]>| -> Result<Update<Vec<u8>>, BoxError> {
            carry.keep((|| {
                let mut value = match old {
                    Some(bytes) => decode::<T>("update", key.as_str(), bytes)?,
                    None => fresh(id),
                };
                let before = value.id();
                change(&mut value)?;
                let after = value.id();
                if after != before {
                    return Err(E::from(StoreError::invalid_input(
                        "modify",
                        key.as_str(),
                        format!(
                            "the change moved the model from id {before:?} to {after:?}; \
                             a synced model's id is fixed by its key"
                        ),
                    )));
                }
                if let Err(reason) = value.validate() {
                    return Err(E::from(StoreError::invalid_input(
                        "modify",
                        key.as_str(),
                        format!("{} rejected the change: {reason}", T::type_name()),
                    )));
                }
                let bytes = encode("update", key.as_str(), &value)?;
                last = Some(value);
                Ok(Update::Set(bytes))
            })())
        };
        let policy = self.docs.retry_policy();
        let updated = self.docs.store().as_ref().update(key, policy, &mut step).await;
        let updated = carry.outcome(updated)?;
        // The commit wrote what the last run of the change encoded.
        match (updated.value, last) {
            (Some(_), Some(value)) => {
                self.value = value;
                self.exists = true;
            }
            // A store that reports another outcome is answered by re-reading.
            _ => {
                self.refresh().await?;
            }
        }
        Ok(&self.value)
    }

    /// Deletes the document. Returns whether it existed; the local copy
    /// starts over from `T::default()`.
    pub async fn delete(&mut self) -> Result<bool, StoreError> {
        let existed = self.docs.delete(self.key.as_str()).await?;
        self.value = fresh(&self.id);
        self.exists = false;
        Ok(existed)
    }
}
