//! [`QueueStore`] on Redis: per tenant and queue, a list of item ids, a
//! hash of payloads (and the id counter), a sorted set of leases, and the
//! tenant's index of its queues per service; every per-tenant step is one
//! Lua script (`scripts/`) on the tenant's slot.
//!
//! The cross-tenant part is the service's pending set
//! (`svc:{<service>}:pending`, another slot): `enqueue` runs the tenant's
//! script and `ZADD NX` on it in one `MULTI`, which is atomic on one Redis
//! server. On Redis Cluster a `MULTI` cannot span slots: there the mark
//! would be sent first and the script second (two steps; a mark without
//! work is harmless).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::Value;
use statehouse_domain::TenantId;
use statehouse_domain::layout::{QueueIndex, QueueKeys, ServiceKeys};
use statehouse_ports::{QueueItem, QueueName, QueueStore, StoreError};

use crate::RedisStore;
use crate::scripts::{self, QUEUE_ACK, QUEUE_CLAIM, QUEUE_ENQUEUE, QUEUE_RANGE, QUEUE_TRIM};

fn bad_reply(op: &'static str, key: &str) -> StoreError {
    StoreError::Operation {
        op,
        key: key.to_owned(),
        source: "unexpected reply from a queue script".into(),
    }
}

/// `{id, payload, …}` as items.
fn items(op: &'static str, key: &str, reply: Vec<Value>) -> Result<Vec<QueueItem>, StoreError> {
    reply
        .chunks(2)
        .map(|pair| match pair {
            [id, Value::BulkString(payload)] => {
                let id = match id {
                    Value::Int(n) => u64::try_from(*n).ok(),
                    Value::BulkString(bytes) => std::str::from_utf8(bytes).ok().and_then(|t| t.parse().ok()),
                    _ => None,
                };
                Ok(QueueItem {
                    id: id.ok_or_else(|| bad_reply(op, key))?,
                    payload: payload.clone(),
                })
            }
            _ => Err(bad_reply(op, key)),
        })
        .collect()
}

impl RedisStore {
    /// The queue script's prefixed KEYS: list, items, leases, index
    /// (borrowed when the store has no prefix).
    fn queue_script_keys<'q>(&self, queue: &'q QueueKeys) -> [Cow<'q, str>; 4] {
        [queue.list(), queue.items(), queue.leases(), queue.index()].map(|key| self.keys.raw(key))
    }
}

#[async_trait]
impl QueueStore for RedisStore {
    async fn enqueue(&self, queue: &QueueKeys, payloads: &[Vec<u8>]) -> Result<Vec<u64>, StoreError> {
        const OP: &str = "enqueue";
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.queue_script_keys(queue);
        let pending = self.keys.raw(queue.pending());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        if self.conns.is_cluster() {
            // The pending set is in the service's slot, the queue in the
            // tenant's: on a cluster no MULTI spans both, so the mark is a
            // step of its own, sent first (a mark without work is harmless:
            // a worker finds the queues empty; work without a mark could
            // be stranded). See docs/keys.md.
            // A mark short of replicas was applied: the items are enqueued
            // all the same, then the shortfall reported.
            let mut shortfall = crate::conn::Shortfall::none();
            let (mut conn, acks) = self.conns.writer();
            let marked = self
                .conns
                .run_write(
                    acks,
                    OP,
                    queue.list(),
                    conn.query::<()>(
                        redis::cmd("ZADD")
                            .arg(pending.as_ref())
                            .arg("NX")
                            .arg(now)
                            .arg(queue.tenant().as_str()),
                    ),
                )
                .await;
            shortfall.keep(marked)?;
            let enqueued = scripts::run_shared(&self.conns, OP, queue.list(), |mut conn| {
                let cmd = scripts::evalsha(&QUEUE_ENQUEUE, &keys, (queue.member(), payloads));
                async move { conn.query(&cmd).await }
            })
            .await;
            return shortfall.after(enqueued);
        }
        let (ids,): (Vec<u64>,) = scripts::run_shared(&self.conns, OP, queue.list(), |mut conn| {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .add_command(scripts::evalsha(
                    &QUEUE_ENQUEUE,
                    &keys,
                    (queue.member(), payloads),
                ))
                .cmd("ZADD")
                .arg(pending.as_ref())
                .arg("NX")
                .arg(now)
                .arg(queue.tenant().as_str())
                .ignore();
            async move { pipe.query_async(&mut conn).await }
        })
        .await?;
        Ok(ids)
    }

