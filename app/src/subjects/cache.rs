//! A [`Subject`](super::Subject)'s memory: the loaded properties
//! ([`ByKind`]), the changes staged for the next store ([`Staging`]), and
//! the batch of a store on its way ([`InFlight`]): the staged changes lent
//! to it, settled into the cache when the store answers, or staged again
//! if it fails or is dropped.
//!
//! Both keep their names in [`Sorted`] vectors that remember the order
//! names were last looked up in, so a handle that stages the same
//! properties store after store (the common case) finds each name with one
//! comparison, and a store moves no name: each staged slot lends its
//! validated [`PropertyName`] to the batch and gets it back.

use std::collections::BTreeMap;

use serde_json::Value;
use statehouse_ports::{Loaded, PropertyChange, PropertyKind, PropertyName, SubjectData, ValidationError};

/// An entry of a [`Sorted`] vector: it has a name.
pub(super) trait Named {
    fn name(&self) -> &str;
}

/// An entry and the position of the entry looked up after it last time.
#[derive(Debug)]
struct Linked<T> {
    entry: T,
    next: usize,
}

/// Entries with unique names, sorted by name, found by bisection, or first
/// by a guess: the entry that was looked up after the previous one the last
/// time (a wrong guess, e.g. after an insertion moved the entries, only
/// costs the bisection). A run of lookups in the same order as before costs
/// one comparison each, whatever the order.
#[derive(Debug)]
pub(super) struct Sorted<T> {
    entries: Vec<Linked<T>>,
    /// The entry looked up last (`usize::MAX`: none).
    last: usize,
}

impl<T> Default for Sorted<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            last: usize::MAX,
        }
    }
}

impl<T: Named> Sorted<T> {
    /// From entries already sorted by name, each once.
    fn from_sorted(entries: impl IntoIterator<Item = T>) -> Self {
        Self {
            entries: entries
                .into_iter()
                .map(|entry| Linked {
                    entry,
                    next: usize::MAX,
                })
                .collect(),
            last: usize::MAX,
        }
    }

    /// Where `name` is (`Ok`), or would be inserted (`Err`).
    fn position(&self, name: &str) -> Result<usize, usize> {
        if let Some(guess) = self.entries.get(self.last).map(|last| last.next)
            && self
                .entries
                .get(guess)
                .is_some_and(|linked| linked.entry.name() == name)
        {
            return Ok(guess);
        }
        self.entries
            .binary_search_by(|linked| linked.entry.name().cmp(name))
    }

    /// Records that the entry at `at` was looked up after the last one.
    fn found(&mut self, at: usize) -> &mut T {
        if let Some(last) = self.entries.get_mut(self.last) {
            last.next = at;
        }
        self.last = at;
        &mut self.entries[at].entry
    }

    pub(super) fn get(&self, name: &str) -> Option<&T> {
        let at = self.position(name).ok()?;
        Some(&self.entries[at].entry)
    }

    /// The entry of `name`, added by `make` if missing (a failure of
    /// `make` adds nothing).
    fn get_or_insert_with<E>(&mut self, name: &str, make: impl FnOnce() -> Result<T, E>) -> Result<usize, E> {
        let at = match self.position(name) {
            Ok(at) => at,
            Err(at) => {
                let entry = make()?;
                self.entries.insert(
                    at,
                    Linked {
                        entry,
                        next: usize::MAX,
                    },
                );
                if self.last != usize::MAX && self.last >= at {
                    self.last += 1;
                }
                at
            }
        };
        self.found(at);
        Ok(at)
    }

    fn remove(&mut self, name: &str) -> Option<T> {
        let at = self.position(name).ok()?;
        self.last = usize::MAX;
        Some(self.entries.remove(at).entry)
    }

    fn at(&self, at: usize) -> Option<&T> {
        Some(&self.entries.get(at)?.entry)
    }

    fn at_mut(&mut self, at: usize) -> Option<&mut T> {
        Some(&mut self.entries.get_mut(at)?.entry)
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|linked| &linked.entry)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().map(|linked| &mut linked.entry)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.last = usize::MAX;
    }
}

/// A cached property: its name and value (`None`: it failed to parse).
type Cached = (String, Option<Value>);

impl Named for Cached {
    fn name(&self) -> &str {
        &self.0
    }
}

