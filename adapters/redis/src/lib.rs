//! Redis adapter of statehouse: every port implemented over redis-rs.
//!
//! # Layout
//!
//! - `config.rs`: [`RedisConfig`] (URL, read URL, prefix, timeouts, pool
//!   size); passwords never show in `Debug`/`Display`.
//! - `redact.rs`: [`redact_url`], the one redaction of URLs, and the secrets
//!   a URL carries (checked against redis-rs error messages).
//! - `conn/`: `mod.rs` the `Shared` handle every family sends through and
//!   `run`, the one helper every call goes through (timeout + error mapping
//!   with operation and key); `single.rs` one server (the shared
//!   multiplexed connection, the reader: a second multiplexed connection,
//!   to the read URL, when one is set); `pool.rs` the pool of dedicated
//!   connections for WATCH sections; `cluster/` a Redis Cluster
//!   (`redis+cluster://h1:p1,h2:p2`): redis-rs' cluster connection, a slot
//!   map and a pool per primary; `targets.rs` where a WATCH section runs
//!   and how it follows a redirect (see `docs/scaling.md`).
//! - `error.rs`: the one mapping from redis-rs errors to `StoreError` kinds.
//! - `store.rs`: [`RedisStore`] (its connections, key builder and
//!   configuration).
//! - `listing.rs`: `scan_stream`, the one listing of keys: `SCAN` page by
//!   page over the nodes of `scan_nodes`, as a `KeyStream`.
//! - `keys.rs`: where Redis keys and patterns are built (prefix, escaping).
//! - `txn.rs`: the bounded WATCH/MULTI/EXEC loop.
//! - `scripts/`: the Lua scripts (run inside that loop's MULTI), loaded
//!   by it on each dedicated connection.
//! - `changes.rs`: [`ChangeFeed`](statehouse_ports::ChangeFeed): a Pub/Sub
//!   connection per subscription, with its own reconnect loop; announced
//!   writes publish in their MULTI/EXEC (`documents.rs`).
//! - `documents.rs`: [`DocumentStore`](statehouse_ports::DocumentStore).
//! - `tasks.rs`: [`TaskRepository`](statehouse_ports::TaskRepository);
//!   reads may go to a read endpoint.
//! - `subjects.rs`: [`SubjectStore`](statehouse_ports::SubjectStore), in
//!   KRules' layout (a hash per subject).
//! - `synced.rs`: [`SyncedStore`](statehouse_ports::SyncedStore): synced
//!   models under `{Type}:{id}`, a hash of fields or a JSON string.
//! - `tenants.rs`: [`FieldStore`](statehouse_ports::FieldStore): tenant
//!   hashes of JSON fields under `t:{<tenant>}:…`.
//! - `triggers/`: [`TriggerStore`](statehouse_ports::TriggerStore): a
//!   due-time sorted set per tenant, claimed with leases by scripts
//!   (`mod.rs`); the cross-tenant due index in shards of their own hash
//!   tags (`index.rs`).
//! - `queues.rs`: [`QueueStore`](statehouse_ports::QueueStore): per-tenant
//!   lists with leased claims by scripts; a per-service pending set.
//!
//! # Architecture invariants
//!
//! - Never `KEYS`: listing is `SCAN … COUNT`.
//! - Every call is under a timeout; a dead or paused server gives
//!   `Timeout`/`Connection` within [`RedisConfig::response_timeout`], and the
//!   shared connection reconnects by itself.
//! - WATCH runs only on dedicated pooled connections, which are never handed
//!   back with a WATCH still open.
//! - TTLs are set in the same command or transaction as the write.
//! - No extra round trip per call (no PING before commands).

mod changes;
mod config;
mod conn;
mod documents;
mod error;
mod keys;
mod listing;
mod queues;
mod redact;
mod scripts;
mod store;
mod subjects;
mod synced;
mod tasks;
mod tenants;
mod triggers;
mod txn;

pub use config::RedisConfig;
pub use conn::TXN_CLIENT_NAME;
pub use redact::redact_url;
/// The Lua source of the document compare-and-set (a config update), for the
/// benchmark's raw side. Not a stable API.
#[doc(hidden)]
pub use scripts::DOC_SWAP_CODE;
/// The Lua source of the task-write script, for the benchmark's raw side
/// (which must run the same commands). Not a stable API.
#[doc(hidden)]
pub use scripts::TASK_WRITE_CODE as TASK_WRITE_SCRIPT;
/// The Lua source of the tenant increment script, for the benchmark's raw
/// side. Not a stable API.
#[doc(hidden)]
pub use scripts::TENANT_INCREMENT_CODE as TENANT_INCREMENT_SCRIPT;
/// The Lua sources of the trigger and queue scripts, for the benchmark's
/// raw side. Not a stable API.
#[doc(hidden)]
pub use scripts::{
    QUEUE_ACK_CODE, QUEUE_CLAIM_CODE, QUEUE_ENQUEUE_CODE, TRIGGER_ACK_CODE, TRIGGER_CLAIM_CODE,
};
/// The Lua sources of the due index's scripts and the trigger set, for the
/// benchmark's raw side. Not a stable API.
#[doc(hidden)]
pub use scripts::{TRIGGER_MARK_CODE, TRIGGER_REFILE_CODE, TRIGGER_SET_CODE, TRIGGER_TAKE_CODE};
pub use store::RedisStore;
