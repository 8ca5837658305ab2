//! Connections, and the one place where every call gets its timeout and its
//! error mapping.
//!
//! - Plain commands share one multiplexed, auto-reconnecting
//!   [`ConnectionManager`]: no per-call connection checkout, pipelining for
//!   free, and a broken connection is replaced in the background.
//! - WATCH sections need a connection of their own (WATCH state belongs to
//!   the connection), so they take one from a small bb8 pool of
//!   [`TxnConn`]s. A `TxnConn` is marked dirty before WATCH and clean only
//!   after EXEC/UNWATCH answered; the pool discards dirty connections, so a
//!   section cut short (error, timeout, cancelled future) never hands a
//!   still-watching connection to the next user.
//! - With a read URL, task reads go to a second [`ConnectionManager`] on
//!   that endpoint (`reader`), opened and configured like the shared one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError, RedisResult};
use statehouse_ports::StoreError;

use crate::RedisConfig;
use crate::error;
use crate::redact::Secrets;

/// The name dedicated (WATCH) connections carry in `CLIENT LIST`.
pub const TXN_CLIENT_NAME: &str = "statehouse-txn";

/// The operation of an error connecting to the read endpoint (the write
/// endpoint's is `"connect"`).
pub(crate) const CONNECT_READ: &str = "connect_read";

pub(crate) type Pool = bb8::Pool<TxnManager>;
pub(crate) type PooledTxn = bb8::PooledConnection<'static, TxnManager>;

#[derive(Clone)]
pub(crate) struct Connections {
    pub(crate) shared: ConnectionManager,
    /// The read endpoint's connection, when a read URL is configured.
    reader: Option<ConnectionManager>,
    pub(crate) pool: Pool,
    pub(crate) response_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pool_wait: Duration,
    /// The write endpoint's client, for connections of their own (the
    /// change feed's Pub/Sub subscriptions, `changes.rs`).
    pub(crate) client: Client,
    /// What of the URL no error may show (redis-rs errors are checked).
    secrets: Arc<Secrets>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("pool", &self.pool.state())
            .field("read_endpoint", &self.reader.is_some())
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// Connects the shared connection (failing fast if the server cannot be
    /// reached) and prepares the pool (its connections open on demand);
    /// then, if a read URL is set, the reader (failing fast the same way,
    /// with operation [`CONNECT_READ`]).
    pub(crate) async fn open(config: &RedisConfig) -> Result<Self, StoreError> {
        #[cfg(feature = "tls")]
        install_crypto_provider();
        let url = config.redacted_url();
        // Errors of later calls are checked against the secrets of both
        // URLs: a call may run on either endpoint.
        let secrets = Arc::new(Secrets::of_all(
            std::iter::once(config.url.as_str()).chain(config.read_url.as_deref()),
        ));
        let client = client(config, &url, &Secrets::of(&config.url))?;
        let own_client = client.clone();

        let manager = TxnManager {
            client: client.clone(),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
        };
        // Probe with one dedicated connection first: the shared connection
        // retries its initial connect with backoff, which would turn "refused"
        // or "wrong password" into a vague timeout. The probe fails fast with
        // the real cause, and then serves as the pool's first connection.
        let bound = config.connect_timeout + config.response_timeout;
        let first = match tokio::time::timeout(bound, bb8::ManageConnection::connect(&manager)).await {
            Ok(Ok(first)) => first,
            Ok(Err(ConnectError { error, bound })) => return Err(open_error(&url, error, bound, &secrets)),
            Err(_) => return Err(connect_timeout(&url, bound)),
        };

        // No response timeout inside redis-rs for the shared connection:
        // `run` bounds every call from the outside, which also covers a wait
        // for a reconnection, and a second timer per command would only
        // cost time on the hottest path.
        let shared_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(None)
            .set_number_of_retries(6)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        // Its attempts are bounded by redis-rs' connection timeout.
        let shared = match tokio::time::timeout(
            bound,
            ConnectionManager::new_with_config(client, shared_config.clone()),
        )
        .await
        {
            Ok(Ok(shared)) => shared,
            Ok(Err(error)) => return Err(open_error(&url, error, config.connect_timeout, &secrets)),
            Err(_) => return Err(connect_timeout(&url, bound)),
        };
        let reader = match &config.read_url {
            Some(read_url) => Some(
                open_reader(config, read_url, shared_config)
                    .await
                    .map_err(|error| relabel(error, CONNECT_READ))?,
            ),
            None => None,
        };

        let pool = bb8::Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(None)
            .connection_timeout(bound)
            .idle_timeout(Some(Duration::from_secs(300)))
            // bb8's idle reaper is a task that only notices a dropped pool at
            // its next tick: tick every second (not every 30 s), so dropping
            // the store leaves nothing running for long.
            .reaper_rate(Duration::from_secs(1))
            .test_on_check_out(false)
            .build_unchecked(manager);
        // Cannot fail: the pool is empty and its size is at least 1.
        let _ = pool.add(first);
        let pool_wait = bound;
        Ok(Self {
            shared,
            reader,
            pool,
            response_timeout: config.response_timeout,
            connect_timeout: config.connect_timeout,
            pool_wait,
            client: own_client,
            secrets,
        })
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
            Ok(Err(e)) => Err(error::map_guarded(op, key, e, inner, &self.secrets)),
            Err(_) => Err(StoreError::Timeout {
                op,
                key: key.to_owned(),
                after: self.response_timeout,
            }),
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
            .map_err(|_| StoreError::Timeout {
                op,
                key: key.to_owned(),
                after: self.response_timeout,
            })
    }

