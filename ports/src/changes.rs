use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use statehouse_domain::{FeedEvent, Key, KeyPattern, ResyncReason};
use tokio::sync::mpsc;

use crate::{BoxError, RetryPolicy, StoreError, Update, Updated};

/// What a subscription watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// One key.
    Key(Key),
    /// A set of keys.
    Keys(Vec<Key>),
    /// Every key matching a glob (Redis glob semantics).
    Pattern(KeyPattern),
}

impl Watched {
    /// What the subscription watches, as people read it (for spans and
    /// messages): the key, the first key and how many, or the pattern.
    pub fn label(&self) -> String {
        match self {
            Self::Key(key) => key.to_string(),
            Self::Keys(keys) => match keys.first() {
                Some(first) if keys.len() > 1 => format!("{first} (+{} more)", keys.len() - 1),
                Some(first) => first.to_string(),
                None => String::new(),
            },
            Self::Pattern(pattern) => pattern.to_string(),
        }
    }
}

/// How many events a subscription buffers by default before it reports
/// [`ResyncReason::Lagged`].
pub const DEFAULT_FEED_CAPACITY: usize = 1024;

/// The receiving end of a subscription: a bounded buffer of events.
///
/// Dropping it stops delivery (the backend notices and releases what the
/// subscription held: a Redis subscription's connection, a memory
/// subscriber's slot). When the buffer is full, further events are dropped
/// and, once the buffered ones are taken, [`next`](Self::next) answers
/// `FeedEvent::Resync(ResyncReason::Lagged)`: never a silent loss, and a
/// slow subscriber never slows the feed or other subscribers down.
#[derive(Debug)]
pub struct Subscription {
    events: mpsc::Receiver<FeedEvent>,
    lagged: Arc<AtomicBool>,
}

/// The sending end of a [`Subscription`], held by a backend.
#[derive(Debug, Clone)]
pub struct SubscriptionSender {
    events: mpsc::Sender<FeedEvent>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// A subscription buffering up to `capacity` events (at least 1), and
    /// the sender a backend delivers through.
    pub fn channel(capacity: usize) -> (SubscriptionSender, Self) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let lagged = Arc::new(AtomicBool::new(false));
        (
            SubscriptionSender {
                events: tx,
                lagged: lagged.clone(),
            },
            Self { events: rx, lagged },
        )
    }

    /// The next event; `None` once the backend ended the feed (the store
    /// was dropped).
    pub async fn next(&mut self) -> Option<FeedEvent> {
        match self.events.try_recv() {
            Ok(event) => return Some(event),
            Err(mpsc::error::TryRecvError::Empty) => {}
            Err(mpsc::error::TryRecvError::Disconnected) => return self.take_lag(),
        }
        if let Some(lag) = self.take_lag() {
            return Some(lag);
        }
        match self.events.recv().await {
            Some(event) => Some(event),
            None => self.take_lag(),
        }
    }

    /// The next event if one is buffered, without waiting.
    pub fn try_next(&mut self) -> Option<FeedEvent> {
        match self.events.try_recv() {
            Ok(event) => Some(event),
            Err(_) => self.take_lag(),
        }
    }

    fn take_lag(&self) -> Option<FeedEvent> {
        self.lagged
            .swap(false, Ordering::AcqRel)
            .then_some(FeedEvent::Resync(ResyncReason::Lagged))
    }
}

impl SubscriptionSender {
    /// Delivers `event` without waiting: a full buffer drops it and marks
    /// the subscription lagged. Returns `false` once the subscription was
    /// dropped (the backend then forgets it).
    pub fn send(&self, event: FeedEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Release);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether the subscription was dropped.
    pub fn is_closed(&self) -> bool {
        self.events.is_closed()
    }

    /// Completes once the subscription is dropped.
    pub async fn closed(&self) {
        self.events.closed().await;
    }
}

