//! Connections, and the one place where every call gets its timeout and its
//! error mapping.
//!
//! # Layout
//!
//! - `mod.rs`: [`Connections`] (what a store holds), [`Shared`] (THE handle
//!   every family sends its plain commands, pipelines and scripts through),
//!   and the helpers every call goes through (`run`, `run_dedicated`,
//!   `run_raw`, the mappings).
//! - `single.rs`: one server: the shared multiplexed, auto-reconnecting
//!   [`ConnectionManager`], the reader (a second one, to the read URL, when
//!   one is set), the pool of dedicated connections.
//! - `pool.rs`: the dedicated connections of WATCH sections, a bb8 pool of
//!   `TxnConn`s, never handed back dirty.
//! - `cluster/`: a Redis Cluster (`redis+cluster://h1:p1,h2:p2`): redis-rs'
//!   cluster connection for plain commands, statehouse's slot map and a
//!   pool per primary for WATCH sections and redirected transactions.
//! - `sentinel/`: a Sentinel service
//!   (`redis+sentinel://s1:26379,s2:26379/SERVICE`): its current primary as
//!   one server ([`Single`]), resolved by asking the sentinels and replaced
//!   on a failover; optionally a replica as the read endpoint.
//! - `durable.rs`: durability on demand, THE place a write waits for its
//!   replicas (`WAIT` after the write, on its connection): the
//!   [`writer`](Connections::writer) handle and its checks.
//! - `targets.rs`: where a WATCH section runs and how it recovers from a
//!   redirect; the nodes a listing scans and a change feed listens to.
//! - `report.rs`: the store's [`Topology`](statehouse_ports::Topology)
//!   (endpoints, pools, Sentinel primary, slot map); `failovers.rs`: the
//!   failover metric, counted where a new primary is followed.
//!
//! # Shared and dedicated
//!
//! - Plain commands share one multiplexed connection: no per-call
//!   checkout, pipelining for free, and a broken connection is replaced in
//!   the background.
//! - WATCH sections need a connection of their own (WATCH state belongs to
//!   the connection), so they take one from a small bb8 pool (`pool.rs`);
//!   on a cluster, from the pool of the primary owning the slot of their
//!   keys (`targets.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use statehouse_ports::{Durability, StoreError};

use crate::RedisConfig;
use crate::error;
use crate::redact::Secrets;

mod cluster;
mod durable;
mod failovers;
mod pool;
mod report;
mod sentinel;
mod single;
mod targets;

pub(crate) use durable::{Acks, Shortfall};
pub(crate) use pool::PooledTxn;
pub use pool::TXN_CLIENT_NAME;

use cluster::{Cluster, ClusterShared, ClusterUrl};
use sentinel::{Sentinel, SentinelUrl};
use single::Single;
pub(crate) use targets::{Recovery, ScanNode, SectionFailure, Target};

/// The operation of an error connecting to the read endpoint (the write
/// endpoint's is `"connect"`).
pub(crate) const CONNECT_READ: &str = "connect_read";

/// THE handle of plain commands, pipelines and scripts: every family sends
/// through it (`cmd.query_async(&mut conn)`), whatever the deployment.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) enum Shared {
    /// One server's multiplexed, reconnecting connection.
    Single(ConnectionManager),
    /// redis-rs' cluster connection (routing by slot), with statehouse's
    /// nodes for transactions that come back redirected.
    Cluster(ClusterShared),
    /// One node of a cluster, every command sent to it (`SCAN` per node).
    Node(ClusterShared, Arc<str>),
    /// Writes that wait for replicas: each command or pipeline is sent with
    /// `WAIT` after it, in one request (`durable.rs`).
    Durable(Box<Shared>, durable::Wait),
}

impl redis::aio::ConnectionLike for Shared {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Shared::Single(conn) => conn.req_packed_command(cmd),
            // One boxed future of ours around redis-rs' (`ClusterShared::command`).
            Shared::Cluster(cluster) => cluster.command(cmd),
            Shared::Node(cluster, addr) => async move { cluster.on_address(addr, cmd).await }.boxed(),
            Shared::Durable(inner, wait) => async move { wait.command_then_wait(inner, cmd).await }.boxed(),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Shared::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Shared::Cluster(cluster) => cluster.pipeline(pipeline, offset, count),
            Shared::Node(cluster, addr) => {
                async move { cluster.pipeline_on_address(addr, pipeline, offset, count).await }.boxed()
            }
            Shared::Durable(inner, wait) => {
                async move { wait.pipeline_then_wait(inner, pipeline, offset, count).await }.boxed()
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Shared::Single(conn) => conn.get_db(),
            Shared::Cluster(_) | Shared::Node(..) => 0,
            Shared::Durable(inner, _) => inner.get_db(),
        }
    }
}