fn index(kind: PropertyKind) -> usize {
    match kind {
        PropertyKind::Default => 0,
        PropertyKind::Extended => 1,
    }
}

/// The kinds in field order (`e…` before `p…`): the order of a batch.
const FIELD_ORDER: [PropertyKind; 2] = [PropertyKind::Extended, PropertyKind::Default];

/// The cache: property values by kind, then by name, so a lookup takes the
/// name as given (`&str`), with no key to build. A value is `None` for a
/// property that failed to parse.
#[derive(Debug, Default)]
pub(super) struct ByKind([Sorted<Cached>; 2]);

impl ByKind {
    /// The cache of a subject as loaded.
    pub(super) fn load(data: SubjectData) -> Self {
        fn of(properties: BTreeMap<String, Loaded>) -> Sorted<Cached> {
            Sorted::from_sorted(properties.into_iter().map(|(name, value)| (name, value.ok())))
        }
        Self([of(data.default), of(data.extended)])
    }

    /// The cached value of `name` of `kind`, if the property is known.
    pub(super) fn value(&self, kind: PropertyKind, name: &str) -> Option<&Option<Value>> {
        self.0[index(kind)].get(name).map(|(_, value)| value)
    }

    /// Every cached property of `kind`, in name order.
    pub(super) fn values(&self, kind: PropertyKind) -> impl Iterator<Item = (&str, &Option<Value>)> {
        self.0[index(kind)]
            .iter()
            .map(|(name, value)| (name.as_str(), value))
    }

    /// Sets `name` of `kind` to `value`, building the name's key only when
    /// it is new.
    pub(super) fn put(&mut self, kind: PropertyKind, name: &str, value: Option<Value>) {
        let properties = &mut self.0[index(kind)];
        let added = properties.get_or_insert_with(name, || Ok::<_, ()>((name.to_owned(), None)));
        if let Some(cached) = added.ok().and_then(|at| properties.at_mut(at)) {
            cached.1 = value;
        }
    }

    pub(super) fn remove(&mut self, kind: PropertyKind, name: &str) {
        self.0[index(kind)].remove(name);
    }
}

/// A staging slot: the property's name (lent to a batch while it is
/// stored) and its staged change, if any (`Some(None)`: a deletion).
#[derive(Debug)]
struct Slot {
    name: Option<PropertyName>,
    change: Option<Option<Value>>,
}

impl Named for Slot {
    fn name(&self) -> &str {
        self.name.as_ref().map_or("", PropertyName::as_str)
    }
}

/// Where a property's staging slot is (from [`Staging::slot`]), until the
/// next change of the staging.
#[derive(Debug, Clone, Copy)]
pub(super) struct SlotAt {
    kind: PropertyKind,
    at: usize,
}

impl SlotAt {
    pub(super) fn kind(self) -> PropertyKind {
        self.kind
    }
}

/// Changes not yet stored, by kind then name: `Some` sets, `None` deletes.
/// A name stays once staged (a stored change leaves an empty slot), so
/// staging the same properties store after store builds and validates no
/// name again: a slot's name is the [`PropertyName`] validated when it was
/// first staged.
#[derive(Debug, Default)]
pub(super) struct Staging {
    slots: [Sorted<Slot>; 2],
    /// How many slots hold a change.
    count: usize,
    /// The last batch's vector, emptied, for the next batch (a handle
    /// that stores store after store allocates it once).
    spare: Vec<PropertyChange>,
}

/// How a store of lent changes ended.
enum Outcome<'a> {
    /// Written: the values go to the cache, if loaded.
    Stored(Option<&'a mut ByKind>),
    /// Not written (failed or dropped): the changes are staged again.
    Failed,
}

impl Staging {
    /// The slot of `name` of `kind`, added (its name validated) if the
    /// name was never staged.
    pub(super) fn slot(&mut self, kind: PropertyKind, name: &str) -> Result<SlotAt, ValidationError> {
        let at = self.slots[index(kind)].get_or_insert_with(name, || {
            Ok::<_, ValidationError>(Slot {
                name: Some(PropertyName::new(name)?),
                change: None,
            })
        })?;
        Ok(SlotAt { kind, at })
    }

