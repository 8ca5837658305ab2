//! What a store is connected to, as it sees it ([`Topology`]), read from
//! its connections (on a cluster, after one refresh of the slot map: the
//! replicas of a range are learnt by the nodes after the slots, and the map
//! is otherwise refreshed only when a call is redirected); and the counter
//! of the failovers it followed, emitted where each is seen (the Sentinel
//! switch of primary, a cluster slot map whose replica took over).

use redis::{Client, IntoConnectionInfo};
use statehouse_ports::{ClusterMap, Endpoint, PoolState, SentinelService, SlotRange, Topology, TopologyKind};

use super::cluster::ClusterUrl;
use super::pool::Pool;
use super::sentinel::SentinelUrl;
use super::{Connections, Deployment};
use crate::{RedisConfig, redact_url};

impl Connections {
    /// The store's topology now; `config` is the one it was opened with.
    /// On a cluster, the slot map is refreshed first (`CLUSTER SLOTS`,
    /// bounded by the connect and response timeouts; a failure leaves the
    /// map held, and is logged).
    pub(crate) async fn topology(&self, config: &RedisConfig) -> Topology {
        if let Deployment::Cluster(cluster) = &self.deployment {
            let bound = config.connect_timeout + config.response_timeout;
            match tokio::time::timeout(bound, cluster.shared.nodes.refresh_now()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(kind = ?error.kind(), "cluster: refreshing the slot map for a report failed");
                }
                Err(_) => tracing::debug!(?bound, "cluster: refreshing the slot map for a report timed out"),
            }
        }
        let size = config.pool_size.max(1);
        match &self.deployment {
            Deployment::Single(single) => {
                let mut endpoints = vec![Endpoint::new(
                    "write",
                    address(&single.client),
                    config.redacted_url(),
                    Some(pool_state(&single.pool, size)),
                )];
                if let Some(read_url) = &config.read_url {
                    let address = read_url
                        .as_str()
                        .into_connection_info()
                        .map_or_else(|_| String::new(), |info| info.addr().to_string());
                    endpoints.push(Endpoint::new("read", address, redact_url(read_url), None));
                }
                Topology::new(TopologyKind::Single, endpoints)
            }
            Deployment::Sentinel(sentinel) => {
                let primary = sentinel.primary_addr();
                let url = SentinelUrl::parse(&config.effective_url()).and_then(Result::ok);
                let node_url = |url: Option<&SentinelUrl>, addr: &str| {
                    url.map_or_else(|| config.redacted_url(), |url| redact_url(&url.primary_url(addr)))
                };
                let mut endpoints = vec![Endpoint::new(
                    "write",
                    primary.clone(),
                    node_url(url.as_ref(), &primary),
                    Some(pool_state(&sentinel.current().pool, size)),
                )];
                let replica = sentinel.replica_addr();
                if let Some(replica) = &replica {
                    let read = config
                        .read_url
                        .as_deref()
                        .and_then(SentinelUrl::parse)
                        .and_then(Result::ok);
                    endpoints.push(Endpoint::new(
                        "read",
                        replica.clone(),
                        node_url(read.as_ref(), replica),
                        None,
                    ));
                }
                let (service, sentinels) =
                    url.map_or_else(Default::default, |url| (url.service, url.sentinels));
                Topology::new(TopologyKind::Sentinel, endpoints).with_sentinel(SentinelService::new(
                    service,
                    sentinels,
                    primary,
                    replica,
                    sentinel.generation(),
                ))
            }
            Deployment::Cluster(cluster) => {
                let nodes = &cluster.shared.nodes;
                let map = nodes.map();
                let url = ClusterUrl::parse(&config.url).and_then(Result::ok);
                let endpoints = map
                    .primaries()
                    .into_iter()
                    .map(|addr| {
                        let pool = nodes.node(&addr).ok().map(|node| pool_state(&node.pool, size));
                        let node_url = url
                            .as_ref()
                            .map_or_else(|| config.redacted_url(), |url| redact_url(&url.node_url(&addr)));
                        Endpoint::new("write", addr, node_url, pool)
                    })
                    .collect();
                let ranges = map
                    .ranges()
                    .map(|(first, last, primary, replicas)| {
                        SlotRange::new(first, last, primary.to_owned(), replicas.to_vec())
                    })
                    .collect();
                Topology::new(TopologyKind::Cluster, endpoints)
                    .with_cluster(ClusterMap::new(ranges, nodes.generation().saturating_sub(1)))
            }
        }
    }
}

/// `host:port` (or the socket path) of `client`'s server.
fn address(client: &Client) -> String {
    client.get_connection_info().addr().to_string()
}

/// `pool` now (bb8's `state`), of at most `size` connections.
fn pool_state(pool: &Pool, size: u32) -> PoolState {
    let state = pool.state();
    PoolState::new(size, state.connections, state.idle_connections)
}
