//! Comparing while serializing: whether a value's compact JSON text (what
//! `serde_json::to_vec` writes) is exactly some stored bytes, found
//! without writing the text out. A string that needs no escaping is
//! compared with one slice comparison instead of going through serde_json's
//! byte-by-byte escape loop; everything else (numbers, escaped strings,
//! `null`) is written by serde_json itself into a writer that compares
//! instead of storing, so the bytes compared are serde_json's own.
//!
//! The answer is exact one way only: `true` means the text is the stored
//! bytes. `false` means they differ, or the comparer could not tell (a map
//! with keys that are not strings, serde_json's private raw-value and
//! number types): the caller then encodes the value and compares the
//! encoding, which it needs anyway to write a changed field.

use std::io;

use serde::Serialize;
use serde::ser::{self, Impossible};

/// Whether `value`'s compact JSON text is `old` (see the module).
pub(super) fn json_is<T: Serialize + ?Sized>(value: &T, old: &[u8]) -> bool {
    let mut against = Against { old, at: 0 };
    value.serialize(Json { to: &mut against }).is_ok() && against.at == old.len()
}

/// Whether `text` is written in JSON as it is, between quotes: no `"`, no
/// `\` and no control character (serde_json escapes those and nothing
/// else). Eight bytes at a time: a word has a byte below 0x20, or equal
/// to `"` or `\`, exactly when the classic zero-byte tests find one.
fn plain(text: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
    let escaped = |word: u64| {
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
        control | has_zero(word ^ (ONES * u64::from(b'"'))) | has_zero(word ^ (ONES * u64::from(b'\\')))
    };
    let mut words = text.chunks_exact(8);
    let mut found = 0;
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        found |= escaped(u64::from_le_bytes(bytes));
    }
    found == 0
        && !words
            .remainder()
            .iter()
            .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
}

/// The stored text, and how far it matched.
struct Against<'o> {
    old: &'o [u8],
    at: usize,
}

/// The text written so far differs from the stored one (or the comparer
/// cannot tell): the comparison stops.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the text differs")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self
    }
}

impl Against<'_> {
    /// `byte` comes next in the stored text (punctuation: compared as a
    /// byte, not through a slice comparison).
    fn byte(&mut self, byte: u8) -> Result<(), Stop> {
        if self.old.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Stop)
        }
    }

    /// `bytes` come next in the stored text.
    fn put(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        match self.old.get(self.at..self.at + bytes.len()) {
            Some(stored) if stored == bytes => {
                self.at += bytes.len();
                Ok(())
            }
            _ => Err(Stop),
        }
    }

    /// `value` as serde_json writes it comes next.
    fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        serde_json::to_writer(&mut *self, value).map_err(|_| Stop)
    }

    /// The JSON string of `text` comes next.
    fn string(&mut self, text: &str) -> Result<(), Stop> {
        let bytes = text.as_bytes();
        if !plain(bytes) {
            return self.json(text);
        }
        let end = self.at + bytes.len() + 1;
        match (
            self.old.get(self.at),
            self.old.get(self.at + 1..end),
            self.old.get(end),
        ) {
            (Some(b'"'), Some(stored), Some(b'"')) if stored == bytes => {
                self.at = end + 1;
                Ok(())
            }
            _ => Err(Stop),
        }
    }
}

impl io::Write for Against<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.put(bytes)
            .map(|()| bytes.len())
            .map_err(|Stop| io::ErrorKind::InvalidData.into())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serializes as serde_json's compact form does, comparing as it goes.
struct Json<'a, 'o> {
    to: &'a mut Against<'o>,
}

/// A compound being compared: whether its first element is still to come.
struct Compound<'a, 'o> {
    to: &'a mut Against<'o>,
    first: bool,
    /// What closes it: `]`, `}`, or `]}` / `}}` for an enum variant's.
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn separate(&mut self) -> Result<(), Stop> {
        if self.first {
            self.first = false;
            Ok(())
        } else {
            self.to.byte(b',')
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.separate()?;
        value.serialize(Json { to: &mut *self.to })
    }

    fn entry<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), Stop> {
        self.separate()?;
        self.to.string(name)?;
        self.to.byte(b':')?;
        value.serialize(Json { to: &mut *self.to })
    }