    /// The mapping of an error from a call on a dedicated connection (what
    /// [`run_dedicated`](Self::run_dedicated) applies).
    pub(crate) fn map_dedicated(&self, op: &'static str, key: &str, error: RedisError) -> StoreError {
        error::map_guarded(op, key, error, self.response_timeout, &self.secrets)
    }

    /// The mapping of an error from a call on the shared connection (what
    /// [`run`](Self::run) applies), for a caller of [`run_raw`](Self::run_raw)
    /// on it.
    pub(crate) fn map_shared(&self, op: &'static str, key: &str, error: RedisError) -> StoreError {
        error::map_guarded(op, key, error, self.connect_timeout, &self.secrets)
    }

    /// A shared-connection handle for plain commands (cheap clone).
    pub(crate) fn shared(&self) -> ConnectionManager {
        self.shared.clone()
    }

    /// A handle for read-only commands that may be served by a replica: the
    /// read endpoint's connection if a read URL is set, else the shared one.
    pub(crate) fn reader(&self) -> ConnectionManager {
        self.reader.as_ref().unwrap_or(&self.shared).clone()
    }

    /// A dedicated connection for a WATCH section.
    pub(crate) async fn dedicated(&self, op: &'static str, key: &str) -> Result<PooledTxn, StoreError> {
        match self.pool.get_owned().await {
            Ok(conn) => Ok(conn),
            Err(bb8::RunError::User(ConnectError { error, bound })) => {
                Err(error::map_guarded(op, key, error, bound, &self.secrets))
            }
            Err(bb8::RunError::TimedOut) => Err(StoreError::Timeout {
                op,
                key: key.to_owned(),
                after: self.pool_wait,
            }),
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

/// `open` gave up after `bound`.
fn connect_timeout(url: &str, bound: Duration) -> StoreError {
    StoreError::Timeout {
        op: "connect",
        key: url.to_owned(),
        after: bound,
    }
}

/// The read endpoint's connection: like the shared one (same client
/// settings, TLS CA, timeouts and reconnection), after a probe that fails
/// fast with the real cause. Its errors say `"connect"`; the caller
/// relabels them.
async fn open_reader(
    config: &RedisConfig,
    read_url: &str,
    manager_config: ConnectionManagerConfig,
) -> Result<ConnectionManager, StoreError> {
    let read_config = RedisConfig {
        url: read_url.to_owned(),
        read_url: None,
        ..config.clone()
    };
    let url = read_config.redacted_url();
    let secrets = Secrets::of(read_url);
    let client = client(&read_config, &url, &secrets)?;
    let bound = config.connect_timeout + config.response_timeout;
    let probe_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout));
    // The probe: a plain connection (which authenticates and selects the
    // database) and one PING, then closed. A connect failure is bounded by
    // the connect timeout, a silent PING by the response timeout.
    let probe = async {
        let mut probe = client
            .get_multiplexed_async_connection_with_config(&probe_config)
            .await
            .map_err(|error| (error, config.connect_timeout))?;
        redis::cmd("PING")
            .exec_async(&mut probe)
            .await
            .map_err(|error| (error, config.response_timeout))
    };
    match tokio::time::timeout(bound, probe).await {
        Ok(Ok(())) => {}
        Ok(Err((error, inner))) => return Err(open_error(&url, error, inner, &secrets)),
        Err(_) => return Err(connect_timeout(&url, bound)),
    }
    match tokio::time::timeout(bound, ConnectionManager::new_with_config(client, manager_config)).await {
        Ok(Ok(reader)) => Ok(reader),
        Ok(Err(error)) => Err(open_error(&url, error, config.connect_timeout, &secrets)),
        Err(_) => Err(connect_timeout(&url, bound)),
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

/// The redis-rs client for `config`, with its private CA if one is set.
/// `url` is the redacted URL.
fn client(config: &RedisConfig, url: &str, secrets: &Secrets) -> Result<Client, StoreError> {
    // Parsing times nothing out.
    let parse_error = |e| open_error(url, e, Duration::ZERO, secrets);
    let Some(ca_file) = &config.tls_ca_file else {
        return Client::open(config.url.as_str()).map_err(parse_error);
    };
    #[cfg(feature = "tls")]
    {
        let root_cert = std::fs::read(ca_file).map_err(|e| {
            StoreError::invalid_input(
                "connect",
                url,
                format!("cannot read the TLS CA file {}: {e}", ca_file.display()),
            )
        })?;
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        };
        Client::build_with_tls(config.url.as_str(), certificates).map_err(parse_error)
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

/// A redis-rs error of opening a connection to `url` (redacted); `bound` is
/// the timeout redis-rs ran on the failed step.
fn open_error(url: &str, error: RedisError, bound: Duration, secrets: &Secrets) -> StoreError {
    let mapped = error::map_guarded("connect", url, error, bound, secrets);
    match mapped {
        #[cfg(not(feature = "tls"))]
        StoreError::InvalidInput { op, key, reason } if key.starts_with("rediss://") => {
            StoreError::InvalidInput {
                op,
                key,
                reason: format!("{reason} (rediss:// needs the `tls` feature of statehouse)"),
            }
        }
        other => other,
    }
}

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

/// A failed step of opening (or checking) a dedicated connection, with the
/// bound redis-rs ran on that step, so that a timeout reports it.
#[derive(Debug)]
pub(crate) struct ConnectError {
    error: RedisError,
    bound: Duration,
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
