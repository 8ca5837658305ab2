//! Writing: a model to hash fields, one value to its bytes; and comparing:
//! which fields of a model differ from the bytes a hash holds.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct};

use super::FieldError;
use super::same::json_is;
use super::text::{format_f32, format_float};

/// One field value's bytes (`None`: no field). Scalars are written by
/// [`Scalar`]; a value that turns out to be compound is written as JSON.
pub(super) fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Option<Vec<u8>>, FieldError> {
    match value.serialize(Scalar(Owned)) {
        Ok(bytes) => Ok(bytes),
        Err(Probe::Compound) => serde_json::to_vec(value)
            .map(Some)
            .map_err(|error| FieldError::new("JSON value", error.to_string())),
        Err(Probe::Failed(error)) => Err(error),
    }
}

/// Whether `value` encodes to `old` (`None`: to no field), found without
/// writing its bytes out where that can be done (see `same.rs`); `false`
/// also when it cannot be encoded at all.
pub(super) fn value_is<T: Serialize + ?Sized>(value: &T, old: Option<&[u8]>) -> bool {
    match value.serialize(Scalar(Is(old))) {
        Ok(same) => same,
        Err(Probe::Compound) => old.is_some_and(|old| json_is(value, old)),
        Err(Probe::Failed(_)) => false,
    }
}

/// Why [`Scalar`] stopped.
#[derive(Debug)]
pub(super) enum Probe {
    /// The value is a struct, map, sequence, tuple or data-carrying enum
    /// variant: written as JSON text instead.
    Compound,
    /// It cannot be written.
    Failed(FieldError),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Compound => f.write_str("a compound value"),
            Self::Failed(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for Probe {}

impl ser::Error for Probe {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::Failed(FieldError::new("", msg.to_string()))
    }
}

/// Where [`Scalar`] puts a field value's bytes: the one place of the byte
/// rules, whether the bytes are kept ([`Owned`]) or compared ([`Is`]).
pub(super) trait Out: Copy {
    type Ok;
    /// The value's bytes are `bytes`.
    fn bytes(self, bytes: &[u8]) -> Self::Ok;
    /// The value's bytes, already owned.
    fn owned(self, bytes: Vec<u8>) -> Self::Ok {
        self.bytes(&bytes)
    }
    /// The value is stored as no field.
    fn nothing(self) -> Self::Ok;
}

/// Keeps the bytes.
#[derive(Clone, Copy)]
pub(super) struct Owned;

impl Out for Owned {
    type Ok = Option<Vec<u8>>;

    fn bytes(self, bytes: &[u8]) -> Self::Ok {
        Some(bytes.to_vec())
    }

    fn owned(self, bytes: Vec<u8>) -> Self::Ok {
        Some(bytes)
    }

    fn nothing(self) -> Self::Ok {
        None
    }
}

/// Compares the bytes with a field's (`None`: no field).
#[derive(Clone, Copy)]
pub(super) struct Is<'o>(Option<&'o [u8]>);

impl Out for Is<'_> {
    type Ok = bool;

    fn bytes(self, bytes: &[u8]) -> bool {
        self.0 == Some(bytes)
    }

    fn nothing(self) -> bool {
        self.0.is_none()
    }
}

/// Serializes a scalar field value to its bytes, put to `O`; stops with
/// [`Probe::Compound`] at the first compound.
#[derive(Clone, Copy)]
pub(super) struct Scalar<O>(O);

/// A decimal integer's text, written on the stack (`u128::MAX` and
/// `i128::MIN` take 40 bytes).
struct Decimal {
    text: [u8; 40],
    len: usize,
}

impl std::fmt::Write for Decimal {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        self.text
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn decimal<O: Out>(out: O, value: impl std::fmt::Display) -> Result<O::Ok, Probe> {
    let mut text = Decimal {
        text: [0; 40],
        len: 0,
    };
    match write!(text, "{value}") {
        Ok(()) => Ok(out.bytes(&text.text[..text.len])),
        // Longer than any integer: written the slow way.
        Err(_) => Ok(out.owned(value.to_string().into_bytes())),
    }
}

macro_rules! decimal {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, value: $ty) -> Result<Self::Ok, Probe> {
            decimal(self.0, value)
        })*
    };
}

