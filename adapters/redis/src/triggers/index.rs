//! The cross-tenant due index on Redis: the tenants with pending triggers
//! and the earliest due time of each, in the shards of
//! [`TriggerIndex`] (each under its own hash tag, outside every tenant's
//! slot), kept order-safe by three scripts (`scripts/`):
//!
//! - `TRIGGER_MARK`, the first step of a `set`, before the tenant's own
//!   script: the entry can only move earlier, the mark count goes up, and
//!   a new earliest entry of the shard publishes the wake-up hint;
//! - `TRIGGER_TAKE`: due entries of every shard, earliest first, moved to
//!   the end of the lease;
//! - `TRIGGER_REFILE`, after a claim or an ack of the tenant: the entry
//!   moves to the tenant's next due time only if that claim or ack counted
//!   every marked set (else it is looked at again soon).
//!
//! Each is one script on one shard's slot except the take, which reads
//! every shard in one script on one server. On Redis Cluster a script may
//! only touch one slot: there the take is one script per shard, all in one
//! pipeline (each shard taking its share of the round); the mark and the
//! tenant's script are two steps in this order everywhere. The hint is a
//! `PUBLISH` from the mark script, which a cluster forwards to every node,
//! so the change feed's subscription on any primary hears it. (Later, a
//! take per primary, its shards in one script with `allow-cross-slot-keys`,
//! and a sharded `SPUBLISH` on the shard's wake channel, which carries the
//! shard's tag, heard on the shard's primary, would send less.)

use std::time::Duration;

use redis::{Cmd, Value};
use statehouse_domain::layout::{TriggerIndex, TriggerKeys};
use statehouse_domain::{ChangeKind, ChangeNotice, TenantId};
use statehouse_ports::{DueTenants, ErrorKind, IndexedTenant, StoreError, millis_to_utc};

use super::{bad_reply, int, next_due, text};
use crate::RedisStore;
use crate::scripts::{self, TRIGGER_MARK, TRIGGER_REFILE, TRIGGER_TAKE};

