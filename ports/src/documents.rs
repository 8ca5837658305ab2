use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::{Key, KeyPattern, Ttl};

use crate::{BoxError, KeyStream, RetryPolicy, StoreError, Topology};

/// When a [`DocumentStore::set`] writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SetCondition {
    /// Always write (Redis `SET`).
    #[default]
    Always,
    /// Only if the key does not exist (Redis `SET NX`).
    IfAbsent,
    /// Only if the key exists (Redis `SET XX`).
    IfPresent,
}

/// Options of [`DocumentStore::set`].
///
/// ```
/// use statehouse_domain::Ttl;
/// use statehouse_ports::SetOptions;
///
/// let options = SetOptions::new().ttl(Ttl::from_secs(60)?).if_absent();
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetOptions {
    /// Expire the key this long after the write, set in the same atomic step.
    /// `None` writes a key without expiry (clearing any previous TTL, as
    /// Redis `SET` does).
    pub ttl: Option<Ttl>,
    /// When to write.
    pub condition: SetCondition,
}

impl SetOptions {
    /// Always write, no expiry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expire the key `ttl` after the write.
    #[must_use]
    pub fn ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Only write if the key does not exist.
    #[must_use]
    pub fn if_absent(mut self) -> Self {
        self.condition = SetCondition::IfAbsent;
        self
    }

    /// Only write if the key exists.
    #[must_use]
    pub fn if_present(mut self) -> Self {
        self.condition = SetCondition::IfPresent;
        self
    }
}

/// The remaining life of a key, from [`DocumentStore::ttl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long (millisecond precision).
    ExpiresIn(Duration),
}

/// What an update closure decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update<T> {
    /// Write this value. An existing TTL on the key is kept.
    Set(T),
    /// Delete the key.
    Delete,
    /// Leave the key as it is (nothing is written).
    Keep,
}

impl<T> Update<T> {
    /// Converts the value of [`Update::Set`], keeping the decision.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Update<U>, E> {
        Ok(match self {
            Self::Set(value) => Update::Set(f(value)?),
            Self::Delete => Update::Delete,
            Self::Keep => Update::Keep,
        })
    }
}

/// The result of a successful [`DocumentStore::update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The value stored under the key when the update committed: the new
    /// value after [`Update::Set`], the old one after [`Update::Keep`],
    /// `None` after [`Update::Delete`] (or `Keep` of a missing key).
    pub value: Option<Vec<u8>>,
    /// How many times the closure ran (1 without conflicts).
    pub attempts: u32,
}

/// The synchronous closure of an atomic read-modify-write. It receives the
/// current value (`None` when the key is missing) and decides what to write.
/// An `Err` aborts the update: nothing is written and the error comes back as
/// [`StoreError::Aborted`].
///
/// It **may run more than once**: when the key changes between the read and
/// the write, the update starts over with the new value. Keep it free of side
/// effects other than computing the decision.
pub type UpdateFn<'a> = dyn FnMut(Option<&[u8]>) -> Result<Update<Vec<u8>>, BoxError> + Send + 'a;

/// What one caller's closure answered in the last pass of a combined
/// document update (`Combiner`): the value after its step, or its error.
pub type DocumentStep = Option<Result<Option<Vec<u8>>, BoxError>>;

/// A document update's closure as a member of a combined round: applies
/// `f` to the value handed to it, records its own answer in `own` (the
/// value after its step, `Keep` included, or its error) and returns the
/// new value to pass on (`None`: unchanged, after `Keep` or an error).
pub fn document_step<'f, 'a: 'f>(
    f: &'f mut UpdateFn<'a>,
    own: &'f mut DocumentStep,
) -> impl FnMut(&Option<Vec<u8>>) -> Option<Option<Vec<u8>>> + Send + 'f {
    move |current| match f(current.as_deref()) {
        Ok(Update::Keep) => {
            *own = Some(Ok(current.clone()));
            None
        }
        Ok(Update::Set(value)) => {
            *own = Some(Ok(Some(value.clone())));
            Some(Some(value))
        }
        Ok(Update::Delete) => {
            *own = Some(Ok(None));
            Some(None)
        }
        Err(error) => {
            *own = Some(Err(error));
            None
        }
    }
}

/// A caller's result of a combined document update: its own step after
/// the batch's `outcome` (the attempt that committed). Its closure's error
/// is [`StoreError::Aborted`] whatever the batch did.
pub fn document_result(
    op: &'static str,
    key: &Key,
    own: DocumentStep,
    outcome: Result<u32, StoreError>,
) -> Result<Updated, StoreError> {
    let own = own.map(|own| {
        own.map_err(|source| StoreError::Aborted {
            op,
            key: key.to_string(),
            source,
        })
    });
    crate::combine::member_result(op, key.as_str(), own, outcome, |value, attempts| Updated {
        value,
        attempts,
    })
}

/// One key's result in [`DocumentStore::get_many`]: the value, absent
/// (`Ok(None)`), or a failure for that key alone.
pub type Fetched = Result<Option<Vec<u8>>, StoreError>;

