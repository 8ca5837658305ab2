//! [`SubjectStore`]: subjects with default and extended JSON properties,
//! in KRules' Redis layout.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use statehouse_domain::layout::SubjectKeys;
use statehouse_domain::{KeyPattern, PropertyKind, PropertyName, SubjectName, write_python_json};

use crate::{BoxError, Boxed, JsonError, KeyStream, RetryPolicy, StoreError};

/// Where subjects are kept; every [`SubjectStore`] call takes one.
///
/// - `prefix`: the subject prefix, KRules' `key_prefix`: a subject's hash is
///   `s:<prefix><subject>` (the store's own prefix, if any, in front).
///   Empty by default.
/// - `policy`: the retries of [`SubjectStore::update_property`].
///
/// ```
/// use statehouse_ports::SubjectSpace;
///
/// let space = SubjectSpace::new("app:");
/// assert_eq!(space.key("user:1"), "s:app:user:1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSpace {
    prefix: String,
    keys: SubjectKeys,
    policy: RetryPolicy,
}

impl Default for SubjectSpace {
    fn default() -> Self {
        Self::new("")
    }
}

impl SubjectSpace {
    /// Subjects under `prefix` (verbatim, not escaped), default policy.
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Self {
            keys: SubjectKeys::new(&prefix),
            prefix,
            policy: RetryPolicy::default(),
        }
    }

    /// The same space with another retry policy for read-modify-writes.
    #[must_use]
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The subject prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The retry policy of read-modify-writes.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The keys of this space.
    pub fn keys(&self) -> &SubjectKeys {
        &self.keys
    }

    /// The key of `subject`'s hash (before any store prefix).
    pub fn key(&self, subject: &str) -> String {
        self.keys.subject(subject)
    }
}

/// What names a property in errors: `<subject key> property <field>`, e.g.
/// `s:user:1 property pcount`.
pub fn property_key(subject_key: &str, field: &str) -> String {
    format!("{subject_key} property {field}")
}

/// The error of [`SubjectStore::increment_property`] on a property that
/// holds no integer.
pub fn property_not_an_integer(op: &'static str, subject_key: &str, field: &str) -> StoreError {
    StoreError::deserialization(
        op,
        property_key(subject_key, field),
        "JSON integer (i64)",
        "the property holds no integer",
    )
}

/// The error of [`SubjectStore::increment_property`] whose result would
/// leave the `i64` range.
pub fn property_increment_overflow(op: &'static str, subject_key: &str, field: &str) -> StoreError {
    StoreError::invalid_input(
        op,
        property_key(subject_key, field),
        "increment or decrement would overflow",
    )
}

/// A property value read from the store, or why it could not be read.
pub type Loaded = Result<Value, StoreError>;

/// A whole subject as loaded: both kinds of properties by name. A property
/// whose stored text is not JSON is an `Err` ([`StoreError::Deserialization`]
/// naming the subject and the property) in its place; the others load.
#[derive(Debug, Default)]
pub struct SubjectData {
    /// The default properties (`p` fields).
    pub default: BTreeMap<String, Loaded>,
    /// The extended properties (`e` fields).
    pub extended: BTreeMap<String, Loaded>,
}

impl SubjectData {
    /// Decodes the fields of a subject's hash (what both adapters do after
    /// reading it): fields without the `p`/`e` marker, or whose name is not
    /// UTF-8, are ignored; each value is decoded alone.
    pub fn from_fields<'a>(
        op: &'static str,
        subject_key: &str,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Self {
        let mut data = Self::default();
        for (field, value) in fields {
            let Ok(field) = std::str::from_utf8(field) else {
                continue;
            };
            let Some((kind, name)) = PropertyKind::parse_field(field) else {
                continue;
            };
            let decoded = decode_property(op, subject_key, field, value);
            data.of_kind_mut(kind).insert(name.to_owned(), decoded);
        }
        data
    }

    /// The properties of `kind`.
    pub fn of_kind(&self, kind: PropertyKind) -> &BTreeMap<String, Loaded> {
        match kind {
            PropertyKind::Default => &self.default,
            PropertyKind::Extended => &self.extended,
        }
    }

    /// The properties of `kind`, mutably.
    pub fn of_kind_mut(&mut self, kind: PropertyKind) -> &mut BTreeMap<String, Loaded> {
        match kind {
            PropertyKind::Default => &mut self.default,
            PropertyKind::Extended => &mut self.extended,
        }
    }

    /// Whether the subject has no property (a missing subject loads empty).
    pub fn is_empty(&self) -> bool {
        self.default.is_empty() && self.extended.is_empty()
    }
}

