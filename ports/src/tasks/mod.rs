use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::layout::{TaskBucket, TaskKeys};
use statehouse_domain::{ServiceName, TaskId, TaskRecord, TaskStatus, Ttl, UserId, ValidationError};

use crate::{KeyStream, RetryPolicy, StoreError, decode};

mod combined;
mod page;

pub use combined::{HeldTask, TaskStep, task_result, task_step};
pub use page::{BucketMerge, BucketRead, PageRequest, TaskCursor, TaskPage};

/// Where and how tasks are kept; every [`TaskRepository`] call takes one.
///
/// - `namespace`: the head of the hash tags of these tasks' keys (`tasks`
///   by default): a task's record and index entries are in its bucket, under
///   the tag `{<namespace>:b<bucket>}` ([`TaskBucket`]: 16 buckets, derived
///   from the task id), so each write of a task stays in one Redis Cluster
///   slot while a namespace spreads over the nodes. Any text works (it is
///   escaped).
/// - `ttl`: applied to the record and to every index a write touches, in the
///   same atomic step; a write never shortens a longer TTL. Default 90 days.
/// - `max_log`: keep only the newest entries of a task's log. Default: no cap.
/// - `policy`: the retries of the read-modify-writes (status, log, save).
///
/// ```
/// use std::time::Duration;
/// use statehouse_ports::TaskSpace;
///
/// let space = TaskSpace::default().with_ttl(Duration::from_secs(3600))?.with_max_log(100);
/// assert_eq!(space.namespace(), "tasks");
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpace {
    namespace: String,
    keys: TaskKeys,
    ttl: Ttl,
    max_log: Option<usize>,
    policy: RetryPolicy,
}

impl Default for TaskSpace {
    fn default() -> Self {
        Self::new(Self::DEFAULT_NAMESPACE)
    }
}

impl TaskSpace {
    /// The namespace used unless one is chosen.
    pub const DEFAULT_NAMESPACE: &'static str = "tasks";
    /// The TTL used unless one is chosen: 90 days.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

    /// The defaults in `namespace`.
    pub fn new(namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        Self {
            keys: TaskKeys::new(&namespace),
            namespace,
            ttl: Ttl::days(90),
            max_log: None,
            policy: RetryPolicy::default(),
        }
    }

    /// The same space with another TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self, ValidationError> {
        self.ttl = Ttl::new(ttl)?;
        Ok(self)
    }

    /// The same space keeping at most `max` log entries per task (at least 1).
    #[must_use]
    pub fn with_max_log(mut self, max: usize) -> Self {
        self.max_log = Some(max.max(1));
        self
    }

    /// The same space with another retry policy for read-modify-writes.
    #[must_use]
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The keys of this namespace (before any store prefix).
    pub fn keys(&self) -> &TaskKeys {
        &self.keys
    }

    /// The TTL of records and indexes.
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }

    /// The log cap, if any.
    pub fn max_log(&self) -> Option<usize> {
        self.max_log
    }

    /// The retry policy of read-modify-writes.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Stamps `record` as written at `now` and applies the log cap: what
    /// every write does before storing a record.
    pub fn prepare(&self, record: &mut TaskRecord, now: chrono::DateTime<chrono::Utc>) {
        record.updated_at = now;
        if let Some(max) = self.max_log {
            record.cap_log(max);
        }
    }
}

/// One of the indexes of tasks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskIndex {
    /// The tasks of a service.
    Service(ServiceName),
    /// The tasks of a user.
    User(UserId),
}

impl TaskIndex {
    /// The index's key in `bucket` of `space` (before any store prefix).
    pub fn key(&self, space: &TaskSpace, bucket: TaskBucket) -> String {
        match self {
            Self::Service(service) => space.keys().by_service(bucket, service.as_str()),
            Self::User(user) => space.keys().by_user(bucket, user.as_str()),
        }
    }

    /// The name of the index in every bucket, `{<ns>:b*}:by-service:<name>`
    /// (before any store prefix): what a listing or a count is about.
    pub fn everywhere(&self, space: &TaskSpace) -> String {
        match self {
            Self::Service(service) => space.keys().by_service_everywhere(service.as_str()),
            Self::User(user) => space.keys().by_user_everywhere(user.as_str()),
        }
    }

