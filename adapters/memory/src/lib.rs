//! In-memory adapter of statehouse: every port with the same observable
//! behaviour as the Redis adapter, for tests and for embedded use.
//!
//! # Layout
//!
//! - `store/`: the keyspace (one map of typed values shared by every port,
//!   like one Redis database; `value.rs` the values, `state.rs` the contents
//!   under the lock), expiry bookkeeping, and per-key watch counters for
//!   optimistic updates (`Keyspace::optimistic`, under `RetryPolicy::run`).
//! - `glob.rs`: Redis' glob matcher, ported from `stringmatchlen`.
//! - `listing.rs`: the listings (`SCAN`'s twin), streamed page by page.
//! - `changes.rs`: [`ChangeFeed`](statehouse_ports::ChangeFeed): every change
//!   of the keyspace, expiry included, told to the subscribers watching it.
//! - `documents.rs`: [`DocumentStore`](statehouse_ports::DocumentStore).
//! - `tasks.rs`: [`TaskRepository`](statehouse_ports::TaskRepository):
//!   records as strings, indexes as sorted sets, under the same keys as on
//!   Redis.
//!
//! - `subjects.rs`: [`SubjectStore`](statehouse_ports::SubjectStore): a
//!   hash per subject, KRules' layout, as on Redis.
//! - `synced.rs`: [`SyncedStore`](statehouse_ports::SyncedStore): a
//!   synced model as a hash or a string, the same keys and steps as on Redis.
//! - `tenants.rs`: [`FieldStore`](statehouse_ports::FieldStore): tenant
//!   hashes of JSON fields, the same keys and atomic steps as on Redis.
//! - `triggers/`: [`TriggerStore`](statehouse_ports::TriggerStore): due
//!   times in a sorted set, claims with leases, on the keyspace's clock
//!   (`mod.rs`); the cross-tenant due index (`index.rs`).
//! - `queues.rs`: [`QueueStore`](statehouse_ports::QueueStore): lists of
//!   item ids, payloads in a hash, leases in a sorted set, as on Redis.
//!
//! # Behaviour shared with Redis
//!
//! - Time is `tokio::time`: under `tokio::time::pause()` a test advances the
//!   clock and keys expire exactly when Redis would expire them. An expired
//!   key is never readable; a background task (and every write) purges them.
//! - Updates are optimistic: read, run the closure without holding the lock,
//!   commit only if no write touched the key in between, else back off and
//!   retry under the same [`RetryPolicy`](statehouse_ports::RetryPolicy)
//!   and give up with the same `Conflict` error.
//! - Keys have types: a document operation on a key holding a hash fails
//!   with `WrongType`, as on Redis.
//!
//! Architecture invariant: no behaviour that the contract suite does not pin;
//! anything observable here is also observable on Redis.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use statehouse_domain::Key;
//! use statehouse_memory::MemoryStore;
//! use statehouse_ports::{DocumentStoreExt, SetOptions};
//!
//! let store = MemoryStore::new();
//! let key = Key::new("greeting")?;
//! store.set_json(&key, "hello", SetOptions::new()).await?;
//! assert_eq!(store.get_json::<String>(&key).await?.as_deref(), Some("hello"));
//! # Ok(()) }
//! ```
//!
//! Code written against the ports runs on any backend, so its unit tests
//! need only `statehouse-ports` and this crate (no `statehouse`, no Redis):
//!
//! ```
//! use std::sync::Arc;
//!
//! use statehouse_ports::{DocumentStore, DocumentStoreExt, Key, RetryPolicy, StoreError, Update, ValidationExt};
//!
//! /// The code under test: counts a visit of `user`, knowing only the port.
//! async fn visit(store: &dyn DocumentStore, user: &str) -> Result<u64, StoreError> {
//!     let key = Key::new(format!("visits:{user}")).for_op("visit", user)?;
//!     let count = store
//!         .update_json(&key, RetryPolicy::default(), |n: Option<u64>| {
//!             Ok::<_, StoreError>(Update::Set(n.unwrap_or(0) + 1))
//!         })
//!         .await?;
//!     Ok(count.unwrap_or(0))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), StoreError> {
//! // The unit test: the in-memory adapter behind the port.
//! let store: Arc<dyn DocumentStore> = Arc::new(statehouse_memory::MemoryStore::new());
//! assert_eq!(visit(store.as_ref(), "ada").await?, 1);
//! assert_eq!(visit(store.as_ref(), "ada").await?, 2);
//! # Ok(()) }
//! ```

