//! A whole record decoded as the caller's type straight from its
//! [`Fields`], without first gathering them into a `serde_json::Map`:
//! [`Record`], a deserializer that behaves exactly as
//! `Value::Object(map)` of the same fields does.
//!
//! Only the common requests take the short way: a map or a struct (the
//! fields handed out one by one), `Option` (`Some`) and newtypes (the
//! record itself again), and keys asked for as strings or identifiers.
//! Every other request (an enum, a number, a sequence, …, or a key asked
//! for as a number, a bool or an enum) is answered by `serde_json` itself,
//! from the map or a one-field map built for it then, so no behaviour is
//! written twice. The unit tests compare both on every shape.

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Error, Map, Value};
use statehouse_ports::{Fields, StoreError};

/// The fields of a record, every one decoded (no `Err` left: the caller
/// reports the first one before decoding), as a deserializer.
pub(super) struct Record {
    fields: Fields,
}

impl Record {
    /// A record of `fields`; `Err` is the first field (in name order) that
    /// did not decode, as a read of the whole record reports it.
    pub(super) fn of(mut fields: Fields) -> Result<Self, StoreError> {
        let failed = fields
            .iter()
            .find(|(_, value)| value.is_err())
            .map(|(name, _)| name.clone());
        if let Some(Err(error)) = failed.and_then(|name| fields.remove(&name)) {
            return Err(error);
        }
        Ok(Self { fields })
    }

    /// The record as `serde_json` sees it: the object of its fields.
    fn into_value(self) -> Value {
        Value::Object(
            self.fields
                .into_iter()
                .filter_map(|(name, value)| Some((name, value.ok()?)))
                .collect(),
        )
    }

    /// Hands the fields one by one to `visitor`, which must take them all
    /// (as `serde_json` requires of an object).
    fn visit<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.fields.len();
        let mut fields = Fields::into_iter(self.fields);
        let mut access = FieldAccess {
            fields: &mut fields,
            value: None,
        };
        let map = visitor.visit_map(&mut access)?;
        if fields.len() == 0 {
            Ok(map)
        } else {
            Err(de::Error::invalid_length(len, &"fewer elements in map"))
        }
    }
}

/// `Option` is `Some` (neither an object nor a key is ever `null`), and a
/// newtype reads the deserializer itself, as `serde_json` does for both.
macro_rules! never_null_and_newtypes_are_itself {
    () => {
        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_some(self)
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_newtype_struct(self)
        }
    };
}