    /// The index's key in the layout before buckets (for the migration).
    pub fn legacy_key(&self, space: &TaskSpace) -> String {
        match self {
            Self::Service(service) => space.keys().legacy().by_service(service.as_str()),
            Self::User(user) => space.keys().legacy().by_user(user.as_str()),
        }
    }

    /// Whether `record` belongs in this index.
    pub fn holds(&self, record: &TaskRecord) -> bool {
        match self {
            Self::Service(service) => &record.service == service,
            Self::User(user) => &record.user == user,
        }
    }

    /// Both indexes of `record`.
    pub fn of(record: &TaskRecord) -> [TaskIndex; 2] {
        [
            Self::Service(record.service.clone()),
            Self::User(record.user.clone()),
        ]
    }

    /// The indexes a stored record belongs to, read leniently (only its
    /// `service` and `user` fields), so that a record that no longer parses
    /// as a whole is still moved out of its indexes when it is replaced or
    /// deleted.
    pub fn of_stored(bytes: &[u8]) -> Vec<TaskIndex> {
        // Only the two fields are kept; every other one is skipped without
        // building a value (this runs on every save and delete).
        #[derive(serde::Deserialize)]
        struct Owners {
            #[serde(default)]
            service: serde_json::Value,
            #[serde(default)]
            user: serde_json::Value,
        }
        let Ok(owners) = serde_json::from_slice::<Owners>(bytes) else {
            return Vec::new();
        };
        // Fields that are missing or invalid are skipped one by one.
        let mut indexes = Vec::with_capacity(2);
        indexes.extend(serde_json::from_value(owners.service).ok().map(Self::Service));
        indexes.extend(serde_json::from_value(owners.user).ok().map(Self::User));
        indexes
    }
}

impl fmt::Display for TaskIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(service) => write!(f, "service {service}"),
            Self::User(user) => write!(f, "user {user}"),
        }
    }
}

/// A change of one task, as `set_status` and `append_log` make it: what
/// both adapters apply inside their read-modify-write, so the rules live in
/// one place (the domain's, with the error a port reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskChange<'a> {
    /// Move to `status`, logging `message` if given.
    Status {
        /// The new status.
        status: TaskStatus,
        /// The log line, if any.
        message: Option<&'a str>,
    },
    /// Append a line to the log.
    Log(&'a str),
}

impl TaskChange<'_> {
    /// The operation, as errors and spans name it.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Status { .. } => "set_status",
            Self::Log(_) => "append_log",
        }
    }

    /// Applies the change to `record` (stored under `key`) at `now`, then
    /// what every write does ([`TaskSpace::prepare`]). Leaving a final
    /// status is [`StoreError::InvalidTransition`] and changes nothing.
    pub fn apply(
        &self,
        space: &TaskSpace,
        key: &str,
        record: &mut TaskRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        match *self {
            Self::Status { status, message } => {
                record
                    .set_status(status, message, now)
                    .map_err(|error| StoreError::InvalidTransition {
                        op: self.op(),
                        key: key.to_owned(),
                        from: error.from,
                        to: error.to,
                    })?
            }
            Self::Log(message) => record.append_log(message, now),
        }
        space.prepare(record, now);
        Ok(())
    }

    /// THE change of a stored task, for both adapters and a combined
    /// round: `current` (the bytes under `key`) decoded, the change
    /// applied now ([`apply`](Self::apply)), and the record with its
    /// encoding, what the write stores. A missing record is
    /// [`StoreError::NotFound`]; one that does not parse,
    /// [`StoreError::Deserialization`].
    pub fn applied_to(
        &self,
        space: &TaskSpace,
        key: &str,
        current: Option<&[u8]>,
    ) -> Result<(TaskRecord, Vec<u8>), StoreError> {
        let op = self.op();
        let bytes = current.ok_or_else(|| StoreError::NotFound {
            op,
            key: key.to_owned(),
        })?;
        self.applied(space, key, decode(op, key, bytes)?)
    }

    /// `record` (stored under `key`) after this change, with its encoding.
    pub fn applied(
        &self,
        space: &TaskSpace,
        key: &str,
        mut record: TaskRecord,
    ) -> Result<(TaskRecord, Vec<u8>), StoreError> {
        self.apply(space, key, &mut record, chrono::Utc::now())?;
        let encoded = crate::encode(self.op(), key, &record)?;
        Ok((record, encoded))
    }
}