/// A key-value store of documents (byte values, JSON by convention).
///
/// This is the object-safe core: it moves bytes. Typed access (serde) lives
/// in [`DocumentStoreExt`](crate::DocumentStoreExt), implemented for every
/// store, including `Arc<dyn DocumentStore>`.
///
/// # Contract
///
/// Every implementation behaves the same; the contract suite in
/// `statehouse-tests` runs one list of tests against each.
///
/// - Keys are used verbatim; a store may put a fixed prefix in front of every
///   key, and then also in front of every pattern, and strips it from listed
///   keys.
/// - A missing key and a key holding the JSON text `null` are different:
///   `get` returns `None` for the first and `Some(b"null")` for the second.
/// - A TTL is applied in the same atomic step as the write; an expired key
///   is never returned by any operation, even before it is purged.
/// - `set` without a TTL clears any previous TTL of the key.
/// - `list_keys` streams every matching key exactly once, page by page, in
///   no particular order (memory stays flat however many match; see
///   [`KeyPages`](crate::KeyPages) for keys written during the listing),
///   with Redis glob semantics (`*`, `?`, `[abc]`, `[a-z]`, `[^a]`, `\`
///   escapes).
/// - `get_many` returns one result per requested key, in order; a key that
///   holds a non-document value fails alone ([`StoreError::WrongType`]).
/// - `update` is atomic: the closure sees the current value, and its decision
///   is written only if the key did not change in between (optimistic
///   concurrency). Otherwise it runs again, after a backoff, up to
///   `policy.max_attempts()` times, then fails with
///   [`StoreError::Conflict`]. An `Update::Set` keeps the key's TTL.
/// - Every call is bounded in time; a store that does not answer yields
///   [`StoreError::Timeout`] or [`StoreError::Connection`], never a hang.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DocumentStore: Debug + Send + Sync + 'static {
    /// The value of `key`, or `None` if it does not exist.
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StoreError>;

    /// The values of `keys`, one result per key in the same order. The outer
    /// error is for failures of the whole call (connection, timeout).
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Fetched>, StoreError>;

    /// Writes `value` under `key`. Returns whether it was written (`false`
    /// only when the condition in `options` did not hold).
    async fn set(&self, key: &Key, value: &[u8], options: SetOptions) -> Result<bool, StoreError>;

    /// Deletes `key`. Returns whether it existed.
    async fn delete(&self, key: &Key) -> Result<bool, StoreError>;

    /// Whether `key` exists.
    async fn exists(&self, key: &Key) -> Result<bool, StoreError>;

    /// Sets the TTL of an existing key. Returns `false` if the key does not
    /// exist.
    async fn expire(&self, key: &Key, ttl: Ttl) -> Result<bool, StoreError>;

    /// The remaining life of `key`.
    async fn ttl(&self, key: &Key) -> Result<KeyTtl, StoreError>;

    /// Every key matching `pattern`, each once, as a stream (no I/O until
    /// it is read).
    fn list_keys(&self, pattern: &KeyPattern) -> KeyStream;

    /// Atomic read-modify-write of `key`; see [`UpdateFn`] and the contract.
    async fn update<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut UpdateFn<'a>,
    ) -> Result<Updated, StoreError>;

    /// Adds `by` to the JSON integer held by `key` in one atomic step (one
    /// round trip) and returns the new value. A missing key counts as `0`
    /// and is written without a TTL; an existing key keeps its TTL. A
    /// document that is not an integer in canonical form (`7`, `-3`; not
    /// `7.0`, `07` or ` 7`) is [`StoreError::Deserialization`]
    /// ([`not_an_integer_document`]), leaving the `i64` range is
    /// [`StoreError::InvalidInput`] ([`increment_overflow_document`]), a key
    /// of another type is [`StoreError::WrongType`]: each names the key and
    /// writes nothing.
    async fn increment(&self, key: &Key, by: i64) -> Result<i64, StoreError>;

    /// Appends `item` (JSON text) to the JSON array held by `key` in one
    /// atomic step (one round trip) and returns the array's new length. A
    /// missing key becomes `[item]` (without a TTL); an existing key keeps
    /// its TTL and its bytes up to the closing `]`. A document that is not
    /// a JSON array is [`StoreError::Deserialization`]
    /// ([`not_an_array_document`]), an `item` that is not JSON is
    /// [`StoreError::InvalidInput`], a key of another type
    /// [`StoreError::WrongType`]: each names the key and writes nothing.
    async fn append(&self, key: &Key, item: &[u8]) -> Result<usize, StoreError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// What the store is connected to now, as it sees it (no call to a
    /// server, but for one bounded refresh of a cluster's slot map): its
    /// kind, endpoints and their pools, a Sentinel service's primary, a
    /// cluster's slot map. By default a store says
    /// [`TopologyKind::Custom`](crate::TopologyKind::Custom) and nothing else.
    async fn topology(&self) -> Result<Topology, StoreError> {
        Ok(Topology::new(crate::TopologyKind::Custom, Vec::new()))
    }
}