mod changes;
mod documents;
mod glob;
mod listing;
mod queues;
mod store;
mod subjects;
mod synced;
mod tasks;
mod tenants;
mod triggers;

use std::sync::Arc;

use statehouse_domain::Key;
use statehouse_ports::Durability;
use store::{Keyspace, Value};

/// An in-memory store implementing every statehouse port.
///
/// Cloning is cheap and clones share the same data (like two connections to
/// one Redis). Create it inside a tokio runtime to get the background purge
/// of expired keys; outside one, expired keys are still never readable and
/// are purged by later writes.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    keyspace: Arc<Keyspace>,
    /// The lanes of its combined updates (`Rounds`).
    rounds: statehouse_ports::Rounds,
    /// How many replicas a write must reach: none can, as on a server
    /// without replicas (`store::unreplicated`).
    durability: Durability,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            keyspace: Keyspace::new(),
            rounds: statehouse_ports::Rounds::default(),
            durability: Durability::Primary,
        }
    }

    /// The same store with combining of concurrent updates of one key on
    /// (the default) or off (every update its own optimistic round at
    /// once, not queued in a lane; `docs/hotkeys.md`).
    #[must_use]
    pub fn with_combining(mut self, on: bool) -> Self {
        self.rounds = statehouse_ports::Rounds::switched(on);
        self
    }

    /// The same store (the same data) with writes acknowledged as
    /// `durability` says. The memory store has no replicas: with one or
    /// more asked for, every write is applied and then fails with
    /// [`StoreError::NotDurable`](statehouse_ports::StoreError::NotDurable),
    /// as on a Redis server without replicas.
    #[must_use]
    pub fn with_durability(&self, durability: Durability) -> Self {
        Self {
            keyspace: Arc::clone(&self.keyspace),
            // Lanes of its own: a round is written with its leader's
            // durability.
            rounds: self.rounds.fresh(),
            durability,
        }
    }

    /// `write` (one write of `op` on `key`), checked against the
    /// durability once it succeeded.
    async fn replicated<T>(
        &self,
        op: &'static str,
        key: &str,
        write: impl std::future::Future<Output = Result<T, statehouse_ports::StoreError>>,
    ) -> Result<T, statehouse_ports::StoreError> {
        let value = write.await?;
        self.unreplicated(op, key)?;
        Ok(value)
    }

    /// After a write of `op` on `key`: the durability check
    /// (`store::unreplicated`).
    fn unreplicated(&self, op: &'static str, key: &str) -> Result<(), statehouse_ports::StoreError> {
        store::unreplicated(self.durability, op, key)
    }

    /// A combined update of one JSON field of the hash `key` (a subject's
    /// property, a tenant record's field), in the lane `lane` of the
    /// store's field combiner: one read of the field per round
    /// (`Keyspace::combined`), each caller's closure `f` on the value as
    /// `decode` reads it (its errors its own), then `write` of the final
    /// value (as `encode` made it) once. Answers `(old, new, attempts)`;
    /// `None` when combining is off (the caller runs its own round).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    async fn combined_field(
        &self,
        op: &'static str,
        (lane, key, field): (&str, &str, &[u8]),
        policy: statehouse_ports::RetryPolicy,
        f: &mut statehouse_ports::JsonFieldFn<'_>,
        decode: impl Fn(&[u8]) -> Result<statehouse_ports::JsonValue, statehouse_ports::StoreError> + Send,
        encode: impl Fn(&statehouse_ports::JsonValue) -> Vec<u8> + Send,
        mut write: impl FnMut(&mut store::State, tokio::time::Instant, Vec<u8>) + Send,
    ) -> Option<
        Result<
            (
                Option<statehouse_ports::JsonValue>,
                statehouse_ports::JsonValue,
                u32,
            ),
            statehouse_ports::StoreError,
        >,
    > {
        use statehouse_ports::{FieldStep, Role, StoreError, field_result, field_step};
        let mut ticket = self.rounds.fields.join(lane, policy)?;
        let mut own: FieldStep = None;
        let outcome = {
            let mut apply = field_step((op, key), f, decode, encode, &mut own);
            match ticket.wait(op, key, &mut apply).await {
                Role::Finished(outcome) => outcome,
                Role::Lead(mut pass) => {
                    let read = |state: &mut store::State, now| {
                        state
                            .hget(key, field, now)
                            .map_err(|()| StoreError::wrong_type(op, key))
                    };
                    let commit = |state: &mut store::State, now, value: Option<Vec<u8>>| {
                        write(state, now, value.unwrap_or_default());
                        Ok(())
                    };
                    let section = self.section(policy);
                    let outcome = (self.keyspace)
                        .combined(op, key, &[key], section, &mut pass, &mut apply, read, commit)
                        .await;
                    pass.finish(&outcome);
                    outcome
                }
            }
        };
        Some(field_result(op, key, own, outcome))
    }

    /// The retry policy of an optimistic section with this store's
    /// durability.
    fn section(&self, policy: statehouse_ports::RetryPolicy) -> (statehouse_ports::RetryPolicy, Durability) {
        (policy, self.durability)
    }

    /// Stores a hash under `key`, replacing what was there, as `HSET` on a
    /// fresh key would. Test support: lets a suite put a value of another
    /// Redis type under a key, to check that document operations reject it.
    #[doc(hidden)]
    pub fn insert_hash_for_tests(&self, key: &Key, field: &str, value: &[u8]) {
        let hash = [(field.as_bytes().to_vec(), value.to_vec())]
            .into_iter()
            .collect();
        self.keyspace.lock().put(key.as_str(), Value::Hash(hash), None);
    }

    /// Writes one raw field of the hash under `key` (creating the hash), as
    /// `HSET key field value` would. Test support: lets a suite plant bad
    /// data (invalid JSON, unmarked fields) in a subject. `false` if the key
    /// holds another type (nothing written).
    #[doc(hidden)]
    pub fn hset_for_tests(&self, key: &str, field: &[u8], value: &[u8]) -> bool {
        self.keyspace
            .lock()
            .hset_hdel(key, &[(field, value)], &[], tokio::time::Instant::now())
            .is_ok()
    }

    /// One raw field of the hash under `key`, as `HGET` would read it
    /// (`None` for a missing key, field, or a key of another type). Test
    /// support: lets a suite check the stored bytes.
    #[doc(hidden)]
    pub fn hget_for_tests(&self, key: &str, field: &[u8]) -> Option<Vec<u8>> {
        self.keyspace
            .lock()
            .hget(key, field, tokio::time::Instant::now())
            .ok()
            .flatten()
    }

    /// `ZADD key score member` (creating the sorted set, without expiry).
    /// Test support: lets a suite plant index entries of another layout.
    /// `false` if the key holds another type (nothing written).
    #[doc(hidden)]
    pub fn zadd_for_tests(&self, key: &str, member: &str, score: f64) -> bool {
        self.keyspace
            .lock()
            .edit_zset(key, tokio::time::Instant::now(), |zset| {
                zset.insert(member, score)
            })
            .is_ok()
    }
}
