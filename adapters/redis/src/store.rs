//! [`RedisStore`]: the store every port is implemented on (its connections,
//! key builder and configuration), and `scan_keys`, THE listing of keys.

use std::collections::HashSet;
use std::sync::Arc;

use statehouse_ports::StoreError;

use crate::config::RedisConfig;
use crate::conn::{Connections, ScanNode, Shared};
use crate::keys::Keys;

/// How many times a listing on a cluster starts over after the slots moved
/// during it, before it gives up saying so.
const MAX_LISTINGS: usize = 3;

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
    pub(crate) conns: Connections,
    pub(crate) keys: Arc<Keys>,
    pub(crate) config: Arc<RedisConfig>,
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
        let conns = Connections::open(&config).await?;
        Ok(Self {
            conns,
            keys: Arc::new(Keys::new(&config.prefix)),
            config: Arc::new(config),
        })
    }

    /// The configuration this store was built from.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// THE listing of keys: `SCAN … MATCH rpattern COUNT … [TYPE kind]`
    /// until the cursor comes back to 0 (never `KEYS`, which blocks the
    /// server for the whole scan); on a cluster, on every primary, and
    /// again if the slot map changed meanwhile (a migrating slot's keys may
    /// have been on neither node when each was scanned). `rpattern` is the full Redis pattern
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
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut listings = 0;
        loop {
            let (nodes, generation): (Vec<ScanNode>, u64) = self.conns.scan_nodes(op, label)?;
            for node in nodes {
                tracing::trace!(op, node = %node.addr, "listing keys");
                self.scan_node(op, label, rpattern, kind, node.conn, &mut seen)
                    .await?;
            }
            if !self.conns.is_cluster() {
                break;
            }
            // A slot that moved while its nodes were scanned may have had
            // keys on neither side when they were: list again on the new
            // topology (keys seen twice are kept once), or say so.
            self.conns.refresh_topology().await;
            if self.conns.topology_generation() == generation {
                break;
            }
            listings += 1;
            if listings == MAX_LISTINGS {
                return Err(StoreError::Operation {
                    op,
                    key: label.to_owned(),
                    source: format!(
                        "the cluster's slots moved during each of {MAX_LISTINGS} listings; a listing during a \
                         migration may miss keys, so none is returned: try again"
                    )
                    .into(),
                });
            }
        }
        let mut keys: Vec<String> = seen.iter().map(|raw| self.keys.strip(raw)).collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// `SCAN … MATCH rpattern COUNT … [TYPE kind]` on one node until its
    /// cursor comes back to 0, the keys into `seen`.
    async fn scan_node(
        &self,
        op: &'static str,
        label: &str,
        rpattern: &str,
        kind: Option<&str>,
        mut conn: Shared,
        seen: &mut HashSet<Vec<u8>>,
    ) -> Result<(), StoreError> {
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
                return Ok(());
            }
            cursor = next;
        }
    }
}
