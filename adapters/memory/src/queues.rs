//! [`QueueStore`] in memory: the same keys and steps as the Redis
//! adapter's scripts, each one section under the keyspace lock (atomic,
//! like a script or a `MULTI`).

use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::TenantId;
use statehouse_domain::layout::{QueueIndex, QueueKeys, ServiceKeys};
use statehouse_ports::{QueueItem, QueueName, QueueStore, StoreError};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::store::State;
use crate::triggers::{millis, score, score_ms};

/// Checks the types of a queue's keys (what every script does before it
/// writes).
fn checked(op: &'static str, state: &mut State, keys: &QueueKeys, now: Instant) -> Result<(), StoreError> {
    state
        .list(keys.list(), now)
        .map_err(|()| StoreError::wrong_type(op, keys.list()))?;
    state
        .hash(keys.items(), now)
        .map_err(|()| StoreError::wrong_type(op, keys.items()))?;
    state
        .zset(keys.leases(), now)
        .map_err(|()| StoreError::wrong_type(op, keys.leases()))?;
    state
        .zset(keys.index(), now)
        .map_err(|()| StoreError::wrong_type(op, keys.index()))?;
    Ok(())
}

/// The payload of item `id`.
fn payload(state: &mut State, keys: &QueueKeys, id: u64, now: Instant) -> Option<Vec<u8>> {
    state
        .hget(keys.items(), id.to_string().as_bytes(), now)
        .ok()
        .flatten()
}

/// Drops the queue from the tenant's index once nothing waits or is held.
fn unindex_if_empty(state: &mut State, keys: &QueueKeys, now: Instant) {
    let waiting = state
        .list(keys.list(), now)
        .ok()
        .flatten()
        .is_some_and(|list| !list.is_empty());
    let held = state
        .zset(keys.leases(), now)
        .ok()
        .flatten()
        .is_some_and(|set| set.len() > 0);
    if !waiting && !held {
        let _ = state.edit_zset(keys.index(), now, |index| index.remove(keys.member()));
    }
}

/// The lease score of a claimed item whose lease ran out: `id - 2^53`,
/// below every lease end (milliseconds since the epoch) and in id order.
fn parked(id: i64) -> f64 {
    score(id) - 9_007_199_254_740_992.0
}

