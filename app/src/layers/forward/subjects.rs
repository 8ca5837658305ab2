use statehouse_domain::KeyPattern;
use statehouse_ports::{
    Boxed, JsonValue, KeyStream, PropertyChange, PropertyFn, PropertyKind, PropertyName, PropertyUpdated,
    SubjectData, SubjectName, SubjectSpace, SubjectStore,
};

use super::{Layer, Layered, Op, paged};

/// The key a subject call names: the subject's key (the pattern for
/// listings), built only if a layer formats it; `attempts` for
/// `update_property`. Idempotent: the reads (`load`, `get_property`,
/// `list`, `exists`). Not: the writes (a timed-out EXEC has an unknown
/// outcome).
impl<L: Layer, S: SubjectStore> SubjectStore for Layered<L, S> {
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
        self.layer
            .around_idempotent(Op::lazy("load", || space.key(subject.as_str())), || {
                self.inner.load(space, subject)
            })
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
        self.layer.around(
            Op::lazy("store", || space.key(subject.as_str())),
            self.inner.store(space, subject, changes),
        )
    }

    fn get_property<'s, 'a, 'n, 'p, 'f>(
        &'s self,
        space: &'a SubjectSpace,
        subject: &'n SubjectName,
        kind: PropertyKind,
        name: &'p PropertyName,
    ) -> Boxed<'f, Option<JsonValue>>
    where
        's: 'f,
        'a: 'f,
        'n: 'f,
        'p: 'f,
        Self: 'f,
    {
        self.layer.around_idempotent(
            Op::lazy("get_property", || space.key(subject.as_str())),
            move || self.inner.get_property(space, subject, kind, name),
        )
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
        self.layer.around(
            Op::lazy("update_property", || space.key(subject.as_str()))
                .counting(|updated: &PropertyUpdated| updated.attempts),
            self.inner.update_property(space, subject, kind, name, f),
        )
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
        self.layer.around(
            Op::lazy("increment_property", || space.key(subject.as_str())),
            self.inner.increment_property(space, subject, kind, name, by),
        )
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
        self.layer.around(
            Op::lazy("delete_subject", || space.key(subject.as_str())),
            self.inner.delete_subject(space, subject),
        )
    }

    fn list(&self, space: &SubjectSpace, pattern: &KeyPattern) -> KeyStream {
        paged(
            &self.layer,
            "list",
            space.keys().pattern(pattern.as_str()),
            self.inner.list(space, pattern),
        )
    }

    fn exists<'s, 'a, 'n, 'f>(&'s self, space: &'a SubjectSpace, subject: &'n SubjectName) -> Boxed<'f, bool>
    where
        's: 'f,
        'a: 'f,
        'n: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::lazy("exists", || space.key(subject.as_str())), || {
                self.inner.exists(space, subject)
            })
    }
}
