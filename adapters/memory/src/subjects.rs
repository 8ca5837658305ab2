//! [`SubjectStore`] in memory: one hash per subject in the one keyspace,
//! under the same key and fields as on Redis (KRules' layout), written by
//! the same optimistic protocol.

use async_trait::async_trait;
use statehouse_domain::{KeyPattern, PropertyKind, PropertyName, SubjectName, python_json};
use statehouse_ports::{
    FieldWrites, JsonValue as Value, KeyStream, PropertyChange, PropertyFn, PropertyUpdated, StoreError,
    SubjectData, SubjectSpace, SubjectStore, canonical_integer, decode_property, property_increment_overflow,
    property_not_an_integer,
};
use tokio::time::Instant;

use crate::MemoryStore;
use crate::listing::Kind;
use crate::store::Decision;

#[async_trait]
impl SubjectStore for MemoryStore {
    async fn load(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<SubjectData, StoreError> {
        const OP: &str = "load";
        let key = space.key(subject.as_str());
        let mut state = self.keyspace.lock();
        let hash = state
            .hash(&key, Instant::now())
            .map_err(|()| StoreError::wrong_type(OP, &key))?;
        Ok(hash.map_or_else(SubjectData::default, |hash| {
            SubjectData::from_fields(
                OP,
                &key,
                hash.iter()
                    .map(|(field, value)| (field.as_slice(), value.as_slice())),
            )
        }))
    }

    async fn store(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        changes: &[PropertyChange],
    ) -> Result<(), StoreError> {
        self.replicated("store", &space.key(subject.as_str()), async {
            const OP: &str = "store";
            let key = space.key(subject.as_str());
            let writes = FieldWrites::of(changes);
            if writes.is_empty() {
                return Ok(());
            }
            let sets: Vec<(&[u8], &[u8])> = writes.sets().collect();
            let deletes: Vec<&[u8]> = writes.deletes().collect();
            self.keyspace
                .lock()
                .hset_hdel(&key, &sets, &deletes, Instant::now())
                .map_err(|()| StoreError::wrong_type(OP, &key))
        })
        .await
    }

    async fn get_property(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
    ) -> Result<Option<Value>, StoreError> {
        const OP: &str = "get_property";
        let key = space.key(subject.as_str());
        let field = kind.field(name.as_str());
        let bytes = self
            .keyspace
            .lock()
            .hget(&key, field.as_bytes(), Instant::now())
            .map_err(|()| StoreError::wrong_type(OP, &key))?;
        bytes
            .map(|bytes| decode_property(OP, &key, &field, &bytes))
            .transpose()
    }

    async fn update_property<'a>(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
        f: &mut PropertyFn<'a>,
    ) -> Result<PropertyUpdated, StoreError> {
        const OP: &str = "update_property";
        let key = space.key(subject.as_str());
        let field = kind.field(name.as_str());
        // Combined with the concurrent updates of this property.
        if let Some(updated) = self
            .combined_field(
                OP,
                (&format!("{OP}\n{key}\n{field}"), &key, field.as_bytes()),
                space.policy(),
                f,
                |bytes| decode_property(OP, &key, &field, bytes),
                |value| python_json(value).into_bytes(),
                |state, now, text| {
                    // The key is a hash, unchanged since the read.
                    let _ = state.hset_hdel(&key, &[(field.as_bytes(), text.as_slice())], &[], now);
                },
            )
            .await
        {
            let (old, new, attempts) = updated?;
            return Ok(PropertyUpdated { old, new, attempts });
        }
        let (updated, attempts) = self
            .keyspace
            .optimistic(
                OP,
                &key,
                &[key.as_str()],
                self.section(space.policy()),
                |state, now| {
                    state
                        .hget(&key, field.as_bytes(), now)
                        .map_err(|()| StoreError::wrong_type(OP, &key))
                },
                |current| {
                    let old = current
                        .map(|bytes| decode_property(OP, &key, &field, &bytes))
                        .transpose()?;
                    let new = f(old.as_ref()).map_err(|source| StoreError::Aborted {
                        op: OP,
                        key: key.clone(),
                        source,
                    })?;
                    let text = python_json(&new);
                    Ok(Decision::<_, Result<_, StoreError>>::Commit((old, new, text)))
                },
                |state, now, (old, new, text)| {
                    state
                        .hset_hdel(&key, &[(field.as_bytes(), text.as_bytes())], &[], now)
                        .map_err(|()| StoreError::wrong_type(OP, &key))?;
                    Ok((old, new))
                },
            )
            .await?;
        let (old, new) = updated?;
        Ok(PropertyUpdated { old, new, attempts })
    }

    async fn increment_property(
        &self,
        space: &SubjectSpace,
        subject: &SubjectName,
        kind: PropertyKind,
        name: &PropertyName,
        by: i64,
    ) -> Result<i64, StoreError> {
        const OP: &str = "increment_property";
        let key = space.key(subject.as_str());
        let field = kind.field(name.as_str());
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        let current = state
            .hget(&key, field.as_bytes(), now)
            .map_err(|()| StoreError::wrong_type(OP, &key))?;
        let current = match current {
            None => 0,
            Some(bytes) => {
                canonical_integer(&bytes).ok_or_else(|| property_not_an_integer(OP, &key, &field))?
            }
        };
        let new = current
            .checked_add(by)
            .ok_or_else(|| property_increment_overflow(OP, &key, &field))?;
        let text = new.to_string();
        state
            .hset_hdel(&key, &[(field.as_bytes(), text.as_bytes())], &[], now)
            .map_err(|()| StoreError::wrong_type(OP, &key))?;
        drop(state);
        self.unreplicated(OP, &key)?;
        Ok(new)
    }

    async fn delete_subject(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<bool, StoreError> {
        const OP: &str = "delete_subject";
        let key = space.key(subject.as_str());
        let now = Instant::now();
        let mut state = self.keyspace.lock();
        match state
            .hash(&key, now)
            .map_err(|()| StoreError::wrong_type(OP, &key))?
        {
            // A deletion writes; as on Redis, whose WATCH section then
            // waits for the replicas.
            Some(_) => {
                let removed = state.remove(&key, now);
                drop(state);
                self.unreplicated(OP, &key).map(|()| removed)
            }
            None => Ok(false),
        }
    }

    fn list(&self, space: &SubjectSpace, pattern: &KeyPattern) -> KeyStream {
        let keys = space.keys().clone();
        self.scan_stream(keys.pattern(pattern.as_str()), Kind::Hash)
            .filter_map(move |key| keys.name_of(&key).map(str::to_owned))
    }

    async fn exists(&self, space: &SubjectSpace, subject: &SubjectName) -> Result<bool, StoreError> {
        let key = space.key(subject.as_str());
        let mut state = self.keyspace.lock();
        let hash = state
            .hash(&key, Instant::now())
            .map_err(|()| StoreError::wrong_type("exists", &key))?;
        Ok(hash.is_some())
    }
}
