//! The slot map statehouse keeps beside redis-rs' own: which primary owns
//! each slot, learned from `CLUSTER SLOTS`, and one [`Node`] per primary
//! address (its client, for Pub/Sub, and its pool of dedicated connections,
//! for WATCH sections and redirected transactions).
//!
//! redis-rs' cluster connection keeps a slot map too, but does not lend
//! its connections: a WATCH must run on a connection nobody else uses, so
//! statehouse picks that connection itself, by slot, and refreshes this map
//! when a node answers `MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN` or drops
//! the connection.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use redis::{AsyncConnectionConfig, Client, RedisError, Value};
use statehouse_ports::StoreError;

use super::super::client;
use super::super::pool::{self, ConnectError, Pool, PooledTxn, Refusals, TxnManager};
use super::seeds::{ClusterUrl, node_addr};
use crate::RedisConfig;
use crate::redact::Secrets;

/// A node statehouse talks to directly (a primary, or a node an `ASK`
/// points at).
#[derive(Debug)]
pub(crate) struct Node {
    /// `host:port`, as `CLUSTER SLOTS` names it.
    pub(crate) addr: String,
    /// For connections of their own (Pub/Sub).
    pub(crate) client: Client,
    /// Dedicated connections.
    pub(crate) pool: Pool,
    /// The pool's failures to connect: a checkout ends at the first (a
    /// killed primary refuses at once; the map is then refreshed).
    pub(crate) refusals: Refusals,
}

impl Node {
    /// A dedicated connection, or the error of the first failure to open
    /// one meanwhile (not the pool's whole wait).
    pub(crate) async fn checkout(
        &self,
        connect_timeout: Duration,
    ) -> Result<PooledTxn, bb8::RunError<ConnectError>> {
        pool::checkout_or_refused(&self.pool, &self.refusals, connect_timeout).await
    }
}

/// Which primary owns which slots, at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SlotMap {
    /// Inclusive slot ranges and the address of their primary, sorted.
    ranges: Vec<(u16, u16, String)>,
    /// The replicas of each range, in the order of `ranges` (for reports
    /// and failovers: the owners alone decide where calls go).
    replicas: Vec<Vec<String>>,
    /// The replicas each range had since its owner has it (a replica
    /// leaves its primary's list when it is promoted, before it owns the
    /// slots): what a failover is recognised by.
    known: Vec<Vec<String>>,
}

impl SlotMap {
    /// The primary owning `slot`, if any.
    pub(crate) fn owner(&self, slot: u16) -> Option<&str> {
        let at = self.ranges.partition_point(|(_, last, _)| *last < slot);
        match self.ranges.get(at) {
            Some((first, _, addr)) if *first <= slot => Some(addr),
            _ => None,
        }
    }

    /// Every primary owning a slot, sorted, once each.
    pub(crate) fn primaries(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.ranges.iter().map(|(_, _, addr)| addr).collect();
        set.into_iter().cloned().collect()
    }

    /// The ranges with their primary and replicas, sorted.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (u16, u16, &str, &[String])> {
        self.ranges
            .iter()
            .zip(&self.replicas)
            .map(|((first, last, primary), replicas)| (*first, *last, primary.as_str(), replicas.as_slice()))
    }

    /// How many primaries of this map `fresh` replaced by one of their
    /// replicas (a failover; a slot moved to another primary is none).
    fn promotions(&self, fresh: &SlotMap) -> u64 {
        let mut replaced = BTreeSet::new();
        for (first, _, owner) in &fresh.ranges {
            let at = self.ranges.partition_point(|(_, last, _)| last < first);
            if let (Some((old_first, _, old_owner)), Some(replicas)) =
                (self.ranges.get(at), self.known.get(at))
                && old_first <= first
                && old_owner != owner
                && replicas.contains(owner)
            {
                replaced.insert(old_owner.as_str());
            }
        }
        replaced.len() as u64
    }

    /// `fresh` as the map that follows this one: with the same owners, the
    /// replicas known of each range so far are kept in `known`.
    fn followed_by(&self, mut fresh: SlotMap) -> SlotMap {
        if self.ranges == fresh.ranges {
            for (known, old) in fresh.known.iter_mut().zip(&self.known) {
                for addr in old {
                    if !known.contains(addr) {
                        known.push(addr.clone());
                    }
                }
            }
        }
        fresh
    }

    /// Parses a `CLUSTER SLOTS` answer of the node at `asked` (whose host
    /// stands in for an empty or unknown one).
    fn parse(value: Value, asked: &str) -> Option<Self> {
        let asked_host = asked.rsplit_once(':').map_or(asked, |(host, _)| host);
        let Value::Array(entries) = value else {
            return None;
        };
        let mut ranges = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(fields) = entry else {
                return None;
            };
            let (Some(first), Some(last), Some(Value::Array(primary))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return None;
            };
            let first = u16::try_from(int(first)?).ok()?;
            let last = u16::try_from(int(last)?).ok()?;
            let addr = node_of(primary, asked_host)?;
            // The replicas: every node after the primary (one that does not
            // read as a node is left out of the report, not fatal).
            let replicas = fields
                .iter()
                .skip(3)
                .filter_map(|node| match node {
                    Value::Array(node) => node_of(node, asked_host),
                    _ => None,
                })
                .collect::<Vec<_>>();
            ranges.push(((first, last, addr), replicas));
        }
        ranges.sort();
        let (ranges, replicas): (_, Vec<_>) = ranges.into_iter().unzip();
        Some(Self {
            ranges,
            known: replicas.clone(),
            replicas,
        })
    }
}

