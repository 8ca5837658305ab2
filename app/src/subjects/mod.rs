//! The subjects facade: [`Subjects`] (names, listings) and the [`Subject`]
//! handle (a cached, staged view of one subject's properties, kept in
//! `cache.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use statehouse_ports::{
    Carry, KeyPattern, KeyStream, PropertyChange, PropertyKind, PropertyName, StoreError, SubjectName,
    SubjectSpace, SubjectStore, ValidationExt, decode_value, property_key,
};

use self::cache::{ByKind, InFlight, SlotAt, Staging};

mod cache;

/// Subjects: named bags of JSON properties, default and extended, kept in
/// KRules' Redis layout (`s:<subject prefix><name>`, fields `p<prop>` and
/// `e<prop>`, values as Python's `json.dumps` writes them), so Python
/// services using KRules share them.
///
/// Cheap to clone. Names are validated like keys: a bad one is
/// [`StoreError::InvalidInput`] before any I/O.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use statehouse::Statehouse;
///
/// let subjects = Statehouse::memory().subjects();
/// let mut user = subjects.subject("user:1")?;
/// user.set("name", &"John").await?;
/// user.set("age", &30).await?;
/// user.store().await?; // both properties, one round trip
/// let next = user.set_with("age", |age: Option<u32>| age.unwrap_or(0) + 1).await?;
/// assert_eq!(next, 31);
/// assert_eq!(subjects.list("user:*").await?, ["user:1"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Subjects {
    store: Arc<dyn SubjectStore>,
    space: SubjectSpace,
}

impl Subjects {
    /// Subjects in `space` over `store`.
    pub fn new(store: Arc<dyn SubjectStore>, space: SubjectSpace) -> Self {
        Self { store, space }
    }

    /// The same subjects under another subject prefix (KRules' `key_prefix`).
    #[must_use]
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.space = SubjectSpace::new(prefix).with_policy(self.space.policy());
        self
    }

    /// The space: prefix and retry policy.
    pub fn space(&self) -> &SubjectSpace {
        &self.space
    }

    /// A handle on subject `name` (no I/O until its first read or write).
    pub fn subject(&self, name: &str) -> Result<Subject, StoreError> {
        let name = SubjectName::new(name).for_op("subject", name)?;
        Ok(Subject {
            store: self.store.clone(),
            space: self.space.clone(),
            name,
            cache: None,
            staged: Staging::default(),
            callbacks: Vec::new(),
        })
    }

    /// The names of the subjects matching the glob `pattern` (relative to
    /// the subject prefix), each once, in no particular order, as a stream
    /// read page by page (memory stays flat; see [`KeyStream`]). A bad
    /// pattern fails here, before any I/O.
    pub fn stream(&self, pattern: &str) -> Result<KeyStream, StoreError> {
        let pattern = KeyPattern::new(pattern).for_op("list_subjects", pattern)?;
        Ok(self.store.list(&self.space, &pattern))
    }

    /// [`stream`](Self::stream) collected: the names, sorted. Holds them
    /// all: for listings known to be small.
    pub async fn list(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        self.stream(pattern)?.collect_sorted().await
    }

    /// Whether subject `name` exists.
    pub async fn exists(&self, name: &str) -> Result<bool, StoreError> {
        let name = SubjectName::new(name).for_op("exists", name)?;
        self.store.exists(&self.space, &name).await
    }

    /// Deletes subject `name` with all its properties; whether it existed.
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        let name = SubjectName::new(name).for_op("delete_subject", name)?;
        self.store.delete_subject(&self.space, &name).await
    }
}

/// A property change, as handed to [`Subject::on_change`] callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyChanged {
    /// The subject.
    pub subject: String,
    /// The property's kind.
    pub kind: PropertyKind,
    /// The property's name.
    pub name: String,
    /// The value before (`None`: it was missing).
    pub old: Option<Value>,
    /// The value after (`None`: it was deleted).
    pub new: Option<Value>,
}

type Callback = Arc<dyn Fn(&PropertyChanged) + Send + Sync>;

