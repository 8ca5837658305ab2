//! Subjects: named bags of JSON properties of two kinds, laid out as the
//! KRules framework lays them out in Redis, so that Python services using
//! KRules and Rust services using statehouse share them.
//!
//! - [`SubjectName`], [`PropertyName`]: validated names
//!   ([`validate_identifier`]). Neither is escaped in keys or fields
//!   (compatibility); see `docs/keys.md`.
//! - [`PropertyKind`]: default (`p` field marker) or extended (`e`).
//! - [`python_json`]: THE encoder of property values, writing the bytes
//!   Python's `json.dumps` writes.
//!
//! A missing property and a property holding JSON `null` are different
//! things: the first is `None`, the second `Some(Value::Null)`.

use std::fmt;
use std::io;

use serde::Serialize;
use serde_json::Value;

use crate::{MAX_KEY_BYTES, ValidationError, validate_identifier};

identifier!(
    /// The name of a subject, e.g. `user:42` or `device-7`. Used verbatim
    /// in its key `s:<subject prefix><name>` (not escaped: KRules does not
    /// escape it either).
    SubjectName,
    "subject",
    MAX_KEY_BYTES
);

identifier!(
    /// The name of a property, e.g. `count`. Used verbatim in its hash
    /// field, after the kind's marker (`pcount`).
    PropertyName,
    "property",
    MAX_KEY_BYTES
);

/// The two kinds of properties a subject has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyKind {
    /// Default properties: hash field `p<name>`.
    Default,
    /// Extended properties (KRules' event extensions): hash field `e<name>`.
    Extended,
}

impl PropertyKind {
    /// Both kinds.
    pub const ALL: [Self; 2] = [Self::Default, Self::Extended];

    /// The first byte of the kind's hash fields: `p` or `e`.
    pub fn marker(self) -> char {
        match self {
            Self::Default => 'p',
            Self::Extended => 'e',
        }
    }

    /// The hash field of property `name` of this kind.
    ///
    /// ```
    /// use statehouse_domain::PropertyKind;
    ///
    /// assert_eq!(PropertyKind::Default.field("name"), "pname");
    /// assert_eq!(PropertyKind::Extended.field("origin"), "eorigin");
    /// ```
    pub fn field(self, name: &str) -> String {
        let mut field = String::with_capacity(name.len() + 1);
        field.push(self.marker());
        field.push_str(name);
        field
    }

    /// The kind and property name of a hash field; `None` for a field
    /// without the `p`/`e` marker (or an empty name), which readers ignore.
    ///
    /// ```
    /// use statehouse_domain::PropertyKind;
    ///
    /// assert_eq!(PropertyKind::parse_field("pcount"), Some((PropertyKind::Default, "count")));
    /// assert_eq!(PropertyKind::parse_field("xcount"), None);
    /// assert_eq!(PropertyKind::parse_field("p"), None);
    /// ```
    pub fn parse_field(field: &str) -> Option<(Self, &str)> {
        let kind = match field.as_bytes().first()? {
            b'p' => Self::Default,
            b'e' => Self::Extended,
            _ => return None,
        };
        let name = &field[1..];
        (!name.is_empty()).then_some((kind, name))
    }
}

impl fmt::Display for PropertyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::Extended => "extended",
        })
    }
}

/// Encodes `value` as Python's `json.dumps(value)` does with its defaults
/// (what KRules stores): separators `", "` and `": "`, `ensure_ascii`
/// (everything outside printable ASCII as `\uXXXX`, astral characters as
/// surrogate pairs, DEL included), and floats as Python's `repr` writes
/// them (`1e+20`, `1e-07`, `1.5`, `100.0`).
///
/// Not covered: integers beyond 64 bits and `NaN`/`Infinity`, which
/// serde_json cannot hold; object keys keep the order of the `Value`
/// (sorted, as serde_json's map is), where Python keeps insertion order.
///
/// ```
/// use serde_json::json;
/// use statehouse_domain::python_json;
///
/// assert_eq!(python_json(&json!("John")), r#""John""#);
/// assert_eq!(python_json(&json!({"a": [1, 2.5, null]})), r#"{"a": [1, 2.5, null]}"#);
/// assert_eq!(python_json(&json!("é")), r#""\u00e9""#);
/// assert_eq!(python_json(&json!(1e20)), "1e+20");
/// ```
pub fn python_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(64);
    write_python_json(value, &mut out);
    // Every byte written is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Writes [`python_json`]'s text of `value` to `out` (ASCII only), for
