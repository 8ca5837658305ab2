//! Following a failover: a suspicion (a failing call, a message of the
//! sentinels) starts one resolution at a time in the background, and
//! [`Sentinel::switch_to`] is THE place where the primary is replaced and
//! the generation grows.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::RedisError;
use statehouse_ports::Backoff;

use super::super::single::Single;
use super::resolve::{ask_sentinels, open_primary, role_of, sentinel_client};
use super::{Inner, Sentinel};

impl Sentinel {
    /// A call failed with `error`: if it may mean a failover, resolve the
    /// primary again in the background (once at a time).
    pub(in crate::conn) fn suspect_error(&self, error: &RedisError) {
        if is_failover_sign(error) {
            self.suspect();
        }
    }

    /// Resolves the primary again in the background; if a resolution runs
    /// already, it runs once more when it ends.
    pub(in crate::conn) fn suspect(&self) {
        self.inner.pending.store(true, Ordering::Release);
        if self.inner.resolving.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                while this.inner.pending.swap(false, Ordering::AcqRel) {
                    this.resolve_now().await;
                }
                this.inner.resolving.store(false, Ordering::Release);
                // A suspicion between the last check and the release, whose
                // caller saw `resolving` still set.
                if !this.inner.pending.load(Ordering::Acquire)
                    || this.inner.resolving.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }

    /// Asks the sentinels for the primary now and switches to it if it is
    /// another one, or if the known one no longer says `master`. A failure
    /// is logged and left to the next suspicion.
    pub(in crate::conn) async fn resolve_now(&self) {
        self.resolve_primary().await;
        self.check_reader().await;
    }

    /// The primary's part of [`resolve_now`](Self::resolve_now).
    async fn resolve_primary(&self) {
        let inner = &self.inner;
        let known = self.primary_addr();
        let addr = match ask_sentinels(&inner.config, &inner.url, &inner.secrets).await {
            Ok(addr) => addr,
            Err(error) => {
                tracing::debug!(kind = ?error.kind(), "sentinel: resolving the primary failed");
                return;
            }
        };
        if addr == known
            && role_of(&inner.config, &self.current().shared).await.as_deref() == Some(b"master".as_slice())
        {
            return;
        }
        match open_primary(&inner.config, &inner.url, &addr, &inner.secrets).await {
            Ok(single) => self.switch_to(addr, single),
            Err(error) => {
                tracing::debug!(kind = ?error.kind(), "sentinel: connecting to the resolved primary failed");
            }
        }
    }

    /// Replaces the primary's connections with `single`, those of the
    /// confirmed primary at `addr`, and grows the generation: the old
    /// connections (their pool of WATCH connections included) are dropped
    /// with the last handle to them.
    fn switch_to(&self, addr: String, single: Single) {
        let inner = &self.inner;
        if let Ok(mut current) = inner.current.write() {
            *current = (addr.clone(), Arc::new(single));
        }
        let generation = inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
        crate::conn::failovers::failovers_seen("sentinel", 1);
        tracing::info!(primary = %addr, generation, "sentinel: switched to a new primary");
    }
}

/// How often the `+switch-master` listener checks that a store still holds
/// the connections.
const ALIVE_CHECK: Duration = Duration::from_secs(1);

/// Listens to the failover events of the sentinel at `index` (only the
/// leading sentinel announces a promotion), and starts a resolution when one
/// names the service; reconnects after backoff; ends once `inner` is
/// dropped.
pub(super) async fn follow_switches(inner: Weak<Inner>, index: usize) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut first = true;
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let (url, config, secrets) = (strong.url.clone(), strong.config.clone(), strong.secrets.clone());
        drop(strong);
        let Some(sentinel) = url.sentinels.get(index) else {
            return;
        };
        let client = match sentinel_client(&config, &url, sentinel, &secrets) {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(%sentinel, kind = ?error.kind(), "sentinel: listening to +switch-master failed");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let open = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub
                .subscribe(&["+switch-master", "+failover-state-reconf-slaves"])
                .await?;
            Ok::<_, RedisError>(pubsub)
        };
        let bound = config.connect_timeout + config.response_timeout;
        let pubsub = match tokio::time::timeout(bound, open).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                tracing::debug!(%sentinel, "sentinel: listening to +switch-master failed");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        // A switch missed while no sentinel was listened to.
        if !first && let Some(strong) = inner.upgrade() {
            Sentinel { inner: strong }.suspect();
        }
        first = false;
        let mut stream = pubsub.into_on_message();
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    // `+switch-master`: `<service> <old ip> <old port> <new ip> <new port>`;
                    // `+failover-state-reconf-slaves` (the replica is promoted, the
                    // sentinel names it from now on): `master <service> <ip> <port>`.
                    Some(message) => {
                        let payload = message.get_payload_bytes();
                        let skip = usize::from(message.get_channel_name() != "+switch-master");
                        let named = payload
                            .split(|b| *b == b' ')
                            .nth(skip)
                            .is_some_and(|name| name == url.service.as_bytes());
                        if named {
                            let Some(strong) = inner.upgrade() else { return };
                            tracing::debug!("sentinel: +switch-master; resolving the primary");
                            Sentinel { inner: strong }.suspect();
                        }
                    }
                    None => break,
                },
                () = tokio::time::sleep(ALIVE_CHECK) => {
                    if inner.strong_count() == 0 {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Whether `error` may mean the primary moved: `READONLY` (a demoted
/// primary), a dropped or refused connection, a timeout.
fn is_failover_sign(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || crate::error::is_read_only(error)
}
