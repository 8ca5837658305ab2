//! Failover faults in one shape for the topologies that have replicas: a [`SentinelSet`] and a
//! [`RedisCluster`] with a replica per primary. Each fault replaces the primary, waits until the
//! topology reports its successor (and that node says `ROLE` master), and returns a [`Promotion`]:
//! who was replaced, by whom, and how long it took. [`sentinel_restore`] and [`cluster_restore`] bring
//! a killed node back (as a replica of its successor), so that a soak can fault the topology again.
//!
//! Built on the topologies' public API only (`failover`, `kill_primary`, `wait_for_new_primary`,
//! `restart_node`, `failover_bound`): the waits are theirs, bounded by their `failover_bound`, and
//! they panic with every node's log when the topology does not recover in time.

use std::time::{Duration, Instant};

use super::{RedisCluster, SentinelSet};

/// How a failover fault replaced a primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverHow {
    /// `SENTINEL FAILOVER`: the old primary keeps running and is turned into a replica.
    SentinelFailover,
    /// The Sentinel service's primary killed with `SIGKILL`.
    SentinelPrimaryKilled,
    /// A cluster primary killed with `SIGKILL`; its replica is promoted.
    ClusterPrimaryKilled,
}

impl FailoverHow {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            FailoverHow::SentinelFailover => "sentinel failover",
            FailoverHow::SentinelPrimaryKilled => "sentinel primary killed",
            FailoverHow::ClusterPrimaryKilled => "cluster primary killed",
        }
    }
}

/// What a failover fault did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promotion {
    /// The fault.
    pub how: FailoverHow,
    /// The port of the primary replaced.
    pub old: u16,
    /// The port of its successor.
    pub new: u16,
    /// When the fault was injected (just before `SENTINEL FAILOVER` or `SIGKILL`).
    pub began: Instant,
    /// From `began` until the topology reported the successor as the primary and it said `ROLE`
    /// master.
    pub promoted_after: Duration,
    /// The slot whose primary was killed (cluster only).
    pub slot: Option<u16>,
}

impl Promotion {
    /// Whether the old primary's process was killed (and needs a restore to come back).
    pub fn killed(&self) -> bool {
        self.how != FailoverHow::SentinelFailover
    }
}

/// `SENTINEL FAILOVER` of the set's service, then waits for the new primary (bounded by
/// [`SentinelSet::failover_bound`]).
///
/// # Panics
///
/// If a sentinel refuses, or no new primary is seen in time (with every log).
pub fn sentinel_failover(set: &SentinelSet) -> Promotion {
    let began = Instant::now();
    let old = set.failover();
    let new = set.wait_for_new_primary(old, set.failover_bound());
    Promotion {
        how: FailoverHow::SentinelFailover,
        old: old.port(),
        new: new.port(),
        began,
        promoted_after: began.elapsed(),
        slot: None,
    }
}

/// `SIGKILL` of the set's primary, then waits until the sentinels promoted a replica (bounded by
/// [`SentinelSet::failover_bound`]). [`sentinel_restore`] brings the old primary back as a replica.
///
/// # Panics
///
/// If no new primary is seen in time (with every log).
pub fn sentinel_kill_primary(set: &SentinelSet) -> Promotion {
    let began = Instant::now();
    let old = set.kill_primary();
    let new = set.wait_for_new_primary(old, set.failover_bound());
    Promotion {
        how: FailoverHow::SentinelPrimaryKilled,
        old: old.port(),
        new: new.port(),
        began,
        promoted_after: began.elapsed(),
        slot: None,
    }
}

/// After [`sentinel_kill_primary`]: restarts the killed node and waits until the sentinels made it
/// a synced replica of its successor (about 10 s: Sentinel's own delay). After
/// [`sentinel_failover`] (nothing was killed): waits until the set has settled.
///
/// # Panics
///
/// As [`SentinelSet::restart_node`] and [`SentinelSet::wait_until_settled`].
pub fn sentinel_restore(set: &SentinelSet, promotion: &Promotion) {
    match set
        .data_nodes()
        .iter()
        .find(|node| node.port() == promotion.old && !node.is_running())
    {
        Some(node) => set.restart_node(node),
        None => set.wait_until_settled(set.failover_bound()),
    }
}

/// `SIGKILL` of the primary owning `slot`, then waits until its replica owns the slot in every
/// running node's view (bounded by [`RedisCluster::failover_bound`]). The cluster needs a replica
/// per primary ([`RedisCluster::start`]`(3, 1)`); [`cluster_restore`] brings the old primary back.
///
/// # Panics
///
/// If no new primary is seen in time (with every log).
pub fn cluster_kill_primary(cluster: &RedisCluster, slot: u16) -> Promotion {
    let began = Instant::now();
    let old = cluster.kill_primary(slot);
    let new = cluster.wait_for_new_primary(slot, old, cluster.failover_bound());
    Promotion {
        how: FailoverHow::ClusterPrimaryKilled,
        old: old.port(),
        new: new.port(),
        began,
        promoted_after: began.elapsed(),
        slot: Some(slot),
    }
}

/// After [`cluster_kill_primary`]: restarts the killed node with its `nodes.conf` (it rejoins as a
/// replica of its successor) and waits until the cluster is healthy.
///
/// # Panics
///
/// As [`RedisCluster::restart_node`].
pub fn cluster_restore(cluster: &RedisCluster, promotion: &Promotion) {
    let node = cluster.node_by_port(promotion.old);
    if !node.is_running() {
        cluster.restart_node(node);
    }
}
