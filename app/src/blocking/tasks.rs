//! The blocking twin of [`crate::Tasks`].

use std::sync::Arc;

use statehouse_ports::{LegacyMove, PageRequest, StoreError, TaskPage, TaskRecord, TaskStatus};

use super::{OwnedRuntime, block_on};

/// Blocking twin of [`crate::Tasks`]; every method behaves as its async
/// namesake.
///
/// ```
/// use statehouse::TaskStatus;
/// use statehouse::blocking::Statehouse;
///
/// let tasks = Statehouse::connect("memory://")?.tasks();
/// tasks.create("report-7", "reports", "ada")?;
/// tasks.set_status("report-7", TaskStatus::Running, Some("rendering"))?;
/// assert_eq!(tasks.get("report-7")?.map(|t| t.status), Some(TaskStatus::Running));
/// # Ok::<(), statehouse::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Tasks {
    pub(super) inner: crate::Tasks,
    pub(super) runtime: Arc<OwnedRuntime>,
}

impl Tasks {
    /// See [`crate::Tasks::create`].
    pub fn create(&self, id: &str, service: &str, user: &str) -> Result<TaskRecord, StoreError> {
        block_on(&self.runtime, "save", self.inner.create(id, service, user))
    }

    /// See [`crate::Tasks::create_with`].
    pub fn create_with(
        &self,
        id: &str,
        service: &str,
        user: &str,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<TaskRecord, StoreError> {
        block_on(
            &self.runtime,
            "save",
            self.inner.create_with(id, service, user, metadata),
        )
    }

    /// See [`crate::Tasks::save`].
    pub fn save(&self, record: TaskRecord) -> Result<TaskRecord, StoreError> {
        block_on(&self.runtime, "save", self.inner.save(record))
    }

    /// See [`crate::Tasks::get`].
    pub fn get(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        block_on(&self.runtime, "get", self.inner.get(id))
    }

    /// See [`crate::Tasks::set_status`].
    pub fn set_status(
        &self,
        id: &str,
        status: TaskStatus,
        message: Option<&str>,
    ) -> Result<TaskRecord, StoreError> {
        block_on(
            &self.runtime,
            "set_status",
            self.inner.set_status(id, status, message),
        )
    }

    /// See [`crate::Tasks::append_log`].
    pub fn append_log(&self, id: &str, message: &str) -> Result<TaskRecord, StoreError> {
        block_on(&self.runtime, "append_log", self.inner.append_log(id, message))
    }

    /// See [`crate::Tasks::list_by_service`].
    pub fn list_by_service(&self, service: &str, page: PageRequest) -> Result<TaskPage, StoreError> {
        block_on(&self.runtime, "list", self.inner.list_by_service(service, page))
    }

    /// See [`crate::Tasks::list_by_user`].
    pub fn list_by_user(&self, user: &str, page: PageRequest) -> Result<TaskPage, StoreError> {
        block_on(&self.runtime, "list", self.inner.list_by_user(user, page))
    }

    /// See [`crate::Tasks::count_by_service`].
    pub fn count_by_service(&self, service: &str) -> Result<u64, StoreError> {
        block_on(&self.runtime, "count", self.inner.count_by_service(service))
    }

    /// See [`crate::Tasks::count_by_user`].
    pub fn count_by_user(&self, user: &str) -> Result<u64, StoreError> {
        block_on(&self.runtime, "count", self.inner.count_by_user(user))
    }

    /// See [`crate::Tasks::delete`].
    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        block_on(&self.runtime, "delete", self.inner.delete(id))
    }

    /// See [`crate::Tasks::legacy_ids`].
    pub fn legacy_ids(&self) -> Result<Vec<String>, StoreError> {
        block_on(&self.runtime, "legacy_ids", self.inner.legacy_ids())
    }

    /// See [`crate::Tasks::migrate_legacy`].
    pub fn migrate_legacy(&self, id: &str) -> Result<LegacyMove, StoreError> {
        block_on(&self.runtime, "migrate_legacy", self.inner.migrate_legacy(id))
    }
}
