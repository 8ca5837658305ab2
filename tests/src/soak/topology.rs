//! What the soak runs against ([`Topology`]), the deployment it starts, and the faults each can
//! take.

use std::time::{Duration, Instant};

use super::faults::FaultKind;
use crate::harness::failover::{
    cluster_kill_primary, cluster_restore, sentinel_failover, sentinel_kill_primary, sentinel_restore,
};
use crate::harness::server::DURABLE_ARGS;
use crate::harness::{Node, Promotion, RedisCluster, RedisServer, SentinelSet};

/// The topology a soak runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One `redis-server`.
    Single,
    /// One primary, two replicas and three sentinels ([`SentinelSet`]), through a
    /// `redis+sentinel://` URL.
    Sentinel,
    /// Three primaries with a replica each ([`RedisCluster`]), through a `redis+cluster://` URL.
    Cluster,
}

impl Topology {
    /// Its name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Sentinel => "sentinel",
            Topology::Cluster => "cluster",
        }
    }

    /// The topology named `name` ([`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<Topology> {
        [Topology::Single, Topology::Sentinel, Topology::Cluster]
            .into_iter()
            .find(|topology| topology.name() == name)
    }

    /// The faults it takes by default.
    pub fn default_faults(self) -> Vec<FaultKind> {
        match self {
            Topology::Single => vec![
                FaultKind::StopRestart,
                FaultKind::PauseResume,
                FaultKind::ConnectionKill,
            ],
            Topology::Sentinel => vec![
                FaultKind::SentinelFailover,
                FaultKind::SentinelPrimaryKill,
                FaultKind::ConnectionKill,
            ],
            Topology::Cluster => vec![FaultKind::ClusterPrimaryKill, FaultKind::ConnectionKill],
        }
    }

    /// Whether it can take `kind`.
    pub fn supports(self, kind: FaultKind) -> bool {
        match kind {
            FaultKind::ConnectionKill => true,
            FaultKind::StopRestart | FaultKind::PauseResume => self == Topology::Single,
            FaultKind::SentinelFailover | FaultKind::SentinelPrimaryKill => self == Topology::Sentinel,
            FaultKind::ClusterPrimaryKill => self == Topology::Cluster,
        }
    }
}

/// A started topology.
#[derive(Debug)]
pub(super) enum Deployment {
    Single(RedisServer),
    Sentinel(SentinelSet),
    Cluster(RedisCluster),
}

/// When an injected fault began and when the topology was back (answering again, or the new
/// primary promoted), and the promotion to restore from (a failover).
#[derive(Debug, Clone, Copy)]
pub(super) struct Injected {
    pub(super) back_at: Instant,
    pub(super) promotion: Option<Promotion>,
}

impl Deployment {
    /// Starts `topology`, durable (`appendfsync always` on every data node) or volatile (no
    /// persistence: a restarted node comes back empty). Sentinel and cluster nodes also have the
    /// harness' keyspace notifications.
    ///
    /// # Panics
    ///
    /// As the harness does when a topology cannot start (with every log).
    pub(super) fn start(topology: Topology, durable: bool) -> Deployment {
        let args: &[&str] = if durable { DURABLE_ARGS } else { &[] };
        match topology {
            Topology::Single => Deployment::Single(RedisServer::start_with_args(args)),
            Topology::Sentinel => Deployment::Sentinel(SentinelSet::builder().args(args).start()),
            Topology::Cluster => Deployment::Cluster(
                RedisCluster::builder()
                    .primaries(3)
                    .replicas_per_primary(1)
                    .args(args)
                    .start(),
            ),
        }
    }

    /// The URL statehouse connects to.
    pub(super) fn url(&self) -> String {
        match self {
            Deployment::Single(server) => server.url(),
            Deployment::Sentinel(set) => set.url(),
            Deployment::Cluster(cluster) => cluster.url(),
        }
    }

