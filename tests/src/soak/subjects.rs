//! Subjects: `set_with` incrementing a property of shared subjects (a WATCH loop); the check of
//! each property against the increments after the run.

use statehouse::Statehouse;

use super::check::read_back;
use super::engine::Shared;
use super::ledger::{CounterCheck, FamilyCheck};
use super::task::{Outcome, Task};
use super::{Family, Op};

/// The incremented property.
const PROPERTY: &str = "n";

fn subject_name(c: usize) -> String {
    format!("c{c}")
}

impl Task {
    pub(super) async fn subject_increment(&mut self) {
        let c = self.rng.below(self.shared.subjects.len());
        let mut subject = match self.handles.subjects.subject(&subject_name(c)) {
            Ok(subject) => subject,
            Err(error) => panic!("soak: subject {}: {error}", subject_name(c)),
        };
        let acknowledged_before = self.shared.subjects.attempt(c);
        let progressed = self.progress_marker();
        let increment = subject.set_with(PROPERTY, move |n: Option<u64>| {
            progressed();
            n.unwrap_or(0) + 1
        });
        if let Outcome::Done(Ok(now)) = self.call(Op::SubjectIncrement, None, increment).await {
            self.shared.subjects.acknowledge(c);
            let attempted_after = self.shared.subjects.attempted(c);
            let what = format!("set_with subject {}", subject_name(c));
            self.check_counter(&what, now, acknowledged_before + 1, attempted_after);
        }
    }
}

/// The check after the run: each subject's property against its increments.
pub(super) async fn check(state: &Statehouse, shared: &Shared) -> (FamilyCheck, Vec<CounterCheck>) {
    let subjects = state.subjects();
    let mut counters = Vec::new();
    for c in 0..shared.subjects.len() {
        let name = subject_name(c);
        let value = read_back(&name, || async {
            match subjects.subject(&name) {
                Ok(mut subject) => subject.get::<u64>(PROPERTY).await,
                Err(error) => Err(error),
            }
        })
        .await;
        let key = format!("subject {name}.{PROPERTY}");
        counters.push(
            shared
                .subjects
                .check(Family::Subjects, c, key, value.unwrap_or(0)),
        );
    }
    (
        FamilyCheck::of_counters(Family::Subjects, "increments", &counters),
        counters,
    )
}
