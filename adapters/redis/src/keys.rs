//! Where Redis keys are built: the configured prefix in front of every key
//! and pattern, stripped from listed keys.
//!
//! Family keys (tasks, …) come from `statehouse_domain::layout`, which
//! escapes the user-given components and adds the hash tags; here they only
//! get the prefix.
//!
//! Document keys are the caller's keys verbatim (they choose the layout,
//! e.g. `user:1`); the prefix is put in front as is for keys and escaped for
//! patterns, so glob characters in a prefix never widen a listing beyond it.

use std::borrow::Cow;
use std::io::Write;

use statehouse_domain::layout::ChangeChannels;
use statehouse_domain::{Key, KeyPattern};

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    /// The prefix with glob metacharacters escaped, for `SCAN MATCH`.
    prefix_pattern: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            prefix_pattern: KeyPattern::escape(prefix),
        }
    }

    /// The Redis key of a document key.
    pub(crate) fn key<'k>(&self, key: &'k Key) -> Cow<'k, str> {
        self.raw(key.as_str())
    }

    /// The Redis key of a document key as a command argument: the prefix
    /// and the key written into the command's buffer one after the other,
    /// never joined in a `String` of their own.
    pub(crate) fn arg<'k>(&'k self, key: &'k Key) -> KeyArg<'k> {
        KeyArg {
            prefix: &self.prefix,
            key: key.as_str(),
        }
    }

    /// The length of [`arg`](Self::arg)'s bytes.
    pub(crate) fn arg_len(&self, key: &Key) -> usize {
        self.prefix.len() + key.as_str().len()
    }

    /// The Redis key of a key built by the family layout
    /// (`statehouse_domain::layout`), which escaped its components already.
    pub(crate) fn raw<'k>(&self, key: &'k str) -> Cow<'k, str> {
        if self.prefix.is_empty() {
            Cow::Borrowed(key)
        } else {
            Cow::Owned([self.prefix.as_str(), key].concat())
        }
    }

    /// The Redis pattern of a key pattern.
    pub(crate) fn pattern(&self, pattern: &KeyPattern) -> String {
        self.raw_pattern(pattern.as_str())
    }

    /// The Redis pattern of a pattern built by the family layout
    /// (`statehouse_domain::layout`: subject and tenant patterns), which
    /// escaped its literal parts already: the escaped prefix in front.
    pub(crate) fn raw_pattern(&self, pattern: &str) -> String {
        format!("{}{pattern}", self.prefix_pattern)
    }

    /// The channel of `key`'s change events (`layout::ChangeChannels`).
    pub(crate) fn change_channel(&self, key: &str) -> String {
        ChangeChannels::channel_after(&self.prefix, key)
    }

    /// The channel pattern of the change events of keys matching `pattern`.
    pub(crate) fn change_channel_pattern(&self, pattern: &KeyPattern) -> String {
        format!(
            "{}{}",
            self.prefix_pattern,
            ChangeChannels::pattern(pattern.as_str())
        )
    }

    /// The server's keyspace-notification channel of `key` in `db`.
    pub(crate) fn keyspace_channel(&self, db: i64, key: &str) -> String {
        format!("__keyspace@{db}__:{}{key}", self.prefix)
    }

    /// The keyspace-notification channel pattern of keys matching `pattern`.
    pub(crate) fn keyspace_pattern(&self, db: i64, pattern: &KeyPattern) -> String {
        format!("__keyspace@{db}__:{}{pattern}", self.prefix_pattern)
    }

    /// The caller's key a message's channel is about, and whether the
    /// channel is a keyspace notification (else statehouse's own); `None`
    /// for a channel outside this store's prefix.
    pub(crate) fn key_of_channel<'c>(&self, db: i64, channel: &'c str) -> Option<(&'c str, bool)> {
        let head = format!("__keyspace@{db}__:");
        if let Some(raw) = channel.strip_prefix(head.as_str()) {
            return Some((raw.strip_prefix(self.prefix.as_str())?, true));
        }
        let own = channel.strip_prefix(self.prefix.as_str())?;
        Some((ChangeChannels::key_of(own)?, false))
    }

    /// The caller's key of a listed Redis key. Keys are UTF-8 when written
    /// through statehouse; a foreign non-UTF-8 key is shown lossily rather
    /// than dropped from the listing.
    pub(crate) fn strip(&self, raw: &[u8]) -> String {
        let key = raw.strip_prefix(self.prefix.as_bytes()).unwrap_or(raw);
        String::from_utf8_lossy(key).into_owned()
    }
}

