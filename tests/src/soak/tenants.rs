//! Tenants: `increment` of a field of shared users of the tenant `soak` (a script); the check of
//! each field against the increments after the run.

use statehouse::Statehouse;

use super::check::read_back;
use super::engine::Shared;
use super::ledger::{CounterCheck, FamilyCheck};
use super::task::{Outcome, Task};
use super::{Family, Op};

/// The tenant whose users are incremented.
pub(super) const TENANT: &str = "soak";
/// The incremented field.
const FIELD: &str = "n";

fn user(c: usize) -> String {
    format!("c{c}")
}

impl Task {
    pub(super) async fn tenant_increment(&mut self) {
        let c = self.rng.below(self.shared.tenants.len());
        let acknowledged_before = self.shared.tenants.attempt(c);
        let users = self.handles.users.clone();
        let user = user(c);
        let outcome = self
            .call(Op::TenantIncrement, None, users.increment(&user, FIELD, 1))
            .await;
        if let Outcome::Done(Ok(now)) = outcome {
            self.shared.tenants.acknowledge(c);
            let attempted_after = self.shared.tenants.attempted(c);
            let what = format!("increment user {user}");
            let now = u64::try_from(now).unwrap_or(0);
            self.check_counter(&what, now, acknowledged_before + 1, attempted_after);
        }
    }
}

/// The check after the run: each user's field against its increments.
pub(super) async fn check(state: &Statehouse, shared: &Shared) -> (FamilyCheck, Vec<CounterCheck>) {
    let users = state.tenant(TENANT).unwrap().users();
    let mut counters = Vec::new();
    for c in 0..shared.tenants.len() {
        let user = user(c);
        let value: Option<u64> = read_back(&user, || users.get_field::<u64>(&user, FIELD)).await;
        let key = format!("tenant {TENANT} user {user}.{FIELD}");
        counters.push(shared.tenants.check(Family::Tenants, c, key, value.unwrap_or(0)));
    }
    (
        FamilyCheck::of_counters(Family::Tenants, "increments", &counters),
        counters,
    )
}