    /// The name of the slot at `slot`.
    pub(super) fn name(&self, slot: SlotAt) -> &str {
        self.slots[index(slot.kind)].at(slot.at).map_or("", Named::name)
    }

    /// Stages `change` in the slot at `slot`.
    pub(super) fn put(&mut self, slot: SlotAt, change: Option<Value>) {
        if let Some(slot) = self.slots[index(slot.kind)].at_mut(slot.at)
            && slot.change.replace(change).is_none()
        {
            self.count += 1;
        }
    }

    /// The staged change of `name`, if any (`Some(None)`: a deletion).
    pub(super) fn get(&self, kind: PropertyKind, name: &str) -> Option<&Option<Value>> {
        self.slots[index(kind)].get(name)?.change.as_ref()
    }

    /// Every staged change of `kind`, in name order.
    pub(super) fn changes_of(&self, kind: PropertyKind) -> impl Iterator<Item = (&str, &Option<Value>)> {
        self.slots[index(kind)]
            .iter()
            .filter_map(|slot| Some((Named::name(slot), slot.change.as_ref()?)))
    }

    /// Unstages the change of `name` of `kind`, if any.
    pub(super) fn remove(&mut self, kind: PropertyKind, name: &str) {
        let slots = &mut self.slots[index(kind)];
        if let Ok(at) = slots.position(name)
            && let Some(slot) = slots.at_mut(at)
            && slot.change.take().is_some()
        {
            self.count -= 1;
        }
    }

    pub(super) fn len(&self) -> usize {
        self.count
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(super) fn clear(&mut self) {
        self.slots.iter_mut().for_each(Sorted::clear);
        self.count = 0;
    }

    /// Every staged change as a batch, in field order (extended `e…`
    /// before default `p…`, then by name), each slot lending its name;
    /// [`settle`](Self::settle) gives them back.
    fn lend(&mut self) -> Vec<PropertyChange> {
        let mut batch = std::mem::take(&mut self.spare);
        batch.reserve(self.count);
        for kind in FIELD_ORDER {
            for slot in self.slots[index(kind)].iter_mut() {
                if slot.change.is_none() {
                    continue;
                }
                let (Some(name), Some(change)) = (slot.name.take(), slot.change.take()) else {
                    continue;
                };
                batch.push(match change {
                    Some(value) => PropertyChange::Set { kind, name, value },
                    None => PropertyChange::Delete { kind, name },
                });
            }
        }
        self.count = 0;
        batch
    }

    /// Gives the names of `batch` (from [`lend`](Self::lend), nothing
    /// changed since) back to their slots, which lent them in this order,
    /// and the values to the cache or, if the store failed, to the slots.
    fn settle(&mut self, mut batch: Vec<PropertyChange>, outcome: Outcome<'_>) {
        self.give_back(batch.drain(..), outcome);
        self.spare = batch;
    }

    /// [`settle`](Self::settle)'s work: each change of `batch` back to its
    /// slot and its value where `outcome` sends it.
    fn give_back(&mut self, mut batch: impl Iterator<Item = PropertyChange>, mut outcome: Outcome<'_>) {
        for kind in FIELD_ORDER {
            for slot in self.slots[index(kind)].iter_mut() {
                if slot.name.is_some() {
                    continue;
                }
                let Some(change) = batch.next() else {
                    return;
                };
                let (name, value) = match change {
                    PropertyChange::Set { name, value, .. } => (name, Some(value)),
                    PropertyChange::Delete { name, .. } => (name, None),
                };
                match &mut outcome {
                    Outcome::Stored(Some(cache)) => match value {
                        Some(value) => cache.put(kind, name.as_str(), Some(value)),
                        None => cache.remove(kind, name.as_str()),
                    },
                    Outcome::Stored(None) => {}
                    Outcome::Failed => {
                        slot.change = Some(value);
                        self.count += 1;
                    }
                }
                slot.name = Some(name);
            }
        }
    }
}

/// A store's batch on its way: the staged changes, lent by their slots.
/// [`stored`](Self::stored) settles them into the cache; dropped without
/// it (the store failed, or its future was dropped), it stages them again,
/// so nothing staged is lost.
pub(super) struct InFlight<'a> {
    staged: &'a mut Staging,
    batch: Vec<PropertyChange>,
}

