use statehouse_domain::Ttl;
use statehouse_ports::{
    Boxed, FieldFn, FieldName, FieldStore, FieldUpdated, Fields, JsonValue, KeyStream, Loaded, RetryPolicy,
    TenantKey, TenantPattern,
};

use super::{Layer, Layered, Op, paged};

/// The key a tenant field call names: the tenant key (the pattern for
/// `scan`/`delete_matching`); `attempts` for `update_field`. Idempotent:
/// the reads (`get_all`, `get_fields`, `exists`, `scan`) and
/// `set_fields`/`replace_fields` (setting the same values twice is the
/// same). Not: `merge_fields` (a read too, but its answer must be the
/// state right after its own write), `increment`, `append`, `update_field`,
/// `delete_fields`, `delete`, `delete_matching`.
impl<L: Layer, S: FieldStore> FieldStore for Layered<L, S> {
    fn get_all<'s, 'k, 'f>(&'s self, key: &'k TenantKey) -> Boxed<'f, Fields>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("get_all", key), || self.inner.get_all(key))
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
        self.layer
            .around_idempotent(Op::new("get_fields", key), || self.inner.get_fields(key, fields))
    }

    fn set_fields<'s, 'k, 'v, 'f>(
        &'s self,
        key: &'k TenantKey,
        fields: &'v [(FieldName, JsonValue)],
        ttl: Option<Ttl>,
    ) -> Boxed<'f, ()>
    where
        's: 'f,
        'k: 'f,
        'v: 'f,
        Self: 'f,
    {
        self.layer.around_idempotent(Op::new("set_fields", key), move || {
            self.inner.set_fields(key, fields, ttl)
        })
    }

    fn merge_fields<'s, 'k, 'v, 'f>(
        &'s self,
        key: &'k TenantKey,
        fields: &'v [(FieldName, JsonValue)],
        ttl: Option<Ttl>,
    ) -> Boxed<'f, Fields>
    where
        's: 'f,
        'k: 'f,
        'v: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("merge_fields", key),
            self.inner.merge_fields(key, fields, ttl),
        )
    }

    fn replace_fields<'s, 'k, 'v, 'f>(
        &'s self,
        key: &'k TenantKey,
        fields: &'v [(FieldName, JsonValue)],
        ttl: Option<Ttl>,
    ) -> Boxed<'f, ()>
    where
        's: 'f,
        'k: 'f,
        'v: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("replace_fields", key), move || {
                self.inner.replace_fields(key, fields, ttl)
            })
    }

    fn delete_fields<'s, 'k, 'n, 'f>(&'s self, key: &'k TenantKey, fields: &'n [FieldName]) -> Boxed<'f, u64>
    where
        's: 'f,
        'k: 'f,
        'n: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("delete_fields", key),
            self.inner.delete_fields(key, fields),
        )
    }

    fn delete<'s, 'k, 'f>(&'s self, key: &'k TenantKey) -> Boxed<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer.around(Op::new("delete", key), self.inner.delete(key))
    }

    fn exists<'s, 'k, 'f>(&'s self, key: &'k TenantKey) -> Boxed<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::new("exists", key), || self.inner.exists(key))
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
        self.layer.around(
            Op::new("update_field", key).counting(|updated: &FieldUpdated| updated.attempts),
            self.inner.update_field(key, field, ttl, policy, f),
        )
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
        self.layer.around(
            Op::new("increment", key),
            self.inner.increment(key, field, by, ttl),
        )
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
        self.layer
            .around(Op::new("append", key), self.inner.append(key, field, item, ttl))
    }

    fn scan(&self, pattern: &TenantPattern) -> KeyStream {
        paged(&self.layer, "scan", pattern.to_string(), self.inner.scan(pattern))
    }

    fn delete_matching<'s, 'p, 'f>(&'s self, pattern: &'p TenantPattern) -> Boxed<'f, u64>
    where
        's: 'f,
        'p: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("delete_matching", pattern),
            self.inner.delete_matching(pattern),
        )
    }
}
