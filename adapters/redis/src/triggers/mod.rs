//! [`TriggerStore`] on Redis: a tenant's triggers are a sorted set by due
//! time, claimed and acknowledged by Lua scripts (`scripts/`), each one
//! atomic step on the tenant's slot, on the server's clock (`TIME`); the
//! cross-tenant due index (its shards, the mark of a `set`, the take and
//! the refile) is in `index.rs`.
//!
//! No keyspace notifications and no blocking command: a listener asks
//! `claim` (or the index's `take_due`), which also says how long until the
//! next trigger, and sleeps that long (see the `Triggers` facade).

mod index;

use std::time::Duration;

use async_trait::async_trait;
use redis::{Cmd, Value};
use statehouse_domain::layout::{TriggerIndex, TriggerKeys};
use statehouse_domain::{ActionName, TriggerId};
use statehouse_ports::{
    Claimed, ClaimedTrigger, DueTenants, IndexedTenant, PendingTrigger, StoreError, TriggerStore,
    millis_to_utc,
};

use crate::RedisStore;
use crate::scripts::{self, TRIGGER_ACK, TRIGGER_CANCEL, TRIGGER_CLAIM, TRIGGER_LIST, TRIGGER_SET};

/// What a claim or an ack of one tenant saw: its triggers' answers, the
/// tenant's next due time and its count of sets (for the due index).
struct Seen<T> {
    answers: T,
    next_due_in: Option<Duration>,
    sets: i64,
}

