//! The change feed over Redis Pub/Sub.
//!
//! Each subscription runs on a Pub/Sub connection of its own (never the
//! shared multiplexed one), driven by a task that ends when the
//! [`Subscription`] is dropped (closing the connection). It subscribes to
//! statehouse's own change channels (`layout::ChangeChannels`, published by
//! `update_announced` in the same MULTI/EXEC as the write, see
//! `documents.rs`) and to the server's keyspace-notification channels of the
//! same keys (`__keyspace@<db>__:<key>`), which carry other clients' writes
//! and expiry when the server has notifications enabled; the store never
//! runs `CONFIG SET`.
//!
//! A lost connection (the stream ends, or a keepalive PING gets no answer
//! within the response timeout) is re-established with the shared
//! jittered exponential [`Backoff`] (50 ms to 2 s); after each resubscribe the subscriber gets
//! `Resync(Reconnected)` and re-reads.
//!
//! On a Redis Cluster, keyspace notifications stay on the node where the
//! key changed, while a `PUBLISH` (statehouse's announcements) reaches
//! every node: a subscription listens on every primary, each with its own
//! connection and reconnect loop, to the keyspace channels, and on one of
//! them also to statehouse's channels (so an announcement arrives once).
//! A supervisor asks for the slot map every keepalive period; when the
//! primaries changed (a failover, a resharding that emptied or filled a
//! node), it subscribes on the new set and sends `Resync(Reconnected)`.
//!
//! On a Sentinel service the same supervisor follows the primary: it sees
//! the connections' generation grow (a switch, noticed through
//! `+switch-master` on the sentinels, a failing call, a lost Pub/Sub
//! connection, or its own resolution every keepalive period), subscribes
//! on the new primary and sends `Resync(Reconnected)`, so a watcher
//! re-reads after the switch.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::PubSub;
use redis::{Msg, RedisResult};
use statehouse_domain::{ChangeEvent, ChangeKind, ChangeNotice, Key};
use statehouse_ports::Swapped;
use statehouse_ports::{
    AnnouncedUpdateFn, Backoff, ChangeFeed, FeedEvent, ResyncReason, RetryPolicy, StoreError, Subscription,
    SubscriptionSender, Updated, Watched,
};

use crate::RedisStore;
use crate::keys::Keys;

const SUBSCRIBE: &str = "subscribe";
/// How often an idle subscription checks its connection.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// How often a supervisor looks at the topology's generation (an atomic
/// load) between two refreshes.
const GENERATION_CHECK: Duration = Duration::from_millis(100);
/// The bounds of the reconnects' backoff.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The channels and patterns one subscription listens to.
#[derive(Debug, Clone)]
struct Plan {
    channels: Vec<String>,
    patterns: Vec<String>,
}

impl Plan {
    /// Statehouse's channels and the keyspace channels of `watched`, or
    /// (`own` false) the keyspace channels only.
    fn of(keys: &Keys, db: i64, watched: &Watched, own: bool) -> Self {
        let mut plan = Self {
            channels: Vec::new(),
            patterns: Vec::new(),
        };
        let mut add_key = |key: &Key| {
            if own {
                plan.channels.push(keys.change_channel(key.as_str()));
            }
            plan.channels.push(keys.keyspace_channel(db, key.as_str()));
        };
        match watched {
            Watched::Key(key) => add_key(key),
            Watched::Keys(list) => list.iter().for_each(add_key),
            Watched::Pattern(pattern) => {
                if own {
                    plan.patterns.push(keys.change_channel_pattern(pattern));
                }
                plan.patterns.push(keys.keyspace_pattern(db, pattern));
            }
        }
        plan
    }

    /// A Pub/Sub connection listening to the plan.
    async fn open(&self, client: &redis::Client) -> RedisResult<PubSub> {
        let mut pubsub = client.get_async_pubsub().await?;
        if !self.channels.is_empty() {
            pubsub.subscribe(&self.channels).await?;
        }
        if !self.patterns.is_empty() {
            pubsub.psubscribe(&self.patterns).await?;
        }
        Ok(pubsub)
    }
}

/// What a subscription's task needs.
struct Listener {
    client: redis::Client,
    keys: std::sync::Arc<Keys>,
    db: i64,
    plan: Plan,
    sender: SubscriptionSender,
    /// Bound of one (re)connect and subscribe.
    connect_bound: Duration,
    response_timeout: Duration,
    /// On a Sentinel service, the connections told of a lost Pub/Sub
    /// connection (a failover sign); `None` elsewhere.
    on_lost: Option<crate::conn::Connections>,
}