/// The error of a document [`increment`](DocumentStore::increment) whose
/// document holds no integer (in canonical form).
pub fn not_an_integer_document(op: &'static str, key: &Key) -> StoreError {
    StoreError::deserialization(
        op,
        key.as_str(),
        "JSON integer (i64)",
        "the document holds no integer",
    )
}

/// The error of a document [`increment`](DocumentStore::increment) whose
/// result would leave the `i64` range.
pub fn increment_overflow_document(op: &'static str, key: &Key) -> StoreError {
    StoreError::invalid_input(op, key.as_str(), "increment or decrement would overflow")
}

/// The error of a document [`append`](DocumentStore::append) whose
/// document holds no JSON array.
pub fn not_an_array_document(op: &'static str, key: &Key) -> StoreError {
    StoreError::deserialization(op, key.as_str(), "JSON array", "the document holds no JSON array")
}

/// Checks the `item` of an [`append`](DocumentStore::append) before any
/// I/O: it must be one JSON value.
pub fn check_append_item(op: &'static str, key: &str, item: &[u8]) -> Result<(), StoreError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(item)
        .map(drop)
        .map_err(|_| StoreError::invalid_input(op, key, "the item to append is not one JSON value"))
}

/// The bytes of a JSON array `current` with `item` appended, and its new
/// length, or `None` if `current` is no JSON array: the text up to the
/// closing `]` is kept as it is (what the Redis adapter's script writes).
pub fn append_to_array(current: &[u8], item: &[u8]) -> Option<(Vec<u8>, usize)> {
    let items: Vec<serde::de::IgnoredAny> = serde_json::from_slice(current).ok()?;
    let close = current.iter().rposition(|&b| b == b']')?;
    let mut out = Vec::with_capacity(current.len() + item.len() + 1);
    if items.is_empty() {
        out.push(b'[');
    } else {
        out.extend_from_slice(&current[..close]);
        out.push(b',');
    }
    out.extend_from_slice(item);
    out.extend_from_slice(&current[close..]);
    Some((out, items.len() + 1))
}

/// A document's integer as Redis' `INCRBY` reads it: canonical decimal
/// (`0`, `-12`; no sign `+`, leading zero, space or fraction), in `i64`.
pub fn canonical_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [b'0'] => bytes.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The future a port method returns (`#[async_trait]` methods box theirs).
/// Decorators that hand-write a method, to pass the inner store's future
/// through without boxing it again, return this.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Forwards the trait through a smart pointer by handing back the inner
/// store's boxed future as is: written out (not with `#[async_trait]`, which
/// would box a second future around the first), so `Arc<dyn DocumentStore>`
/// costs nothing over calling the store directly.
macro_rules! forward_document_store {
    ($wrapper:ident) => {
        impl<S: DocumentStore + ?Sized> DocumentStore for $wrapper<S> {
            fn get<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, Option<Vec<u8>>>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).get(key)
            }

            fn get_many<'s, 'k, 'f>(&'s self, keys: &'k [Key]) -> Boxed<'f, Vec<Fetched>>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).get_many(keys)
            }

            fn set<'s, 'k, 'v, 'f>(
                &'s self,
                key: &'k Key,
                value: &'v [u8],
                options: SetOptions,
            ) -> Boxed<'f, bool>
            where
                's: 'f,
                'k: 'f,
                'v: 'f,
                Self: 'f,
            {
                (**self).set(key, value, options)
            }

            fn delete<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, bool>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).delete(key)
            }

            fn exists<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, bool>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).exists(key)
            }

            fn expire<'s, 'k, 'f>(&'s self, key: &'k Key, ttl: Ttl) -> Boxed<'f, bool>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).expire(key, ttl)
            }

            fn ttl<'s, 'k, 'f>(&'s self, key: &'k Key) -> Boxed<'f, KeyTtl>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).ttl(key)
            }

            fn list_keys(&self, pattern: &KeyPattern) -> KeyStream {
                (**self).list_keys(pattern)
            }

            fn update<'a, 's, 'k, 'u, 'f>(
                &'s self,
                key: &'k Key,
                policy: RetryPolicy,
                f: &'u mut UpdateFn<'a>,
            ) -> Boxed<'f, Updated>
            where
                'a: 'f,
                's: 'f,
                'k: 'f,
                'u: 'f,
                Self: 'f,
            {
                (**self).update(key, policy, f)
            }

            fn increment<'s, 'k, 'f>(&'s self, key: &'k Key, by: i64) -> Boxed<'f, i64>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).increment(key, by)
            }

            fn append<'s, 'k, 'v, 'f>(&'s self, key: &'k Key, item: &'v [u8]) -> Boxed<'f, usize>
            where
                's: 'f,
                'k: 'f,
                'v: 'f,
                Self: 'f,
            {
                (**self).append(key, item)
            }

            fn ping<'s, 'f>(&'s self) -> Boxed<'f, ()>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).ping()
            }

            fn topology<'s, 'f>(&'s self) -> Boxed<'f, Topology>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).topology()
            }
        }
    };
}

forward_document_store!(Arc);
forward_document_store!(Box);

/// Compile-time check: the trait stays usable as `Arc<dyn DocumentStore>`.
const _: fn(Arc<dyn DocumentStore>) = |_| {};
