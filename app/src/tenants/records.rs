//! What every repository of a tenant shares: [`Core`] (the port, the
//! tenant, the TTL of writes, the retry policy) with the reads and writes
//! all of them make, and the conversions between records and JSON fields.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use statehouse_domain::TenantSpace;
use statehouse_domain::layout::TenantKeys;
use statehouse_ports::{
    BoxError, Carry, FieldName, FieldStore, Fields, JsonError, KeyStream, RetryPolicy, StoreError, TenantId,
    TenantKey, TenantPattern, Ttl, UserId, ValidationError, ValidationExt, decode_value, encode_field,
};

use super::decode::Record;
use super::encode::members;

/// What every repository holds: the port, the tenant with its key layout
/// (built once, so a key costs one pass per call), the TTL its writes
/// apply and the retry policy of read-modify-writes.
#[derive(Debug, Clone)]
pub(super) struct Core {
    pub(super) store: Arc<dyn FieldStore>,
    pub(super) space: TenantSpace,
    pub(super) ttl: Option<Ttl>,
    pub(super) policy: RetryPolicy,
}

pub(super) fn id<T>(
    what: fn(String) -> Result<T, statehouse_ports::ValidationError>,
    op: &'static str,
    value: &str,
) -> Result<T, StoreError> {
    what(value.to_owned()).for_op(op, value)
}

pub(super) fn field(op: &'static str, name: &str) -> Result<FieldName, StoreError> {
    id(FieldName::new, op, name)
}

/// A part of a key with the check its kind of id makes.
pub(super) type Part<'a> = (&'a str, fn(&str) -> Result<(), ValidationError>);

/// A key built by the tenant's [`TenantSpace`] (which validates its parts),
/// or its validation error as `InvalidInput` naming the part it rejected:
/// `parts` in the order the space checks them (the checks run again only
/// on that error).
pub(super) fn key_of(
    op: &'static str,
    built: Result<TenantKey, ValidationError>,
    parts: &[Part<'_>],
) -> Result<TenantKey, StoreError> {
    built.map_err(|reason| {
        let rejected = parts
            .iter()
            .find(|(part, check)| check(part).is_err())
            .map_or("", |(part, _)| *part);
        StoreError::invalid_input(op, rejected, reason)
    })
}

/// The fields of a value that serializes to a JSON object.
pub(super) fn object_fields<T: Serialize + ?Sized>(
    op: &'static str,
    key: &TenantKey,
    value: &T,
) -> Result<Vec<(FieldName, Value)>, StoreError> {
    // A struct or a map with string keys: its members as they serialize
    // (no whole `Value` built and taken apart). Anything else, or a
    // failure, takes the long way, which says what it is.
    let members = match members(value) {
        Some(members) => members,
        None => {
            let value = serde_json::to_value(value).map_err(|error| StoreError::Serialization {
                op,
                key: key.key().to_owned(),
                source: Box::new(JsonError::without_data(&error)),
            })?;
            let Value::Object(map) = value else {
                return Err(StoreError::invalid_input(
                    op,
                    key.key(),
                    "a record must serialize to a JSON object (one hash field per member)",
                ));
            };
            map.into_iter().collect()
        }
    };
    // The first invalid name in name order, as the object's order would
    // report it.
    if let Some(bad) = members
        .iter()
        .map(|(name, _)| name)
        .filter(|name| FieldName::validate(name).is_err())
        .min()
    {
        FieldName::validate(bad).for_op(op, bad)?;
    }
    members
        .into_iter()
        // Each member's own name becomes the field (no copy); all valid.
        .map(|(name, value)| Ok((FieldName::new(name).for_op(op, "")?, value)))
        .collect()
}

pub(super) fn to_value<T: Serialize + ?Sized>(
    op: &'static str,
    key: &TenantKey,
    field: &str,
    value: &T,
) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|error| StoreError::Serialization {
        op,
        key: key.field_key(field),
        source: Box::new(JsonError::without_data(&error)),
    })
}