#[async_trait]
impl ChangeFeed for RedisStore {
    async fn subscribe(&self, watched: &Watched, capacity: usize) -> Result<Subscription, StoreError> {
        let label = watched.label();
        let (sender, subscription) = Subscription::channel(capacity);
        let listeners = self.listeners(watched, &label, &sender).await?;
        sender.send(FeedEvent::Resync(ResyncReason::Subscribed));
        if self.conns.is_cluster() || self.conns.is_sentinel() {
            let supervisor = Supervisor {
                store: self.clone(),
                watched: watched.clone(),
                label,
                sender,
            };
            tokio::spawn(supervisor.run(listeners));
        } else {
            for (listener, pubsub) in listeners {
                tokio::spawn(listener.run(pubsub));
            }
        }
        Ok(subscription)
    }

    async fn update_announced<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut AnnouncedUpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        self.update_str(key, policy, f, true).await
    }

    async fn swap_announced<'a>(
        &self,
        key: &Key,
        expected: Option<&'a [u8]>,
        new: &[u8],
        version: Option<u64>,
    ) -> Result<Swapped, StoreError> {
        self.swap_str(key, expected, new, version).await
    }

    fn combining(&self) -> bool {
        self.rounds.documents.is_on()
    }
}

impl RedisStore {
    /// A subscribed listener per node the feed listens on (the server, or
    /// every primary: statehouse's channels on the first only), each with
    /// its connection; an error if any cannot subscribe within the connect
    /// and response timeouts.
    async fn listeners(
        &self,
        watched: &Watched,
        label: &str,
        sender: &SubscriptionSender,
    ) -> Result<Vec<(Listener, PubSub)>, StoreError> {
        let connect_bound = self.conns.connect_timeout + self.conns.response_timeout;
        let mut listeners = Vec::new();
        for (index, (_, client)) in self.conns.pubsub_nodes(SUBSCRIBE, label)?.into_iter().enumerate() {
            let db = client.get_connection_info().redis_settings().db();
            let plan = Plan::of(&self.keys, db, watched, index == 0);
            let pubsub = match tokio::time::timeout(connect_bound, plan.open(&client)).await {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(error)) => return Err(self.conns.map_dedicated(SUBSCRIBE, label, error)),
                Err(_) => {
                    return Err(StoreError::Timeout {
                        op: SUBSCRIBE,
                        key: label.to_owned(),
                        after: connect_bound,
                    });
                }
            };
            let listener = Listener {
                client,
                keys: self.keys.clone(),
                db,
                plan,
                sender: sender.clone(),
                connect_bound,
                response_timeout: self.conns.response_timeout,
                on_lost: self.conns.is_sentinel().then(|| self.conns.clone()),
            };
            listeners.push((listener, pubsub));
        }
        Ok(listeners)
    }
}

/// The task of a cluster subscription: runs a listener per primary, and
/// replaces them when the primaries change.
struct Supervisor {
    store: RedisStore,
    watched: Watched,
    label: String,
    sender: SubscriptionSender,
}

impl Supervisor {
    async fn run(self, mut listeners: Vec<(Listener, PubSub)>) {
        loop {
            let generation = self.store.conns.topology_generation();
            let tasks: Vec<tokio::task::JoinHandle<()>> = listeners
                .drain(..)
                .map(|(listener, pubsub)| tokio::spawn(listener.run(pubsub)))
                .collect();
            let stop = self.watch_topology(generation).await;
            for task in &tasks {
                task.abort();
            }
            if stop {
                return;
            }
            // The primaries changed: listen on the new ones (after backoff
            // while they cannot all be reached), then say events may have
            // been missed.
            let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
            listeners = loop {
                match self
                    .store
                    .listeners(&self.watched, &self.label, &self.sender)
                    .await
                {
                    Ok(fresh) => break fresh,
                    Err(error) => {
                        tracing::debug!(%error, "change feed: re-subscribing on the cluster failed")
                    }
                }
                tokio::select! {
                    () = self.sender.closed() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
                self.store.conns.refresh_topology().await;
            };
            if !self.sender.send(FeedEvent::Resync(ResyncReason::Reconnected)) {
                return;
            }
        }
    }

    /// Waits until the subscription is dropped (`true`) or the topology
    /// (the cluster's slot map, the Sentinel service's primary), asked
    /// every keepalive period and looked at in between, is another than at
    /// `generation` (`false`).
    async fn watch_topology(&self, generation: u64) -> bool {
        let mut refreshed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = self.sender.closed() => return true,
                () = tokio::time::sleep(GENERATION_CHECK) => {}
            }
            if refreshed.elapsed() >= KEEPALIVE {
                self.store.conns.refresh_topology().await;
                refreshed = tokio::time::Instant::now();
            }
            if self.store.conns.topology_generation() != generation {
                tracing::debug!("change feed: the primaries changed; re-subscribing");
                return false;
            }
        }
    }
}