/// `host:port` of a node of a `CLUSTER SLOTS` entry (`[host, port, id, …]`);
/// an empty or unknown host is `asked_host`.
fn node_of(node: &[Value], asked_host: &str) -> Option<String> {
    let host = match node.first()? {
        Value::BulkString(host) => String::from_utf8_lossy(host).into_owned(),
        Value::SimpleString(host) => host.clone(),
        _ => return None,
    };
    let port = u16::try_from(int(node.get(1)?)?).ok()?;
    Some(if host.is_empty() || host == "?" {
        format!("{asked_host}:{port}")
    } else {
        node_addr(&host, port)
    })
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

fn unreadable() -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "an unreadable CLUSTER SLOTS answer",
    ))
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// The slot map and the nodes of one cluster, shared by every clone of a
/// store.
pub(crate) struct Nodes {
    url: ClusterUrl,
    config: RedisConfig,
    secrets: Secrets,
    map: RwLock<Arc<SlotMap>>,
    /// Bumped whenever the map changes: the change feed re-subscribes when
    /// it moved.
    generation: AtomicU64,
    /// Bumped after every refresh: concurrent callers wanting a refresh
    /// after the same failure wait for one instead of each asking.
    refreshes: AtomicU64,
    refresh_lock: tokio::sync::Mutex<()>,
    nodes: Mutex<HashMap<String, Arc<Node>>>,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nodes")
            .field("primaries", &self.map().primaries())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl Nodes {
    /// The nodes of the cluster `url` names, with the slot map asked of its
    /// seeds.
    pub(crate) async fn open(
        url: ClusterUrl,
        config: &RedisConfig,
        secrets: Secrets,
    ) -> Result<Self, RedisError> {
        let nodes = Self {
            url,
            config: config.clone(),
            secrets,
            map: RwLock::new(Arc::new(SlotMap::default())),
            generation: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            refresh_lock: tokio::sync::Mutex::new(()),
            nodes: Mutex::new(HashMap::new()),
        };
        nodes.refresh_now().await?;
        Ok(nodes)
    }

    /// The slot map now.
    pub(crate) fn map(&self) -> Arc<SlotMap> {
        self.map.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many times the slot map changed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// How many refreshes ran; pass it to [`refresh_after`](Self::refresh_after).
    pub(crate) fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Acquire)
    }

    /// The node at `addr`, its client and pool made on first use.
    pub(crate) fn node(&self, addr: &str) -> Result<Arc<Node>, StoreError> {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(node) = nodes.get(addr) {
            return Ok(node.clone());
        }
        let url = self.url.node_url(addr);
        let client = client(&self.config, &url, &self.config.redacted_url(), &self.secrets)?;
        let manager = TxnManager::new(
            client.clone(),
            self.config.connect_timeout,
            self.config.response_timeout,
        );
        let refusals = Refusals::default();
        let node = Arc::new(Node {
            addr: addr.to_owned(),
            client,
            pool: pool::build_reporting(
                manager,
                self.config.pool_size,
                self.config.connect_timeout + self.config.response_timeout,
                &refusals,
            ),
            refusals,
        });
        nodes.insert(addr.to_owned(), node.clone());
        Ok(node)
    }

    /// The primary owning `slot` per the map, if any.
    pub(crate) fn owner(&self, slot: u16) -> Result<Option<Arc<Node>>, StoreError> {
        match self.map().owner(slot) {
            Some(addr) => self.node(addr).map(Some),
            None => Ok(None),
        }
    }