/// One subject, cached: the first read loads every property once (one
/// round trip); [`set`](Self::set) and [`delete`](Self::delete) stage
/// changes in the cache, and [`store`](Self::store) writes all staged
/// changes atomically in one round trip, field by field (properties others
/// wrote meanwhile survive). [`set_now`](Self::set_now) writes at once;
/// [`set_with`](Self::set_with) is an atomic read-modify-write against
/// every other process.
///
/// Reads see staged changes: a property staged for deletion reads as
/// missing. The cache is this handle's: [`reload`](Self::reload) re-reads.
pub struct Subject {
    store: Arc<dyn SubjectStore>,
    space: SubjectSpace,
    name: SubjectName,
    /// The loaded properties: a value, or `None` for one that failed to
    /// parse (its read is retried against the store, for the error).
    cache: Option<ByKind>,
    /// Changes not yet stored: `None` is a deletion.
    staged: Staging,
    callbacks: Vec<Callback>,
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("name", &self.name)
            .field("space", &self.space)
            .field("loaded", &self.cache.is_some())
            .field("staged", &self.staged.len())
            .field("callbacks", &self.callbacks.len())
            .finish()
    }
}

fn property(op: &'static str, name: &str) -> Result<PropertyName, StoreError> {
    PropertyName::new(name).for_op(op, name)
}

/// `value` as JSON; `key` (built only on failure) names the subject.
fn to_value<T: Serialize + ?Sized>(
    op: &'static str,
    key: impl FnOnce() -> String,
    value: &T,
) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|error| StoreError::Serialization {
        op,
        key: key(),
        source: error.into(),
    })
}

impl Subject {
    /// The subject's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The subject's key (before any store prefix): `s:<prefix><name>`.
    pub fn key(&self) -> String {
        self.space.key(self.name.as_str())
    }

    /// Calls `callback` after every change of a property through this
    /// handle (staged, stored at once, or updated atomically), with the
    /// old and new value and the kind.
    pub fn on_change(&mut self, callback: impl Fn(&PropertyChanged) + Send + Sync + 'static) {
        self.callbacks.push(Arc::new(callback));
    }

    /// Loads the subject into the cache if it is not there yet.
    async fn loaded(&mut self) -> Result<&mut ByKind, StoreError> {
        if self.cache.is_none() {
            let data = self.store.load(&self.space, &self.name).await?;
            self.cache = Some(ByKind::load(data));
        }
        Ok(self.cache.get_or_insert_with(ByKind::default))
    }

    /// Drops the cache and the staged changes; the next read loads again.
    pub fn reload(&mut self) {
        self.cache = None;
        self.staged.clear();
    }

    /// Whether changes are staged and not yet stored.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// The current value of a property of `kind` as JSON (staged changes
    /// included); `None` if missing or staged for deletion.
    pub async fn get_value_of(
        &mut self,
        kind: PropertyKind,
        prop: &str,
    ) -> Result<Option<Value>, StoreError> {
        const OP: &str = "get_property";
        PropertyName::validate(prop).for_op(OP, prop)?;
        if let Some(staged) = self.staged.get(kind, prop) {
            return Ok(staged.clone());
        }
        let cached = self.loaded().await?.value(kind, prop).cloned();
        match cached {
            None => Ok(None),
            Some(Some(value)) => Ok(Some(value)),
            // It failed to parse when loaded: read it again for its error
            // (or its value, if someone repaired it since).
            Some(None) => {
                let name = property(OP, prop)?;
                let value = self
                    .store
                    .get_property(&self.space, &self.name, kind, &name)
                    .await?;
                if let Some(cache) = &mut self.cache {
                    cache.put(kind, prop, value.clone());
                }
                match value {
                    Some(value) => Ok(Some(value)),
                    None => Err(StoreError::NotFound {
                        op: OP,
                        key: property_key(&self.key(), &kind.field(prop)),
                    }),
                }
            }
        }
    }

    /// A default property, decoded as `T`; `None` if missing (JSON `null`
    /// is `Some` for a `T` that accepts it, e.g. `Option<_>` or `Value`).
    pub async fn get<T: DeserializeOwned>(&mut self, prop: &str) -> Result<Option<T>, StoreError> {
        self.get_of(PropertyKind::Default, prop).await
    }

    /// An extended property, decoded as `T`.
    pub async fn get_ext<T: DeserializeOwned>(&mut self, prop: &str) -> Result<Option<T>, StoreError> {
        self.get_of(PropertyKind::Extended, prop).await
    }

