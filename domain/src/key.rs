use crate::ValidationError;

/// The longest key (and identifier) accepted, in bytes.
///
/// Redis accepts keys up to 512 MB, but keys that long are a bug, not data;
/// a small limit keeps every key readable in logs and cheap to hash.
pub const MAX_KEY_BYTES: usize = 512;

/// The longest glob pattern accepted, in bytes.
///
/// Larger than [`MAX_KEY_BYTES`] because escaping (`\*`) can double a key.
pub const MAX_PATTERN_BYTES: usize = 2 * MAX_KEY_BYTES;

/// Checks the rules every identifier that becomes part of a key obeys:
/// not empty, at most `max` bytes, no control characters.
///
/// `what` names the identifier in the error (`"key"`, `"task id"`, …).
///
/// ```
/// use statehouse_domain::{validate_identifier, ValidationError};
///
/// assert!(validate_identifier("key", "user:1", 512).is_ok());
/// assert_eq!(
///     validate_identifier("key", "", 512),
///     Err(ValidationError::Empty { what: "key" })
/// );
/// ```
pub fn validate_identifier(what: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::Empty { what });
    }
    if value.len() > max {
        return Err(ValidationError::TooLong {
            what,
            len: value.len(),
            max,
        });
    }
    // Control characters (Unicode category Cc) are U+0000..=U+001F,
    // U+007F and U+0080..=U+009F; in UTF-8 the last range is 0xC2 followed
    // by 0x80..=0x9F. Scanning bytes keeps this check off the hot path.
    let bytes = value.as_bytes();
    let control = bytes.iter().enumerate().position(|(i, &b)| {
        b < 0x20
            || b == 0x7f
            || (b == 0xc2 && bytes.get(i + 1).is_some_and(|next| (0x80..=0x9f).contains(next)))
    });
    if let Some(index) = control {
        let character = value[index..].chars().next().unwrap_or('\0');
        return Err(ValidationError::ControlCharacter {
            what,
            character,
            index,
        });
    }
    Ok(())
}