/// The closure of [`ChangeFeed::update_announced`]: like
/// [`UpdateFn`](crate::UpdateFn), it receives the current value and decides,
/// and it also names the version its write produces (announced in the
/// event; `None` if the value has none). It **may run more than once**.
pub type AnnouncedUpdateFn<'a> =
    dyn FnMut(Option<&[u8]>) -> Result<(Update<Vec<u8>>, Option<u64>), BoxError> + Send + 'a;

/// The outcome of [`ChangeFeed::swap_announced`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swapped {
    /// The document held the expected bytes (or was absent, as expected);
    /// it now holds the new ones and the change was announced.
    Swapped,
    /// The document did not hold the expected bytes: nothing was written,
    /// nothing announced. These are its current bytes (`None`: absent), read
    /// in the same atomic step as the comparison.
    Refused(Option<Vec<u8>>),
}

/// A feed of changes to keys, and the writes that announce themselves on it.
///
/// # Contract
///
/// - `subscribe` returns once the subscription is live: every change
///   committed after it returns is delivered (while the subscription and
///   its connection last). Its first event is
///   `FeedEvent::Resync(ResyncReason::Subscribed)`.
/// - A change event names the key (as the caller names it, without a
///   store's prefix), the kind (`Set`, `Deleted`, `Expired`) and the version
///   when the write announced one. Events of one key arrive in commit order.
///   An event is a hint to re-read, not a copy of the value; a backend may
///   deliver one write more than once (say once announced, with its version,
///   and once seen by the server's keyspace notifications, without). Redis
///   leaves the notification out when the announcement follows it on the
///   same connection in one batch, as the two of one write do as a rule on
///   one server.
/// - Writes through [`update_announced`](Self::update_announced) are
///   delivered on every backend: the event is published in the same atomic
///   step as the write, and carries the version the closure named.
/// - Other writes (documents' `set`, `delete`, another client's commands)
///   and expiry are delivered by the memory store always, and by Redis when
///   the server has keyspace notifications enabled for generic, string and
///   expired events (`notify-keyspace-events` with at least `K$gx`); a store
///   never changes the server's configuration. A TTL change alone is no event.
/// - After a gap (a lost connection, which the backend re-establishes by
///   itself with backoff) the subscription delivers
///   `Resync(ResyncReason::Reconnected)`: changes made during the gap are not
///   delivered, the subscriber re-reads what it watches.
/// - Each subscription has a bounded buffer; when it overflows, events are
///   dropped and the subscriber gets `Resync(ResyncReason::Lagged)` after the
///   buffered ones. A slow subscriber never blocks writers or other
///   subscribers.
/// - Dropping the [`Subscription`] stops delivery and releases its
///   resources (on Redis, its dedicated Pub/Sub connection), never the
///   shared connection's.
/// - `update_announced` is [`DocumentStore::update`](crate::DocumentStore::update)
///   in every other respect: optimistic, bounded by the policy, TTL kept,
///   `Conflict` when the policy runs out.
/// - [`swap_announced`](Self::swap_announced) is one atomic compare-and-set
///   of a document's bytes, one round trip on Redis (a Lua script): when the
///   document holds exactly `expected` (`None`: the key is absent) it is set
///   to `new`, its TTL kept (like `SET … KEEPTTL`; a new key has none), and
///   its change (`Set`, with `version`) is announced in the same atomic step,
///   exactly as `update_announced` announces it; otherwise nothing is written
///   and the answer is [`Swapped::Refused`] with the current bytes. A key of
///   another type is `WrongType` and nothing is written. It never retries: a
///   refusal is the caller's to decide on (and a timed-out swap has an
///   unknown outcome, so layers never repeat it).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ChangeFeed: Debug + Send + Sync + 'static {
    /// Subscribes to the changes of `watched`, buffering up to `capacity`
    /// events (see [`DEFAULT_FEED_CAPACITY`]).
    async fn subscribe(&self, watched: &Watched, capacity: usize) -> Result<Subscription, StoreError>;

    /// Atomic read-modify-write of the document `key` that announces its
    /// change (set or deleted, with the closure's version) in the same
    /// atomic step; see [`AnnouncedUpdateFn`] and the contract.
    async fn update_announced<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut AnnouncedUpdateFn<'a>,
    ) -> Result<Updated, StoreError>;

    /// Compare-and-set of the document `key`: sets it to `new` if it holds
    /// `expected` (`None`: absent), announcing the change with `version` in
    /// the same atomic step; otherwise answers its current bytes. See the
    /// contract.
    async fn swap_announced<'a>(
        &self,
        key: &Key,
        expected: Option<&'a [u8]>,
        new: &[u8],
        version: Option<u64>,
    ) -> Result<Swapped, StoreError>;

    /// Whether a client above this feed combines its own concurrent
    /// updates of one key into rounds (the config store does, see
    /// `docs/hotkeys.md`): the store's switch for every family, on both
    /// adapters `with_combining` (on by default). A feed that does not say
    /// is on.
    fn combining(&self) -> bool {
        true
    }
}

