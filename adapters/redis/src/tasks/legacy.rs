//! The migration from the layout before buckets (`{ns}:task:<id>`, one hash
//! tag per namespace) into the buckets (`{ns:bN}:task:<id>`).
//!
//! The two layouts are in different slots on Redis Cluster, so one task
//! moves in two atomic steps, in this order, under THE retry loop
//! (`RetryPolicy::run`):
//!
//! 1. read the legacy record and its TTL;
//! 2. a WATCH section on the bucketed record: write the legacy record there
//!    with the `TASK_WRITE` script (its update time as score, its remaining
//!    TTL) unless the bucket holds the task updated as late or later
//!    (`legacy_move`);
//! 3. a WATCH section on the legacy record: if it still holds the bytes
//!    read in 1, delete it and its entries in the legacy indexes (same
//!    legacy slot); if it changed meanwhile (a client of the old layout
//!    wrote it), start over (a conflict of the loop).
//!
//! Stopped between 2 and 3, the task is in both layouts with the same
//! update time; the next run finds it superseded and finishes step 3.

use statehouse_ports::{
    Attempt, KeyStream, LegacyMove, Optimistic, StoreError, TaskId, TaskIndex, TaskSpace, legacy_move,
};

use crate::RedisStore;
use crate::listing::Listing;
use crate::txn::{self, Decision};

const OP: &str = "migrate_legacy";

impl RedisStore {
    /// `legacy_ids`: THE listing of keys (`SCAN`, every primary of a
    /// cluster) of the legacy record keys, as ids. Any type: a key there
    /// that holds no string fails its move with `WrongType`, as in memory.
    pub(super) fn legacy_task_ids(&self, space: &TaskSpace) -> KeyStream {
        let keys = space.keys().clone();
        let pattern = keys.legacy().records();
        let listing = Listing {
            op: "legacy_ids",
            rpattern: self.keys.raw_pattern(&pattern),
            label: pattern,
            kind: None,
        };
        self.scan_stream(listing).filter_map(move |key| {
            keys.legacy()
                .id_of(&key)
                .filter(|id| TaskId::new(id.as_str()).is_ok())
        })
    }

    /// `migrate_legacy`: the three steps of the module documentation.
    pub(super) async fn migrate_legacy_task(
        &self,
        space: &TaskSpace,
        id: &TaskId,
    ) -> Result<LegacyMove, StoreError> {
        let legacy_key = space.keys().legacy().record(id.as_str());
        let mut migration = Migration {
            store: self,
            space,
            id,
            rlegacy: self.task_commands(space).legacy_record(id.as_str()),
            legacy_key: &legacy_key,
        };
        let (outcome, _) = space.policy().run(OP, &legacy_key, &mut migration).await?;
        Ok(outcome)
    }
}

/// The attempts of one task's move, for `RetryPolicy::run`.
struct Migration<'a> {
    store: &'a RedisStore,
    space: &'a TaskSpace,
    id: &'a TaskId,
    legacy_key: &'a str,
    rlegacy: String,
}

impl Optimistic for Migration<'_> {
    type Output = LegacyMove;

    async fn attempt(&mut self, _number: u32) -> Result<Attempt<LegacyMove>, StoreError> {
        let Self {
            store,
            space,
            id,
            legacy_key,
            ..
        } = *self;
        let rlegacy = self.rlegacy.as_str();
        // 1. The legacy record and its TTL, on the write endpoint.
        let mut conn = store.conns.shared();
        let mut read = redis::pipe();
        read.cmd("GET").arg(rlegacy).cmd("PTTL").arg(rlegacy);
        let (bytes, left): (Option<Vec<u8>>, i64) = store
            .conns
            .run(OP, legacy_key, read.query_async(&mut conn))
            .await?;
        let Some(bytes) = bytes else {
            return Ok(Attempt::Done(LegacyMove::Absent));
        };
        // A legacy record without a TTL (persisted by hand) gets the space's.
        let ttl_ms = u64::try_from(left)
            .ok()
            .filter(|left| *left > 0)
            .unwrap_or_else(|| space.ttl().as_millis());
        // 2. Into its bucket, unless the bucket's copy is as new.
        let key = space.keys().record(id.as_str());
        let moved = store
            .on_record(OP, space, &key, |current, _, rkey| {
                match legacy_move(OP, legacy_key, &bytes, current.as_deref())? {
                    None => Ok(Decision::Done(LegacyMove::Superseded)),
                    Some(record) => {
                        let old = current.as_deref().map(TaskIndex::of_stored).unwrap_or_default();
                        Ok(Decision::Commit(
                            store
                                .task_commands(space)
                                .write(rkey, &record, &bytes, &old, ttl_ms),
                            LegacyMove::Moved,
                        ))
                    }
                }
            })
            .await?;
        // 3. The legacy copy and its index entries go, if unchanged.
        let mut get = redis::cmd("GET");
        get.arg(rlegacy);
        let mut decide = |(current,): (Option<Vec<u8>>,)| -> Result<Decision<bool>, StoreError> {
            match current {
                None => Ok(Decision::Done(true)),
                Some(current) if current != bytes => Ok(Decision::Done(false)),
                Some(_) => Ok(Decision::Commit(
                    store
                        .task_commands(space)
                        .legacy_remove(rlegacy, id.as_str(), &bytes),
                    true,
                )),
            }
        };
        let removed = txn::optimistic(
            &store.conns,
            OP,
            legacy_key,
            &[rlegacy],
            &[get],
            space.policy(),
            &mut decide,
        )
        .await?;
        Ok(if removed.value {
            Attempt::Done(moved)
        } else {
            // Written again by a client of the old layout: move it again.
            Attempt::Conflict
        })
    }
}
