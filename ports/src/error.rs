use std::fmt;
use std::time::Duration;

use statehouse_domain::{TaskStatus, ValidationError};

/// A boxed error from a lower layer (the Redis client, serde_json, a user
/// closure).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The one error type of every port.
///
/// Every variant names the operation (`op`, e.g. `"get"`) and the key it was
/// about (`key`; the pattern for listings, empty for key-less operations such
/// as `ping`). No variant ever carries the stored or written *value*: errors
/// end up in logs.
///
/// Backends map their own errors into these kinds in one place each (the
/// Redis adapter's `error.rs`); callers act on the kind:
///
/// | kind | what to do |
/// |---|---|
/// | [`Connection`](Self::Connection), [`Timeout`](Self::Timeout) | temporary: retry an idempotent call later ([`is_retryable`](Self::is_retryable)) |
/// | [`Conflict`](Self::Conflict) | the key kept changing under an update; back off harder or rethink the hot key |
/// | [`VersionConflict`](Self::VersionConflict) (kind `Conflict`) | a compare-and-set lost: someone else wrote first; re-read and decide again |
/// | [`Deserialization`](Self::Deserialization), [`WrongType`](Self::WrongType) | the stored data is not what the caller expects; fix the data or the type |
/// | [`InvalidInput`](Self::InvalidInput), [`Serialization`](Self::Serialization) | a bug in the caller's input |
/// | [`InvalidTransition`](Self::InvalidTransition) | the task is already final; nothing was written |
/// | [`Aborted`](Self::Aborted) | the caller's own update closure failed; its error is the source |
/// | [`NotDurable`](Self::NotDurable) | the write WAS applied on the primary, but fewer replicas than asked confirmed it in time: it may be lost on a failover; check the replicas, and do not blindly repeat a non-idempotent write |
/// | [`NotFound`](Self::NotFound), [`Operation`](Self::Operation) | as named |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached, or the connection broke mid-call.
    /// A write that failed this way may or may not have been applied.
    #[error("{op}{}: cannot reach the store: {source}", on(key))]
    Connection {
        /// The operation.
        op: &'static str,
        /// The key (or pattern) it was about.
        key: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// No answer within the configured bound. The outcome of a write is
    /// unknown: it may have been applied.
    #[error("{op}{}: no answer within {after:?}", on(key))]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The key (or pattern) it was about.
        key: String,
        /// The bound that elapsed.
        after: Duration,
    },
    /// The value could not be encoded (e.g. a map with non-string keys).
    #[error("{op}{}: cannot encode the value: {source}", on(key))]
    Serialization {
        /// The operation.
        op: &'static str,
        /// The key it was about.
        key: String,
        /// The encoder's error.
        #[source]
        source: BoxError,
    },
    /// The stored value could not be decoded as the requested type.
    #[error("{op}{}: the stored value is not a valid {expected}: {source}", on(key))]
    Deserialization {
        /// The operation.
        op: &'static str,
        /// The key whose value is bad.
        key: String,
        /// The type that was expected.
        expected: &'static str,
        /// The decoder's error.
        #[source]
        source: BoxError,
    },
    /// An atomic read-modify-write gave up: the key changed under every one
    /// of `attempts` attempts.
    #[error(
        "{op}{}: gave up after {attempts} attempts because the key kept changing",
        on(key)
    )]
    Conflict {
        /// The operation.
        op: &'static str,
        /// The contended key.
        key: String,
        /// How many times the update was tried.
        attempts: u32,
    },
    /// A compare-and-set found another version than the caller expected
    /// (`0`: absent); nothing was written. Its kind is
    /// [`ErrorKind::Conflict`].
    #[error(
        "{op}{}: expected version {expected}, found {actual}; nothing written",
        on(key)
    )]
    VersionConflict {
        /// The operation.
        op: &'static str,
        /// The key (or name) written.
        key: String,
        /// The version the caller expected.
        expected: u64,
        /// The version found.
        actual: u64,
    },
    /// The operation needs the key to exist, and it does not.
    #[error("{op}{}: not found", on(key))]
    NotFound {
        /// The operation.
        op: &'static str,
        /// The missing key.
        key: String,
    },
    /// The caller passed something invalid: a bad key, pattern or TTL.
    #[error("{op}{}: invalid input: {reason}", on(key))]
    InvalidInput {
        /// The operation.
        op: &'static str,
        /// The key (or pattern) as given, possibly truncated in `Display`.
        key: String,
        /// Which rule failed.
        reason: String,
    },
    /// The key holds another kind of value (a hash, a list, …) than the
    /// operation works on.
    #[error(
        "{op}{}: the key holds another kind of value than this operation works on",
        on(key)
    )]
    WrongType {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
    },
    /// A task status change that the lifecycle forbids (leaving a final
    /// status); nothing was written.
    #[error("{op}{}: cannot move the task from {from} to {to}: {from} is final", on(key))]
    InvalidTransition {
        /// The operation.
        op: &'static str,
        /// The task's key.
        key: String,
        /// The task's status.
        from: TaskStatus,
        /// The status asked for.
        to: TaskStatus,
    },
    /// The caller's update closure returned an error; nothing was written.
    #[error("{op}{}: the update was aborted: {source}", on(key))]
    Aborted {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
        /// The closure's error.
        #[source]
        source: BoxError,
    },
    /// The write was applied on the primary, but fewer replicas than the
    /// [`Durability`](crate::Durability) asks for confirmed it within its
    /// timeout (`WAIT`): it is there, and may be lost on a failover.
    #[error(
        "{op}{}: the write was applied on the primary but confirmed by only {confirmed} of {wanted} replicas within {timeout:?}; a failover may lose it",
        on(key)
    )]
    NotDurable {
        /// The operation (the write).
        op: &'static str,
        /// The key written.
        key: String,
        /// How many replicas had to confirm.
        wanted: u32,
        /// How many did.
        confirmed: u32,
        /// How long they were waited for.
        timeout: Duration,
    },
    /// Any other error reported by the store.
    #[error("{op}{}: the store refused the command: {source}", on(key))]
    Operation {
        /// The operation.
        op: &'static str,
        /// The key (or pattern) it was about.
        key: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
}

