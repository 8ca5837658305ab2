//! [`FieldStore`]: tenant-scoped hashes of JSON fields, the one port behind
//! the tenant repositories (users, handler state, tables, shared state).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use statehouse_domain::{FieldName, TenantKey, TenantPattern, Ttl};

use crate::{BoxError, Boxed, JsonError, KeyStream, Loaded, RetryPolicy, StoreError};

/// The fields of one tenant hash as loaded, by name. A field whose stored
/// text is not JSON is an `Err` ([`StoreError::Deserialization`] naming
/// tenant, key and field) in its place; the others load.
pub type Fields = BTreeMap<String, Loaded>;

/// The stored text of a field value: compact JSON (serde_json's).
pub fn encode_field(value: &Value) -> String {
    // Serializing a `Value` to a string cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Decodes one stored field, naming tenant, key and field (never the value)
/// on failure.
pub fn decode_field(op: &'static str, key: &TenantKey, field: &str, bytes: &[u8]) -> Loaded {
    serde_json::from_slice(bytes).map_err(|error| {
        StoreError::deserialization(
            op,
            key.field_key(field),
            "JSON value",
            JsonError::without_data(&error),
        )
    })
}

/// Decodes the fields of a hash (what both adapters do after reading it):
/// fields whose name is not UTF-8 are ignored; each value is decoded alone.
/// A field named twice (never in a hash's reply) keeps its last value.
/// Names come borrowed (copied into the fields) or owned (moved, as out of
/// a reply the caller owns).
pub fn decode_fields<'a, N, V>(
    op: &'static str,
    key: &TenantKey,
    fields: impl IntoIterator<Item = (N, V)>,
) -> Fields
where
    N: Into<Cow<'a, [u8]>>,
    V: AsRef<[u8]>,
{
    // Inserted one by one: a record's few fields cost a search each, where
    // collecting would gather, sort and rebuild them.
    let mut decoded = Fields::new();
    for (name, value) in fields {
        let name = match name.into() {
            Cow::Borrowed(name) => std::str::from_utf8(name).ok().map(str::to_owned),
            Cow::Owned(name) => String::from_utf8(name).ok(),
        };
        if let Some(name) = name {
            let value = decode_field(op, key, &name, value.as_ref());
            decoded.insert(name, value);
        }
    }
    decoded
}

/// The error of an increment of a field that holds no JSON integer in the
/// `i64` range (a float, a string, …): `Deserialization` naming the field.
pub fn not_an_integer(op: &'static str, key: &TenantKey, field: &str) -> StoreError {
    StoreError::deserialization(
        op,
        key.field_key(field),
        "JSON integer (i64)",
        "the field holds no integer",
    )
}

/// The error of an increment whose result would leave the `i64` range.
pub fn increment_overflow(op: &'static str, key: &TenantKey, field: &str) -> StoreError {
    StoreError::invalid_input(op, key.field_key(field), "increment or decrement would overflow")
}

/// The error of an append to a field that holds something else than a JSON
/// array (or `null`): `Deserialization` naming the field.
pub fn not_an_array(op: &'static str, key: &TenantKey, field: &str) -> StoreError {
    StoreError::deserialization(op, key.field_key(field), "JSON array", "the field holds no array")
}

/// The stored text of a field after [`FieldStore::append`] of `item` (one
/// JSON value's text) and the list's new length, or `None` when the field
/// holds no JSON array: a missing or `null` field becomes `[item]`; an
/// array keeps its text up to the closing `]` ([`crate::append_to_array`],
/// what the Redis adapter's `TENANT_APPEND` script writes too).
pub fn append_to_field(current: Option<&[u8]>, item: &[u8]) -> Option<(Vec<u8>, usize)> {
    match current {
        Some(text) if !text.trim_ascii().eq(b"null") => crate::append_to_array(text, item),
        _ => {
            let mut out = Vec::with_capacity(item.len() + 2);
            out.push(b'[');
            out.extend_from_slice(item);
            out.push(b']');
            Some((out, 1))
        }
    }
}

/// The synchronous closure of [`FieldStore::update_field`]: it gets the
/// current value (`None` when the field is missing) and returns the new one.
/// An `Err` aborts the update ([`StoreError::Aborted`]), writing nothing.
///
/// It **may run more than once** (when the hash changes between read and
/// write); keep it free of side effects.
pub type FieldFn<'a> = dyn FnMut(Option<&Value>) -> Result<Value, BoxError> + Send + 'a;

/// The result of [`FieldStore::update_field`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldUpdated {
    /// The value before the update (`None`: the field was missing).
    pub old: Option<Value>,
    /// The value written.
    pub new: Value,
    /// How many times the closure ran (1 without conflicts).
    pub attempts: u32,
}