fn bad_reply(op: &'static str, key: &str) -> StoreError {
    StoreError::Operation {
        op,
        key: key.to_owned(),
        source: "unexpected reply from a trigger script".into(),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// The text of a bulk string, borrowed.
fn str_of(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        _ => None,
    }
}

/// The `next due in ms or -1` of a script's reply.
fn next_due(value: &Value) -> Option<Option<Duration>> {
    Some(u64::try_from(int(value)?).ok().map(Duration::from_millis))
}

/// A claim script's reply: `{next due in ms or -1, sets, member, token,
/// deliveries, …}`.
fn claimed_of(triggers: &TriggerKeys, reply: &[Value]) -> Result<Seen<Vec<ClaimedTrigger>>, StoreError> {
    const OP: &str = "trigger_claim";
    let key = triggers.due();
    let [next, sets, claims @ ..] = reply else {
        return Err(bad_reply(OP, key));
    };
    let next_due_in = next_due(next).ok_or_else(|| bad_reply(OP, key))?;
    let sets = int(sets).ok_or_else(|| bad_reply(OP, key))?;
    let mut claimed = Vec::with_capacity(claims.len() / 3);
    for row in claims.chunks(3) {
        let [member, token, deliveries] = row else {
            return Err(bad_reply(OP, key));
        };
        let member = str_of(member).ok_or_else(|| bad_reply(OP, key))?;
        let token = int(token).and_then(|t| u64::try_from(t).ok());
        let deliveries = int(deliveries).and_then(|d| u32::try_from(d).ok());
        // A member this layout did not write is skipped, not fatal.
        if let (Some((action, id)), Some(token), Some(deliveries)) =
            (triggers.of_member(member), token, deliveries)
        {
            claimed.push(ClaimedTrigger {
                action,
                id,
                token,
                deliveries,
            });
        }
    }
    Ok(Seen {
        answers: claimed,
        next_due_in,
        sets,
    })
}

/// An ack script's reply for `count` triggers: `{next due in ms or -1,
/// sets, held, held, …}`; how many were held. A filing-only claim (`max`
/// 0) answers `{next, sets}`: count 0.
fn acked_of(triggers: &TriggerKeys, reply: &[Value], count: usize) -> Result<Seen<usize>, StoreError> {
    const OP: &str = "trigger_ack";
    let key = triggers.due();
    let [next, sets, held @ ..] = reply else {
        return Err(bad_reply(OP, key));
    };
    if held.len() != count {
        return Err(bad_reply(OP, key));
    }
    Ok(Seen {
        answers: held.iter().filter(|held| int(held) == Some(1)).count(),
        next_due_in: next_due(next).ok_or_else(|| bad_reply(OP, key))?,
        sets: int(sets).ok_or_else(|| bad_reply(OP, key))?,
    })
}

impl RedisStore {
    /// The prefixed due set, claims hash and the by-id sets of `ids` of a
    /// tenant.
    fn trigger_keys<'i>(
        &self,
        triggers: &TriggerKeys,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Vec<String> {
        let mut keys = vec![
            self.keys.raw(triggers.due()).into_owned(),
            self.keys.raw(triggers.claims()).into_owned(),
        ];
        keys.extend(
            ids.into_iter()
                .map(|id| self.keys.raw(&triggers.of_id(id)).into_owned()),
        );
        keys
    }

    /// The claim script: at most `max` due triggers for `lease`.
    async fn claim_seen(
        &self,
        triggers: &TriggerKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Seen<Vec<ClaimedTrigger>>, StoreError> {
        const OP: &str = "trigger_claim";
        let key = triggers.due();
        let lease = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let cmd = self.claim_cmd(triggers, max, lease);
        let reply: Vec<Value> = scripts::run_shared(&self.conns, OP, key, |mut conn| {
            let cmd = &cmd;
            async move { conn.query(cmd).await }
        })
        .await?;
        claimed_of(triggers, &reply)
    }

    /// The claim script's command: at most `max` due triggers of the
    /// tenant for `lease` (ms).
    fn claim_cmd(&self, triggers: &TriggerKeys, max: usize, lease: u64) -> Cmd {
        let (due, claims) = (self.keys.raw(triggers.due()), self.keys.raw(triggers.claims()));
        scripts::evalsha(&TRIGGER_CLAIM, &[due.as_ref(), claims.as_ref()], (max, lease))
    }

    /// The ack script's command for `handled` of the tenant.
    fn ack_cmd(&self, triggers: &TriggerKeys, handled: &[ClaimedTrigger]) -> Cmd {
        let (due, claims) = (self.keys.raw(triggers.due()), self.keys.raw(triggers.claims()));
        // Sized for every argument up front (an id's key is about as long
        // as the due set's plus the id; a token at most 20 digits).
        let per_trigger: usize = handled
            .iter()
            .map(|t| due.len() + 2 * t.id.len() + t.action.len() + 24)
            .sum();
        let mut cmd = Cmd::with_capacity(
            4 + 3 * handled.len(),
            "EVALSHA".len() + 40 + 4 + due.len() + claims.len() + per_trigger,
        );
        cmd.arg("EVALSHA")
            .arg(TRIGGER_ACK.get_hash())
            .arg(2 + handled.len())
            .arg(due.as_ref())
            .arg(claims.as_ref());
        for trigger in handled {
            cmd.arg(self.keys.raw(&triggers.of_id(&trigger.id)).as_ref());
        }
        for trigger in handled {
            cmd.arg(triggers.member(&trigger.action, &trigger.id))
                .arg(trigger.token);
        }
        cmd
    }

    /// Runs `pipe`, one script per tenant of `tenants`, on the shared
    /// connection; a `WrongType` error names the tenant's key that holds
    /// another type.
    async fn run_round(
        &self,
        op: &'static str,
        pipe: &redis::Pipeline,
        tenants: impl Iterator<Item = &TriggerKeys> + Clone,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let Some(first) = tenants.clone().next() else {
            return Ok(Vec::new());
        };
        let replies = scripts::run_shared(&self.conns, op, first.due(), |mut conn| async move {
            pipe.query_async::<Vec<Vec<Value>>>(&mut conn).await
        })
        .await;
        if replies.is_ok() {
            return replies;
        }
        let keys: Vec<(&str, &str)> = tenants
            .flat_map(|t| [(t.due(), "zset"), (t.claims(), "hash")])
            .collect();
        self.naming_the_culprit(replies, &keys).await
    }

    /// The ack script: each of `handled` removed if its token is the
    /// latest; how many were held.
    async fn ack_seen(
        &self,
        triggers: &TriggerKeys,
        handled: &[ClaimedTrigger],
    ) -> Result<Seen<usize>, StoreError> {
        const OP: &str = "trigger_ack";
        let cmd = self.ack_cmd(triggers, handled);
        let reply: Vec<Value> = scripts::run_shared(&self.conns, OP, triggers.due(), |mut conn| {
            let cmd = &cmd;
            async move { conn.query(cmd).await }
        })
        .await?;
        acked_of(triggers, &reply, handled.len())
    }
}

#[async_trait]
impl TriggerStore for RedisStore {
    async fn set(
        &self,
        triggers: &TriggerKeys,
        action: &ActionName,
        id: &TriggerId,
        delay: Duration,
    ) -> Result<(), StoreError> {
        const OP: &str = "trigger_set";
        // The index first: an entry without a trigger is harmless (pruned
        // by a claimer), a trigger without an entry would wait unseen.
        // A mark short of replicas was applied: the trigger is set all the
        // same, then the shortfall reported.
        let mut shortfall = crate::conn::Shortfall::none();
        shortfall.keep(self.mark(triggers, delay).await)?;
        let keys = self.trigger_keys(triggers, [id.as_str()]);
        let member = triggers.member(action.as_str(), id.as_str());
        let delay = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let set = scripts::run_shared(&self.conns, OP, triggers.due(), |mut conn| {
            let cmd = scripts::evalsha(&TRIGGER_SET, &keys, (&member, delay));
            async move { conn.query::<()>(&cmd).await }
        })
        .await;
        shortfall.after(set)
    }

    async fn cancel(
        &self,
        triggers: &TriggerKeys,
        action: &ActionName,
        id: &TriggerId,
    ) -> Result<bool, StoreError> {
        const OP: &str = "trigger_cancel";
        let keys = self.trigger_keys(triggers, [id.as_str()]);
        let member = triggers.member(action.as_str(), id.as_str());
        let removed: i64 = scripts::run_shared(&self.conns, OP, triggers.due(), |mut conn| {
            let cmd = scripts::evalsha(&TRIGGER_CANCEL, &keys, &member);
            async move { conn.query(&cmd).await }
        })
        .await?;
        Ok(removed > 0)
    }

    async fn cancel_all(&self, triggers: &TriggerKeys, id: &TriggerId) -> Result<usize, StoreError> {
        const OP: &str = "trigger_cancel_all";
        let key = triggers.of_id(id.as_str());
        let keys = self.trigger_keys(triggers, [id.as_str()]);
        let removed: usize = scripts::run_shared(&self.conns, OP, &key, |mut conn| {
            let cmd = scripts::evalsha(&TRIGGER_CANCEL, &keys, Vec::<String>::new());
            async move { conn.query(&cmd).await }
        })
        .await?;
        Ok(removed)
    }

    async fn list(&self, triggers: &TriggerKeys, only_due: bool) -> Result<Vec<PendingTrigger>, StoreError> {
        const OP: &str = "trigger_list";
        let key = triggers.due();
        let keys = self.trigger_keys(triggers, []);
        let flag = if only_due { "1" } else { "0" };
        let reply: Vec<Value> = scripts::run_shared_read(&self.conns, OP, key, |mut conn| {
            let cmd = scripts::evalsha(&TRIGGER_LIST, &keys, flag);
            async move { conn.query(&cmd).await }
        })
        .await?;
        reply
            .chunks(3)
            .map(|row| {
                let [member, at, claimed] = row else {
                    return Err(bad_reply(OP, key));
                };
                let member = text(member).ok_or_else(|| bad_reply(OP, key))?;
                let (action, id) = triggers.of_member(&member).ok_or_else(|| bad_reply(OP, key))?;
                Ok(PendingTrigger {
                    action,
                    id,
                    due_at: millis_to_utc(int(at).ok_or_else(|| bad_reply(OP, key))?),
                    claimed: int(claimed) == Some(1),
                })
            })
            .collect()
    }

    async fn claim(
        &self,
        triggers: &TriggerKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        let seen = self.claim_seen(triggers, max, lease).await?;
        Ok(Claimed {
            triggers: seen.answers,
            next_due_in: seen.next_due_in,
        })
    }

    async fn ack(&self, triggers: &TriggerKeys, trigger: &ClaimedTrigger) -> Result<bool, StoreError> {
        let seen = self.ack_seen(triggers, std::slice::from_ref(trigger)).await?;
        Ok(seen.answers == 1)
    }

    async fn take_due(
        &self,
        index: &TriggerIndex,
        max: usize,
        lease: Duration,
    ) -> Result<DueTenants, StoreError> {
        self.take(index, max, lease).await
    }

    async fn indexed(&self, index: &TriggerIndex, limit: usize) -> Result<Vec<IndexedTenant>, StoreError> {
        self.indexed_tenants(index, limit).await
    }

    async fn claim_indexed(
        &self,
        triggers: &TriggerKeys,
        max: usize,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        let seen = self.claim_seen(triggers, max, lease).await?;
        // Some but not all of a batch: the caller's ack files the tenant.
        if seen.answers.is_empty() || seen.answers.len() >= max {
            self.refile(triggers, seen.sets, seen.next_due_in).await?;
        }
        Ok(Claimed {
            triggers: seen.answers,
            next_due_in: seen.next_due_in,
        })
    }

    async fn ack_indexed(
        &self,
        triggers: &TriggerKeys,
        handled: &[ClaimedTrigger],
    ) -> Result<usize, StoreError> {
        if handled.is_empty() {
            return Ok(0);
        }
        let seen = self.ack_seen(triggers, handled).await?;
        self.refile(triggers, seen.sets, seen.next_due_in).await?;
        Ok(seen.answers)
    }

    async fn claim_round(
        &self,
        tenants: &[TriggerKeys],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        const OP: &str = "trigger_claim";
        let lease = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut claims = redis::pipe();
        for triggers in tenants {
            claims.add_command(self.claim_cmd(triggers, max, lease));
        }
        let replies = self.run_round(OP, &claims, tenants.iter()).await?;
        if replies.len() != tenants.len() {
            return Err(bad_reply(OP, tenants.first().map_or("", TriggerKeys::due)));
        }
        let mut claimed = Vec::with_capacity(tenants.len());
        let (mut refiles, mut refiled) = (redis::pipe(), Vec::new());
        for (triggers, reply) in tenants.iter().zip(&replies) {
            let seen = claimed_of(triggers, reply)?;
            // Some but not all of a batch: the ack files the tenant.
            if seen.answers.is_empty() || seen.answers.len() >= max {
                refiles.add_command(self.refile_cmd(triggers, seen.sets, seen.next_due_in));
                refiled.push(triggers);
            }
            claimed.push(Claimed {
                triggers: seen.answers,
                next_due_in: seen.next_due_in,
            });
        }
        self.refile_all(&refiles, refiled.iter().copied()).await?;
        Ok(claimed)
    }

    async fn ack_round(&self, acks: &[(TriggerKeys, Vec<ClaimedTrigger>)]) -> Result<usize, StoreError> {
        const OP: &str = "trigger_ack";
        let mut scripts = redis::pipe();
        for (triggers, handled) in acks {
            scripts.add_command(if handled.is_empty() {
                self.claim_cmd(triggers, 0, 1)
            } else {
                self.ack_cmd(triggers, handled)
            });
        }
        let replies = self
            .run_round(OP, &scripts, acks.iter().map(|(triggers, _)| triggers))
            .await?;
        if replies.len() != acks.len() {
            return Err(bad_reply(OP, acks.first().map_or("", |(t, _)| t.due())));
        }
        let mut refiles = redis::pipe();
        let mut held = 0;
        for ((triggers, handled), reply) in acks.iter().zip(&replies) {
            let seen = acked_of(triggers, reply, handled.len())?;
            held += seen.answers;
            refiles.add_command(self.refile_cmd(triggers, seen.sets, seen.next_due_in));
        }
        self.refile_all(&refiles, acks.iter().map(|(triggers, _)| triggers))
            .await?;
        Ok(held)
    }
}
