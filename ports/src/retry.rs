use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How an optimistic read-modify-write retries when the key changed under
/// it: at most `max_attempts` runs, with exponential backoff and jitter
/// between them.
///
/// The delay after the `n`-th failed attempt is drawn uniformly from
/// `[c/2, c]` where `c = min(max_backoff, initial_backoff * 2^(n-1))`
/// ("equal jitter"): contenders spread out instead of colliding again in
/// lockstep, and no one retries with a zero delay.
///
/// Both adapters use the same policy, so "gave up after N attempts"
/// ([`StoreError::Conflict`](crate::StoreError::Conflict)) means the same on
/// Redis and in memory.
///
/// ```
/// use std::time::Duration;
/// use statehouse_ports::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// assert_eq!(policy.max_attempts(), 50);
/// let once = RetryPolicy::new(1);
/// assert_eq!(once.max_attempts(), 1);
/// assert!(policy.backoff(3) <= Duration::from_millis(4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 50 attempts, backoff from 1 ms doubling up to 50 ms.
    fn default() -> Self {
        Self {
            max_attempts: 50,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(50),
        }
    }
}

impl RetryPolicy {
    /// The default backoff with at most `max_attempts` attempts (at least 1:
    /// zero is read as one, since an update runs at least once).
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// One attempt, no retry: the first conflict is reported as
    /// [`StoreError::Conflict`](crate::StoreError::Conflict).
    pub fn no_retry() -> Self {
        Self::new(1)
    }

    /// The same policy with another backoff range. `initial` is raised to at
    /// least 1 µs and `max` to at least `initial`.
    #[must_use]
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial.max(Duration::from_micros(1));
        self.max_backoff = max.max(self.initial_backoff);
        self
    }

    /// How many times an update runs at most.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The first backoff's upper bound.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The cap on any backoff.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// The delay to wait after failed attempt number `attempt` (1-based)
    /// before the next one; randomized, see the type's documentation.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = random_u64() % spread.saturating_add(1);
        half.saturating_add(Duration::from_nanos(jitter))
    }
}

/// A random number without a random-number dependency: every `RandomState`
/// is seeded with fresh per-process random keys plus a per-thread counter, so
/// hashing nothing with a new one yields a new pseudo-random value.
fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_bounds() {
        let policy = RetryPolicy::default().with_backoff(Duration::from_millis(2), Duration::from_millis(20));
        for _ in 0..200 {
            let first = policy.backoff(1);
            assert!(
                first >= Duration::from_millis(1) && first <= Duration::from_millis(2),
                "{first:?}"
            );
            let third = policy.backoff(3);
            assert!(
                third >= Duration::from_millis(4) && third <= Duration::from_millis(8),
                "{third:?}"
            );
            let capped = policy.backoff(40);
            assert!(
                capped >= Duration::from_millis(10) && capped <= Duration::from_millis(20),
                "{capped:?}"
            );
        }
    }

    #[test]
    fn backoff_is_jittered() {
        let policy = RetryPolicy::default();
        let delays: std::collections::HashSet<_> = (0..50).map(|_| policy.backoff(6)).collect();
        assert!(delays.len() > 10, "expected spread, got {delays:?}");
    }

    #[test]
    fn zero_attempts_means_one() {
        assert_eq!(RetryPolicy::new(0).max_attempts(), 1);
        assert_eq!(RetryPolicy::no_retry().max_attempts(), 1);
    }

    #[test]
    fn backoff_never_overflows() {
        let policy =
            RetryPolicy::new(u32::MAX).with_backoff(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        let _ = policy.backoff(u32::MAX);
    }
}
