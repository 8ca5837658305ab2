use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_domain::{Key, KeyPattern, Ttl};
use statehouse_ports::{
    DocumentStore, DocumentStoreExt, KeyStream, KeyTtl, RetryPolicy, SetOptions, StoreError, Update,
    ValidationExt, decode,
};

/// Typed documents: JSON values under string keys.
///
/// Cheap to clone; every clone talks to the same store. Keys are validated
/// (not empty, at most 512 bytes, no control characters): a bad key is
/// [`StoreError::InvalidInput`] naming the rule, before any I/O.
///
/// Values are JSON through serde. The conventions statehouse's own types
/// follow, and that work best across languages: enums as lowercase names
/// (`#[serde(rename_all = "lowercase")]`), timestamps as RFC 3339 in UTC
/// (`chrono::DateTime<Utc>`). A missing key and a stored JSON `null` stay
/// distinct ([`get_raw`](Self::get_raw) shows the difference).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use serde::{Deserialize, Serialize};
/// use statehouse::Statehouse;
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct User { name: String, admin: bool }
///
/// let docs = Statehouse::memory().documents();
/// docs.set("user:1", &User { name: "Ada".into(), admin: true }).await?;
/// let user: Option<User> = docs.get("user:1").await?;
/// assert_eq!(user.unwrap().name, "Ada");
/// assert_eq!(docs.get::<User>("user:2").await?, None);
/// assert_eq!(docs.list_keys("user:*").await?, ["user:1"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Documents {
    store: Arc<dyn DocumentStore>,
    policy: RetryPolicy,
}

fn key(op: &'static str, key: &str) -> Result<Key, StoreError> {
    Key::new(key).for_op(op, key)
}

fn ttl(op: &'static str, key: &str, ttl: Duration) -> Result<Ttl, StoreError> {
    Ttl::new(ttl).for_op(op, key)
}

impl Documents {
    /// Documents over `store`, with the default update [`RetryPolicy`].
    pub fn new(store: Arc<dyn DocumentStore>) -> Self {
        Self {
            store,
            policy: RetryPolicy::default(),
        }
    }

    /// The same documents with another retry policy for [`update`](Self::update).
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The retry policy of [`update`](Self::update).
    pub fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The port as a trait object: calling through `&dyn` rather than the
    /// `Arc` skips the `Arc` forwarding impl and its extra boxed future.
    fn port(&self) -> &dyn DocumentStore {
        self.store.as_ref()
    }

