//! [`QueueStore`] on Redis: per tenant and queue, a list of item ids, a
//! hash of payloads (and the id counter), a sorted set of leases, and the
//! tenant's index of its queues per service; every per-tenant step is one
//! Lua script (`scripts.rs`) on the tenant's slot.
//!
//! The cross-tenant part is the service's pending set
//! (`svc:{<service>}:pending`, another slot): `enqueue` runs the tenant's
//! script and `ZADD NX` on it in one `MULTI`, which is atomic on one Redis
//! server. On Redis Cluster a `MULTI` cannot span slots: there the mark
//! would be sent first and the script second (two steps; a mark without
//! work is harmless).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::Value;
use statehouse_domain::ServiceName;
use statehouse_domain::layout::{ServiceKeys, TenantKeys};
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

/// A queue's keys (unprefixed: the list names errors) and the script's
/// prefixed KEYS and first ARGV (its member in the tenant's index).
struct QueueKeys {
    list: String,
    keys: Vec<String>,
    member: String,
}

impl RedisStore {
    fn queue_keys(&self, tenant: &str, queue: &QueueName) -> QueueKeys {
        let tenant = TenantKeys::new(tenant);
        let (service, batch, action) = (
            queue.service.as_str(),
            queue.batch.as_str(),
            queue.action.as_str(),
        );
        let list = tenant.queue(service, batch, action);
        let keys = [
            list.clone(),
            tenant.queue_items(service, batch, action),
            tenant.queue_leases(service, batch, action),
            tenant.queues_of(service),
        ]
        .iter()
        .map(|key| self.keys.raw(key).into_owned())
        .collect();
        QueueKeys {
            list,
            keys,
            member: tenant.queue_member(batch, action),
        }
    }
}

#[async_trait]
impl QueueStore for RedisStore {
    async fn enqueue(
        &self,
        tenant: &str,
        queue: &QueueName,
        payloads: &[Vec<u8>],
    ) -> Result<Vec<u64>, StoreError> {
        const OP: &str = "enqueue";
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        let q = self.queue_keys(tenant, queue);
        let pending = self
            .keys
            .raw(&ServiceKeys::new(queue.service.as_str()).pending())
            .into_owned();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        let (ids,): (Vec<u64>,) = scripts::run_shared(&self.conns, OP, &q.list, |mut conn| {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .add_command(scripts::evalsha(&QUEUE_ENQUEUE, &q.keys, (&q.member, payloads)))
                .cmd("ZADD")
                .arg(&pending)
                .arg("NX")
                .arg(now)
                .arg(tenant)
                .ignore();
            async move { pipe.query_async(&mut conn).await }
        })
        .await?;
        Ok(ids)
    }

    async fn range(
        &self,
        tenant: &str,
        queue: &QueueName,
        start: usize,
        count: usize,
    ) -> Result<Vec<QueueItem>, StoreError> {
        const OP: &str = "queue_range";
        if count == 0 {
            return Ok(Vec::new());
        }
        let q = self.queue_keys(tenant, queue);
        let stop = start.saturating_add(count - 1);
        let reply: Vec<Value> = scripts::run_shared(&self.conns, OP, &q.list, |mut conn| {
            let cmd = scripts::evalsha(&QUEUE_RANGE, &q.keys, (&q.member, start, stop));
            async move { cmd.query_async(&mut conn).await }
        })
        .await?;
        items(OP, &q.list, reply)
    }

    async fn trim(&self, tenant: &str, queue: &QueueName, count: usize) -> Result<usize, StoreError> {
        const OP: &str = "queue_trim";
        let q = self.queue_keys(tenant, queue);
        scripts::run_shared(&self.conns, OP, &q.list, |mut conn| {
            let cmd = scripts::evalsha(&QUEUE_TRIM, &q.keys, (&q.member, count));
            async move { cmd.query_async(&mut conn).await }
        })
        .await
    }

    async fn len(&self, tenant: &str, queue: &QueueName) -> Result<u64, StoreError> {
        const OP: &str = "queue_len";
        let q = self.queue_keys(tenant, queue);
        let mut conn = self.conns.shared();
        self.conns
            .run(
                OP,
                &q.list,
                redis::cmd("LLEN").arg(&q.keys[0]).query_async(&mut conn),
            )
            .await
    }

    async fn queues(&self, tenant: &str, service: &ServiceName) -> Result<Vec<QueueName>, StoreError> {
        const OP: &str = "queue_list";
        let tenant = TenantKeys::new(tenant);
        let key = tenant.queues_of(service.as_str());
        let mut conn = self.conns.shared();
        let members: Vec<String> = self
            .conns
            .run(
                OP,
                &key,
                redis::cmd("ZRANGE")
                    .arg(self.keys.raw(&key).as_ref())
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(QueueName::of_members(
            &tenant,
            service,
            members.iter().map(String::as_str),
        ))
    }

    async fn pending(&self, service: &ServiceName) -> Result<Vec<String>, StoreError> {
        const OP: &str = "queue_pending";
        let key = ServiceKeys::new(service.as_str()).pending();
        let mut conn = self.conns.shared();
        self.conns
            .run(
                OP,
                &key,
                redis::cmd("ZRANGE")
                    .arg(self.keys.raw(&key).as_ref())
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn),
            )
            .await
    }

    async fn remove_pending(&self, service: &ServiceName, tenant: &str) -> Result<bool, StoreError> {
        const OP: &str = "queue_remove_pending";
        let key = ServiceKeys::new(service.as_str()).pending();
        let mut conn = self.conns.shared();
        let removed: i64 = self
            .conns
            .run(
                OP,
                &key,
                redis::cmd("ZREM")
                    .arg(self.keys.raw(&key).as_ref())
                    .arg(tenant)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(removed == 1)
    }

    async fn claim(
        &self,
        tenant: &str,
        queue: &QueueName,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<QueueItem>, StoreError> {
        const OP: &str = "queue_claim";
        if max == 0 {
            return Ok(Vec::new());
        }
        let q = self.queue_keys(tenant, queue);
        let lease = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: Vec<Value> = scripts::run_shared(&self.conns, OP, &q.list, |mut conn| {
            let cmd = scripts::evalsha(&QUEUE_CLAIM, &q.keys, (&q.member, max, lease));
            async move { cmd.query_async(&mut conn).await }
        })
        .await?;
        items(OP, &q.list, reply)
    }

    async fn ack(&self, tenant: &str, queue: &QueueName, ids: &[u64]) -> Result<usize, StoreError> {
        const OP: &str = "queue_ack";
        if ids.is_empty() {
            return Ok(0);
        }
        let q = self.queue_keys(tenant, queue);
        scripts::run_shared(&self.conns, OP, &q.list, |mut conn| {
            let cmd = scripts::evalsha(&QUEUE_ACK, &q.keys, (&q.member, ids));
            async move { cmd.query_async(&mut conn).await }
        })
        .await
    }
}
