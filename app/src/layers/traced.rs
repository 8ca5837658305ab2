use std::fmt;

use statehouse_ports::{Boxed, StoreError};
use tracing::Instrument;

use super::{Layer, Layered, Op, metered};

/// A `tracing` span around every port call: target `statehouse`, name
/// `store`, fields `op`, `key` (the pattern for listings, the first key and
/// a count for `get_many`) and `outcome` (`ok` or the error kind), plus
/// `attempts` for updates. Values and secrets are never recorded.
///
/// Spans are at `DEBUG` level: with no subscriber, or one filtering DEBUG
/// out, and metrics off (the default; see [`record_metrics`](super::record_metrics)),
/// the layer passes the inner store's future through untouched (no
/// allocation, no span), and keys are never built. With metrics on, each
/// call is also counted and timed (`metered.rs`).
pub type Traced<S> = Layered<Tracing, S>;

/// The policy of [`Traced`]: a span per call (and its metrics, when on).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracing;

impl Layer for Tracing {
    fn around<'f, T, K>(&'f self, op: Op<K, T>, call: Boxed<'f, T>) -> Boxed<'f, T>
    where
        T: Send + 'f,
        K: fmt::Display + Send + Sync + 'f,
    {
        let (name, attempts) = (op.name, op.attempts);
        match (tracing_on(), metered::metrics_on()) {
            (false, false) => call,
            (true, false) => Box::pin(traced(op, call)),
            (false, true) => Box::pin(metered::measured(name, attempts, call)),
            (true, true) => Box::pin(metered::measured(name, attempts, traced(op, call))),
        }
    }
}

/// Whether a subscriber wants the layer's spans (cheap: the answer is
/// cached per call site).
fn tracing_on() -> bool {
    tracing::enabled!(target: "statehouse", tracing::Level::DEBUG)
}

async fn traced<T, K: fmt::Display>(op: Op<K, T>, call: Boxed<'_, T>) -> Result<T, StoreError> {
    let span = tracing::debug_span!(
        target: "statehouse",
        "store",
        op = op.name,
        key = %op.key,
        outcome = tracing::field::Empty,
        attempts = tracing::field::Empty
    );
    let result = call.instrument(span.clone()).await;
    match &result {
        Ok(value) => {
            span.record("outcome", "ok");
            if let Some(attempts) = op.attempts {
                span.record("attempts", attempts(value));
            }
        }
        Err(error) => {
            span.record("outcome", error.kind().as_str());
            tracing::debug!(target: "statehouse", parent: &span, %error, "store call failed");
        }
    }
    result
}
