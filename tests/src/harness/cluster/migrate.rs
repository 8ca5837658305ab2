//! Moving a slot from one primary to another, as `redis-cli --cluster reshard` does.

use super::super::node::Role;
use super::{ClusterNode, RedisCluster};

/// Keys per `MIGRATE` of [`RedisCluster::migrate_slot`] (redis-cli's default pipeline is 10).
const MIGRATE_BATCH: usize = 10;
/// The `MIGRATE` timeout in milliseconds.
const MIGRATE_TIMEOUT_MS: u64 = 5_000;

/// A step of [`RedisCluster::migrate_slot_with`], passed to its hook right after it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationStep {
    /// `CLUSTER SETSLOT <slot> IMPORTING <source>` ran on the target: it accepts `ASKING` commands.
    Importing,
    /// `CLUSTER SETSLOT <slot> MIGRATING <target>` ran on the source: a key it lacks answers `ASK`.
    Migrating,
    /// One `MIGRATE … KEYS …` moved `keys` keys, `total` so far.
    Moved {
        /// Keys moved by this `MIGRATE`.
        keys: usize,
        /// Keys moved since the migration began.
        total: usize,
    },
    /// `CLUSTER SETSLOT <slot> NODE <target>` ran on the target: it owns the slot.
    AssignedOnTarget,
    /// The same ran on the source: it answers `MOVED` for the slot now.
    AssignedOnSource,
    /// The same ran on every other node: the migration is done.
    Done,
}

impl RedisCluster {
    /// Moves `slot` from primary `from` to primary `to` with the steps of a real resharding
    /// (`redis-cli --cluster reshard` does the same); see
    /// [`migrate_slot_with`](Self::migrate_slot_with). Returns the number of keys moved.
    ///
    /// # Panics
    ///
    /// As [`migrate_slot_with`](Self::migrate_slot_with).
    pub fn migrate_slot(&self, slot: u16, from: &ClusterNode, to: &ClusterNode) -> usize {
        self.migrate_slot_with(slot, from, to, |_| {})
    }

    /// Moves `slot` from primary `from` to primary `to`, calling `hook` after every step (see
    /// [`MigrationStep`]): `CLUSTER SETSLOT slot IMPORTING from` on `to`, `CLUSTER SETSLOT slot
    /// MIGRATING to` on `from`, then `CLUSTER GETKEYSINSLOT` + `MIGRATE … KEYS …` (10 keys each)
    /// until `from` has none left (keys written meanwhile included), then `CLUSTER SETSLOT slot NODE
    /// to` on `to`, on `from` and on every other running node. Returns the number of keys moved.
    ///
    /// While it runs, a client sees what it would see in production: `ASK` for keys already moved
    /// (or new), `TRYAGAIN` for a multi-key command whose keys are split, `MOVED` at the end.
    ///
    /// # Panics
    ///
    /// If `from` does not own the slot, `to` is not a primary, or a step fails (with every log).
    pub fn migrate_slot_with(
        &self,
        slot: u16,
        from: &ClusterNode,
        to: &ClusterNode,
        mut hook: impl FnMut(MigrationStep),
    ) -> usize {
        let owner = self.primary_for_slot(slot);
        if owner.id() != from.id() {
            self.fail(&format!(
                "cannot migrate slot {slot} from port {}: port {} owns it",
                from.port(),
                owner.port()
            ));
        }
        if from.id() == to.id() || to.try_role() != Ok(Role::Primary) {
            self.fail(&format!(
                "cannot migrate slot {slot} to port {}: not another primary",
                to.port()
            ));
        }
        let setslot = |node: &ClusterNode, state: &str, id: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
            if let Err(err) = node.query::<()>(&cmd) {
                self.fail(&format!(
                    "CLUSTER SETSLOT {slot} {state} {id} on port {} failed: {err}",
                    node.port()
                ));
            }
        };
        setslot(to, "IMPORTING", from.id());
        hook(MigrationStep::Importing);
        setslot(from, "MIGRATING", to.id());
        hook(MigrationStep::Migrating);

        let mut total = 0;
        loop {
            let keys: Vec<Vec<u8>> = match from.query(
                redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(MIGRATE_BATCH),
            ) {
                Ok(keys) => keys,
                Err(err) => self.fail(&format!("CLUSTER GETKEYSINSLOT {slot} failed: {err}")),
            };
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate
                .arg("127.0.0.1")
                .arg(to.port())
                .arg("")
                .arg(0)
                .arg(MIGRATE_TIMEOUT_MS);
            if let Some(password) = &self.password {
                migrate.arg("AUTH").arg(password);
            }
            migrate.arg("KEYS").arg(&keys);
            if let Err(err) = from.query::<redis::Value>(&migrate) {
                self.fail(&format!(
                    "MIGRATE of {} keys of slot {slot} failed: {err}",
                    keys.len()
                ));
            }
            total += keys.len();
            hook(MigrationStep::Moved {
                keys: keys.len(),
                total,
            });
        }

        setslot(to, "NODE", to.id());
        hook(MigrationStep::AssignedOnTarget);
        setslot(from, "NODE", to.id());
        hook(MigrationStep::AssignedOnSource);
        for node in &self.nodes {
            if node.id() != from.id() && node.id() != to.id() && node.is_running() {
                setslot(node, "NODE", to.id());
            }
        }
        hook(MigrationStep::Done);
        total
    }
}
