//! The dedicated connections of WATCH sections: a bb8 pool of [`TxnConn`]s
//! per endpoint (one on a single server, one per primary on a cluster).
//!
//! A `TxnConn` is marked dirty before WATCH and clean only after EXEC or
//! UNWATCH answered; the pool discards dirty connections, so a section cut
//! short (error, timeout, cancelled future) never hands a still-watching
//! connection to the next user.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

/// The name dedicated (WATCH) connections carry in `CLIENT LIST`.
pub const TXN_CLIENT_NAME: &str = "statehouse-txn";

pub(crate) type Pool = bb8::Pool<TxnManager>;
pub(crate) type PooledTxn = bb8::PooledConnection<'static, TxnManager>;

/// A dedicated connection, whether it is known to hold no WATCH/MULTI
/// state, and whether statehouse's scripts were loaded through it (the
/// server's script cache is emptied by a restart, which also replaces the
/// connection).
#[derive(Debug)]
pub(crate) struct TxnConn {
    pub(crate) conn: MultiplexedConnection,
    pub(crate) clean: bool,
    pub(crate) scripts_loaded: bool,
}

/// bb8 manager of [`TxnConn`]s. bb8-redis' own manager cannot set timeouts
/// and never reports a connection broken, which is exactly what a WATCH
/// section cut short needs.
#[derive(Debug)]
pub(crate) struct TxnManager {
    client: Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl TxnManager {
    /// Connections to `client`'s endpoint, with redis-rs' own timers set
    /// to the store's bounds.
    pub(crate) fn new(client: Client, connect_timeout: Duration, response_timeout: Duration) -> Self {
        Self {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(response_timeout)),
            connect_timeout,
            response_timeout,
        }
    }
}

/// A failed step of opening (or checking) a dedicated connection, with the
/// bound redis-rs ran on that step, so that a timeout reports it.
#[derive(Debug)]
pub(crate) struct ConnectError {
    pub(crate) error: RedisError,
    pub(crate) bound: Duration,
}

impl bb8::ManageConnection for TxnManager {
    type Connection = TxnConn;
    type Error = ConnectError;

    async fn connect(&self) -> Result<TxnConn, ConnectError> {
        // redis-rs bounds connecting and its handshake by the connection
        // timeout, and every later command by the response timeout.
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|error| ConnectError {
                error,
                bound: self.connect_timeout,
            })?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(TXN_CLIENT_NAME)
            .exec_async(&mut conn)
            .await
            .map_err(|error| ConnectError {
                error,
                bound: self.response_timeout,
            })?;
        Ok(TxnConn {
            conn,
            clean: true,
            scripts_loaded: false,
        })
    }

    async fn is_valid(&self, conn: &mut TxnConn) -> Result<(), ConnectError> {
        redis::cmd("PING")
            .exec_async(&mut conn.conn)
            .await
            .map_err(|error| ConnectError {
                error,
                bound: self.response_timeout,
            })
    }

    fn has_broken(&self, conn: &mut TxnConn) -> bool {
        !conn.clean
    }
}

/// The failures to open a connection of one pool, as they happen. bb8 hands
/// them to its error sink only, and lets a checkout wait out its whole
/// bound however fast the connect failed (a killed node refuses at once);
/// a checkout through [`checkout_or_refused`] gives up at the first one.
/// For the pools of a cluster's nodes: there a refused connection means a
/// slot map to refresh, which the caller's deadline must leave time for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Refusals(std::sync::Arc<RefusalsInner>);

#[derive(Debug, Default)]
struct RefusalsInner {
    failed: tokio::sync::Notify,
    last: std::sync::Mutex<Option<RedisError>>,
}

impl bb8::ErrorSink<ConnectError> for Refusals {
    fn sink(&self, error: ConnectError) {
        *self
            .0
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.error);
        self.0.failed.notify_waiters();
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<ConnectError>> {
        Box::new(self.clone())
    }
}