/// Tenant-scoped hashes of JSON fields: one Redis hash per record
/// ([`TenantKey`], from the layout's `t:{<tenant>}:…` keys), one JSON value
/// per hash field.
///
/// # Contract
///
/// Every implementation behaves the same; the contract suite in
/// `statehouse-tests` (`tenants::…`) runs one list of tests against each.
///
/// - Values are stored as compact JSON text ([`encode_field`]), one per
///   field. Reads decode each field alone: a field that is not JSON is
///   [`StoreError::Deserialization`] naming tenant, key and field
///   ([`TenantKey::field_key`]), and only that field fails.
/// - Writes are field by field and never rewrite the hash (except
///   `replace_fields`, which is meant to): fields a write does not name are
///   left as they are, so two writers on different fields lose nothing.
/// - TTL: every write that takes `ttl: Option<Ttl>` (`set_fields`,
///   `merge_fields`, `replace_fields`, `update_field`, `increment`) treats
///   it the same way, in the same atomic step as the write, and refreshes
///   it without ever shortening it (the rule of every family):
///   `Some(ttl)` gives a new key that TTL and extends an existing key's
///   expiry to `ttl` from now unless the key already lives longer (a
///   persistent key stays persistent); `None` keeps the key's expiry (a new
///   key is persistent), also across `replace_fields`. `delete_fields`
///   never touches the expiry; reads never refresh it.
/// - `set_fields` (HSET) and `merge_fields` (HSET + HGETALL in one
///   transaction) are one round trip each; `merge_fields` returns the whole
///   hash as it is right after its write. An empty batch writes nothing
///   (and applies no TTL); `merge_fields` then just reads.
/// - `update_field` is an atomic read-modify-write of one field under
///   `policy` (the closure may run more than once; only running out of
///   attempts is [`StoreError::Conflict`]); concurrent updates lose nothing.
///   A stored value that is not JSON fails with `Deserialization` before
///   the closure runs.
/// - `increment` adds an `i64` to a field holding a JSON integer (a missing
///   field counts as 0), atomically, with HINCRBY's semantics: no floats (a
///   float, a string or any other JSON is `Deserialization` naming the field,
///   see [`not_an_integer`]), and leaving the `i64` range is `InvalidInput`
///   ([`increment_overflow`]); a failed increment writes nothing (not the
///   TTL either). Use `update_field` for floats.
/// - `scan` streams the keys matching a [`TenantPattern`] by `SCAN` (never
///   `KEYS`), each once, in no particular order; `delete_matching` deletes
///   them, page by page as the listing goes, and returns how many it
///   deleted. A pattern never leaves its
///   tenant, so neither touches another tenant's keys.
/// - A key holding another Redis type is [`StoreError::WrongType`] naming the
///   key, and nothing is written (not the TTL either).
/// - Errors name the key without the store's prefix.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait FieldStore: Debug + Send + Sync + 'static {
    /// Every field of the hash (empty if it does not exist). One HGETALL.
    async fn get_all(&self, key: &TenantKey) -> Result<Fields, StoreError>;

    /// The given fields, aligned with `fields` (`None`: missing). One HMGET.
    async fn get_fields(
        &self,
        key: &TenantKey,
        fields: &[FieldName],
    ) -> Result<Vec<Option<Loaded>>, StoreError>;

    /// Sets the given fields (a later entry of the same field wins), keeping
    /// the others. One `HSET` (with a TTL, one script doing both).
    async fn set_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, Value)],
        ttl: Option<Ttl>,
    ) -> Result<(), StoreError>;

    /// Sets the given fields, keeping the others, and returns the whole
    /// hash after the write, atomically. One `MULTI; HSET; HGETALL; EXEC`
    /// (with a TTL, one script doing all three).
    async fn merge_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, Value)],
        ttl: Option<Ttl>,
    ) -> Result<Fields, StoreError>;

    /// Replaces the whole hash by the given fields, atomically (an empty
    /// list deletes it). One script (`DEL`, `HSET`, the TTL).
    async fn replace_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, Value)],
        ttl: Option<Ttl>,
    ) -> Result<(), StoreError>;

    /// Deletes the given fields; returns how many existed. Keeps the expiry.
    async fn delete_fields(&self, key: &TenantKey, fields: &[FieldName]) -> Result<u64, StoreError>;

    /// Deletes the hash; returns whether it existed.
    async fn delete(&self, key: &TenantKey) -> Result<bool, StoreError>;

    /// Whether the hash exists.
    async fn exists(&self, key: &TenantKey) -> Result<bool, StoreError>;

    /// Atomic read-modify-write of one field; see [`FieldFn`].
    async fn update_field<'a>(
        &self,
        key: &TenantKey,
        field: &FieldName,
        ttl: Option<Ttl>,
        policy: RetryPolicy,
        f: &mut FieldFn<'a>,
    ) -> Result<FieldUpdated, StoreError>;

    /// Adds `by` to an integer field atomically; returns the new value.
    async fn increment(
        &self,
        key: &TenantKey,
        field: &FieldName,
        by: i64,
        ttl: Option<Ttl>,
    ) -> Result<i64, StoreError>;

    /// Appends `item` (the text of one JSON value, checked by the caller)
    /// to the JSON array in a field, atomically and in one step (no
    /// read-modify-write round); returns the list's new length. A missing
    /// or `null` field is an empty list; an array keeps its text and gains
    /// `,item` before its `]` ([`append_to_field`]). A field holding
    /// anything else is [`not_an_array`] and nothing is written. The TTL as
    /// [`increment`](Self::increment)'s: set on a new hash, extended but
    /// never shortened, only if the append went through.
    async fn append(
        &self,
        key: &TenantKey,
        field: &FieldName,
        item: &[u8],
        ttl: Option<Ttl>,
    ) -> Result<usize, StoreError>;

    /// The keys (without the store's prefix) matching `pattern`, each once,
    /// as a stream (no I/O until it is read; see
    /// [`KeyPages`](crate::KeyPages)).
    fn scan(&self, pattern: &TenantPattern) -> KeyStream;

    /// Deletes every key matching `pattern`; returns how many.
    async fn delete_matching(&self, pattern: &TenantPattern) -> Result<u64, StoreError>;
}

