/// The Pub/Sub channels of statehouse's change events (before the store's
/// prefix): `statehouse:changes:<key>`, the key verbatim as the caller names
/// it (so a key pattern is a channel pattern after the fixed head, which
/// holds no glob character; the head is fixed, so the channel names its key
/// exactly). The payload is a [`ChangeNotice`](crate::ChangeNotice) as JSON.
///
/// ```
/// use statehouse_domain::layout::ChangeChannels;
///
/// assert_eq!(ChangeChannels::channel("config:app"), "statehouse:changes:config:app");
/// assert_eq!(ChangeChannels::pattern("config:*"), "statehouse:changes:config:*");
/// assert_eq!(ChangeChannels::key_of("statehouse:changes:a:b"), Some("a:b"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeChannels;

impl ChangeChannels {
    /// The start of every change channel.
    pub const HEAD: &'static str = "statehouse:changes:";

    /// The channel of `key`'s changes.
    pub fn channel(key: &str) -> String {
        Self::channel_after("", key)
    }

    /// The channel of `key`'s changes after `prefix` (a store's key
    /// prefix), in one allocation: what the adapters send.
    pub fn channel_after(prefix: &str, key: &str) -> String {
        [prefix, Self::HEAD, key].concat()
    }

    /// The channel pattern of the keys matching the glob `pattern`.
    pub fn pattern(pattern: &str) -> String {
        [Self::HEAD, pattern].concat()
    }

    /// The key a channel is about; `None` for another channel.
    pub fn key_of(channel: &str) -> Option<&str> {
        channel.strip_prefix(Self::HEAD)
    }
}
