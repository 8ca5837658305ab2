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

    /// The Redis key of a key built by the family layout
    /// (`statehouse_domain::layout`), which escaped its components already.
    pub(crate) fn raw<'k>(&self, key: &'k str) -> Cow<'k, str> {
        if self.prefix.is_empty() {
            Cow::Borrowed(key)
        } else {
            Cow::Owned(format!("{}{}", self.prefix, key))
        }
    }

    /// The Redis pattern of a key pattern.
    pub(crate) fn pattern(&self, pattern: &KeyPattern) -> String {
        format!("{}{}", self.prefix_pattern, pattern)
    }

    /// The caller's key of a listed Redis key. Keys are UTF-8 when written
    /// through statehouse; a foreign non-UTF-8 key is shown lossily rather
    /// than dropped from the listing.
    pub(crate) fn strip(&self, raw: &[u8]) -> String {
        let key = raw.strip_prefix(self.prefix.as_bytes()).unwrap_or(raw);
        String::from_utf8_lossy(key).into_owned()
    }
}

#[cfg(test)]
mod tests {
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
    fn no_prefix_borrows() {
        let keys = Keys::new("");
        let key = Key::new("a").unwrap();
        assert!(matches!(keys.key(&key), Cow::Borrowed("a")));
        assert_eq!(keys.pattern(&KeyPattern::new("a*").unwrap()), "a*");
    }
}
