//! A Redis Cluster: plain commands, pipelines and scripts through redis-rs'
//! cluster connection (routing by slot, its slot map refreshed there, but
//! no request sent twice by it: see `Cluster::open`), and beside
//! it statehouse's own slot map and one pool of dedicated connections per
//! primary (`topology.rs`), for what the multiplexed cluster connection
//! cannot do safely:
//!
//! - WATCH sections (`txn.rs`): WATCH state belongs to a connection, and
//!   redis-rs shares its connections between callers;
//! - a request that came back redirected (`MOVED`, `ASK`; nothing of it
//!   ran): [`ClusterShared`] sends it again to the node the redirect names
//!   (after `ASKING` for an `ASK`), on a dedicated connection; one told to
//!   wait (`TRYAGAIN`, `CLUSTERDOWN`, `READONLY` of a demoted primary) again
//!   through redis-rs after a pause.
//!
//! `seeds.rs` reads the URL form, `redis+cluster://[user:pw@]h1:p1,h2:p2`.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike as _;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use statehouse_ports::{Backoff, StoreError};

use super::{connect_timeout, open_error};
use crate::RedisConfig;
use crate::error::{Redirect, redirect_of};
use crate::redact::Secrets;

mod seeds;
mod topology;

pub(crate) use seeds::ClusterUrl;
pub(crate) use topology::Nodes;

/// How many redirects one transaction follows before giving up (each
/// after a short pause once the first did not settle it; the call's
/// response timeout bounds them all anyway).
const MAX_REDIRECTS: usize = 32;
/// The pauses between redirected attempts.
const MIN_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// The connections to one cluster.
#[derive(Clone)]
pub(crate) struct Cluster {
    pub(crate) shared: ClusterShared,
}

/// redis-rs' cluster connection with statehouse's nodes: the cluster form
/// of [`Shared`](super::Shared).
#[derive(Clone)]
pub(crate) struct ClusterShared {
    pub(crate) conn: ClusterConnection,
    pub(crate) nodes: Arc<Nodes>,
}

impl Cluster {
    /// Asks the seeds for the slot map (failing fast with the real cause:
    /// refused, wrong password, a server without cluster support), then
    /// opens redis-rs' cluster connection.
    pub(super) async fn open(
        config: &RedisConfig,
        url: ClusterUrl,
        secrets: &Secrets,
    ) -> Result<Self, StoreError> {
        let redacted = config.redacted_url();
        let bound = config.connect_timeout + config.response_timeout;
        let seed_urls = url.seed_urls();
        // Each seed gets its connect and response timeouts; the bound is
        // per seed, for a list of dead seeds.
        let seeds_bound = bound * u32::try_from(url.seeds.len()).unwrap_or(u32::MAX).max(1);
        let nodes = match tokio::time::timeout(seeds_bound, Nodes::open(url, config, secrets.clone())).await {
            Ok(Ok(nodes)) => Arc::new(nodes),
            Ok(Err(error)) => return Err(open_error(&redacted, error, config.response_timeout, secrets)),
            Err(_) => return Err(connect_timeout(&redacted, seeds_bound)),
        };
        let builder = ClusterClientBuilder::new(seed_urls)
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.response_timeout)
            // `run` bounds every call from the outside, redirects included.
            .overall_response_timeout(None)
            // No resending by redis-rs: it resends a request whose
            // connection dropped whether or not the node ran it (redis-rs
            // 1.8.1, `RetryMethod::Reconnect`), which applied writes twice
            // under the soak's connection kills. An answer that says nothing
            // ran (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `READONLY`) is
            // followed by `ClusterShared::redirected` below and by the WATCH
            // loop (`targets.rs`); a dropped connection is the caller's
            // unknown outcome, as on one server. redis-rs still rebuilds its
            // slot map and reconnects on those answers.
            .retries(0);
        #[cfg(feature = "tls")]
        let builder = match &config.tls_ca_file {
            Some(ca_file) => builder.certs(super::tls_certificates(ca_file, &redacted)?),
            None => builder,
        };
        #[cfg(not(feature = "tls"))]
        if let Some(ca_file) = &config.tls_ca_file {
            return Err(StoreError::invalid_input(
                "connect",
                redacted,
                format!(
                    "a TLS CA file ({}) is set, but statehouse was built without its `tls` feature",
                    ca_file.display()
                ),
            ));
        }
        let client = builder
            .build()
            .map_err(|error| open_error(&redacted, error, Duration::ZERO, secrets))?;
        let conn = match tokio::time::timeout(seeds_bound, client.get_async_connection()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(error)) => return Err(open_error(&redacted, error, config.connect_timeout, secrets)),
            Err(_) => return Err(connect_timeout(&redacted, seeds_bound)),
        };
        Ok(Self {
            shared: ClusterShared { conn, nodes },
        })
    }
}

