//! Pure domain types of statehouse.
//!
//! # Layout
//!
//! - [`Key`] and [`KeyPattern`]: validated document keys and Redis glob patterns.
//! - [`Ttl`]: a time to live of at least one millisecond.
//! - [`TaskRecord`], [`TaskStatus`], [`LogEntry`] and the ids [`TaskId`],
//!   [`ServiceName`], [`UserId`] (`task.rs`): the task lifecycle and its
//!   transition rules.
//! - [`SubjectName`], [`PropertyName`], [`PropertyKind`], [`python_json`]
//!   (`subject.rs`): subjects' names, property kinds, and the JSON text
//!   Python's `json.dumps` writes (KRules compatibility).
//! - [`layout`]: THE key layout of the families, with the escaping of
//!   user-given components and the hash tags.
//! - [`SyncedModel`] (`synced.rs`): a model bound to the key
//!   `{TypeName}:{id}`, its key ([`synced_key`]) and its [`ModelLayout`]
//!   (a hash of fields, or one JSON string).
//! - [`TenantId`], [`TenantKey`], [`TenantPattern`] and the ids of the
//!   tenant repositories (`tenant.rs`): one tenant's hashes and globs.
//! - [`ActionName`], [`TriggerId`], [`BatchName`], [`QueueName`]
//!   (`trigger.rs`): the names of triggers and queues (their keys:
//!   [`layout::TriggerKeys`], [`layout::QueueKeys`]).
//! - [`ChangeEvent`], [`FeedEvent`], [`ConfigEntry`] (`change.rs`): what a
//!   change feed delivers, and the versioned envelope of a configuration
//!   entry with its bounded history.
//! - [`ValidationError`]: which rule an input broke.
//! - [`HumanDuration`]: a duration as people read it, for messages.
//!
//! Every identifier that later reaches a Redis key goes through one validation
//! routine ([`validate_identifier`]), so the rules (not empty, at most
//! [`MAX_KEY_BYTES`] bytes, no control characters) are the same everywhere.
//!
//! Architecture invariant: this crate does no I/O, knows nothing of Redis and
//! nothing of async. It can be used from any layer.

mod change;
mod duration;
mod error;
#[macro_use]
mod key;
pub mod layout;
mod subject;
mod synced;
mod task;
mod tenant;
mod trigger;
mod ttl;

pub use change::{
    ChangeEvent, ChangeKind, ChangeNotice, ConfigEntry, ConfigHead, FeedEvent, PastVersion, ResyncReason,
    VersionMismatch,
};
pub use duration::HumanDuration;
pub use error::ValidationError;
pub use key::{Key, KeyPattern, MAX_KEY_BYTES, MAX_PATTERN_BYTES, validate_identifier};
pub use subject::python_float_repr;
pub use subject::{PropertyKind, PropertyName, PythonFormatter, SubjectName, python_json, write_python_json};
pub use synced::{ModelLayout, SyncedModel, synced_key, synced_key_of, validate_type_name};
pub use task::{LogEntry, ServiceName, TaskId, TaskRecord, TaskStatus, TransitionError, UserId};
pub use tenant::{
    FieldName, HandlerName, PrimaryKey, StateName, TableName, TenantId, TenantKey, TenantPattern, TenantSpace,
};
pub use trigger::{ActionName, BatchName, QueueName, TriggerId};
pub use ttl::Ttl;