/// Milliseconds of `duration`, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl RedisStore {
    /// Files the tenant in its shard at now + `delay` (unless earlier
    /// already) and counts the mark: the first step of `set`.
    pub(super) async fn mark(&self, triggers: &TriggerKeys, delay: Duration) -> Result<(), StoreError> {
        const OP: &str = "trigger_mark";
        let shard = triggers.shard();
        let keys = [
            self.keys.raw(shard.tenants()).into_owned(),
            self.keys.raw(shard.marks()).into_owned(),
        ];
        let channel = self.keys.change_channel(shard.wake());
        let hint = ChangeNotice {
            kind: ChangeKind::Set,
            version: None,
        }
        .to_json();
        let tenant = triggers.tenant().as_str();
        let delay = millis(delay);
        let marked = scripts::run_shared(&self.conns, OP, shard.tenants(), |mut conn| {
            let cmd = scripts::evalsha(&TRIGGER_MARK, &keys, (tenant, delay, &channel, &hint));
            async move { conn.query::<()>(&cmd).await }
        })
        .await;
        self.naming_the_culprit(marked, &[(shard.tenants(), "zset"), (shard.marks(), "hash")])
            .await
    }

    /// Takes up to `max` due tenants of every shard for `lease`.
    pub(super) async fn take(
        &self,
        index: &TriggerIndex,
        max: usize,
        lease: Duration,
    ) -> Result<DueTenants, StoreError> {
        const OP: &str = "trigger_take";
        let Some(first) = index.shards().first() else {
            return Ok(DueTenants::default());
        };
        let label = first.tenants();
        let keys: Vec<String> = index
            .shards()
            .iter()
            .map(|shard| self.keys.raw(shard.tenants()).into_owned())
            .collect();
        let lease = millis(lease).max(1);
        let taken = if self.conns.is_cluster() {
            // One slot per script: a take per shard, all in one pipeline
            // (each routed to its shard's primary), each taking its share.
            let share = max.max(1).div_ceil(keys.len());
            scripts::run_shared(&self.conns, OP, label, |mut conn| {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.add_command(scripts::evalsha(
                        &TRIGGER_TAKE,
                        std::slice::from_ref(key),
                        (share, lease),
                    ));
                }
                async move { pipe.query_async::<Vec<Vec<Value>>>(&mut conn).await }
            })
            .await
            .map(merge_takes)
        } else {
            scripts::run_shared(&self.conns, OP, label, |mut conn| {
                let cmd = scripts::evalsha(&TRIGGER_TAKE, &keys, (max.max(1), lease));
                async move { conn.query(&cmd).await }
            })
            .await
        };
        let shards: Vec<(&str, &str)> = index
            .shards()
            .iter()
            .map(|shard| (shard.tenants(), "zset"))
            .collect();
        let reply: Vec<Value> = self.naming_the_culprit(taken, &shards).await?;
        let [next, members @ ..] = reply.as_slice() else {
            return Err(bad_reply(OP, label));
        };
        let next_due_in = next_due(next).ok_or_else(|| bad_reply(OP, label))?;
        let mut tenants = Vec::with_capacity(members.len());
        for member in members {
            let member = text(member).ok_or_else(|| bad_reply(OP, label))?;
            match TenantId::new(&member) {
                Ok(tenant) => tenants.push(tenant),
                // Not a tenant this layout filed: pruned, not fatal.
                Err(_) => self.forget(index, &member).await?,
            }
        }
        Ok(DueTenants { tenants, next_due_in })
    }

    /// The first `limit` entries of every shard, merged earliest first and
    /// cut to `limit`: a `ZRANGE … WITHSCORES` per shard in one pipeline
    /// (on a cluster, each routed to its shard's primary).
    pub(super) async fn indexed_tenants(
        &self,
        index: &TriggerIndex,
        limit: usize,
    ) -> Result<Vec<IndexedTenant>, StoreError> {
        const OP: &str = "trigger_indexed";
        let Some(first) = index.shards().first() else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let last = i64::try_from(limit).unwrap_or(i64::MAX).saturating_sub(1);
        let mut pipe = redis::pipe();
        for shard in index.shards() {
            pipe.cmd("ZRANGE")
                .arg(self.keys.raw(shard.tenants()).as_ref())
                .arg(0)
                .arg(last)
                .arg("WITHSCORES");
        }
        let mut conn = self.conns.shared();
        let read = self
            .conns
            .run(
                OP,
                first.tenants(),
                pipe.query_async::<Vec<Vec<(Vec<u8>, f64)>>>(&mut conn),
            )
            .await;
        let shards: Vec<(&str, &str)> = index
            .shards()
            .iter()
            .map(|shard| (shard.tenants(), "zset"))
            .collect();
        let replies = self.naming_the_culprit(read, &shards).await?;
        let mut entries: Vec<(i64, String)> = replies
            .into_iter()
            .flatten()
            .map(|(tenant, at)| (score_ms(at), String::from_utf8_lossy(&tenant).into_owned()))
            .collect();
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

    /// The refile script's command for the tenant after a claim or an ack
    /// that saw `sets` sets and its next due time.
    pub(super) fn refile_cmd(&self, triggers: &TriggerKeys, sets: i64, next_due_in: Option<Duration>) -> Cmd {
        let shard = triggers.shard();
        let (tenants, marks) = (self.keys.raw(shard.tenants()), self.keys.raw(shard.marks()));
        let next = next_due_in.map_or(-1, |next| i64::try_from(next.as_millis()).unwrap_or(i64::MAX));
        scripts::evalsha(
            &TRIGGER_REFILE,
            &[tenants.as_ref(), marks.as_ref()],
            (triggers.tenant().as_str(), sets, next),
        )
    }

    /// Files the tenant again after a claim or an ack that saw `sets` sets
    /// and its next due time.
    pub(super) async fn refile(
        &self,
        triggers: &TriggerKeys,
        sets: i64,
        next_due_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut refiles = redis::pipe();
        refiles.add_command(self.refile_cmd(triggers, sets, next_due_in));
        self.refile_all(&refiles, std::iter::once(triggers)).await
    }

    /// Runs `refiles`, the refile commands of `tenants` (one pipeline),
    /// replies ignored.
    pub(super) async fn refile_all<'k>(
        &self,
        refiles: &redis::Pipeline,
        tenants: impl Iterator<Item = &'k TriggerKeys> + Clone,
    ) -> Result<(), StoreError> {
        const OP: &str = "trigger_refile";
        let Some(first) = tenants.clone().next() else {
            return Ok(());
        };
        if refiles.is_empty() {
            return Ok(());
        }
        let refiled = scripts::run_shared(&self.conns, OP, first.shard().tenants(), |mut conn| async move {
            refiles.exec_async(&mut conn).await
        })
        .await;
        if refiled.is_ok() {
            return refiled;
        }
        let shards: Vec<(&str, &str)> = tenants
            .flat_map(|t| [(t.shard().tenants(), "zset"), (t.shard().marks(), "hash")])
            .collect();
        self.naming_the_culprit(refiled, &shards).await
    }

    /// `result`, but a `WrongType` error names the key of `keys` (layout
    /// key, expected type) that holds another type, looked up with `TYPE`
    /// (a script names only one key to the error mapping). On this rare
    /// path the extra round trips cost nothing that matters.
    pub(super) async fn naming_the_culprit<T>(
        &self,
        result: Result<T, StoreError>,
        keys: &[(&str, &str)],
    ) -> Result<T, StoreError> {
        let error = match result {
            Err(error) if error.kind() == ErrorKind::WrongType => error,
            other => return other,
        };
        for (key, expected) in keys {
            let mut conn = self.conns.shared();
            let raw = self.keys.raw(key);
            let kind: String = self
                .conns
                .run(error.op(), key, conn.query(redis::cmd("TYPE").arg(raw.as_ref())))
                .await?;
            if kind != "none" && kind != *expected {
                return Err(StoreError::wrong_type(error.op(), *key));
            }
        }
        Err(error)
    }

    /// Removes a member that names no tenant from every shard.
    async fn forget(&self, index: &TriggerIndex, member: &str) -> Result<(), StoreError> {
        const OP: &str = "trigger_take";
        for shard in index.shards() {
            let (mut conn, acks) = self.conns.writer();
            let key = self.keys.raw(shard.tenants());
            let cmd = redis::cmd("ZREM").arg(key.as_ref()).arg(member).clone();
            self.conns
                .run_write(acks, OP, shard.tenants(), conn.query::<()>(&cmd))
                .await?;
        }
        Ok(())
    }
}

