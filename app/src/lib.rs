//! statehouse keeps typed application state in Redis so that many services
//! (and many processes of one service) share it safely, and swaps Redis for
//! an in-memory store that behaves the same in tests.
//!
//! # Layout
//!
//! - [`Statehouse`] (`statehouse.rs`): the composition root. Picks the
//!   backend from a URL (`memory://`, `redis://`, `rediss://`), or takes
//!   ports you built ([`Ports`]), stacks the layers and hands out facades.
//! - [`Documents`] (`documents.rs`): typed JSON documents.
//! - [`Tasks`] (`tasks.rs`): task records with status, log and indexes.
//! - [`Subjects`], [`Subject`] (`subjects/`): subjects' JSON properties
//!   in KRules' layout, cached and staged per handle.
//! - [`Synced`] (`synced/`): a [`SyncedModel`] bound to the key
//!   `{TypeName}:{id}` (a hash of fields, as Python's pydantic-state
//!   writes it, or a JSON string), changed atomically and written through
//!   field by field; [`Models`], the port they load through.
//! - [`Tenant`] (`tenants/`): one tenant's repositories ([`Users`],
//!   [`HandlerStates`], [`Tables`], [`SharedStates`]) over the
//!   [`FieldStore`] port, strictly isolated per tenant, and the task-local
//!   current [`SharedState`].
//! - [`Triggers`] (`triggers/`): per-tenant expiration triggers, claimed
//!   by listeners with a lease, one tenant's or every tenant's.
//! - [`Queues`] (`queues.rs`): per-tenant FIFO batch queues with pending
//!   tenants per service and leased claims.
//! - [`ConfigStore`] (`config_store/`): typed, versioned configuration
//!   with a local cache kept current by the change feed, and watchers
//!   ([`Statehouse::watch`] is the raw feed).
//! - [`layers`]: decorators over any port: [`layers::Traced`] (a `tracing`
//!   span per call) and [`layers::Retrying`] (temporary failures of
//!   idempotent calls).
//! - [`blocking`] (`blocking/`): the synchronous twin of the API.
//! - [`Settings`] (`config.rs`): configuration, also from `STATEHOUSE_*`
//!   environment variables; secrets never printed.
//! - [`guide`]: the user guides, whose examples run as doc tests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
//! let state = statehouse::Statehouse::connect("memory://").await?;
//! let docs = state.documents();
//! docs.set("config:theme", &"dark").await?;
//! assert_eq!(docs.get::<String>("config:theme").await?.as_deref(), Some("dark"));
//! # Ok(()) }
//! ```
//!
//! Architecture invariant: this is the only crate that names concrete
//! adapters (`statehouse-redis`, `statehouse-memory`); everything it hands
//! out is typed over the ports.

pub mod blocking;
mod config;
mod config_store;
mod documents;
pub mod layers;
mod queues;
mod statehouse;
mod subjects;
mod synced;
mod tasks;
mod tenants;
mod triggers;

pub use config::Settings;
pub use config_store::{BadConfig, ConfigStore, Snapshot, Versioned};
pub use documents::Documents;
pub use queues::{Item, Queues};
pub use statehouse::{Ports, Statehouse};
pub use statehouse_domain::{ModelLayout, SyncedModel};
pub use statehouse_ports::Durability;
pub use statehouse_ports::Swapped;
pub use statehouse_ports::{
    ActionName, BatchName, ChangeEvent, ChangeFeed, ChangeKind, Claimed, ClaimedTrigger, FeedEvent,
    PendingTrigger, QueueItem, QueueName, QueueStore, ResyncReason, Subscription, TriggerId, TriggerStore,
    Watched,
};
pub use statehouse_ports::{
    DocumentStore, DocumentStoreExt, ErrorKind, Key, KeyPattern, KeyTtl, LogEntry, PageRequest, RetryPolicy,
    ServiceName, SetCondition, SetOptions, StoreError, TaskCursor, TaskId, TaskIndex, TaskPage, TaskRecord,
    TaskRepository, TaskSpace, TaskStatus, Ttl, Update, Updated, UserId, ValidationError,
};
pub use statehouse_ports::{DueTenants, IndexedTenant};
pub use statehouse_ports::{FieldName, FieldStore, FieldUpdated, Fields, TenantId, TenantKey, TenantPattern};
pub use statehouse_ports::{
    JsonValue, PropertyChange, PropertyKind, PropertyName, PropertyUpdated, SubjectData, SubjectName,
    SubjectSpace, SubjectStore,
};
pub use statehouse_ports::{KeyPages, KeyStream};
pub use statehouse_ports::{LegacyMove, TaskBucket};
pub use statehouse_ports::{ModelUpdated, ModelWrite, StoredModel, SyncedStore};
pub use statehouse_ports::{Topology, TopologyKind};
pub use subjects::{PropertyChanged, Subject, Subjects};
pub use synced::{Models, Synced, SyncedBuilder};
pub use tasks::Tasks;
pub use tenants::{
    BlockingSharedState, HandlerKind, HandlerStates, SharedKind, SharedState, SharedStates, StateKind,
    Tables, Tenant, TenantTtls, UserStates, Users,
};
pub use triggers::{ListenOptions, Triggers};

/// User guides. Their examples are compiled and run as doc tests.
pub mod guide {
    #[doc = include_str!("../../docs/documents.md")]
    pub mod documents {}

    #[doc = include_str!("../../docs/tasks.md")]
    pub mod tasks {}

    #[doc = include_str!("../../docs/subjects.md")]
    pub mod subjects {}
    #[doc = include_str!("../../docs/synced.md")]
    pub mod synced {}
    #[doc = include_str!("../../docs/tenants.md")]
    pub mod tenants {}

    #[doc = include_str!("../../docs/triggers.md")]
    pub mod triggers {}

    #[doc = include_str!("../../docs/queues.md")]
    pub mod queues {}

    #[doc = include_str!("../../docs/config.md")]
    pub mod config {}

    #[doc = include_str!("../../docs/changes.md")]
    pub mod changes {}

    #[doc = include_str!("../../docs/listing.md")]
    pub mod listing {}

    #[doc = include_str!("../../README.md")]
    pub mod readme {}
}