/// Declares a validated string newtype: construction checks
/// [`validate_identifier`], and so does deserialization.
macro_rules! identifier {
    ($(#[$meta:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// What this identifier is called in error messages.
            pub const WHAT: &'static str = $what;

            /// Validates `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                validate_identifier($what, &value, $max)?;
                Ok(Self(value))
            }

            /// Checks `value` by the rules of [`new`](Self::new) without
            /// building an identifier (no allocation).
            pub fn validate(value: &str) -> Result<(), ValidationError> {
                validate_identifier($what, value, $max)
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The identifier as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValidationError;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<&String> for $name {
            type Error = ValidationError;

            fn try_from(value: &String) -> Result<Self, Self::Error> {
                Self::new(value.as_str())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// A document key, e.g. `user:1`.
    ///
    /// Not empty, at most [`MAX_KEY_BYTES`] bytes, no control characters.
    /// The key is used verbatim (after the store's optional prefix): glob
    /// characters in it are ordinary characters for `get`/`set`, and only
    /// patterns ([`KeyPattern`]) give them meaning.
    ///
    /// ```
    /// use statehouse_domain::Key;
    ///
    /// let key = Key::new("user:1")?;
    /// assert_eq!(key.as_str(), "user:1");
    /// assert!(Key::new("bad\nkey").is_err());
    /// # Ok::<(), statehouse_domain::ValidationError>(())
    /// ```
    Key,
    "key",
    MAX_KEY_BYTES
);

identifier!(
    /// A Redis glob pattern over keys, e.g. `user:*`.
    ///
    /// Redis semantics: `*` any run of characters, `?` one character,
    /// `[abc]`, `[a-z]` and `[^a]` character classes, `\` escapes the next
    /// character. Not empty, at most [`MAX_PATTERN_BYTES`] bytes, no control
    /// characters. Use [`KeyPattern::escape`] to match a literal string.
    KeyPattern,
    "pattern",
    MAX_PATTERN_BYTES
);

impl KeyPattern {
    /// Escapes every glob metacharacter of `literal` (`*`, `?`, `[`, `]`, `\`)
    /// so that the result matches exactly `literal` and nothing else.
    ///
    /// ```
    /// use statehouse_domain::KeyPattern;
    ///
    /// assert_eq!(KeyPattern::escape("a*b[1]"), r"a\*b\[1\]");
    /// ```
    pub fn escape(literal: &str) -> String {
        let mut escaped = String::with_capacity(literal.len() + 4);
        for c in literal.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        escaped
    }

    /// A pattern matching every key that starts with `prefix` (taken
    /// literally).
    pub fn prefixed(prefix: &str) -> Result<Self, ValidationError> {
        Self::new(format!("{}*", Self::escape(prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("user:1")]
    #[case::unicode("ключ:☃")]
    #[case::spaces("a key with spaces")]
    #[case::glob_chars("weird*[key]?")]
    fn accepts_ordinary_keys(#[case] value: &str) {
        assert_eq!(Key::new(value).unwrap().as_str(), value);
    }

    #[test]
    fn accepts_a_key_of_exactly_the_limit() {
        assert!(Key::new("k".repeat(MAX_KEY_BYTES)).is_ok());
    }

    #[test]
    fn rejects_empty_key_naming_the_rule() {
        let err = Key::new("").unwrap_err();
        assert_eq!(err, ValidationError::Empty { what: "key" });
        assert_eq!(err.to_string(), "key must not be empty");
    }

    #[test]
    fn rejects_long_key_naming_the_rule() {
        let err = Key::new("k".repeat(MAX_KEY_BYTES + 1)).unwrap_err();
        assert_eq!(
            err,
            ValidationError::TooLong {
                what: "key",
                len: 513,
                max: 512
            }
        );
        assert!(err.to_string().contains("at most 512 bytes"));
    }

    #[rstest]
    #[case::newline("a\nb", '\n', 1)]
    #[case::nul("\0", '\0', 0)]
    #[case::del("ab\u{7f}", '\u{7f}', 2)]
    #[case::c1_after_multibyte("é\u{85}", '\u{85}', 2)]
    fn rejects_control_characters(#[case] value: &str, #[case] character: char, #[case] index: usize) {
        assert_eq!(
            Key::new(value).unwrap_err(),
            ValidationError::ControlCharacter {
                what: "key",
                character,
                index
            }
        );
    }

    #[test]
    fn control_characters_are_named_by_code_point() {
        let err = Key::new("bad\nkey").unwrap_err();
        assert_eq!(
            err.to_string(),
            "key contains the control character U+000A at byte 3"
        );
    }

    #[test]
    fn the_byte_scan_agrees_with_char_is_control() {
        for code in 0..=0x2000u32 {
            let Some(c) = char::from_u32(code) else { continue };
            let value = format!("a{c}b");
            assert_eq!(
                validate_identifier("key", &value, 512).is_err(),
                c.is_control(),
                "U+{code:04X}"
            );
        }
    }

    #[test]
    fn deserializing_validates() {
        let ok: Key = serde_json::from_str("\"user:1\"").unwrap();
        assert_eq!(ok.as_str(), "user:1");
        let err = serde_json::from_str::<Key>("\"\"").unwrap_err();
        assert!(err.to_string().contains("key must not be empty"), "{err}");
    }

    #[test]
    fn serializes_as_a_plain_string() {
        assert_eq!(serde_json::to_string(&Key::new("a").unwrap()).unwrap(), "\"a\"");
    }

    #[test]
    fn patterns_have_their_own_name_and_limit() {
        assert_eq!(
            KeyPattern::new("").unwrap_err(),
            ValidationError::Empty { what: "pattern" }
        );
        assert!(KeyPattern::new("*".repeat(MAX_PATTERN_BYTES)).is_ok());
    }

    #[test]
    fn escape_makes_every_metacharacter_literal() {
        assert_eq!(KeyPattern::escape(r"a\b*c?d[e]f"), r"a\\b\*c\?d\[e\]f");
        assert_eq!(KeyPattern::prefixed("t[1]:").unwrap().as_str(), r"t\[1\]:*");
    }
}
