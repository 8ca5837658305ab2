//! Change events and versioned configuration entries.
//!
//! - [`ChangeEvent`], [`ChangeKind`], [`FeedEvent`], [`ResyncReason`]: what
//!   a change feed delivers.
//! - [`ConfigEntry`]: the stored envelope of a versioned configuration value
//!   (`{"version": n, "value": …, "history": [older versions]}`) and the rule
//!   that computes the next one; a version bump, the history append and the
//!   value are one document, so one atomic single-key write changes all.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The key was written (created or changed).
    Set,
    /// The key was deleted.
    Deleted,
    /// The key expired (its TTL ran out).
    Expired,
}

impl ChangeKind {
    /// `"set"`, `"deleted"` or `"expired"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Deleted => "deleted",
            Self::Expired => "expired",
        }
    }
}

/// One change of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The key, as the caller names it (without a store's prefix).
    pub key: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The version the write produced, when the writer announced one
    /// (versioned configuration entries); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// Why a subscriber must re-read what it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResyncReason {
    /// The subscription is live: changes from now on are delivered; what
    /// changed before is only in the store.
    Subscribed,
    /// The subscription was lost (connection) and is live again: changes
    /// made meanwhile were not delivered.
    Reconnected,
    /// The subscriber's buffer overflowed: changes were dropped.
    Lagged,
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedEvent {
    /// A key changed.
    Change(ChangeEvent),
    /// Events may have been missed (or the subscription just started):
    /// re-read what is watched.
    Resync(ResyncReason),
}

/// The payload statehouse publishes on a key's change channel: the kind and,
/// when known, the version (`{"kind":"set","version":3}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeNotice {
    /// What happened.
    pub kind: ChangeKind,
    /// The version, if the writer announced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl ChangeNotice {
    /// The JSON text published.
    pub fn to_json(self) -> Vec<u8> {
        // Serializing two plain fields cannot fail.
        serde_json::to_vec(&self).unwrap_or_default()
    }
}

/// A versioned configuration entry, as stored: the current value with its
/// version, and (in history mode) older versions, newest first.
///
/// ```
/// use statehouse_domain::ConfigEntry;
/// use serde_json::json;
///
/// let one = ConfigEntry::next(None, json!({"limit": 1}), Some(2), None).unwrap();
/// let two = ConfigEntry::next(Some(&one), json!({"limit": 2}), None, None).unwrap();
/// let three = ConfigEntry::next(Some(&two), json!({"limit": 3}), None, Some(2)).unwrap();
/// assert_eq!(three.version, 3);
/// assert_eq!(three.versions(), [3, 2, 1]);
/// assert_eq!(three.at(1).unwrap()["limit"], 1);
/// // Compare-and-set: someone else wrote version 3 first.
/// assert!(ConfigEntry::next(Some(&three), json!(4), None, Some(2)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// The version of `value`: 1 for the first write, +1 per write.
    pub version: u64,
    /// The current value.
    pub value: Value,
    /// Older versions, newest first, at most [`keep`](Self::keep).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastVersion>,
    /// The history length of this entry (0: plain mode), kept by writers
    /// that do not choose one, so a plain writer never cuts the history
    /// of an entry in history mode.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// An older version of a [`ConfigEntry`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastVersion {
    /// Its version.
    pub version: u64,
    /// Its value.
    pub value: Value,
}

/// The head of a stored entry, without its history: what reads decode (serde
/// skips the history without building it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConfigHead {
    /// The current version.
    pub version: u64,
    /// The current value.
    pub value: Value,
}

/// A compare-and-set failed: the entry is at `actual`, not `expected`
/// (`0` means absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionMismatch {
    /// The version the writer expected.
    pub expected: u64,
    /// The version found.
    pub actual: u64,
}

