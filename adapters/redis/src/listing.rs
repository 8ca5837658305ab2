//! THE listing of keys: `SCAN cursor MATCH pattern COUNT n [TYPE kind]`,
//! one step per page of a [`KeyStream`], over a list of nodes (never
//! `KEYS`, which blocks the server for the whole scan; never collected,
//! so memory stays flat however many keys match).
//!
//! - The nodes: `Connections::scan_nodes`, the one server (the shared
//!   connection), or on a cluster every primary, each scanned through a
//!   handle that sends every command to that node. A cluster listing also
//!   compares the topology generation at its end with the one at its start:
//!   if slots moved meanwhile it fails saying so (keys of a moving slot may
//!   have been on neither node when each was scanned).
//! - Each key once: `SCAN` returns every key present for the whole scan,
//!   but may return one more than once, which happens only when the hash
//!   table shrinks between two steps (a cursor taken with the larger table
//!   then points at a bucket that now also holds buckets already visited,
//!   the ones visited just before it). The stream drops a key repeated
//!   within a page or from the node's previous page: two pages of keys in
//!   memory. A shrink larger than one step's reach (mass deletion while
//!   listing) can still repeat a key, as `SCAN` allows; never a miss.
//! - A node that changes under the listing: every step is pipelined with
//!   `INFO server` (no extra round trip) and the node's `run_id` compared
//!   with the one of its first step. A reconnect to the same server is
//!   harmless (the cursor is the server's, stateless), but a cursor does
//!   not carry over to another process (restart, failover: another hash
//!   seed, other buckets), so keys could be missed: the listing fails with
//!   an error saying so, and keeps failing, rather than ending as if
//!   complete. `docs/listing.md` has the whole story.
//! - An error (timeout, lost connection) leaves the listing at its cursor:
//!   reading again repeats that step (the `Retrying` layer does it).

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use statehouse_ports::{KeyPages, KeyStream, StoreError};

use crate::conn::ScanNode;
use crate::store::RedisStore;

impl fmt::Debug for ScanNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanNode")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What a listing lists.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    /// The operation, for errors.
    pub(crate) op: &'static str,
    /// The pattern as the caller gave it (without the store prefix), for
    /// errors.
    pub(crate) label: String,
    /// The full Redis pattern, prefix included.
    pub(crate) rpattern: String,
    /// `SCAN … TYPE kind`: only keys of this Redis type.
    pub(crate) kind: Option<&'static str>,
}

impl RedisStore {
    /// THE listing of keys: the keys matching `listing` on every node of
    /// `Connections::scan_nodes` (the server, or each primary of a
    /// cluster), without the store prefix, each once, page by page (no I/O
    /// until the stream is read).
    pub(crate) fn scan_stream(&self, listing: Listing) -> KeyStream {
        KeyStream::new(Scan {
            store: self.clone(),
            listing,
            nodes: None,
            current: None,
            previous: HashSet::new(),
        })
    }
}

/// The node being scanned: where its cursor is, and who answered its
/// first step.
#[derive(Debug)]
struct NodeScan {
    node: ScanNode,
    cursor: u64,
    run_id: Option<String>,
}

/// The pages of one listing.
struct Scan {
    store: RedisStore,
    listing: Listing,
    /// The nodes not started yet, and the cluster's topology generation
    /// when they were read (taken at the first page).
    nodes: Option<(std::vec::IntoIter<ScanNode>, u64)>,
    current: Option<NodeScan>,
    /// The raw keys of the current node's previous page (the dedupe
    /// window, see the module doc).
    previous: HashSet<Vec<u8>>,
}