/// The kind of a [`StoreError`], without its data: cheap to copy, compare
/// and record (the tracing layer records it as the outcome of a call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`StoreError::Connection`].
    Connection,
    /// See [`StoreError::Timeout`].
    Timeout,
    /// See [`StoreError::Serialization`].
    Serialization,
    /// See [`StoreError::Deserialization`].
    Deserialization,
    /// See [`StoreError::Conflict`].
    Conflict,
    /// See [`StoreError::NotFound`].
    NotFound,
    /// See [`StoreError::InvalidInput`].
    InvalidInput,
    /// See [`StoreError::WrongType`].
    WrongType,
    /// See [`StoreError::InvalidTransition`].
    InvalidTransition,
    /// See [`StoreError::Aborted`].
    Aborted,
    /// See [`StoreError::Operation`].
    Operation,
    /// See [`StoreError::NotDurable`].
    NotDurable,
}

impl ErrorKind {
    /// A short lowercase name, e.g. `"timeout"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Timeout => "timeout",
            Self::Serialization => "serialization",
            Self::Deserialization => "deserialization",
            Self::Conflict => "conflict",
            Self::NotFound => "not_found",
            Self::InvalidInput => "invalid_input",
            Self::WrongType => "wrong_type",
            Self::InvalidTransition => "invalid_transition",
            Self::Aborted => "aborted",
            Self::Operation => "operation",
            Self::NotDurable => "not_durable",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StoreError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connection { .. } => ErrorKind::Connection,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Serialization { .. } => ErrorKind::Serialization,
            Self::Deserialization { .. } => ErrorKind::Deserialization,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::VersionConflict { .. } => ErrorKind::Conflict,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::InvalidInput { .. } => ErrorKind::InvalidInput,
            Self::WrongType { .. } => ErrorKind::WrongType,
            Self::InvalidTransition { .. } => ErrorKind::InvalidTransition,
            Self::Aborted { .. } => ErrorKind::Aborted,
            Self::Operation { .. } => ErrorKind::Operation,
            Self::NotDurable { .. } => ErrorKind::NotDurable,
        }
    }

    /// The operation that failed, e.g. `"get"`.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Connection { op, .. }
            | Self::Timeout { op, .. }
            | Self::Serialization { op, .. }
            | Self::Deserialization { op, .. }
            | Self::Conflict { op, .. }
            | Self::VersionConflict { op, .. }
            | Self::NotFound { op, .. }
            | Self::InvalidInput { op, .. }
            | Self::WrongType { op, .. }
            | Self::InvalidTransition { op, .. }
            | Self::Aborted { op, .. }
            | Self::Operation { op, .. }
            | Self::NotDurable { op, .. } => op,
        }
    }

    /// The key (or pattern) the failed operation was about; empty for
    /// key-less operations.
    pub fn key(&self) -> &str {
        match self {
            Self::Connection { key, .. }
            | Self::Timeout { key, .. }
            | Self::Serialization { key, .. }
            | Self::Deserialization { key, .. }
            | Self::Conflict { key, .. }
            | Self::VersionConflict { key, .. }
            | Self::NotFound { key, .. }
            | Self::InvalidInput { key, .. }
            | Self::WrongType { key, .. }
            | Self::InvalidTransition { key, .. }
            | Self::Aborted { key, .. }
            | Self::Operation { key, .. }
            | Self::NotDurable { key, .. } => key,
        }
    }

    /// True for temporary failures (connection, timeout): the same call may
    /// succeed later. Only retry calls that are safe to repeat: a timed-out
    /// write may already have been applied.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Connection | ErrorKind::Timeout)
    }

    /// An [`InvalidInput`](Self::InvalidInput) error from a failed validation.
    pub fn invalid_input(op: &'static str, key: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::InvalidInput {
            op,
            key: key.into(),
            reason: reason.to_string(),
        }
    }

    /// A [`WrongType`](Self::WrongType) error: the key holds another kind
    /// of value than `op` works on.
    pub fn wrong_type(op: &'static str, key: impl Into<String>) -> Self {
        Self::WrongType { op, key: key.into() }
    }

    /// A [`Serialization`](Self::Serialization) error.
    pub fn serialization(op: &'static str, key: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Serialization {
            op,
            key: key.into(),
            source: source.into(),
        }
    }

    /// A [`Deserialization`](Self::Deserialization) error: the value at `key`
    /// is not a valid `expected`.
    pub fn deserialization(
        op: &'static str,
        key: impl Into<String>,
        expected: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Deserialization {
            op,
            key: key.into(),
            expected,
            source: source.into(),
        }
    }
}