/// Decodes one stored property value, naming the subject and the property
/// (never the value) on failure.
pub fn decode_property(op: &'static str, subject_key: &str, field: &str, bytes: &[u8]) -> Loaded {
    serde_json::from_slice(bytes).map_err(|error| {
        StoreError::deserialization(
            op,
            property_key(subject_key, field),
            "JSON value",
            JsonError::without_data(&error),
        )
    })
}

/// One change of a [`SubjectStore::store`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyChange {
    /// Insert or overwrite a property.
    Set {
        /// Its kind.
        kind: PropertyKind,
        /// Its name.
        name: PropertyName,
        /// Its new value.
        value: Value,
    },
    /// Delete a property (missing is fine).
    Delete {
        /// Its kind.
        kind: PropertyKind,
        /// Its name.
        name: PropertyName,
    },
}

/// The field of a change: its kind's marker and its name, which compare as
/// `<marker><name>` does.
fn field_of(change: &PropertyChange) -> (char, &str) {
    match change {
        PropertyChange::Set { kind, name, .. } | PropertyChange::Delete { kind, name } => {
            (kind.marker(), name.as_str())
        }
    }
}

/// Whether change `a`'s field comes strictly before `b`'s: the kinds'
/// markers first (one byte each), the names only for the same kind.
fn field_before(a: &PropertyChange, b: &PropertyChange) -> bool {
    let ((a_marker, a_name), (b_marker, b_name)) = (field_of(a), field_of(b));
    if a_marker != b_marker {
        return a_marker < b_marker;
    }
    a_name.as_bytes() < b_name.as_bytes()
}

/// The changes of a [`SubjectStore::store`] batch that are written, borrowed:
/// the last change of each field (a later change of a field wins), in field
/// order. What both adapters write: [`FieldWrites`] encodes them, the Redis
/// adapter writes them straight into its command.
///
/// A batch already in strict field order (one change per field, as a
/// `Subject` handle's batches are) is taken as it is, with no allocation.
#[derive(Debug, Clone)]
pub struct FieldChanges<'a> {
    changes: &'a [PropertyChange],
    /// The positions in `changes` of the changes written, in field order;
    /// `None`: all of them, in their order.
    order: Option<Vec<usize>>,
    /// How many of them are sets.
    sets: usize,
}

impl<'a> FieldChanges<'a> {
    /// The changes written of `changes`.
    pub fn of(changes: &'a [PropertyChange]) -> Self {
        let in_order = changes.windows(2).all(|pair| field_before(&pair[0], &pair[1]));
        let order = (!in_order).then(|| {
            // By field, then by position, so the last change of each field
            // ends its run.
            let mut order: Vec<usize> = (0..changes.len()).collect();
            order.sort_by(|&a, &b| field_of(&changes[a]).cmp(&field_of(&changes[b])).then(a.cmp(&b)));
            let mut last = Vec::with_capacity(order.len());
            let mut order = order.into_iter().peekable();
            while let Some(i) = order.next() {
                if order
                    .peek()
                    .is_none_or(|&next| field_of(&changes[next]) != field_of(&changes[i]))
                {
                    last.push(i);
                }
            }
            last
        });
        let is_set = |change: &PropertyChange| matches!(change, PropertyChange::Set { .. });
        let sets = match &order {
            None => changes.iter().filter(|change| is_set(change)).count(),
            Some(order) => order.iter().filter(|&&k| is_set(&changes[k])).count(),
        };
        Self { changes, order, sets }
    }

    /// The changes written, in field order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a PropertyChange> + '_ {
        let changes = self.changes;
        (0..self.len()).map(move |k| match &self.order {
            None => &changes[k],
            Some(order) => &changes[order[k]],
        })
    }

    /// How many changes are written.
    pub fn len(&self) -> usize {
        self.order.as_ref().map_or(self.changes.len(), Vec::len)
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of them set a field.
    pub fn sets(&self) -> usize {
        self.sets
    }

    /// How many of them delete a field.
    pub fn deletes(&self) -> usize {
        self.len() - self.sets
    }
}

/// The field-level writes of a [`SubjectStore::store`] batch
/// ([`FieldChanges`]), encoded: the fields to set with their stored text,
/// and the fields to delete. What the memory adapter writes.
///
/// Every field name and text is encoded into one buffer, so a batch costs a
/// few allocations however many properties it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldWrites {
    /// Field names and texts, back to back.
    buf: Vec<u8>,
    /// `(field, JSON text)` to set, as ranges of `buf`, in field order.
    sets: Vec<(Range<usize>, Range<usize>)>,
    /// Fields to delete, as ranges of `buf`, in field order.
    deletes: Vec<Range<usize>>,
}

