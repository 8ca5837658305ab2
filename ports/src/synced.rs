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

/// The error of field writes to a model stored as one JSON string (`op`
/// on `key`): nothing is written.
pub fn fields_of_a_string(op: &'static str, key: &str) -> StoreError {
    StoreError::invalid_input(
        op,
        key,
        "field writes to a model stored as a JSON string (write the whole model instead)",
    )
}

/// A synced model as a combined round of [`SyncedStore::update_model`]
/// hands it from caller to caller (`Combiner`, `combine.rs`): the model as
/// the callers so far left it, and the writes that turn what the round
/// read into it. Both adapters read it ([`of_hash`](Self::of_hash),
/// [`of_string`](Self::of_string)) and write [`writes`](Self::writes);
/// [`model_step`] applies a caller's decision, with the rules of one
/// `update_model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldModel {
    /// The model now (`None`: the key holds none).
    model: Option<StoredModel>,
    /// The hash also holds fields whose names are not UTF-8 (left out of
    /// `model`, never rewritten): emptying the model's fields leaves the
    /// key.
    hidden: bool,
    /// A caller deleted the model (or emptied its hash) since the read:
    /// the writes start with `DEL`.
    cleared: bool,
    /// What the writes after that `DEL` (if any) must do.
    pending: Pending,
}

/// The writes a [`HeldModel`] owes since the read (or its last deletion).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Nothing,
    /// `HSET set; HDEL delete` (disjoint).
    Fields {
        set: Vec<(String, Vec<u8>)>,
        delete: Vec<String>,
    },
    /// `SET <the model's bytes> KEEPTTL`.
    Json,
}

impl HeldModel {
    /// What a read of a hash answered (`HGETALL`: empty for a missing key).
    pub fn of_hash(fields: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Self {
        let mut raw = 0;
        let model = StoredModel::hash_from_raw(fields.into_iter().inspect(|_| raw += 1));
        let kept = match &model {
            StoredModel::Hash(fields) => fields.len(),
            StoredModel::Json(_) => 0,
        };
        Self::read((raw > 0).then_some(model), raw > kept)
    }

    /// What a read of a string answered (`GET`: `None` for a missing key).
    pub fn of_string(bytes: Option<Vec<u8>>) -> Self {
        Self::read(bytes.map(StoredModel::Json), false)
    }

    fn read(model: Option<StoredModel>, hidden: bool) -> Self {
        Self {
            model,
            hidden,
            cleared: false,
            pending: Pending::Nothing,
        }
    }

    /// The model as the callers so far left it.
    pub fn model(&self) -> Option<&StoredModel> {
        self.model.as_ref()
    }

    /// The layout the key holds now (`None`: no model).
    pub fn layout(&self) -> Option<ModelLayout> {
        self.model.as_ref().map(StoredModel::layout)
    }

    /// The writes, in order, that turn what the round read into this
    /// model, as one `update_model` would have written each caller's
    /// decision: `Delete` first if a caller deleted the model (or emptied
    /// its hash) since, then the fields set and deleted since (`Fields`),
    /// or the whole document (`Json`). Empty only if no caller changed
    /// anything.
    pub fn writes(self) -> Vec<ModelWrite> {
        let mut writes = Vec::with_capacity(2);
        if self.cleared {
            writes.push(ModelWrite::Delete);
        }
        match (self.pending, self.model) {
            (Pending::Fields { set, delete }, _) => writes.push(ModelWrite::Fields { set, delete }),
            (Pending::Json, Some(StoredModel::Json(bytes))) => writes.push(ModelWrite::Json(bytes)),
            _ => {}
        }
        writes
    }

    /// The model after `write`, by the rules of one `update_model` (of
    /// `op` on `key`): `None` when it writes nothing (`Keep`, no fields,
    /// deleting fields or the model of a missing key); field writes to a
    /// model stored as a JSON string are refused.
    pub fn apply(&self, write: ModelWrite, op: &'static str, key: &str) -> Result<Option<Self>, StoreError> {
        match write {
            ModelWrite::Keep => Ok(None),
            ModelWrite::Fields { set, delete } => {
                let fields = match &self.model {
                    Some(StoredModel::Json(_)) => return Err(fields_of_a_string(op, key)),
                    Some(StoredModel::Hash(fields)) => Some(fields),
                    None => None,
                };
                // Deleting fields of a missing key writes nothing.
                let delete = if fields.is_some() { delete } else { Vec::new() };
                if set.is_empty() && delete.is_empty() {
                    return Ok(None);
                }
                // `HSET` then `HDEL`, as one update writes them.
                let mut now = fields.cloned().unwrap_or_default();
                now.extend(set.iter().cloned());
                for field in &delete {
                    now.remove(field);
                }
                if now.is_empty() && !self.hidden {
                    // The hash is gone (its expiry with it).
                    return Ok(Some(self.cleared()));
                }
                let pending = match &self.pending {
                    Pending::Fields { set, delete } => (set.clone(), delete.clone()),
                    Pending::Nothing | Pending::Json => (Vec::new(), Vec::new()),
                };
                let (mut sets, mut deletes) = pending;
                for (field, value) in set {
                    deletes.retain(|deleted| *deleted != field);
                    match sets.iter_mut().find(|(name, _)| *name == field) {
                        Some(slot) => slot.1 = value,
                        None => sets.push((field, value)),
                    }
                }
                for field in delete {
                    sets.retain(|(name, _)| *name != field);
                    if !deletes.contains(&field) {
                        deletes.push(field);
                    }
                }
                Ok(Some(Self {
                    model: Some(StoredModel::Hash(now)),
                    hidden: self.hidden,
                    cleared: self.cleared,
                    pending: Pending::Fields {
                        set: sets,
                        delete: deletes,
                    },
                }))
            }
            ModelWrite::Json(bytes) => Ok(Some(Self {
                model: Some(StoredModel::Json(bytes)),
                hidden: false,
                cleared: self.cleared,
                pending: Pending::Json,
            })),
            ModelWrite::Delete if self.model.is_none() => Ok(None),
            ModelWrite::Delete => Ok(Some(self.cleared())),
        }
    }

    /// No model, deleted since the read.
    fn cleared(&self) -> Self {
        Self {
            model: None,
            hidden: false,
            cleared: true,
            pending: Pending::Nothing,
        }
    }
}

/// What one caller's closure answered in the last pass of a combined
/// `update_model`: the layout after its write, or its own error.
pub type ModelStep = Option<Result<Option<ModelLayout>, StoreError>>;

/// An `update_model` closure as a member of a combined round (of `op` on
/// `key`): applies `f` to the model handed to it, records its own answer
/// in `own` (the layout after its write, `Keep` included, or its error:
/// the closure's as `Aborted`, a refused write) and returns the model to
/// pass on (`None`: unchanged).
pub fn model_step<'f, 'a: 'f>(
    (op, key): (&'static str, &'f str),
    f: &'f mut ModelFn<'a>,
    own: &'f mut ModelStep,
) -> impl FnMut(&HeldModel) -> Option<HeldModel> + Send + 'f {
    move |held| {
        let applied = f(held.model())
            .map_err(|source| StoreError::Aborted {
                op,
                key: key.to_owned(),
                source,
            })
            .and_then(|write| held.apply(write, op, key));
        match applied {
            Ok(Some(next)) => {
                *own = Some(Ok(next.layout()));
                Some(next)
            }
            Ok(None) => {
                *own = Some(Ok(held.layout()));
                None
            }
            Err(error) => {
                *own = Some(Err(error));
                None
            }
        }
    }
}

