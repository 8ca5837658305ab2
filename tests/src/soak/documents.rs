//! Documents: `set`, `get` and `mget` of each task's own keys, `update` of the shared counters;
//! the check of both after the run.

use std::collections::HashSet;
use std::time::Duration;

use statehouse::{Statehouse, Update};

use super::Family;
use super::Op;
use super::check::read_back;
use super::engine::Shared;
use super::ledger::{CounterCheck, FamilyCheck};
use super::task::{Outcome, Task, TaskStats};

/// One task's own key: what may be read back.
#[derive(Debug, Default)]
pub(super) struct Own {
    pub(super) key: String,
    pub(super) last_acknowledged: Option<u64>,
    /// Values of `set`s that failed: they may or may not have been applied (even later).
    pub(super) unknown: HashSet<u64>,
}

impl Own {
    /// Whether `read` is a value this key may hold: the last acknowledged one, or one whose write
    /// has an unknown outcome (and nothing at all only if no write was acknowledged).
    pub(super) fn allows(&self, read: Option<u64>) -> bool {
        match read {
            None => self.last_acknowledged.is_none(),
            Some(value) => self.last_acknowledged == Some(value) || self.unknown.contains(&value),
        }
    }
}

impl Task {
    pub(super) async fn set(&mut self) {
        let own = &mut self.written.own;
        let i = self.rng.below(own.len());
        self.next_value += 1;
        let value = self.next_value;
        let key = own[i].key.clone();
        let docs = self.handles.docs.clone();
        let acknowledged = matches!(
            self.call(Op::Set, None, docs.set(&key, &value)).await,
            Outcome::Done(Ok(()))
        );
        let own = &mut self.written.own[i];
        if acknowledged {
            own.last_acknowledged = Some(value);
        } else {
            own.unknown.insert(value);
        }
    }

    pub(super) async fn get(&mut self) {
        let i = self.rng.below(self.written.own.len());
        let key = self.written.own[i].key.clone();
        let docs = self.handles.docs.clone();
        if let Outcome::Done(Ok(read)) = self.call(Op::Get, None, docs.get::<u64>(&key)).await {
            self.check_own(i, read, "get");
        }
    }

    fn check_own(&mut self, i: usize, read: Option<u64>, how: &str) {
        self.stats.reads_checked += 1;
        let own = &self.written.own[i];
        if !own.allows(read) {
            let what = format!(
                "task {} {how} {}: read {read:?}, last acknowledged {:?}, unknown outcomes {:?}",
                self.id, own.key, own.last_acknowledged, own.unknown
            );
            self.stats.violation(what);
        }
    }

    pub(super) async fn mget(&mut self) {
        let own = &self.written.own;
        let first = self.rng.below(own.len());
        let second = (first + 1) % own.len();
        let c = self.rng.below(self.shared.documents.len());
        let keys = [
            own[first].key.clone(),
            own[second].key.clone(),
            counter_key(c),
            format!("t{}:never-written", self.id),
        ];
        let acknowledged_before = self.shared.documents.acknowledged(c);
        let docs = self.handles.docs.clone();
        let Outcome::Done(Ok(values)) = self.call(Op::Mget, None, docs.mget::<u64>(&keys)).await else {
            return;
        };
        let mut values = values.into_iter();
        let mut next = |what: &str| match values.next() {
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => Err(format!("mget {what}: {error}")),
            None => Err(format!("mget {what}: missing from the answer")),
        };
        let (a, b, counter, never) = (next("first"), next("second"), next("counter"), next("absent"));
        match (a, b, counter, never) {
            (Ok(a), Ok(b), Ok(counter), Ok(never)) => {
                self.check_own(first, a, "mget");
                self.check_own(second, b, "mget");
                let attempted_after = self.shared.documents.attempted(c);
                let what = format!("mget {}", counter_key(c));
                self.check_counter(&what, counter.unwrap_or(0), acknowledged_before, attempted_after);
                if never.is_some() {
                    self.stats.violation(format!(
                        "task {} mget: a never-written key holds {never:?}",
                        self.id
                    ));
                }
            }
            (a, b, counter, never) => {
                for error in [a.err(), b.err(), counter.err(), never.err()]
                    .into_iter()
                    .flatten()
                {
                    self.stats.violation(format!("task {}: {error}", self.id));
                }
            }
        }
    }

    pub(super) async fn update(&mut self, cancel: bool) {
        let c = self.rng.below(self.shared.documents.len());
        let key = counter_key(c);
        let (op, deadline) = if cancel {
            let deadline = self.rng.between((Duration::ZERO, Duration::from_millis(4)));
            (Op::CancelledUpdate, Some(deadline))
        } else {
            (Op::Update, None)
        };
        // Counted before the call: from here on its outcome may be "applied".
        let acknowledged_before = self.shared.documents.attempt(c);
        let docs = self.handles.docs.clone();
        let progressed = self.progress_marker();
        let increment = docs.update(&key, move |n: Option<u64>| {
            progressed();
            Update::Set(n.unwrap_or(0) + 1)
        });
        if let Outcome::Done(Ok(now)) = self.call(op, deadline, increment).await {
            self.shared.documents.acknowledge(c);
            // Our own increment is in `now`, on top of everything acknowledged before.
            let attempted_after = self.shared.documents.attempted(c);
            let what = format!("update {key}");
            self.check_counter(&what, now.unwrap_or(0), acknowledged_before + 1, attempted_after);
        }
    }
}

pub(super) fn counter_key(c: usize) -> String {
    format!("counter:{c}")
}

/// The check after the run: each counter against its attempted and acknowledged increments, each
/// task's own key against what it may hold (a key whose last acknowledged value is gone counts as
/// one lost write; `stats` counts the reads).
pub(super) async fn check(
    state: &Statehouse,
    shared: &Shared,
    own: &[Own],
    stats: &mut TaskStats,
) -> (FamilyCheck, Vec<CounterCheck>) {
    let docs = state.documents();
    let mut counters = Vec::new();
    for c in 0..shared.documents.len() {
        let key = counter_key(c);
        let value: Option<u64> = read_back(&key, || docs.get::<u64>(&key)).await;
        counters.push(shared.documents.check(
            Family::Documents,
            c,
            format!("document {key}"),
            value.unwrap_or(0),
        ));
    }
    let mut check = FamilyCheck::of_counters(Family::Documents, "increments", &counters);
    for own in own {
        let value: Option<u64> = read_back(&own.key, || docs.get::<u64>(&own.key)).await;
        stats.reads_checked += 1;
        if !own.allows(value) {
            let what = format!(
                "after the run {}: holds {value:?}, last acknowledged {:?}, unknown outcomes {:?}",
                own.key, own.last_acknowledged, own.unknown
            );
            check.lost += 1;
            check.example(what);
        }
    }
    (check, counters)
}