    /// A property of `kind`, decoded as `T`.
    pub async fn get_of<T: DeserializeOwned>(
        &mut self,
        kind: PropertyKind,
        prop: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_value_of(kind, prop)
            .await?
            .map(|value| {
                decode_value(
                    "get_property",
                    property_key(&self.key(), &kind.field(prop)),
                    value,
                )
            })
            .transpose()
    }

    /// Every property of `kind` as the cache sees it (staged changes
    /// included; properties that failed to parse are left out).
    pub async fn properties(&mut self, kind: PropertyKind) -> Result<BTreeMap<String, Value>, StoreError> {
        let mut all: BTreeMap<String, Value> = self
            .loaded()
            .await?
            .values(kind)
            .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
            .collect();
        for (name, value) in self.staged.changes_of(kind) {
            match value {
                Some(value) => all.insert(name.to_owned(), value.clone()),
                None => all.remove(name),
            };
        }
        Ok(all)
    }

    /// Stages `value` for default property `prop`; [`store`](Self::store)
    /// writes it.
    pub async fn set<T: Serialize + ?Sized>(&mut self, prop: &str, value: &T) -> Result<(), StoreError> {
        self.set_of(PropertyKind::Default, prop, value).await
    }

    /// Stages `value` for extended property `prop`.
    pub async fn set_ext<T: Serialize + ?Sized>(&mut self, prop: &str, value: &T) -> Result<(), StoreError> {
        self.set_of(PropertyKind::Extended, prop, value).await
    }

    /// Stages `value` for property `prop` of `kind`.
    pub async fn set_of<T: Serialize + ?Sized>(
        &mut self,
        kind: PropertyKind,
        prop: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set";
        // The property's staging slot: found (its name was validated when
        // first staged), or added with its name validated now.
        let slot = self.staged.slot(kind, prop).for_op(OP, prop)?;
        let value = to_value(OP, || self.key(), value)?;
        self.stage(slot, Some(value)).await
    }

    /// Stages the deletion of property `prop` of `kind`.
    pub async fn delete(&mut self, kind: PropertyKind, prop: &str) -> Result<(), StoreError> {
        let slot = self.staged.slot(kind, prop).for_op("delete", prop)?;
        self.stage(slot, None).await
    }

    /// Stages `new` in `slot`.
    async fn stage(&mut self, slot: SlotAt, new: Option<Value>) -> Result<(), StoreError> {
        if self.callbacks.is_empty() {
            // Nobody asks for the old value: load once (the handle's
            // snapshot starts at its first use, as KRules' does), no lookup;
            // once loaded, no future to make.
            if self.cache.is_none() {
                self.loaded().await?;
            }
            self.staged.put(slot, new);
            return Ok(());
        }
        let kind = slot.kind();
        let name = self.staged.name(slot).to_owned();
        let old = self.get_value_of(kind, &name).await?;
        self.staged.put(slot, new.clone());
        self.notify(kind, &name, old, new);
        Ok(())
    }