    async fn range(
        &self,
        queue: &QueueKeys,
        start: usize,
        count: usize,
    ) -> Result<Vec<QueueItem>, StoreError> {
        const OP: &str = "queue_range";
        if count == 0 {
            return Ok(Vec::new());
        }
        let keys = self.queue_script_keys(queue);
        let stop = start.saturating_add(count - 1);
        let reply: Vec<Value> = scripts::run_shared_read(&self.conns, OP, queue.list(), |mut conn| {
            let cmd = scripts::evalsha(&QUEUE_RANGE, &keys, (queue.member(), start, stop));
            async move { conn.query(&cmd).await }
        })
        .await?;
        items(OP, queue.list(), reply)
    }

    async fn trim(&self, queue: &QueueKeys, count: usize) -> Result<usize, StoreError> {
        const OP: &str = "queue_trim";
        let keys = self.queue_script_keys(queue);
        scripts::run_shared(&self.conns, OP, queue.list(), |mut conn| {
            let cmd = scripts::evalsha(&QUEUE_TRIM, &keys, (queue.member(), count));
            async move { conn.query(&cmd).await }
        })
        .await
    }

    async fn len(&self, queue: &QueueKeys) -> Result<u64, StoreError> {
        const OP: &str = "queue_len";
        let mut conn = self.conns.shared();
        self.conns
            .run(
                OP,
                queue.list(),
                conn.query(redis::cmd("LLEN").arg(self.keys.raw(queue.list()).as_ref())),
            )
            .await
    }

    async fn queues(&self, index: &QueueIndex) -> Result<Vec<QueueName>, StoreError> {
        const OP: &str = "queue_list";
        let mut conn = self.conns.shared();
        let members: Vec<String> = self
            .conns
            .run(
                OP,
                index.key(),
                conn.query(
                    redis::cmd("ZRANGE")
                        .arg(self.keys.raw(index.key()).as_ref())
                        .arg(0)
                        .arg(-1),
                ),
            )
            .await?;
        Ok(QueueName::of_members(index, members.iter().map(String::as_str)))
    }

    async fn pending(&self, service: &ServiceKeys) -> Result<Vec<String>, StoreError> {
        const OP: &str = "queue_pending";
        let key = service.pending();
        let mut conn = self.conns.shared();
        self.conns
            .run(
                OP,
                key,
                conn.query(
                    redis::cmd("ZRANGE")
                        .arg(self.keys.raw(key).as_ref())
                        .arg(0)
                        .arg(-1),
                ),
            )
            .await
    }

    async fn remove_pending(&self, service: &ServiceKeys, tenant: &TenantId) -> Result<bool, StoreError> {
        const OP: &str = "queue_remove_pending";
        let key = service.pending();
        let (mut conn, acks) = self.conns.writer();
        let removed: i64 = self
            .conns
            .run_write(
                acks,
                OP,
                key,
                conn.query(
                    redis::cmd("ZREM")
                        .arg(self.keys.raw(key).as_ref())
                        .arg(tenant.as_str()),
                ),
            )
            .await?;
        Ok(removed == 1)
    }

    async fn claim(
        &self,
        queue: &QueueKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<QueueItem>, StoreError> {
        const OP: &str = "queue_claim";
        if max == 0 {
            return Ok(Vec::new());
        }
        let keys = self.queue_script_keys(queue);
        let lease = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: Vec<Value> = scripts::run_shared(&self.conns, OP, queue.list(), |mut conn| {
            let cmd = scripts::evalsha(&QUEUE_CLAIM, &keys, (queue.member(), max, lease));
            async move { conn.query(&cmd).await }
        })
        .await?;
        items(OP, queue.list(), reply)
    }

    async fn ack(&self, queue: &QueueKeys, ids: &[u64]) -> Result<usize, StoreError> {
        const OP: &str = "queue_ack";
        if ids.is_empty() {
            return Ok(0);
        }
        let keys = self.queue_script_keys(queue);
        scripts::run_shared(&self.conns, OP, queue.list(), |mut conn| {
            let cmd = scripts::evalsha(&QUEUE_ACK, &keys, (queue.member(), ids));
            async move { conn.query(&cmd).await }
        })
        .await
    }
}