/// Answers by `serde_json`'s own `Value::Object` of the record.
macro_rules! by_value {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Error> {
                de::Deserializer::$method(self.into_value(), $($arg,)* visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Record {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.visit(visitor)
    }

    never_null_and_newtypes_are_itself!();

    by_value! {
        deserialize_bool(),
        deserialize_i8(),
        deserialize_i16(),
        deserialize_i32(),
        deserialize_i64(),
        deserialize_i128(),
        deserialize_u8(),
        deserialize_u16(),
        deserialize_u32(),
        deserialize_u64(),
        deserialize_u128(),
        deserialize_f32(),
        deserialize_f64(),
        deserialize_char(),
        deserialize_str(),
        deserialize_string(),
        deserialize_bytes(),
        deserialize_byte_buf(),
        deserialize_unit(),
        deserialize_unit_struct(name: &'static str),
        deserialize_seq(),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(),
        deserialize_ignored_any(),
    }
}

/// The fields handed out one by one: a key, then its value.
struct FieldAccess<'a> {
    fields: &'a mut <Fields as IntoIterator>::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for FieldAccess<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        // `Record::of` left no `Err`: a field is skipped only if one were.
        for (name, value) in self.fields.by_ref() {
            if let Ok(value) = value {
                self.value = Some(value);
                return seed.deserialize(FieldKey(name)).map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(de::Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len())
    }
}

/// A field's name as a map key. As a string (what a struct's fields, a
/// `String` key and `deserialize_any` ask for) it is handed over as is; as
/// a number, a bool or an enum, `serde_json`'s own key deserializer reads
/// it (lent by a map of that one key), as it would in an object.
struct FieldKey(String);

impl FieldKey {
    /// `visitor` given what `serde_json`'s key deserializer answers to `ask`.
    fn by_json<'de, V: Visitor<'de>>(self, ask: Ask, visitor: V) -> Result<V::Value, Error> {
        let mut map = Map::new();
        map.insert(self.0, Value::Null);
        de::Deserializer::deserialize_map(Value::Object(map), FirstKey(KeySeed { ask, visitor }))
    }
}

/// What a key was asked for, when `serde_json` answers it.
#[derive(Clone, Copy)]
enum Ask {
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Enum(&'static str, &'static [&'static str]),
}

/// The request `ask` with `visitor`, made of whatever deserializer a map
/// lends for its key.
struct KeySeed<V> {
    ask: Ask,
    visitor: V,
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for KeySeed<V> {
    type Value = V::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, key: D) -> Result<V::Value, D::Error> {
        let visitor = self.visitor;
        match self.ask {
            Ask::Bool => key.deserialize_bool(visitor),
            Ask::I8 => key.deserialize_i8(visitor),
            Ask::I16 => key.deserialize_i16(visitor),
            Ask::I32 => key.deserialize_i32(visitor),
            Ask::I64 => key.deserialize_i64(visitor),
            Ask::I128 => key.deserialize_i128(visitor),
            Ask::U8 => key.deserialize_u8(visitor),
            Ask::U16 => key.deserialize_u16(visitor),
            Ask::U32 => key.deserialize_u32(visitor),
            Ask::U64 => key.deserialize_u64(visitor),
            Ask::U128 => key.deserialize_u128(visitor),
            Ask::F32 => key.deserialize_f32(visitor),
            Ask::F64 => key.deserialize_f64(visitor),
            Ask::Enum(name, variants) => key.deserialize_enum(name, variants, visitor),
        }
    }
}

/// Reads the first key of a map with the seed (the one-key map of
/// [`FieldKey::by_json`]; its value is left, as the map has no other key).
struct FirstKey<S>(S);

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for FirstKey<S> {
    type Value = S::Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a map key")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<S::Value, A::Error> {
        map.next_key_seed(self.0)?
            .ok_or_else(|| de::Error::custom("a map key is missing"))
    }
}

/// Asks `serde_json`'s key deserializer.
macro_rules! by_json_key {
    ($($method:ident => $ask:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.by_json(Ask::$ask, visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for FieldKey {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.0)
    }

    never_null_and_newtypes_are_itself!();

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.by_json(Ask::Enum(name, variants), visitor)
    }

    by_json_key! {
        deserialize_bool => Bool,
        deserialize_i8 => I8,
        deserialize_i16 => I16,
        deserialize_i32 => I32,
        deserialize_i64 => I64,
        deserialize_i128 => I128,
        deserialize_u8 => U8,
        deserialize_u16 => U16,
        deserialize_u32 => U32,
        deserialize_u64 => U64,
        deserialize_u128 => U128,
        deserialize_f32 => F32,
        deserialize_f64 => F64,
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct
        map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::fmt::Debug;

    use serde::Deserialize;
    use serde::de::DeserializeOwned;
    use serde_json::json;
    use statehouse_ports::StoreError;

    use super::*;

    fn fields(value: &Value) -> Fields {
        value
            .as_object()
            .expect("an object")
            .iter()
            .map(|(name, value)| (name.clone(), Ok(value.clone())))
            .collect()
    }

    /// Decodes `object` as `T` both ways: from the record's fields, and by
    /// `serde_json` from `Value::Object`; both succeed with the same value
    /// or both fail. Returns the record's answer.
    fn same<T: DeserializeOwned + PartialEq + Debug>(object: Value) -> Result<T, Error> {
        let by_record = T::deserialize(Record::of(fields(&object)).expect("no bad field"));
        let by_value = T::deserialize(object);
        match (&by_record, &by_value) {
            (Ok(record), Ok(value)) => assert_eq!(record, value),
            (Err(_), Err(_)) => {}
            _ => panic!("record {by_record:?} but value {by_value:?}"),
        }
        by_record
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Chat {
        topic: String,
        step: u32,
        #[serde(default)]
        lang: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        step: u32,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Wrapped(Chat);

    #[derive(Debug, PartialEq, Deserialize)]
    struct Flat {
        step: u32,
        #[serde(flatten)]
        rest: BTreeMap<String, Value>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Mode {
        Chat { step: u32 },
        Idle(u32),
        Off,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(untagged)]
    enum Either {
        Chat(Chat),
        Other(BTreeMap<String, Value>),
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "kind")]
    enum Tagged {
        Chat { step: u32 },
    }

    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
    enum Slot {
        Morning,
        Evening,
    }

    #[test]
    fn a_record_decodes_as_its_object_does() {
        let chat = json!({"topic": "billing", "step": 3, "lang": "en"});
        assert_eq!(
            same::<Chat>(chat.clone()).unwrap(),
            Chat {
                topic: "billing".into(),
                step: 3,
                lang: Some("en".into())
            }
        );
        assert_eq!(same::<HashMap<String, Value>>(chat.clone()).unwrap().len(), 3);
        assert_eq!(same::<Value>(chat.clone()).unwrap(), chat);
        assert_eq!(same::<Map<String, Value>>(chat.clone()).unwrap().len(), 3);
        assert!(same::<Option<Chat>>(chat.clone()).unwrap().is_some());
        assert_eq!(same::<Wrapped>(chat.clone()).unwrap().0.step, 3);
        assert_eq!(same::<Flat>(chat.clone()).unwrap().rest.len(), 2);
        assert!(matches!(same::<Either>(chat.clone()).unwrap(), Either::Chat(_)));
        assert!(matches!(
            same::<Either>(json!({"a": 1})).unwrap(),
            Either::Other(_)
        ));
        same::<Strict>(chat.clone()).unwrap_err();
        same::<Strict>(json!({"step": 1})).unwrap();
        same::<Tagged>(json!({"kind": "Chat", "step": 2})).unwrap();
        same::<serde::de::IgnoredAny>(chat.clone()).unwrap();
    }

    #[test]
    fn a_record_is_no_scalar_nor_sequence() {
        let chat = json!({"topic": "billing", "step": 3});
        same::<u32>(chat.clone()).unwrap_err();
        same::<String>(chat.clone()).unwrap_err();
        same::<bool>(chat.clone()).unwrap_err();
        same::<()>(chat.clone()).unwrap_err();
        same::<Vec<Value>>(chat.clone()).unwrap_err();
        same::<(u32, u32)>(chat.clone()).unwrap_err();
        same::<Vec<u8>>(chat).unwrap_err();
    }

    #[test]
    fn a_record_of_one_field_is_an_enum_variant_as_its_object_is() {
        assert_eq!(
            same::<Mode>(json!({"Chat": {"step": 1}})).unwrap(),
            Mode::Chat { step: 1 }
        );
        assert_eq!(same::<Mode>(json!({"Idle": 4})).unwrap(), Mode::Idle(4));
        assert_eq!(same::<Mode>(json!({"Off": null})).unwrap(), Mode::Off);
        same::<Mode>(json!({"Idle": 4, "Off": null})).unwrap_err();
        same::<Mode>(json!({"Nope": 1})).unwrap_err();
    }

    #[test]
    fn field_names_read_as_numbers_bools_and_enums_as_object_keys_do() {
        let numbers = json!({"1": "a", "-2": "b", "30": "c"});
        assert_eq!(same::<BTreeMap<i64, String>>(numbers.clone()).unwrap().len(), 3);
        same::<BTreeMap<u8, String>>(numbers.clone()).unwrap_err();
        assert_eq!(same::<HashMap<i128, String>>(numbers.clone()).unwrap()[&-2], "b");
        same::<BTreeMap<u32, String>>(json!({"1 ": "a"})).unwrap_err();
        same::<BTreeMap<u32, String>>(json!({"x": "a"})).unwrap_err();
        assert_eq!(same::<BTreeMap<String, String>>(numbers).unwrap().len(), 3);
        assert_eq!(
            same::<HashMap<bool, u8>>(json!({"true": 1, "false": 0})).unwrap()[&true],
            1
        );
        same::<HashMap<bool, u8>>(json!({"yes": 1})).unwrap_err();
        assert_eq!(
            same::<BTreeMap<Slot, u8>>(json!({"Morning": 1, "Evening": 2})).unwrap()[&Slot::Evening],
            2
        );
        same::<BTreeMap<Slot, u8>>(json!({"Noon": 1})).unwrap_err();
        assert_eq!(
            same::<BTreeMap<Option<String>, u8>>(json!({"a": 1})).unwrap()[&Some("a".into())],
            1
        );
        assert_eq!(same::<BTreeMap<char, u8>>(json!({"a": 1})).unwrap()[&'a'], 1);
    }

    #[test]
    fn the_first_field_that_did_not_decode_fails_the_record() {
        let bad = |name: &str| StoreError::invalid_input("get", name.to_owned(), "bad");
        let mut fields = fields(&json!({"a": 1, "d": 4}));
        fields.insert("c".into(), Err(bad("c")));
        fields.insert("b".into(), Err(bad("b")));
        let Err(error) = Record::of(fields) else {
            panic!("a bad field decoded");
        };
        assert_eq!(error.key(), "b");
    }
}
