//! [`FieldStore`] in memory: one hash per tenant record in the one
//! keyspace, under the same keys and fields as on Redis, with the same
//! atomic steps (each call under the keyspace lock; `update_field` through
//! the memory optimistic loop `Keyspace::optimistic`).

use std::time::Duration;

use async_trait::async_trait;
use statehouse_domain::{FieldName, TenantKey, TenantPattern, Ttl};
use statehouse_ports::{
    FieldFn, FieldStore, FieldUpdated, Fields, JsonValue as Value, KeyStream, Loaded, RetryPolicy,
    StoreError, append_to_field, decode_field, decode_fields, encode_field, field_writes, increment_overflow,
    not_an_array, not_an_integer,
};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::listing::Kind;
use crate::store::{Decision, Hash, State, Value as Stored};

/// `HSET` of `writes`, then the TTL as every tenant write applies it (the
/// `TENANT_WRITE` script's rule on Redis): a new hash gets it; an existing
/// one is extended to it unless it already lives longer (a persistent one
/// stays persistent); without a TTL the expiry is kept. A key of another
/// type is `WrongType`, and nothing is written.
fn hset_with_ttl(
    state: &mut State,
    op: &'static str,
    key: &TenantKey,
    writes: &[(String, String)],
    ttl: Option<Ttl>,
    now: Instant,
) -> Result<(), StoreError> {
    let sets: Vec<(&[u8], &[u8])> = writes
        .iter()
        .map(|(field, text)| (field.as_bytes(), text.as_bytes()))
        .collect();
    let existed = state
        .hash(key.key(), now)
        .map_err(|()| StoreError::wrong_type(op, key.key()))?
        .is_some();
    state
        .hset_hdel(key.key(), &sets, &[], now)
        .map_err(|()| StoreError::wrong_type(op, key.key()))?;
    if let Some(ttl) = ttl {
        let at = now + Duration::from(ttl);
        if existed {
            state.extend_expiry(key.key(), at, now);
        } else {
            state.set_expiry(key.key(), at, now);
        }
    }
    Ok(())
}

fn fields_of(op: &'static str, key: &TenantKey, hash: Option<&Hash>) -> Fields {
    hash.map(|hash| decode_fields(op, key, hash.iter().map(|(f, v)| (f.as_slice(), v.as_slice()))))
        .unwrap_or_default()
}

/// Parses a stored field as Redis' `HINCRBY` does (`string2ll`): an
/// optional `-`, then `0` alone or digits without a leading zero, in the
/// `i64` range; nothing else (no `+`, spaces, floats).
fn redis_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [b'0'] => bytes.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[async_trait]
impl FieldStore for MemoryStore {
    async fn get_all(&self, key: &TenantKey) -> Result<Fields, StoreError> {
        const OP: &str = "get_all";
        let mut state = self.keyspace.lock();
        let hash = state
            .hash(key.key(), Instant::now())
            .map_err(|()| StoreError::wrong_type(OP, key.key()))?;
        Ok(fields_of(OP, key, hash))
    }

    async fn get_fields(
        &self,
        key: &TenantKey,
        fields: &[FieldName],
    ) -> Result<Vec<Option<Loaded>>, StoreError> {
        const OP: &str = "get_fields";
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let mut state = self.keyspace.lock();
        let hash = state
            .hash(key.key(), Instant::now())
            .map_err(|()| StoreError::wrong_type(OP, key.key()))?;
        Ok(fields
            .iter()
            .map(|field| {
                hash.and_then(|hash| hash.get(field.as_str().as_bytes()))
                    .map(|bytes| decode_field(OP, key, field.as_str(), bytes))
            })
            .collect())
    }