    /// The port underneath, for anything the facade does not cover.
    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }

    /// Stores `value` as JSON under `key`, without expiry (clearing any
    /// previous TTL).
    pub async fn set<T: Serialize + Sync + ?Sized>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let key = self::key("set", key)?;
        self.port()
            .set_json(&key, value, SetOptions::new())
            .await
            .map(drop)
    }

    /// Stores `value` under `key`, expiring after `ttl` (set in the same
    /// atomic step). A TTL of zero is [`StoreError::InvalidInput`], never a
    /// silent delete.
    pub async fn set_with_ttl<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let ttl = self::ttl("set", key, ttl)?;
        let key = self::key("set", key)?;
        self.port()
            .set_json(&key, value, SetOptions::new().ttl(ttl))
            .await
            .map(drop)
    }

    /// Stores `value` under `key` with full [`SetOptions`] (TTL, only if
    /// absent, only if present). Returns whether it was written.
    pub async fn set_with<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<bool, StoreError> {
        let key = self::key("set", key)?;
        self.port().set_json(&key, value, options).await
    }

    /// Stores `value` only if `key` does not exist yet. Returns whether it
    /// was written.
    pub async fn set_if_absent<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<bool, StoreError> {
        self.set_with(key, value, SetOptions::new().if_absent()).await
    }

    /// The value of `key` decoded as `T`; `None` if it does not exist. A
    /// value that does not decode is [`StoreError::Deserialization`] naming
    /// the key and `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let key = self::key("get", key)?;
        self.port().get_json(&key).await
    }

    /// The stored bytes of `key`, undecoded.
    pub async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self::key("get", key)?;
        self.port().get(&key).await
    }

    /// Stores `bytes` under `key` as they are (no JSON encoding).
    pub async fn set_raw(
        &self,
        key: &str,
        bytes: impl AsRef<[u8]> + Send,
        options: SetOptions,
    ) -> Result<bool, StoreError> {
        let key = self::key("set", key)?;
        self.port().set(&key, bytes.as_ref(), options).await
    }

    /// The values of `keys`, one result per key in the same order: the
    /// value, `Ok(None)` if absent, or an error naming that key (an invalid
    /// key, bad JSON, a key of another Redis type). One bad key never fails
    /// the others; the outer error is for the whole call (connection,
    /// timeout). Fetched in one round trip (`MGET`).
    pub async fn mget<T: DeserializeOwned>(
        &self,
        keys: &[impl AsRef<str>],
    ) -> Result<Vec<Result<Option<T>, StoreError>>, StoreError> {
        const OP: &str = "get_many";
        let mut valid = Vec::with_capacity(keys.len());
        let mut invalid = Vec::new();
        for (i, raw) in keys.iter().enumerate() {
            match self::key(OP, raw.as_ref()) {
                Ok(key) => valid.push(key),
                Err(error) => invalid.push((i, error)),
            }
        }
        let fetched = self.port().get_many(&valid).await?;
        if fetched.len() != valid.len() {
            return Err(StoreError::Operation {
                op: OP,
                key: String::new(),
                source: format!(
                    "the store answered {} values for {} keys",
                    fetched.len(),
                    valid.len()
                )
                .into(),
            });
        }
        let mut decoded = valid.iter().zip(fetched).map(|(key, fetched)| match fetched {
            Ok(Some(bytes)) => decode(OP, key.as_str(), &bytes).map(Some),
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        });
        if invalid.is_empty() {
            return Ok(decoded.collect());
        }
        // Put the invalid keys' errors back in their places.
        let mut invalid = invalid.into_iter().peekable();
        Ok((0..keys.len())
            .filter_map(|i| match invalid.next_if(|(at, _)| *at == i) {
                Some((_, error)) => Some(Err(error)),
                None => decoded.next(),
            })
            .collect())
    }

    /// Deletes `key`. Returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let key = self::key("delete", key)?;
        self.port().delete(&key).await
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let key = self::key("exists", key)?;
        self.port().exists(&key).await
    }

    /// Sets the TTL of an existing key. Returns `false` if it does not exist.
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = self::ttl("expire", key, ttl)?;
        let key = self::key("expire", key)?;
        self.port().expire(&key, ttl).await
    }

    /// The remaining life of `key`.
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl, StoreError> {
        let key = self::key("ttl", key)?;
        self.port().ttl(&key).await
    }

    /// Every key matching the Redis glob `pattern` (`*`, `?`, `[a-z]`,
    /// `[^a]`, `\` escapes), each once, in no particular order, as a stream
    /// read page by page (`SCAN`, never `KEYS`): memory stays flat however
    /// many keys match. A bad pattern fails here, before any I/O; see
    /// [`KeyStream`] for errors while reading and the guide
    /// [`crate::guide::listing`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
    /// let docs = statehouse::Statehouse::memory().documents();
    /// docs.set("user:1", &1).await?;
    /// let mut keys = docs.stream_keys("user:*")?;
    /// while let Some(key) = keys.next().await? {
    ///     assert_eq!(key, "user:1");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream_keys(&self, pattern: &str) -> Result<KeyStream, StoreError> {
        let pattern = KeyPattern::new(pattern).for_op("list_keys", pattern)?;
        Ok(self.port().list_keys(&pattern))
    }

    /// [`stream_keys`](Self::stream_keys) collected: every matching key,
    /// each once, sorted. Holds them all: for listings known to be small.
    pub async fn list_keys(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        self.stream_keys(pattern)?.collect_sorted().await
    }

    /// Whether the store answers a ping.
    pub async fn is_alive(&self) -> bool {
        self.port().ping().await.is_ok()
    }

    /// Pings the store, with the reason when it does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.port().ping().await
    }

    /// Atomic read-modify-write of `key`: `f` gets the current value (or
    /// `None`) and returns [`Update::Set`], [`Update::Delete`] or
    /// [`Update::Keep`]. Returns the value stored afterwards. `Set` keeps the
    /// key's TTL.
    ///
    /// `f` **may run more than once**: if another writer changes the key
    /// between the read and the write, the update starts over (after a
    /// jittered backoff), up to the retry policy's attempts, then fails with
    /// [`StoreError::Conflict`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
    /// use statehouse::{Statehouse, Update};
    ///
    /// let docs = Statehouse::memory().documents();
    /// let visits = docs.update("visits", |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1)).await?;
    /// assert_eq!(visits, Some(1));
    /// # Ok(()) }
    /// ```
    pub async fn update<T, F>(&self, key: &str, mut f: F) -> Result<Option<T>, StoreError>
    where
        T: Serialize + DeserializeOwned + Send,
        F: FnMut(Option<T>) -> Update<T> + Send,
    {
        self.try_update(key, |old| Ok::<_, StoreError>(f(old))).await
    }

    /// Like [`update`](Self::update), with a closure that can fail: its error
    /// aborts the update (nothing is written) and is returned as is.
    pub async fn try_update<T, E, F>(&self, key: &str, f: F) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned + Send,
        E: From<StoreError> + Send,
        F: FnMut(Option<T>) -> Result<Update<T>, E> + Send,
    {
        let key = self::key("update", key)?;
        self.port().update_json(&key, self.policy, f).await
    }

    /// Adds `by` to the JSON integer at `key` on the server, in one round
    /// trip (`INCRBY` on Redis), atomically against every process, and
    /// returns the new value: the fast path of a counter, no closure and no
    /// WATCH. A missing key starts at `0` (without a TTL); an existing key
    /// keeps its TTL. A document that is not an integer (`7.5`, `"7"`) is
    /// [`StoreError::Deserialization`], leaving the `i64` range
    /// [`StoreError::InvalidInput`]: both name the key and write nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
    /// let docs = statehouse::Statehouse::memory().documents();
    /// assert_eq!(docs.increment("hits", 5).await?, 5);
    /// assert_eq!(docs.increment("hits", -2).await?, 3);
    /// assert_eq!(docs.get::<i64>("hits").await?, Some(3));
    /// # Ok(()) }
    /// ```
    pub async fn increment(&self, key: &str, by: i64) -> Result<i64, StoreError> {
        let key = self::key("increment", key)?;
        self.store.increment(&key, by).await
    }

    /// Appends `item` (as JSON) to the JSON array at `key` on the server, in
    /// one round trip (a script on Redis), atomically against every
    /// process, and returns the array's new length. A missing key becomes
    /// `[item]` (without a TTL); an existing key keeps its TTL. A document
    /// that is not a JSON array is [`StoreError::Deserialization`] naming
    /// the key, and nothing is written.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
    /// let docs = statehouse::Statehouse::memory().documents();
    /// assert_eq!(docs.append("inbox", "hello").await?, 1);
    /// assert_eq!(docs.append("inbox", "again").await?, 2);
    /// assert_eq!(docs.get::<Vec<String>>("inbox").await?, Some(vec!["hello".into(), "again".into()]));
    /// # Ok(()) }
    /// ```
    pub async fn append<T: Serialize + Sync + ?Sized>(
        &self,
        key: &str,
        item: &T,
    ) -> Result<usize, StoreError> {
        const OP: &str = "append";
        let key = self::key(OP, key)?;
        let item = statehouse_ports::encode(OP, key.as_str(), item)?;
        self.store.append(&key, &item).await
    }
}
