//! The failover metric: where the Sentinel switch and the cluster's slot
//! map tell that the store followed a new primary.

use statehouse_ports::FAILOVERS;

/// Counts `count` failovers of `topology` (`sentinel`, `cluster`) followed
/// by the store, when metrics are on (one relaxed load when off).
pub(crate) fn failovers_seen(topology: &'static str, count: u64) {
    if count > 0 && statehouse_ports::metrics_on() {
        metrics::counter!(FAILOVERS, "topology" => topology).increment(count);
    }
}
