//! The memory twin of the Redis listing (`SCAN` page by page): a
//! [`KeyStream`] of the keys matching a glob, [`PAGE`] keys at a time.
//!
//! The keyspace is a `HashMap`, which has no cursor to resume from, so the
//! first read takes the matching keys under the lock (their names only,
//! sorted) and later reads hand them out page by page. Memory is bounded by
//! the matching keys, not by the keyspace; a listing that is never read
//! takes nothing. What `SCAN` promises holds: every key matching for the
//! whole listing is yielded once; a key written or deleted after the first
//! read may or may not be (here: is not, or still is).

use std::sync::Arc;

use async_trait::async_trait;
use statehouse_ports::{KeyPages, KeyStream, StoreError};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::glob;
use crate::store::{Keyspace, Value};

/// Keys per page, as the Redis adapter's default `SCAN … COUNT`.
pub(crate) const PAGE: usize = 1000;

/// The keys a listing takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Every key (documents).
    Any,
    /// Hashes only (`SCAN … TYPE hash`: subjects, tenant records).
    Hash,
}

impl MemoryStore {
    /// The live keys matching the Redis glob `pattern` (and `kind`), each
    /// once, as a stream (nothing is read until the stream is).
    pub(crate) fn scan_stream(&self, pattern: String, kind: Kind) -> KeyStream {
        KeyStream::new(Snapshot {
            keyspace: self.keyspace.clone(),
            pattern,
            kind,
            keys: None,
        })
    }
}

/// The pages of one listing.
#[derive(Debug)]
struct Snapshot {
    keyspace: Arc<Keyspace>,
    pattern: String,
    kind: Kind,
    /// The matching keys not handed out yet, once taken.
    keys: Option<std::vec::IntoIter<String>>,
}

#[async_trait]
impl KeyPages for Snapshot {
    async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        let keys = self.keys.get_or_insert_with(|| {
            let now = Instant::now();
            let state = self.keyspace.lock();
            let mut keys: Vec<String> = state
                .live_entries(now)
                .filter(|(key, value)| {
                    (self.kind == Kind::Any || matches!(value, Value::Hash(_)))
                        && glob::matches(self.pattern.as_bytes(), key.as_bytes())
                })
                .map(|(key, _)| key.clone())
                .collect();
            drop(state);
            keys.sort_unstable();
            keys.into_iter()
        });
        let page: Vec<String> = keys.by_ref().take(PAGE).collect();
        Ok((!page.is_empty()).then_some(page))
    }
}
