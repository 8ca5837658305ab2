//! Decorators over the ports: a [`Layered`] store wraps any store
//! (`Arc<dyn …>`, `Box`, or a concrete adapter), implements the same ports,
//! and runs every call through one [`Layer`], its policy. They stack:
//! `Traced<Retrying<RedisStore>>`. The contract suite runs through them.
//!
//! # Layout
//!
//! - `mod.rs`: the [`Layer`] hook, what a layer sees of a call ([`Op`]),
//!   and [`Layered`].
//! - `traced.rs`: [`Tracing`], a `tracing` span per call ([`Traced`]), and
//!   the metrics of each call when [`record_metrics`] switched them on.
//! - `metered.rs`: those metrics, through the `metrics` facade (names,
//!   labels, and how to attach an exporter).
//! - `retrying.rs`: [`Retry`], temporary failures of idempotent calls
//!   tried again ([`Retrying`]).
//! - `forward/`: one file per port, implementing it for `Layered<L, S>`
//!   once for every layer: each method hands the inner store's call to the
//!   layer, says whether it is safe to repeat (the one list of idempotent
//!   operations), and names its operation and key.
//!
//! A new layer is one policy (an `impl Layer`); a new port is one
//! forwarding file.

use std::fmt;

use statehouse_ports::{Boxed, RetryPolicy};

mod forward;
mod metered;
mod retrying;
mod traced;

pub use metered::{
    CALL_SECONDS, CALLS, COMBINED_BATCH_SIZE, CONFLICTS, ERRORS, FAILOVERS, POOL_WAIT_SECONDS, RETRIES,
    WAIT_SHORTFALLS, metrics_on, record_metrics,
};
pub use retrying::{Retry, Retrying, transient_policy};
pub use traced::{Traced, Tracing};

/// A policy around every port call of a [`Layered`] store.
///
/// The forwarding of each port calls [`around`](Self::around) for a call
/// that must not be made twice (a write whose outcome a lost reply hides,
/// an update running the caller's closure) and
/// [`around_idempotent`](Self::around_idempotent) for a call that is safe to
/// make again. Both get the inner store's boxed future (or a maker of it)
/// and hand back a future; a layer with nothing to add returns the inner
/// one untouched, which costs no allocation.
///
/// A layer is cheap to clone: a listing's stream keeps a copy, to run each
/// of its pages through it.
pub trait Layer: fmt::Debug + Clone + Send + Sync + 'static {
    /// Wraps a call that must not be made twice: `call` is the inner
    /// store's future.
    fn around<'f, T, K>(&'f self, op: Op<K, T>, call: Boxed<'f, T>) -> Boxed<'f, T>
    where
        T: Send + 'f,
        K: fmt::Display + Send + Sync + 'f;

    /// Wraps a call that is safe to make again: `call` makes the inner
    /// store's future, once per attempt. By default the call is made once,
    /// as [`around`](Self::around).
    fn around_idempotent<'f, T, K, C>(&'f self, op: Op<K, T>, mut call: C) -> Boxed<'f, T>
    where
        T: Send + 'f,
        K: fmt::Display + Send + Sync + 'f,
        C: FnMut() -> Boxed<'f, T> + Send + 'f,
    {
        self.around(op, call())
    }
}

/// What a layer sees of one port call: its operation, the key it is about
/// (formatted only if a layer asks: see [`Lazy`]), and, for updates, how
/// to read the attempts from the answer. Never a value.
pub struct Op<K, T> {
    /// The operation, e.g. `"get"`.
    pub name: &'static str,
    /// The key (the pattern for listings, …).
    pub key: K,
    /// How many attempts an update took, read from its answer.
    pub attempts: Option<fn(&T) -> u32>,
}

impl<K, T> fmt::Debug for Op<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is formatted only by a layer that records it.
        f.debug_struct("Op")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K, T> Op<K, T> {
    /// Operation `name` on `key`.
    pub fn new(name: &'static str, key: K) -> Self {
        Self {
            name,
            key,
            attempts: None,
        }
    }

    /// The same, for an update whose answer says how many attempts it took.
    #[must_use]
    pub fn counting(mut self, attempts: fn(&T) -> u32) -> Self {
        self.attempts = Some(attempts);
        self
    }
}

impl<F, T> Op<Lazy<F>, T>
where
    F: Fn() -> String,
{
    /// Operation `name` on the key `key` builds, only if it is formatted.
    pub fn lazy(name: &'static str, key: F) -> Self {
        Self::new(name, Lazy(key))
    }
}

/// A key built only when it is formatted (when a span is recorded), so a
/// layer that does not look at keys costs no allocation.
pub struct Lazy<F>(pub F);

impl<F> fmt::Debug for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lazy(..)")
    }
}

impl<F: Fn() -> String> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// A store under a layer: implements every port the inner store
/// implements (`forward/`), running each call through `layer`.
#[derive(Debug, Clone)]
pub struct Layered<L, S> {
    layer: L,
    inner: S,
}

impl<L, S> Layered<L, S> {
    /// `inner` under `layer`.
    pub fn with_layer(layer: L, inner: S) -> Self {
        Self { layer, inner }
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The layer.
    pub fn layer(&self) -> &L {
        &self.layer
    }
}

impl<S> Layered<Tracing, S> {
    /// Wraps `inner` in spans.
    pub fn new(inner: S) -> Self {
        Self::with_layer(Tracing, inner)
    }
}

impl<S> Layered<Retry, S> {
    /// Retries with `policy`: at most `policy.max_attempts()` tries, with
    /// its backoff in between.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self::with_layer(Retry::new(policy), inner)
    }

    /// The default for transient failures: 3 tries of [`transient_policy`].
    pub fn with_defaults(inner: S) -> Self {
        Self::new(inner, transient_policy(3))
    }
}
