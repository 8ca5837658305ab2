//! A synced model in each layout: decoding what a key holds, encoding a
//! model, the writes between two encodings, and one field replaced.

use std::collections::BTreeMap;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Serialize};
use statehouse_domain::{Key, ModelLayout, SyncedModel};
use statehouse_ports::hash_fields::{self, FieldError, field_key};
use statehouse_ports::{JsonError, ModelWrite, StoreError, StoredModel, decode_value, encode};

/// The model stored under `key`, decoded as `T`. A hash lacking fields
/// (partly written by others: an `HSET` of one field on a missing key) reads
/// them from `fresh()`, the model's defaults; the next write stores them.
pub(super) fn decode<T: Serialize + DeserializeOwned>(
    op: &'static str,
    key: &str,
    stored: &StoredModel,
    fresh: impl FnOnce() -> T,
) -> Result<T, StoreError> {
    let fields = match stored {
        StoredModel::Hash(fields) => fields,
        StoredModel::Json(bytes) => return statehouse_ports::decode(op, key, bytes),
    };
    let stored_fields = || {
        fields
            .iter()
            .map(|(field, value)| (field.as_str(), value.as_slice()))
    };
    match hash_fields::from_fields(stored_fields()) {
        Err(error) if error.is_missing() => {
            let defaults =
                hash_fields::to_fields(&fresh()).map_err(|error| error.into_serialization(op, key))?;
            let missing = defaults
                .iter()
                .filter(|(field, _)| !fields.contains_key(field))
                .map(|(field, value)| (field.as_str(), value.as_slice()));
            hash_fields::from_fields(stored_fields().chain(missing))
        }
        decoded => decoded,
    }
    .map_err(|error| error.into_deserialization(op, key))
}

/// Field `field` of the model stored under `key`, as `V` (`None`: no such
/// field).
pub(super) fn field<V: DeserializeOwned>(
    op: &'static str,
    key: &str,
    stored: &StoredModel,
    field: &str,
) -> Result<Option<V>, StoreError> {
    match stored {
        StoredModel::Hash(fields) => fields
            .get(field)
            .map(|bytes| {
                hash_fields::decode_value::<V>(bytes)
                    .map_err(|error| error.in_field(field).into_deserialization(op, key))
            })
            .transpose(),
        StoredModel::Json(bytes) => {
            let document: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
                StoreError::deserialization(op, key, "JSON object", JsonError::without_data(&error))
            })?;
            match document {
                serde_json::Value::Object(mut fields) => fields
                    .remove(field)
                    .map(|value| decode_value(op, field_key(key, field), value))
                    .transpose(),
                _ => Err(StoreError::deserialization(
                    op,
                    key,
                    "JSON object",
                    "the document is not a JSON object",
                )),
            }
        }
    }
}

/// A model's hash fields, `(field, bytes)`.
pub(super) type HashFields = Vec<(String, Vec<u8>)>;

/// The hash a model was decoded from, as the model encodes it: what a
/// change is compared with, to write only the fields it changed.
pub(super) struct Before<'s> {
    /// The stored fields whose bytes are the bytes this codec wrote for
    /// them (`canonical`), by name.
    verified: Vec<(&'s str, &'s [u8])>,
    /// The other stored fields of the model, encoded again from the decoded
    /// model.
    encoded: HashFields,
}

impl<'s> Before<'s> {
    /// `value`, just decoded from the hash `fields`, as it encodes, as far
    /// as it is stored (fields read from the defaults are not). A field
    /// whose stored bytes are bytes this codec wrote for that field
    /// (`canonical`, what the handle remembers) encodes to those bytes
    /// again (the codec round-trips), so it is taken as stored instead of
    /// being encoded once more: a handle that modifies its model repeatedly
    /// encodes only the fields others changed.
    pub(super) fn of<T: Serialize>(
        key: &str,
        fields: &'s BTreeMap<String, Vec<u8>>,
        value: &T,
        canonical: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, StoreError> {
        // By name, as both maps are ordered.
        let verified: Vec<(&str, &[u8])> = fields
            .iter()
            .filter(|(name, bytes)| canonical.get(name.as_str()) == Some(bytes))
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
            .collect();
        let is_verified = |name: &str| verified.binary_search_by(|(field, _)| (*field).cmp(name)).is_ok();
        let mut encoded = hash_fields::to_fields_only(value, |name| !is_verified(name))
            .map_err(|error| error.into_serialization("update", key))?;
        // What is stored: a field read from the defaults (missing) is
        // written by the next change.
        encoded.retain(|(name, _)| fields.contains_key(name));
        Ok(Self { verified, encoded })
    }

    /// The fields, `(name, bytes)`.
    fn fields(&self) -> Vec<(&str, &[u8])> {
        let encoded = self
            .encoded
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice()));
        self.verified.iter().copied().chain(encoded).collect()
    }
}

