//! The accounting of writes: attempted and acknowledged increments of shared counters, items
//! unique within a task, and what a family's check after the run found of them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Family, KEEP};

/// Attempted and acknowledged increments of some shared counters.
#[derive(Debug)]
pub(super) struct Counters {
    attempted: Vec<AtomicU64>,
    acknowledged: Vec<AtomicU64>,
}

impl Counters {
    pub(super) fn new(count: usize) -> Self {
        Self {
            attempted: (0..count).map(|_| AtomicU64::new(0)).collect(),
            acknowledged: (0..count).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// How many counters.
    pub(super) fn len(&self) -> usize {
        self.attempted.len()
    }

    /// Counts an increment of counter `c` as attempted (before it is sent: from then on it may be
    /// applied); returns how many were acknowledged before, the least a read may see from now on.
    pub(super) fn attempt(&self, c: usize) -> u64 {
        self.attempted[c].fetch_add(1, Ordering::SeqCst);
        self.acknowledged[c].load(Ordering::SeqCst)
    }

    /// Counts an increment of counter `c` as acknowledged (it returned `Ok`).
    pub(super) fn acknowledge(&self, c: usize) {
        self.acknowledged[c].fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn attempted(&self, c: usize) -> u64 {
        self.attempted[c].load(Ordering::SeqCst)
    }

    pub(super) fn acknowledged(&self, c: usize) -> u64 {
        self.acknowledged[c].load(Ordering::SeqCst)
    }

    /// The check of counter `c`, named `key`, holding `value` after the run.
    pub(super) fn check(&self, family: Family, c: usize, key: String, value: u64) -> CounterCheck {
        CounterCheck {
            family,
            key,
            attempted: self.attempted(c),
            acknowledged: self.acknowledged(c),
            value,
        }
    }
}

/// One task's writes of new items of a family (task records, triggers, queue items), each numbered
/// uniquely within the task.
#[derive(Debug, Default)]
pub(super) struct Items {
    next: u64,
    /// Items whose write returned `Ok`.
    pub(super) acknowledged: Vec<u64>,
    /// Items whose write failed: they may or may not have been written (even later).
    pub(super) unknown: Vec<u64>,
}

impl Items {
    /// The number of a new item.
    pub(super) fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Records the outcome of the write of item `n`.
    pub(super) fn record(&mut self, n: u64, acknowledged: bool) {
        if acknowledged {
            self.acknowledged.push(n);
        } else {
            self.unknown.push(n);
        }
    }
}

/// The end-of-run count of one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCheck {
    /// Whose counter.
    pub family: Family,
    /// The key (and field or property).
    pub key: String,
    /// Increments made on it.
    pub attempted: u64,
    /// Increments on it that returned `Ok`.
    pub acknowledged: u64,
    /// What the server holds after the run.
    pub value: u64,
}

impl CounterCheck {
    /// Increments acknowledged but missing (at least this many were lost: an unacknowledged
    /// increment that was applied can hide a lost one).
    pub fn lost(&self) -> u64 {
        self.acknowledged.saturating_sub(self.value)
    }

    /// Increments beyond every attempted one (something applied twice).
    pub fn excess(&self) -> u64 {
        self.value.saturating_sub(self.attempted)
    }
}

/// What one family's check after the run found of its writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyCheck {
    /// Whose writes.
    pub family: Family,
    /// What was counted: `increments`, `records`, `triggers`, `items`, `versions`.
    pub unit: &'static str,
    /// Writes sent (acknowledged or of unknown outcome).
    pub attempted: u64,
    /// Writes that returned `Ok`.
    pub acknowledged: u64,
    /// What the server holds after the run, in the same unit.
    pub found: u64,
    /// Acknowledged writes missing. Exact for items; for counters a lower bound (an unacknowledged
    /// increment that was applied can hide a lost one).
    pub lost: u64,
    /// Writes found beyond every attempted one (applied twice, or never written by the soak).
    pub excess: u64,
    /// The first lost or excess writes, described.
    pub examples: Vec<String>,
}

impl FamilyCheck {
    /// The check of a family counting increments of `counters`.
    pub(super) fn of_counters(family: Family, unit: &'static str, counters: &[CounterCheck]) -> Self {
        let mut check = Self::empty(family, unit);
        for counter in counters {
            check.attempted += counter.attempted;
            check.acknowledged += counter.acknowledged;
            check.found += counter.value;
            check.lost += counter.lost();
            check.excess += counter.excess();
            if counter.lost() > 0 {
                check.example(format!(
                    "{}: {} acknowledged {unit} lost (value {}, acknowledged {})",
                    counter.key,
                    counter.lost(),
                    counter.value,
                    counter.acknowledged
                ));
            }
            if counter.excess() > 0 {
                check.example(format!(
                    "{}: value {} is above the {} attempted {unit} (applied twice)",
                    counter.key, counter.value, counter.attempted
                ));
            }
        }
        check
    }

    /// The check of a family writing items: each task's `items` (named `owner` in examples)
    /// against the item numbers `found` after the run.
    pub(super) fn of_items(family: Family, unit: &'static str, tasks: &[(String, Items, Vec<u64>)]) -> Self {
        let mut check = Self::empty(family, unit);
        for (owner, items, found) in tasks {
            check.attempted += (items.acknowledged.len() + items.unknown.len()) as u64;
            check.acknowledged += items.acknowledged.len() as u64;
            check.found += found.len() as u64;
            let mut seen: HashMap<u64, u64> = HashMap::new();
            for n in found {
                *seen.entry(*n).or_default() += 1;
            }
            let unknown: HashSet<u64> = items.unknown.iter().copied().collect();
            for n in &items.acknowledged {
                if !seen.contains_key(n) {
                    check.lost += 1;
                    check.example(format!("{owner}: acknowledged {unit} #{n} is missing"));
                }
            }
            let acknowledged: HashSet<u64> = items.acknowledged.iter().copied().collect();
            for (n, times) in seen {
                if !acknowledged.contains(&n) && !unknown.contains(&n) {
                    check.excess += times;
                    check.example(format!("{owner}: {unit} #{n} found but never written"));
                } else if times > 1 {
                    check.excess += times - 1;
                    check.example(format!("{owner}: {unit} #{n} found {times} times"));
                }
            }
        }
        check
    }

    fn empty(family: Family, unit: &'static str) -> Self {
        Self {
            family,
            unit,
            attempted: 0,
            acknowledged: 0,
            found: 0,
            lost: 0,
            excess: 0,
            examples: Vec::new(),
        }
    }

    /// Notes a lost or excess write (the first few are kept).
    pub(super) fn example(&mut self, what: String) {
        if self.examples.len() < KEEP {
            self.examples.push(what);
        }
    }
}
