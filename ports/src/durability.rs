//! How many replicas must have a write before it is acknowledged.

use std::fmt;
use std::time::Duration;

/// How many replicas must confirm a write before statehouse acknowledges
/// it (Redis' `WAIT numreplicas timeout`, sent on the connection of the
/// write, after it). Reads never wait.
///
/// The default, [`Primary`](Self::Primary), acknowledges a write once the
/// primary applied it, as Redis does: replication is asynchronous, so a
/// failover can lose writes acknowledged but not yet replicated.
/// [`Replicas`](Self::Replicas) narrows that window: a write is
/// acknowledged only once `count` replicas have it; if fewer confirm within
/// `timeout`, the call fails with
/// [`StoreError::NotDurable`](crate::StoreError::NotDurable), and the write
/// **was applied on the primary** all the same (Redis cannot take it back).
///
/// `WAIT` is not consensus: a failover may still promote a replica that
/// lacks the write, unless every replica a failover may pick is among the
/// `count` that confirmed. See `docs/reliability.md`, "Durability".
///
/// The memory store has no replicas: it behaves as a server without any,
/// so with `count >= 1` every write is applied and fails with `NotDurable`
/// (0 of `count` confirmed).
///
/// ```
/// use std::time::Duration;
/// use statehouse_ports::Durability;
///
/// let durable = Durability::replicas(1, Duration::from_millis(500));
/// assert_eq!(durable.wanted(), 1);
/// assert_eq!(Durability::default(), Durability::Primary);
/// assert_eq!(Durability::default().wanted(), 0);
/// assert_eq!(durable.to_string(), "1 replica within 500ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledged once the primary applied it (Redis' default).
    #[default]
    Primary,
    /// Acknowledged once `count` replicas confirmed it, waiting at most
    /// `timeout` for them (`WAIT count timeout`). `count == 0` is
    /// [`Primary`](Self::Primary).
    Replicas {
        /// How many replicas must confirm.
        count: u32,
        /// How long to wait for them, on top of the write's own answer.
        timeout: Duration,
    },
}

impl Durability {
    /// `count` replicas within `timeout` (`Primary` if `count` is 0).
    pub fn replicas(count: u32, timeout: Duration) -> Self {
        if count == 0 {
            Self::Primary
        } else {
            Self::Replicas { count, timeout }
        }
    }

    /// How many replicas must confirm a write (0: none).
    pub fn wanted(&self) -> u32 {
        match self {
            Self::Primary => 0,
            Self::Replicas { count, .. } => *count,
        }
    }

    /// The `WAIT` to send after a write, `(count, timeout)`; `None` when
    /// nothing is waited for.
    pub fn wait(&self) -> Option<(u32, Duration)> {
        match *self {
            Self::Replicas { count, timeout } if count > 0 => Some((count, timeout)),
            _ => None,
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.wait() {
            None => f.write_str("primary only"),
            Some((1, timeout)) => write!(f, "1 replica within {timeout:?}"),
            Some((count, timeout)) => write!(f, "{count} replicas within {timeout:?}"),
        }
    }
}