macro_rules! compound {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $out:ty),* $(,)?) => {
        $(fn $method(self, $(_: $ty),*) -> Result<$out, Probe> {
            Err(Probe::Compound)
        })*
    };
}

impl<O: Out> ser::Serializer for Scalar<O> {
    type Ok = O::Ok;
    type Error = Probe;
    type SerializeSeq = Impossible<Self::Ok, Probe>;
    type SerializeTuple = Impossible<Self::Ok, Probe>;
    type SerializeTupleStruct = Impossible<Self::Ok, Probe>;
    type SerializeTupleVariant = Impossible<Self::Ok, Probe>;
    type SerializeMap = Impossible<Self::Ok, Probe>;
    type SerializeStruct = Impossible<Self::Ok, Probe>;
    type SerializeStructVariant = Impossible<Self::Ok, Probe>;

    fn serialize_bool(self, value: bool) -> Result<Self::Ok, Probe> {
        Ok(self.0.bytes(if value { b"True" } else { b"False" }))
    }

    decimal!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128
    );

    fn serialize_f32(self, value: f32) -> Result<Self::Ok, Probe> {
        Ok(self.0.owned(format_f32(value).into_bytes()))
    }

    fn serialize_f64(self, value: f64) -> Result<Self::Ok, Probe> {
        Ok(self.0.owned(format_float(value).into_bytes()))
    }

    fn serialize_char(self, value: char) -> Result<Self::Ok, Probe> {
        Ok(self.0.bytes(value.encode_utf8(&mut [0; 4]).as_bytes()))
    }

    fn serialize_str(self, value: &str) -> Result<Self::Ok, Probe> {
        Ok(self.0.bytes(value.as_bytes()))
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<Self::Ok, Probe> {
        Ok(self.0.bytes(value))
    }

    fn serialize_none(self) -> Result<Self::Ok, Probe> {
        Ok(self.0.nothing())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, Probe> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Self::Ok, Probe> {
        Ok(self.0.nothing())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<Self::Ok, Probe> {
        Ok(self.0.nothing())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Self::Ok, Probe> {
        Ok(self.0.bytes(variant.as_bytes()))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Probe> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Probe> {
        Err(Probe::Compound)
    }

    compound!(
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq,
        serialize_tuple(len: usize) -> Self::SerializeTuple,
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
            -> Self::SerializeTupleVariant,
        serialize_map(len: Option<usize>) -> Self::SerializeMap,
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct,
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
            -> Self::SerializeStructVariant,
    );
}

/// What a [`ModelSerializer`] does with each field of the model.
pub(super) trait FieldSink {
    /// What the model comes to.
    type Ok;
    /// Field `name` holds `value`.
    fn field<T: Serialize + ?Sized>(&mut self, name: Cow<'static, str>, value: &T) -> Result<(), FieldError>;
    /// The model will have about `fields` fields.
    fn expect(&mut self, _fields: usize) {}
    /// The model is done.
    fn end(self) -> Self::Ok;
}

/// Which fields an [`Encode`] writes (`None`: all).
pub(super) type Keep<'f> = Option<&'f (dyn Fn(&str) -> bool + 'f)>;

/// Encodes the fields (those `keep` accepts; the others are not
/// serialized at all).
pub(super) struct Encode<'f> {
    fields: Vec<(String, Vec<u8>)>,
    keep: Keep<'f>,
}

impl<'f> Encode<'f> {
    pub(super) fn new(keep: Keep<'f>) -> Self {
        Self {
            fields: Vec::new(),
            keep,
        }
    }
}

impl FieldSink for Encode<'_> {
    type Ok = Vec<(String, Vec<u8>)>;

    fn expect(&mut self, fields: usize) {
        self.fields.reserve(fields);
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: Cow<'static, str>, value: &T) -> Result<(), FieldError> {
        if self.keep.is_some_and(|keep| !keep(&name)) {
            return Ok(());
        }
        if let Some(bytes) = encode_value(value).map_err(|error| error.in_field(&name))? {
            self.fields.push((name.into_owned(), bytes));
        }
        Ok(())
    }

    fn end(self) -> Self::Ok {
        self.fields
    }
}

/// Serializes a whole model, a struct or a map of fields, handing each
/// field to `S`.
pub(super) struct ModelSerializer<S> {
    pub(super) sink: S,
}

/// A model being serialized.
pub(super) struct Fields<S> {
    sink: S,
    /// The key of the map entry being written.
    key: Option<String>,
}

impl ser::Error for FieldError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::new("", msg.to_string())
    }
}

fn not_a_model(found: &str) -> FieldError {
    FieldError::new(
        "struct",
        format!(
            "a synced model in the hash layout serializes as a struct or a map of fields, not as {found}"
        ),
    )
}

macro_rules! not_a_model {
    ($($method:ident($($ty:ty),*) -> $out:ty: $found:literal),* $(,)?) => {
        $(fn $method(self, $(_: $ty),*) -> Result<$out, FieldError> {
            Err(not_a_model($found))
        })*
    };
}

impl<S: FieldSink> ser::Serializer for ModelSerializer<S> {
    type Ok = S::Ok;
    type Error = FieldError;
    type SerializeSeq = Impossible<Self::Ok, FieldError>;
    type SerializeTuple = Impossible<Self::Ok, FieldError>;
    type SerializeTupleStruct = Impossible<Self::Ok, FieldError>;
    type SerializeTupleVariant = Impossible<Self::Ok, FieldError>;
    type SerializeMap = Fields<S>;
    type SerializeStruct = Fields<S>;
    type SerializeStructVariant = Impossible<Self::Ok, FieldError>;

    not_a_model!(
        serialize_bool(bool) -> Self::Ok: "a boolean",
        serialize_i8(i8) -> Self::Ok: "an integer",
        serialize_i16(i16) -> Self::Ok: "an integer",
        serialize_i32(i32) -> Self::Ok: "an integer",
        serialize_i64(i64) -> Self::Ok: "an integer",
        serialize_u8(u8) -> Self::Ok: "an integer",
        serialize_u16(u16) -> Self::Ok: "an integer",
        serialize_u32(u32) -> Self::Ok: "an integer",
        serialize_u64(u64) -> Self::Ok: "an integer",
        serialize_f32(f32) -> Self::Ok: "a float",
        serialize_f64(f64) -> Self::Ok: "a float",
        serialize_char(char) -> Self::Ok: "a character",
        serialize_str(&str) -> Self::Ok: "a string",
        serialize_bytes(&[u8]) -> Self::Ok: "bytes",
        serialize_none() -> Self::Ok: "None",
        serialize_unit() -> Self::Ok: "()",
        serialize_unit_struct(&'static str) -> Self::Ok: "a unit struct",
        serialize_unit_variant(&'static str, u32, &'static str) -> Self::Ok: "an enum",
        serialize_seq(Option<usize>) -> Self::SerializeSeq: "a sequence",
        serialize_tuple(usize) -> Self::SerializeTuple: "a tuple",
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct: "a tuple struct",
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant: "an enum",
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant: "an enum",
    );

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, FieldError> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Self::Ok, FieldError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, FieldError> {
        Err(not_a_model("an enum"))
    }

    fn serialize_map(mut self, len: Option<usize>) -> Result<Fields<S>, FieldError> {
        self.sink.expect(len.unwrap_or(8));
        Ok(Fields {
            sink: self.sink,
            key: None,
        })
    }

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Fields<S>, FieldError> {
        self.serialize_map(Some(len))
    }
}

impl<S: FieldSink> SerializeStruct for Fields<S> {
    type Ok = S::Ok;
    type Error = FieldError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), FieldError> {
        self.sink.field(Cow::Borrowed(name), value)
    }

    fn end(self) -> Result<Self::Ok, FieldError> {
        Ok(self.sink.end())
    }
}

impl<S: FieldSink> SerializeMap for Fields<S> {
    type Ok = S::Ok;
    type Error = FieldError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), FieldError> {
        let name = match key.serialize(Scalar(Owned)) {
            Ok(Some(bytes)) => String::from_utf8(bytes).ok(),
            _ => None,
        };
        match name {
            Some(name) => {
                self.key = Some(name);
                Ok(())
            }
            None => Err(FieldError::new(
                "field name",
                "a field name must be text (or a number)",
            )),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FieldError> {
        let name = self
            .key
            .take()
            .ok_or_else(|| FieldError::new("field name", "a value without a name"))?;
        self.sink.field(Cow::Owned(name), value)
    }

    fn end(self) -> Result<Self::Ok, FieldError> {
        Ok(self.sink.end())
    }
}