/// What is sent through [`ClusterShared`]: a command, or a pipeline with
/// the offset and count of the answers kept.
#[derive(Clone, Copy)]
enum Request<'a> {
    Command(&'a Cmd),
    Pipeline(&'a Pipeline, usize, usize),
}

/// The answer to a [`Request`].
enum Reply {
    One(Value),
    Many(Vec<Value>),
}

impl Request<'_> {
    /// Sends it on `conn`.
    async fn send(self, conn: &mut impl redis::aio::ConnectionLike) -> RedisResult<Reply> {
        match self {
            Request::Command(cmd) => conn.req_packed_command(cmd).await.map(Reply::One),
            Request::Pipeline(pipeline, offset, count) => conn
                .req_packed_commands(pipeline, offset, count)
                .await
                .map(Reply::Many),
        }
    }
}

impl ClusterShared {
    /// `cmd` on redis-rs' connection, which routes it by its keys, as the
    /// boxed future [`Shared`](super::Shared)'s `ConnectionLike` hands back:
    /// see [`command_inline`](Self::command_inline).
    pub(crate) fn command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.command_inline(cmd))
    }

    /// `cmd` on redis-rs' connection, its answer as is (the fast path: the
    /// only state kept across the wait is redis-rs' own boxed future); one
    /// that comes back redirected all the same (redis-rs, with `retries(0)`,
    /// follows no redirect itself; see `Cluster::open`) is sent again where
    /// the redirect points (see [`redirected`](Self::redirected)).
    pub(crate) async fn command_inline(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let error = match self.conn.req_packed_command(cmd).await {
            Err(error) => error,
            answer => return answer,
        };
        // Boxed: this future is held inline by every command's, so the
        // error path's state is kept off it.
        match Box::pin(self.after_error(Request::Command(cmd), error)).await? {
            Reply::One(value) => Ok(value),
            Reply::Many(_) => Err(RedisError::from((
                redis::ErrorKind::Client,
                "a command answered as a pipeline",
            ))),
        }
    }

    /// `pipeline` on redis-rs' connection, as the boxed future
    /// [`Shared`](super::Shared)'s `ConnectionLike` hands back. A
    /// transaction goes to the node of its first key; one that comes back
    /// redirected (nothing of it ran) is sent again where the redirect
    /// points. A plain pipeline's commands may live in different slots (an
    /// `MGET` per chunk of keys, a `TYPE` per key): each is sent as a
    /// command ([`command_inline`](Self::command_inline)), all at once,
    /// answers in order; statehouse's plain pipelines only read, so their
    /// order on the wire does not matter.
    pub(crate) fn pipeline<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            if !pipeline.is_transaction() {
                let calls = pipeline.cmd_iter().map(|cmd| {
                    let mut shared = self.clone();
                    async move { shared.command_inline(cmd).await }
                });
                let values = futures_util::future::try_join_all(calls).await?;
                return Ok(values.into_iter().skip(offset).take(count).collect());
            }
            self.pipeline_together(pipeline, offset, count).await
        })
    }

    /// `pipeline` as one request, wherever its first keyed command lives
    /// (redis-rs' routing of a pipeline), not split per command: a
    /// transaction, or a write with the `WAIT` after it (`durable.rs`),
    /// which must reach the node of the write on the same connection. One
    /// that comes back redirected is sent again where the redirect points.
    pub(crate) async fn pipeline_together(
        &mut self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let error = match self.conn.req_packed_commands(pipeline, offset, count).await {
            Err(error) => error,
            answers => return answers,
        };
        match self
            .after_error(Request::Pipeline(pipeline, offset, count), error)
            .await?
        {
            Reply::Many(values) => Ok(values),
            Reply::One(_) => Err(RedisError::from((
                redis::ErrorKind::Client,
                "a pipeline answered as a command",
            ))),
        }
    }

    /// After redis-rs answered `request` with `error`: a redirect is
    /// followed ([`redirected`](Self::redirected), boxed, so that the fast
    /// path's future does not carry the redirect loop's state), any other
    /// error is the answer.
    async fn after_error(&mut self, request: Request<'_>, error: RedisError) -> RedisResult<Reply> {
        match redirect_of(&error) {
            Some(redirect) => Box::pin(self.redirected(request, redirect, error)).await,
            None => Err(error),
        }
    }

    /// Sends `request`, which came back with `redirect` (so nothing of it
    /// ran), again: `MOVED` on a dedicated connection to the node named
    /// (the slot map refreshed), `ASK` there after `ASKING`, `TRYAGAIN` or
    /// `CLUSTERDOWN` through redis-rs again after a pause; until it runs,
    /// fails otherwise, or [`MAX_REDIRECTS`] (the call's response timeout
    /// bounds them all anyway).
    async fn redirected(
        &mut self,
        request: Request<'_>,
        mut redirect: Redirect,
        mut last: RedisError,
    ) -> RedisResult<Reply> {
        let mut backoff = Backoff::new(MIN_PAUSE, MAX_PAUSE);
        for attempt in 0..MAX_REDIRECTS {
            if attempt > 0 || redirect == Redirect::Wait {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            tracing::debug!(
                ?redirect,
                attempt,
                "cluster: request redirected; sending it again"
            );
            let result = match &redirect {
                Redirect::Wait => request.send(&mut self.conn).await,
                Redirect::Moved { node, .. } => {
                    let seen = self.nodes.refreshes();
                    // Best effort: the node the answer names is where to go.
                    let _ = self.nodes.refresh_after(seen).await;
                    self.on_node(node, false, request).await
                }
                Redirect::Ask { node, .. } => self.on_node(node, true, request).await,
            };
            match result {
                Err(error) => match redirect_of(&error) {
                    Some(next) => {
                        redirect = next;
                        last = error;
                    }
                    None => return Err(error),
                },
                ok => return ok,
            }
        }
        Err(last)
    }

    /// `request` on a dedicated connection to the node at `addr`, after
    /// `ASKING` if `asking` (nothing else uses that connection in between,
    /// so the flag reaches the command, or the transaction's `MULTI`, which
    /// keeps it until `EXEC`).
    async fn on_node(&self, addr: &str, asking: bool, request: Request<'_>) -> RedisResult<Reply> {
        let node = self
            .nodes
            .node(addr)
            .map_err(|_| RedisError::from((redis::ErrorKind::InvalidClientConfig, "a redirect to a node")))?;
        let mut txn = match node.pool.get_owned().await {
            Ok(txn) => txn,
            Err(bb8::RunError::User(error)) => return Err(error.error),
            Err(bb8::RunError::TimedOut) => {
                return Err(RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )));
            }
        };
        txn.clean = false;
        if asking {
            redis::cmd("ASKING").exec_async(&mut txn.conn).await?;
        }
        let result = request.send(&mut txn.conn).await;
        // Answered (even with an error): a transaction ended with EXEC or
        // DISCARD. Cut off: unknown state, the pool drops it.
        txn.clean = match &result {
            Ok(_) => true,
            Err(error) => !(error.is_io_error() || error.is_timeout()),
        };
        result
    }

    /// One command on the node at `addr` through redis-rs' connection to it
    /// (a `SCAN` of that node).
    pub(crate) async fn on_address(&mut self, addr: &str, cmd: &Cmd) -> RedisResult<Value> {
        let (host, port) = split_addr(addr)?;
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.to_owned(),
            port,
        });
        self.conn.route_command(cmd.clone(), routing).await
    }

    /// `pipeline` (its `count` replies from `offset`) sent to the node at
    /// `addr` (a listing's `SCAN` and `INFO` of one node).
    pub(crate) async fn pipeline_on_address(
        &mut self,
        addr: &str,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let (host, port) = split_addr(addr)?;
        let route = SingleNodeRoutingInfo::ByAddress {
            host: host.to_owned(),
            port,
        };
        self.conn
            .route_pipeline(pipeline.clone(), offset, count, route)
            .await
    }
}

/// `host` and `port` of `host:port` (`[v6]:port` gives the bare `v6`).
fn split_addr(addr: &str) -> RedisResult<(&str, u16)> {
    let bad = || RedisError::from((redis::ErrorKind::Client, "a node address is not host:port"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host, port.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_split() {
        assert_eq!(split_addr("10.0.0.1:7000").unwrap(), ("10.0.0.1", 7000));
        assert_eq!(split_addr("[::1]:7000").unwrap(), ("::1", 7000));
        assert!(split_addr("nope").is_err());
    }
}