impl FieldWrites {
    /// The writes of `changes`.
    pub fn of(changes: &[PropertyChange]) -> Self {
        let written = FieldChanges::of(changes);
        let mut writes = Self {
            buf: Vec::with_capacity(written.len() * 24),
            sets: Vec::with_capacity(written.sets()),
            deletes: Vec::with_capacity(written.deletes()),
        };
        for change in written.iter() {
            let (marker, name) = field_of(change);
            let start = writes.buf.len();
            let mut utf8 = [0u8; 4];
            writes
                .buf
                .extend_from_slice(marker.encode_utf8(&mut utf8).as_bytes());
            writes.buf.extend_from_slice(name.as_bytes());
            let field = start..writes.buf.len();
            match change {
                PropertyChange::Set { value, .. } => {
                    write_python_json(value, &mut writes.buf);
                    writes.sets.push((field.clone(), field.end..writes.buf.len()));
                }
                PropertyChange::Delete { .. } => writes.deletes.push(field),
            }
        }
        writes
    }

    /// `(field, JSON text)` to set, in field order.
    pub fn sets(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.sets
            .iter()
            .map(|(field, text)| (&self.buf[field.clone()], &self.buf[text.clone()]))
    }

    /// Fields to delete, in field order.
    pub fn deletes(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.deletes.iter().map(|field| &self.buf[field.clone()])
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.deletes.is_empty()
    }
}

/// The synchronous closure of [`SubjectStore::update_property`]: it gets the
/// current value (`None` when the property is missing; `Some(Value::Null)`
/// when it holds `null`) and returns the new one. An `Err` aborts the
/// update ([`StoreError::Aborted`]), writing nothing.
///
/// It **may run more than once** (when the subject changes between read and
/// write); keep it free of side effects.
pub type PropertyFn<'a> = dyn FnMut(Option<&Value>) -> Result<Value, BoxError> + Send + 'a;

/// The result of [`SubjectStore::update_property`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyUpdated {
    /// The value before the update (`None`: the property was missing).
    pub old: Option<Value>,
    /// The value written.
    pub new: Value,
    /// How many times the closure ran (1 without conflicts).
    pub attempts: u32,
}

