//! Writing: a model to hash fields, one value to its bytes.

use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct};

use super::FieldError;
use super::text::{format_f32, format_float};

/// One field value's bytes (`None`: no field). Scalars are written by
/// [`Scalar`]; a value that turns out to be compound is written as JSON.
pub(super) fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Option<Vec<u8>>, FieldError> {
    match value.serialize(Scalar) {
        Ok(bytes) => Ok(bytes),
        Err(Probe::Compound) => serde_json::to_vec(value)
            .map(Some)
            .map_err(|error| FieldError::new("JSON value", error.to_string())),
        Err(Probe::Failed(error)) => Err(error),
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

/// Serializes a scalar field value to its bytes; stops with
/// [`Probe::Compound`] at the first compound.
#[derive(Clone, Copy)]
pub(super) struct Scalar;

fn text(text: impl Into<String>) -> Result<Option<Vec<u8>>, Probe> {
    Ok(Some(text.into().into_bytes()))
}

macro_rules! decimal {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, value: $ty) -> Result<Self::Ok, Probe> {
            text(value.to_string())
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

impl ser::Serializer for Scalar {
    type Ok = Option<Vec<u8>>;
    type Error = Probe;
    type SerializeSeq = Impossible<Self::Ok, Probe>;
    type SerializeTuple = Impossible<Self::Ok, Probe>;
    type SerializeTupleStruct = Impossible<Self::Ok, Probe>;
    type SerializeTupleVariant = Impossible<Self::Ok, Probe>;
    type SerializeMap = Impossible<Self::Ok, Probe>;
    type SerializeStruct = Impossible<Self::Ok, Probe>;
    type SerializeStructVariant = Impossible<Self::Ok, Probe>;

    fn serialize_bool(self, value: bool) -> Result<Self::Ok, Probe> {
        text(if value { "True" } else { "False" })
    }

    decimal!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128
    );

    fn serialize_f32(self, value: f32) -> Result<Self::Ok, Probe> {
        text(format_f32(value))
    }

    fn serialize_f64(self, value: f64) -> Result<Self::Ok, Probe> {
        text(format_float(value))
    }

    fn serialize_char(self, value: char) -> Result<Self::Ok, Probe> {
        text(value.to_string())
    }

    fn serialize_str(self, value: &str) -> Result<Self::Ok, Probe> {
        text(value)
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<Self::Ok, Probe> {
        Ok(Some(value.to_vec()))
    }

    fn serialize_none(self) -> Result<Self::Ok, Probe> {
        Ok(None)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, Probe> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Self::Ok, Probe> {
        Ok(None)
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<Self::Ok, Probe> {
        Ok(None)
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Self::Ok, Probe> {
        text(variant)
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

/// Which fields a [`ModelSerializer`] writes (`None`: all).
pub(super) type Keep<'f> = Option<&'f (dyn Fn(&str) -> bool + 'f)>;

/// Serializes a whole model: a struct or a map of fields (those `keep`
/// accepts; the others are not serialized at all).
pub(super) struct ModelSerializer<'f> {
    pub(super) keep: Keep<'f>,
}

/// The fields written so far.
pub(super) struct Fields<'f> {
    fields: Vec<(String, Vec<u8>)>,
    /// The key of the map entry being written.
    key: Option<String>,
    keep: Keep<'f>,
}

impl Fields<'_> {
    fn kept(&self, name: &str) -> bool {
        self.keep.is_none_or(|keep| keep(name))
    }

    fn push<T: Serialize + ?Sized>(&mut self, name: String, value: &T) -> Result<(), FieldError> {
        if let Some(bytes) = encode_value(value).map_err(|error| error.in_field(&name))? {
            self.fields.push((name, bytes));
        }
        Ok(())
    }
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

impl<'f> ser::Serializer for ModelSerializer<'f> {
    type Ok = Vec<(String, Vec<u8>)>;
    type Error = FieldError;
    type SerializeSeq = Impossible<Self::Ok, FieldError>;
    type SerializeTuple = Impossible<Self::Ok, FieldError>;
    type SerializeTupleStruct = Impossible<Self::Ok, FieldError>;
    type SerializeTupleVariant = Impossible<Self::Ok, FieldError>;
    type SerializeMap = Fields<'f>;
    type SerializeStruct = Fields<'f>;
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

    fn serialize_map(self, len: Option<usize>) -> Result<Fields<'f>, FieldError> {
        Ok(Fields {
            fields: Vec::with_capacity(len.unwrap_or(8)),
            key: None,
            keep: self.keep,
        })
    }

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Fields<'f>, FieldError> {
        self.serialize_map(Some(len))
    }
}

impl SerializeStruct for Fields<'_> {
    type Ok = Vec<(String, Vec<u8>)>;
    type Error = FieldError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), FieldError> {
        if !self.kept(name) {
            return Ok(());
        }
        self.push(name.to_owned(), value)
    }

    fn end(self) -> Result<Self::Ok, FieldError> {
        Ok(self.fields)
    }
}

impl SerializeMap for Fields<'_> {
    type Ok = Vec<(String, Vec<u8>)>;
    type Error = FieldError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), FieldError> {
        let name = match key.serialize(Scalar) {
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
        self.push(name, value)
    }

    fn end(self) -> Result<Self::Ok, FieldError> {
        Ok(self.fields)
    }
}
