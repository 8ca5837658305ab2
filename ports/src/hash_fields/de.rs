//! Reading: hash fields to a model, one field's bytes to a value, leniently
//! (pydantic's lax mode).

use serde::de::value::{BorrowedStrDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Unexpected, Visitor};

use super::FieldError;
use super::text::{IntError, parse_bool, parse_float, parse_int, parse_u128};

impl de::Error for FieldError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::new("", msg.to_string())
    }

    // serde's own messages quote the data ("invalid type: string \"x\"");
    // these keep the shape and drop it.
    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::new(
            "",
            format!("invalid type: {}, expected {expected}", kind(&unexpected)),
        )
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::new(
            "",
            format!("invalid value: {}, expected {expected}", kind(&unexpected)),
        )
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Self::new(
            "enum variant",
            format!("unknown variant, expected one of {expected:?}"),
        )
    }

    fn missing_field(field: &'static str) -> Self {
        Self::missing().in_field(field)
    }
}

/// What kind of data serde did not expect, without the data.
fn kind(unexpected: &Unexpected<'_>) -> &'static str {
    match unexpected {
        Unexpected::Bool(_) => "boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "integer",
        Unexpected::Float(_) => "float",
        Unexpected::Char(_) => "character",
        Unexpected::Str(_) => "string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "unit",
        Unexpected::Option => "option",
        Unexpected::NewtypeStruct => "newtype struct",
        Unexpected::Seq => "sequence",
        Unexpected::Map => "map",
        Unexpected::Enum => "enum",
        Unexpected::UnitVariant => "unit variant",
        Unexpected::NewtypeVariant => "newtype variant",
        Unexpected::TupleVariant => "tuple variant",
        Unexpected::StructVariant => "struct variant",
        Unexpected::Other(_) => "other",
    }
}

/// A whole model: its fields as a map.
pub(super) struct ModelDeserializer<I> {
    fields: I,
}

impl<I> ModelDeserializer<I> {
    pub(super) fn new(fields: I) -> Self {
        Self { fields }
    }
}

impl<'de, I> de::Deserializer<'de> for ModelDeserializer<I>
where
    I: Iterator<Item = (&'de str, &'de [u8])>,
{
    type Error = FieldError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_map(Fields {
            fields: self.fields,
            current: None,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The fields of a hash, one map entry each.
struct Fields<'de, I> {
    fields: I,
    current: Option<(&'de str, &'de [u8])>,
}

impl<'de, I> MapAccess<'de> for Fields<'de, I>
where
    I: Iterator<Item = (&'de str, &'de [u8])>,
{
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, FieldError> {
        let Some((name, value)) = self.fields.next() else {
            return Ok(None);
        };
        self.current = Some((name, value));
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
            .map_err(|error: FieldError| error.in_field(name))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, FieldError> {
        let (name, value) = self
            .current
            .take()
            .ok_or_else(|| FieldError::new("field", "a value asked for before its field"))?;
        seed.deserialize(ValueDeserializer::new(value))
            .map_err(|error| error.in_field(name))
    }

    fn size_hint(&self) -> Option<usize> {
        match self.fields.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        }
    }
}

/// One field's bytes, read as the type the model asks for.
pub(super) struct ValueDeserializer<'de> {
    bytes: &'de [u8],
}

impl<'de> ValueDeserializer<'de> {
    pub(super) fn new(bytes: &'de [u8]) -> Self {
        Self { bytes }
    }

    /// The bytes as UTF-8 text.
    fn text(&self, expected: &'static str) -> Result<&'de str, FieldError> {
        std::str::from_utf8(self.bytes)
            .map_err(|_| FieldError::new(expected, "the stored bytes are not UTF-8 text"))
    }

    fn int(&self, expected: &'static str) -> Result<i128, FieldError> {
        parse_int(self.text(expected)?).map_err(|error| int_error(expected, error))
    }

    /// The bytes as JSON, read by `visit` (a serde_json deserializer call).
    fn json<T>(
        &self,
        expected: &'static str,
        visit: impl FnOnce(&mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>) -> serde_json::Result<T>,
    ) -> Result<T, FieldError> {
        let mut json = serde_json::Deserializer::from_slice(self.bytes);
        let value = visit(&mut json).map_err(|error| FieldError::json(expected, &error))?;
        json.end().map_err(|error| FieldError::json(expected, &error))?;
        Ok(value)
    }
}

fn int_error(expected: &'static str, error: IntError) -> FieldError {
    match error {
        IntError::NotAnInteger => FieldError::new(expected, "the text is not an integer"),
        IntError::OutOfRange => FieldError::new(expected, "the integer is out of range"),
    }
}

macro_rules! integers {
    ($($method:ident => $visit:ident: $ty:ty, $expected:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
            let value = self.int($expected)?;
            let value = <$ty>::try_from(value).map_err(|_| int_error($expected, IntError::OutOfRange))?;
            visitor.$visit(value).map_err(|error: FieldError| error.expecting($expected))
        })*
    };
}

macro_rules! json {
    ($($method:ident($($arg:ident: $ty:ty),*) => $expected:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, FieldError> {
            self.json($expected, |json| de::Deserializer::$method(json, $($arg,)* visitor))
        })*
    };
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = FieldError;

    /// Text when it is UTF-8 (what a flattened map or `serde_json::Value`
    /// gets), else bytes.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        match std::str::from_utf8(self.bytes) {
            Ok(text) => visitor.visit_borrowed_str(text),
            Err(_) => visitor.visit_borrowed_bytes(self.bytes),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        const EXPECTED: &str = "boolean (True/False)";
        let value = parse_bool(self.text(EXPECTED)?)
            .ok_or_else(|| FieldError::new(EXPECTED, "the text is not a boolean"))?;
        visitor
            .visit_bool(value)
            .map_err(|error: FieldError| error.expecting(EXPECTED))
    }

    integers! {
        deserialize_i8 => visit_i8: i8, "integer (i8)";
        deserialize_i16 => visit_i16: i16, "integer (i16)";
        deserialize_i32 => visit_i32: i32, "integer (i32)";
        deserialize_i64 => visit_i64: i64, "integer (i64)";
        deserialize_i128 => visit_i128: i128, "integer (i128)";
        deserialize_u8 => visit_u8: u8, "integer (u8)";
        deserialize_u16 => visit_u16: u16, "integer (u16)";
        deserialize_u32 => visit_u32: u32, "integer (u32)";
        deserialize_u64 => visit_u64: u64, "integer (u64)";
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        const EXPECTED: &str = "integer (u128)";
        let value = parse_u128(self.text(EXPECTED)?).map_err(|error| int_error(EXPECTED, error))?;
        visitor
            .visit_u128(value)
            .map_err(|error: FieldError| error.expecting(EXPECTED))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        const EXPECTED: &str = "float (f32)";
        let value = parse_float(self.text(EXPECTED)?)
            .ok_or_else(|| FieldError::new(EXPECTED, "the text is not a float"))?;
        // The nearest f32, as a cast rounds.
        #[allow(clippy::cast_possible_truncation)]
        visitor
            .visit_f32(value as f32)
            .map_err(|error: FieldError| error.expecting(EXPECTED))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        const EXPECTED: &str = "float (f64)";
        let value = parse_float(self.text(EXPECTED)?)
            .ok_or_else(|| FieldError::new(EXPECTED, "the text is not a float"))?;
        visitor
            .visit_f64(value)
            .map_err(|error: FieldError| error.expecting(EXPECTED))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        const EXPECTED: &str = "one character";
        let text = self.text(EXPECTED)?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor
                .visit_char(c)
                .map_err(|error: FieldError| error.expecting(EXPECTED)),
            _ => Err(FieldError::new(EXPECTED, "the text is not one character")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        const EXPECTED: &str = "UTF-8 text";
        visitor
            .visit_borrowed_str(self.text(EXPECTED)?)
            .map_err(|error: FieldError| error.expecting(EXPECTED))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor
            .visit_borrowed_bytes(self.bytes)
            .map_err(|error: FieldError| error.expecting("bytes"))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        self.deserialize_bytes(visitor)
    }

    /// A present field is `Some`: a missing one never gets here.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        visitor.visit_newtype_struct(self)
    }

    json! {
        deserialize_seq() => "JSON array";
        deserialize_tuple(len: usize) => "JSON array";
        deserialize_tuple_struct(name: &'static str, len: usize) => "JSON array";
        deserialize_map() => "JSON object";
        deserialize_struct(name: &'static str, fields: &'static [&'static str]) => "JSON object";
    }

    /// A variant name as it is (a unit variant, as Python's `str` enums
    /// store their value), or JSON (`"Name"`, `{"Name": …}`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        const EXPECTED: &str = "enum variant";
        let text = self.text(EXPECTED)?;
        if text.trim_start().starts_with(['{', '"']) {
            return self.json(EXPECTED, |json| {
                de::Deserializer::deserialize_enum(json, name, variants, visitor)
            });
        }
        let variant: StrDeserializer<'_, FieldError> = text.into_deserializer();
        visitor
            .visit_enum(variant)
            .map_err(|error: FieldError| error.expecting(EXPECTED))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_unit()
    }
}

/// A field that is not there: `None` for an `Option`, an error otherwise.
pub(super) struct MissingDeserializer;

impl<'de> de::Deserializer<'de> for MissingDeserializer {
    type Error = FieldError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, FieldError> {
        Err(FieldError::missing())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldError> {
        visitor.visit_none()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