impl Listener {
    /// Delivers messages until the subscription is dropped, reconnecting
    /// whenever the connection is lost.
    async fn run(self, mut pubsub: PubSub) {
        loop {
            if !self.listen(pubsub).await {
                return;
            }
            if let Some(conns) = &self.on_lost {
                conns.suspect_failover();
            }
            match self.reconnect().await {
                Some(fresh) => {
                    pubsub = fresh;
                    if !self.sender.send(FeedEvent::Resync(ResyncReason::Reconnected)) {
                        return;
                    }
                }
                None => return,
            }
        }
    }

    /// Delivers the messages of one connection. `false` once the
    /// subscription was dropped, `true` when the connection was lost.
    async fn listen(&self, pubsub: PubSub) -> bool {
        let (mut sink, mut stream) = pubsub.split();
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.tick().await;
        loop {
            tokio::select! {
                () = self.sender.closed() => return false,
                message = stream.next() => match message {
                    Some(message) => {
                        if let Some(event) = self.event_of(&message)
                            && !self.sender.send(FeedEvent::Change(event))
                        {
                            return false;
                        }
                    }
                    None => return true,
                },
                _ = keepalive.tick() => {
                    let ping = tokio::time::timeout(self.response_timeout, sink.ping::<redis::Value>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        tracing::debug!("change feed: keepalive failed; reconnecting");
                        return true;
                    }
                }
            }
        }
    }

    /// A fresh subscribed connection, after backoff; `None` if the
    /// subscription was dropped meanwhile.
    async fn reconnect(&self) -> Option<PubSub> {
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        loop {
            tokio::select! {
                () = self.sender.closed() => return None,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
            match tokio::time::timeout(self.connect_bound, self.plan.open(&self.client)).await {
                Ok(Ok(pubsub)) => return Some(pubsub),
                Ok(Err(error)) => tracing::debug!(kind = ?error.kind(), "change feed: reconnect failed"),
                Err(_) => tracing::debug!("change feed: reconnect timed out"),
            }
        }
    }

    /// The change a message tells of; `None` for a message that is none
    /// (a TTL change, a channel or payload statehouse does not know).
    fn event_of(&self, message: &Msg) -> Option<ChangeEvent> {
        let (key, keyspace) = self.keys.key_of_channel(self.db, message.get_channel_name())?;
        let payload = message.get_payload_bytes();
        let (kind, version) = if keyspace {
            (keyspace_kind(payload)?, None)
        } else {
            let notice: ChangeNotice = serde_json::from_slice(payload).ok()?;
            (notice.kind, notice.version)
        };
        Some(ChangeEvent {
            key: key.to_owned(),
            kind,
            version,
        })
    }
}

/// The kind of change a keyspace notification's event names; `None` for
/// events that change no value (TTL changes, `new`).
fn keyspace_kind(event: &[u8]) -> Option<ChangeKind> {
    match event {
        b"expired" => Some(ChangeKind::Expired),
        b"del" | b"evicted" | b"rename_from" | b"move_from" => Some(ChangeKind::Deleted),
        b"expire" | b"persist" | b"new" => None,
        _ => Some(ChangeKind::Set),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_events_map_to_kinds() {
        assert_eq!(keyspace_kind(b"set"), Some(ChangeKind::Set));
        assert_eq!(keyspace_kind(b"hset"), Some(ChangeKind::Set));
        assert_eq!(keyspace_kind(b"del"), Some(ChangeKind::Deleted));
        assert_eq!(keyspace_kind(b"expired"), Some(ChangeKind::Expired));
        assert_eq!(keyspace_kind(b"expire"), None);
    }
}
