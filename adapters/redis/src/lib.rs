//! Redis adapter of statehouse: every port implemented over redis-rs.
//!
//! # Layout
//!
//! - `config.rs`: [`RedisConfig`] (URL, read URL, prefix, timeouts, pool
//!   size); passwords never show in `Debug`/`Display`.
//! - `redact.rs`: [`redact_url`], the one redaction of URLs, and the secrets
//!   a URL carries (checked against redis-rs error messages).
//! - `conn.rs`: the shared multiplexed connection, the pool of dedicated
//!   connections for WATCH sections, the reader (a second multiplexed
//!   connection, to the read URL, when one is set), and `run`, the one
//!   helper every call goes through (timeout + error mapping with operation
//!   and key).
//! - `error.rs`: the one mapping from redis-rs errors to `StoreError` kinds.
//! - `keys.rs`: where Redis keys and patterns are built (prefix, escaping).
//! - `txn.rs`: the bounded WATCH/MULTI/EXEC loop.
//! - `scripts.rs`: the Lua scripts (run inside that loop's MULTI), loaded
//!   by it on each dedicated connection.
//! - `changes.rs`: [`ChangeFeed`](statehouse_ports::ChangeFeed): a Pub/Sub
//!   connection per subscription, with its own reconnect loop; announced
//!   writes publish in their MULTI/EXEC (`documents.rs`).
//! - `documents.rs`: [`DocumentStore`](statehouse_ports::DocumentStore).
//! - `tasks.rs`: [`TaskRepository`](statehouse_ports::TaskRepository);
//!   reads may go to a read endpoint.
//! - `subjects.rs`: [`SubjectStore`](statehouse_ports::SubjectStore), in
//!   KRules' layout (a hash per subject).
//! - `tenants.rs`: [`FieldStore`](statehouse_ports::FieldStore): tenant
//!   hashes of JSON fields under `t:{<tenant>}:…`.
//! - `triggers.rs`: [`TriggerStore`](statehouse_ports::TriggerStore): a
//!   due-time sorted set per tenant, claimed with leases by scripts.
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
mod queues;
mod redact;
mod scripts;
mod subjects;
mod tasks;
mod tenants;
mod triggers;
mod txn;

use std::sync::Arc;

pub use config::RedisConfig;
pub use conn::TXN_CLIENT_NAME;
pub use redact::redact_url;
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
use statehouse_ports::StoreError;

/// A Redis-backed store implementing every statehouse port.
///
/// Cloning is cheap: clones share the connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), statehouse_ports::StoreError> {
/// use statehouse_redis::{RedisConfig, RedisStore};
///
/// let store = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379").with_prefix("myapp:")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conns: conn::Connections,
    keys: Arc<keys::Keys>,
    config: Arc<RedisConfig>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.config)
            .field("conns", &self.conns)
            .finish()
    }
}

impl RedisStore {
    /// Connects to the server of `config.url`, and to `config.read_url` if
    /// set. Fails fast (within the connect and response timeouts) if either
    /// cannot be reached, naming the endpoint: operation `"connect"` for the
    /// write endpoint, `"connect_read"` for the read one, with the redacted
    /// URL as key. Once connected, lost connections are re-established by
    /// themselves. Dropping the last clone closes every connection.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let conns = conn::Connections::open(&config).await?;
        Ok(Self {
            conns,
            keys: Arc::new(keys::Keys::new(&config.prefix)),
            config: Arc::new(config),
        })
    }

    /// The configuration this store was built from.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// THE listing of keys: `SCAN … MATCH rpattern COUNT … [TYPE kind]`
    /// until the cursor comes back to 0 (never `KEYS`, which blocks the
    /// server for the whole scan). `rpattern` is the full Redis pattern
    /// (prefix included); `label` names the listing in errors. Returns the
    /// keys without the store prefix, sorted, each once (`SCAN` may return
    /// a key more than once while the table is rehashed).
    pub(crate) async fn scan_keys(
        &self,
        op: &'static str,
        label: &str,
        rpattern: &str,
        kind: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conns.shared();
        let mut seen: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(rpattern)
                .arg("COUNT")
                .arg(self.config.scan_count.max(1));
            if let Some(kind) = kind {
                scan.arg("TYPE").arg(kind);
            }
            let (next, batch): (u64, Vec<Vec<u8>>) =
                self.conns.run(op, label, scan.query_async(&mut conn)).await?;
            seen.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut keys: Vec<String> = seen.iter().map(|raw| self.keys.strip(raw)).collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
}