impl Shared {
    /// One command and its reply as `T`: what `cmd.query_async(&mut shared)`
    /// does, without the boxed future of ours that `ConnectionLike` puts
    /// around a cluster's call (one allocation less per command). A single
    /// server's call keeps redis-rs' boxed future: held inline, its state
    /// (about 4 KiB) would make every caller's future as large, and moving
    /// those costs more than the allocation. Families send their commands
    /// through this; pipelines go through `ConnectionLike`.
    pub(crate) async fn query<T: redis::FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        let value = match self {
            Shared::Cluster(cluster) => cluster.command_inline(cmd).await?,
            other => redis::aio::ConnectionLike::req_packed_command(other, cmd).await?,
        };
        Ok(redis::from_redis_value(value.extract_error()?)?)
    }
}

/// What a store is connected to.
#[derive(Clone)]
enum Deployment {
    /// Boxed: with TLS a server's client is far larger than the cluster's
    /// handles.
    Single(Box<Single>),
    Cluster(Cluster),
    /// A Sentinel service: its current primary, as one server, replaced on
    /// a failover.
    Sentinel(Sentinel),
}

#[derive(Clone)]
pub(crate) struct Connections {
    deployment: Deployment,
    pub(crate) response_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pool_wait: Duration,
    /// How many replicas a write waits for (`durable.rs`).
    durability: Durability,
    /// What of the URL no error may show (redis-rs errors are checked).
    secrets: Arc<Secrets>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Connections");
        match &self.deployment {
            Deployment::Single(single) => debug
                .field("pool", &single.pool.state())
                .field("read_endpoint", &single.reader.is_some()),
            Deployment::Cluster(cluster) => debug.field("cluster", &cluster.shared.nodes),
            Deployment::Sentinel(sentinel) => debug
                .field("primary", &sentinel.primary_addr())
                .field("read_replica", &sentinel.replica_addr())
                .field("pool", &sentinel.current().pool.state()),
        };
        debug
            .field("durability", &self.durability)
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// Connects to what `config.url` names: a cluster
    /// ([`Cluster::open`]), or one server ([`Single::open`]).
    pub(crate) async fn open(config: &RedisConfig) -> Result<Self, StoreError> {
        #[cfg(feature = "tls")]
        install_crypto_provider();
        durable::check(config.durability, config.response_timeout, &config.redacted_url())?;
        // Errors of later calls are checked against the secrets of both
        // URLs: a call may run on either endpoint.
        // With the sentinels' credentials of the configuration (if any) as
        // query parameters: they are parsed and hidden like the URL's own.
        let url = config.effective_url();
        let secrets = Arc::new(Secrets::of_all(
            std::iter::once(url.as_str()).chain(config.read_url.as_deref()),
        ));
        if let Some(parsed) = SentinelUrl::parse(&url) {
            let parsed = parsed
                .map_err(|reason| StoreError::invalid_input("connect", config.redacted_url(), reason))?;
            if parsed.replica {
                return Err(StoreError::invalid_input(
                    "connect",
                    config.redacted_url(),
                    "`role=replica` is for a read URL; the URL of a Sentinel service names its primary",
                ));
            }
            let read = match &config.read_url {
                None => None,
                Some(read_url) => match SentinelUrl::parse(read_url) {
                    Some(Ok(read)) if read.replica => {
                        Some((read, Secrets::of(read_url), crate::redact_url(read_url)))
                    }
                    Some(Err(reason)) => {
                        return Err(StoreError::invalid_input(
                            CONNECT_READ,
                            crate::redact_url(read_url),
                            reason,
                        ));
                    }
                    _ => {
                        return Err(StoreError::invalid_input(
                            CONNECT_READ,
                            crate::redact_url(read_url),
                            "the read URL of a Sentinel service is any replica of a service: \
                             redis+sentinel://s1:26379,s2:26379/SERVICE?role=replica",
                        ));
                    }
                },
            };
            let sentinel = Sentinel::open(config, parsed, Secrets::of(&url), read).await?;
            return Ok(Self::with(config, Deployment::Sentinel(sentinel), secrets));
        }
        let deployment = match ClusterUrl::parse(&config.url) {
            Some(Ok(url)) => {
                if let Some(read_url) = &config.read_url {
                    return Err(StoreError::invalid_input(
                        CONNECT_READ,
                        crate::redact_url(read_url),
                        "a read URL is for one server; on a cluster every key is read from its primary",
                    ));
                }
                Deployment::Cluster(Cluster::open(config, url, &Secrets::of(&config.url)).await?)
            }
            Some(Err(reason)) => {
                return Err(StoreError::invalid_input(
                    "connect",
                    config.redacted_url(),
                    reason,
                ));
            }
            None => Deployment::Single(Box::new(Single::open(config, &Secrets::of(&config.url)).await?)),
        };
        Ok(Self::with(config, deployment, secrets))
    }

