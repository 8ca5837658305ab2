//! [`Tables`]: rows by table name and primary key.

use serde::Serialize;
use serde::de::DeserializeOwned;
use statehouse_ports::{Fields, KeyStream, PrimaryKey, StoreError, TableName, TenantKey, TenantPattern, Ttl};

use super::records::{Core, id, key_of};

/// Tables of one tenant: rows by table name and primary key
/// (`t:{<tenant>}:table:<table>:<pk>`).
///
/// TTL per write: `set`, `set_field` and `modify_field` refresh it as
/// [`Users`](crate::Users) writes do (never shortened; without one the expiry is kept,
/// also by `set`, which replaces the fields).
#[derive(Debug, Clone)]
pub struct Tables(pub(super) Core);

impl Tables {
    /// The same repository with another TTL for its writes.
    #[must_use]
    pub fn with_ttl(&self, ttl: Option<Ttl>) -> Self {
        Self(self.0.with_ttl(ttl))
    }

    fn key(&self, op: &'static str, table: &str, pk: &str) -> Result<TenantKey, StoreError> {
        key_of(
            op,
            self.0.space.row(table, pk),
            &[(table, TableName::validate), (pk, PrimaryKey::validate)],
        )
    }

    /// Replaces the row by `value`'s fields.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        table: &str,
        pk: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_row";
        self.0.replace(OP, &self.key(OP, table, pk)?, value).await
    }

    /// The row as `T` (`None` if missing).
    pub async fn get<T: DeserializeOwned>(&self, table: &str, pk: &str) -> Result<Option<T>, StoreError> {
        const OP: &str = "get_row";
        self.0.get(OP, &self.key(OP, table, pk)?).await
    }

    /// The row field by field.
    pub async fn get_fields(&self, table: &str, pk: &str) -> Result<Fields, StoreError> {
        const OP: &str = "get_row";
        self.0.store.get_all(&self.key(OP, table, pk)?).await
    }

    /// Sets one field of the row, leaving the others.
    pub async fn set_field<T: Serialize + ?Sized>(
        &self,
        table: &str,
        pk: &str,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        const OP: &str = "set_row_field";
        self.0.set_field(OP, &self.key(OP, table, pk)?, name, value).await
    }

    /// Atomic read-modify-write of one field; returns the new value.
    pub async fn modify_field<T, F>(&self, table: &str, pk: &str, name: &str, f: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T + Send,
    {
        const OP: &str = "modify_row_field";
        self.0.modify(OP, &self.key(OP, table, pk)?, name, f).await
    }

    /// Deletes the row; returns whether it existed.
    pub async fn delete(&self, table: &str, pk: &str) -> Result<bool, StoreError> {
        const OP: &str = "delete_row";
        self.0.store.delete(&self.key(OP, table, pk)?).await
    }

    /// Deletes the rows of `pk` in every table of the tenant (SCAN over the
    /// tenant's own pattern); returns how many.
    pub async fn delete_pk(&self, pk: &str) -> Result<u64, StoreError> {
        const OP: &str = "delete_pk";
        let pk = id(PrimaryKey::new, OP, pk)?;
        self.0
            .store
            .delete_matching(&TenantPattern::rows_of_pk(self.0.tenant(), &pk))
            .await
    }

    /// The primary keys of `table`, each once, in no particular order, as
    /// a stream (SCAN over the tenant's own pattern, page by page: memory
    /// stays flat; see [`KeyStream`]). A bad table name fails here, before
    /// any I/O.
    pub fn stream(&self, table: &str) -> Result<KeyStream, StoreError> {
        const OP: &str = "list_rows";
        let table = id(TableName::new, OP, table)?;
        let layout = self.0.keys();
        Ok(self
            .0
            .scan(&TenantPattern::rows_of_table(self.0.tenant(), &table))
            .filter_map(move |key| {
                layout
                    .row_of(&key)
                    .filter(|(of, _)| of == table.as_str())
                    .map(|(_, pk)| pk)
            }))
    }

    /// [`stream`](Self::stream) collected: the primary keys, sorted. Holds
    /// them all: for tables known to be small.
    pub async fn list(&self, table: &str) -> Result<Vec<String>, StoreError> {
        self.stream(table)?.collect_sorted().await
    }
}
