//! The change feed of the memory store: every change of the keyspace
//! (writes of every port, deletes, expiry on tokio time) is told to the
//! subscribers watching its key, under the keyspace lock, so events of one
//! key arrive in commit order. Sending never waits (`SubscriptionSender`).

use async_trait::async_trait;
use statehouse_domain::Key;
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
}
