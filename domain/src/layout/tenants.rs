use super::{escape_component, escape_component_into, unescape_component};

/// The keys of one tenant (before the store's prefix). Every key starts
/// with `t:{<tenant>}:`, so all of a tenant's keys share one hash tag (one
/// slot on Redis Cluster) and every pattern below stays inside the tenant:
/// an escaped tenant holds no brace, `:` or glob character, so tenant `a`
/// never matches keys of tenant `ab`, `a:b` or `*`.
///
/// ```text
/// t:{<tenant>}:user:<user>               hash  a user's fields (JSON per field)
/// t:{<tenant>}:handler:<user>:<handler>  hash  a handler's state for a user
/// t:{<tenant>}:table:<table>:<pk>        hash  one row of a table
/// t:{<tenant>}:state:<user>:<name>       hash  a shared state of a user
/// ```
///
/// ```
/// use statehouse_domain::layout::TenantKeys;
///
/// let keys = TenantKeys::new("acme:eu");
/// assert_eq!(keys.user("u*1"), "t:{acme%3Aeu}:user:u%2A1");
/// assert_eq!(keys.handler("u1", "chat"), "t:{acme%3Aeu}:handler:u1:chat");
/// assert_eq!(keys.row("orders", "42"), "t:{acme%3Aeu}:table:orders:42");
/// assert_eq!(keys.state("u1", "draft"), "t:{acme%3Aeu}:state:u1:draft");
/// assert_eq!(keys.users_pattern(), "t:{acme%3Aeu}:user:*");
/// assert_eq!(keys.rows_of_pk_pattern("42"), "t:{acme%3Aeu}:table:*:42");
/// assert_eq!(keys.states_pattern("u1"), "t:{acme%3Aeu}:state:u1:*");
/// assert_eq!(keys.user_of("t:{acme%3Aeu}:user:u%2A1").as_deref(), Some("u*1"));
/// assert_eq!(keys.state_name_of("u1", "t:{acme%3Aeu}:state:u1:draft").as_deref(), Some("draft"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeys {
    /// `t:{<escaped tenant>}:`, the start of every key of the tenant.
    pub(super) head: String,
}

impl TenantKeys {
    /// The keys of `tenant` (escaped, so any text is a valid tenant).
    pub fn new(tenant: &str) -> Self {
        Self {
            head: format!("t:{{{}}}:", escape_component(tenant)),
        }
    }

    /// `t:{<escaped tenant>}:`, the start of every key of the tenant.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The glob of every key of the tenant.
    pub fn all_pattern(&self) -> String {
        format!("{}*", self.head)
    }

    /// A key of the tenant from already escaped parts, joined by `:`
    /// (`kind` is a fixed word of the layout, never user input).
    pub fn key(&self, kind: &str, parts: &[&str]) -> String {
        // One pass into one `String` sized for the parts (escaping rarely
        // grows it).
        let parts_len: usize = parts.iter().map(|part| part.len() + 1).sum();
        let mut key = String::with_capacity(self.head.len() + kind.len() + parts_len);
        key.push_str(&self.head);
        key.push_str(kind);
        for part in parts {
            key.push(':');
            escape_component_into(part, &mut key);
        }
        key
    }

    /// The hash of a user.
    pub fn user(&self, user: &str) -> String {
        self.key("user", &[user])
    }

    /// The glob of every user hash of the tenant.
    pub fn users_pattern(&self) -> String {
        format!("{}user:*", self.head)
    }

    /// The user id of a key of [`users_pattern`](Self::users_pattern);
    /// `None` for another key.
    pub fn user_of(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(self.head.as_str())?.strip_prefix("user:")?;
        unescape_component(rest)
    }

    /// The hash of a handler's state for a user.
    pub fn handler(&self, user: &str, handler: &str) -> String {
        self.key("handler", &[user, handler])
    }

    /// The hash of one row of a table.
    pub fn row(&self, table: &str, primary_key: &str) -> String {
        self.key("table", &[table, primary_key])
    }

