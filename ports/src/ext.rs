use std::cell::RefCell;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use statehouse_domain::Key;

use crate::{BoxError, Carry, DocumentStore, RetryPolicy, SetOptions, StoreError, Update};

/// Typed (JSON) access over any [`DocumentStore`], including
/// `Arc<dyn DocumentStore>`.
///
/// Values are JSON (`serde_json`). A missing key is `Ok(None)`; a key whose
/// value does not decode as `T` is [`StoreError::Deserialization`] naming the
/// key and the type, never a panic.
///
/// ```
/// # async fn demo(store: &dyn statehouse_ports::DocumentStore) -> Result<(), Box<dyn std::error::Error>> {
/// use statehouse_domain::Key;
/// use statehouse_ports::{DocumentStoreExt, RetryPolicy, SetOptions, Update};
///
/// let key = Key::new("visits")?;
/// store.set_json(&key, &0u64, SetOptions::new()).await?;
/// let now = store
///     .update_json(&key, RetryPolicy::default(), |n: Option<u64>| {
///         Ok::<_, statehouse_ports::StoreError>(Update::Set(n.unwrap_or(0) + 1))
///     })
///     .await?;
/// assert_eq!(now, Some(1));
/// # Ok(()) }
/// ```
pub trait DocumentStoreExt: DocumentStore {
    /// The value of `key` decoded as `T`.
    fn get_json<T: DeserializeOwned>(
        &self,
        key: &Key,
    ) -> impl Future<Output = Result<Option<T>, StoreError>> + Send {
        async move {
            match self.get(key).await? {
                Some(bytes) => decode("get", key.as_str(), &bytes).map(Some),
                None => Ok(None),
            }
        }
    }

    /// The values of `keys` decoded as `T`, one result per key: a key whose
    /// value is bad fails alone.
    fn get_many_json<T: DeserializeOwned>(
        &self,
        keys: &[Key],
    ) -> impl Future<Output = Result<Vec<Result<Option<T>, StoreError>>, StoreError>> + Send {
        async move {
            let fetched = self.get_many(keys).await?;
            Ok(keys
                .iter()
                .zip(fetched)
                .map(|(key, result)| match result? {
                    Some(bytes) => decode("get_many", key.as_str(), &bytes).map(Some),
                    None => Ok(None),
                })
                .collect())
        }
    }

    /// Encodes `value` as JSON and writes it; see [`DocumentStore::set`].
    fn set_json<T: Serialize + Sync + ?Sized>(
        &self,
        key: &Key,
        value: &T,
        options: SetOptions,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move {
            let bytes = encode("set", key.as_str(), value)?;
            self.set(key, &bytes, options).await
        }
    }

    /// Typed atomic read-modify-write; see [`DocumentStore::update`].
    ///
    /// `f` receives the current value decoded as `T` and **may run more than
    /// once**. If it returns `Err(e)`, nothing is written and `e` itself comes
    /// back. Returns the value stored when the update committed.
    fn update_json<T, E, F>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: F,
    ) -> impl Future<Output = Result<Option<T>, E>> + Send
    where
        T: Serialize + DeserializeOwned + Send,
        E: From<StoreError> + Send,
        F: FnMut(Option<T>) -> Result<Update<T>, E> + Send,
    {
        async move {
            let mut f = f;
            // The closure's own error, or a decode/encode failure, comes
            // back as it is instead of the store's `Aborted`.
            let mut carry = Carry::<E>::new();
            let mut core = |old: Option<&[u8]>| -> Result<Update<Vec<u8>>, BoxError> {
                carry.keep((|| {
                    let old = match old {
                        Some(bytes) => Some(decode::<T>("update", key.as_str(), bytes)?),
                        None => None,
                    };
                    f(old)?.try_map(|value| encode("update", key.as_str(), &value).map_err(E::from))
                })())
            };
            let updated = self.update(key, policy, &mut core).await;
            match carry.outcome(updated)?.value {
                Some(bytes) => Ok(Some(decode("update", key.as_str(), &bytes)?)),
                None => Ok(None),
            }
        }
    }
}

impl<S: DocumentStore + ?Sized> DocumentStoreExt for S {}

/// Decodes a stored JSON value, naming the key and the expected type on failure.
///
/// The error says what was wrong and where (line, column) but never quotes
/// the stored data: serde_json's messages do (`invalid type: string
/// "…", expected u32`), and errors end up in logs.
pub fn decode<T: DeserializeOwned>(op: &'static str, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError::deserialization(op, key, std::any::type_name::<T>(), JsonError::without_data(&e))
    })
}

/// Decodes a JSON value (owned or borrowed) as `T`, naming the key (a
/// field's, a property's) and the expected type on failure, never the data:
/// what [`decode`] is for stored bytes.
pub fn decode_value<'de, T, V>(op: &'static str, key: impl Into<String>, value: V) -> Result<T, StoreError>
where
    T: Deserialize<'de>,
    V: Deserializer<'de, Error = serde_json::Error>,
{
    T::deserialize(value).map_err(|e| {
        StoreError::deserialization(op, key, std::any::type_name::<T>(), JsonError::without_data(&e))
    })
}

/// A JSON decoding error with any quoted piece of the data removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    message: String,
    line: usize,
    column: usize,
}

