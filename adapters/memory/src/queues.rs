//! [`QueueStore`] in memory: the same keys and steps as the Redis
//! adapter's scripts, each one section under the keyspace lock (atomic,
//! like a script or a `MULTI`).

use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::ServiceName;
use statehouse_domain::layout::{ServiceKeys, TenantKeys};
use statehouse_ports::{QueueItem, QueueName, QueueStore, StoreError};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::store::State;
use crate::triggers::{millis, score, score_ms};

/// The keys of one queue, their types checked.
struct Keys {
    list: String,
    items: String,
    leases: String,
    index: String,
    member: String,
}

fn checked(
    op: &'static str,
    state: &mut State,
    tenant: &str,
    queue: &QueueName,
    now: Instant,
) -> Result<Keys, StoreError> {
    let tenant = TenantKeys::new(tenant);
    let (service, batch, action) = (
        queue.service.as_str(),
        queue.batch.as_str(),
        queue.action.as_str(),
    );
    let keys = Keys {
        list: tenant.queue(service, batch, action),
        items: tenant.queue_items(service, batch, action),
        leases: tenant.queue_leases(service, batch, action),
        index: tenant.queues_of(service),
        member: tenant.queue_member(batch, action),
    };
    state
        .list(&keys.list, now)
        .map_err(|()| StoreError::wrong_type(op, &keys.list))?;
    state
        .hash(&keys.items, now)
        .map_err(|()| StoreError::wrong_type(op, &keys.items))?;
    state
        .zset(&keys.leases, now)
        .map_err(|()| StoreError::wrong_type(op, &keys.leases))?;
    state
        .zset(&keys.index, now)
        .map_err(|()| StoreError::wrong_type(op, &keys.index))?;
    Ok(keys)
}

/// The payload of item `id`.
fn payload(state: &mut State, keys: &Keys, id: u64, now: Instant) -> Option<Vec<u8>> {
    state
        .hget(&keys.items, id.to_string().as_bytes(), now)
        .ok()
        .flatten()
}

/// Drops the queue from the tenant's index once nothing waits or is held.
fn unindex_if_empty(state: &mut State, keys: &Keys, now: Instant) {
    let waiting = state
        .list(&keys.list, now)
        .ok()
        .flatten()
        .is_some_and(|list| !list.is_empty());
    let held = state
        .zset(&keys.leases, now)
        .ok()
        .flatten()
        .is_some_and(|set| set.len() > 0);
    if !waiting && !held {
        let _ = state.edit_zset(&keys.index, now, |index| index.remove(&keys.member));
    }
}