/// callers that encode many values into one buffer or straight into a
/// command. A failure of `out` is ignored: write to memory.
pub fn write_python_json<W: io::Write>(value: &Value, out: W) {
    let mut serializer = serde_json::Serializer::with_formatter(out, PythonFormatter);
    // Serializing a `Value` to memory with this formatter cannot fail.
    let _ = value.serialize(&mut serializer);
}

/// The `serde_json` formatter behind [`python_json`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(python_float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (index, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\u{7f}' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..index])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = index + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// A finite float as Python's `repr` writes it: the shortest digits that
/// round-trip, in positional form when the decimal exponent is in
/// `-4..16`, else as `d.ddde±XX` (at least two exponent digits). Also what
/// redis-py sends for a Python `float` (synced models' hash fields).
pub fn python_float_repr(value: f64) -> String {
    if !value.is_finite() {
        // serde_json never holds these; Python would write NaN/Infinity.
        return "null".to_owned();
    }
    // Rust's `{:e}` is the shortest round-trip form: `-1.2345e-7`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let (int, frac) = if point <= 0 {
            let zeros = "0".repeat(point.unsigned_abs() as usize);
            ("0".to_owned(), format!("{zeros}{digits}"))
        } else {
            let point = point.unsigned_abs() as usize;
            if digits.len() <= point {
                (
                    format!("{digits}{}", "0".repeat(point - digits.len())),
                    String::new(),
                )
            } else {
                (digits[..point].to_owned(), digits[point..].to_owned())
            }
        };
        let frac = if frac.is_empty() { "0".to_owned() } else { frac };
        format!("{sign}{int}.{frac}")
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each pair: a value and the exact bytes CPython 3's `json.dumps`
    /// writes for it (taken from the interpreter).
    #[test]
    fn matches_the_bytes_python_writes() {
        let cases = [
            (json!("John"), r#""John""#),
            (json!(30), "30"),
            (json!(null), "null"),
            (json!(true), "true"),
            (json!(-7), "-7"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!([]), "[]"),
            (json!({}), "{}"),
            (json!([1, "a", null]), r#"[1, "a", null]"#),
            (
                json!({"a": 1, "b": [true, false]}),
                r#"{"a": 1, "b": [true, false]}"#,
            ),
            (json!({"n": {"m": {}}}), r#"{"n": {"m": {}}}"#),
            (json!("é"), r#""\u00e9""#),
            (json!("日本"), r#""\u65e5\u672c""#),
            (json!("😀"), r#""\ud83d\ude00""#),
            (json!("a\"b\\c"), r#""a\"b\\c""#),
            (json!("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#),
            (json!("\u{1}\u{1f}"), r#""\u0001\u001f""#),
            (json!("\u{7f}"), r#""\u007f""#),
            (json!("/<>&'"), r#""/<>&'""#),
            (json!(1.5), "1.5"),
            (json!(100.0), "100.0"),
            (json!(0.1), "0.1"),
            (json!(-0.0), "-0.0"),
            (json!(1e20), "1e+20"),
            (json!(1.5e20), "1.5e+20"),
            (json!(1e16), "1e+16"),
            (json!(1e15), "1000000000000000.0"),
            (json!(123456789012345.6), "123456789012345.6"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1.5e-7), "1.5e-07"),
            (json!(1e100), "1e+100"),
            (json!(-2.5e-300), "-2.5e-300"),
            (json!(f64::MAX), "1.7976931348623157e+308"),
            (json!(5e-324), "5e-324"),
        ];
        for (value, python) in cases {
            assert_eq!(python_json(&value), python, "{value:?}");
        }
    }

    #[test]
    fn python_output_parses_back_to_the_same_value() {
        for value in [json!({"k": ["é😀", 1e-7, 3]}), json!(12.25), json!("\u{7f}x")] {
            let text = python_json(&value);
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn fields_round_trip_with_their_kind() {
        for kind in PropertyKind::ALL {
            let field = kind.field("a:b é");
            assert_eq!(PropertyKind::parse_field(&field), Some((kind, "a:b é")));
        }
        assert_eq!(PropertyKind::parse_field(""), None);
        assert_eq!(PropertyKind::parse_field("Pname"), None);
    }
}