    fn with(config: &RedisConfig, deployment: Deployment, secrets: Arc<Secrets>) -> Self {
        Self {
            deployment,
            response_timeout: config.response_timeout,
            connect_timeout: config.connect_timeout,
            pool_wait: config.connect_timeout + config.response_timeout,
            durability: config.durability,
            secrets,
        }
    }

    /// On a Sentinel service, a call's failure that may mean a failover
    /// starts a resolution of the primary (in the background).
    fn observe(&self, error: &RedisError) {
        if let Deployment::Sentinel(sentinel) = &self.deployment {
            sentinel.suspect_error(error);
        }
    }

    /// On a Sentinel service, a call that timed out starts a resolution of
    /// the primary (in the background).
    fn observe_timeout(&self) {
        if let Deployment::Sentinel(sentinel) = &self.deployment {
            sentinel.suspect();
        }
    }

    /// Runs one call on the shared connection under the response timeout,
    /// mapping its error.
    pub(crate) async fn run<T>(
        &self,
        op: &'static str,
        key: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        // The shared connection has no response timer of its own: redis-rs
        // times out only while reconnecting, after the connect timeout.
        self.bounded_call(op, key, self.connect_timeout, call).await
    }

    /// Runs one call on a dedicated connection under the response timeout,
    /// mapping its error.
    pub(crate) async fn run_dedicated<T>(
        &self,
        op: &'static str,
        key: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        // Dedicated connections time out in redis-rs after the same bound.
        self.bounded_call(op, key, self.response_timeout, call).await
    }

    /// `call` under the response timeout; `inner` is the bound of the timer
    /// redis-rs runs on that connection, reported if that one fires first.
    async fn bounded_call<T>(
        &self,
        op: &'static str,
        key: &str,
        inner: Duration,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.response_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.observe(&e);
                Err(error::map_guarded(op, key, e, inner, &self.secrets))
            }
            Err(_) => {
                self.observe_timeout();
                Err(StoreError::Timeout {
                    op,
                    key: key.to_owned(),
                    after: self.response_timeout,
                })
            }
        }
    }

    /// Runs one call on a dedicated connection under the response timeout,
    /// handing back its redis-rs result unmapped, for a caller that acts on a
    /// particular server error (the WATCH loop on `NOSCRIPT`); only the
    /// timeout is mapped. The caller maps the rest with
    /// [`map_dedicated`](Self::map_dedicated).
    pub(crate) async fn run_raw<T>(
        &self,
        op: &'static str,
        key: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<RedisResult<T>, StoreError> {
        tokio::time::timeout(self.response_timeout, call)
            .await
            .map_err(|_| {
                self.observe_timeout();
                StoreError::Timeout {
                    op,
                    key: key.to_owned(),
                    after: self.response_timeout,
                }
            })
    }

    /// The mapping of an error from a call on a dedicated connection (what
    /// [`run_dedicated`](Self::run_dedicated) applies).
    pub(crate) fn map_dedicated(&self, op: &'static str, key: &str, error: RedisError) -> StoreError {
        self.observe(&error);
        error::map_guarded(op, key, error, self.response_timeout, &self.secrets)
    }

    /// The mapping of an error from a call on the shared connection (what
    /// [`run`](Self::run) applies), for a caller of [`run_raw`](Self::run_raw)
    /// on it.
    pub(crate) fn map_shared(&self, op: &'static str, key: &str, error: RedisError) -> StoreError {
        self.observe(&error);
        error::map_guarded(op, key, error, self.connect_timeout, &self.secrets)
    }

    /// A shared-connection handle for plain commands (cheap clone).
    pub(crate) fn shared(&self) -> Shared {
        match &self.deployment {
            Deployment::Single(single) => Shared::Single(single.shared.clone()),
            Deployment::Cluster(cluster) => Shared::Cluster(cluster.shared.clone()),
            Deployment::Sentinel(sentinel) => Shared::Single(sentinel.current().shared.clone()),
        }
    }

    /// Whether the store is connected to a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.deployment, Deployment::Cluster(_))
    }

    /// Whether the store is connected to a Sentinel service.
    pub(crate) fn is_sentinel(&self) -> bool {
        matches!(self.deployment, Deployment::Sentinel(_))
    }

    /// On a Sentinel service, something outside a call (a change feed's
    /// lost Pub/Sub connection) may mean a failover: resolve the primary
    /// again in the background. Nothing elsewhere.
    pub(crate) fn suspect_failover(&self) {
        self.observe_timeout();
    }

    /// A handle for read-only commands that may be served by a replica: the
    /// read endpoint's connection if a read URL is set, else the shared one.
    pub(crate) fn reader(&self) -> Shared {
        match &self.deployment {
            Deployment::Single(single) => {
                Shared::Single(single.reader.as_ref().unwrap_or(&single.shared).clone())
            }
            Deployment::Cluster(cluster) => Shared::Cluster(cluster.shared.clone()),
            Deployment::Sentinel(sentinel) => Shared::Single(
                sentinel
                    .reader()
                    .unwrap_or_else(|| sentinel.current().shared.clone()),
            ),
        }
    }
}