fn parse_id(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[async_trait]
impl QueueStore for MemoryStore {
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
        let pending = ServiceKeys::new(queue.service.as_str()).pending();
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let clock = score(self.keyspace.clock_ms(now));
        // The mark first, whatever the tenant's step does: on Redis both are
        // one MULTI, which does not roll the mark back if the script fails.
        state
            .edit_zset(&pending, now, |set| {
                if set.score(tenant).is_none() {
                    set.insert(tenant, clock);
                }
            })
            .map_err(|()| StoreError::wrong_type(OP, &pending))?;
        let keys = checked(OP, &mut state, tenant, queue, now)?;
        let ids = state
            .edit_hash(&keys.items, now, |items| {
                let next = items
                    .get(b"next".as_slice())
                    .and_then(|n| parse_id(n))
                    .unwrap_or(0);
                let ids: Vec<u64> = (next + 1..).take(payloads.len()).collect();
                for (id, payload) in ids.iter().zip(payloads) {
                    items.insert(id.to_string().into_bytes(), payload.clone());
                }
                if let Some(last) = ids.last() {
                    items.insert(b"next".to_vec(), last.to_string().into_bytes());
                }
                ids
            })
            .unwrap_or_default();
        let _ = state.edit_list(&keys.list, now, |list| {
            list.extend(ids.iter().map(|id| id.to_string().into_bytes()));
        });
        let _ = state.edit_zset(&keys.index, now, |index| {
            if index.score(&keys.member).is_none() {
                index.insert(&keys.member, clock);
            }
        });
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
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, tenant, queue, now)?;
        let ids: Vec<u64> = state
            .list(&keys.list, now)
            .ok()
            .flatten()
            .map(|list| {
                list.iter()
                    .skip(start)
                    .take(count)
                    .filter_map(|id| parse_id(id))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ids
            .into_iter()
            .map(|id| QueueItem {
                id,
                payload: payload(&mut state, &keys, id, now).unwrap_or_default(),
            })
            .collect())
    }

    async fn trim(&self, tenant: &str, queue: &QueueName, count: usize) -> Result<usize, StoreError> {
        const OP: &str = "queue_trim";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, tenant, queue, now)?;
        let gone: Vec<Vec<u8>> = state
            .edit_list(&keys.list, now, |list| {
                let n = count.min(list.len());
                list.drain(..n).collect()
            })
            .unwrap_or_default();
        let _ = state.edit_hash(&keys.items, now, |items| {
            for id in &gone {
                items.remove(id);
            }
        });
        unindex_if_empty(&mut state, &keys, now);
        Ok(gone.len())
    }

    async fn len(&self, tenant: &str, queue: &QueueName) -> Result<u64, StoreError> {
        const OP: &str = "queue_len";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, tenant, queue, now)?;
        let len = state
            .list(&keys.list, now)
            .ok()
            .flatten()
            .map_or(0, std::collections::VecDeque::len);
        Ok(len as u64)
    }

    async fn queues(&self, tenant: &str, service: &ServiceName) -> Result<Vec<QueueName>, StoreError> {
        const OP: &str = "queue_list";
        let tenant = TenantKeys::new(tenant);
        let key = tenant.queues_of(service.as_str());
        let mut state = self.keyspace.lock();
        let members: Vec<String> = state
            .zset(&key, Instant::now())
            .map_err(|()| StoreError::wrong_type(OP, &key))?
            .map(|set| set.iter().map(|(_, member)| member.to_owned()).collect())
            .unwrap_or_default();
        Ok(QueueName::of_members(
            &tenant,
            service,
            members.iter().map(String::as_str),
        ))
    }

    async fn pending(&self, service: &ServiceName) -> Result<Vec<String>, StoreError> {
        const OP: &str = "queue_pending";
        let key = ServiceKeys::new(service.as_str()).pending();
        let mut state = self.keyspace.lock();
        Ok(state
            .zset(&key, Instant::now())
            .map_err(|()| StoreError::wrong_type(OP, &key))?
            .map(|set| set.iter().map(|(_, tenant)| tenant.to_owned()).collect())
            .unwrap_or_default())
    }

    async fn remove_pending(&self, service: &ServiceName, tenant: &str) -> Result<bool, StoreError> {
        const OP: &str = "queue_remove_pending";
        let key = ServiceKeys::new(service.as_str()).pending();
        let mut state = self.keyspace.lock();
        state
            .edit_zset(&key, Instant::now(), |set| set.remove(tenant))
            .map_err(|()| StoreError::wrong_type(OP, &key))
    }

    async fn claim(
        &self,
        tenant: &str,
        queue: &QueueName,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<QueueItem>, StoreError> {
        const OP: &str = "queue_claim";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, tenant, queue, now)?;
        let clock = self.keyspace.clock_ms(now);
        let until = score(clock.saturating_add(millis(lease)));
        // A crashed worker's items first: their leases ran out.
        let mut ids: Vec<u64> = state
            .zset(&keys.leases, now)
            .ok()
            .flatten()
            .map(|set| {
                set.iter()
                    .take_while(|(at, _)| score_ms(*at) <= clock)
                    .take(max)
                    .filter_map(|(_, id)| id.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let fresh: Vec<u64> = state
            .edit_list(&keys.list, now, |list| {
                let n = max.saturating_sub(ids.len()).min(list.len());
                list.drain(..n).filter_map(|id| parse_id(&id)).collect()
            })
            .unwrap_or_default();
        ids.extend(fresh);
        let _ = state.edit_zset(&keys.leases, now, |set| {
            for id in &ids {
                set.insert(&id.to_string(), until);
            }
        });
        Ok(ids
            .into_iter()
            .map(|id| QueueItem {
                id,
                payload: payload(&mut state, &keys, id, now).unwrap_or_default(),
            })
            .collect())
    }

    async fn ack(&self, tenant: &str, queue: &QueueName, ids: &[u64]) -> Result<usize, StoreError> {
        const OP: &str = "queue_ack";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, tenant, queue, now)?;
        let held: Vec<u64> = state
            .edit_zset(&keys.leases, now, |set| {
                ids.iter()
                    .copied()
                    .filter(|id| set.remove(&id.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let _ = state.edit_hash(&keys.items, now, |items| {
            for id in &held {
                items.remove(id.to_string().as_bytes());
            }
        });
        unindex_if_empty(&mut state, &keys, now);
        Ok(held.len())
    }
}
