use statehouse_ports::{
    Boxed, KeyStream, LegacyMove, PageRequest, TaskId, TaskIndex, TaskPage, TaskRecord, TaskRepository,
    TaskSpace, TaskStatus,
};

use super::{Layer, Layered, Op, paged};

/// The key a task call names: the record's key, or the index's key for
/// listings and counts (built only if a layer formats it). Idempotent: the
/// reads (`get`, `list`, `count`, `legacy_ids`) and the migration of a
/// task (`migrate_legacy`: made again, it finds the task moved). Not: the
/// writes (a timed-out EXEC has an unknown outcome, and a repeated
/// `append_log` would log twice).
impl<L: Layer, S: TaskRepository> TaskRepository for Layered<L, S> {
    fn save<'s, 'a, 'f>(&'s self, space: &'a TaskSpace, record: TaskRecord) -> Boxed<'f, TaskRecord>
    where
        's: 'f,
        'a: 'f,
        Self: 'f,
    {
        // The record moves into the call; the key is of its id.
        let id = record.id.clone();
        self.layer.around(
            Op::lazy("save", move || space.keys().record(id.as_str())),
            self.inner.save(space, record),
        )
    }

    fn get<'s, 'a, 'i, 'f>(&'s self, space: &'a TaskSpace, id: &'i TaskId) -> Boxed<'f, Option<TaskRecord>>
    where
        's: 'f,
        'a: 'f,
        'i: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::lazy("get", || space.keys().record(id.as_str())), || {
                self.inner.get(space, id)
            })
    }

    fn set_status<'m, 's, 'a, 'i, 'f>(
        &'s self,
        space: &'a TaskSpace,
        id: &'i TaskId,
        status: TaskStatus,
        message: Option<&'m str>,
    ) -> Boxed<'f, TaskRecord>
    where
        'm: 'f,
        's: 'f,
        'a: 'f,
        'i: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::lazy("set_status", || space.keys().record(id.as_str())),
            self.inner.set_status(space, id, status, message),
        )
    }

    fn append_log<'s, 'a, 'i, 'm, 'f>(
        &'s self,
        space: &'a TaskSpace,
        id: &'i TaskId,
        message: &'m str,
    ) -> Boxed<'f, TaskRecord>
    where
        's: 'f,
        'a: 'f,
        'i: 'f,
        'm: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::lazy("append_log", || space.keys().record(id.as_str())),
            self.inner.append_log(space, id, message),
        )
    }

    fn list<'s, 'a, 'x, 'p, 'f>(
        &'s self,
        space: &'a TaskSpace,
        index: &'x TaskIndex,
        page: &'p PageRequest,
    ) -> Boxed<'f, TaskPage>
    where
        's: 'f,
        'a: 'f,
        'x: 'f,
        'p: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::lazy("list", || index.everywhere(space)), || {
                self.inner.list(space, index, page)
            })
    }

    fn count<'s, 'a, 'x, 'f>(&'s self, space: &'a TaskSpace, index: &'x TaskIndex) -> Boxed<'f, u64>
    where
        's: 'f,
        'a: 'f,
        'x: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::lazy("count", || index.everywhere(space)), || {
                self.inner.count(space, index)
            })
    }

    fn delete<'s, 'a, 'i, 'f>(&'s self, space: &'a TaskSpace, id: &'i TaskId) -> Boxed<'f, bool>
    where
        's: 'f,
        'a: 'f,
        'i: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::lazy("delete", || space.keys().record(id.as_str())),
            self.inner.delete(space, id),
        )
    }

    fn legacy_ids(&self, space: &TaskSpace) -> KeyStream {
        paged(
            &self.layer,
            "legacy_ids",
            space.keys().legacy().records(),
            self.inner.legacy_ids(space),
        )
    }

    fn migrate_legacy<'s, 'a, 'i, 'f>(&'s self, space: &'a TaskSpace, id: &'i TaskId) -> Boxed<'f, LegacyMove>
    where
        's: 'f,
        'a: 'f,
        'i: 'f,
        Self: 'f,
    {
        self.layer.around_idempotent(
            Op::lazy("migrate_legacy", || space.keys().legacy().record(id.as_str())),
            || self.inner.migrate_legacy(space, id),
        )
    }
}
