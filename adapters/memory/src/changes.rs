//! The change feed of the memory store: every change of the keyspace
//! (writes of every port, deletes, expiry on tokio time) is told to the
//! subscribers watching its key, under the keyspace lock, so events of one
//! key arrive in commit order. Sending never waits (`SubscriptionSender`).

use async_trait::async_trait;
use statehouse_domain::Key;
use statehouse_ports::Swapped;
use statehouse_ports::{
    AnnouncedUpdateFn, ChangeFeed, FeedEvent, ResyncReason, RetryPolicy, StoreError, Subscription, Updated,
    Watched,
};

use crate::MemoryStore;

#[async_trait]
impl ChangeFeed for MemoryStore {
    async fn subscribe(&self, watched: &Watched, capacity: usize) -> Result<Subscription, StoreError> {
        let (sender, subscription) = Subscription::channel(capacity);
        sender.send(FeedEvent::Resync(ResyncReason::Subscribed));
        self.keyspace.lock().subscribe(watched.clone(), sender);
        Ok(subscription)
    }

    async fn update_announced<'a>(
        &self,
        key: &Key,
        policy: RetryPolicy,
        f: &mut AnnouncedUpdateFn<'a>,
    ) -> Result<Updated, StoreError> {
        self.update_str(key, policy, f).await
    }

    async fn swap_announced<'a>(
        &self,
        key: &Key,
        expected: Option<&'a [u8]>,
        new: &[u8],
        version: Option<u64>,
    ) -> Result<Swapped, StoreError> {
        self.replicated("swap", key.as_str(), async {
            self.swap_str(key, expected, new, version)
        })
        .await
    }

    fn combining(&self) -> bool {
        self.rounds.documents.is_on()
    }
}

#[cfg(test)]
mod tests {
    use statehouse_ports::{DocumentStore, SetOptions};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_dropped_subscription_is_forgotten_at_the_next_change() {
        let store = MemoryStore::new();
        let key = Key::new("k").unwrap();
        let kept = store.subscribe(&Watched::Key(key.clone()), 4).await.unwrap();
        let dropped = store.subscribe(&Watched::Key(key.clone()), 4).await.unwrap();
        assert_eq!(store.keyspace.lock().subscribers(), 2);
        drop(dropped);
        store.set(&key, b"1", SetOptions::new()).await.unwrap();
        assert_eq!(store.keyspace.lock().subscribers(), 1);
        drop(kept);
        store.set(&key, b"2", SetOptions::new()).await.unwrap();
        assert_eq!(store.keyspace.lock().subscribers(), 0);
    }
}
