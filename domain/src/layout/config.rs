use super::unescape_component;

/// The keys of versioned configuration entries (before the store's prefix):
/// `config:<escaped name>`, one string (a JSON envelope) per entry, so an
/// update is a single-key atomic step and needs no hash tag.
///
/// ```
/// use statehouse_domain::layout::ConfigKeys;
///
/// assert_eq!(ConfigKeys::entry("app:limits"), "config:app%3Alimits");
/// assert_eq!(ConfigKeys::name_of("config:app%3Alimits").as_deref(), Some("app:limits"));
/// assert_eq!(ConfigKeys::pattern(), "config:*");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigKeys;

impl ConfigKeys {
    /// The start of every entry's key.
    pub const HEAD: &'static str = "config:";

    /// The key of the entry `name`.
    pub fn entry(name: &str) -> String {
        super::joined_escaped(&[Self::HEAD], name)
    }

    /// The glob of every entry.
    pub fn pattern() -> String {
        format!("{}*", Self::HEAD)
    }

    /// The entry name of a key of [`pattern`](Self::pattern); `None` for
    /// another key.
    pub fn name_of(key: &str) -> Option<String> {
        unescape_component(key.strip_prefix(Self::HEAD)?)
    }
}
