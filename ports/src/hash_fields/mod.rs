//! The field codec of synced models in the hash layout: a serde struct to
//! the `(field, bytes)` pairs of a Redis hash and back, writing what
//! Python's pydantic-state (through redis-py) writes and reading like
//! pydantic's lax mode.
//!
//! # The byte rules
//!
//! Writing ([`to_fields`], [`encode_value`]), one hash field per struct
//! field:
//!
//! | Rust value | bytes | what redis-py sends for the Python value |
//! |---|---|---|
//! | `String`, `&str`, `char`, a unit enum variant | the UTF-8 text as it is | `str`: the same |
//! | integers | decimal (`-3`, `18446744073709551615`) | `int`: `repr`, the same |
//! | `f64`, `f32` | Python's `repr` (`0.25`, `3.0`, `1e+20`, `1e-05`, `inf`, `-inf`, `nan`) | `float`: `repr`, the same |
//! | `bool` | `True` / `False` | refused by redis-py; pydantic reads both back |
//! | `None`, `()` | no field (`HDEL`) | refused by redis-py |
//! | bytes (`serde_bytes`) | as they are | `bytes`: the same |
//! | structs, maps, sequences, tuples, data-carrying enum variants | compact JSON text (serde_json) | refused by redis-py; pydantic reads it as JSON |
//!
//! `Some(x)` is written as `x`; a newtype is written as what it wraps.
//! The model itself must serialize as a struct or a map (`#[serde(flatten)]`
//! maps included): anything else is an error.
//!
//! Reading ([`from_fields`], [`decode_value`]) asks each field for the
//! type the model wants and parses its text leniently, as pydantic's lax
//! mode does (pydantic-state validates each field that way):
//!
//! - text: the stored UTF-8 as it is (`"3"` stays `"3"`);
//! - integers: decimal with optional sign, surrounding whitespace and `_`
//!   between digits (`" +1_000 "`), or a float text with no fraction
//!   (`"3.0"`, `"1e3"`); out of range is an error;
//! - floats: what Python's `float()` accepts (`"0.25"`, `"1e+20"`, `"3"`,
//!   `"inf"`, `"-Infinity"`, `"nan"`, `"1_0.5"`);
//! - booleans: `True`/`False` and, in any case, `true`/`false`, `1`/`0`,
//!   `yes`/`no`, `on`/`off`, `t`/`f`, `y`/`n`;
//! - `Option`: a missing field is `None`, a present one is read as the
//!   inner type;
//! - structs, maps, sequences, tuples: JSON text; enums: a variant name,
//!   or JSON.
//!
//! A field that does not parse fails with a [`FieldError`] naming the
//! field and the type expected, never the stored text; fields the model
//! does not know are ignored. (With `#[serde(flatten)]`, serde reads every
//! field through `deserialize_any`, which yields text: keep flattened
//! models to text fields, or use the JSON layout.)

mod changes;
mod de;
mod same;
mod ser;
mod text;

use std::fmt;

use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};

use crate::{JsonError, ModelWrite, StoreError};

pub use text::format_float;

/// The hash fields of `model`, `(field, bytes)` in the order serde writes
/// them (a struct's field order); fields whose value is `None` are left
/// out. A later field of the same name (a flattened map's) wins.
///
/// ```
/// use serde::Serialize;
/// use statehouse_ports::hash_fields::to_fields;
///
/// #[derive(Serialize)]
/// struct Order { id_: String, total: f64, paid: bool, note: Option<String>, items: Vec<u32> }
///
/// let fields = to_fields(&Order { id_: "7".into(), total: 1e20, paid: true, note: None, items: vec![1, 2] })?;
/// let text: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (f.as_str(), std::str::from_utf8(v).unwrap())).collect();
/// assert_eq!(text, [("id_", "7"), ("total", "1e+20"), ("paid", "True"), ("items", "[1,2]")]);
/// # Ok::<(), statehouse_ports::hash_fields::FieldError>(())
/// ```
pub fn to_fields<T: Serialize + ?Sized>(model: &T) -> Result<Vec<(String, Vec<u8>)>, FieldError> {
    let mut fields = model.serialize(ser::ModelSerializer {
        sink: ser::Encode::new(None),
    })?;
    dedup_last_wins(&mut fields, |(name, _)| name);
    Ok(fields)
}

