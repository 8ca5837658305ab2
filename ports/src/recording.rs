//! THE switch of statehouse's metrics, here (below the app and the
//! adapters) so that every crate that emits metrics reads the same one:
//! the app's layers (`statehouse::layers::record_metrics`, which also
//! describes the metrics to the recorder) and the Redis adapter (pool
//! waits, failovers). Off, emitting a metric costs one relaxed atomic load.

use std::sync::atomic::{AtomicBool, Ordering};

/// Time a WATCH section waited for a pooled connection, in seconds
/// (histogram, no labels; the Redis adapter).
pub const POOL_WAIT_SECONDS: &str = "statehouse_pool_wait_seconds";
/// Failovers the store followed (counter, label `topology`: `sentinel`, a
/// switch to another primary; `cluster`, a slot map in which a replica of
/// a slot range became its owner; the Redis adapter).
pub const FAILOVERS: &str = "statehouse_failovers_total";

/// Whether metrics are recorded.
static RECORD: AtomicBool = AtomicBool::new(false);

/// Switches the recording of metrics on or off for the whole process.
/// Applications call `statehouse::layers::record_metrics`, which also
/// describes them to the installed recorder.
pub fn set_metrics(on: bool) {
    RECORD.store(on, Ordering::Relaxed);
}

/// Whether metrics are recorded (one relaxed atomic load).
#[inline]
pub fn metrics_on() -> bool {
    RECORD.load(Ordering::Relaxed)
}
