//! [`Rounds`]: the combiners of one store, one per kind of combined update.

use std::sync::Arc;

use crate::{Combiner, HeldModel, HeldTask};

/// The lanes of one store's combined updates (`Combiner`), one combiner per
/// kind of value a round hands on. Clones share the lanes, as clones of a
/// store share its connections.
///
/// ```
/// use std::sync::Arc;
/// use statehouse_ports::Rounds;
///
/// let rounds = Rounds::default();
/// assert!(rounds.is_on());
/// // A view that writes differently gets lanes of its own, switched alike.
/// let own = rounds.fresh();
/// assert!(own.is_on() && !Arc::ptr_eq(&own.tasks, &rounds.tasks));
/// assert!(Arc::ptr_eq(&rounds.clone().tasks, &rounds.tasks));
/// assert!(!Rounds::switched(false).is_on());
/// ```
#[derive(Debug, Clone)]
pub struct Rounds {
    /// Document updates of one key (`update`). Its switch is the one the
    /// change feed reports (`ChangeFeed::combining`), which the config
    /// store follows.
    pub documents: Arc<Combiner<Option<Vec<u8>>>>,
    /// Updates of one JSON field of a hash (a subject's property, a tenant
    /// record's field).
    pub fields: Arc<Combiner<Option<Vec<u8>>>>,
    /// Updates of one synced model.
    pub models: Arc<Combiner<HeldModel>>,
    /// Changes of one task (`set_status`, `append_log`).
    pub tasks: Arc<Combiner<HeldTask>>,
}

impl Default for Rounds {
    /// Combining on, with the default bound on a batch.
    fn default() -> Self {
        Self::switched(true)
    }
}

impl Rounds {
    /// Combining on (the default bound) or off, for every kind of update.
    pub fn switched(on: bool) -> Self {
        Self::bounded(if on { crate::combine::DEFAULT_MAX_BATCH } else { 1 })
    }

    /// Batches of at most `max_batch` callers (1: no combining).
    fn bounded(max_batch: usize) -> Self {
        Self {
            documents: Arc::new(Combiner::new(max_batch)),
            fields: Arc::new(Combiner::new(max_batch)),
            models: Arc::new(Combiner::new(max_batch)),
            tasks: Arc::new(Combiner::new(max_batch)),
        }
    }

    /// The same switch with lanes of their own: for a view of the store
    /// that writes differently (another durability), since a round is
    /// written as its leader's store writes.
    pub fn fresh(&self) -> Self {
        Self::bounded(self.documents.max_batch())
    }

    /// Whether combining is on.
    pub fn is_on(&self) -> bool {
        self.documents.is_on()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_and_fresh_lanes_keep_the_bound() {
        let on = Rounds::default();
        assert!(on.is_on());
        assert!(on.tasks.is_on() && on.models.is_on() && on.fields.is_on());
        let off = Rounds::switched(false);
        assert!(!off.is_on());
        assert!(!off.fresh().is_on());
        let fresh = on.fresh();
        assert!(fresh.is_on());
        assert!(!Arc::ptr_eq(&fresh.tasks, &on.tasks));
        assert!(Arc::ptr_eq(&on.clone().tasks, &on.tasks));
    }
}
