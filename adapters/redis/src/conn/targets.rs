//! Where a WATCH section runs and how it recovers when a cluster node
//! redirects it; the nodes a listing scans and a change feed listens to.

use std::sync::Arc;
use std::time::Duration;

use redis::{Client, RedisError};
use statehouse_domain::layout::hash_slot;
use statehouse_ports::{Backoff, ErrorKind, StoreError};

use super::pool::ConnectError;
use super::{Connections, Deployment, PooledTxn, Shared};
use crate::error::{self, Redirect, redirect_of};

/// Where a WATCH section runs (see [`Connections::dedicated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The server; on a cluster, the primary owning this slot per the map.
    Slot(Option<u16>),
    /// The node a redirect named; with `asking`, every command of the
    /// section is preceded by `ASKING` (its slot is being migrated there).
    Node { addr: String, asking: bool },
}

impl Target {
    /// Whether commands must be preceded by `ASKING`.
    pub(crate) fn asking(&self) -> bool {
        matches!(self, Target::Node { asking: true, .. })
    }
}

/// What to do after a section failed before EXEC answered
/// ([`Connections::recover`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Run the section again (from WATCH), at the target it was given.
    Repeat,
    /// Report the error.
    Fail,
}

/// A failure of a WATCH section before EXEC answered: a redis-rs error
/// (WATCH, the reads, a transaction aborted by a redirect) or a store error
/// (taking a connection).
#[derive(Debug)]
pub(crate) enum SectionFailure<'e> {
    Redis(&'e RedisError),
    Store(&'e StoreError),
}

/// One node to list keys on ([`Connections::scan_nodes`]).
#[derive(Clone)]
pub(crate) struct ScanNode {
    /// `host:port` on a cluster; empty for a single server.
    pub(crate) addr: String,
    /// Every command sent through it goes to that node.
    pub(crate) conn: Shared,
}

impl Connections {
    /// Where the WATCH section over `watched` (Redis keys) runs: the server,
    /// or on a cluster the primary owning their slot, after checking that
    /// they share one (an error naming the keys otherwise: one atomic step
    /// cannot span slots).
    pub(crate) fn route(&self, op: &'static str, key: &str, watched: &[&str]) -> Result<Target, StoreError> {
        if !self.is_cluster() {
            return Ok(Target::Slot(None));
        }
        let mut slots = watched.iter().map(|raw| (*raw, hash_slot(raw.as_bytes())));
        let Some((first, slot)) = slots.next() else {
            return Ok(Target::Slot(None));
        };
        if let Some((other, other_slot)) = slots.find(|(_, other)| *other != slot) {
            return Err(StoreError::invalid_input(
                op,
                key,
                format!(
                    "keys {first:?} (slot {slot}) and {other:?} (slot {other_slot}) are in different hash \
                     slots; one atomic step on a Redis Cluster needs one slot (give them one hash tag)"
                ),
            ));
        }
        Ok(Target::Slot(Some(slot)))
    }

    /// What to do after a WATCH section at `target` failed with `failure`
    /// before EXEC answered (nothing was written). On a cluster: a
    /// redirect moves the section where it points (`MOVED`: the new owner,
    /// the slot map refreshed; `ASK`: the importing node, with `ASKING`);
    /// `TRYAGAIN`/`CLUSTERDOWN` and a dropped or refused connection (a
    /// failover) refresh the map and repeat at the slot's owner after a
    /// pause; the attempt's deadline bounds it all. On one server: WATCH
    /// or the reads failing on a dead connection are repeated once per
    /// update (`fresh`), on a new one; nothing else is.
    pub(crate) async fn recover(
        &self,
        failure: SectionFailure<'_>,
        target: &mut Target,
        home: Option<u16>,
        fresh: &mut bool,
        pause: &mut Backoff,
    ) -> Recovery {
        let Deployment::Cluster(cluster) = &self.deployment else {
            // A pooled connection that died while idle (what maps to
            // `Connection`, not a timeout: the server may be there).
            let dropped = match failure {
                SectionFailure::Redis(error) => {
                    error::map("", "", error.clone(), Duration::ZERO).kind() == ErrorKind::Connection
                }
                SectionFailure::Store(_) => false,
            };
            if let Deployment::Sentinel(sentinel) = &self.deployment
                && let SectionFailure::Redis(error) = failure
            {
                sentinel.suspect_error(error);
            }
            if dropped && !*fresh {
                *fresh = true;
                return Recovery::Repeat;
            }
            return Recovery::Fail;
        };
        let redirect = match failure {
            SectionFailure::Redis(error) => match redirect_of(error) {
                Some(redirect) => Some(redirect),
                None if error.is_io_error()
                    || error.kind() == redis::ErrorKind::ClusterConnectionNotFound =>
                {
                    None
                }
                None => return Recovery::Fail,
            },
            SectionFailure::Store(error) if error.is_retryable() => None,
            SectionFailure::Store(_) => return Recovery::Fail,
        };
        let nodes = &cluster.shared.nodes;
        let seen = nodes.refreshes();
        tracing::debug!(
            ?redirect,
            ?target,
            "cluster: WATCH section redirected; repeating it"
        );
        match redirect {
            Some(Redirect::Moved { node, .. }) => {
                // Best effort: the node the answer names is where to go.
                let _ = nodes.refresh_after(seen).await;
                *target = Target::Node {
                    addr: node,
                    asking: false,
                };
            }
            Some(Redirect::Ask { node, .. }) => {
                *target = Target::Node {
                    addr: node,
                    asking: true,
                };
            }
            Some(Redirect::Wait) | None => {
                tokio::time::sleep(pause.next_delay()).await;
                let _ = nodes.refresh_after(seen).await;
                *target = Target::Slot(home);
            }
        }
        Recovery::Repeat
    }

    /// A dedicated connection for a WATCH section at `target`.
    pub(crate) async fn dedicated(
        &self,
        op: &'static str,
        key: &str,
        target: &Target,
    ) -> Result<PooledTxn, StoreError> {
        let node;
        let current;
        let taken = match &self.deployment {
            Deployment::Single(single) => super::pool::checkout(&single.pool).await,
            Deployment::Sentinel(sentinel) => {
                current = sentinel.current();
                super::pool::checkout(&current.pool).await
            }
            Deployment::Cluster(cluster) => {
                let nodes = &cluster.shared.nodes;
                let found = match target {
                    Target::Node { addr, .. } => Some(nodes.node(addr)),
                    Target::Slot(Some(slot)) => nodes.owner(*slot).transpose(),
                    Target::Slot(None) => nodes.primaries().map(|all| all.into_iter().next()).transpose(),
                };
                node = match found {
                    Some(found) => found.map_err(|error| relabel_key(error, op, key))?,
                    None => {
                        return Err(StoreError::Connection {
                            op,
                            key: key.to_owned(),
                            source: "no primary of the cluster serves this key's slot now".into(),
                        });
                    }
                };
                node.checkout(self.connect_timeout).await
            }
        };
        match taken {
            Ok(conn) => Ok(conn),
            Err(bb8::RunError::User(ConnectError { error, bound })) => {
                Err(error::map_guarded(op, key, error, bound, &self.secrets))
            }
            Err(bb8::RunError::TimedOut) => Err(StoreError::Timeout {
                op,
                key: key.to_owned(),
                after: self.pool_wait,
            }),
        }
    }

    /// The clients of the nodes whose Pub/Sub a change feed listens to:
    /// the server, or every primary of a cluster (keyspace notifications
    /// are per node), each with its `host:port` (empty for a server).
    pub(crate) fn pubsub_nodes(
        &self,
        op: &'static str,
        label: &str,
    ) -> Result<Vec<(String, Client)>, StoreError> {
        match &self.deployment {
            Deployment::Single(single) => Ok(vec![(String::new(), single.client.clone())]),
            Deployment::Sentinel(sentinel) => Ok(vec![(String::new(), sentinel.current().client.clone())]),
            Deployment::Cluster(cluster) => Ok(cluster
                .shared
                .nodes
                .primaries()
                .map_err(|error| relabel_key(error, op, label))?
                .iter()
                .map(|node| (node.addr.clone(), node.client.clone()))
                .collect()),
        }
    }

    /// Loads every script (`load`, `scripts::load_all`) where the shared
    /// connection sends them: the server, or every primary of a cluster.
    pub(crate) async fn load_scripts(
        &self,
        op: &'static str,
        key: &str,
        load: &redis::Pipeline,
    ) -> Result<(), StoreError> {
        match &self.deployment {
            Deployment::Single(single) => {
                let mut conn = Shared::Single(single.shared.clone());
                self.run(op, key, load.exec_async(&mut conn)).await
            }
            Deployment::Cluster(cluster) => self.run(op, key, cluster.shared.nodes.load_scripts(load)).await,
            Deployment::Sentinel(sentinel) => {
                let mut conn = Shared::Single(sentinel.current().shared.clone());
                self.run(op, key, load.exec_async(&mut conn)).await
            }
        }
    }

    /// A number that changes whenever the cluster's slot map changed (0 on
    /// a single server), for a listener to notice a new topology.
    pub(crate) fn topology_generation(&self) -> u64 {
        match &self.deployment {
            Deployment::Single(_) => 0,
            Deployment::Cluster(cluster) => cluster.shared.nodes.generation(),
            Deployment::Sentinel(sentinel) => sentinel.generation(),
        }
    }

    /// Asks the cluster for its slot map now (nothing on a single server);
    /// a failure is logged and left to the next call's own recovery.
    pub(crate) async fn refresh_topology(&self) {
        if let Deployment::Sentinel(sentinel) = &self.deployment {
            sentinel.resolve_now().await;
        }
        if let Deployment::Cluster(cluster) = &self.deployment
            && let Err(error) = cluster.shared.nodes.refresh_now().await
        {
            tracing::debug!(kind = ?error.kind(), "cluster: refreshing the slot map failed");
        }
    }

    /// The nodes holding keys, each with a handle that sends every command
    /// to it: the server itself, or every primary of a cluster (a listing
    /// runs `SCAN` on each); with the topology generation they were read at
    /// (see [`topology_generation`](Self::topology_generation)).
    pub(crate) fn scan_nodes(
        &self,
        op: &'static str,
        label: &str,
    ) -> Result<(Vec<ScanNode>, u64), StoreError> {
        match &self.deployment {
            Deployment::Single(single) => Ok((
                vec![ScanNode {
                    addr: String::new(),
                    conn: Shared::Single(single.shared.clone()),
                }],
                0,
            )),
            Deployment::Sentinel(sentinel) => {
                // The generation first: a switch after it shows at the end.
                let generation = sentinel.generation();
                Ok((
                    vec![ScanNode {
                        addr: String::new(),
                        conn: Shared::Single(sentinel.current().shared.clone()),
                    }],
                    generation,
                ))
            }
            Deployment::Cluster(cluster) => {
                let generation = cluster.shared.nodes.generation();
                let nodes = cluster
                    .shared
                    .nodes
                    .primaries()
                    .map_err(|error| relabel_key(error, op, label))?
                    .iter()
                    .map(|node| ScanNode {
                        addr: node.addr.clone(),
                        conn: Shared::Node(cluster.shared.clone(), Arc::from(node.addr.as_str())),
                    })
                    .collect();
                Ok((nodes, generation))
            }
        }
    }
}

/// `error` (made naming the store's URL) reported as operation `op` on
/// `key`.
fn relabel_key(error: StoreError, op: &'static str, key: &str) -> StoreError {
    let key = key.to_owned();
    match error {
        StoreError::Connection { source, .. } => StoreError::Connection { op, key, source },
        StoreError::Timeout { after, .. } => StoreError::Timeout { op, key, after },
        StoreError::InvalidInput { reason, .. } => StoreError::InvalidInput { op, key, reason },
        StoreError::Operation { source, .. } => StoreError::Operation { op, key, source },
        other => other,
    }
}
