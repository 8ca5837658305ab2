//! A record's members straight from the caller's value, without first
//! turning the whole value into a `serde_json::Value` (a map built, then
//! taken apart): [`members`].
//!
//! Only a struct or a map with string keys (also inside a newtype or a
//! `Some`) takes the short way: each member's name and its value (as
//! `serde_json::to_value` makes it) are collected as they are serialized.
//! Any other shape gives up, and the caller makes the whole `Value` as
//! before, so what is not an object, or fails, fails exactly as it did.

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::Value;

/// The members of `value` if it serializes as a struct or a map with string
/// keys, in the order it serializes them (a name may come twice: the last
/// one wins, as in the object `serde_json` would build); `None` for any
/// other shape or a failure (then `serde_json::to_value` says what it is).
pub(super) fn members<T: Serialize + ?Sized>(value: &T) -> Option<Vec<(String, Value)>> {
    value.serialize(Members).ok()
}

/// Why the short way gave up (the caller takes the long one).
#[derive(Debug)]
pub(super) struct GiveUp;

impl std::fmt::Display for GiveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a struct or map with string keys")
    }
}

impl std::error::Error for GiveUp {}

impl ser::Error for GiveUp {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        GiveUp
    }
}

type Out = Vec<(String, Value)>;

/// The top level: a struct, a map, or a newtype or `Some` of one.
struct Members;

/// Gives up on every shape but those [`Members`] takes.
macro_rules! give_up {
    ($ok:ty; $($method:ident($($arg:ty),*)),* $(,)?) => {
        $(
            fn $method(self, $(_: $arg),*) -> Result<$ok, GiveUp> {
                Err(GiveUp)
            }
        )*
    };
}

impl ser::Serializer for Members {
    type Ok = Out;
    type Error = GiveUp;
    type SerializeSeq = Impossible<Out, GiveUp>;
    type SerializeTuple = Impossible<Out, GiveUp>;
    type SerializeTupleStruct = Impossible<Out, GiveUp>;
    type SerializeTupleVariant = Impossible<Out, GiveUp>;
    type SerializeMap = Collect;
    type SerializeStruct = Collect;
    type SerializeStructVariant = Impossible<Out, GiveUp>;