    /// Writes every staged change atomically, in one round trip, field by
    /// field: properties not staged here are left as they are in the store
    /// (including ones other processes wrote since the load). Nothing staged
    /// writes nothing.
    pub async fn store(&mut self) -> Result<(), StoreError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        // The staged changes move (no copy) into the batch, their slots
        // lending their validated names; until the store answers they stay
        // in `in_flight`, which stages them again if the write fails or this
        // future is dropped: nothing staged is lost.
        let in_flight = InFlight::lend(&mut self.staged);
        self.store
            .store(&self.space, &self.name, in_flight.batch())
            .await?;
        in_flight.stored(self.cache.as_mut());
        Ok(())
    }

    /// Writes default property `prop` at once (one round trip), replacing
    /// any staged change of it; other staged changes stay staged.
    pub async fn set_now<T: Serialize + ?Sized>(&mut self, prop: &str, value: &T) -> Result<(), StoreError> {
        self.set_now_of(PropertyKind::Default, prop, value).await
    }

    /// Writes property `prop` of `kind` at once; see [`set_now`](Self::set_now).
    pub async fn set_now_of<T: Serialize + ?Sized>(
        &mut self,
        kind: PropertyKind,
        prop: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_now";
        let name = property(OP, prop)?;
        let value = to_value(OP, || self.key(), value)?;
        let old = self.get_value_of(kind, prop).await.ok().flatten();
        let change = PropertyChange::Set {
            kind,
            name,
            value: value.clone(),
        };
        self.store.store(&self.space, &self.name, &[change]).await?;
        self.staged.remove(kind, prop);
        if let Some(cache) = &mut self.cache {
            cache.put(kind, prop, Some(value.clone()));
        }
        self.notify(kind, prop, old, Some(value));
        Ok(())
    }

    /// Atomically replaces default property `prop` with `f(old)`, against
    /// every other process (a WATCH loop on Redis): concurrent `set_with`
    /// calls lose no update. `f` gets `None` when the property is missing
    /// and **may run more than once**. Returns the new value. Replaces any
    /// staged change of `prop`.
    pub async fn set_with<T, F>(&mut self, prop: &str, f: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        self.set_with_of(PropertyKind::Default, prop, f).await
    }

    /// [`set_with`](Self::set_with) for a property of `kind`.
    pub async fn set_with_of<T, F>(
        &mut self,
        kind: PropertyKind,
        prop: &str,
        mut f: F,
    ) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        const OP: &str = "set_with";
        let name = property(OP, prop)?;
        let key = property_key(&self.key(), &kind.field(prop));
        // A stored value that does not decode as `T`, or a new one that does
        // not encode, comes back naming the subject and the property (never
        // as `Aborted`).
        let mut carry = Carry::new();
        let updated = self
            .store
            .update_property(&self.space, &self.name, kind, &name, &mut |old| {
                carry.keep((|| {
                    let old = old
                        .map(|old| decode_value::<T, _>(OP, key.as_str(), old))
                        .transpose()?;
                    to_value(OP, || key.clone(), &f(old))
                })())
            })
            .await;
        let updated = carry.outcome(updated)?;
        self.staged.remove(kind, prop);
        if let Some(cache) = &mut self.cache {
            cache.put(kind, prop, Some(updated.new.clone()));
        }
        let new = decode_value(OP, key.as_str(), &updated.new)?;
        self.notify(kind, prop, updated.old, Some(updated.new));
        Ok(new)
    }

    /// Adds `by` to integer default property `prop` on the server, in one
    /// round trip (`HINCRBY` on Redis), atomically against every process,
    /// and returns the new value: the fast path of a counter, no closure
    /// and no WATCH. A missing property starts at `0`. A property that is
    /// not an integer is [`StoreError::Deserialization`], leaving the `i64`
    /// range [`StoreError::InvalidInput`]: both name the subject and the
    /// property and write nothing. Replaces any staged change of `prop`;
    /// callbacks get the old value as `new - by` (`None` if the cache knew
    /// the property missing).
    pub async fn increment(&mut self, prop: &str, by: i64) -> Result<i64, StoreError> {
        self.increment_of(PropertyKind::Default, prop, by).await
    }

    /// [`increment`](Self::increment) for a property of `kind`.
    pub async fn increment_of(&mut self, kind: PropertyKind, prop: &str, by: i64) -> Result<i64, StoreError> {
        const OP: &str = "increment";
        let name = property(OP, prop)?;
        let new = self
            .store
            .increment_property(&self.space, &self.name, kind, &name, by)
            .await?;
        self.staged.remove(kind, prop);
        let known_missing = self
            .cache
            .as_ref()
            .is_some_and(|cache| cache.value(kind, prop).is_none());
        let old = (!known_missing).then(|| Value::from(new.wrapping_sub(by)));
        if let Some(cache) = &mut self.cache {
            cache.put(kind, prop, Some(Value::from(new)));
        }
        self.notify(kind, prop, old, Some(Value::from(new)));
        Ok(new)
    }

    fn notify(&self, kind: PropertyKind, name: &str, old: Option<Value>, new: Option<Value>) {
        if self.callbacks.is_empty() {
            return;
        }
        let change = PropertyChanged {
            subject: self.name.as_str().to_owned(),
            kind,
            name: name.to_owned(),
            old,
            new,
        };
        for callback in &self.callbacks {
            callback(&change);
        }
    }
}
