//! Test harness: real `redis-server` processes for integration tests.
//!
//! - [`RedisServer`] (see the [`server`] module for the design): one server, a replica, durable,
//!   paused, restarted; [`TlsRedisServer`] with a TLS port.
//! - [`RedisCluster`] (see [`cluster`]): a Redis Cluster made with `redis-cli --cluster create`,
//!   with slot lookups, resharding steps and primary kills.
//! - [`SentinelSet`] (see [`sentinel`]): a primary, replicas and sentinels, with `SENTINEL FAILOVER`
//!   and primary kills.
//! - [`failover`]: the failover faults of both in one shape ([`Promotion`]), with their restores.
//!
//! The topologies are made of [`Node`]s, each a [`RedisServer`] with its own directory, port,
//! watchdog and log.

pub mod cluster;
pub mod failover;
pub mod node;
pub mod sentinel;
pub mod server;
pub mod tls;

pub use cluster::{ClusterBuilder, ClusterNode, MigrationStep, RedisCluster};
pub use failover::{FailoverHow, Promotion};
pub use node::{Node, Role};
pub use sentinel::{SentinelBuilder, SentinelSet};
pub use server::{CommandCalls, RedisServer, SHARED_ARGS};
pub use tls::{TestCertificates, TlsRedisServer};
