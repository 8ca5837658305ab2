//! [`TriggerStore`] in memory: the same keys and steps as the Redis
//! adapter's scripts, each one section under the keyspace lock (atomic,
//! like a script), on the keyspace's clock (tokio time); the cross-tenant
//! due index in `index.rs`.

mod index;

use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::layout::{TriggerIndex, TriggerKeys};
use statehouse_domain::{ActionName, TriggerId};
use statehouse_ports::{
    Claimed, ClaimedTrigger, DueTenants, IndexedTenant, PendingTrigger, StoreError, TriggerStore,
    millis_to_utc,
};
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

/// A claimed trigger's entry in the claims hash, `<token>:<deliveries>`
/// (as the Redis scripts write it; a bare token, as older versions wrote
/// it, counts one delivery).
struct Claim {
    token: Option<u64>,
    deliveries: u32,
}

impl Claim {
    fn parse(held: &[u8]) -> Self {
        let text = std::str::from_utf8(held).unwrap_or_default();
        let (token, deliveries) = text.split_once(':').unwrap_or((text, "1"));
        Self {
            token: token.parse().ok(),
            deliveries: deliveries.parse().unwrap_or(1),
        }
    }

    fn text(&self) -> Vec<u8> {
        format!("{}:{}", self.token.unwrap_or(0), self.deliveries).into_bytes()
    }
}

/// The field of the claims hash counting the tenant's sets (no member can
/// be it: members hold a `:`).
const SETS: &[u8] = b"#sets";

/// What a claim or an ack of one tenant saw: its triggers' answers, the
/// tenant's next due time (ms from now) and its count of sets.
struct Seen<T> {
    answers: T,
    next_in: Option<i64>,
    sets: i64,
}

/// How long until the tenant's first trigger (or claimed trigger's lease)
/// is due, in ms of the store's clock at `clock`; `None` if it has none.
fn next_in(state: &mut State, keys: &TriggerKeys, now: Instant, clock: i64) -> Option<i64> {
    state
        .zset(keys.due(), now)
        .ok()
        .flatten()
        .and_then(|set| set.iter().next().map(|(at, _)| score_ms(at)))
        .map(|at| at.saturating_sub(clock).max(0))
}

/// The tenant's count of sets (field `#sets` of the claims hash).
fn sets(state: &mut State, keys: &TriggerKeys, now: Instant) -> i64 {
    state
        .hget(keys.claims(), SETS, now)
        .ok()
        .flatten()
        .and_then(|held| std::str::from_utf8(&held).ok()?.parse().ok())
        .unwrap_or(0)
}