/// [`checkout`] that ends with the error of the first connect of `pool`
/// failing meanwhile (`refusals` is the pool's error sink), instead of
/// waiting out the pool's bound.
pub(crate) async fn checkout_or_refused(
    pool: &Pool,
    refusals: &Refusals,
    bound: Duration,
) -> Result<PooledTxn, bb8::RunError<ConnectError>> {
    let refused = refusals.0.failed.notified();
    tokio::pin!(refused);
    // Registered before the checkout starts a connect: no failure is missed.
    refused.as_mut().enable();
    tokio::select! {
        biased;
        taken = checkout(pool) => taken,
        () = refused => {
            let last = refusals.0.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            Err(bb8::RunError::User(ConnectError {
                error: last.unwrap_or_else(|| RedisError::from((redis::ErrorKind::Io, "connection refused"))),
                bound,
            }))
        }
    }
}

/// A connection of `pool` for a WATCH section. With metrics on, the time
/// it waited (for an idle connection, or for a new one to open) is
/// recorded as [`POOL_WAIT_SECONDS`](statehouse_ports::POOL_WAIT_SECONDS),
/// a failed or timed-out wait included; off, it costs one relaxed load.
pub(crate) async fn checkout(pool: &Pool) -> Result<PooledTxn, bb8::RunError<ConnectError>> {
    if !statehouse_ports::metrics_on() {
        return pool.get_owned().await;
    }
    let started = std::time::Instant::now();
    let taken = pool.get_owned().await;
    metrics::histogram!(statehouse_ports::POOL_WAIT_SECONDS).record(started.elapsed().as_secs_f64());
    taken
}

/// A pool of at most `size` dedicated connections made by `manager`, none
/// opened yet (they open on demand), waiting at most `wait` for one.
pub(crate) fn build(manager: TxnManager, size: u32, wait: Duration) -> Pool {
    builder(size, wait).build_unchecked(manager)
}

/// [`build`], with `refusals` as the pool's error sink (see
/// [`checkout_or_refused`]).
pub(crate) fn build_reporting(manager: TxnManager, size: u32, wait: Duration, refusals: &Refusals) -> Pool {
    builder(size, wait)
        .error_sink(Box::new(refusals.clone()))
        .build_unchecked(manager)
}

fn builder(size: u32, wait: Duration) -> bb8::Builder<TxnManager> {
    bb8::Pool::builder()
        .max_size(size.max(1))
        .min_idle(None)
        .connection_timeout(wait)
        .idle_timeout(Some(Duration::from_secs(300)))
        // bb8's idle reaper is a task that only notices a dropped pool at
        // its next tick: tick every second (not every 30 s), so dropping
        // the store leaves nothing running for long.
        .reaper_rate(Duration::from_secs(1))
        .test_on_check_out(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_checkout_ends_at_the_first_refused_connect_not_the_pool_wait() {
        // Nothing listens on port 1: every connect is refused at once.
        let client = Client::open("redis://127.0.0.1:1").unwrap();
        let manager = TxnManager::new(client, Duration::from_secs(1), Duration::from_secs(1));
        let refusals = Refusals::default();
        // A wait far beyond the test's own bound: only the refusal can end the checkout in time.
        let pool = build_reporting(manager, 2, Duration::from_secs(600), &refusals);
        let taken = tokio::time::timeout(
            Duration::from_secs(300),
            checkout_or_refused(&pool, &refusals, Duration::from_secs(1)),
        )
        .await
        .expect("the checkout waited out the pool's bound");
        match taken {
            Err(bb8::RunError::User(ConnectError { error, .. })) => {
                assert!(error.is_io_error() || error.is_connection_refusal(), "{error}");
            }
            Err(bb8::RunError::TimedOut) => panic!("timed out instead of reporting the refusal"),
            Ok(_) => panic!("connected to port 1"),
        }
    }
}