fn parse_id(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[async_trait]
impl QueueStore for MemoryStore {
    async fn enqueue(&self, keys: &QueueKeys, payloads: &[Vec<u8>]) -> Result<Vec<u64>, StoreError> {
        self.replicated("enqueue", keys.list(), async {
            const OP: &str = "enqueue";
            if payloads.is_empty() {
                return Ok(Vec::new());
            }
            let (pending, tenant) = (keys.pending(), keys.tenant().as_str());
            let mut state = self.keyspace.lock();
            let now = Instant::now();
            let clock = score(self.keyspace.clock_ms(now));
            // The mark first, whatever the tenant's step does: on Redis both are
            // one MULTI, which does not roll the mark back if the script fails.
            state
                .edit_zset(pending, now, |set| {
                    if set.score(tenant).is_none() {
                        set.insert(tenant, clock);
                    }
                })
                .map_err(|()| StoreError::wrong_type(OP, pending))?;
            checked(OP, &mut state, keys, now)?;
            let ids = state
                .edit_hash(keys.items(), now, |items| {
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
            let _ = state.edit_list(keys.list(), now, |list| {
                list.extend(ids.iter().map(|id| id.to_string().into_bytes()));
            });
            let _ = state.edit_zset(keys.index(), now, |index| {
                if index.score(keys.member()).is_none() {
                    index.insert(keys.member(), clock);
                }
            });
            Ok(ids)
        })
        .await
    }

    async fn range(
        &self,
        keys: &QueueKeys,
        start: usize,
        count: usize,
    ) -> Result<Vec<QueueItem>, StoreError> {
        const OP: &str = "queue_range";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        checked(OP, &mut state, keys, now)?;
        let ids: Vec<u64> = state
            .list(keys.list(), now)
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
                payload: payload(&mut state, keys, id, now).unwrap_or_default(),
            })
            .collect())
    }

    async fn trim(&self, keys: &QueueKeys, count: usize) -> Result<usize, StoreError> {
        self.replicated("queue_trim", keys.list(), async {
            const OP: &str = "queue_trim";
            let mut state = self.keyspace.lock();
            let now = Instant::now();
            checked(OP, &mut state, keys, now)?;
            let gone: Vec<Vec<u8>> = state
                .edit_list(keys.list(), now, |list| {
                    let n = count.min(list.len());
                    list.drain(..n).collect()
                })
                .unwrap_or_default();
            let _ = state.edit_hash(keys.items(), now, |items| {
                for id in &gone {
                    items.remove(id);
                }
            });
            unindex_if_empty(&mut state, keys, now);
            Ok(gone.len())
        })
        .await
    }

    async fn len(&self, keys: &QueueKeys) -> Result<u64, StoreError> {
        const OP: &str = "queue_len";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        checked(OP, &mut state, keys, now)?;
        let len = state
            .list(keys.list(), now)
            .ok()
            .flatten()
            .map_or(0, std::collections::VecDeque::len);
        Ok(len as u64)
    }

    async fn queues(&self, index: &QueueIndex) -> Result<Vec<QueueName>, StoreError> {
        const OP: &str = "queue_list";
        let mut state = self.keyspace.lock();
        let members = state
            .zset(index.key(), Instant::now())
            .map_err(|()| StoreError::wrong_type(OP, index.key()))?;
        Ok(members.map_or_else(Vec::new, |set| {
            QueueName::of_members(index, set.iter().map(|(_, member)| member))
        }))
    }

    async fn pending(&self, service: &ServiceKeys) -> Result<Vec<String>, StoreError> {
        const OP: &str = "queue_pending";
        let key = service.pending();
        let mut state = self.keyspace.lock();
        Ok(state
            .zset(key, Instant::now())
            .map_err(|()| StoreError::wrong_type(OP, key))?
            .map(|set| set.iter().map(|(_, tenant)| tenant.to_owned()).collect())
            .unwrap_or_default())
    }

    async fn remove_pending(&self, service: &ServiceKeys, tenant: &TenantId) -> Result<bool, StoreError> {
        self.replicated("queue_remove_pending", service.pending(), async {
            const OP: &str = "queue_remove_pending";
            let key = service.pending();
            let mut state = self.keyspace.lock();
            state
                .edit_zset(key, Instant::now(), |set| set.remove(tenant.as_str()))
                .map_err(|()| StoreError::wrong_type(OP, key))
        })
        .await
    }

    async fn claim(
        &self,
        keys: &QueueKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<QueueItem>, StoreError> {
        self.replicated("queue_claim", keys.list(), async {
            const OP: &str = "queue_claim";
            let mut state = self.keyspace.lock();
            let now = Instant::now();
            checked(OP, &mut state, keys, now)?;
            let clock = self.keyspace.clock_ms(now);
            let until = score(clock.saturating_add(millis(lease)));
            // A crashed worker's items first: their leases ran out. Parked
            // first (once each) below every lease end in id order, as the
            // Redis script does, so they come back in queue order.
            let _ = state.edit_zset(keys.leases(), now, |set| {
                let lapsed: Vec<String> = set
                    .iter()
                    .skip_while(|(at, _)| *at < 0.0)
                    .take_while(|(at, _)| score_ms(*at) <= clock)
                    .map(|(_, id)| id.to_owned())
                    .collect();
                for id in lapsed {
                    if let Ok(n) = id.parse::<i64>() {
                        set.insert(&id, parked(n));
                    }
                }
            });
            let mut ids: Vec<u64> = state
                .zset(keys.leases(), now)
                .ok()
                .flatten()
                .map(|set| {
                    set.iter()
                        .take_while(|(at, _)| *at < 0.0)
                        .take(max)
                        .filter_map(|(_, id)| id.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let fresh: Vec<u64> = state
                .edit_list(keys.list(), now, |list| {
                    let n = max.saturating_sub(ids.len()).min(list.len());
                    list.drain(..n).filter_map(|id| parse_id(&id)).collect()
                })
                .unwrap_or_default();
            ids.extend(fresh);
            let _ = state.edit_zset(keys.leases(), now, |set| {
                for id in &ids {
                    set.insert(&id.to_string(), until);
                }
            });
            Ok(ids
                .into_iter()
                .map(|id| QueueItem {
                    id,
                    payload: payload(&mut state, keys, id, now).unwrap_or_default(),
                })
                .collect())
        })
        .await
    }

    async fn ack(&self, keys: &QueueKeys, ids: &[u64]) -> Result<usize, StoreError> {
        self.replicated("queue_ack", keys.list(), async {
            const OP: &str = "queue_ack";
            let mut state = self.keyspace.lock();
            let now = Instant::now();
            checked(OP, &mut state, keys, now)?;
            let held: Vec<u64> = state
                .edit_zset(keys.leases(), now, |set| {
                    ids.iter()
                        .copied()
                        .filter(|id| set.remove(&id.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let _ = state.edit_hash(keys.items(), now, |items| {
                for id in &held {
                    items.remove(id.to_string().as_bytes());
                }
            });
            unindex_if_empty(&mut state, keys, now);
            Ok(held.len())
        })
        .await
    }
}
