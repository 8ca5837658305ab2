use std::time::Duration;

use crate::HumanDuration;

/// An input that breaks one of the domain's rules.
///
/// Each variant names *what* was being validated (`"key"`, `"pattern"`, …)
/// and which rule failed, never the whole rejected value (it may be large or
/// sensitive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The value was empty.
    #[error("{what} must not be empty")]
    Empty {
        /// What was being validated, e.g. `"key"`.
        what: &'static str,
    },
    /// The value was longer than allowed.
    #[error("{what} is {len} bytes long; at most {max} bytes are allowed")]
    TooLong {
        /// What was being validated.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The value contained a control character (`\n`, `\0`, DEL, …).
    #[error("{what} contains the control character U+{:04X} at byte {index}", u32::from(*character))]
    ControlCharacter {
        /// What was being validated.
        what: &'static str,
        /// The offending character.
        character: char,
        /// Its byte offset in the value.
        index: usize,
    },
    /// A time to live below one millisecond (zero or negative).
    #[error("a TTL must be at least 1 ms, got {given}")]
    TtlTooShort {
        /// The rejected TTL as given, e.g. `"0 ms"` or `"-5 s"`.
        given: String,
    },
    /// A name that is not one of the accepted ones (e.g. a task status).
    #[error("unknown {what}; expected {expected}")]
    UnknownName {
        /// What was being parsed, e.g. `"task status"`.
        what: &'static str,
        /// The accepted names, for the message.
        expected: &'static str,
    },
    /// A time to live longer than the store can represent.
    #[error("a TTL must be at most {}, got {}", HumanDuration(*max), HumanDuration(*given))]
    TtlTooLong {
        /// The rejected TTL.
        given: Duration,
        /// The largest accepted TTL.
        max: Duration,
    },
    /// The value contains a character that is reserved where it is used
    /// (e.g. the `:` that separates a synced model's type name from its id).
    #[error("{what} must not contain {character:?} (found at byte {index})")]
    ReservedCharacter {
        /// What was being validated.
        what: &'static str,
        /// The reserved character.
        character: char,
        /// Its byte offset in the value.
        index: usize,
    },
}
