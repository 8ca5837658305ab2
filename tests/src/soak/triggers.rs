//! Triggers: `set` of new triggers, due in an hour (none fires during the run); the check that
//! every acknowledged trigger is pending after the run.

use std::time::Duration;

use statehouse::Statehouse;

use super::check::{read_back, read_items};
use super::ledger::{FamilyCheck, Items};
use super::task::{Outcome, Task};
use super::{Family, Op};

/// The action of every soak trigger.
const ACTION: &str = "soak";
/// Far beyond any run: no trigger becomes due.
const DELAY: Duration = Duration::from_secs(3_600);

/// Each task's own tenant.
fn tenant(task: usize) -> String {
    format!("t{task}")
}

impl Task {
    pub(super) async fn trigger_set(&mut self) {
        let n = self.written.triggers.next();
        let (tenant, id) = (tenant(self.id), format!("i{n}"));
        let triggers = self.handles.triggers.clone();
        let outcome = self
            .call(Op::TriggerSet, None, triggers.set(&tenant, ACTION, &id, DELAY))
            .await;
        self.written
            .triggers
            .record(n, matches!(outcome, Outcome::Done(Ok(()))));
    }
}

/// The check after the run: each task's tenant's pending triggers against what it set.
pub(super) async fn check(state: &Statehouse, written: Vec<(usize, Items)>) -> FamilyCheck {
    let found = read_items(state, written, |state, task, items| async move {
        let triggers = state.triggers();
        let tenant = tenant(task);
        let pending = read_back(&tenant, || triggers.list(&tenant)).await;
        let found = pending
            .iter()
            .filter(|trigger| trigger.action == ACTION)
            .filter_map(|trigger| trigger.id.strip_prefix('i')?.parse().ok())
            .collect();
        (format!("tenant {tenant}"), items, found)
    })
    .await;
    FamilyCheck::of_items(Family::Triggers, "triggers", &found)
}