impl fmt::Debug for Scan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scan")
            .field("listing", &self.listing)
            .field("current", &self.current)
            .field("nodes_left", &self.nodes.as_ref().map(|(nodes, _)| nodes.len()))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyPages for Scan {
    async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        if self.current.is_none() {
            let conns = &self.store.conns;
            if self.nodes.is_none() {
                let (nodes, generation) = conns.scan_nodes(self.listing.op, &self.listing.label)?;
                self.nodes = Some((nodes.into_iter(), generation));
            }
            let Some((nodes, generation)) = self.nodes.as_mut() else {
                return Ok(None);
            };
            let Some(node) = nodes.next() else {
                // On a cluster, a slot that moved while its nodes were
                // scanned may have had keys on neither side when each was:
                // say so rather than end short.
                if conns.is_cluster() {
                    conns.refresh_topology().await;
                    if conns.topology_generation() != *generation {
                        return Err(topology_changed(&self.listing));
                    }
                }
                return Ok(None);
            };
            self.previous.clear();
            self.current = Some(NodeScan {
                node,
                cursor: 0,
                run_id: None,
            });
        }
        let Some(current) = self.current.as_mut() else {
            return Ok(None);
        };
        let (next, batch, run_id) = step(&self.store, &self.listing, current).await?;
        // Nothing changes before the step is known good: an error leaves
        // the cursor, so reading again repeats the step.
        if let Some(run_id) = run_id {
            match &current.run_id {
                None => current.run_id = Some(run_id),
                Some(first) if *first == run_id => {}
                Some(first) => return Err(node_changed(&self.listing, &current.node, first, &run_id)),
            }
        }
        let mut page = Vec::with_capacity(batch.len());
        let mut seen = HashSet::with_capacity(batch.len());
        for raw in batch {
            if seen.contains(&raw) {
                continue;
            }
            if !self.previous.contains(&raw) {
                page.push(self.store.keys.strip(&raw));
            }
            // Repeats too: the window is everything this step returned.
            seen.insert(raw);
        }
        self.previous = seen;
        if next == 0 {
            self.current = None;
        } else {
            current.cursor = next;
        }
        Ok(Some(page))
    }
}

/// One `SCAN` step on the current node, pipelined with `INFO server`:
/// the next cursor, the raw keys, and the `run_id` of the server that
/// answered (`None` if it does not say).
async fn step(
    store: &RedisStore,
    listing: &Listing,
    current: &NodeScan,
) -> Result<(u64, Vec<Vec<u8>>, Option<String>), StoreError> {
    let mut pipe = redis::pipe();
    pipe.cmd("SCAN")
        .arg(current.cursor)
        .arg("MATCH")
        .arg(&listing.rpattern)
        .arg("COUNT")
        .arg(store.config.scan_count.max(1));
    if let Some(kind) = listing.kind {
        pipe.arg("TYPE").arg(kind);
    }
    pipe.cmd("INFO").arg("server");
    let mut conn = current.node.conn.clone();
    let ((next, batch), info): ((u64, Vec<Vec<u8>>), String) = store
        .conns
        .run(listing.op, &listing.label, pipe.query_async(&mut conn))
        .await?;
    Ok((next, batch, run_id(&info)))
}

/// The `run_id` field of an `INFO server` answer.
fn run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// The error of a cluster listing during which slots moved.
fn topology_changed(listing: &Listing) -> StoreError {
    StoreError::Operation {
        op: listing.op,
        key: listing.label.clone(),
        source: "the cluster's slots moved during the listing (a resharding or a failover); keys of a \
                 moving slot may have been on neither node when each was scanned, so the listing stops \
                 here rather than end short: list again"
            .into(),
    }
}

/// The error of a listing whose node is now another server.
fn node_changed(listing: &Listing, node: &ScanNode, first: &str, now: &str) -> StoreError {
    let which = if node.addr.is_empty() {
        "the server".to_owned()
    } else {
        format!("node {}", node.addr)
    };
    StoreError::Operation {
        op: listing.op,
        key: listing.label.clone(),
        source: format!(
            "{which} changed during the listing (run_id {first} is now {now}: it restarted or \
             failed over); a SCAN cursor does not carry over to another server, so keys could \
             be missed: list again"
        )
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::run_id;

    #[test]
    fn run_id_is_read_from_info_server() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:4f3c2a\r\ntcp_port:6379\r\n";
        assert_eq!(run_id(info).as_deref(), Some("4f3c2a"));
        assert_eq!(run_id("# Server\r\nredis_version:7.0.15\r\n"), None);
        assert_eq!(run_id("run_id:\r\n"), None);
    }
}