/// What [`TaskRepository::migrate_legacy`] did with one task of the layout
/// before buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegacyMove {
    /// The record moved into its bucket as it was (its update time, so its
    /// place in listings, and its remaining TTL kept), with its index
    /// entries; the legacy record and its legacy index entries are gone.
    Moved,
    /// Its bucket held the same task updated at the same time or later
    /// (written since, or moved by an earlier run that stopped before
    /// removing the legacy copy): that one is kept; the legacy record and
    /// its legacy index entries are gone.
    Superseded,
    /// There was no legacy record (moved already, expired, or deleted).
    Absent,
}

/// THE decision of the migration, for both adapters: given a legacy
/// record (stored under the legacy key `key`) and the record its bucket
/// holds now, if any, the record to write into the bucket (`None`: the
/// bucket's is as new or newer; keep it). A legacy record that does not
/// parse is [`StoreError::Deserialization`] naming `key`, and stays where
/// it is; a bucketed record whose update time does not parse counts as
/// newer (it is kept).
pub fn legacy_move(
    op: &'static str,
    key: &str,
    legacy: &[u8],
    bucketed: Option<&[u8]>,
) -> Result<Option<TaskRecord>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Stamp {
        updated_at: chrono::DateTime<chrono::Utc>,
    }
    let record: TaskRecord = decode(op, key, legacy)?;
    let newer = bucketed.is_some_and(|bytes| {
        serde_json::from_slice::<Stamp>(bytes).map_or(true, |stamp| stamp.updated_at >= record.updated_at)
    });
    Ok((!newer).then_some(record))
}