/// Turns a [`ValidationError`] into [`StoreError::InvalidInput`] for `op` on
/// `key`.
pub trait ValidationExt<T> {
    /// Maps the validation error, naming the operation and the rejected key.
    fn for_op(self, op: &'static str, key: &str) -> Result<T, StoreError>;
}

impl<T> ValidationExt<T> for Result<T, ValidationError> {
    fn for_op(self, op: &'static str, key: &str) -> Result<T, StoreError> {
        self.map_err(|reason| StoreError::invalid_input(op, key, reason))
    }
}

/// THE way a caller's own error passes through an update's closure.
///
/// A port's update closure can fail only with a [`BoxError`], which the
/// port reports as [`StoreError::Aborted`]. A facade whose closure fails
/// with an error of its own (the caller's `E`, or a decoding error naming
/// the key and field) [`keep`](Self::keep)s it here, hands the port a
/// placeholder that aborts the update, and gets it back, as it was, from
/// [`outcome`](Self::outcome) once the port answered. Documents'
/// `try_update`, synced models, tenant fields and subjects' `set_with` all
/// go through it.
///
/// ```
/// use statehouse_ports::{Carry, ErrorKind, StoreError};
///
/// let mut carry = Carry::<StoreError>::new();
/// // Inside the closure: the step failed with an error naming the field.
/// let step: Result<u32, StoreError> =
///     Err(StoreError::deserialization("update", "k field f", "u32", "not a number"));
/// let boxed = carry.keep(step);
/// assert!(boxed.is_err());
/// // The port answers Aborted; the caller gets its own error back.
/// let port: Result<(), StoreError> = Err(StoreError::Aborted {
///     op: "update",
///     key: "k".into(),
///     source: boxed.unwrap_err(),
/// });
/// let error = carry.outcome(port).unwrap_err();
/// assert_eq!((error.kind(), error.key()), (ErrorKind::Deserialization, "k field f"));
/// ```
#[derive(Debug)]
pub struct Carry<E> {
    kept: Option<E>,
}

impl<E> Default for Carry<E> {
    fn default() -> Self {
        Self { kept: None }
    }
}

impl<E> Carry<E> {
    /// Nothing kept yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A step of the closure: its value as it is, or its error kept here
    /// and a placeholder for the port, which aborts the update.
    pub fn keep<T>(&mut self, step: Result<T, E>) -> Result<T, BoxError> {
        step.map_err(|error| {
            self.kept = Some(error);
            BoxError::from("the update's closure failed")
        })
    }

