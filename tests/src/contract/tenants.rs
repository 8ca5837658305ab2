//! Contract: tenant repositories ([`statehouse_ports::FieldStore`] and the
//! [`statehouse::Tenant`] facades over it): field-level atomicity, TTL per
//! operation, typed JSON per field, strict isolation between tenants and
//! users, and the task-local current shared state.
//!
//! # Layout
//!
//! - `repositories.rs`: users, handler states, tables and shared states
//!   (typed and field by field, the wire layout, bad fields and ids, keys
//!   of another type).
//! - `expiry.rs`: the TTL rules of every write.
//! - `isolation.rs`: the property test over random nasty ids, and the
//!   tenants the issue names.
//! - `concurrency.rs`: concurrent increments and writers.
//! - `context.rs`: the task-local current shared state.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use statehouse::Ttl;

mod concurrency;
mod context;
mod expiry;
mod isolation;
mod repositories;

pub use concurrency::*;
pub use context::*;
pub use expiry::*;
pub use isolation::*;
pub use repositories::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Plan {
    Free,
    Pro,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    plan: Plan,
    joined: DateTime<Utc>,
    tags: Vec<String>,
}

fn profile() -> Profile {
    Profile {
        name: "Ann".into(),
        plan: Plan::Pro,
        joined: Utc.with_ymd_and_hms(2026, 11, 23, 8, 30, 0).unwrap(),
        tags: vec!["beta".into()],
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ttl(n: u64) -> Option<Ttl> {
    Some(Ttl::from_millis(n).unwrap())
}
