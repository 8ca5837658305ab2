//! What a store is connected to, as the store itself sees it now:
//! [`Topology`], the answer of [`DocumentStore::topology`](crate::DocumentStore::topology)
//! (`Statehouse::topology`, `statehouse status`).
//!
//! It is what the store holds, not what the servers say (a cluster store
//! refreshes its slot map first, one bounded `CLUSTER SLOTS`). Roles,
//! replication offsets and lag are the servers' to tell (`statehouse
//! status` asks them). Addresses and URLs never carry a password.

use serde::Serialize;

/// The number of hash slots of a Redis Cluster.
pub const CLUSTER_SLOTS: u32 = 16_384;

/// What a store is connected to; serialisable (`statehouse status --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Topology {
    /// How the store reaches its data.
    pub kind: TopologyKind,
    /// The servers calls go to, each with its pool of dedicated (WATCH)
    /// connections if it has one: a server's write endpoint and read
    /// endpoint; a Sentinel service's primary and read replica; every
    /// primary of a cluster.
    pub endpoints: Vec<Endpoint>,
    /// A Sentinel service: its sentinels and the primary they resolved to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelService>,
    /// A cluster: its slot map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterMap>,
}

impl Topology {
    /// The topology of a store of `kind` with `endpoints`, neither a
    /// Sentinel service nor a cluster.
    pub fn new(kind: TopologyKind, endpoints: Vec<Endpoint>) -> Self {
        Self {
            kind,
            endpoints,
            sentinel: None,
            cluster: None,
        }
    }

    /// The same topology with its Sentinel service.
    #[must_use]
    pub fn with_sentinel(mut self, sentinel: SentinelService) -> Self {
        self.sentinel = Some(sentinel);
        self
    }

    /// The same topology with its cluster's slot map.
    #[must_use]
    pub fn with_cluster(mut self, cluster: ClusterMap) -> Self {
        self.cluster = Some(cluster);
        self
    }
}

/// How a store reaches its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TopologyKind {
    /// In this process (the memory store): no server.
    Memory,
    /// One server (and maybe a read endpoint).
    Single,
    /// The primary of a Sentinel service.
    Sentinel,
    /// A Redis Cluster.
    Cluster,
    /// A store that does not say (an injected implementation).
    Custom,
}

impl TopologyKind {
    /// `memory`, `single`, `sentinel`, `cluster` or `custom`.
    pub fn as_str(self) -> &'static str {
        match self {
            TopologyKind::Memory => "memory",
            TopologyKind::Single => "single",
            TopologyKind::Sentinel => "sentinel",
            TopologyKind::Cluster => "cluster",
            TopologyKind::Custom => "custom",
        }
    }
}

/// One server the store sends calls to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Endpoint {
    /// What it serves: `write` (every call, or on a cluster the keys of
    /// its slots) or `read` (task reads).
    pub serves: &'static str,
    /// `host:port` (or a socket path).
    pub address: String,
    /// Its URL without the password.
    pub url: String,
    /// The pool of dedicated connections (WATCH sections), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolState>,
}

impl Endpoint {
    /// An endpoint serving `serves` at `address`, reached by `url`
    /// (already redacted).
    pub fn new(serves: &'static str, address: String, url: String, pool: Option<PoolState>) -> Self {
        Self {
            serves,
            address,
            url,
            pool,
        }
    }
}

/// A pool of dedicated connections, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PoolState {
    /// How many connections it may open.
    pub size: u32,
    /// How many are open (idle or in use).
    pub open: u32,
    /// How many are open and waiting in the pool.
    pub idle: u32,
    /// How many a call holds.
    pub in_use: u32,
}

impl PoolState {
    /// A pool of `size` with `open` connections of which `idle` wait.
    pub fn new(size: u32, open: u32, idle: u32) -> Self {
        Self {
            size,
            open,
            idle,
            in_use: open.saturating_sub(idle),
        }
    }
}

/// A Sentinel service as the store follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SentinelService {
    /// The monitored service's name.
    pub service: String,
    /// The sentinels of the URL, `host:port` each.
    pub sentinels: Vec<String>,
    /// The primary the store writes to now, `host:port`.
    pub primary: String,
    /// The replica task reads go to, if a read URL names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_replica: Option<String>,
    /// How many times the store switched to another primary.
    pub switches: u64,
}

impl SentinelService {
    /// The service `service` of `sentinels`, resolved to `primary`.
    pub fn new(
        service: String,
        sentinels: Vec<String>,
        primary: String,
        read_replica: Option<String>,
        switches: u64,
    ) -> Self {
        Self {
            service,
            sentinels,
            primary,
            read_replica,
            switches,
        }
    }
}

/// A cluster's slot map as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClusterMap {
    /// The slot ranges, sorted.
    pub ranges: Vec<SlotRange>,
    /// How many of the [`CLUSTER_SLOTS`] slots a range covers.
    pub covered: u32,
    /// Whether every slot is covered.
    pub complete: bool,
    /// How many times the map changed since the store connected.
    pub changes: u64,
}

impl ClusterMap {
    /// The map of `ranges` (coverage counted), changed `changes` times.
    pub fn new(ranges: Vec<SlotRange>, changes: u64) -> Self {
        let covered = ranges
            .iter()
            .map(|range| u32::from(range.last).saturating_sub(u32::from(range.first)) + 1)
            .sum();
        Self {
            ranges,
            covered,
            complete: covered >= CLUSTER_SLOTS,
            changes,
        }
    }
}

/// Slots `first..=last` and their nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SlotRange {
    /// The first slot.
    pub first: u16,
    /// The last slot (inclusive).
    pub last: u16,
    /// The primary owning them, `host:port`.
    pub primary: String,
    /// Its replicas, `host:port` each.
    pub replicas: Vec<String>,
}

impl SlotRange {
    /// Slots `first..=last`, owned by `primary`, replicated on `replicas`.
    pub fn new(first: u16, last: u16, primary: String, replicas: Vec<String>) -> Self {
        Self {
            first,
            last,
            primary,
            replicas,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_map_counts_its_coverage() {
        let range = |first, last| SlotRange::new(first, last, "h:1".to_owned(), vec![]);
        let full = ClusterMap::new(vec![range(0, 5460), range(5461, 10922), range(10923, 16383)], 0);
        assert_eq!((full.covered, full.complete), (16_384, true));
        let gap = ClusterMap::new(vec![range(0, 99), range(200, 16383)], 2);
        assert_eq!((gap.covered, gap.complete), (16_284, false));
        assert_eq!(PoolState::new(32, 3, 1).in_use, 2);
        let json = serde_json::to_value(Topology::new(TopologyKind::Memory, vec![])).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "memory", "endpoints": []}));
    }
}