    /// Every primary's node now.
    pub(crate) fn primaries(&self) -> Result<Vec<Arc<Node>>, StoreError> {
        self.map()
            .primaries()
            .iter()
            .map(|addr| self.node(addr))
            .collect()
    }

    /// Refreshes the map unless a refresh finished since `seen` (a value of
    /// [`refreshes`](Self::refreshes) read before the failure that calls
    /// for it): many callers hitting one moved slot ask once.
    ///
    /// The refresh runs as a task of its own: a caller whose deadline ends
    /// (its future dropped) does not cancel it, so the next caller finds
    /// the map refreshed instead of starting over (callers that each gave
    /// up mid-refresh would never see the map follow a failover).
    pub(crate) async fn refresh_after(self: &Arc<Self>, seen: u64) -> Result<(), RedisError> {
        let nodes = Arc::clone(self);
        let refresh = tokio::spawn(async move {
            let _one = nodes.refresh_lock.lock().await;
            if nodes.refreshes() != seen {
                return Ok(());
            }
            nodes.ask_for_slots().await
        });
        refresh.await.unwrap_or_else(|_| {
            Err(RedisError::from((
                redis::ErrorKind::Client,
                "the slot map refresh panicked",
            )))
        })
    }

    /// Refreshes the map now.
    pub(crate) async fn refresh_now(&self) -> Result<(), RedisError> {
        let _one = self.refresh_lock.lock().await;
        self.ask_for_slots().await
    }