/// A sorted-set score (ms) as an integer (scores of the index are whole
/// milliseconds, exact below 2^53).
#[allow(clippy::cast_possible_truncation)]
fn score_ms(score: f64) -> i64 {
    score as i64
}

/// The replies of takes of single shards as one: the earliest next due
/// time of any (`-1` if none has one), then every tenant taken.
fn merge_takes(replies: Vec<Vec<Value>>) -> Vec<Value> {
    let mut next = -1;
    let mut merged = vec![Value::Int(-1)];
    for reply in replies {
        let mut reply = reply.into_iter();
        if let Some(left) = reply.next().as_ref().and_then(int).filter(|left| *left >= 0) {
            next = if next < 0 { left } else { next.min(left) };
        }
        merged.extend(reply);
    }
    merged[0] = Value::Int(next);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_of_single_shards_merge_into_one_reply() {
        let member = |m: &str| Value::BulkString(m.as_bytes().to_vec());
        let merged = merge_takes(vec![
            vec![Value::Int(-1)],
            vec![Value::Int(700), member("a")],
            vec![Value::Int(20), member("b"), member("c")],
        ]);
        assert_eq!(merged, [Value::Int(20), member("a"), member("b"), member("c")]);
        assert_eq!(merge_takes(vec![vec![Value::Int(-1)]]), [Value::Int(-1)]);
    }

    #[test]
    fn milliseconds_saturate() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
