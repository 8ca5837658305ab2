use std::sync::Arc;

use serde_json::{Map, Value};
use statehouse_ports::{
    KeyStream, LegacyMove, PageRequest, ServiceName, StoreError, TaskId, TaskIndex, TaskPage, TaskRecord,
    TaskRepository, TaskSpace, TaskStatus, UserId, ValidationExt,
};

/// Task lifecycle: records that services publish about long-running tasks,
/// with a status, a log, and indexes by service and by user.
///
/// Cheap to clone. Ids are validated like keys (not empty, at most 512
/// bytes, no control characters): a bad one is
/// [`StoreError::InvalidInput`] before any I/O. Every write refreshes the
/// TTL of the record and of its indexes (90 days unless configured), in the
/// same atomic step. Each task lives in one of 16 buckets, derived from its
/// id ([`TaskBucket`](crate::TaskBucket)); listings merge them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use statehouse::{Statehouse, TaskStatus};
///
/// let tasks = Statehouse::memory().tasks();
/// tasks.create("export-1", "exporter", "ada").await?;
/// tasks.set_status("export-1", TaskStatus::Running, Some("started")).await?;
/// tasks.append_log("export-1", "50% done").await?;
/// let task = tasks.set_status("export-1", TaskStatus::Completed, Some("done")).await?;
/// assert_eq!(task.log.len(), 3);
/// assert_eq!(tasks.count_by_user("ada").await?, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Tasks {
    repo: Arc<dyn TaskRepository>,
    space: TaskSpace,
}

fn task_id(op: &'static str, id: &str) -> Result<TaskId, StoreError> {
    TaskId::new(id).for_op(op, id)
}

fn service(op: &'static str, name: &str) -> Result<ServiceName, StoreError> {
    ServiceName::new(name).for_op(op, name)
}

fn user(op: &'static str, id: &str) -> Result<UserId, StoreError> {
    UserId::new(id).for_op(op, id)
}

impl Tasks {
    /// Tasks in `space` over `repo`.
    pub fn new(repo: Arc<dyn TaskRepository>, space: TaskSpace) -> Self {
        Self { repo, space }
    }

    /// The same tasks in another space (namespace, TTL, log cap, retries).
    #[must_use]
    pub fn with_space(mut self, space: TaskSpace) -> Self {
        self.space = space;
        self
    }

    /// Where and how these tasks are kept.
    pub fn space(&self) -> &TaskSpace {
        &self.space
    }

    /// The port underneath.
    pub fn repository(&self) -> &Arc<dyn TaskRepository> {
        &self.repo
    }

    fn port(&self) -> &dyn TaskRepository {
        self.repo.as_ref()
    }

    /// Creates (or replaces) a pending task with an empty log.
    pub async fn create(&self, id: &str, service: &str, user: &str) -> Result<TaskRecord, StoreError> {
        self.create_with(id, service, user, Map::new()).await
    }

    /// Creates (or replaces) a pending task with `metadata`.
    pub async fn create_with(
        &self,
        id: &str,
        service: &str,
        user: &str,
        metadata: Map<String, Value>,
    ) -> Result<TaskRecord, StoreError> {
        const OP: &str = "save";
        let record = TaskRecord::new(
            task_id(OP, id)?,
            self::service(OP, service)?,
            self::user(OP, user)?,
            chrono::Utc::now(),
        )
        .with_metadata(metadata);
        self.save(record).await
    }

    /// Creates or replaces `record` as given (stamped with the time of the
    /// write); moves its index entries if its service or user changed.
    /// Returns it as stored. Takes the record (a caller who keeps a copy
    /// clones it): no write copies it.
    pub async fn save(&self, record: TaskRecord) -> Result<TaskRecord, StoreError> {
        self.port().save(&self.space, record).await
    }

    /// The task `id`, or `None`.
    pub async fn get(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.port().get(&self.space, &task_id("get", id)?).await
    }

    /// Moves task `id` to `status`, logging `message` if given. Setting the
    /// status it has only logs; leaving a final status is
    /// [`StoreError::InvalidTransition`] and writes nothing; a missing task
    /// is [`StoreError::NotFound`].
    pub async fn set_status(
        &self,
        id: &str,
        status: TaskStatus,
        message: Option<&str>,
    ) -> Result<TaskRecord, StoreError> {
        let id = task_id("set_status", id)?;
        self.port().set_status(&self.space, &id, status, message).await
    }

    /// Appends `message` to the log of task `id`.
    pub async fn append_log(&self, id: &str, message: &str) -> Result<TaskRecord, StoreError> {
        let id = task_id("append_log", id)?;
        self.port().append_log(&self.space, &id, message).await
    }

    /// One page of a service's tasks, most recently updated first.
    pub async fn list_by_service(&self, service: &str, page: PageRequest) -> Result<TaskPage, StoreError> {
        let index = TaskIndex::Service(self::service("list", service)?);
        self.port().list(&self.space, &index, &page).await
    }

    /// One page of a user's tasks, most recently updated first.
    pub async fn list_by_user(&self, user: &str, page: PageRequest) -> Result<TaskPage, StoreError> {
        let index = TaskIndex::User(self::user("list", user)?);
        self.port().list(&self.space, &index, &page).await
    }

    /// How many live tasks a service has.
    pub async fn count_by_service(&self, service: &str) -> Result<u64, StoreError> {
        let index = TaskIndex::Service(self::service("count", service)?);
        self.port().count(&self.space, &index).await
    }

    /// How many live tasks a user has.
    pub async fn count_by_user(&self, user: &str) -> Result<u64, StoreError> {
        let index = TaskIndex::User(self::user("count", user)?);
        self.port().count(&self.space, &index).await
    }

    /// Deletes task `id` and its index entries. Returns whether it existed.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.port().delete(&self.space, &task_id("delete", id)?).await
    }

    /// The ids of the tasks still stored in the layout before buckets
    /// (`{tasks}:task:<id>`), as a stream: what
    /// [`migrate_legacy`](Self::migrate_legacy) has left to move (in no
    /// particular order; an id may come twice on Redis, which the migration
    /// takes as it is: idempotent). See `docs/tasks.md`, "Migration".
    pub fn stream_legacy_ids(&self) -> KeyStream {
        self.port().legacy_ids(&self.space)
    }

    /// [`stream_legacy_ids`](Self::stream_legacy_ids) collected: each id
    /// once, sorted. Holds them all: for small migrations and checks.
    pub async fn legacy_ids(&self) -> Result<Vec<String>, StoreError> {
        self.stream_legacy_ids().collect_sorted().await
    }

    /// Moves task `id` from the layout before buckets into its bucket and
    /// removes the legacy copy; idempotent. See
    /// [`TaskRepository::migrate_legacy`].
    pub async fn migrate_legacy(&self, id: &str) -> Result<LegacyMove, StoreError> {
        let id = task_id("migrate_legacy", id)?;
        self.port().migrate_legacy(&self.space, &id).await
    }
}
