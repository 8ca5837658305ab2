//! [`Models`]: the synced-model port with its retry policy, what
//! [`Synced`] handles load through (and raw access by type name, for tools
//! that do not know the Rust type); [`SyncedBuilder`], the options of a
//! load.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_domain::{MAX_KEY_BYTES, ModelLayout, SyncedModel, synced_key_of, validate_identifier};
use statehouse_ports::{ModelWrite, RetryPolicy, StoreError, StoredModel, SyncedStore, ValidationExt};

use super::Synced;
use crate::Statehouse;

/// The synced models of a store: the [`SyncedStore`] port and the retry
/// policy of updates. [`Statehouse::models`] hands one out; cloning is
/// cheap.
#[derive(Debug, Clone)]
pub struct Models {
    store: Arc<dyn SyncedStore>,
    policy: RetryPolicy,
}

impl Models {
    /// Models over `store`, default retry policy.
    pub fn new(store: Arc<dyn SyncedStore>) -> Self {
        Self {
            store,
            policy: RetryPolicy::default(),
        }
    }

    /// The same models with another retry policy for updates.
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The retry policy of updates.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The port.
    pub fn store(&self) -> &Arc<dyn SyncedStore> {
        &self.store
    }

    /// Model `id` of the type named `type_name` as stored, undecoded, in
    /// the layout its key holds (`None`: no model): for tools that do not
    /// know the Rust type, like `statehouse model show`.
    pub async fn load_raw(&self, type_name: &str, id: &str) -> Result<Option<StoredModel>, StoreError> {
        let key = synced_key_of(type_name, id).for_op("load", &format!("{type_name}:{id}"))?;
        self.store.load_model(&key).await
    }

    /// Writes field `field` of model `id` of the type named `type_name`,
    /// from text, atomically, without knowing the Rust type (what
    /// `statehouse model set` does): in the hash layout the field holds
    /// `text` as it is (`HSET`); in the JSON layout the document's field
    /// becomes `text` read as JSON, or as a JSON string if it is not JSON.
    /// A model that does not exist yet becomes a hash of that one field.
    /// Returns the layout written.
    pub async fn set_raw_field(
        &self,
        type_name: &str,
        id: &str,
        field: &str,
        text: &str,
    ) -> Result<ModelLayout, StoreError> {
        const OP: &str = "set";
        let key = synced_key_of(type_name, id).for_op(OP, &format!("{type_name}:{id}"))?;
        validate_identifier("field name", field, MAX_KEY_BYTES).for_op(OP, key.as_str())?;
        let mut step = |stored: Option<&StoredModel>| -> Result<ModelWrite, statehouse_ports::BoxError> {
            Ok(match stored {
                Some(StoredModel::Json(bytes)) => {
                    let mut document: serde_json::Value = serde_json::from_slice(bytes)?;
                    let value = serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::from(text));
                    match &mut document {
                        serde_json::Value::Object(fields) => {
                            fields.insert(field.to_owned(), value);
                        }
                        _ => return Err("the stored document is not a JSON object".into()),
                    }
                    ModelWrite::Json(serde_json::to_vec(&document)?)
                }
                _ => ModelWrite::Fields {
                    set: vec![(field.to_owned(), text.as_bytes().to_vec())],
                    delete: Vec::new(),
                },
            })
        };
        let updated = self
            .store
            .update_model(&key, ModelLayout::Hash, self.policy, &mut step)
            .await?;
        Ok(updated.layout.unwrap_or(ModelLayout::Hash))
    }
}

/// The options of loading a [`Synced`] model: the layout a model that does
/// not exist yet is written in (by default [`SyncedModel::LAYOUT`]).
#[derive(Debug)]
pub struct SyncedBuilder<T> {
    pub(super) layout: ModelLayout,
    pub(super) model: PhantomData<fn() -> T>,
}

impl<T> Clone for SyncedBuilder<T> {
    fn clone(&self) -> Self {
        Self {
            layout: self.layout,
            model: PhantomData,
        }
    }
}

impl<T> SyncedBuilder<T>
where
    T: SyncedModel + Serialize + DeserializeOwned + Default + Send,
{
    /// Writes a new model in `layout` (an existing one keeps its own).
    #[must_use]
    pub fn layout(mut self, layout: ModelLayout) -> Self {
        self.layout = layout;
        self
    }

    /// The layout a new model is written in.
    pub fn new_layout(&self) -> ModelLayout {
        self.layout
    }

    /// Loads model `id` from `state` (see [`Synced::load_from`]).
    pub async fn load(self, state: &Statehouse, id: &str) -> Result<Synced<T>, StoreError> {
        self.load_from(&state.models(), id).await
    }

    /// Loads model `id` through `models` (see [`Synced::load_from`]).
    pub async fn load_from(self, models: &Models, id: &str) -> Result<Synced<T>, StoreError> {
        let mut synced = Synced::unloaded(models, id, self.layout)?;
        synced.refresh().await?;
        Ok(synced)
    }
}