/// Task records with their status and log, indexed by service and by user.
///
/// # Contract
///
/// Every implementation behaves the same; the contract suite in
/// `statehouse-tests` (`tasks::…`) runs one list of tests against each.
///
/// - A record and its index entries change in one atomic step: no reader
///   ever sees an index entry without its record, or a record missing from an
///   index it belongs to. Saving a record under another service or user moves
///   its index entries in the same step. `delete` removes them too.
/// - Every write stamps `updated_at` with the time of the write, applies
///   [`TaskSpace::max_log`], and applies [`TaskSpace::ttl`] to the record and
///   to every index it touches, in the same atomic step; a write never
///   shortens a longer TTL.
/// - `set_status` and `append_log` are atomic read-modify-writes under
///   [`TaskSpace::policy`] (they may be tried more than once; only running
///   out of attempts is [`StoreError::Conflict`]): concurrent writers lose no
///   log line and no status change. A missing task is
///   [`StoreError::NotFound`]; leaving a final status is
///   [`StoreError::InvalidTransition`] and writes nothing.
/// - Listings are newest first (see [`TaskCursor`]); an expired or deleted
///   task never appears in a listing or a count (stale index entries are
///   skipped, and pruned); a record that does not parse fails alone in its
///   page. Paging from a cursor shows every task not written meanwhile
///   exactly once, in order, with no gap at page or bucket boundaries; a
///   task written meanwhile (created or updated: it moves to the front)
///   shows on no later page, so no task shows twice.
/// - A task's record and index entries live in its bucket
///   ([`TaskBucket`], from its id): every write touches the keys of one
///   bucket only (one Redis Cluster slot). A listing merges the buckets
///   ([`BucketMerge`]) in the order above, each task once.
/// - Errors name the record's or index's key (without the store's prefix):
///   `{tasks:b<bucket>}:task:<id>`; a listing's or count's error that
///   concerns no one bucket names `{tasks:b*}:by-service:<name>`.
/// - Tasks of the layout before buckets (`{tasks}:task:<id>`) are not read
///   by the other calls: [`legacy_ids`](Self::legacy_ids) lists them and
///   [`migrate_legacy`](Self::migrate_legacy) moves them, one at a time
///   (`docs/tasks.md`, "Migration").
/// - Read-only calls (`get`, `list`, `count`) may be served by a read
///   endpoint (a replica); everything else goes to the write endpoint.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TaskRepository: Debug + Send + Sync + 'static {
    /// Creates or replaces `record` (stamped, capped) and its index entries.
    /// Returns the record as stored: `record` itself, stamped and capped.
    /// (Taken by value so that no write clones it; a caller who keeps a
    /// copy clones it.)
    async fn save(&self, space: &TaskSpace, record: TaskRecord) -> Result<TaskRecord, StoreError>;

    /// The record of `id`, or `None`.
    async fn get(&self, space: &TaskSpace, id: &TaskId) -> Result<Option<TaskRecord>, StoreError>;

    /// Moves task `id` to `status`, logging `message` if given; see
    /// [`TaskRecord::set_status`]. Returns the record as stored.
    async fn set_status<'m>(
        &self,
        space: &TaskSpace,
        id: &TaskId,
        status: TaskStatus,
        message: Option<&'m str>,
    ) -> Result<TaskRecord, StoreError>;

    /// Appends `message` to the log of task `id`. Returns the record as stored.
    async fn append_log(
        &self,
        space: &TaskSpace,
        id: &TaskId,
        message: &str,
    ) -> Result<TaskRecord, StoreError>;

    /// One page of the tasks in `index`, newest first.
    async fn list(
        &self,
        space: &TaskSpace,
        index: &TaskIndex,
        page: &PageRequest,
    ) -> Result<TaskPage, StoreError>;

    /// How many live tasks `index` holds.
    async fn count(&self, space: &TaskSpace, index: &TaskIndex) -> Result<u64, StoreError>;

    /// Deletes task `id` and its index entries. Returns whether it existed.
    async fn delete(&self, space: &TaskSpace, id: &TaskId) -> Result<bool, StoreError>;

    /// The ids of the tasks of `space` still stored in the layout before
    /// buckets (a listing of `{<ns>}:task:*`), as a stream, in no
    /// particular order (on Redis a listing may repeat an id, never miss
    /// one present for the whole listing; moving tasks while reading it is
    /// fine). Keys there whose id is no escaping of a valid task id are not
    /// listed (statehouse did not write them).
    fn legacy_ids(&self, space: &TaskSpace) -> KeyStream;

    /// Moves task `id` from the layout before buckets into its bucket (see
    /// [`legacy_move`] for which copy wins), then removes the legacy record
    /// and the task's entries in the legacy indexes, nothing else.
    /// Idempotent: a task moved already is [`LegacyMove::Absent`]; a run cut
    /// short anywhere leaves the task readable in one layout or the other
    /// and is completed by the next. A legacy record written again while it
    /// moves is moved again. A legacy record that does not parse is
    /// [`StoreError::Deserialization`] naming its legacy key, and stays.
    async fn migrate_legacy(&self, space: &TaskSpace, id: &TaskId) -> Result<LegacyMove, StoreError>;
}

macro_rules! forward_task_repository {
    ($wrapper:ident) => {
        #[async_trait]
        impl<T: TaskRepository + ?Sized> TaskRepository for $wrapper<T> {
            async fn save(&self, space: &TaskSpace, record: TaskRecord) -> Result<TaskRecord, StoreError> {
                (**self).save(space, record).await
            }

            async fn get(&self, space: &TaskSpace, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
                (**self).get(space, id).await
            }

            async fn set_status<'m>(
                &self,
                space: &TaskSpace,
                id: &TaskId,
                status: TaskStatus,
                message: Option<&'m str>,
            ) -> Result<TaskRecord, StoreError> {
                (**self).set_status(space, id, status, message).await
            }

            async fn append_log(
                &self,
                space: &TaskSpace,
                id: &TaskId,
                message: &str,
            ) -> Result<TaskRecord, StoreError> {
                (**self).append_log(space, id, message).await
            }

            async fn list(
                &self,
                space: &TaskSpace,
                index: &TaskIndex,
                page: &PageRequest,
            ) -> Result<TaskPage, StoreError> {
                (**self).list(space, index, page).await
            }

            async fn count(&self, space: &TaskSpace, index: &TaskIndex) -> Result<u64, StoreError> {
                (**self).count(space, index).await
            }

            async fn delete(&self, space: &TaskSpace, id: &TaskId) -> Result<bool, StoreError> {
                (**self).delete(space, id).await
            }

            fn legacy_ids(&self, space: &TaskSpace) -> KeyStream {
                (**self).legacy_ids(space)
            }

            async fn migrate_legacy(&self, space: &TaskSpace, id: &TaskId) -> Result<LegacyMove, StoreError> {
                (**self).migrate_legacy(space, id).await
            }
        }
    };
}

