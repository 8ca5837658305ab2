//! The cross-tenant due index on Redis: the tenants with pending triggers
//! and the earliest due time of each, in the shards of
//! [`TriggerIndex`] (each under its own hash tag, outside every tenant's
//! slot), kept order-safe by three scripts (`scripts.rs`):
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
//! every shard of a group in one script: on one server the group is every
//! shard. On Redis Cluster a script may only touch one slot: there the
//! take runs once per shard (or the shards of one primary once the
//! adapter groups keys by node), the mark and the tenant's script stay two
//! steps in this order (as here), and the hint should travel as a sharded
//! `SPUBLISH` on the shard's wake channel (it carries the shard's tag), to
//! subscribers on the shard's primary.

use std::time::Duration;

use redis::Value;
use statehouse_domain::layout::{TriggerIndex, TriggerKeys};
use statehouse_domain::{ChangeKind, ChangeNotice, TenantId};
use statehouse_ports::{DueTenants, ErrorKind, StoreError};

use super::{bad_reply, next_due, text};
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
            async move { cmd.exec_async(&mut conn).await }
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
        let taken = scripts::run_shared(&self.conns, OP, label, |mut conn| {
            let cmd = scripts::evalsha(&TRIGGER_TAKE, &keys, (max.max(1), lease));
            async move { cmd.query_async(&mut conn).await }
        })
        .await;
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

    /// Files the tenant again after a claim or an ack that saw `sets` sets
    /// and its next due time.
    pub(super) async fn refile(
        &self,
        triggers: &TriggerKeys,
        sets: i64,
        next_due_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        const OP: &str = "trigger_refile";
        let shard = triggers.shard();
        let keys = [
            self.keys.raw(shard.tenants()).into_owned(),
            self.keys.raw(shard.marks()).into_owned(),
        ];
        let tenant = triggers.tenant().as_str();
        let next = next_due_in.map_or(-1, |next| i64::try_from(next.as_millis()).unwrap_or(i64::MAX));
        let refiled = scripts::run_shared(&self.conns, OP, shard.tenants(), |mut conn| {
            let cmd = scripts::evalsha(&TRIGGER_REFILE, &keys, (tenant, sets, next));
            async move { cmd.exec_async(&mut conn).await }
        })
        .await;
        self.naming_the_culprit(refiled, &[(shard.tenants(), "zset"), (shard.marks(), "hash")])
            .await
    }

    /// `result`, but a `WrongType` error names the key of `keys` (layout
    /// key, expected type) that holds another type, looked up with `TYPE`
    /// (a script names only one key to the error mapping). On this rare
    /// path the extra round trips cost nothing that matters.
    async fn naming_the_culprit<T>(
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
                .run(
                    error.op(),
                    key,
                    redis::cmd("TYPE").arg(raw.as_ref()).query_async(&mut conn),
                )
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
            let mut conn = self.conns.shared();
            let key = self.keys.raw(shard.tenants());
            let cmd = redis::cmd("ZREM").arg(key.as_ref()).arg(member).clone();
            self.conns
                .run(OP, shard.tenants(), cmd.exec_async(&mut conn))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_saturate() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