/// Subjects: one Redis hash per subject, in KRules' layout, so Python
/// services using KRules share them.
///
/// # Contract
///
/// Every implementation behaves the same; the contract suite in
/// `statehouse-tests` (`subjects::…`) runs one list of tests against each.
///
/// - A subject is the hash `s:<space prefix><subject>`; property `name` of
///   kind default is field `p<name>`, extended `e<name>`; values are JSON
///   text as Python's `json.dumps` writes it
///   ([`python_json`](statehouse_domain::python_json)). Fields without the
///   marker are ignored by every read.
/// - A missing property (`None`) and a property holding `null`
///   (`Some(Value::Null)`) stay distinct.
/// - `load` reads both kinds in one round trip; a property whose text is not
///   JSON fails alone ([`StoreError::Deserialization`] naming
///   `<subject key> property <field>`); a missing subject loads empty.
/// - `store` writes a batch of sets and deletes atomically in one round
///   trip, field by field: properties it does not name are left as they are
///   (a concurrent writer's property survives). An empty batch writes
///   nothing.
/// - `update_property` is an atomic read-modify-write of one property under
///   [`SubjectSpace::policy`] (the closure may run more than once; only
///   running out of attempts is [`StoreError::Conflict`]); concurrent
///   updates lose nothing. A stored value that is not JSON fails with
///   `Deserialization` before the closure runs.
/// - `list` matches names against a Redis glob pattern relative to the
///   space's prefix (the prefix itself is taken literally), by `SCAN`,
///   streamed, each once, in no particular order; only subjects (hashes)
///   are listed.
/// - A subject key holding another Redis type is [`StoreError::WrongType`]
///   naming the subject's key, and nothing is written.
/// - Errors name the subject's key without the store's prefix.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SubjectStore: Debug + Send + Sync + 'static {
    /// Both kinds of properties of `subject` (empty if it does not exist).
    async fn load(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<SubjectData, StoreError>;

    /// Applies `changes` atomically in one round trip (in order: a later
    /// change of the same field wins).
    async fn store(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        changes: &[PropertyChange],
    ) -> Result<(), StoreError>;

    /// One property, or `None` if it is missing.
    async fn get_property(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
    ) -> Result<Option<Value>, StoreError>;

    /// Atomic read-modify-write of one property; see [`PropertyFn`].
    async fn update_property<'a>(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
        f: &mut PropertyFn<'a>,
    ) -> Result<PropertyUpdated, StoreError>;

    /// Adds `by` to the integer property in one atomic step (one round
    /// trip, `HINCRBY` on Redis) and returns the new value. A missing
    /// property (or subject) counts as `0`. A property whose text is not an
    /// integer in canonical form is [`StoreError::Deserialization`], leaving
    /// the `i64` range [`StoreError::InvalidInput`], a key of another type
    /// [`StoreError::WrongType`]: each names `<subject key> property
    /// <field>` (or the key) and writes nothing.
    async fn increment_property(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
        by: i64,
    ) -> Result<i64, StoreError>;

    /// Deletes the subject and all its properties; returns whether it existed.
    /// A key of another Redis type is `WrongType` and is left as it is.
    async fn delete_subject(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<bool, StoreError>;

    /// The names of the subjects matching `pattern`, each once, as a
    /// stream (no I/O until it is read; see [`KeyPages`](crate::KeyPages)).
    fn list(&self, space: &SubjectSpace, pattern: &KeyPattern) -> KeyStream;

    /// Whether the subject exists (has at least one field); a key of
    /// another Redis type is `WrongType`.
    async fn exists(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<bool, StoreError>;
}

/// Forwards the trait through a smart pointer by handing back the inner
/// store's boxed future as is: written out (not with `#[async_trait]`, which
/// would box a second future around the first), so `Arc<dyn SubjectStore>`
/// costs nothing over calling the store directly (as the documents port's
/// forwarding does).
macro_rules! forward_subject_store {
    ($wrapper:ident) => {
        impl<T: SubjectStore + ?Sized> SubjectStore for $wrapper<T> {
            fn load<'s, 'a, 'n, 'f>(
                &'s self,
                space: &'a SubjectSpace,
                subject: &'n SubjectName,
            ) -> Boxed<'f, SubjectData>
            where
                's: 'f,
                'a: 'f,
                'n: 'f,
                Self: 'f,
            {
                (**self).load(space, subject)
            }

            fn store<'s, 'a, 'n, 'c, 'f>(
                &'s self,
                space: &'a SubjectSpace,
                subject: &'n SubjectName,
                changes: &'c [PropertyChange],
            ) -> Boxed<'f, ()>
            where
                's: 'f,
                'a: 'f,
                'n: 'f,
                'c: 'f,
                Self: 'f,
            {
                (**self).store(space, subject, changes)
            }

            fn get_property<'s, 'a, 'n, 'p, 'f>(
                &'s self,
                space: &'a SubjectSpace,
                subject: &'n SubjectName,
                kind: PropertyKind,
                name: &'p PropertyName,
            ) -> Boxed<'f, Option<Value>>
            where
                's: 'f,
                'a: 'f,
                'n: 'f,
                'p: 'f,
                Self: 'f,
            {
                (**self).get_property(space, subject, kind, name)
            }

            fn update_property<'u, 's, 'a, 'n, 'p, 'c, 'f>(
                &'s self,
                space: &'a SubjectSpace,
                subject: &'n SubjectName,
                kind: PropertyKind,
                name: &'p PropertyName,
                f: &'c mut PropertyFn<'u>,
            ) -> Boxed<'f, PropertyUpdated>
            where
                'u: 'f,
                's: 'f,
                'a: 'f,
                'n: 'f,
                'p: 'f,
                'c: 'f,
                Self: 'f,
            {
                (**self).update_property(space, subject, kind, name, f)
            }

            fn increment_property<'s, 'a, 'n, 'p, 'f>(
                &'s self,
                space: &'a SubjectSpace,
                subject: &'n SubjectName,
                kind: PropertyKind,
                name: &'p PropertyName,
                by: i64,
            ) -> Boxed<'f, i64>
            where
                's: 'f,
                'a: 'f,
                'n: 'f,
                'p: 'f,
                Self: 'f,
            {
                (**self).increment_property(space, subject, kind, name, by)
            }

            fn delete_subject<'s, 'a, 'n, 'f>(
                &'s self,
                space: &'a SubjectSpace,
                subject: &'n SubjectName,
            ) -> Boxed<'f, bool>
            where
                's: 'f,
                'a: 'f,
                'n: 'f,
                Self: 'f,
            {
                (**self).delete_subject(space, subject)
            }

            fn list(&self, space: &SubjectSpace, pattern: &KeyPattern) -> KeyStream {
                (**self).list(space, pattern)
            }

            fn exists<'s, 'a, 'n, 'f>(
                &'s self,
                space: &'a SubjectSpace,
                subject: &'n SubjectName,
            ) -> Boxed<'f, bool>
            where
                's: 'f,
                'a: 'f,
                'n: 'f,
                Self: 'f,
            {
                (**self).exists(space, subject)
            }
        }
    };
}

