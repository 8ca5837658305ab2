//! Contract: subjects ([`statehouse_ports::SubjectStore`]), in KRules'
//! Redis layout.
//!
//! # Layout
//!
//! - `port.rs`: the port itself: KRules' wire layout, loads, field-by-field stores, updates and
//!   their conflicts, bad data, listing.
//! - `handle.rs`: the `Subject` handle of the app facade: staging, caching, callbacks, `set_with`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use statehouse::{ErrorKind, KeyPattern, RetryPolicy, StoreError};
use statehouse_ports::{PropertyChange, PropertyKind, PropertyName, SubjectName, SubjectSpace};

use super::Backend;

fn subject(name: &str) -> SubjectName {
    SubjectName::new(name).unwrap()
}

fn prop(name: &str) -> PropertyName {
    PropertyName::new(name).unwrap()
}

fn set(kind: PropertyKind, name: &str, value: Value) -> PropertyChange {
    PropertyChange::Set {
        kind,
        name: prop(name),
        value,
    }
}

fn delete(kind: PropertyKind, name: &str) -> PropertyChange {
    PropertyChange::Delete {
        kind,
        name: prop(name),
    }
}

use PropertyKind::{Default as P, Extended as E};

/// The loaded values of one kind, failures as their error kind.
fn values(
    data: &statehouse_ports::SubjectData,
    kind: PropertyKind,
) -> Vec<(String, Result<Value, ErrorKind>)> {
    data.of_kind(kind)
        .iter()
        .map(|(name, value)| (name.clone(), value.as_ref().map_err(StoreError::kind).cloned()))
        .collect()
}

mod handle;
mod port;

pub use handle::*;
pub use port::*;
