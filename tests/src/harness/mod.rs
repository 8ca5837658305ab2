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

/// The harness's checks of its own internals (a taken port, the sentinel
/// config's quoting, `CLUSTER NODES` lines, finding `redis-cli`), kept beside
/// the code they check and run by the `harness` test binary
/// (`tests/harness/self_checks.rs`): a unit-test build of this whole crate
/// for them cost every test build 30 s of CPU.
#[doc(hidden)]
pub mod self_checks {
    pub use super::cluster::cli::checks::{
        a_missing_redis_cli_says_how_to_install_it, redis_cli_is_found_next_to_redis_server_before_path,
    };
    pub use super::cluster::topology::checks::cluster_nodes_lines_parse;
    pub use super::sentinel::builder::checks::config_quotes_passwords_and_names_the_service;
    pub use super::server::process::checks::a_taken_port_is_reported_for_retry_and_everything_is_cleaned_up;
}