    /// The update's outcome for the caller: the kept error when it is what
    /// aborted the update; otherwise the port's own answer.
    pub fn outcome<T>(self, result: Result<T, StoreError>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match (self.kept, result) {
            (Some(kept), Err(StoreError::Aborted { .. })) => Err(kept),
            (_, result) => result.map_err(E::from),
        }
    }
}

/// Formats ` "key"` for error messages: quoted and escaped (so control
/// characters are visible), cut after 128 characters, nothing when empty.
fn on(key: &str) -> impl fmt::Display + '_ {
    struct On<'a>(&'a str);
    impl fmt::Display for On<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            const SHOWN: usize = 128;
            if self.0.is_empty() {
                return Ok(());
            }
            match self.0.char_indices().nth(SHOWN) {
                Some((cut, _)) => write!(f, " {:?}… ({} bytes)", &self.0[..cut], self.0.len()),
                None => write!(f, " {:?}", self.0),
            }
        }
    }
    On(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_operation_and_key() {
        let err = StoreError::Conflict {
            op: "update",
            key: "counter".into(),
            attempts: 50,
        };
        assert_eq!(
            err.to_string(),
            "update \"counter\": gave up after 50 attempts because the key kept changing"
        );
        assert_eq!(err.key(), "counter");
        assert_eq!(err.op(), "update");
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn keyless_operations_read_naturally() {
        let err = StoreError::Timeout {
            op: "ping",
            key: String::new(),
            after: Duration::from_secs(2),
        };
        assert_eq!(err.to_string(), "ping: no answer within 2s");
    }

    #[test]
    fn control_characters_in_keys_are_escaped_and_long_keys_cut() {
        let err = StoreError::invalid_input("get", "a\nb", "bad");
        assert_eq!(err.to_string(), "get \"a\\nb\": invalid input: bad");
        let long = "k".repeat(1000);
        let shown = StoreError::invalid_input("get", long, "too long").to_string();
        assert!(shown.contains("… (1000 bytes)"), "{shown}");
        assert!(shown.len() < 250, "{shown}");
    }

    #[test]
    fn only_connection_and_timeout_are_retryable() {
        let io = || -> BoxError { "boom".into() };
        let retryable = [
            StoreError::Connection {
                op: "get",
                key: "k".into(),
                source: io(),
            },
            StoreError::Timeout {
                op: "get",
                key: "k".into(),
                after: Duration::from_millis(1),
            },
        ];
        assert!(retryable.iter().all(StoreError::is_retryable));
        let permanent = [
            StoreError::Conflict {
                op: "update",
                key: "k".into(),
                attempts: 1,
            },
            StoreError::invalid_input("get", "k", "bad"),
            StoreError::WrongType {
                op: "get",
                key: "k".into(),
            },
            StoreError::Operation {
                op: "get",
                key: "k".into(),
                source: io(),
            },
            StoreError::deserialization("get", "k", "User", io()),
        ];
        assert!(permanent.iter().all(|e| !e.is_retryable()));
    }

    #[test]
    fn not_durable_says_the_write_was_applied_and_is_not_retryable() {
        let err = StoreError::NotDurable {
            op: "set",
            key: "k".into(),
            wanted: 2,
            confirmed: 1,
            timeout: Duration::from_millis(250),
        };
        assert_eq!(
            err.to_string(),
            "set \"k\": the write was applied on the primary but confirmed by only 1 of 2 replicas \
             within 250ms; a failover may lose it"
        );
        assert_eq!(err.kind(), ErrorKind::NotDurable);
        assert_eq!(err.kind().as_str(), "not_durable");
        assert_eq!((err.op(), err.key()), ("set", "k"));
        assert!(!err.is_retryable());
    }

    #[test]
    fn validation_errors_become_invalid_input() {
        let err = statehouse_domain::Key::new("").for_op("set", "").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "set: invalid input: key must not be empty");
    }
}