/// A whole record as `T`: `None` if it has no field; the first field that
/// does not parse fails the read (naming that field).
pub(super) fn record<T: DeserializeOwned>(
    op: &'static str,
    key: &TenantKey,
    fields: Fields,
) -> Result<Option<T>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    // Decoded from the fields as their JSON object would be, without
    // building that object first.
    decode_value(op, key.key(), Record::of(fields)?).map(Some)
}

impl Core {
    pub(super) fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self { ttl, ..self.clone() }
    }

    pub(super) fn tenant(&self) -> &TenantId {
        self.space.tenant()
    }

    pub(super) fn user(&self, op: &'static str, user: &str) -> Result<UserId, StoreError> {
        id(UserId::new, op, user)
    }

    /// The hash of `user`.
    pub(super) fn user_key(&self, op: &'static str, user: &str) -> Result<TenantKey, StoreError> {
        self.space.user(user).for_op(op, user)
    }

    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        op: &'static str,
        key: &TenantKey,
    ) -> Result<Option<T>, StoreError> {
        record(op, key, self.store.get_all(key).await?)
    }

    pub(super) async fn get_field<T: DeserializeOwned>(
        &self,
        op: &'static str,
        key: &TenantKey,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let name = field(op, name)?;
        let loaded = self.store.get_fields(key, std::slice::from_ref(&name)).await?;
        match loaded.into_iter().next().flatten() {
            None => Ok(None),
            Some(value) => decode_value(op, key.field_key(name.as_str()), value?).map(Some),
        }
    }

    pub(super) async fn set_field<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let name = field(op, name)?;
        let value = to_value(op, key, name.as_str(), value)?;
        self.store.set_fields(key, &[(name, value)], self.ttl).await
    }

    pub(super) async fn merge<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        value: &T,
    ) -> Result<Fields, StoreError> {
        let fields = object_fields(op, key, value)?;
        self.store.merge_fields(key, &fields, self.ttl).await
    }

    pub(super) async fn upsert<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        value: &T,
    ) -> Result<(), StoreError> {
        let fields = object_fields(op, key, value)?;
        self.store.set_fields(key, &fields, self.ttl).await
    }

    pub(super) async fn replace<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        value: &T,
    ) -> Result<(), StoreError> {
        let fields = object_fields(op, key, value)?;
        self.store.replace_fields(key, &fields, self.ttl).await
    }

    pub(super) async fn modify<T, F>(
        &self,
        op: &'static str,
        key: &TenantKey,
        name: &str,
        mut f: F,
    ) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        let name = field(op, name)?;
        let field_key = key.field_key(name.as_str());
        // A field that does not decode as `T`, or a value that does not
        // encode, comes back naming the field (never as `Aborted`).
        let mut carry = Carry::new();
        let mut closure = |current: Option<&Value>| -> Result<Value, BoxError> {
            carry.keep((|| {
                let current = current
                    .map(|value| decode_value::<T, _>(op, field_key.as_str(), value))
                    .transpose()?;
                to_value(op, key, name.as_str(), &f(current))
            })())
        };
        let updated = self
            .store
            .update_field(key, &name, self.ttl, self.policy, &mut closure)
            .await;
        decode_value(op, field_key, carry.outcome(updated)?.new)
    }

    /// One step on the server ([`FieldStore::append`]): the item's JSON
    /// text spliced into the field's array, no read-modify-write round.
    pub(super) async fn append<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        key: &TenantKey,
        name: &str,
        item: &T,
    ) -> Result<usize, StoreError> {
        let name = field(op, name)?;
        // The item's text as every tenant write encodes a value.
        let item = encode_field(&to_value(op, key, name.as_str(), item)?);
        self.store.append(key, &name, item.as_bytes(), self.ttl).await
    }

    pub(super) fn scan(&self, pattern: &TenantPattern) -> KeyStream {
        self.store.scan(pattern)
    }

    pub(super) fn keys(&self) -> TenantKeys {
        self.space.keys().clone()
    }
}
