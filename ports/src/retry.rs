//! Retries: [`RetryPolicy`] and [`RetryPolicy::run`], THE optimistic loop
//! every read-modify-write goes through (both adapters' sections and the
//! config store's compare-and-set), and [`Backoff`], the one growing,
//! jittered delay (the policy's between conflicts, and the reconnects and
//! re-reads of long-lived tasks).

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::StoreError;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// How one attempt of an optimistic read-modify-write ended, short of an
/// error (an `Err` ends the whole update as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    /// The update is over: committed, or nothing had to be written.
    Done(T),
    /// What the attempt read changed before its write (Redis' EXEC
    /// answering nil, a refused compare-and-set): nothing was written; it
    /// counts, and the next attempt follows the policy's backoff, or the
    /// update gives up with [`StoreError::Conflict`].
    Conflict,
    /// Nothing was written and the attempt must be made again at once,
    /// without counting as a conflict (the server lost its scripts, the
    /// attempt worked from a stale cache). The attempt itself bounds how
    /// often it asks for this.
    Repeat,
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
        jittered(self.initial_backoff, self.max_backoff, attempt)
    }

    /// THE optimistic loop: runs `attempts` until one is
    /// [`Done`](Attempt::Done), at most [`max_attempts`](Self::max_attempts)
    /// times counting only [`Conflict`](Attempt::Conflict)s, with the
    /// policy's [`backoff`](Self::backoff) after each conflict but the
    /// last; a [`Repeat`](Attempt::Repeat) makes the same attempt number
    /// again at once. Running out of attempts is [`StoreError::Conflict`]
    /// naming `op` and `key`; an `Err` from an attempt ends the loop as it
    /// is.
    ///
    /// Returns the result with the number of the attempt that finished
    /// (1 without conflicts), what [`Updated::attempts`](crate::Updated::attempts)
    /// reports.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use statehouse_ports::{Attempt, ErrorKind, Optimistic, RetryPolicy, StoreError};
    ///
    /// /// Conflicts twice, then commits.
    /// struct Flaky { runs: u32 }
    ///
    /// impl Optimistic for Flaky {
    ///     type Output = &'static str;
    ///     async fn attempt(&mut self, number: u32) -> Result<Attempt<&'static str>, StoreError> {
    ///         self.runs += 1;
    ///         Ok(if number < 3 { Attempt::Conflict } else { Attempt::Done("written") })
    ///     }
    /// }
    ///
    /// let mut flaky = Flaky { runs: 0 };
    /// let done = RetryPolicy::new(5).run("update", "k", &mut flaky).await;
    /// assert_eq!(done.unwrap(), ("written", 3));
    /// assert_eq!(flaky.runs, 3);
    ///
    /// let gave_up = RetryPolicy::new(2).run("update", "k", &mut Flaky { runs: 0 }).await;
    /// assert_eq!(gave_up.unwrap_err().kind(), ErrorKind::Conflict);
    /// # }
    /// ```
    pub async fn run<A: Optimistic>(
        &self,
        op: &'static str,
        key: &str,
        attempts: &mut A,
    ) -> Result<(A::Output, u32), StoreError> {
        let mut number = 1;
        loop {
            match attempts.attempt(number).await? {
                Attempt::Done(value) => return Ok((value, number)),
                Attempt::Repeat => {}
                Attempt::Conflict if number >= self.max_attempts => {
                    return Err(StoreError::Conflict {
                        op,
                        key: key.to_owned(),
                        attempts: self.max_attempts,
                    });
                }
                Attempt::Conflict => {
                    tokio::time::sleep(self.backoff(number)).await;
                    number += 1;
                }
            }
        }
    }
}

/// The attempts of one optimistic read-modify-write, run by
/// [`RetryPolicy::run`]: each backend's section (read, decide, write if
/// nothing changed), and the config store's compare-and-set.
///
/// A trait rather than an async closure so that the loop's future is
/// `Send` where the attempt's is, which `#[async_trait]` ports need.
pub trait Optimistic: Send {
    /// What a finished update returns.
    type Output;

    /// Makes attempt number `number` (1-based; the same number again
    /// after a [`Repeat`](Attempt::Repeat)).
    fn attempt(
        &mut self,
        number: u32,
    ) -> impl Future<Output = Result<Attempt<Self::Output>, StoreError>> + Send;
}

/// A growing delay between tries of something that must eventually succeed
/// (a reconnect, a re-read after a failure): the [`RetryPolicy`]'s jittered
/// exponential formula with bounds of its own, and no limit on the tries.
///
/// ```
/// use std::time::Duration;
/// use statehouse_ports::Backoff;
///
/// let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
/// let first = backoff.next_delay();
/// assert!(first >= Duration::from_millis(25) && first <= Duration::from_millis(50));
/// for _ in 0..10 {
///     assert!(backoff.next_delay() <= Duration::from_secs(2));
/// }
/// backoff.reset();
/// assert!(backoff.next_delay() <= Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    tries: u32,
}