impl JsonError {
    /// Keeps the kind of mistake and its position, drops the data.
    pub fn without_data(error: &serde_json::Error) -> Self {
        let full = error.to_string();
        // serde_json appends " at line L column C"; drop it, keep the numbers.
        let message = match full.rfind(" at line ") {
            Some(at) => &full[..at],
            None => full.as_str(),
        };
        Self {
            message: redact_data(message),
            line: error.line(),
            column: error.column(),
        }
    }

    /// Line of the error in the stored value (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Column of the error in the stored value (1-based).
    pub fn column(&self) -> usize {
        self.column
    }
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at line {} column {}", self.message, self.line, self.column)
    }
}

impl std::error::Error for JsonError {}

/// Removes the quoted data from serde's "invalid type/value" and "unknown
/// variant" messages, keeping their shape: `invalid type: string "x",
/// expected u32` becomes `invalid type: string, expected u32`.
fn redact_data(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (unexpected, expected) = match rest.rfind(", expected ") {
                Some(at) => (&rest[..at], &rest[at..]),
                None => (rest, ""),
            };
            let kind = match unexpected.find([' ', '`', '"', '\'']) {
                Some(at) => &unexpected[..at],
                None => unexpected,
            };
            return format!("{prefix}{kind}{expected}");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest.rfind(", expected ").map_or("", |at| &rest[at..]);
        return format!("unknown variant{expected}");
    }
    message.to_owned()
}

/// Encodes a value as JSON, naming the key on failure.
///
/// The bytes come back in a vector of exactly their length, allocated once:
/// they are written into a scratch buffer of this thread first, which is
/// kept between calls. (`serde_json::to_vec` starts at 128 bytes and
/// doubles: a 1 KiB document costs it an allocation and four reallocations,
/// each copying what it wrote so far.) A scratch buffer grown past 64 KiB
/// by a large value is freed after that call, so a thread keeps at most
/// that much.
pub fn encode<T: Serialize + ?Sized>(op: &'static str, key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let encoded = SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            let written = serde_json::to_writer(&mut *buffer, value).map(|()| buffer.to_vec());
            if buffer.capacity() > SCRATCH_KEPT {
                *buffer = Vec::new();
            }
            written
        }
        // A `Serialize` impl that encodes another value while it runs.
        Err(_) => serde_json::to_vec(value),
    });
    encoded.map_err(|e| StoreError::serialization(op, key, e))
}

/// The largest scratch buffer [`encode`] keeps on a thread between calls.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    /// [`encode`]'s scratch buffer on this thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Profile {
        name: String,
        age: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        Admin,
    }

    fn message<T: DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        decode::<T>("get", "k", json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn decoding_errors_never_quote_the_stored_data() {
        let cases = [
            (
                message::<u32>(r#""SECRET""#),
                "invalid type: string, expected u32 at line 1 column 8",
            ),
            (
                message::<Profile>(r#"{"name": "SECRET", "age": "SECRET"}"#),
                "invalid type: string, expected u32",
            ),
            (
                message::<Role>(r#""SECRET""#),
                "unknown variant, expected `admin`",
            ),
            (
                message::<bool>("77777"),
                "invalid type: integer, expected a boolean",
            ),
            (message::<Profile>(r#"{"name": "SECRET"}"#), "missing field `age`"),
            (
                message::<Profile>("{SECRET"),
                "key must be a string at line 1 column 2",
            ),
        ];
        for (shown, expected) in cases {
            assert!(shown.contains(expected), "{shown:?} should contain {expected:?}");
            assert!(!shown.contains("SECRET") && !shown.contains("77777"), "{shown}");
            assert!(
                shown.starts_with(r#"get "k": the stored value is not a valid "#),
                "{shown}"
            );
        }
    }

    /// Encodes another value while it is encoded (the scratch buffer is
    /// taken then).
    struct Nested(u32);

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let inner = encode("set", "inner", &[self.0, self.0]).map_err(serde::ser::Error::custom)?;
            serializer.serialize_str(&String::from_utf8_lossy(&inner))
        }
    }

    #[test]
    fn encoding_writes_serde_json_bytes_in_a_vector_of_their_length() {
        let small = serde_json::json!({"name": "ada", "tags": ["a", "b"], "n": 1.5});
        let large: Vec<String> = (0..20_000).map(|i| format!("item {i}")).collect();
        let values = [
            small.clone(),
            serde_json::to_value(&large).unwrap(),
            // After a large value, the scratch buffer was freed: still right.
            small,
            serde_json::Value::Null,
        ];
        for value in &values {
            let bytes = encode("set", "k", value).unwrap();
            assert_eq!(bytes, serde_json::to_vec(value).unwrap());
            assert_eq!(bytes.capacity(), bytes.len());
        }
        assert!(values[1].to_string().len() > SCRATCH_KEPT);
        let kept = SCRATCH.with(|scratch| scratch.borrow().capacity());
        assert!(kept <= SCRATCH_KEPT, "{kept}");
    }

    #[test]
    fn a_value_that_encodes_another_while_it_is_encoded_is_encoded_right() {
        let bytes = encode("set", "outer", &Nested(7)).unwrap();
        assert_eq!(bytes, br#""[7,7]""#);
    }

    #[test]
    fn an_encoding_error_names_the_key() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        let error = encode("set", "profile:1", &map).unwrap_err();
        assert!(error.to_string().contains("profile:1"), "{error}");
        // The failed write left the scratch buffer usable.
        assert_eq!(encode("set", "k", &1).unwrap(), b"1");
    }
}