/// What writes `value` over the stored model, in `layout`: the fields that
/// differ from `before` (the stored hash, as the model encodes it), all
/// fields of a new hash, the whole document of the JSON layout; and the
/// hash fields as encoded, for the handle to remember.
pub(super) fn write<T: Serialize>(
    key: &str,
    layout: ModelLayout,
    value: &T,
    before: Option<Before<'_>>,
) -> Result<(ModelWrite, Option<HashFields>), StoreError> {
    let encoding = |error: FieldError| error.into_serialization("update", key);
    Ok(match (layout, before) {
        (ModelLayout::Hash, Some(before)) => {
            let write = hash_fields::changes(&before.fields(), value).map_err(encoding)?;
            let mut remember = before.encoded;
            if let ModelWrite::Fields { set, .. } = &write {
                remember.extend(set.iter().cloned());
            }
            (write, Some(remember))
        }
        (ModelLayout::Hash, None) => {
            let fields = hash_fields::to_fields(value).map_err(encoding)?;
            let write = ModelWrite::Fields {
                set: fields.clone(),
                delete: Vec::new(),
            };
            (write, Some(fields))
        }
        (ModelLayout::Json, _) => (ModelWrite::Json(encode("update", key, value)?), None),
    })
}

/// The names of `T`'s fields when it is a plain struct (`None` for a map,
/// or a struct with `#[serde(flatten)]`, which take any name), read from
/// its `Deserialize` without data.
fn field_names<'de, T: Deserialize<'de>>() -> Option<&'static [&'static str]> {
    /// Answers `deserialize_struct` by keeping the field list.
    struct Names(Option<&'static [&'static str]>);

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Self
        }
    }

    impl<'de> de::Deserializer<'de> for &mut Names {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            visitor: V,
        ) -> Result<V::Value, Stop> {
            visitor.visit_newtype_struct(self)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut names = Names(None);
    let _ = T::deserialize(&mut names);
    names.0
}

/// Refuses a field the model does not have.
fn known<T: SyncedModel + DeserializeOwned>(key: &Key, field: &str) -> Result<(), StoreError> {
    match field_names::<T>() {
        Some(names) if !names.contains(&field) => Err(StoreError::invalid_input(
            "set",
            field_key(key.as_str(), field),
            format!("{} has no field `{field}`", T::type_name()),
        )),
        _ => Ok(()),
    }
}

/// A value the field does not take: `InvalidInput` naming key and field.
fn refused(key: &Key, field: &str, error: &dyn std::fmt::Display) -> StoreError {
    StoreError::invalid_input(
        "set",
        field_key(key.as_str(), field),
        format!("the value does not fit: {error}"),
    )
}

fn field_error(key: &Key, field: &str, error: &FieldError) -> StoreError {
    let what = match error.expected() {
        "" => error.reason().to_owned(),
        expected => format!("expected {expected}: {}", error.reason()),
    };
    refused(key, field, &what)
}

/// A model with one field replaced ([`with_hash_field`]).
pub(super) struct Changed<T> {
    /// The model.
    pub(super) model: T,
    /// The bytes to write for the field (`None`: `HDEL`).
    pub(super) written: Option<Vec<u8>>,
    /// All its hash fields, as encoded.
    pub(super) encoded: HashFields,
}

/// `value` with hash field `field` set to `new` (`None`: deleted), and the
/// bytes to write for it, as the model encodes the result.
pub(super) fn with_hash_field<T, V>(
    key: &Key,
    value: &T,
    field: &str,
    new: &V,
) -> Result<Changed<T>, StoreError>
where
    T: SyncedModel + Serialize + DeserializeOwned,
    V: Serialize + ?Sized,
{
    known::<T>(key, field)?;
    let bytes = hash_fields::encode_value(new).map_err(|error| field_error(key, field, &error))?;
    let mut fields =
        hash_fields::to_fields(value).map_err(|error| error.into_serialization("set", key.as_str()))?;
    fields.retain(|(name, _)| name != field);
    if let Some(bytes) = &bytes {
        fields.push((field.to_owned(), bytes.clone()));
    }
    let changed: T = hash_fields::from_fields(
        fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice())),
    )
    .map_err(|error| field_error(key, field, &error))?;
    // What the model writes for the field (a lenient read may have made
    // `"3.0"` the integer 3, written `3`).
    let encoded =
        hash_fields::to_fields(&changed).map_err(|error| error.into_serialization("set", key.as_str()))?;
    let written = encoded
        .iter()
        .find(|(name, _)| name == field)
        .map(|(_, bytes)| bytes.clone());
    if bytes.is_none() && written.is_some() {
        return Err(refused(key, field, &"the field cannot be None"));
    }
    Ok(Changed {
        model: changed,
        written,
        encoded,
    })
}

/// `value` with field `field` set to `new`, in `layout` (the JSON layout
/// sets the document's JSON field).
pub(super) fn with_field<T, V>(
    layout: ModelLayout,
    key: &Key,
    value: &T,
    field: &str,
    new: &V,
) -> Result<T, StoreError>
where
    T: SyncedModel + Serialize + DeserializeOwned,
    V: Serialize + ?Sized,
{
    match layout {
        ModelLayout::Hash => with_hash_field(key, value, field, new).map(|changed| changed.model),
        ModelLayout::Json => {
            known::<T>(key, field)?;
            let new = serde_json::to_value(new).map_err(|error| refused(key, field, &error))?;
            let mut document = serde_json::to_value(value)
                .map_err(|error| StoreError::serialization("set", key.as_str(), error))?;
            match &mut document {
                serde_json::Value::Object(fields) => {
                    fields.insert(field.to_owned(), new);
                }
                _ => return Err(refused(key, field, &"the model is not a JSON object")),
            }
            serde_json::from_value(document)
                .map_err(|error| refused(key, field, &JsonError::without_data(&error)))
        }
    }
}