forward_task_repository!(Arc);
forward_task_repository!(Box);

/// Compile-time check: the trait stays usable as `Arc<dyn TaskRepository>`.
const _: fn(Arc<dyn TaskRepository>) = |_| {};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_copy_wins_a_migration() {
        let at = |s: i64| chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let mut record = TaskRecord::new(
            TaskId::new("t").unwrap(),
            ServiceName::new("svc").unwrap(),
            UserId::new("u").unwrap(),
            at(0),
        );
        record.updated_at = at(10);
        let legacy = serde_json::to_vec(&record).unwrap();
        let mut newer = record.clone();
        newer.updated_at = at(11);
        let mut older = record.clone();
        older.updated_at = at(9);
        let bytes = |r: &TaskRecord| serde_json::to_vec(r).unwrap();
        assert_eq!(
            legacy_move("m", "k", &legacy, None).unwrap(),
            Some(record.clone())
        );
        assert_eq!(
            legacy_move("m", "k", &legacy, Some(&bytes(&older))).unwrap(),
            Some(record.clone())
        );
        assert_eq!(
            legacy_move("m", "k", &legacy, Some(&bytes(&record))).unwrap(),
            None
        );
        assert_eq!(
            legacy_move("m", "k", &legacy, Some(&bytes(&newer))).unwrap(),
            None
        );
        assert_eq!(legacy_move("m", "k", &legacy, Some(b"{bad")).unwrap(), None);
        let error = legacy_move("m", "k", b"{bad", None).unwrap_err();
        assert_eq!((error.op(), error.key()), ("m", "k"));
    }

    #[test]
    fn stored_owners_are_read_field_by_field() {
        let record = TaskRecord::new(
            TaskId::new("t").unwrap(),
            ServiceName::new("svc").unwrap(),
            UserId::new("u").unwrap(),
            chrono::Utc::now(),
        );
        let mut json = serde_json::to_value(&record).unwrap();
        let both = [
            TaskIndex::Service(record.service.clone()),
            TaskIndex::User(record.user.clone()),
        ];
        assert_eq!(TaskIndex::of_stored(json.to_string().as_bytes()), both);
        json["status"] = "paused".into();
        assert_eq!(
            TaskIndex::of_stored(json.to_string().as_bytes()),
            both,
            "the rest may be bad"
        );
        json["user"] = "".into();
        assert_eq!(
            TaskIndex::of_stored(json.to_string().as_bytes()),
            [TaskIndex::Service(record.service.clone())]
        );
        assert!(TaskIndex::of_stored(b"{not json").is_empty());
        assert!(TaskIndex::of_stored(b"[1,2]").is_empty());
    }

    #[test]
    fn a_change_applies_the_lifecycle_and_the_log_cap() {
        let space = TaskSpace::default().with_max_log(1);
        let now = chrono::Utc::now();
        let mut record = TaskRecord::new(
            TaskId::new("t").unwrap(),
            ServiceName::new("svc").unwrap(),
            UserId::new("u").unwrap(),
            now,
        );
        TaskChange::Log("one")
            .apply(&space, "k", &mut record, now)
            .unwrap();
        TaskChange::Status {
            status: TaskStatus::Completed,
            message: Some("two"),
        }
        .apply(&space, "k", &mut record, now)
        .unwrap();
        assert_eq!(record.log.len(), 1);
        let error = TaskChange::Status {
            status: TaskStatus::Running,
            message: None,
        }
        .apply(&space, "k", &mut record, now)
        .unwrap_err();
        assert_eq!((error.op(), error.key()), ("set_status", "k"));
    }
}
