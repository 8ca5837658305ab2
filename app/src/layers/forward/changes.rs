use statehouse_domain::Key;
use statehouse_ports::{
    AnnouncedUpdateFn, Boxed, ChangeFeed, RetryPolicy, Subscription, Swapped, Updated, Watched,
};

use super::{Layer, Layered, Op};

/// The key a change feed call names: what is watched (key, first key and
/// count, or pattern) for `subscribe`, the key for the announced writes
/// (`attempts` for `update_announced`); events are not seen per delivery.
/// Idempotent: `subscribe` (subscribing again is harmless). Not:
/// `update_announced` (a timed-out EXEC has an unknown outcome),
/// `swap_announced` (a timed-out swap has an unknown outcome, and a
/// refusal is the caller's to decide on).
impl<L: Layer, S: ChangeFeed> ChangeFeed for Layered<L, S> {
    fn subscribe<'s, 'w, 'f>(&'s self, watched: &'w Watched, capacity: usize) -> Boxed<'f, Subscription>
    where
        's: 'f,
        'w: 'f,
        Self: 'f,
    {
        self.layer
            .around_idempotent(Op::lazy("subscribe", || watched.label()), move || {
                self.inner.subscribe(watched, capacity)
            })
    }

    fn update_announced<'a, 's, 'k, 'u, 'f>(
        &'s self,
        key: &'k Key,
        policy: RetryPolicy,
        f: &'u mut AnnouncedUpdateFn<'a>,
    ) -> Boxed<'f, Updated>
    where
        'a: 'f,
        's: 'f,
        'k: 'f,
        'u: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("update_announced", key).counting(|updated: &Updated| updated.attempts),
            self.inner.update_announced(key, policy, f),
        )
    }

    fn swap_announced<'a, 's, 'k, 'n, 'f>(
        &'s self,
        key: &'k Key,
        expected: Option<&'a [u8]>,
        new: &'n [u8],
        version: Option<u64>,
    ) -> Boxed<'f, Swapped>
    where
        'a: 'f,
        's: 'f,
        'k: 'f,
        'n: 'f,
        Self: 'f,
    {
        self.layer.around(
            Op::new("swap_announced", key),
            self.inner.swap_announced(key, expected, new, version),
        )
    }

    fn combining(&self) -> bool {
        self.inner.combining()
    }
}
