//! [`TriggerStore`] in memory: the same keys and steps as the Redis
//! adapter's scripts, each one section under the keyspace lock (atomic,
//! like a script), on the keyspace's clock (tokio time).

use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::layout::TenantKeys;
use statehouse_domain::{ActionName, TriggerId};
use statehouse_ports::{Claimed, ClaimedTrigger, PendingTrigger, StoreError, TriggerStore, millis_to_utc};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::store::State;

/// Milliseconds of a duration, saturating.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds as a sorted-set score (exact below 2^53).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn score(ms: i64) -> f64 {
    ms as f64
}

/// A score back as milliseconds.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn score_ms(score: f64) -> i64 {
    score as i64
}

/// The keys of a trigger step, their types checked (what every script
/// does before it writes).
struct Keys {
    due: String,
    claims: String,
}

fn checked(
    op: &'static str,
    state: &mut State,
    tenant: &TenantKeys,
    now: Instant,
    ids: &[&str],
) -> Result<Keys, StoreError> {
    let keys = Keys {
        due: tenant.triggers_due(),
        claims: tenant.trigger_claims(),
    };
    state
        .zset(&keys.due, now)
        .map_err(|()| StoreError::wrong_type(op, &keys.due))?;
    state
        .hash(&keys.claims, now)
        .map_err(|()| StoreError::wrong_type(op, &keys.claims))?;
    for id in ids {
        let key = tenant.triggers_of(id);
        state
            .zset(&key, now)
            .map_err(|()| StoreError::wrong_type(op, &key))?;
    }
    Ok(keys)
}

/// Removes one trigger (due entry, claim, by-id entry); whether it was set.
fn remove(state: &mut State, keys: &Keys, tenant: &TenantKeys, action: &str, id: &str, now: Instant) -> bool {
    let member = tenant.trigger_member(action, id);
    let existed = state
        .edit_zset(&keys.due, now, |due| due.remove(&member))
        .unwrap_or(false);
    let _ = state.edit_hash(&keys.claims, now, |claims| claims.remove(member.as_bytes()));
    let _ = state.edit_zset(&tenant.triggers_of(id), now, |members| members.remove(&member));
    existed
}

