//! The cross-tenant due index in memory: the same shards, keys and steps
//! as the Redis scripts `TRIGGER_MARK`, `TRIGGER_TAKE` and
//! `TRIGGER_REFILE` (see the Redis adapter's `triggers/index.rs`), each one
//! section under the keyspace lock; the wake-up hint is a change event of
//! the shard's wake name, which is never written.

use std::time::Duration;

use statehouse_domain::TenantId;
use statehouse_domain::layout::{IndexShard, TriggerIndex, TriggerKeys};
use statehouse_ports::{DueTenants, IndexedTenant, StoreError, millis_to_utc};
use tokio::time::Instant;

use super::{from_ms, millis, score, score_ms};
use crate::MemoryStore;
use crate::store::State;

/// A mark older than this (ms) belongs to a set that never wrote: adopted.
const SETTLE: i64 = 60_000;
/// The shortest wait before a second look at a tenant with a set in
/// flight (ms).
const RETRY: i64 = 50;

/// Checks the types of a shard's keys.
fn checked(op: &'static str, state: &mut State, shard: &IndexShard, now: Instant) -> Result<(), StoreError> {
    state
        .zset(shard.tenants(), now)
        .map_err(|()| StoreError::wrong_type(op, shard.tenants()))?;
    state
        .hash(shard.marks(), now)
        .map_err(|()| StoreError::wrong_type(op, shard.marks()))?;
    Ok(())
}

/// A tenant's mark: how many sets marked it, and when the last did.
fn mark_of(state: &mut State, shard: &IndexShard, tenant: &str, now: Instant) -> Option<(i64, i64)> {
    let held = state.hget(shard.marks(), tenant.as_bytes(), now).ok().flatten()?;
    let text = std::str::from_utf8(&held).ok()?;
    let (marked, at) = text.split_once(':').unwrap_or((text, "0"));
    Some((marked.parse().unwrap_or(0), at.parse().unwrap_or(0)))
}

/// The earliest entry of a shard.
fn first(state: &mut State, key: &str, now: Instant) -> Option<i64> {
    state
        .zset(key, now)
        .ok()
        .flatten()
        .and_then(|set| set.iter().next().map(|(at, _)| score_ms(at)))
}

impl MemoryStore {
    /// Files the tenant in its shard at now + `delay` (unless earlier
    /// already), counts the mark, and publishes the hint when the entry
    /// became the shard's earliest: the first step of `set`.
    pub(super) fn mark(&self, keys: &TriggerKeys, delay: Duration) -> Result<(), StoreError> {
        const OP: &str = "trigger_mark";
        let shard = keys.shard();
        let tenant = keys.tenant().as_str();
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        checked(OP, &mut state, shard, now)?;
        let clock = self.keyspace.clock_ms(now);
        let due = clock.saturating_add(millis(delay));
        let earliest = first(&mut state, shard.tenants(), now);
        let _ = state.edit_zset(shard.tenants(), now, |set| {
            if set.score(tenant).is_none_or(|at| score(due) < at) {
                set.insert(tenant, score(due));
            }
        });
        let marked = mark_of(&mut state, shard, tenant, now).map_or(0, |(marked, _)| marked);
        let mark = format!("{}:{clock}", marked.saturating_add(1));
        let _ = state.edit_hash(shard.marks(), now, |marks| {
            marks.insert(tenant.as_bytes().to_vec(), mark.into_bytes());
        });
        if earliest.is_none_or(|earliest| due < earliest) {
            state.publish(shard.wake());
        }
        Ok(())
    }