    /// `CLUSTER SLOTS` of the known primaries and of the seeds, all at once
    /// (each bounded by the connect and response timeouts): the first
    /// answer wins, and the map and the nodes follow it. Asked one after
    /// another, a killed primary (first in the map) would hold up every
    /// refresh by its bounds.
    async fn ask_for_slots(&self) -> Result<(), RedisError> {
        let mut candidates = self.map().primaries();
        for seed in &self.url.seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let asks = candidates.iter().map(|addr| {
            let known = self
                .nodes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(addr)
                .cloned();
            Box::pin(async move {
                match known {
                    Some(node) => self.slots_via(&node).await,
                    None => self.slots_of(addr).await,
                }
            })
        });
        let asks: Vec<_> = asks.collect();
        if asks.is_empty() {
            self.refreshes.fetch_add(1, Ordering::AcqRel);
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "a cluster URL without nodes",
            )));
        }
        match futures_util::future::select_ok(asks).await {
            Ok((fresh, _)) => {
                self.install(fresh);
                Ok(())
            }
            Err(error) => {
                self.refreshes.fetch_add(1, Ordering::AcqRel);
                Err(error)
            }
        }
    }

    /// The slot map as `node` sees it, on one of its pooled connections
    /// (left clean: `CLUSTER SLOTS` watches nothing).
    async fn slots_via(&self, node: &Node) -> Result<SlotMap, RedisError> {
        let bound = self.config.connect_timeout + self.config.response_timeout + Duration::from_millis(10);
        let ask = async {
            let mut txn = match node.checkout(self.config.connect_timeout).await {
                Ok(txn) => txn,
                Err(bb8::RunError::User(error)) => return Err(error.error),
                Err(bb8::RunError::TimedOut) => return Err(timed_out()),
            };
            let value: Value = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut txn.conn)
                .await?;
            SlotMap::parse(value, &node.addr).ok_or_else(unreadable)
        };
        tokio::time::timeout(bound, ask)
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    /// The slot map as the node at `addr` sees it, on a short-lived
    /// connection of its own (bounded by the connect and response timeouts).
    async fn slots_of(&self, addr: &str) -> Result<SlotMap, RedisError> {
        let url = self.url.node_url(addr);
        let client = client(&self.config, &url, "", &self.secrets)
            .map_err(|_| RedisError::from((redis::ErrorKind::InvalidClientConfig, "node URL")))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.response_timeout));
        let bound = self.config.connect_timeout + self.config.response_timeout + Duration::from_millis(10);
        let ask = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let value: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn).await?;
            SlotMap::parse(value, addr).ok_or_else(unreadable)
        };
        tokio::time::timeout(bound, ask)
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    /// `SCRIPT LOAD` of every script on every primary (after a `NOSCRIPT`:
    /// a node restarted or failed over), on pooled connections.
    pub(crate) async fn load_scripts(&self, load: &redis::Pipeline) -> Result<(), RedisError> {
        for node in self.map().primaries() {
            let node = self
                .node(&node)
                .map_err(|_| RedisError::from((redis::ErrorKind::InvalidClientConfig, "node URL")))?;
            let mut txn = match node.checkout(self.config.connect_timeout).await {
                Ok(txn) => txn,
                Err(bb8::RunError::User(error)) => return Err(error.error),
                Err(bb8::RunError::TimedOut) => return Err(timed_out()),
            };
            load.exec_async(&mut txn.conn).await?;
        }
        Ok(())
    }

    /// Takes `fresh` as the map; drops the nodes no range names any more
    /// (their pools close as their last connection is handed back).
    fn install(&self, fresh: SlotMap) {
        let primaries = fresh.primaries();
        {
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            let fresh = map.followed_by(fresh);
            if map.ranges != fresh.ranges {
                crate::conn::failovers::failovers_seen("cluster", map.promotions(&fresh));
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            if **map != fresh {
                *map = Arc::new(fresh);
            }
        }
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|addr, _| primaries.contains(addr));
        self.refreshes.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn cluster_slots_answers_become_a_map() {
        let entry = |first: i64, last: i64, host: &str, port: i64| {
            Value::Array(vec![
                Value::Int(first),
                Value::Int(last),
                Value::Array(vec![bulk(host), Value::Int(port), bulk("id")]),
                Value::Array(vec![bulk(host), Value::Int(port + 3), bulk("replica")]),
            ])
        };
        let value = Value::Array(vec![
            entry(10_923, 16_383, "10.0.0.3", 7002),
            entry(0, 5_460, "10.0.0.1", 7000),
            entry(5_461, 10_922, "", 7001),
        ]);
        let map = SlotMap::parse(value, "10.0.0.9:7005").unwrap();
        assert_eq!(map.owner(0), Some("10.0.0.1:7000"));
        assert_eq!(map.owner(5_460), Some("10.0.0.1:7000"));
        assert_eq!(
            map.owner(5_461),
            Some("10.0.0.9:7001"),
            "an empty host is the asked node's"
        );
        assert_eq!(map.owner(16_383), Some("10.0.0.3:7002"));
        assert_eq!(
            map.primaries(),
            ["10.0.0.1:7000", "10.0.0.3:7002", "10.0.0.9:7001"]
        );

        let gap = Value::Array(vec![entry(0, 99, "h", 1), entry(200, 16_383, "h", 2)]);
        let map = SlotMap::parse(gap, "x:1").unwrap();
        assert_eq!(map.owner(150), None);
        assert_eq!(map.owner(99), Some("h:1"));
        assert_eq!(map.owner(200), Some("h:2"));
        assert!(SlotMap::parse(bulk("nonsense"), "x:1").is_none());
        assert_eq!(SlotMap::default().owner(0), None);
    }

    #[test]
    fn a_replica_taking_over_its_primary_slots_is_a_failover_and_a_moved_slot_is_not() {
        let entry = |first: i64, last: i64, port: i64, replica: Option<i64>| {
            let mut fields = vec![
                Value::Int(first),
                Value::Int(last),
                Value::Array(vec![bulk("h"), Value::Int(port), bulk("id")]),
            ];
            fields.extend(replica.map(|port| Value::Array(vec![bulk("h"), Value::Int(port), bulk("id")])));
            Value::Array(fields)
        };
        let map = |entries| SlotMap::parse(Value::Array(entries), "h:1").unwrap();
        let before = map(vec![entry(0, 8191, 1, Some(3)), entry(8192, 16383, 2, Some(4))]);
        let ranges: Vec<_> = before.ranges().collect();
        assert_eq!(ranges[0], (0, 8191, "h:1", ["h:3".to_owned()].as_slice()));
        // The replica of port 1 promoted: one failover.
        let promoted = map(vec![entry(0, 8191, 3, None), entry(8192, 16383, 2, Some(4))]);
        assert_eq!(before.promotions(&promoted), 1);
        // The replica promoted leaves its primary's list before the slots are its own: still one.
        let between = before.followed_by(map(vec![entry(0, 8191, 1, None), entry(8192, 16383, 2, Some(4))]));
        assert_eq!(between.promotions(&promoted), 1);
        assert_eq!(between.ranges().next().map(|range| range.3.len()), Some(0));
        // Slot 8192 moved to port 1 (resharding): none.
        let moved = map(vec![entry(0, 8192, 1, Some(3)), entry(8193, 16383, 2, Some(4))]);
        assert_eq!(before.promotions(&moved), 0);
        assert_eq!(before.promotions(&before), 0);
        assert_eq!(SlotMap::default().promotions(&before), 0);
    }
}