#[async_trait]
impl TriggerStore for MemoryStore {
    async fn set(
        &self,
        tenant: &str,
        action: &ActionName,
        id: &TriggerId,
        delay: Duration,
    ) -> Result<(), StoreError> {
        const OP: &str = "trigger_set";
        let tenant = TenantKeys::new(tenant);
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, &tenant, now, &[id.as_str()])?;
        let due = self.keyspace.clock_ms(now).saturating_add(millis(delay));
        let member = tenant.trigger_member(action.as_str(), id.as_str());
        let _ = state.edit_zset(&keys.due, now, |set| set.insert(&member, score(due)));
        let _ = state.edit_hash(&keys.claims, now, |claims| claims.remove(member.as_bytes()));
        let _ = state.edit_zset(&tenant.triggers_of(id.as_str()), now, |members| {
            members.insert(&member, 0.0);
        });
        Ok(())
    }

    async fn cancel(&self, tenant: &str, action: &ActionName, id: &TriggerId) -> Result<bool, StoreError> {
        const OP: &str = "trigger_cancel";
        let tenant = TenantKeys::new(tenant);
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, &tenant, now, &[id.as_str()])?;
        Ok(remove(
            &mut state,
            &keys,
            &tenant,
            action.as_str(),
            id.as_str(),
            now,
        ))
    }

    async fn cancel_all(&self, tenant: &str, id: &TriggerId) -> Result<usize, StoreError> {
        const OP: &str = "trigger_cancel_all";
        let tenant = TenantKeys::new(tenant);
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, &tenant, now, &[id.as_str()])?;
        let members: Vec<String> = state
            .zset(&tenant.triggers_of(id.as_str()), now)
            .ok()
            .flatten()
            .map(|set| set.iter().map(|(_, member)| member.to_owned()).collect())
            .unwrap_or_default();
        Ok(members
            .iter()
            .filter_map(|member| tenant.trigger_of_member(member))
            .filter(|(action, id)| remove(&mut state, &keys, &tenant, action, id, now))
            .count())
    }

    async fn list(&self, tenant: &str, only_due: bool) -> Result<Vec<PendingTrigger>, StoreError> {
        const OP: &str = "trigger_list";
        let tenant = TenantKeys::new(tenant);
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, &tenant, now, &[])?;
        let clock = self.keyspace.clock_ms(now);
        let entries: Vec<(f64, String)> = state
            .zset(&keys.due, now)
            .ok()
            .flatten()
            .map(|set| set.iter().map(|(at, member)| (at, member.to_owned())).collect())
            .unwrap_or_default();
        let claims = state
            .hash(&keys.claims, now)
            .ok()
            .flatten()
            .cloned()
            .unwrap_or_default();
        Ok(entries
            .into_iter()
            .filter(|(at, _)| !only_due || score_ms(*at) <= clock)
            .filter_map(|(at, member)| {
                let (action, id) = tenant.trigger_of_member(&member)?;
                Some(PendingTrigger {
                    action,
                    id,
                    due_at: millis_to_utc(score_ms(at)),
                    claimed: claims.contains_key(member.as_bytes()),
                })
            })
            .collect())
    }

    async fn claim(&self, tenant: &str, max: usize, lease: Duration) -> Result<Claimed, StoreError> {
        const OP: &str = "trigger_claim";
        let tenant = TenantKeys::new(tenant);
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, &tenant, now, &[])?;
        let clock = self.keyspace.clock_ms(now);
        let due: Vec<String> = state
            .zset(&keys.due, now)
            .ok()
            .flatten()
            .map(|set| {
                set.iter()
                    .take_while(|(at, _)| score_ms(*at) <= clock)
                    .take(max)
                    .map(|(_, member)| member.to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let until = score(clock.saturating_add(millis(lease)));
        let mut triggers = Vec::with_capacity(due.len());
        for member in due {
            let _ = state.edit_zset(&keys.due, now, |set| set.insert(&member, until));
            let token = state
                .edit_hash(&keys.claims, now, |claims| {
                    let token = claims
                        .get(b"#".as_slice())
                        .and_then(|old| std::str::from_utf8(old).ok()?.parse::<u64>().ok())
                        .unwrap_or(0)
                        + 1;
                    claims.insert(b"#".to_vec(), token.to_string().into_bytes());
                    claims.insert(member.as_bytes().to_vec(), token.to_string().into_bytes());
                    token
                })
                .unwrap_or(1);
            if let Some((action, id)) = tenant.trigger_of_member(&member) {
                triggers.push(ClaimedTrigger { action, id, token });
            }
        }
        let next_due_in = state
            .zset(&keys.due, now)
            .ok()
            .flatten()
            .and_then(|set| set.iter().next().map(|(at, _)| score_ms(at)))
            .map(|at| Duration::from_millis(u64::try_from(at.saturating_sub(clock)).unwrap_or(0)));
        Ok(Claimed {
            triggers,
            next_due_in,
        })
    }

    async fn ack(&self, tenant: &str, trigger: &ClaimedTrigger) -> Result<bool, StoreError> {
        const OP: &str = "trigger_ack";
        let tenant = TenantKeys::new(tenant);
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let keys = checked(OP, &mut state, &tenant, now, &[trigger.id.as_str()])?;
        let member = tenant.trigger_member(&trigger.action, &trigger.id);
        let held = state
            .hget(&keys.claims, member.as_bytes(), now)
            .ok()
            .flatten()
            .is_some_and(|token| token == trigger.token.to_string().as_bytes());
        if held {
            remove(&mut state, &keys, &tenant, &trigger.action, &trigger.id, now);
        }
        Ok(held)
    }
}
