//! Queues: `enqueue` of one new item at a time (never claimed); the check that every acknowledged
//! item waits in its queue after the run, once.

use statehouse::{QueueName, Queues, Statehouse, StoreError};

use super::check::{read_back, read_items};
use super::ledger::{FamilyCheck, Items};
use super::task::{Outcome, Task};
use super::{Family, Op};

/// Each task's own tenant.
fn tenant(task: usize) -> String {
    format!("t{task}")
}

/// The queue every task enqueues to (in its own tenant).
pub(super) fn queue(queues: &Queues) -> Result<QueueName, StoreError> {
    queues.queue("soak", "batch", "work")
}

impl Task {
    pub(super) async fn enqueue(&mut self) {
        let n = self.written.queue_items.next();
        let tenant = tenant(self.id);
        let (queues, queue) = (self.handles.queues.clone(), self.handles.queue.clone());
        let outcome = self
            .call(Op::QueueEnqueue, None, queues.enqueue(&tenant, &queue, &[n]))
            .await;
        self.written
            .queue_items
            .record(n, matches!(outcome, Outcome::Done(Ok(_))));
    }
}

/// The check after the run: each task's queue, read whole, against what it enqueued.
pub(super) async fn check(state: &Statehouse, written: Vec<(usize, Items)>) -> FamilyCheck {
    let found = read_items(state, written, |state, task, items| async move {
        let queues = state.queues();
        let tenant = tenant(task);
        let queue = queue(&queues).unwrap();
        let len = read_back(&tenant, || queues.len(&tenant, &queue)).await;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let waiting = read_back(&tenant, || queues.range::<u64>(&tenant, &queue, 0, len)).await;
        let found = waiting.into_iter().map(|item| item.value).collect();
        (format!("queue of tenant {tenant}"), items, found)
    })
    .await;
    FamilyCheck::of_items(Family::Queues, "items", &found)
}
