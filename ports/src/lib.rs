//! The ports of statehouse: object-safe async traits that the app calls and
//! each backend (Redis, memory) implements, with their one error type.
//!
//! # Layout
//!
//! - [`DocumentStore`] (`documents.rs`): the key-value core, moving bytes;
//!   its `# Contract` section is what every backend promises.
//! - [`DocumentStoreExt`] (`ext.rs`): typed JSON helpers over any store,
//!   including `Arc<dyn DocumentStore>`.
//! - [`StoreError`] (`error.rs`): one `#[non_exhaustive]` error, every variant
//!   naming the operation and the key.
//! - [`TaskRepository`] (`tasks/`): task records with status and log,
//!   indexed by service and user; [`TaskSpace`] says where and how.
//! - [`SubjectStore`] (`subjects.rs`): subjects' default and extended JSON
//!   properties in KRules' layout; [`SubjectSpace`] says where.
//! - [`SyncedStore`] (`synced.rs`): synced models under `{TypeName}:{id}`,
//!   a hash of fields or a JSON string ([`ModelLayout`]); their field codec
//!   is [`hash_fields`] (`hash_fields/`).
//! - [`FieldStore`] (`tenants.rs`): tenant-scoped hashes of JSON fields,
//!   behind the tenant repositories; keys are [`TenantKey`]s.
//! - [`TriggerStore`] (`triggers.rs`): per-tenant expiration triggers,
//!   claimed with a lease and acknowledged.
//! - [`QueueStore`] (`queues.rs`): per-tenant FIFO batch queues, pending
//!   tenants per service, leased claims.
//! - [`ChangeFeed`] (`changes.rs`): subscriptions to changes of a key, keys
//!   or a pattern ([`Subscription`], bounded, reporting lag), and the
//!   updates that announce themselves on the feed.
//! - [`KeyStream`] (`listing.rs`): what every listing returns, a stream of
//!   keys fetched page by page ([`KeyPages`]), never collected.
//! - [`RetryPolicy`] (`retry.rs`): bounded, jittered retries of optimistic
//!   updates, and [`RetryPolicy::run`], THE optimistic loop every backend's
//!   read-modify-write and the config store's compare-and-set go through;
//!   [`Backoff`], the same growing delay for reconnects and re-reads.
//! - [`Topology`] (`topology.rs`): what a store is connected to, as it sees
//!   it ([`DocumentStore::topology`]); `recording.rs`: THE metrics switch
//!   ([`metrics_on`]) and the names of the metrics the adapters emit.
//!
//! With the `mock` feature, mockall mocks of every port (`MockDocumentStore`)
//! are available for app-level unit tests of wiring and error paths.
//!
//! Architecture invariant: nothing here names Redis or any other backend, and
//! every trait is usable as `Arc<dyn Trait>`.

mod changes;
pub mod combine;
mod documents;
mod durability;
mod error;
mod ext;
pub mod hash_fields;
mod listing;
mod queues;
mod recording;
mod retry;
mod rounds;
mod subjects;
mod synced;
mod tasks;
mod tenants;
mod topology;
mod triggers;

#[cfg(feature = "mock")]
pub use changes::MockChangeFeed;
pub use changes::Swapped;
pub use changes::{
    AnnouncedUpdateFn, ChangeFeed, DEFAULT_FEED_CAPACITY, Subscription, SubscriptionSender, Watched,
};
pub use combine::{Combiner, FieldStep, JsonFieldFn, Landing, Pass, Role, Ticket, field_result, field_step};
#[cfg(feature = "mock")]
pub use documents::MockDocumentStore;
pub use documents::{
    Boxed, DocumentStep, DocumentStore, Fetched, KeyTtl, SetCondition, SetOptions, Update, UpdateFn, Updated,
    append_to_array, canonical_integer, check_append_item, document_result, document_step,
    increment_overflow_document, not_an_array_document, not_an_integer_document,
};
pub use durability::Durability;
pub use error::{BoxError, Carry, ErrorKind, StoreError, ValidationExt};
pub use ext::{DocumentStoreExt, JsonError, decode, decode_value, encode};
pub use listing::{KeyPages, KeyStream};
#[cfg(feature = "mock")]
pub use queues::MockQueueStore;
pub use queues::{QueueItem, QueueStore};
pub use recording::{FAILOVERS, POOL_WAIT_SECONDS, metrics_on, set_metrics};
pub use retry::{Attempt, Backoff, Optimistic, RetryPolicy};
pub use rounds::Rounds;
#[cfg(feature = "mock")]
pub use subjects::MockSubjectStore;
pub use subjects::{
    FieldChanges, FieldWrites, Loaded, PropertyChange, PropertyFn, PropertyUpdated, SubjectData,
    SubjectSpace, SubjectStore, decode_property, property_increment_overflow, property_key,
    property_not_an_integer,
};
#[cfg(feature = "mock")]
pub use synced::MockSyncedStore;
pub use synced::{
    HeldModel, ModelFn, ModelStep, ModelUpdated, ModelWrite, StoredModel, SyncedStore, fields_of_a_string,
    model_result, model_step,
};
#[cfg(feature = "mock")]
pub use tasks::MockTaskRepository;
pub use tasks::{
    BucketMerge, BucketRead, HeldTask, LegacyMove, PageRequest, TaskChange, TaskCursor, TaskIndex, TaskPage,
    TaskRepository, TaskSpace, TaskStep, legacy_move, task_result, task_step,
};
#[cfg(feature = "mock")]
pub use tenants::MockFieldStore;
pub use tenants::{
    FieldFn, FieldStore, FieldUpdated, Fields, append_to_field, decode_field, decode_fields, encode_field,
    field_writes, increment_overflow, not_an_array, not_an_integer,
};

pub use topology::{
    CLUSTER_SLOTS, ClusterMap, Endpoint, PoolState, SentinelService, SlotRange, Topology, TopologyKind,
};
#[cfg(feature = "mock")]
pub use triggers::MockTriggerStore;
pub use triggers::{Claimed, ClaimedTrigger, PendingTrigger, TriggerStore, millis_to_utc};
pub use triggers::{DueTenants, IndexedTenant};

/// A JSON value (serde_json's): what subject properties hold.
pub use serde_json::Value as JsonValue;
pub use statehouse_domain::layout::{IndexShard, TriggerIndex};
pub use statehouse_domain::layout::{QueueIndex, QueueKeys, ServiceKeys, TaskBucket, TriggerKeys};
pub use statehouse_domain::{ActionName, BatchName, QueueName, TriggerId};
/// Re-exported domain types used in port signatures.
pub use statehouse_domain::{
    ChangeEvent, ChangeKind, ConfigEntry, FeedEvent, Key, KeyPattern, LogEntry, PropertyKind, PropertyName,
    ResyncReason, ServiceName, SubjectName, TaskId, TaskRecord, TaskStatus, Ttl, UserId, ValidationError,
};
pub use statehouse_domain::{
    FieldName, HandlerName, PrimaryKey, StateName, TableName, TenantId, TenantKey, TenantPattern,
};
pub use statehouse_domain::{ModelLayout, SyncedModel};