/// A caller's result of a combined `update_model`: its own step after the
/// batch's `outcome` (the attempt that committed). Its own error stands
/// whatever the batch did.
pub fn model_result(
    op: &'static str,
    key: &str,
    own: ModelStep,
    outcome: Result<u32, StoreError>,
) -> Result<ModelUpdated, StoreError> {
    crate::combine::member_result(op, key, own, outcome, |layout, attempts| ModelUpdated {
        layout,
        attempts,
    })
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
///   the key's TTL. A key of another type is `WrongType`. Concurrent calls
///   on one key from one store may run as one combined round
///   (`combine.rs`, [`HeldModel`]): each caller's closure sees the model as
///   the one before left it, and gets what it would have had one after
///   another, its own errors included.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A key as Redis holds it: a hash (raw fields) or a string, and
    /// whether it has an expiry.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Held {
        Hash(BTreeMap<Vec<u8>, Vec<u8>>),
        Str(Vec<u8>),
    }

    type Redis = Option<(Held, bool)>;

    /// `HSET` then `HDEL` (a hash emptied is deleted, its expiry with it).
    fn hset_hdel(key: &mut Redis, set: &[(String, Vec<u8>)], delete: &[String]) {
        let (mut fields, ttl) = match key.take() {
            Some((Held::Hash(fields), ttl)) => (fields, ttl),
            None => (BTreeMap::new(), false),
            Some(other) => panic!("field writes to {other:?}"),
        };
        for (field, value) in set {
            fields.insert(field.as_bytes().to_vec(), value.clone());
        }
        for field in delete {
            fields.remove(field.as_bytes());
        }
        *key = (!fields.is_empty()).then_some((Held::Hash(fields), ttl));
    }

    /// The commands of `write` as the adapters send them.
    fn run(key: &mut Redis, write: &ModelWrite) {
        match write {
            ModelWrite::Keep => {}
            ModelWrite::Fields { set, delete } => hset_hdel(key, set, delete),
            // `SET … KEEPTTL`.
            ModelWrite::Json(bytes) => {
                let ttl = key.as_ref().is_some_and(|(_, ttl)| *ttl);
                *key = Some((Held::Str(bytes.clone()), ttl));
            }
            ModelWrite::Delete => *key = None,
        }
    }

    /// One `update_model` of `write` on its own (today's rules).
    fn alone(key: &mut Redis, write: &ModelWrite) {
        match (write, &*key) {
            (ModelWrite::Fields { .. }, Some((Held::Str(_), _))) => {}
            (ModelWrite::Fields { set, .. }, None) => hset_hdel(key, set, &[]),
            _ => run(key, write),
        }
    }

    fn read(key: &Redis) -> HeldModel {
        match key {
            None => HeldModel::of_string(None),
            Some((Held::Hash(fields), _)) => HeldModel::of_hash(fields.clone()),
            Some((Held::Str(bytes), _)) => HeldModel::of_string(Some(bytes.clone())),
        }
    }

    fn fields(set: &[(&str, &str)], delete: &[&str]) -> ModelWrite {
        ModelWrite::Fields {
            set: set
                .iter()
                .map(|(field, value)| ((*field).to_owned(), value.as_bytes().to_vec()))
                .collect(),
            delete: delete.iter().map(|field| (*field).to_owned()).collect(),
        }
    }

    /// Every sequence of up to three updates, from every kind of key: the
    /// callers see what they would have seen one after another, and the
    /// round's writes leave the key (its expiry included) as they would.
    #[test]
    fn a_round_writes_what_the_updates_one_after_another_would() {
        let hash = |pairs: &[(&[u8], &[u8])]| {
            Held::Hash(
                pairs
                    .iter()
                    .map(|(field, value)| (field.to_vec(), value.to_vec()))
                    .collect(),
            )
        };
        let starts: Vec<Redis> = vec![
            None,
            Some((hash(&[(b"a", b"1"), (b"b", b"2")]), true)),
            Some((hash(&[(b"a", b"1"), (b"\xff", b"2")]), true)),
            Some((Held::Str(b"{}".to_vec()), true)),
        ];
        let writes = [
            ModelWrite::Keep,
            fields(&[("a", "9")], &[]),
            fields(&[], &["a"]),
            fields(&[], &["a", "b"]),
            fields(&[("c", "1")], &["a"]),
            fields(&[("a", "2")], &["a"]),
            ModelWrite::Json(b"{\"x\":1}".to_vec()),
            ModelWrite::Delete,
        ];
        let mut sequences: Vec<Vec<&ModelWrite>> = vec![Vec::new()];
        for _ in 0..3 {
            let longer: Vec<Vec<&ModelWrite>> = sequences
                .iter()
                .flat_map(|sequence| {
                    writes.iter().map(move |write| {
                        let mut longer = sequence.clone();
                        longer.push(write);
                        longer
                    })
                })
                .collect();
            sequences.extend(longer);
        }
        for start in &starts {
            for sequence in &sequences {
                let mut serial = start.clone();
                let mut held = read(start);
                let mut changed = false;
                for write in sequence {
                    assert_eq!(held.model(), read(&serial).model(), "{start:?} {sequence:?}");
                    let refused = matches!(
                        (write, &serial),
                        (ModelWrite::Fields { .. }, Some((Held::Str(_), _)))
                    );
                    alone(&mut serial, write);
                    match held.apply((*write).clone(), "update_model", "k") {
                        Ok(Some(next)) => {
                            held = next;
                            changed = true;
                        }
                        Ok(None) => {}
                        Err(error) => {
                            assert!(refused, "{error}");
                            assert_eq!(error.kind(), crate::ErrorKind::InvalidInput);
                        }
                    }
                    assert_eq!(held.layout(), read(&serial).layout(), "{start:?} {sequence:?}");
                }
                let mut combined = start.clone();
                let round = held.writes();
                for write in &round {
                    run(&mut combined, write);
                }
                assert_eq!(combined, serial, "{start:?} {sequence:?}: {round:?}");
                // A round that changed something writes (a `MULTI` with
                // commands), one that did not writes nothing.
                assert_eq!(!round.is_empty(), changed, "{start:?} {sequence:?}: {round:?}");
            }
        }
    }

    #[test]
    fn one_field_update_writes_its_fields_in_its_order() {
        let stored = HeldModel::of_hash([(b"a".to_vec(), b"1".to_vec())]);
        let write = fields(&[("z", "1"), ("b", "2")], &["a"]);
        let held = stored.apply(write.clone(), "update_model", "k").unwrap().unwrap();
        assert_eq!(held.writes(), [write]);
    }
}