/// Forwards the trait through a smart pointer by handing back the inner
/// store's boxed future as is: written out (not with `#[async_trait]`, which
/// would box a second future around the first), so `Arc<dyn FieldStore>`
/// costs nothing over calling the store directly (as the documents port's
/// forwarding does).
macro_rules! forward_field_store {
    ($wrapper:ident) => {
        impl<T: FieldStore + ?Sized> FieldStore for $wrapper<T> {
            fn get_all<'s, 'k, 'f>(&'s self, key: &'k TenantKey) -> Boxed<'f, Fields>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).get_all(key)
            }

            fn get_fields<'s, 'k, 'n, 'f>(
                &'s self,
                key: &'k TenantKey,
                fields: &'n [FieldName],
            ) -> Boxed<'f, Vec<Option<Loaded>>>
            where
                's: 'f,
                'k: 'f,
                'n: 'f,
                Self: 'f,
            {
                (**self).get_fields(key, fields)
            }

            fn set_fields<'s, 'k, 'v, 'f>(
                &'s self,
                key: &'k TenantKey,
                fields: &'v [(FieldName, Value)],
                ttl: Option<Ttl>,
            ) -> Boxed<'f, ()>
            where
                's: 'f,
                'k: 'f,
                'v: 'f,
                Self: 'f,
            {
                (**self).set_fields(key, fields, ttl)
            }

            fn merge_fields<'s, 'k, 'v, 'f>(
                &'s self,
                key: &'k TenantKey,
                fields: &'v [(FieldName, Value)],
                ttl: Option<Ttl>,
            ) -> Boxed<'f, Fields>
            where
                's: 'f,
                'k: 'f,
                'v: 'f,
                Self: 'f,
            {
                (**self).merge_fields(key, fields, ttl)
            }

            fn replace_fields<'s, 'k, 'v, 'f>(
                &'s self,
                key: &'k TenantKey,
                fields: &'v [(FieldName, Value)],
                ttl: Option<Ttl>,
            ) -> Boxed<'f, ()>
            where
                's: 'f,
                'k: 'f,
                'v: 'f,
                Self: 'f,
            {
                (**self).replace_fields(key, fields, ttl)
            }

            fn delete_fields<'s, 'k, 'n, 'f>(
                &'s self,
                key: &'k TenantKey,
                fields: &'n [FieldName],
            ) -> Boxed<'f, u64>
            where
                's: 'f,
                'k: 'f,
                'n: 'f,
                Self: 'f,
            {
                (**self).delete_fields(key, fields)
            }

            fn delete<'s, 'k, 'f>(&'s self, key: &'k TenantKey) -> Boxed<'f, bool>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).delete(key)
            }

            fn exists<'s, 'k, 'f>(&'s self, key: &'k TenantKey) -> Boxed<'f, bool>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).exists(key)
            }

            fn update_field<'u, 's, 'k, 'n, 'c, 'f>(
                &'s self,
                key: &'k TenantKey,
                field: &'n FieldName,
                ttl: Option<Ttl>,
                policy: RetryPolicy,
                f: &'c mut FieldFn<'u>,
            ) -> Boxed<'f, FieldUpdated>
            where
                'u: 'f,
                's: 'f,
                'k: 'f,
                'n: 'f,
                'c: 'f,
                Self: 'f,
            {
                (**self).update_field(key, field, ttl, policy, f)
            }

            fn increment<'s, 'k, 'n, 'f>(
                &'s self,
                key: &'k TenantKey,
                field: &'n FieldName,
                by: i64,
                ttl: Option<Ttl>,
            ) -> Boxed<'f, i64>
            where
                's: 'f,
                'k: 'f,
                'n: 'f,
                Self: 'f,
            {
                (**self).increment(key, field, by, ttl)
            }

            fn append<'s, 'k, 'n, 'i, 'f>(
                &'s self,
                key: &'k TenantKey,
                field: &'n FieldName,
                item: &'i [u8],
                ttl: Option<Ttl>,
            ) -> Boxed<'f, usize>
            where
                's: 'f,
                'k: 'f,
                'n: 'f,
                'i: 'f,
                Self: 'f,
            {
                (**self).append(key, field, item, ttl)
            }

            fn scan(&self, pattern: &TenantPattern) -> KeyStream {
                (**self).scan(pattern)
            }

            fn delete_matching<'s, 'p, 'f>(&'s self, pattern: &'p TenantPattern) -> Boxed<'f, u64>
            where
                's: 'f,
                'p: 'f,
                Self: 'f,
            {
                (**self).delete_matching(pattern)
            }
        }
    };
}