    fn serialize_map(self, len: Option<usize>) -> Result<Collect, GiveUp> {
        Ok(Collect::new(len.unwrap_or(0)))
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Collect, GiveUp> {
        Ok(Collect::new(len))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Out, GiveUp> {
        value.serialize(self)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Out, GiveUp> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Out, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, GiveUp> {
        Err(GiveUp)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, GiveUp> {
        Err(GiveUp)
    }

    give_up! {
        Out;
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }
}

/// The members of a struct or map, as they come.
struct Collect {
    members: Out,
    /// A map's key, until its value comes.
    key: Option<String>,
}

impl Collect {
    fn new(len: usize) -> Self {
        Self {
            members: Vec::with_capacity(len),
            key: None,
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, name: String, value: &T) -> Result<(), GiveUp> {
        let value = serde_json::to_value(value).map_err(|_| GiveUp)?;
        self.members.push((name, value));
        Ok(())
    }
}

impl ser::SerializeStruct for Collect {
    type Ok = Out;
    type Error = GiveUp;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), GiveUp> {
        self.push(name.to_owned(), value)
    }

    fn end(self) -> Result<Out, GiveUp> {
        Ok(self.members)
    }
}

impl ser::SerializeMap for Collect {
    type Ok = Out;
    type Error = GiveUp;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), GiveUp> {
        self.key = Some(key.serialize(StrKey)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), GiveUp> {
        let name = self.key.take().ok_or(GiveUp)?;
        self.push(name, value)
    }

    fn end(self) -> Result<Out, GiveUp> {
        Ok(self.members)
    }
}

/// A map key that is a string (a key of another kind gives up: `serde_json`
/// makes some of them strings, which the long way does).
struct StrKey;

impl ser::Serializer for StrKey {
    type Ok = String;
    type Error = GiveUp;
    type SerializeSeq = Impossible<String, GiveUp>;
    type SerializeTuple = Impossible<String, GiveUp>;
    type SerializeTupleStruct = Impossible<String, GiveUp>;
    type SerializeTupleVariant = Impossible<String, GiveUp>;
    type SerializeMap = Impossible<String, GiveUp>;
    type SerializeStruct = Impossible<String, GiveUp>;
    type SerializeStructVariant = Impossible<String, GiveUp>;

    fn serialize_str(self, value: &str) -> Result<String, GiveUp> {
        Ok(value.to_owned())
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(self, _value: &T) -> Result<String, GiveUp> {
        Err(GiveUp)
    }

    give_up! {
        String;
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, GiveUp> {
        Err(GiveUp)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<String, GiveUp> {
        Err(GiveUp)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, GiveUp> {
        Err(GiveUp)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, GiveUp> {
        Err(GiveUp)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, GiveUp> {
        Err(GiveUp)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, GiveUp> {
        Err(GiveUp)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, GiveUp> {
        Err(GiveUp)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, GiveUp> {
        Err(GiveUp)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, GiveUp> {
        Err(GiveUp)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, GiveUp> {
        Err(GiveUp)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde_json::{Map, json};

    use super::*;

    /// The members the short way collects, as the object they make (the
    /// last of a name winning), or `None` if it gave up.
    fn object<T: Serialize + ?Sized>(value: &T) -> Option<Map<String, Value>> {
        members(value).map(|members| members.into_iter().collect())
    }

    #[derive(Serialize)]
    struct Chat {
        topic: &'static str,
        step: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        lang: Option<&'static str>,
        #[serde(flatten)]
        extra: BTreeMap<&'static str, u8>,
    }

    #[derive(Serialize)]
    struct Wrapped(Chat);

    #[derive(Serialize)]
    #[serde(tag = "kind")]
    enum Tagged {
        Chat { step: u32 },
    }

    #[derive(Serialize)]
    enum Mode {
        Idle(u32),
        Off,
    }

    fn chat() -> Chat {
        Chat {
            topic: "billing",
            step: 3,
            lang: None,
            extra: BTreeMap::from([("x", 1)]),
        }
    }

    #[test]
    fn a_struct_or_string_keyed_map_gives_the_members_of_its_object() {
        let as_object = |value: Value| value.as_object().cloned();
        assert_eq!(object(&chat()), as_object(serde_json::to_value(chat()).unwrap()));
        assert_eq!(
            object(&Wrapped(chat())),
            as_object(serde_json::to_value(Wrapped(chat())).unwrap())
        );
        assert_eq!(object(&Some(chat())).map(|map| map.len()), Some(3));
        let value = json!({"b": [1, 2], "a": {"c": null}});
        assert_eq!(object(&value), as_object(value.clone()));
        let map = HashMap::from([("k", 1.5)]);
        assert_eq!(object(&map), as_object(serde_json::to_value(&map).unwrap()));
        assert_eq!(
            object(&Tagged::Chat { step: 1 }),
            as_object(serde_json::to_value(Tagged::Chat { step: 1 }).unwrap())
        );
    }

    #[test]
    fn any_other_shape_gives_up() {
        assert!(members(&1).is_none());
        assert!(members(&"text").is_none());
        assert!(members(&[1, 2]).is_none());
        assert!(members(&None::<Chat>).is_none());
        assert!(members(&()).is_none());
        assert!(members(&Mode::Idle(1)).is_none());
        assert!(members(&Mode::Off).is_none());
        // serde_json makes these keys strings: the long way does it.
        assert!(members(&BTreeMap::from([(1, 2)])).is_none());
        assert!(members(&BTreeMap::from([(true, 2)])).is_none());
        // A value that fails to serialize gives up: the long way fails.
        assert!(members(&BTreeMap::from([("k", BTreeMap::from([(vec![1], 2)]))])).is_none());
    }
}