impl Backoff {
    /// Delays from `initial` (raised to at least 1 µs) doubling up to `max`
    /// (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_micros(1));
        Self {
            initial,
            max: max.max(initial),
            tries: 0,
        }
    }

    /// The delay to wait before the next try: drawn from `[c/2, c]`, `c`
    /// doubling with each call from `initial` up to `max` (see
    /// [`RetryPolicy`]).
    pub fn next_delay(&mut self) -> Duration {
        self.tries = self.tries.saturating_add(1);
        jittered(self.initial, self.max, self.tries)
    }

    /// Starts over from `initial` (after a success).
    pub fn reset(&mut self) {
        self.tries = 0;
    }
}

/// The one backoff formula: the delay after failure number `n` (1-based),
/// uniformly from `[c/2, c]` with `c = min(max, initial * 2^(n-1))`.
fn jittered(initial: Duration, max: Duration, n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(31);
    let ceiling = initial.saturating_mul(1 << doublings).min(max);
    let half = ceiling / 2;
    let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
    let jitter = random_u64() % spread.saturating_add(1);
    half.saturating_add(Duration::from_nanos(jitter))
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
    fn a_backoff_grows_like_the_policy_and_starts_over_after_a_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        for (n, delay) in delays.iter().enumerate() {
            let ceiling = (Duration::from_millis(50) * (1 << n)).min(Duration::from_secs(2));
            assert!(*delay >= ceiling / 2 && *delay <= ceiling, "{n}: {delay:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(50));
        let tiny = Backoff::new(Duration::ZERO, Duration::ZERO).next_delay();
        assert!(tiny <= Duration::from_micros(1), "{tiny:?}");
    }

    /// Attempts answered by a plain closure (tests only: its future
    /// borrows nothing from it).
    struct Script<F>(F);

    impl<T, F> Optimistic for Script<F>
    where
        F: FnMut(u32) -> Result<Attempt<T>, StoreError> + Send,
        T: Send,
    {
        type Output = T;

        async fn attempt(&mut self, number: u32) -> Result<Attempt<T>, StoreError> {
            (self.0)(number)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_counts_conflicts_not_repeats_and_waits_only_after_conflicts() {
        let policy = RetryPolicy::new(5).with_backoff(Duration::from_millis(10), Duration::from_millis(10));
        let mut seen = Vec::new();
        let mut waited = Vec::new();
        let started = tokio::time::Instant::now();
        let outcome = policy
            .run(
                "update",
                "k",
                &mut Script(|n| {
                    seen.push(n);
                    waited.push(started.elapsed());
                    Ok(match seen.len() {
                        1 => Attempt::Repeat,
                        2 | 3 => Attempt::Conflict,
                        4 => Attempt::Repeat,
                        _ => Attempt::Done("ok"),
                    })
                }),
            )
            .await
            .unwrap();
        assert_eq!(outcome, ("ok", 3));
        assert_eq!(seen, [1, 1, 2, 3, 3], "a repeat keeps the attempt's number");
        let ms = |n| Duration::from_millis(n);
        // Each conflict waits 5-10 ms; a repeat waits nothing.
        assert_eq!(waited[0], ms(0));
        assert_eq!(waited[1], ms(0), "no wait before a repeat");
        assert!(waited[2] >= ms(5) && waited[2] <= ms(10), "{waited:?}");
        assert!(waited[3] - waited[2] >= ms(5), "{waited:?}");
        assert_eq!(waited[4], waited[3], "no wait before a repeat");
    }

    #[tokio::test(start_paused = true)]
    async fn run_gives_up_after_the_last_attempt_without_waiting_again() {
        let policy = RetryPolicy::new(3).with_backoff(Duration::from_millis(10), Duration::from_millis(10));
        let mut runs = 0;
        let started = tokio::time::Instant::now();
        let error = policy
            .run(
                "update",
                "k",
                &mut Script(|_| {
                    runs += 1;
                    Ok(Attempt::<()>::Conflict)
                }),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Conflict { op: "update", key, attempts: 3 } if key == "k"),
            "{error:?}"
        );
        assert_eq!(runs, 3);
        assert!(
            started.elapsed() <= Duration::from_millis(20),
            "two waits, not three"
        );
    }

    #[tokio::test]
    async fn an_error_ends_the_loop_as_it_is() {
        let mut runs = 0;
        let error = RetryPolicy::default()
            .run(
                "update",
                "k",
                &mut Script(|_| {
                    runs += 1;
                    Err::<Attempt<()>, _>(StoreError::invalid_input("update", "k", "no"))
                }),
            )
            .await
            .unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::InvalidInput);
        assert_eq!(runs, 1);
    }

    #[test]
    fn backoff_never_overflows() {
        let policy =
            RetryPolicy::new(u32::MAX).with_backoff(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        let _ = policy.backoff(u32::MAX);
    }
}