impl ConfigEntry {
    /// The entry after writing `value` over `current`: version + 1, the old
    /// value pushed onto the history, which is cut to `history_len` (0: plain
    /// mode, no history; `None`: the entry's own length, plain for a new
    /// entry). With `expected`, fails unless `current` is at that version
    /// (0: absent).
    pub fn next(
        current: Option<&Self>,
        value: Value,
        history_len: Option<usize>,
        expected: Option<u64>,
    ) -> Result<Self, VersionMismatch> {
        let actual = current.map_or(0, |entry| entry.version);
        let history_len = history_len.unwrap_or_else(|| current.map_or(0, |entry| entry.keep));
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(VersionMismatch { expected, actual });
        }
        let mut history = Vec::new();
        if let Some(current) = current
            && history_len > 0
        {
            history.reserve(history_len);
            history.push(PastVersion {
                version: current.version,
                value: current.value.clone(),
            });
            history.extend(current.history.iter().take(history_len - 1).cloned());
        }
        Ok(Self {
            version: actual + 1,
            value,
            history,
            keep: history_len,
        })
    }

    /// Every version held, newest first.
    pub fn versions(&self) -> Vec<u64> {
        std::iter::once(self.version)
            .chain(self.history.iter().map(|past| past.version))
            .collect()
    }

    /// The value of `version`, if held.
    pub fn at(&self, version: u64) -> Option<&Value> {
        if version == self.version {
            return Some(&self.value);
        }
        self.history
            .iter()
            .find(|past| past.version == version)
            .map(|past| &past.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_mode_keeps_no_history() {
        let one = ConfigEntry::next(None, json!(1), None, None).unwrap();
        let two = ConfigEntry::next(Some(&one), json!(2), None, None).unwrap();
        assert_eq!(two.versions(), [2]);
        assert_eq!(serde_json::to_string(&two).unwrap(), r#"{"version":2,"value":2}"#);
    }

    #[test]
    fn history_is_bounded_newest_first() {
        let mut entry = ConfigEntry::next(None, json!(1), Some(3), None).unwrap();
        for n in 2..=10 {
            entry = ConfigEntry::next(Some(&entry), json!(n), Some(3), None).unwrap();
        }
        assert_eq!(entry.versions(), [10, 9, 8, 7]);
        // A writer that does not choose keeps the entry's length; one that
        // chooses plain mode drops the history.
        let kept = ConfigEntry::next(Some(&entry), json!(11), None, None).unwrap();
        assert_eq!(kept.versions(), [11, 10, 9, 8]);
        let plain = ConfigEntry::next(Some(&kept), json!(12), Some(0), None).unwrap();
        assert_eq!(plain.versions(), [12]);
        assert_eq!(entry.at(8), Some(&json!(8)));
        assert_eq!(entry.at(6), None);
    }

    #[test]
    fn compare_and_set_checks_the_version_absent_is_zero() {
        assert!(ConfigEntry::next(None, json!(1), None, Some(0)).is_ok());
        assert_eq!(
            ConfigEntry::next(None, json!(1), None, Some(1)),
            Err(VersionMismatch {
                expected: 1,
                actual: 0
            })
        );
    }

    #[test]
    fn the_head_skips_the_history() {
        let head: ConfigHead =
            serde_json::from_str(r#"{"version":3,"value":{"a":1},"history":[{"version":2,"value":0}]}"#)
                .unwrap();
        assert_eq!(head.version, 3);
        assert_eq!(head.value, json!({"a": 1}));
    }

    #[test]
    fn notices_and_events_are_lowercase_json() {
        let notice = ChangeNotice {
            kind: ChangeKind::Set,
            version: Some(3),
        };
        assert_eq!(notice.to_json(), br#"{"kind":"set","version":3}"#);
        let parsed: ChangeNotice = serde_json::from_slice(br#"{"kind":"deleted"}"#).unwrap();
        assert_eq!(parsed.version, None);
        assert_eq!(parsed.kind, ChangeKind::Deleted);
    }
}