    fn end(self) -> Result<(), Stop> {
        self.to.put(self.close)
    }
}

impl<'a, 'o> Json<'a, 'o> {
    fn open(self, open: u8, close: &'static [u8]) -> Result<Compound<'a, 'o>, Stop> {
        self.to.byte(open)?;
        Ok(Compound {
            to: self.to,
            first: true,
            close,
        })
    }

    /// `{"variant":` then a compound closed by `close` and `}`.
    fn variant(self, variant: &str, open: u8, close: &'static [u8]) -> Result<Compound<'a, 'o>, Stop> {
        self.to.byte(b'{')?;
        self.to.string(variant)?;
        self.to.byte(b':')?;
        self.open(open, close)
    }
}

macro_rules! by_serde_json {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, value: $ty) -> Result<(), Stop> {
            self.to.json(&value)
        })*
    };
}

impl<'a, 'o> ser::Serializer for Json<'a, 'o> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Compound<'a, 'o>;
    type SerializeTuple = Compound<'a, 'o>;
    type SerializeTupleStruct = Compound<'a, 'o>;
    type SerializeTupleVariant = Compound<'a, 'o>;
    type SerializeMap = Compound<'a, 'o>;
    type SerializeStruct = Compound<'a, 'o>;
    type SerializeStructVariant = Compound<'a, 'o>;

    by_serde_json!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_bytes: &[u8],
    );

    fn serialize_str(self, value: &str) -> Result<(), Stop> {
        self.to.string(value)
    }

    fn serialize_none(self) -> Result<(), Stop> {
        self.to.put(b"null")
    }

    /// A `Display` value's text (a timestamp, say), compared piece by piece
    /// as it is formatted; a piece that needs escaping stops the comparison.
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<(), Stop> {
        /// Compares each plain piece; refuses the others.
        struct Pieces<'a, 'o>(&'a mut Against<'o>);
        impl std::fmt::Write for Pieces<'_, '_> {
            fn write_str(&mut self, piece: &str) -> std::fmt::Result {
                if plain(piece.as_bytes()) {
                    self.0.put(piece.as_bytes()).map_err(|Stop| std::fmt::Error)
                } else {
                    Err(std::fmt::Error)
                }
            }
        }
        self.to.byte(b'"')?;
        std::fmt::write(&mut Pieces(&mut *self.to), format_args!("{value}")).map_err(|_| Stop)?;
        self.to.byte(b'"')
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Stop> {
        self.to.put(b"null")
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Stop> {
        self.to.put(b"null")
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Stop> {
        self.to.string(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.to.byte(b'{')?;
        self.to.string(variant)?;
        self.to.byte(b':')?;
        value.serialize(Json { to: &mut *self.to })?;
        self.to.byte(b'}')
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a, 'o>, Stop> {
        self.open(b'[', b"]")
    }

    fn serialize_tuple(self, _: usize) -> Result<Compound<'a, 'o>, Stop> {
        self.open(b'[', b"]")
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a, 'o>, Stop> {
        self.open(b'[', b"]")
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'o>, Stop> {
        self.variant(variant, b'[', b"]}")
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a, 'o>, Stop> {
        self.open(b'{', b"}")
    }

    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Compound<'a, 'o>, Stop> {
        // serde_json's raw values and arbitrary-precision numbers are
        // structs of these names, written otherwise: not compared here.
        if name.starts_with("$serde_json::private::") {
            return Err(Stop);
        }
        self.open(b'{', b"}")
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'o>, Stop> {
        self.variant(variant, b'{', b"}}")
    }
}

/// The sequences' element (`$method(value)`) and the structs' field
/// (`$method(name, value)`) go to `Compound::element` / `Compound::entry`.
macro_rules! compounds {
    ($($trait:ident: $method:ident($($name:ident)?) -> $to:ident),* $(,)?) => {
        $(impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Stop;

            fn $method<T: Serialize + ?Sized>(&mut self, $($name: &'static str,)? value: &T) -> Result<(), Stop> {
                self.$to($($name,)? value)
            }

            fn end(self) -> Result<(), Stop> {
                Compound::end(self)
            }
        })*
    };
}

compounds!(
    SerializeSeq: serialize_element() -> element,
    SerializeTuple: serialize_element() -> element,
    SerializeTupleStruct: serialize_field() -> element,
    SerializeTupleVariant: serialize_field() -> element,
    SerializeStruct: serialize_field(name) -> entry,
    SerializeStructVariant: serialize_field(name) -> entry,
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Stop;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        self.separate()?;
        key.serialize(Key { to: &mut *self.to })?;
        self.to.byte(b':')
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        value.serialize(Json { to: &mut *self.to })
    }

    fn end(self) -> Result<(), Stop> {
        Compound::end(self)
    }
}

/// A map key: text (a string, a unit variant, through newtypes) is
/// compared; any other key (serde_json writes numbers and booleans as
/// strings, refuses the rest) stops the comparison, for the caller to
/// encode.
struct Key<'a, 'o> {
    to: &'a mut Against<'o>,
}

fn other_key<T>() -> Result<T, Stop> {
    Err(Stop)
}

macro_rules! other_keys {
    ($($method:ident($($ty:ty),*) -> $out:ty),* $(,)?) => {
        $(fn $method(self, $(_: $ty),*) -> Result<$out, Stop> {
            other_key()
        })*
    };
}

impl ser::Serializer for Key<'_, '_> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Impossible<(), Stop>;
    type SerializeTuple = Impossible<(), Stop>;
    type SerializeTupleStruct = Impossible<(), Stop>;
    type SerializeTupleVariant = Impossible<(), Stop>;
    type SerializeMap = Impossible<(), Stop>;
    type SerializeStruct = Impossible<(), Stop>;
    type SerializeStructVariant = Impossible<(), Stop>;

    fn serialize_str(self, value: &str) -> Result<(), Stop> {
        self.to.string(value)
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Stop> {
        self.to.string(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }

    other_keys!(
        serialize_bool(bool) -> (), serialize_i8(i8) -> (), serialize_i16(i16) -> (),
        serialize_i32(i32) -> (), serialize_i64(i64) -> (), serialize_i128(i128) -> (),
        serialize_u8(u8) -> (), serialize_u16(u16) -> (), serialize_u32(u32) -> (),
        serialize_u64(u64) -> (), serialize_u128(u128) -> (), serialize_f32(f32) -> (),
        serialize_f64(f64) -> (), serialize_char(char) -> (), serialize_bytes(&[u8]) -> (),
        serialize_none() -> (), serialize_unit() -> (), serialize_unit_struct(&'static str) -> (),
        serialize_seq(Option<usize>) -> Self::SerializeSeq,
        serialize_tuple(usize) -> Self::SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant,
        serialize_map(Option<usize>) -> Self::SerializeMap,
        serialize_struct(&'static str, usize) -> Self::SerializeStruct,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant,
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Stop> {
        other_key()
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Stop> {
        other_key()
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn plain_finds_every_byte_json_escapes_wherever_it_is() {
        for len in 0..40 {
            // Bytes around the ones escaped, and non-ASCII (high bit set).
            let text: Vec<u8> = (0..len)
                .map(|at| [b'a', 0x20, b'!', b'#', b'[', b']', 0x7f, 0xc3, 0xa9, 0xff][at % 10])
                .collect();
            assert!(plain(&text), "{text:?}");
            for at in 0..len {
                for byte in [0x00, 0x01, 0x0a, 0x1f, b'"', b'\\'] {
                    let mut escaped = text.clone();
                    escaped[at] = byte;
                    assert!(!plain(&escaped), "{escaped:?}");
                }
            }
        }
    }
}