forward_subject_store!(Arc);
forward_subject_store!(Box);

/// Compile-time check: the trait stays usable as `Arc<dyn SubjectStore>`.
const _: fn(Arc<dyn SubjectStore>) = |_| {};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_space_has_no_subject_prefix() {
        assert_eq!(SubjectSpace::default().key("u"), "s:u");
    }

    #[test]
    fn loading_skips_unmarked_fields_and_fails_bad_values_alone() {
        let fields: [(&[u8], &[u8]); 5] = [
            (b"pname", b"\"John\""),
            (b"eorigin", b"null"),
            (b"xjunk", b"1"),
            (b"pbad", b"{not json"),
            (b"\xff", b"1"),
        ];
        let data = SubjectData::from_fields("load", "s:u", fields);
        assert_eq!(data.default["name"].as_ref().unwrap(), &Value::from("John"));
        assert_eq!(data.extended["origin"].as_ref().unwrap(), &Value::Null);
        let error = data.default["bad"].as_ref().unwrap_err();
        assert_eq!(error.key(), "s:u property pbad");
        assert_eq!(data.default.len() + data.extended.len(), 3);
    }

    #[test]
    fn a_later_change_of_a_field_wins() {
        let name = PropertyName::new("a").unwrap();
        let set = |value: i32| PropertyChange::Set {
            kind: PropertyKind::Default,
            name: name.clone(),
            value: value.into(),
        };
        let delete = PropertyChange::Delete {
            kind: PropertyKind::Default,
            name: name.clone(),
        };
        let writes = FieldWrites::of(&[set(1), delete.clone()]);
        assert_eq!(writes.deletes().collect::<Vec<_>>(), [b"pa"]);
        assert_eq!(writes.sets().len(), 0);
        let writes = FieldWrites::of(&[delete, set(2)]);
        assert_eq!(writes.sets().collect::<Vec<_>>(), [(&b"pa"[..], &b"2"[..])]);
        assert!(FieldWrites::of(&[]).is_empty());
    }

    #[test]
    fn a_batch_in_field_order_is_written_as_it_is_and_another_is_reduced() {
        let change = |kind: PropertyKind, name: &str, value: Option<i32>| {
            let name = PropertyName::new(name).unwrap();
            match value {
                Some(value) => PropertyChange::Set {
                    kind,
                    name,
                    value: value.into(),
                },
                None => PropertyChange::Delete { kind, name },
            }
        };
        let (e, p) = (PropertyKind::Extended, PropertyKind::Default);
        let in_order = [
            change(e, "z", None),
            change(p, "a", Some(1)),
            change(p, "b", Some(2)),
        ];
        let written = FieldChanges::of(&in_order);
        assert!(written.order.is_none());
        assert_eq!((written.len(), written.sets(), written.deletes()), (3, 2, 1));
        assert!(written.iter().eq(in_order.iter()));
        let mixed = [
            change(p, "b", Some(1)),
            change(e, "z", Some(2)),
            change(p, "a", None),
            change(p, "b", None),
            change(p, "a", Some(3)),
        ];
        let written = FieldChanges::of(&mixed);
        let fields: Vec<_> = written.iter().map(field_of).collect();
        assert_eq!(fields, [('e', "z"), ('p', "a"), ('p', "b")]);
        assert!(written.iter().eq([&mixed[1], &mixed[4], &mixed[3]]));
        assert_eq!((written.sets(), written.deletes()), (2, 1));
        assert!(FieldChanges::of(&[]).is_empty());
    }

    #[test]
    fn changes_name_their_field_and_encode_like_python() {
        let set = PropertyChange::Set {
            kind: PropertyKind::Extended,
            name: PropertyName::new("tags").unwrap(),
            value: serde_json::json!(["é", 1e20]),
        };
        let writes = FieldWrites::of(&[set]);
        assert_eq!(
            writes.sets().collect::<Vec<_>>(),
            [(&b"etags"[..], &br#"["\u00e9", 1e+20]"#[..])]
        );
    }
}
