//! Tenants: the ids of the tenant repositories (users, handler state,
//! tables, shared state) and the two things their port works on, a
//! [`TenantKey`] (one hash of one tenant) and a [`TenantPattern`] (a glob
//! that stays inside one tenant), both built only through
//! [`layout::TenantKeys`](crate::layout::TenantKeys).
//!
//! Every id is validated by [`validate_identifier`] (not empty, at most
//! [`MAX_KEY_BYTES`] bytes, no control characters) and escaped where it
//! becomes part of a key, so any other text (`:`, `*`, `{`, spaces,
//! unicode) is a valid id and never reaches into another tenant's keys.

use std::fmt;
use std::sync::Arc;

use crate::layout::TenantKeys;
use crate::{MAX_KEY_BYTES, UserId, ValidationError, validate_identifier};

identifier!(
    /// The id of a tenant, e.g. `acme`. Escaped in its keys' hash tag
    /// `t:{<tenant>}:`.
    TenantId,
    "tenant",
    MAX_KEY_BYTES
);

identifier!(
    /// The name of a conversation handler, e.g. `support-bot`.
    HandlerName,
    "handler",
    MAX_KEY_BYTES
);

identifier!(
    /// The name of a tenant table, e.g. `orders`.
    TableName,
    "table",
    MAX_KEY_BYTES
);

identifier!(
    /// The primary key of a table row, e.g. `order-42`.
    PrimaryKey,
    "primary key",
    MAX_KEY_BYTES
);

identifier!(
    /// The name of a shared state of a user, e.g. `draft`.
    StateName,
    "state name",
    MAX_KEY_BYTES
);

identifier!(
    /// The name of a field of a tenant record (a hash field). Used verbatim
    /// as the hash field: fields live inside one key, so they need no
    /// escaping.
    FieldName,
    "field",
    MAX_KEY_BYTES
);

/// One hash of one tenant: the tenant and its key (before the store's
/// prefix). Only the constructors below build one, from the layout.
///
/// ```
/// use statehouse_domain::{TenantId, TenantKey, UserId};
///
/// let tenant = TenantId::new("acme")?;
/// let key = TenantKey::user(&tenant, &UserId::new("u:1")?);
/// assert_eq!(key.key(), "t:{acme}:user:u%3A1");
/// assert_eq!(key.tenant().as_str(), "acme");
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantKey {
    /// Shared with the [`TenantSpace`] that built the key (no copy per key).
    tenant: Arc<TenantId>,
    key: String,
}

impl TenantKey {
    /// The hash of `user`.
    pub fn user(tenant: &TenantId, user: &UserId) -> Self {
        Self::of(tenant, |keys| keys.user(user.as_str()))
    }

    /// The hash of `handler`'s state for `user`.
    pub fn handler(tenant: &TenantId, user: &UserId, handler: &HandlerName) -> Self {
        Self::of(tenant, |keys| keys.handler(user.as_str(), handler.as_str()))
    }

    /// The hash of the row `primary_key` of `table`.
    pub fn row(tenant: &TenantId, table: &TableName, primary_key: &PrimaryKey) -> Self {
        Self::of(tenant, |keys| keys.row(table.as_str(), primary_key.as_str()))
    }

    /// The hash of `user`'s shared state `name`.
    pub fn state(tenant: &TenantId, user: &UserId, name: &StateName) -> Self {
        Self::of(tenant, |keys| keys.state(user.as_str(), name.as_str()))
    }

    /// The key of a listed key that belongs to `tenant` (it must start
    /// with the tenant's head); `None` for another tenant's key.
    pub fn listed(tenant: &TenantId, key: &str) -> Option<Self> {
        key.starts_with(TenantKeys::new(tenant.as_str()).head())
            .then(|| Self {
                tenant: Arc::new(tenant.clone()),
                key: key.to_owned(),
            })
    }

