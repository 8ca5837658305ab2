//! The read endpoint "any replica of this Sentinel service"
//! (`redis+sentinel://…/SERVICE?role=replica` as the read URL): which
//! replica task reads go to, checked and re-resolved with the primary.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use statehouse_ports::StoreError;

use super::super::single::{open_reader, shared_config};
use super::Sentinel;
use super::resolve::{ask_each, entry_field, role_of};
use super::url::{SentinelUrl, node_addr};
use crate::RedisConfig;
use crate::redact::Secrets;

/// A read endpoint that is any replica of a Sentinel service
/// (`redis+sentinel://…/SERVICE?role=replica` as the read URL).
pub(super) struct ReadSide {
    pub(super) url: SentinelUrl,
    pub(super) secrets: Secrets,
    /// The read URL, redacted (what a connect error names).
    pub(super) redacted: String,
    /// The replica read from (`host:port`) and its connection; `None`
    /// while the sentinels name no healthy replica (reads go to the
    /// primary meanwhile).
    pub(super) current: RwLock<Option<(String, ConnectionManager)>>,
}

impl Sentinel {
    /// The read endpoint's connection: a replica's, or `None` (no read URL
    /// set, or no healthy replica known: the primary serves the reads).
    pub(in crate::conn) fn reader(&self) -> Option<ConnectionManager> {
        let read = self.inner.read.as_ref()?;
        let current = match read.current.read() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        current.as_ref().map(|(_, conn)| conn.clone())
    }

    /// The replica task reads go to (`host:port`), if any.
    pub(crate) fn replica_addr(&self) -> Option<String> {
        let read = self.inner.read.as_ref()?;
        let current = match read.current.read() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        current.as_ref().map(|(addr, _)| addr.clone())
    }

    /// Connects the reader to the first of `replicas` (other than the
    /// primary) that opens and says `slave` to `ROLE`; none: reads go to the
    /// primary.
    pub(super) async fn connect_reader(&self, replicas: Vec<String>) {
        let Some(read) = &self.inner.read else { return };
        let config = &self.inner.config;
        let primary = self.primary_addr();
        let mut chosen = None;
        // Start at a different replica per process, so that readers spread.
        let start = std::process::id() as usize;
        let count = replicas.len();
        for index in 0..count {
            let addr = &replicas[(start + index) % count];
            if *addr == primary {
                continue;
            }
            let replica_url = read.url.primary_url(addr);
            match open_reader(config, &replica_url, shared_config(config)).await {
                Ok(conn) if role_of(config, &conn).await.as_deref() == Some(b"slave".as_slice()) => {
                    chosen = Some((addr.clone(), conn));
                    break;
                }
                Ok(_) => {
                    tracing::debug!(replica = %addr, "sentinel: a named replica does not say `slave` to ROLE")
                }
                Err(error) => {
                    tracing::debug!(replica = %addr, kind = ?error.kind(), "sentinel: connecting to a replica failed")
                }
            }
        }
        let found = chosen.is_some();
        match &chosen {
            Some((addr, _)) => tracing::debug!(replica = %addr, "sentinel: task reads from a replica"),
            None => tracing::info!("sentinel: no healthy replica; task reads go to the primary"),
        }
        if let Ok(mut current) = read.current.write() {
            *current = chosen;
        }
        if !found {
            // Reads on the primary fail nothing that would start another
            // resolution: look again shortly (a replica resynchronising after
            // a failover is healthy again within seconds).
            let inner = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                tokio::time::sleep(READER_RETRY).await;
                if let Some(inner) = inner.upgrade() {
                    Sentinel { inner }.suspect();
                }
            });
        }
    }

    /// Re-resolves the reader when it is unset (no replica was healthy),
    /// its server no longer says `slave` (promoted, or gone), or it is the
    /// primary's.
    pub(super) async fn check_reader(&self) {
        let Some(read) = &self.inner.read else { return };
        let config = &self.inner.config;
        let healthy = match self.reader() {
            Some(conn) => {
                role_of(config, &conn).await.as_deref() == Some(b"slave".as_slice())
                    && self.replica_addr() != Some(self.primary_addr())
            }
            None => false,
        };
        if healthy {
            return;
        }
        match ask_replicas(config, &read.url, &read.secrets).await {
            Ok(replicas) => self.connect_reader(replicas).await,
            Err(error) => tracing::debug!(kind = ?error.kind(), "sentinel: resolving the replicas failed"),
        }
    }
}

/// How soon the replicas are asked again while none is healthy.
const READER_RETRY: Duration = Duration::from_secs(1);

/// `host:port` of each replica of the service that the first sentinel
/// that answers names healthy (`SENTINEL replicas`: not down, not
/// disconnected, its link to the primary up); possibly none.
pub(super) async fn ask_replicas(
    config: &RedisConfig,
    url: &SentinelUrl,
    secrets: &Secrets,
) -> Result<Vec<String>, StoreError> {
    let mut command = redis::cmd("SENTINEL");
    command.arg("replicas").arg(&url.service);
    ask_each(config, url, secrets, &command, "the replicas", |answer| {
        let replicas = redis::from_redis_value::<Vec<Vec<String>>>(answer)
            .map_err(|error| format!("answered {error}"))?;
        Ok(replicas
            .iter()
            .filter_map(|fields| healthy_replica(fields))
            .collect())
    })
    .await
}

/// `host:port` of the replica one entry of `SENTINEL replicas` describes
/// (name, value, name, value, …), if it is healthy.
fn healthy_replica(fields: &[String]) -> Option<String> {
    let field = |name: &str| entry_field(fields, name);
    let down = field("flags")?
        .split(',')
        .any(|flag| matches!(flag, "s_down" | "o_down" | "disconnected"));
    if down || field("master-link-status")? != "ok" {
        return None;
    }
    Some(node_addr(field("ip")?, field("port")?.parse().ok()?))
}