/// [`to_fields`] of the fields `keep` accepts only; the others are not
/// serialized at all (what a caller that knows most fields' bytes already
/// saves).
///
/// ```
/// use statehouse_ports::hash_fields::to_fields_only;
///
/// #[derive(serde::Serialize)]
/// struct Order { id_: String, total: f64, items: Vec<u32> }
///
/// let order = Order { id_: "7".into(), total: 2.5, items: vec![1] };
/// let fields = to_fields_only(&order, |field| field != "items")?;
/// assert_eq!(fields, [("id_".to_owned(), b"7".to_vec()), ("total".to_owned(), b"2.5".to_vec())]);
/// # Ok::<(), statehouse_ports::hash_fields::FieldError>(())
/// ```
pub fn to_fields_only<T: Serialize + ?Sized>(
    model: &T,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>, FieldError> {
    let mut fields = model.serialize(ser::ModelSerializer {
        sink: ser::Encode::new(Some(&keep)),
    })?;
    dedup_last_wins(&mut fields, |(name, _)| name);
    Ok(fields)
}

/// The writes that turn a hash holding `old` (fields as [`to_fields`]
/// encodes them) into `model`'s fields: the fields whose bytes differ or
/// that `old` lacks (set), and those of `old` that the model no longer
/// has (deleted); [`ModelWrite::Keep`] when nothing differs. The same as
/// [`ModelWrite::changes`] of `old` and [`to_fields`]`(model)`, but each
/// field is compared with its old bytes while it is serialized, so a
/// field that did not change is neither encoded nor copied (a string in
/// JSON text that needs no escaping is compared as it is).
///
/// ```
/// use statehouse_ports::ModelWrite;
/// use statehouse_ports::hash_fields::changes;
///
/// #[derive(serde::Serialize)]
/// struct Order { id_: String, total: f64, note: Option<String>, items: Vec<String> }
///
/// let old: [(&str, &[u8]); 4] = [("id_", b"7"), ("total", b"2.5"), ("note", b"gift"), ("items", br#"["a"]"#)];
/// let order = Order { id_: "7".into(), total: 3.0, note: None, items: vec!["a".into()] };
/// assert_eq!(
///     changes(&old, &order)?,
///     ModelWrite::Fields { set: vec![("total".into(), b"3.0".to_vec())], delete: vec!["note".into()] },
/// );
/// let same = Order { total: 2.5, note: Some("gift".into()), ..order };
/// assert_eq!(changes(&old, &same)?, ModelWrite::Keep);
/// # Ok::<(), statehouse_ports::hash_fields::FieldError>(())
/// ```
pub fn changes<T: Serialize + ?Sized>(old: &[(&str, &[u8])], model: &T) -> Result<ModelWrite, FieldError> {
    model.serialize(ser::ModelSerializer {
        sink: changes::Diff::new(old),
    })
}

/// Keeps the last of fields of the same name, as a later `HSET` field wins
/// (a flattened map may repeat a struct field).
fn dedup_last_wins<F>(fields: &mut Vec<F>, name: impl Fn(&F) -> &str) {
    let repeated = |at: usize, fields: &[F]| {
        fields[at + 1..]
            .iter()
            .any(|field| name(field) == name(&fields[at]))
    };
    // A struct's field names are distinct: the common case costs a scan of
    // the (short) names, without allocating.
    if fields.len() <= 64 {
        if (0..fields.len()).any(|at| repeated(at, fields)) {
            let keep: Vec<bool> = (0..fields.len()).map(|at| !repeated(at, fields)).collect();
            let mut keep = keep.into_iter();
            fields.retain(|_| keep.next().unwrap_or(true));
        }
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(fields.len());
    let mut keep: Vec<bool> = fields
        .iter()
        .rev()
        .map(|field| seen.insert(name(field)))
        .collect();
    keep.reverse();
    let mut keep = keep.into_iter();
    fields.retain(|_| keep.next().unwrap_or(true));
}

/// The bytes of one field value, or `None` when it is stored as no field
/// (`None`, `()`). See the module's byte rules.
///
/// ```
/// use statehouse_ports::hash_fields::encode_value;
///
/// assert_eq!(encode_value(&0.25)?, Some(b"0.25".to_vec()));
/// assert_eq!(encode_value(&f64::NEG_INFINITY)?, Some(b"-inf".to_vec()));
/// assert_eq!(encode_value(&false)?, Some(b"False".to_vec()));
/// assert_eq!(encode_value(&None::<u8>)?, None);
/// # Ok::<(), statehouse_ports::hash_fields::FieldError>(())
/// ```
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Option<Vec<u8>>, FieldError> {
    ser::encode_value(value)
}

/// Reads a model from the fields of its hash (fields whose names are not
/// UTF-8 are the caller's to skip); see the module's reading rules. The
/// error names the field and the type expected.
///
/// ```
/// use serde::Deserialize;
/// use statehouse_ports::hash_fields::from_fields;
///
/// #[derive(Debug, PartialEq, Deserialize)]
/// struct Order { id_: String, total: f64, count: u32, paid: bool, note: Option<String> }
///
/// let stored: [(&str, &[u8]); 5] =
///     [("id_", b"7"), ("total", b"1e+20"), ("count", b"3"), ("paid", b"True"), ("extra", b"x")];
/// let order: Order = from_fields(stored)?;
/// assert_eq!(order, Order { id_: "7".into(), total: 1e20, count: 3, paid: true, note: None });
///
/// let bad: [(&str, &[u8]); 4] = [("id_", b"7"), ("total", b"1"), ("count", b"lots"), ("paid", b"1")];
/// let error = from_fields::<Order>(bad).unwrap_err();
/// assert_eq!((error.field(), error.expected()), (Some("count"), "integer (u32)"));
/// assert!(!error.to_string().contains("lots"));
/// # Ok::<(), statehouse_ports::hash_fields::FieldError>(())
/// ```
pub fn from_fields<'a, T: Deserialize<'a>>(
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<T, FieldError> {
    T::deserialize(de::ModelDeserializer::new(fields.into_iter()))
}

/// Reads one field value as `T`, leniently; see the module's reading rules.
///
/// ```
/// use statehouse_ports::hash_fields::decode_value;
///
/// assert_eq!(decode_value::<i64>(b" 1_000 ")?, 1000);
/// assert_eq!(decode_value::<i64>(b"3.0")?, 3);
/// assert_eq!(decode_value::<f64>(b"-Infinity")?, f64::NEG_INFINITY);
/// assert_eq!(decode_value::<bool>(b"True")?, true);
/// assert_eq!(decode_value::<String>(b"3")?, "3");
/// assert_eq!(decode_value::<Vec<String>>(br#"["a", "b"]"#)?, ["a", "b"]);
/// assert!(decode_value::<u8>(b"300").is_err());
/// # Ok::<(), statehouse_ports::hash_fields::FieldError>(())
/// ```
pub fn decode_value<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, FieldError> {
    T::deserialize(de::ValueDeserializer::new(bytes))
}

/// Reads a missing field as `T`: `None` for an `Option`, an error for
/// anything else.
///
/// ```
/// use statehouse_ports::hash_fields::decode_missing;
///
/// assert_eq!(decode_missing::<Option<u8>>()?, None);
/// assert!(decode_missing::<u8>().is_err());
/// # Ok::<(), statehouse_ports::hash_fields::FieldError>(())
/// ```
pub fn decode_missing<T: DeserializeOwned>() -> Result<T, FieldError> {
    T::deserialize(de::MissingDeserializer)
}

/// A field that could not be written or read: which field (when known),
/// the type expected, and why, never the stored text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    field: Option<String>,
    expected: &'static str,
    reason: String,
    /// The field is not there at all.
    missing: bool,
}

impl FieldError {
    /// An error expecting `expected`, for `reason`.
    pub(crate) fn new(expected: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field: None,
            expected,
            reason: reason.into(),
            missing: false,
        }
    }

    /// A field that is missing (and not an `Option`).
    pub(crate) fn missing() -> Self {
        Self {
            missing: true,
            ..Self::new("a value", "the field is missing")
        }
    }

    /// Whether the field is missing (rather than holding text that does
    /// not parse).
    pub fn is_missing(&self) -> bool {
        self.missing
    }

    /// A JSON text that did not decode, without its data.
    fn json(expected: &'static str, error: &serde_json::Error) -> Self {
        Self::new(expected, JsonError::without_data(error).to_string())
    }

    /// The field it is about, if known.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The type the field should have held (`"integer (i64)"`, …).
    pub fn expected(&self) -> &'static str {
        self.expected
    }

    /// Why it failed (never the stored text).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The same error, about `field` (unless it names one already).
    #[must_use]
    pub fn in_field(mut self, field: &str) -> Self {
        if self.field.is_none() {
            self.field = Some(field.to_owned());
        }
        self
    }

    /// The same error, expecting `expected` unless it says what already.
    #[must_use]
    pub(crate) fn expecting(mut self, expected: &'static str) -> Self {
        if self.expected.is_empty() {
            self.expected = expected;
        }
        self
    }

    /// [`StoreError::Deserialization`] of `op` naming `key` and the field
    /// (`"{key} field {field}"`) and the type expected.
    pub fn into_deserialization(self, op: &'static str, key: &str) -> StoreError {
        let key = match &self.field {
            Some(field) => field_key(key, field),
            None => key.to_owned(),
        };
        let expected = if self.expected.is_empty() {
            "synced model"
        } else {
            self.expected
        };
        StoreError::deserialization(op, key, expected, self)
    }

    /// [`StoreError::Serialization`] of `op` naming `key` and the field.
    pub fn into_serialization(self, op: &'static str, key: &str) -> StoreError {
        let key = match &self.field {
            Some(field) => field_key(key, field),
            None => key.to_owned(),
        };
        StoreError::serialization(op, key, self)
    }
}

/// How errors name one field of the model at `key`: `"{key} field {field}"`.
pub fn field_key(key: &str, field: &str) -> String {
    format!("{key} field {field}")
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod changes_tests;
#[cfg(test)]
mod tests;
