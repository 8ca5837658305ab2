//! One Redis server (and, with a read URL, its read endpoint): the shared
//! auto-reconnecting connection, the reader and the pool of dedicated
//! connections.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client};
use statehouse_ports::StoreError;

use super::pool::{self, ConnectError, Pool, TxnManager};
use super::{CONNECT_READ, client, connect_timeout, open_error, relabel};
use crate::RedisConfig;
use crate::redact::Secrets;

/// The connections to one server.
#[derive(Clone)]
pub(crate) struct Single {
    /// Plain commands: multiplexed, reconnecting in the background.
    pub(super) shared: ConnectionManager,
    /// The read endpoint's connection, when a read URL is configured.
    pub(super) reader: Option<ConnectionManager>,
    /// Dedicated connections for WATCH sections.
    pub(super) pool: Pool,
    /// The server's client, for connections of their own (the change
    /// feed's Pub/Sub subscriptions).
    pub(super) client: Client,
}

impl Single {
    /// Connects the shared connection (failing fast if the server cannot be
    /// reached) and prepares the pool (its connections open on demand);
    /// then, if a read URL is set, the reader (failing fast the same way,
    /// with operation [`CONNECT_READ`]). `secrets` are the URL's.
    pub(super) async fn open(config: &RedisConfig, secrets: &Secrets) -> Result<Self, StoreError> {
        let url = config.redacted_url();
        let client = client(config, &config.url, &url, secrets)?;
        let manager = TxnManager::new(client.clone(), config.connect_timeout, config.response_timeout);
        // Probe with one dedicated connection first: the shared connection
        // retries its initial connect with backoff, which would turn "refused"
        // or "wrong password" into a vague timeout. The probe fails fast with
        // the real cause, and then serves as the pool's first connection.
        let bound = config.connect_timeout + config.response_timeout;
        let first = match tokio::time::timeout(bound, bb8::ManageConnection::connect(&manager)).await {
            Ok(Ok(first)) => first,
            Ok(Err(ConnectError { error, bound })) => return Err(open_error(&url, error, bound, secrets)),
            Err(_) => return Err(connect_timeout(&url, bound)),
        };

        // No response timeout inside redis-rs for the shared connection:
        // `run` bounds every call from the outside, which also covers a wait
        // for a reconnection, and a second timer per command would only
        // cost time on the hottest path.
        let shared_config = shared_config(config);
        // Its attempts are bounded by redis-rs' connection timeout.
        let shared = match tokio::time::timeout(
            bound,
            ConnectionManager::new_with_config(client.clone(), shared_config.clone()),
        )
        .await
        {
            Ok(Ok(shared)) => shared,
            Ok(Err(error)) => return Err(open_error(&url, error, config.connect_timeout, secrets)),
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

        let pool = pool::build(manager, config.pool_size, bound);
        // Cannot fail: the pool is empty and its size is at least 1.
        let _ = pool.add(first);
        Ok(Self {
            shared,
            reader,
            pool,
            client,
        })
    }
}

/// The settings of a shared connection (and of a reader): no response
/// timeout of its own, reconnects with backoff.
pub(super) fn shared_config(config: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(None)
        .set_number_of_retries(6)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
}

/// The read endpoint's connection: like the shared one (same client
/// settings, TLS CA, timeouts and reconnection), after a probe that fails
/// fast with the real cause. Its errors say `"connect"`; the caller
/// relabels them.
pub(super) async fn open_reader(
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
    let client = client(&read_config, read_url, &url, &secrets)?;
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