    async fn set_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, Value)],
        ttl: Option<Ttl>,
    ) -> Result<(), StoreError> {
        self.replicated("set_fields", key.key(), async {
            const OP: &str = "set_fields";
            let writes = field_writes(fields);
            if writes.is_empty() {
                return Ok(());
            }
            let mut state = self.keyspace.lock();
            hset_with_ttl(&mut state, OP, key, &writes, ttl, Instant::now())
        })
        .await
    }

    async fn merge_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, Value)],
        ttl: Option<Ttl>,
    ) -> Result<Fields, StoreError> {
        self.replicated("merge_fields", key.key(), async {
            const OP: &str = "merge_fields";
            let writes = field_writes(fields);
            if writes.is_empty() {
                return self.get_all(key).await;
            }
            let now = Instant::now();
            let mut state = self.keyspace.lock();
            hset_with_ttl(&mut state, OP, key, &writes, ttl, now)?;
            let hash = state
                .hash(key.key(), now)
                .map_err(|()| StoreError::wrong_type(OP, key.key()))?;
            Ok(fields_of(OP, key, hash))
        })
        .await
    }

    async fn replace_fields(
        &self,
        key: &TenantKey,
        fields: &[(FieldName, Value)],
        ttl: Option<Ttl>,
    ) -> Result<(), StoreError> {
        self.replicated("replace_fields", key.key(), async {
            const OP: &str = "replace_fields";
            let writes = field_writes(fields);
            let now = Instant::now();
            let mut state = self.keyspace.lock();
            let existed = state
                .hash(key.key(), now)
                .map_err(|()| StoreError::wrong_type(OP, key.key()))?
                .is_some();
            // The old expiry: `None` for a new hash, `Some(None)` persistent.
            let old = if existed {
                state.live(key.key(), now).map(|entry| entry.expires_at)
            } else {
                None
            };
            state.remove(key.key(), now);
            if writes.is_empty() {
                return Ok(());
            }
            let wanted = ttl.map(|ttl| now + Duration::from(ttl));
            let expiry = match old {
                None => wanted,
                Some(None) => None,
                Some(Some(at)) => Some(wanted.filter(|wanted| *wanted > at).unwrap_or(at)),
            };
            let hash: Hash = writes
                .into_iter()
                .map(|(field, text)| (field.into_bytes(), text.into_bytes()))
                .collect();
            state.put(key.key(), Stored::Hash(hash), expiry);
            Ok(())
        })
        .await
    }

    async fn delete_fields(&self, key: &TenantKey, fields: &[FieldName]) -> Result<u64, StoreError> {
        self.replicated("delete_fields", key.key(), async {
            const OP: &str = "delete_fields";
            if fields.is_empty() {
                return Ok(0);
            }
            let now = Instant::now();
            let mut state = self.keyspace.lock();
            let Some(hash) = state
                .hash(key.key(), now)
                .map_err(|()| StoreError::wrong_type(OP, key.key()))?
            else {
                return Ok(0);
            };
            let mut names: Vec<&[u8]> = fields.iter().map(|field| field.as_str().as_bytes()).collect();
            names.sort_unstable();
            names.dedup();
            let existing = names.iter().filter(|name| hash.contains_key(**name)).count();
            state
                .hset_hdel(key.key(), &[], &names, now)
                .map_err(|()| StoreError::wrong_type(OP, key.key()))?;
            Ok(existing as u64)
        })
        .await
    }

    async fn delete(&self, key: &TenantKey) -> Result<bool, StoreError> {
        self.replicated("delete", key.key(), async {
            Ok(self.keyspace.lock().remove(key.key(), Instant::now()))
        })
        .await
    }

    async fn exists(&self, key: &TenantKey) -> Result<bool, StoreError> {
        Ok(self.keyspace.lock().live(key.key(), Instant::now()).is_some())
    }

    async fn update_field<'a>(
        &self,
        key: &TenantKey,
        field: &FieldName,
        ttl: Option<Ttl>,
        policy: RetryPolicy,
        f: &mut FieldFn<'a>,
    ) -> Result<FieldUpdated, StoreError> {
        const OP: &str = "update_field";
        // Combined with the concurrent updates of this field (and TTL).
        let lane = format!("{OP}\n{}\n{}\n{ttl:?}", key.key(), field.as_str());
        if let Some(updated) = self
            .combined_field(
                OP,
                (&lane, key.key(), field.as_str().as_bytes()),
                policy,
                f,
                |bytes| decode_field(OP, key, field.as_str(), bytes),
                |value| encode_field(value).into_bytes(),
                |state, now, text| {
                    let text = String::from_utf8_lossy(&text).into_owned();
                    // The key is a hash, unchanged since the read.
                    let _ = hset_with_ttl(state, OP, key, &[(field.as_str().to_owned(), text)], ttl, now);
                },
            )
            .await
        {
            let (old, new, attempts) = updated?;
            return Ok(FieldUpdated { old, new, attempts });
        }
        let (updated, attempts) = self
            .keyspace
            .optimistic(
                OP,
                key.key(),
                &[key.key()],
                self.section(policy),
                |state, now| {
                    state
                        .hget(key.key(), field.as_str().as_bytes(), now)
                        .map_err(|()| StoreError::wrong_type(OP, key.key()))
                },
                |current| {
                    let old = current
                        .map(|bytes| decode_field(OP, key, field.as_str(), &bytes))
                        .transpose()?;
                    let new = f(old.as_ref()).map_err(|source| StoreError::Aborted {
                        op: OP,
                        key: key.key().to_owned(),
                        source,
                    })?;
                    let text = encode_field(&new);
                    Ok(Decision::<_, Result<_, StoreError>>::Commit((old, new, text)))
                },
                |state, now, (old, new, text)| {
                    hset_with_ttl(state, OP, key, &[(field.as_str().to_owned(), text)], ttl, now)?;
                    Ok((old, new))
                },
            )
            .await?;
        let (old, new) = updated?;
        Ok(FieldUpdated { old, new, attempts })
    }

    async fn increment(
        &self,
        key: &TenantKey,
        field: &FieldName,
        by: i64,
        ttl: Option<Ttl>,
    ) -> Result<i64, StoreError> {
        self.replicated("increment", key.key(), async {
            const OP: &str = "increment";
            let now = Instant::now();
            let mut state = self.keyspace.lock();
            let current = state
                .hget(key.key(), field.as_str().as_bytes(), now)
                .map_err(|()| StoreError::wrong_type(OP, key.key()))?;
            let current = match current {
                None => 0,
                Some(bytes) => {
                    redis_integer(&bytes).ok_or_else(|| not_an_integer(OP, key, field.as_str()))?
                }
            };
            let new = current
                .checked_add(by)
                .ok_or_else(|| increment_overflow(OP, key, field.as_str()))?;
            hset_with_ttl(
                &mut state,
                OP,
                key,
                &[(field.as_str().to_owned(), new.to_string())],
                ttl,
                now,
            )?;
            Ok(new)
        })
        .await
    }

    async fn append(
        &self,
        key: &TenantKey,
        field: &FieldName,
        item: &[u8],
        ttl: Option<Ttl>,
    ) -> Result<usize, StoreError> {
        self.replicated("append", key.key(), async {
            const OP: &str = "append";
            let now = Instant::now();
            let mut state = self.keyspace.lock();
            let current = state
                .hget(key.key(), field.as_str().as_bytes(), now)
                .map_err(|()| StoreError::wrong_type(OP, key.key()))?;
            let (text, len) = append_to_field(current.as_deref(), item)
                .and_then(|(text, len)| Some((String::from_utf8(text).ok()?, len)))
                .ok_or_else(|| not_an_array(OP, key, field.as_str()))?;
            hset_with_ttl(
                &mut state,
                OP,
                key,
                &[(field.as_str().to_owned(), text)],
                ttl,
                now,
            )?;
            Ok(len)
        })
        .await
    }

    fn scan(&self, pattern: &TenantPattern) -> KeyStream {
        self.scan_stream(pattern.pattern().to_owned(), Kind::Hash)
    }

    async fn delete_matching(&self, pattern: &TenantPattern) -> Result<u64, StoreError> {
        // Page by page, as on Redis: the lock is taken per page.
        let mut keys = self.scan(pattern);
        let mut deleted = 0;
        while let Some(page) = keys.next_page().await? {
            let now = Instant::now();
            let mut state = self.keyspace.lock();
            deleted += page.iter().filter(|key| state.remove(key, now)).count() as u64;
        }
        // Redis waits for the replicas after each batch it deleted.
        if deleted == 0 {
            return Ok(0);
        }
        self.replicated("delete_matching", pattern.pattern(), async { Ok(deleted) })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::redis_integer;

    #[test]
    fn integers_parse_as_redis_parses_them() {
        assert_eq!(redis_integer(b"0"), Some(0));
        assert_eq!(redis_integer(b"-12"), Some(-12));
        assert_eq!(redis_integer(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b"-0"[..],
            b"01",
            b"+1",
            b" 1",
            b"1.0",
            b"1e3",
            b"",
            b"-",
            b"\"1\"",
            b"9223372036854775808",
        ] {
            assert_eq!(redis_integer(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