/// A duration of `ms` milliseconds (never negative).
fn from_ms(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Checks the types of a trigger step's keys (what every script does
/// before it writes): the due set, the claims, the by-id sets of `ids`.
fn checked(
    op: &'static str,
    state: &mut State,
    keys: &TriggerKeys,
    now: Instant,
    ids: &[&str],
) -> Result<(), StoreError> {
    state
        .zset(keys.due(), now)
        .map_err(|()| StoreError::wrong_type(op, keys.due()))?;
    state
        .hash(keys.claims(), now)
        .map_err(|()| StoreError::wrong_type(op, keys.claims()))?;
    for id in ids {
        let key = keys.of_id(id);
        state
            .zset(&key, now)
            .map_err(|()| StoreError::wrong_type(op, &key))?;
    }
    Ok(())
}

/// Removes one trigger (due entry, claim, by-id entry); whether it was set.
fn remove(state: &mut State, keys: &TriggerKeys, action: &str, id: &str, now: Instant) -> bool {
    let member = keys.member(action, id);
    let existed = state
        .edit_zset(keys.due(), now, |due| due.remove(&member))
        .unwrap_or(false);
    let _ = state.edit_hash(keys.claims(), now, |claims| claims.remove(member.as_bytes()));
    let _ = state.edit_zset(&keys.of_id(id), now, |members| members.remove(&member));
    existed
}

impl MemoryStore {
    /// The claim step: at most `max` due triggers for `lease`.
    fn claim_seen(
        &self,
        keys: &TriggerKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Seen<Vec<ClaimedTrigger>>, StoreError> {
        const OP: &str = "trigger_claim";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        checked(OP, &mut state, keys, now, &[])?;
        let clock = self.keyspace.clock_ms(now);
        let due: Vec<String> = state
            .zset(keys.due(), now)
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
            let _ = state.edit_zset(keys.due(), now, |set| set.insert(&member, until));
            let (token, deliveries) = state
                .edit_hash(keys.claims(), now, |claims| {
                    let token = claims
                        .get(b"#".as_slice())
                        .and_then(|old| std::str::from_utf8(old).ok()?.parse::<u64>().ok())
                        .unwrap_or(0)
                        + 1;
                    let deliveries = claims
                        .get(member.as_bytes())
                        .map_or(1, |held| Claim::parse(held).deliveries.saturating_add(1));
                    claims.insert(b"#".to_vec(), token.to_string().into_bytes());
                    claims.insert(
                        member.as_bytes().to_vec(),
                        Claim {
                            token: Some(token),
                            deliveries,
                        }
                        .text(),
                    );
                    (token, deliveries)
                })
                .unwrap_or((1, 1));
            if let Some((action, id)) = keys.of_member(&member) {
                triggers.push(ClaimedTrigger {
                    action,
                    id,
                    token,
                    deliveries,
                });
            }
        }
        Ok(Seen {
            answers: triggers,
            next_in: next_in(&mut state, keys, now, clock),
            sets: sets(&mut state, keys, now),
        })
    }

    /// The ack step: each of `handled` removed if its token is the latest;
    /// whether each was held.
    fn ack_seen(
        &self,
        keys: &TriggerKeys,
        handled: &[ClaimedTrigger],
    ) -> Result<Seen<Vec<bool>>, StoreError> {
        const OP: &str = "trigger_ack";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        let ids: Vec<&str> = handled.iter().map(|t| t.id.as_str()).collect();
        checked(OP, &mut state, keys, now, &ids)?;
        let mut answers = Vec::with_capacity(handled.len());
        for trigger in handled {
            let member = keys.member(&trigger.action, &trigger.id);
            let held = state
                .hget(keys.claims(), member.as_bytes(), now)
                .ok()
                .flatten()
                .is_some_and(|held| Claim::parse(&held).token == Some(trigger.token));
            if held {
                remove(&mut state, keys, &trigger.action, &trigger.id, now);
            }
            answers.push(held);
        }
        let clock = self.keyspace.clock_ms(now);
        Ok(Seen {
            answers,
            next_in: next_in(&mut state, keys, now, clock),
            sets: sets(&mut state, keys, now),
        })
    }
}

#[async_trait]
impl TriggerStore for MemoryStore {
    async fn set(
        &self,
        keys: &TriggerKeys,
        action: &ActionName,
        id: &TriggerId,
        delay: Duration,
    ) -> Result<(), StoreError> {
        self.replicated("trigger_set", keys.due(), async {
            const OP: &str = "trigger_set";
            // The index first, as a step of its own (as on Redis).
            self.mark(keys, delay)?;
            let mut state = self.keyspace.lock();
            let now = Instant::now();
            checked(OP, &mut state, keys, now, &[id.as_str()])?;
            let due = self.keyspace.clock_ms(now).saturating_add(millis(delay));
            let member = keys.member(action.as_str(), id.as_str());
            let _ = state.edit_zset(keys.due(), now, |set| set.insert(&member, score(due)));
            let sets = sets(&mut state, keys, now).saturating_add(1);
            let _ = state.edit_hash(keys.claims(), now, |claims| {
                claims.remove(member.as_bytes());
                claims.insert(SETS.to_vec(), sets.to_string().into_bytes());
            });
            let _ = state.edit_zset(&keys.of_id(id.as_str()), now, |members| {
                members.insert(&member, 0.0);
            });
            Ok(())
        })
        .await
    }

    async fn cancel(
        &self,
        keys: &TriggerKeys,
        action: &ActionName,
        id: &TriggerId,
    ) -> Result<bool, StoreError> {
        self.replicated("trigger_cancel", keys.due(), async {
            const OP: &str = "trigger_cancel";
            let mut state = self.keyspace.lock();
            let now = Instant::now();
            checked(OP, &mut state, keys, now, &[id.as_str()])?;
            Ok(remove(&mut state, keys, action.as_str(), id.as_str(), now))
        })
        .await
    }

    async fn cancel_all(&self, keys: &TriggerKeys, id: &TriggerId) -> Result<usize, StoreError> {
        self.replicated("trigger_cancel_all", keys.due(), async {
            const OP: &str = "trigger_cancel_all";
            let mut state = self.keyspace.lock();
            let now = Instant::now();
            checked(OP, &mut state, keys, now, &[id.as_str()])?;
            let members: Vec<String> = state
                .zset(&keys.of_id(id.as_str()), now)
                .ok()
                .flatten()
                .map(|set| set.iter().map(|(_, member)| member.to_owned()).collect())
                .unwrap_or_default();
            Ok(members
                .iter()
                .filter_map(|member| keys.of_member(member))
                .filter(|(action, id)| remove(&mut state, keys, action, id, now))
                .count())
        })
        .await
    }

    async fn list(&self, keys: &TriggerKeys, only_due: bool) -> Result<Vec<PendingTrigger>, StoreError> {
        const OP: &str = "trigger_list";
        let mut state = self.keyspace.lock();
        let now = Instant::now();
        checked(OP, &mut state, keys, now, &[])?;
        let clock = self.keyspace.clock_ms(now);
        let entries: Vec<(f64, String)> = state
            .zset(keys.due(), now)
            .ok()
            .flatten()
            .map(|set| set.iter().map(|(at, member)| (at, member.to_owned())).collect())
            .unwrap_or_default();
        let claims = state
            .hash(keys.claims(), now)
            .ok()
            .flatten()
            .cloned()
            .unwrap_or_default();
        Ok(entries
            .into_iter()
            .filter(|(at, _)| !only_due || score_ms(*at) <= clock)
            .filter_map(|(at, member)| {
                let (action, id) = keys.of_member(&member)?;
                Some(PendingTrigger {
                    action,
                    id,
                    due_at: millis_to_utc(score_ms(at)),
                    claimed: claims.contains_key(member.as_bytes()),
                })
            })
            .collect())
    }

    async fn claim(&self, keys: &TriggerKeys, max: usize, lease: Duration) -> Result<Claimed, StoreError> {
        self.replicated("trigger_claim", keys.due(), async {
            let seen = self.claim_seen(keys, max, lease)?;
            Ok(Claimed {
                triggers: seen.answers,
                next_due_in: seen.next_in.map(from_ms),
            })
        })
        .await
    }

    async fn ack(&self, keys: &TriggerKeys, trigger: &ClaimedTrigger) -> Result<bool, StoreError> {
        self.replicated("trigger_ack", keys.due(), async {
            let seen = self.ack_seen(keys, std::slice::from_ref(trigger))?;
            Ok(seen.answers.first() == Some(&true))
        })
        .await
    }

    async fn take_due(
        &self,
        index: &TriggerIndex,
        max: usize,
        lease: Duration,
    ) -> Result<DueTenants, StoreError> {
        self.replicated("trigger_take", "", async { self.take(index, max, lease) })
            .await
    }

    async fn indexed(&self, index: &TriggerIndex, limit: usize) -> Result<Vec<IndexedTenant>, StoreError> {
        self.indexed_tenants(index, limit)
    }

    async fn claim_indexed(
        &self,
        keys: &TriggerKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        self.replicated("trigger_claim", keys.due(), async {
            let seen = self.claim_seen(keys, max, lease)?;
            // Some but not all of a batch: the caller's ack files the tenant.
            if seen.answers.is_empty() || seen.answers.len() >= max {
                self.refile(keys, seen.sets, seen.next_in)?;
            }
            Ok(Claimed {
                triggers: seen.answers,
                next_due_in: seen.next_in.map(from_ms),
            })
        })
        .await
    }

    async fn ack_indexed(&self, keys: &TriggerKeys, handled: &[ClaimedTrigger]) -> Result<usize, StoreError> {
        self.replicated("trigger_ack", keys.due(), async {
            if handled.is_empty() {
                return Ok(0);
            }
            let seen = self.ack_seen(keys, handled)?;
            self.refile(keys, seen.sets, seen.next_in)?;
            Ok(seen.answers.iter().filter(|held| **held).count())
        })
        .await
    }
}