    /// Takes up to `max` due tenants of every shard for `lease`.
    pub(super) fn take(
        &self,
        index: &TriggerIndex,
        max: usize,
        lease: Duration,
    ) -> Result<DueTenants, StoreError> {
        const OP: &str = "trigger_take";
        let max = max.max(1);
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        for shard in index.shards() {
            state
                .zset(shard.tenants(), now)
                .map_err(|()| StoreError::wrong_type(OP, shard.tenants()))?;
        }
        let clock = self.keyspace.clock_ms(now);
        let mut due: Vec<(i64, usize, String)> = Vec::new();
        for (number, shard) in index.shards().iter().enumerate() {
            if let Ok(Some(set)) = state.zset(shard.tenants(), now) {
                due.extend(
                    set.iter()
                        .take_while(|(at, _)| score_ms(*at) <= clock)
                        .take(max)
                        .map(|(at, tenant)| (score_ms(at), number, tenant.to_owned())),
                );
            }
        }
        due.sort();
        due.truncate(max);
        let until = score(clock.saturating_add(millis(lease).max(1)));
        let mut tenants = Vec::with_capacity(due.len());
        for (_, number, member) in due {
            let key = index.shards()[number].tenants();
            match TenantId::new(&member) {
                Ok(tenant) => {
                    let _ = state.edit_zset(key, now, |set| set.insert(&member, until));
                    tenants.push(tenant);
                }
                // Not a tenant this layout filed: pruned, not fatal.
                Err(_) => {
                    let _ = state.edit_zset(key, now, |set| set.remove(&member));
                }
            }
        }
        let next_due_in = index
            .shards()
            .iter()
            .filter_map(|shard| first(&mut state, shard.tenants(), now))
            .min()
            .map(|at| from_ms(at.saturating_sub(clock)));
        Ok(DueTenants { tenants, next_due_in })
    }

    /// The first `limit` entries of the index, earliest first across the
    /// shards.
    pub(super) fn indexed_tenants(
        &self,
        index: &TriggerIndex,
        limit: usize,
    ) -> Result<Vec<IndexedTenant>, StoreError> {
        const OP: &str = "trigger_indexed";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let mut entries: Vec<(i64, String)> = Vec::new();
        for shard in index.shards() {
            let set = state
                .zset(shard.tenants(), now)
                .map_err(|()| StoreError::wrong_type(OP, shard.tenants()))?;
            if let Some(set) = set {
                entries.extend(
                    set.iter()
                        .take(limit)
                        .map(|(at, tenant)| (score_ms(at), tenant.to_owned())),
                );
            }
        }
        entries.sort();
        entries.truncate(limit);
        Ok(entries
            .into_iter()
            .map(|(at, tenant)| IndexedTenant {
                tenant,
                due_at: millis_to_utc(at),
            })
            .collect())
    }

    /// Files the tenant again after a claim or an ack that saw `sets` sets
    /// and its next due time (ms from then).
    pub(super) fn refile(
        &self,
        keys: &TriggerKeys,
        sets: i64,
        next_in: Option<i64>,
    ) -> Result<(), StoreError> {
        const OP: &str = "trigger_refile";
        let shard = keys.shard();
        let tenant = keys.tenant().as_str();
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        checked(OP, &mut state, shard, now)?;
        let clock = self.keyspace.clock_ms(now);
        let (marked, at) = mark_of(&mut state, shard, tenant, now).unwrap_or((0, 0));
        let age = clock.saturating_sub(at);
        if marked <= sets || age > SETTLE {
            if marked != sets {
                let mark = format!("{sets}:{at}");
                let _ = state.edit_hash(shard.marks(), now, |marks| {
                    marks.insert(tenant.as_bytes().to_vec(), mark.into_bytes());
                });
            }
            let _ = state.edit_zset(shard.tenants(), now, |set| match next_in {
                None => {
                    set.remove(tenant);
                }
                Some(next) => set.insert(tenant, score(clock.saturating_add(next))),
            });
            return Ok(());
        }
        // A set is in flight: only ever lower the entry.
        let mut soon = clock.saturating_add(age.clamp(RETRY, SETTLE));
        if let Some(next) = next_in {
            soon = soon.min(clock.saturating_add(next));
        }
        let _ = state.edit_zset(shard.tenants(), now, |set| {
            if set.score(tenant).is_none_or(|at| score(soon) < at) {
                set.insert(tenant, score(soon));
            }
        });
        Ok(())
    }
}