/// A prefixed key as one command argument (see [`Keys::arg`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyArg<'k> {
    prefix: &'k str,
    key: &'k str,
}

impl redis::ToRedisArgs for KeyArg<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        if self.prefix.is_empty() {
            out.write_arg(self.key.as_bytes());
        } else {
            let mut arg = out.writer_for_next_arg();
            // Writing into a command's buffer cannot fail.
            let _ = arg.write_all(self.prefix.as_bytes());
            let _ = arg.write_all(self.key.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use statehouse_domain::{TenantId, TenantPattern};

    use super::*;

    #[test]
    fn prefix_is_literal_in_patterns() {
        let keys = Keys::new("app[1]:");
        let key = Key::new("user:*").unwrap();
        assert_eq!(keys.key(&key), "app[1]:user:*");
        assert_eq!(
            keys.pattern(&KeyPattern::new("user:*").unwrap()),
            r"app\[1\]:user:*"
        );
        assert_eq!(keys.strip(b"app[1]:user:1"), "user:1");
    }

    #[test]
    fn a_key_argument_is_the_prefixed_key() {
        let key = Key::new("user:1").unwrap();
        for prefix in ["", "app[1]:"] {
            let keys = Keys::new(prefix);
            let mut joined = redis::cmd("SET");
            joined.arg(keys.key(&key).as_ref()).arg("v");
            let mut written = redis::cmd("SET");
            written.arg(keys.arg(&key)).arg("v");
            assert_eq!(
                written.get_packed_command(),
                joined.get_packed_command(),
                "{prefix:?}"
            );
            assert_eq!(keys.arg_len(&key), keys.key(&key).len());
        }
    }

    #[test]
    fn change_channels_carry_the_prefix_and_name_their_key() {
        let keys = Keys::new("app[1]:");
        assert_eq!(
            keys.change_channel("config:a"),
            "app[1]:statehouse:changes:config:a"
        );
        assert_eq!(
            keys.change_channel_pattern(&KeyPattern::new("config:*").unwrap()),
            r"app\[1\]:statehouse:changes:config:*"
        );
        assert_eq!(keys.keyspace_channel(2, "k"), "__keyspace@2__:app[1]:k");
        assert_eq!(
            keys.key_of_channel(0, "app[1]:statehouse:changes:a:b"),
            Some(("a:b", false))
        );
        assert_eq!(
            keys.key_of_channel(0, "__keyspace@0__:app[1]:a"),
            Some(("a", true))
        );
        assert_eq!(keys.key_of_channel(0, "__keyspace@0__:other:a"), None);
    }

    #[test]
    fn layout_patterns_get_the_escaped_prefix_only() {
        let keys = Keys::new("app[1]:");
        let users = TenantPattern::users(&TenantId::new("acme").unwrap());
        assert_eq!(keys.raw_pattern(users.pattern()), r"app\[1\]:t:{acme}:user:*");
        // The layout escaped its own literal parts: they are kept as given.
        assert_eq!(keys.raw_pattern(r"s:a\*b:*"), r"app\[1\]:s:a\*b:*");
        assert_eq!(Keys::new("").raw_pattern(users.pattern()), "t:{acme}:user:*");
    }

    #[test]
    fn no_prefix_borrows() {
        let keys = Keys::new("");
        let key = Key::new("a").unwrap();
        assert!(matches!(keys.key(&key), Cow::Borrowed("a")));
        assert_eq!(keys.pattern(&KeyPattern::new("a*").unwrap()), "a*");
    }
}