/// rustls refuses to build a TLS client without a process-wide crypto
/// provider, and redis-rs does not pick one. Install ring's, unless the
/// application already installed one of its choice.
#[cfg(feature = "tls")]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race against another installer is fine: one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Opening gave up on `url` (redacted) after `bound`.
fn connect_timeout(url: &str, bound: Duration) -> StoreError {
    StoreError::Timeout {
        op: "connect",
        key: url.to_owned(),
        after: bound,
    }
}

/// `error` reported as operation `op`, everything else kept.
fn relabel(error: StoreError, op: &'static str) -> StoreError {
    match error {
        StoreError::Connection { key, source, .. } => StoreError::Connection { op, key, source },
        StoreError::Timeout { key, after, .. } => StoreError::Timeout { op, key, after },
        StoreError::InvalidInput { key, reason, .. } => StoreError::InvalidInput { op, key, reason },
        StoreError::WrongType { key, .. } => StoreError::WrongType { op, key },
        StoreError::Operation { key, source, .. } => StoreError::Operation { op, key, source },
        other => other,
    }
}

/// The redis-rs client of `target` (a URL of one server) with the TLS CA
/// of `config` if one is set. `url` is the redacted URL errors name.
fn client(config: &RedisConfig, target: &str, url: &str, secrets: &Secrets) -> Result<Client, StoreError> {
    // Parsing times nothing out.
    let parse_error = |e| open_error(url, e, Duration::ZERO, secrets);
    let Some(ca_file) = &config.tls_ca_file else {
        return Client::open(target).map_err(parse_error);
    };
    #[cfg(feature = "tls")]
    {
        let certificates = tls_certificates(ca_file, url)?;
        Client::build_with_tls(target, certificates).map_err(parse_error)
    }
    #[cfg(not(feature = "tls"))]
    {
        Err(StoreError::invalid_input(
            "connect",
            url,
            format!(
                "a TLS CA file ({}) is set, but statehouse was built without its `tls` feature",
                ca_file.display()
            ),
        ))
    }
}

/// The URL statehouse reaches the data node at `addr` (`host:port`) of the
/// deployment `url` names with (a Sentinel service's primary or replica, a
/// cluster's node), or, with `sentinel`, the sentinel at `addr`: `None` for
/// one server (its URL names its node), an error that quotes nothing of the
/// URL if it is malformed.
pub(crate) fn node_url(url: &str, addr: &str, sentinel: bool) -> Option<Result<String, String>> {
    if let Some(parsed) = SentinelUrl::parse(url) {
        return Some(parsed.map(|parsed| {
            if sentinel {
                parsed.sentinel_url(addr)
            } else {
                parsed.primary_url(addr)
            }
        }));
    }
    if sentinel {
        return Some(Err("only a Sentinel URL names sentinels".to_owned()));
    }
    ClusterUrl::parse(url).map(|parsed| parsed.map(|parsed| parsed.node_url(addr)))
}

/// The root certificate of `ca_file`, for redis-rs. `url` is the redacted
/// URL errors name.
#[cfg(feature = "tls")]
fn tls_certificates(ca_file: &std::path::Path, url: &str) -> Result<redis::TlsCertificates, StoreError> {
    let root_cert = std::fs::read(ca_file).map_err(|e| {
        StoreError::invalid_input(
            "connect",
            url,
            format!("cannot read the TLS CA file {}: {e}", ca_file.display()),
        )
    })?;
    Ok(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root_cert),
    })
}

/// A redis-rs error of opening a connection to `url` (redacted); `bound` is
/// the timeout redis-rs ran on the failed step.
fn open_error(url: &str, error: RedisError, bound: Duration, secrets: &Secrets) -> StoreError {
    let mapped = error::map_guarded("connect", url, error, bound, secrets);
    match mapped {
        #[cfg(not(feature = "tls"))]
        StoreError::InvalidInput { op, key, reason } if key.starts_with("rediss") => {
            StoreError::InvalidInput {
                op,
                key,
                reason: format!("{reason} (rediss:// needs the `tls` feature of statehouse)"),
            }
        }
        other => other,
    }
}
