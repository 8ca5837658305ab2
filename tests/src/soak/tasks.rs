//! Tasks: `create` of new task records, `get` of acknowledged ones; the check that every
//! acknowledged record is there after the run.

use statehouse::Statehouse;

use super::check::{read_back, read_items};
use super::ledger::{FamilyCheck, Items};
use super::task::{Outcome, Task};
use super::{Family, Op};

/// The service of every soak task record.
const SERVICE: &str = "soak";

/// The id of record `n` of task `task`.
fn task_id(task: usize, n: u64) -> String {
    format!("t{task}-{n}")
}

impl Task {
    pub(super) async fn task_create(&mut self) {
        let n = self.written.tasks.next();
        let id = task_id(self.id, n);
        let user = format!("u{}", self.id);
        let tasks = self.handles.tasks.clone();
        let outcome = self
            .call(Op::TaskCreate, None, tasks.create(&id, SERVICE, &user))
            .await;
        self.written
            .tasks
            .record(n, matches!(outcome, Outcome::Done(Ok(_))));
    }

    /// Reads back one of this task's acknowledged records (creates one if there is none yet).
    pub(super) async fn task_get(&mut self) {
        let acknowledged = &self.written.tasks.acknowledged;
        if acknowledged.is_empty() {
            return self.task_create().await;
        }
        let n = acknowledged[self.rng.below(acknowledged.len())];
        let id = task_id(self.id, n);
        let tasks = self.handles.tasks.clone();
        if let Outcome::Done(Ok(read)) = self.call(Op::TaskGet, None, tasks.get(&id)).await {
            self.stats.reads_checked += 1;
            match read {
                Some(record) if record.id.as_str() == id => {}
                other => {
                    let what = format!(
                        "task {} task get {id}: acknowledged, read {:?}",
                        self.id,
                        other.map(|record| record.id.to_string())
                    );
                    self.stats.violation(what);
                }
            }
        }
    }
}

/// The check after the run: every record each task wrote (acknowledged or not), looked up.
pub(super) async fn check(state: &Statehouse, written: Vec<(usize, Items)>) -> FamilyCheck {
    let found = read_items(state, written, |state, task, items| async move {
        let tasks = state.tasks();
        let mut found = Vec::new();
        for n in items.acknowledged.iter().chain(&items.unknown) {
            let id = task_id(task, *n);
            if read_back(&id, || tasks.get(&id)).await.is_some() {
                found.push(*n);
            }
        }
        (format!("task {task}"), items, found)
    })
    .await;
    FamilyCheck::of_items(Family::Tasks, "records", &found)
}
