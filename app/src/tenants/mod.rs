//! The tenant facades: [`Tenant`] (one tenant, from
//! [`Statehouse::tenant`](crate::Statehouse::tenant)) and its repositories
//! [`Users`], [`HandlerStates`], [`Tables`] and [`SharedStates`], all over
//! the [`FieldStore`] port; and [`SharedState`], the task-local *current*
//! shared state of a request.
//!
//! Records are hashes with one JSON value per field: a struct is written
//! field by field (it must serialize to a JSON object) and read back the
//! same way, so single fields can be read and written atomically without
//! touching the rest.

use std::sync::Arc;

use statehouse_domain::TenantSpace;
use statehouse_ports::{FieldStore, RetryPolicy, StoreError, TenantId, Ttl, ValidationExt};

use self::records::Core;

mod context;
mod decode;
mod encode;
mod records;
mod tables;
mod user_states;
mod users;

pub use context::{BlockingSharedState, SharedState};
pub use tables::Tables;
pub use user_states::{HandlerKind, HandlerStates, SharedKind, SharedStates, StateKind, UserStates};
pub use users::Users;

/// The default TTL of each repository of a [`Tenant`] (`None`: records
/// do not expire). Writes apply the repository's TTL, or the override of
/// `with_ttl`, in the same atomic step; see [`FieldStore`]'s contract for
/// what each write does to the TTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantTtls {
    /// Of [`Users`].
    pub users: Option<Ttl>,
    /// Of [`HandlerStates`].
    pub handler_states: Option<Ttl>,
    /// Of [`Tables`].
    pub tables: Option<Ttl>,
    /// Of [`SharedStates`].
    pub shared_states: Option<Ttl>,
}

/// One tenant: the entry to its repositories. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use statehouse::Statehouse;
///
/// let acme = Statehouse::memory().tenant("acme")?;
/// acme.users().upsert("u1", &serde_json::json!({"name": "Ann", "visits": 1})).await?;
/// assert_eq!(acme.users().increment("u1", "visits", 2).await?, 3);
/// assert_eq!(acme.users().list().await?, ["u1"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Tenant {
    core: Core,
    ttls: TenantTtls,
}

impl Tenant {
    /// Tenant `id` over `store`; `policy` bounds the retries of
    /// read-modify-writes. A bad id is `InvalidInput` before any I/O.
    pub fn new(store: Arc<dyn FieldStore>, id: &str, policy: RetryPolicy) -> Result<Self, StoreError> {
        let tenant = TenantId::new(id).for_op("tenant", id)?;
        Ok(Self {
            core: Core {
                store,
                space: TenantSpace::new(tenant),
                ttl: None,
                policy,
            },
            ttls: TenantTtls::default(),
        })
    }

    /// The same tenant with these repository TTLs.
    #[must_use]
    pub fn with_ttls(mut self, ttls: TenantTtls) -> Self {
        self.ttls = ttls;
        self
    }

    /// The tenant's id.
    pub fn id(&self) -> &TenantId {
        self.core.tenant()
    }

    /// The tenant's users.
    pub fn users(&self) -> Users {
        Users(self.core.with_ttl(self.ttls.users))
    }

    /// The tenant's handler states.
    pub fn handler_states(&self) -> HandlerStates {
        UserStates::new(self.core.with_ttl(self.ttls.handler_states))
    }

    /// The tenant's tables.
    pub fn tables(&self) -> Tables {
        Tables(self.core.with_ttl(self.ttls.tables))
    }

    /// The tenant's shared states.
    pub fn shared_states(&self) -> SharedStates {
        UserStates::new(self.core.with_ttl(self.ttls.shared_states))
    }
}