impl<'a> InFlight<'a> {
    /// Lends every staged change.
    pub(super) fn lend(staged: &'a mut Staging) -> Self {
        let batch = staged.lend();
        Self { staged, batch }
    }

    /// The batch to store.
    pub(super) fn batch(&self) -> &[PropertyChange] {
        &self.batch
    }

    /// The batch was written: the names go back to their slots (now
    /// empty), the values into `cache`.
    pub(super) fn stored(mut self, cache: Option<&mut ByKind>) {
        let batch = std::mem::take(&mut self.batch);
        self.staged.settle(batch, Outcome::Stored(cache));
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.staged.settle(batch, Outcome::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T: Named>(sorted: &Sorted<T>) -> Vec<&str> {
        sorted.iter().map(Named::name).collect()
    }

    #[test]
    fn sorted_entries_stay_sorted_and_are_found_in_any_order() {
        let mut sorted = Sorted::<Cached>::default();
        let order = ["b", "prop1", "a", "prop10", "prop2", "c"];
        for _ in 0..3 {
            for name in order {
                let at = sorted
                    .get_or_insert_with(name, || Ok::<_, ()>((name.to_owned(), None)))
                    .unwrap();
                assert_eq!(sorted.at_mut(at).unwrap().0, name);
            }
        }
        assert_eq!(names(&sorted), ["a", "b", "c", "prop1", "prop10", "prop2"]);
        for name in order.iter().rev() {
            assert_eq!(sorted.get(name).map(|(n, _)| n.as_str()), Some(*name));
        }
        assert!(sorted.get("d").is_none());
        assert!(sorted.remove("b").is_some());
        assert!(sorted.get("b").is_none());
        assert_eq!(sorted.get("c").map(|(n, _)| n.as_str()), Some("c"));
    }

    fn stage(staging: &mut Staging, kind: PropertyKind, name: &str, change: Option<Value>) {
        let slot = staging.slot(kind, name).unwrap();
        staging.put(slot, change);
    }

    #[test]
    fn a_batch_is_in_field_order_and_settles_into_the_cache() {
        let mut staging = Staging::default();
        stage(&mut staging, PropertyKind::Default, "b", Some(1.into()));
        stage(&mut staging, PropertyKind::Extended, "z", None);
        stage(&mut staging, PropertyKind::Default, "a", Some(2.into()));
        stage(&mut staging, PropertyKind::Default, "b", Some(3.into()));
        assert_eq!(staging.len(), 3);
        let mut cache = ByKind::default();
        cache.put(PropertyKind::Extended, "z", Some(0.into()));
        let in_flight = InFlight::lend(&mut staging);
        let fields: Vec<String> = in_flight
            .batch()
            .iter()
            .map(|change| match change {
                PropertyChange::Set { kind, name, .. } | PropertyChange::Delete { kind, name } => {
                    kind.field(name.as_str())
                }
            })
            .collect();
        assert_eq!(fields, ["ez", "pa", "pb"]);
        in_flight.stored(Some(&mut cache));
        assert!(staging.is_empty());
        assert_eq!(cache.value(PropertyKind::Default, "b"), Some(&Some(3.into())));
        assert_eq!(cache.value(PropertyKind::Extended, "z"), None);
        // The names stayed: staging them again finds them.
        stage(&mut staging, PropertyKind::Default, "a", Some(4.into()));
        assert_eq!(staging.get(PropertyKind::Default, "a"), Some(&Some(4.into())));
        assert_eq!(names(&staging.slots[0]), ["a", "b"]);
    }

    #[test]
    fn a_dropped_batch_is_staged_again() {
        let mut staging = Staging::default();
        stage(&mut staging, PropertyKind::Default, "a", Some(1.into()));
        stage(&mut staging, PropertyKind::Extended, "e", None);
        drop(InFlight::lend(&mut staging));
        assert_eq!(staging.len(), 2);
        assert_eq!(staging.get(PropertyKind::Default, "a"), Some(&Some(1.into())));
        assert_eq!(staging.get(PropertyKind::Extended, "e"), Some(&None));
        assert!(staging.slot(PropertyKind::Default, "bad\n").is_err());
        assert_eq!(names(&staging.slots[0]), ["a"]);
    }
}
