//! A [`Subject`](super::Subject)'s memory: the loaded properties
//! ([`ByKind`]), the changes staged for the next store ([`Staging`]), and
//! the changes on their way to the store ([`InFlight`]), put back if the
//! store fails.

use std::collections::BTreeMap;

use serde_json::Value;
use statehouse_ports::{PropertyChange, PropertyKind};

/// The cache: property values by kind, then by name, so a lookup takes the
/// name as given (`&str`), with no key to build. A value is `None` for a
/// property that failed to parse.
#[derive(Debug, Default)]
pub(super) struct ByKind([BTreeMap<String, Option<Value>>; 2]);

impl ByKind {
    pub(super) fn index(kind: PropertyKind) -> usize {
        match kind {
            PropertyKind::Default => 0,
            PropertyKind::Extended => 1,
        }
    }

    pub(super) fn of(&self, kind: PropertyKind) -> &BTreeMap<String, Option<Value>> {
        &self.0[Self::index(kind)]
    }

    pub(super) fn of_mut(&mut self, kind: PropertyKind) -> &mut BTreeMap<String, Option<Value>> {
        &mut self.0[Self::index(kind)]
    }

    /// Sets `name` of `kind` to `value`, building the name's key only when
    /// it is new.
    pub(super) fn put(&mut self, kind: PropertyKind, name: &str, value: Option<Value>) {
        let map = self.of_mut(kind);
        match map.get_mut(name) {
            Some(slot) => *slot = value,
            None => {
                map.insert(name.to_owned(), value);
            }
        }
    }
}

/// Changes not yet stored, by kind then name: `Some` sets, `None` deletes.
/// A name stays once staged (a stored change leaves an empty slot), so
/// staging the same properties store after store builds no key.
#[derive(Debug, Default)]
pub(super) struct Staging {
    slots: [BTreeMap<String, Option<Option<Value>>>; 2],
    /// How many slots hold a change.
    count: usize,
}

impl Staging {
    pub(super) fn of(&self, kind: PropertyKind) -> &BTreeMap<String, Option<Option<Value>>> {
        &self.slots[ByKind::index(kind)]
    }

    /// The staged change of `name`, if any (`Some(None)`: a deletion).
    pub(super) fn get(&self, kind: PropertyKind, name: &str) -> Option<&Option<Value>> {
        self.of(kind).get(name)?.as_ref()
    }

    /// Every staged change of `kind`.
    pub(super) fn changes_of(&self, kind: PropertyKind) -> impl Iterator<Item = (&String, &Option<Value>)> {
        self.of(kind)
            .iter()
            .filter_map(|(name, slot)| Some((name, slot.as_ref()?)))
    }

    pub(super) fn put(&mut self, kind: PropertyKind, name: &str, change: Option<Value>) {
        let map = &mut self.slots[ByKind::index(kind)];
        let slot = match map.get_mut(name) {
            Some(slot) => slot,
            None => map.entry(name.to_owned()).or_insert(None),
        };
        if slot.replace(change).is_none() {
            self.count += 1;
        }
    }

    pub(super) fn remove(&mut self, kind: PropertyKind, name: &str) {
        if let Some(slot) = self.slots[ByKind::index(kind)].get_mut(name)
            && slot.take().is_some()
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
        self.slots.iter_mut().for_each(BTreeMap::clear);
        self.count = 0;
    }

    /// Takes every change out, leaving the slots empty, in field order
    /// (extended `e…` before default `p…`).
    pub(super) fn take_all(&mut self) -> Vec<(PropertyKind, String, Option<Value>)> {
        let mut taken = Vec::with_capacity(self.count);
        for kind in [PropertyKind::Extended, PropertyKind::Default] {
            for (name, slot) in &mut self.slots[ByKind::index(kind)] {
                if let Some(change) = slot.take() {
                    taken.push((kind, name.clone(), change));
                }
            }
        }
        self.count = 0;
        taken
    }
}

/// Staged changes on their way to the store, put back into the staging
/// map when dropped (so a failed or cancelled `store()` loses nothing).
pub(super) struct InFlight<'a> {
    pub(super) staged: &'a mut Staging,
    pub(super) changes: Vec<PropertyChange>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        for change in self.changes.drain(..) {
            let (kind, name, value) = match change {
                PropertyChange::Set { kind, name, value } => (kind, name, Some(value)),
                PropertyChange::Delete { kind, name } => (kind, name, None),
            };
            self.staged.put(kind, name.as_str(), value);
        }
    }
}