    /// The glob of the rows of one primary key in every table of the
    /// tenant (table names are escaped, so `*` spans exactly one component).
    pub fn rows_of_pk_pattern(&self, primary_key: &str) -> String {
        format!("{}table:*:{}", self.head, escape_component(primary_key))
    }

    /// The glob of every row of one table of the tenant.
    pub fn rows_pattern(&self, table: &str) -> String {
        format!("{}table:{}:*", self.head, escape_component(table))
    }

    /// The table and primary key of a row key of the tenant; `None` for
    /// another key.
    pub fn row_of(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(self.head.as_str())?.strip_prefix("table:")?;
        let (table, primary_key) = rest.split_once(':')?;
        Some((unescape_component(table)?, unescape_component(primary_key)?))
    }

    /// The glob of every handler state of a user.
    pub fn handlers_pattern(&self, user: &str) -> String {
        format!("{}handler:{}:*", self.head, escape_component(user))
    }

    /// The handler name of a key of
    /// [`handlers_pattern`](Self::handlers_pattern) for `user`; `None` for
    /// another key.
    pub fn handler_name_of(&self, user: &str, key: &str) -> Option<String> {
        let rest = key
            .strip_prefix(self.head.as_str())?
            .strip_prefix("handler:")?
            .strip_prefix(escape_component(user).as_str())?
            .strip_prefix(':')?;
        unescape_component(rest)
    }

    /// The hash of a user's shared state `name`.
    pub fn state(&self, user: &str, name: &str) -> String {
        self.key("state", &[user, name])
    }

    /// The glob of every shared state of a user.
    pub fn states_pattern(&self, user: &str) -> String {
        format!("{}state:{}:*", self.head, escape_component(user))
    }

    /// The state name of a key of [`states_pattern`](Self::states_pattern)
    /// for `user`; `None` for another key.
    pub fn state_name_of(&self, user: &str, key: &str) -> Option<String> {
        let rest = key
            .strip_prefix(self.head.as_str())?
            .strip_prefix("state:")?
            .strip_prefix(escape_component(user).as_str())?
            .strip_prefix(':')?;
        unescape_component(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn tenant_keys_of_different_tuples_never_collide() {
        let names = [
            "a", "b", "a:b", ":b", "a:", "*", "ab", "", " ", "{a}", "a%3Ab", "é",
        ];
        let mut seen = HashMap::new();
        for tenant in names {
            let keys = TenantKeys::new(tenant);
            for first in names {
                for second in names {
                    for key in [
                        keys.user(first),
                        keys.handler(first, second),
                        keys.row(first, second),
                        keys.state(first, second),
                    ] {
                        let tuple = (tenant, first, second, key.clone());
                        if let Some(other) = seen.insert(key, tuple.clone()) {
                            // The user key has one component: equal only
                            // when the tuple is the same user.
                            assert!(
                                other.0 == tuple.0 && other.1 == tuple.1 && key_kind(&other.3) == "user",
                                "{tuple:?} and {other:?} collide"
                            );
                        }
                    }
                }
            }
        }
    }

    fn key_kind(key: &str) -> &str {
        key.split(':').nth(2).unwrap_or_default()
    }

    #[test]
    fn tenant_patterns_match_only_their_tenant() {
        let glob_free = |p: &str| p.trim_end_matches('*').replace("table:*:", "");
        let a = TenantKeys::new("a");
        assert!(
            !TenantKeys::new("ab")
                .user("x")
                .starts_with(&glob_free(&a.users_pattern()))
        );
        assert!(
            !TenantKeys::new("a:b")
                .user("x")
                .starts_with(&glob_free(&a.users_pattern()))
        );
        let star = TenantKeys::new("*");
        assert_eq!(star.users_pattern(), "t:{%2A}:user:*");
        assert_eq!(a.state_name_of("u", &a.state("u:x", "n")), None);
        assert_eq!(a.state_name_of("u", &a.state("u", "n:x")).as_deref(), Some("n:x"));
    }
}
