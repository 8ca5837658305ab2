//! Contract: typed documents ([`statehouse_ports::DocumentStore`] through the `Documents` facade).
//!
//! # Layout
//!
//! - `values.rs`: reads and writes of typed values, `MGET`, TTLs,
//!   conditional writes, deletes, wrong types.
//! - `listing.rs`: listings and glob patterns, keys with glob characters,
//!   invalid keys.
//! - `updates.rs`: atomic updates, their conflicts and retries.
//! - `fast_paths.rs`: `increment` and `append`, one round trip each.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use statehouse::{ErrorKind, StoreError};

mod fast_paths;
mod listing;
mod updates;
mod values;

pub use fast_paths::*;
pub use listing::*;
pub use updates::*;
pub use values::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Admin,
    Member,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    role: Role,
    joined: DateTime<Utc>,
    tags: Vec<String>,
    manager: Option<String>,
}

fn ada() -> Profile {
    Profile {
        name: "Ada".into(),
        role: Role::Admin,
        joined: Utc.with_ymd_and_hms(2026, 11, 21, 9, 30, 0).unwrap(),
        tags: vec!["math".into(), "engines".into()],
        manager: None,
    }
}

fn expect_kind<T: std::fmt::Debug>(result: Result<T, StoreError>, kind: ErrorKind, key: &str) -> StoreError {
    let error = result.expect_err("expected an error");
    assert_eq!(error.kind(), kind, "{error}");
    assert_eq!(error.key(), key, "{error}");
    error
}