#[async_trait]
impl<S: ChangeFeed + ?Sized> ChangeFeed for Arc<S> {
    async fn subscribe(&self, watched: &Watched, capacity: usize) -> Result<Subscription, StoreError> {
        (**self).subscribe(watched, capacity).await
    }

    async fn update_announced<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut AnnouncedUpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        (**self).update_announced(key, policy, f).await
    }

    async fn swap_announced<'a>(
        &self,
        key: &Key,
        expected: Option<&'a [u8]>,
        new: &[u8],
        version: Option<u64>,
    ) -> Result<Swapped, StoreError> {
        (**self).swap_announced(key, expected, new, version).await
    }

    fn combining(&self) -> bool {
        (**self).combining()
    }
}

#[async_trait]
impl<S: ChangeFeed + ?Sized> ChangeFeed for Box<S> {
    async fn subscribe(&self, watched: &Watched, capacity: usize) -> Result<Subscription, StoreError> {
        (**self).subscribe(watched, capacity).await
    }

    async fn update_announced<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut AnnouncedUpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        (**self).update_announced(key, policy, f).await
    }

    async fn swap_announced<'a>(
        &self,
        key: &Key,
        expected: Option<&'a [u8]>,
        new: &[u8],
        version: Option<u64>,
    ) -> Result<Swapped, StoreError> {
        (**self).swap_announced(key, expected, new, version).await
    }

    fn combining(&self) -> bool {
        (**self).combining()
    }
}

/// Compile-time check: the trait stays usable as `Arc<dyn ChangeFeed>`.
const _: fn(Arc<dyn ChangeFeed>) = |_| {};

#[cfg(test)]
mod tests {
    use super::*;
    use statehouse_domain::{ChangeEvent, ChangeKind};

    fn change(n: u64) -> FeedEvent {
        FeedEvent::Change(ChangeEvent {
            key: "k".into(),
            kind: ChangeKind::Set,
            version: Some(n),
        })
    }

    #[tokio::test]
    async fn an_overflow_is_reported_after_the_buffered_events() {
        let (tx, mut rx) = Subscription::channel(2);
        for n in 1..=5 {
            assert!(tx.send(change(n)));
        }
        assert_eq!(rx.next().await, Some(change(1)));
        assert_eq!(rx.next().await, Some(change(2)));
        assert_eq!(rx.next().await, Some(FeedEvent::Resync(ResyncReason::Lagged)));
        assert!(tx.send(change(6)));
        assert_eq!(rx.next().await, Some(change(6)));
        drop(tx);
        assert_eq!(rx.next().await, None);
    }

    #[test]
    fn a_dropped_subscription_closes_the_sender() {
        let (tx, rx) = Subscription::channel(1);
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert!(!tx.send(change(1)));
    }
}
