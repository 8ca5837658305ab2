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
//! runs `CONFIG SET`. An announced write fires both, the notification
//! first, in one atomic step: a notification that an announcement of the
//! same key and kind follows in what the connection already holds is left
//! out ([`drop_repeats`]), so such a write is one event as a rule.
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
use futures_util::{FutureExt as _, StreamExt};
use redis::aio::{PubSub, PubSubStream};
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
                    Some(message) => match self.deliver(&message, &mut stream) {
                        Delivered::Dropped => return false,
                        Delivered::Ended => return true,
                        Delivered::Open => {}
                    },
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

    /// Delivers the event of `first` and of the messages the connection
    /// already holds behind it (up to [`BATCH`] in all, taken without
    /// waiting), leaving out each keyspace notification an announcement
    /// later in that batch repeats ([`drop_repeats`]).
    fn deliver(&self, first: &Msg, stream: &mut PubSubStream) -> Delivered {
        let first = self.heard_of(first);
        let mut next = stream.next().now_or_never();
        if next.is_none() {
            // Nothing behind it (as a rule): no batch to build.
            let sent = first.is_none_or(|heard| self.sender.send(FeedEvent::Change(heard.event)));
            return if sent { Delivered::Open } else { Delivered::Dropped };
        }
        let mut batch: Vec<Heard> = first.into_iter().collect();
        let mut taken = 1;
        let mut outcome = Delivered::Open;
        loop {
            match next {
                Some(Some(message)) => batch.extend(self.heard_of(&message)),
                Some(None) => {
                    outcome = Delivered::Ended;
                    break;
                }
                None => break,
            }
            taken += 1;
            if taken == BATCH {
                break;
            }
            next = stream.next().now_or_never();
        }
        drop_repeats(&mut batch);
        for heard in batch {
            if !self.sender.send(FeedEvent::Change(heard.event)) {
                return Delivered::Dropped;
            }
        }
        outcome
    }

    /// The change a message tells of; `None` for a message that is none
    /// (a TTL change, a channel or payload statehouse does not know).
    fn heard_of(&self, message: &Msg) -> Option<Heard> {
        let (key, keyspace) = self.keys.key_of_channel(self.db, message.get_channel_name())?;
        let payload = message.get_payload_bytes();
        let (kind, version) = if keyspace {
            (keyspace_kind(payload)?, None)
        } else {
            let notice: ChangeNotice = serde_json::from_slice(payload).ok()?;
            (notice.kind, notice.version)
        };
        Some(Heard {
            event: ChangeEvent {
                key: key.to_owned(),
                kind,
                version,
            },
            keyspace,
        })
    }
}

/// The most messages [`Listener::deliver`] takes from a connection at once.
const BATCH: usize = 64;

/// What became of a connection's messages.
enum Delivered {
    /// Delivered; the connection is open.
    Open,
    /// Delivered; the connection's stream ended (it was lost).
    Ended,
    /// The subscription was dropped.
    Dropped,
}

/// A change heard on a connection, and whether a keyspace notification
/// told it (else statehouse's own announcement).
#[derive(Debug, Clone, PartialEq)]
struct Heard {
    event: ChangeEvent,
    keyspace: bool,
}

/// Leaves out of `batch` (messages of one connection, in the order the
/// server sent them) each keyspace notification that a later announcement
/// of the same key and kind repeats.
///
/// An announced write fires both: the server's keyspace notification of
/// its command, then statehouse's notice, published in the same atomic
/// step (`DOC_SWAP`, or the `MULTI`/`EXEC` of `update_announced`). The
/// two reach the subscriber in one batch as a rule. Delivering both asks a
/// subscriber to re-read twice, and a config cache to re-read its own
/// write, which its notice alone lets it take without a read. Leaving the
/// notification out loses nothing, whichever write it told of: events are
/// hints to re-read, one key's messages on one connection come in commit
/// order, so the announcement is of that write or a later one, and it
/// says as much (the key, the kind) and more (the version). A keyspace
/// notification with no announcement behind it in the batch (another
/// client's write, expiry, or a pair the batch split) is delivered.
fn drop_repeats(batch: &mut Vec<Heard>) {
    let repeated: Vec<bool> = (0..batch.len())
        .map(|at| {
            let heard = &batch[at];
            heard.keyspace
                && batch[at + 1..].iter().any(|later| {
                    !later.keyspace
                        && later.event.kind == heard.event.kind
                        && later.event.key == heard.event.key
                })
        })
        .collect();
    let mut flags = repeated.into_iter();
    batch.retain(|_| !flags.next().unwrap_or(false));
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

    /// A change of `key` heard by keyspace notification (`keyspace`) or
    /// announced with `version`.
    fn heard(key: &str, kind: ChangeKind, keyspace: bool, version: Option<u64>) -> Heard {
        Heard {
            event: ChangeEvent {
                key: key.to_owned(),
                kind,
                version,
            },
            keyspace,
        }
    }

    fn notified(key: &str, kind: ChangeKind) -> Heard {
        heard(key, kind, true, None)
    }

    fn announced(key: &str, kind: ChangeKind, version: Option<u64>) -> Heard {
        heard(key, kind, false, version)
    }

    fn kept(batch: &[Heard]) -> Vec<Heard> {
        let mut batch = batch.to_vec();
        drop_repeats(&mut batch);
        batch
    }

    #[test]
    fn an_announced_writes_keyspace_notification_is_left_out() {
        use ChangeKind::{Deleted, Set};
        // The pair an announced write sends: the notification, then the notice.
        assert_eq!(
            kept(&[notified("a", Set), announced("a", Set, Some(2))]),
            [announced("a", Set, Some(2))]
        );
        // An announcement without a version repeats it all the same.
        assert_eq!(
            kept(&[notified("a", Deleted), announced("a", Deleted, None)]),
            [announced("a", Deleted, None)]
        );
        // Other keys' events between them change nothing, and stay.
        assert_eq!(
            kept(&[
                notified("a", Set),
                notified("b", Set),
                announced("b", Set, Some(1)),
                announced("a", Set, Some(3)),
            ]),
            [announced("b", Set, Some(1)), announced("a", Set, Some(3))]
        );
    }

    #[test]
    fn a_notification_no_later_announcement_repeats_is_delivered() {
        use ChangeKind::{Deleted, Expired, Set};
        for batch in [
            // Alone: another client's write.
            vec![notified("a", Set)],
            // After the announcement: a later write (another client's).
            vec![announced("a", Set, Some(2)), notified("a", Set)],
            // Another kind: a delete before the write that recreated the key
            // (whose version may be one a reader holds).
            vec![notified("a", Deleted), announced("a", Set, Some(1))],
            vec![notified("a", Expired), announced("a", Set, Some(1))],
            // Another key.
            vec![notified("a", Set), announced("b", Set, Some(1))],
            // Only notifications: nothing announced repeats them.
            vec![notified("a", Set), notified("a", Set)],
        ] {
            assert_eq!(kept(&batch), batch, "{batch:?}");
        }
    }
}