    /// Injects one fault of `kind` (a stop or pause lasts `outage`) and returns once the topology
    /// is back; a failover waits for the promotion (then [`restore`](Self::restore) brings the
    /// old primary back). Blocking.
    ///
    /// # Panics
    ///
    /// If the topology cannot take `kind` (checked by [`run`](super::run) first), or does not come
    /// back (the harness panics with every log).
    pub(super) fn inject(&mut self, kind: FaultKind, outage: Duration, pick: usize) -> Injected {
        match (self, kind) {
            (Deployment::Single(server), FaultKind::StopRestart) => {
                server.stop();
                std::thread::sleep(outage);
                server.restart();
            }
            (Deployment::Single(server), FaultKind::PauseResume) => {
                server.pause();
                std::thread::sleep(outage);
                server.resume();
            }
            (Deployment::Single(server), FaultKind::ConnectionKill) => {
                kill_clients(&mut server.connection());
            }
            (Deployment::Sentinel(set), FaultKind::ConnectionKill) => {
                kill_clients(&mut set.primary().connection());
            }
            (Deployment::Cluster(cluster), FaultKind::ConnectionKill) => {
                for node in cluster.nodes().iter().filter(|node| node.is_running()) {
                    kill_clients(&mut node.connection());
                }
            }
            (Deployment::Sentinel(set), FaultKind::SentinelFailover) => {
                let promotion = sentinel_failover(set);
                return Injected {
                    back_at: Instant::now(),
                    promotion: Some(promotion),
                };
            }
            (Deployment::Sentinel(set), FaultKind::SentinelPrimaryKill) => {
                let promotion = sentinel_kill_primary(set);
                return Injected {
                    back_at: Instant::now(),
                    promotion: Some(promotion),
                };
            }
            (Deployment::Cluster(cluster), FaultKind::ClusterPrimaryKill) => {
                let slot = u16::try_from(pick % 16_384).unwrap_or(0);
                let promotion = cluster_kill_primary(cluster, slot);
                return Injected {
                    back_at: Instant::now(),
                    promotion: Some(promotion),
                };
            }
            (deployment, kind) => panic!(
                "soak: the {} topology cannot take a {} fault",
                deployment.topology().name(),
                kind.name()
            ),
        }
        Injected {
            back_at: Instant::now(),
            promotion: None,
        }
    }

    /// After a failover: brings the replaced primary back (a killed one restarted as a replica of
    /// its successor) and waits until the topology has settled. Blocking.
    ///
    /// # Panics
    ///
    /// As the harness does when the topology does not settle (with every log).
    pub(super) fn restore(&self, promotion: &Promotion) {
        match self {
            Deployment::Sentinel(set) => sentinel_restore(set, promotion),
            Deployment::Cluster(cluster) => cluster_restore(cluster, promotion),
            Deployment::Single(_) => {}
        }
    }

    fn topology(&self) -> Topology {
        match self {
            Deployment::Single(_) => Topology::Single,
            Deployment::Sentinel(_) => Topology::Sentinel,
            Deployment::Cluster(_) => Topology::Cluster,
        }
    }

    /// The data nodes, for the report (ports only).
    pub(super) fn describe(&self) -> String {
        let ports = |nodes: &mut dyn Iterator<Item = &Node>| {
            nodes
                .map(|node| node.port().to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Deployment::Single(server) => format!("single server on port {}", server.port()),
            Deployment::Sentinel(set) => format!(
                "sentinel service {} (data nodes {})",
                set.service(),
                ports(&mut set.data_nodes().iter())
            ),
            Deployment::Cluster(cluster) => format!(
                "cluster (nodes {})",
                ports(&mut cluster.nodes().iter().map(|node| &**node))
            ),
        }
    }
}

/// `CLIENT KILL` of every command and subscription connection but this one.
fn kill_clients(connection: &mut redis::Connection) {
    for kind in ["normal", "pubsub"] {
        let killed: redis::RedisResult<u64> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg(kind)
            .arg("SKIPME")
            .arg("yes")
            .query(connection);
        if let Err(error) = killed {
            panic!("soak: CLIENT KILL TYPE {kind} failed: {error}");
        }
    }
}