forward_field_store!(Arc);
forward_field_store!(Box);

/// Compile-time check: the trait stays usable as `Arc<dyn FieldStore>`.
const _: fn(Arc<dyn FieldStore>) = |_| {};

/// The `(field, JSON text)` pairs of a batch, a later entry of a field
/// winning, in field order: what both adapters write.
pub fn field_writes(fields: &[(FieldName, Value)]) -> Vec<(String, String)> {
    let mut last: BTreeMap<&str, &Value> = BTreeMap::new();
    for (field, value) in fields {
        last.insert(field.as_str(), value);
    }
    last.into_iter()
        .map(|(field, value)| (field.to_owned(), encode_field(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use statehouse_domain::{TenantId, UserId};

    fn key() -> TenantKey {
        TenantKey::user(&TenantId::new("acme").unwrap(), &UserId::new("u1").unwrap())
    }

    #[test]
    fn an_append_keeps_the_arrays_text_and_starts_missing_or_null_fields_empty() {
        let appended = |current: Option<&str>| {
            append_to_field(current.map(str::as_bytes), b"{\"a\":1}")
                .map(|(text, len)| (String::from_utf8(text).unwrap(), len))
        };
        assert_eq!(appended(None), Some(("[{\"a\":1}]".to_owned(), 1)));
        assert_eq!(appended(Some(" null ")), Some(("[{\"a\":1}]".to_owned(), 1)));
        assert_eq!(appended(Some("[]")), Some(("[{\"a\":1}]".to_owned(), 1)));
        assert_eq!(
            appended(Some("[1, 2] ")),
            Some(("[1, 2,{\"a\":1}] ".to_owned(), 3))
        );
        for no_array in ["{\"a\":[1]}", "\"[1]\"", "1", "[1", "nul", ""] {
            assert_eq!(appended(Some(no_array)), None, "{no_array}");
        }
        let error = not_an_array("append", &key(), "log");
        assert_eq!(error.kind(), crate::ErrorKind::Deserialization);
        assert_eq!(error.key(), "t:{acme}:user:u1 field log (tenant acme)");
    }

    #[test]
    fn bad_fields_fail_alone_naming_tenant_key_and_field() {
        let raw: [(&[u8], &[u8]); 3] = [(b"name", b"\"Ann\""), (b"age", b"{oops"), (b"\xff", b"1")];
        let fields = decode_fields("get", &key(), raw);
        assert_eq!(fields.len(), 2);
        assert_eq!(fields["name"].as_ref().unwrap(), &Value::from("Ann"));
        let error = fields["age"].as_ref().unwrap_err();
        assert_eq!(error.key(), "t:{acme}:user:u1 field age (tenant acme)");
    }

    #[test]
    fn a_later_write_of_a_field_wins() {
        let a = FieldName::new("a").unwrap();
        let writes = field_writes(&[(a.clone(), 1.into()), (a, 2.into())]);
        assert_eq!(writes, [("a".to_owned(), "2".to_owned())]);
    }
}