    fn of(tenant: &TenantId, build: impl FnOnce(&TenantKeys) -> String) -> Self {
        Self {
            tenant: Arc::new(tenant.clone()),
            key: build(&TenantKeys::new(tenant.as_str())),
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The key, without the store's prefix.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What names one field of this key in errors:
    /// `<key> field <field> (tenant <tenant>)`.
    ///
    /// ```
    /// use statehouse_domain::{TenantId, TenantKey, UserId};
    ///
    /// let key = TenantKey::user(&TenantId::new("acme")?, &UserId::new("u1")?);
    /// assert_eq!(key.field_key("age"), "t:{acme}:user:u1 field age (tenant acme)");
    /// # Ok::<(), statehouse_domain::ValidationError>(())
    /// ```
    pub fn field_key(&self, field: &str) -> String {
        format!("{} field {field} (tenant {})", self.key, self.tenant)
    }
}

impl fmt::Display for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// One tenant with its keys' layout, built once (what a tenant's
/// repositories keep), so that each key of its records is validated and
/// built in one pass into one `String`, with no layout built per call.
///
/// ```
/// use statehouse_domain::{TenantId, TenantSpace, TenantKey, UserId};
///
/// let space = TenantSpace::new(TenantId::new("acme")?);
/// let key = space.user("u:1")?;
/// assert_eq!(key, TenantKey::user(space.tenant(), &UserId::new("u:1")?));
/// assert_eq!(space.handler("u1", "chat")?.key(), "t:{acme}:handler:u1:chat");
/// assert!(space.state("u1", "").is_err());
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSpace {
    tenant: Arc<TenantId>,
    keys: TenantKeys,
}

impl TenantSpace {
    /// The space of `tenant`.
    pub fn new(tenant: TenantId) -> Self {
        Self {
            keys: TenantKeys::new(tenant.as_str()),
            tenant: Arc::new(tenant),
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The tenant's key layout.
    pub fn keys(&self) -> &TenantKeys {
        &self.keys
    }

    /// The hash of `user` (validated as a [`UserId`]).
    pub fn user(&self, user: &str) -> Result<TenantKey, ValidationError> {
        UserId::validate(user)?;
        Ok(self.key(self.keys.user(user)))
    }

    /// The hash of `handler`'s state for `user` (validated as a [`UserId`]
    /// and a [`HandlerName`], in that order).
    pub fn handler(&self, user: &str, handler: &str) -> Result<TenantKey, ValidationError> {
        UserId::validate(user)?;
        HandlerName::validate(handler)?;
        Ok(self.key(self.keys.handler(user, handler)))
    }

    /// The hash of the row `primary_key` of `table` (validated as a
    /// [`TableName`] and a [`PrimaryKey`], in that order).
    pub fn row(&self, table: &str, primary_key: &str) -> Result<TenantKey, ValidationError> {
        TableName::validate(table)?;
        PrimaryKey::validate(primary_key)?;
        Ok(self.key(self.keys.row(table, primary_key)))
    }

    /// The hash of `user`'s shared state `name` (validated as a [`UserId`]
    /// and a [`StateName`], in that order).
    pub fn state(&self, user: &str, name: &str) -> Result<TenantKey, ValidationError> {
        UserId::validate(user)?;
        StateName::validate(name)?;
        Ok(self.key(self.keys.state(user, name)))
    }

    fn key(&self, key: String) -> TenantKey {
        TenantKey {
            tenant: self.tenant.clone(),
            key,
        }
    }
}

/// A glob over keys of one tenant (before the store's prefix), built only
/// from the layout's patterns, which escape every component: it never
/// matches a key of another tenant.
///
/// ```
/// use statehouse_domain::{PrimaryKey, TenantId, TenantPattern, UserId};
///
/// let tenant = TenantId::new("*")?;
/// assert_eq!(TenantPattern::users(&tenant).pattern(), "t:{%2A}:user:*");
/// let pk = PrimaryKey::new("42")?;
/// assert_eq!(TenantPattern::rows_of_pk(&tenant, &pk).pattern(), "t:{%2A}:table:*:42");
/// let user = UserId::new("u1")?;
/// assert_eq!(TenantPattern::states(&tenant, &user).pattern(), "t:{%2A}:state:u1:*");
/// # Ok::<(), statehouse_domain::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantPattern {
    tenant: TenantId,
    pattern: String,
}

impl TenantPattern {
    /// Every user hash of the tenant.
    pub fn users(tenant: &TenantId) -> Self {
        Self::of(tenant, TenantKeys::users_pattern)
    }

    /// The rows of `primary_key` in every table of the tenant.
    pub fn rows_of_pk(tenant: &TenantId, primary_key: &PrimaryKey) -> Self {
        Self::of(tenant, |keys| keys.rows_of_pk_pattern(primary_key.as_str()))
    }

    /// Every row of `table`.
    pub fn rows_of_table(tenant: &TenantId, table: &TableName) -> Self {
        Self::of(tenant, |keys| keys.rows_pattern(table.as_str()))
    }

    /// Every shared state of `user`.
    pub fn states(tenant: &TenantId, user: &UserId) -> Self {
        Self::of(tenant, |keys| keys.states_pattern(user.as_str()))
    }

    /// Every handler state of `user`.
    pub fn handlers(tenant: &TenantId, user: &UserId) -> Self {
        Self::of(tenant, |keys| keys.handlers_pattern(user.as_str()))
    }

    /// Every key of the tenant.
    pub fn all(tenant: &TenantId) -> Self {
        Self::of(tenant, TenantKeys::all_pattern)
    }

    fn of(tenant: &TenantId, build: impl FnOnce(&TenantKeys) -> String) -> Self {
        Self {
            tenant: tenant.clone(),
            pattern: build(&TenantKeys::new(tenant.as_str())),
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The glob, without the store's prefix.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Display for TenantPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("a\nb").is_err());
        assert!(TenantId::new("*").is_ok());
        assert!(FieldName::new("a:b c").is_ok());
    }

    #[test]
    fn a_space_builds_the_keys_of_the_typed_constructors() {
        let tenant = TenantId::new("a:b*").unwrap();
        let space = TenantSpace::new(tenant.clone());
        let (user, name) = ("u 1", "n:{x}");
        let u = UserId::new(user).unwrap();
        assert_eq!(space.user(user).unwrap(), TenantKey::user(&tenant, &u));
        assert_eq!(
            space.handler(user, name).unwrap(),
            TenantKey::handler(&tenant, &u, &HandlerName::new(name).unwrap())
        );
        assert_eq!(
            space.row(user, name).unwrap(),
            TenantKey::row(
                &tenant,
                &TableName::new(user).unwrap(),
                &PrimaryKey::new(name).unwrap()
            )
        );
        assert_eq!(
            space.state(user, name).unwrap(),
            TenantKey::state(&tenant, &u, &StateName::new(name).unwrap())
        );
    }

    #[test]
    fn a_space_validates_every_part() {
        let space = TenantSpace::new(TenantId::new("t").unwrap());
        assert_eq!(space.user(""), Err(ValidationError::Empty { what: "user id" }));
        assert_eq!(
            space.handler("u", "").unwrap_err(),
            ValidationError::Empty { what: "handler" }
        );
        assert!(matches!(
            space.state("u\n", "s"),
            Err(ValidationError::ControlCharacter { what: "user id", .. })
        ));
        assert_eq!(
            space.row("t", "").unwrap_err(),
            ValidationError::Empty { what: "primary key" }
        );
        assert!(space.row(&"x".repeat(crate::MAX_KEY_BYTES + 1), "1").is_err());
    }

    #[test]
    fn listed_keys_must_belong_to_the_tenant() {
        let a = TenantId::new("a").unwrap();
        let ab = TenantId::new("ab").unwrap();
        let user = UserId::new("u").unwrap();
        let key = TenantKey::user(&ab, &user);
        assert_eq!(TenantKey::listed(&a, key.key()), None);
        assert_eq!(TenantKey::listed(&ab, key.key()), Some(key));
    }
}
