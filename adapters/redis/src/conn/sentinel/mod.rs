//! A Redis Sentinel service:
//! `redis+sentinel://[user:password@]s1:26379,s2:26379/SERVICE[/DB][?sentinel_username=…&sentinel_password=…]`,
//! or `rediss+sentinel://…` (feature `tls`): TLS to the sentinels, the
//! primary and the replicas alike, each with the configuration's CA.
//!
//! The primary is resolved with `SENTINEL get-master-addr-by-name` from
//! every sentinel at once, the newest configuration winning (each bounded
//! by the connect and response timeouts), confirmed with `ROLE`, then
//! connected to as one server
//! ([`Single`]): the credentials, database and other query parameters of
//! the URL are the primary's. On a failover (a `READONLY` reply, a dropped
//! or refused connection, a timeout) the store calls [`Sentinel::suspect`]:
//! one resolution runs in the background and, when the sentinels name
//! another primary (or the known one no longer says `master`), a new
//! [`Single`] replaces the old one and the generation grows. The old
//! connections, its pool of WATCH connections included, are dropped with
//! it (a WATCH connection of the old generation still checked out goes back
//! to the dropped pool, which discards it); the new pool's connections are
//! opened to the confirmed primary.
//!
//! A failover is also noticed without a failing call: a task listens to
//! `+failover-state-reconf-slaves` (a replica was promoted) and
//! `+switch-master` on each sentinel's Pub/Sub and starts a resolution when
//! a message names the service. It holds the connections weakly and ends within a
//! second of the last store handle's drop.
//!
//! # Layout
//!
//! - `mod.rs`: [`Sentinel`] (what a store holds), opening it, and the
//!   current primary's connections.
//! - `url.rs`: [`SentinelUrl`], the URL form and the URLs of the sentinels
//!   and of the nodes they name.
//! - `resolve.rs`: asking the sentinels (every one at once for the
//!   primary, the newest configuration winning; the first that answers for
//!   the replicas) and confirming a node with `ROLE`.
//! - `switch.rs`: suspicions, the one resolution at a time in the
//!   background, the `+switch-master` listeners, and `Sentinel::switch_to`,
//!   THE place where the primary is replaced and the generation grows.
//! - `replica.rs`: the read endpoint "any replica of the service".

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use statehouse_ports::StoreError;

use super::single::Single;
use crate::RedisConfig;
use crate::redact::Secrets;

mod replica;
mod resolve;
mod switch;
mod url;

use replica::{ReadSide, ask_replicas};
use resolve::connect;
use switch::follow_switches;
pub(crate) use url::SentinelUrl;

/// The connections to a Sentinel service's current primary. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Sentinel {
    inner: Arc<Inner>,
}

struct Inner {
    url: SentinelUrl,
    config: RedisConfig,
    secrets: Secrets,
    /// The primary's `host:port` and its connections.
    current: RwLock<(String, Arc<Single>)>,
    generation: AtomicU64,
    /// Whether a resolution runs (at most one at a time).
    resolving: AtomicBool,
    /// A suspicion arrived: the running resolution (if any) resolves once
    /// more when it ends, so that a `+switch-master` seen during it is not
    /// lost.
    pending: AtomicBool,
    /// The read endpoint "any replica of the service", if one is set.
    read: Option<ReadSide>,
}

impl Sentinel {
    /// Resolves the primary and connects to it, failing with the cause if
    /// no sentinel names a primary that confirms its role.
    ///
    /// With `read` (a `role=replica` URL, its secrets and its redacted
    /// form), task reads go to
    /// a replica the sentinels name healthy (`SENTINEL replicas`),
    /// confirmed with `ROLE`; to the primary while they name none. A
    /// service the read URL's sentinels do not know fails with operation
    /// `connect_read`.
    pub(in crate::conn) async fn open(
        config: &RedisConfig,
        url: SentinelUrl,
        secrets: Secrets,
        read: Option<(SentinelUrl, Secrets, String)>,
    ) -> Result<Self, StoreError> {
        let (addr, single) = connect(config, &url, &secrets).await?;
        let sentinel = Self {
            inner: Arc::new(Inner {
                url,
                config: config.clone(),
                secrets,
                current: RwLock::new((addr, Arc::new(single))),
                generation: AtomicU64::new(0),
                resolving: AtomicBool::new(false),
                pending: AtomicBool::new(false),
                read: read.map(|(url, secrets, redacted)| ReadSide {
                    url,
                    secrets,
                    redacted,
                    current: RwLock::new(None),
                }),
            }),
        };
        if let Some(read) = &sentinel.inner.read {
            let replicas = ask_replicas(config, &read.url, &read.secrets)
                .await
                .map_err(|error| StoreError::Connection {
                    op: super::CONNECT_READ,
                    key: read.redacted.clone(),
                    source: crate::error::withhold(error, &read.secrets).to_string().into(),
                })?;
            sentinel.connect_reader(replicas).await;
        }
        for index in 0..sentinel.inner.url.sentinels.len() {
            tokio::spawn(follow_switches(Arc::downgrade(&sentinel.inner), index));
        }
        Ok(sentinel)
    }

    /// The current primary's connections.
    pub(in crate::conn) fn current(&self) -> Arc<Single> {
        match self.inner.current.read() {
            Ok(current) => current.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// The current primary's `host:port`.
    pub(crate) fn primary_addr(&self) -> String {
        match self.inner.current.read() {
            Ok(current) => current.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// How many times the primary was replaced.
    pub(in crate::conn) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }
}
