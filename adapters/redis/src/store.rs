//! [`RedisStore`]: the store every port is implemented on (its connections,
//! key builder and configuration). THE listing of keys is `listing.rs`.

use std::sync::Arc;

use statehouse_ports::StoreError;

use crate::config::RedisConfig;
use crate::conn::Connections;
use crate::keys::Keys;

/// A Redis-backed store implementing every statehouse port.
///
/// Cloning is cheap: clones share the connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), statehouse_ports::StoreError> {
/// use statehouse_redis::{RedisConfig, RedisStore};
///
/// let store = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379").with_prefix("myapp:")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) conns: Connections,
    pub(crate) keys: Arc<Keys>,
    pub(crate) config: Arc<RedisConfig>,
    /// The lanes of its combined updates (`Rounds`).
    pub(crate) rounds: statehouse_ports::Rounds,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.config)
            .field("conns", &self.conns)
            .finish()
    }
}

impl RedisStore {
    /// Connects to the server of `config.url`, and to `config.read_url` if
    /// set. Fails fast (within the connect and response timeouts) if either
    /// cannot be reached, naming the endpoint: operation `"connect"` for the
    /// write endpoint, `"connect_read"` for the read one, with the redacted
    /// URL as key. Once connected, lost connections are re-established by
    /// themselves. Dropping the last clone closes every connection.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let conns = Connections::open(&config).await?;
        Ok(Self {
            conns,
            keys: Arc::new(Keys::new(&config.prefix)),
            config: Arc::new(config),
            rounds: statehouse_ports::Rounds::default(),
        })
    }

    /// The same store with combining of concurrent updates of one key on
    /// (the default) or off (every update its own optimistic round at
    /// once, not queued in a lane; `docs/hotkeys.md`).
    /// Clones made after this share its lanes.
    #[must_use]
    pub fn with_combining(mut self, on: bool) -> Self {
        self.rounds = statehouse_ports::Rounds::switched(on);
        self
    }

    /// The configuration this store was built from.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The same store (the same connections, keys and feed) with writes
    /// acknowledged as `durability` says: a family that needs its writes on
    /// replicas takes its facade from this view, the others keep the
    /// store's default. Its WAIT timeout must be at most half the response
    /// timeout (`InvalidInput` otherwise).
    pub fn with_durability(&self, durability: statehouse_ports::Durability) -> Result<Self, StoreError> {
        let mut config = RedisConfig::clone(&self.config);
        config.durability = durability;
        Ok(Self {
            conns: self.conns.with_durability(durability, &config)?,
            keys: Arc::clone(&self.keys),
            config: Arc::new(config),
            // Lanes of its own: a round is written with its leader's
            // durability.
            rounds: self.rounds.fresh(),
        })
    }
}
