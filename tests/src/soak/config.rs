//! Config: `update` of each task's own entry (each a new version, through a compare-and-set); the
//! check of each entry's version against the updates after the run.

use statehouse::Statehouse;

use super::check::read_back;
use super::engine::Shared;
use super::ledger::{CounterCheck, FamilyCheck};
use super::task::{Outcome, Task};
use super::{Family, Op};

/// Each task's own entry.
fn entry(task: usize) -> String {
    format!("t{task}")
}

impl Task {
    pub(super) async fn config_update(&mut self) {
        let c = self.id;
        let name = entry(c);
        self.next_value += 1;
        let value = self.next_value;
        let acknowledged_before = self.shared.config.attempt(c);
        let config = self.handles.config.clone();
        if let Outcome::Done(Ok(version)) = self
            .call(Op::ConfigUpdate, None, config.update(&name, &value))
            .await
        {
            self.shared.config.acknowledge(c);
            let attempted_after = self.shared.config.attempted(c);
            let what = format!("config update {name}");
            self.check_counter(&what, version, acknowledged_before + 1, attempted_after);
        }
    }
}

/// The check after the run: each entry's version (one per update) against its updates, through a
/// fresh config store (nothing cached).
pub(super) async fn check(state: &Statehouse, shared: &Shared) -> (FamilyCheck, Vec<CounterCheck>) {
    let config = state.config();
    let mut counters = Vec::new();
    for c in 0..shared.config.len() {
        let name = entry(c);
        let entry = read_back(&name, || config.fetch_versioned::<u64>(&name)).await;
        let version = entry.map_or(0, |entry| entry.version);
        counters.push(
            shared
                .config
                .check(Family::Config, c, format!("config {name}"), version),
        );
    }
    (
        FamilyCheck::of_counters(Family::Config, "versions", &counters),
        counters,
    )
}
