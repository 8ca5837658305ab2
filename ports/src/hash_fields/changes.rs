//! Which fields of a model differ from those a hash holds: the writes of a
//! change ([`changes`](super::changes)), found while serializing the model,
//! so that a field that did not change is compared, never encoded or
//! copied.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::FieldError;
use super::ser::{FieldSink, encode_value, value_is};
use crate::ModelWrite;

/// Above this many fields, lookups go through an ordered map instead of
/// a scan (a model's few fields are scanned faster than a map is built).
const SCAN: usize = 64;

/// One field of the model now, against what the hash holds.
enum Now {
    /// The bytes the hash holds.
    Same,
    /// Other bytes (or a field the hash lacks).
    Set(Vec<u8>),
    /// No field (`None`).
    Gone,
}

/// Compares each field of a model with `old`, the hash's fields.
pub(super) struct Diff<'o> {
    old: &'o [(&'o str, &'o [u8])],
    /// `old` by name, for a model of many fields.
    index: Option<BTreeMap<&'o str, &'o [u8]>>,
    now: Vec<(Cow<'static, str>, Now)>,
}

impl<'o> Diff<'o> {
    pub(super) fn new(old: &'o [(&'o str, &'o [u8])]) -> Self {
        let index = (old.len() > SCAN).then(|| old.iter().copied().collect());
        Self {
            old,
            index,
            now: Vec::new(),
        }
    }

    fn old(&self, name: &str) -> Option<&'o [u8]> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self
                .old
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, bytes)| *bytes),
        }
    }
}

impl FieldSink for Diff<'_> {
    type Ok = ModelWrite;

    fn expect(&mut self, fields: usize) {
        self.now.reserve(fields);
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: Cow<'static, str>, value: &T) -> Result<(), FieldError> {
        let old = self.old(&name);
        let now = if value_is(value, old) {
            if old.is_some() { Now::Same } else { Now::Gone }
        } else {
            // Changed, or not comparable without its bytes: encoded (an
            // encoding error surfaces here) and compared.
            match encode_value(value).map_err(|error| error.in_field(&name))? {
                Some(bytes) if old == Some(bytes.as_slice()) => Now::Same,
                Some(bytes) => Now::Set(bytes),
                None => Now::Gone,
            }
        };
        self.now.push((name, now));
        Ok(())
    }

    fn end(mut self) -> ModelWrite {
        fn kept<'a>((name, now): &'a (Cow<'static, str>, Now)) -> Option<&'a str> {
            (!matches!(now, Now::Gone)).then_some(name.as_ref())
        }
        super::dedup_last_wins(&mut self.now, |(name, _)| name);
        let delete: Vec<String> = if self.now.len() > SCAN {
            let kept: BTreeSet<&str> = self.now.iter().filter_map(kept).collect();
            self.old
                .iter()
                .filter(|(name, _)| !kept.contains(name))
                .map(|(name, _)| (*name).to_owned())
                .collect()
        } else {
            self.old
                .iter()
                .filter(|(name, _)| !self.now.iter().filter_map(kept).any(|field| field == *name))
                .map(|(name, _)| (*name).to_owned())
                .collect()
        };
        let set: Vec<(String, Vec<u8>)> = self
            .now
            .into_iter()
            .filter_map(|(name, now)| match now {
                Now::Set(bytes) => Some((name.into_owned(), bytes)),
                Now::Same | Now::Gone => None,
            })
            .collect();
        if set.is_empty() && delete.is_empty() {
            ModelWrite::Keep
        } else {
            ModelWrite::Fields { set, delete }
        }
    }
}
