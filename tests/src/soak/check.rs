//! The count check at the end of a run: every counter against its attempted and acknowledged
//! increments, every task's own key against what it may hold.

use std::sync::atomic::Ordering;

use super::PREFIX;
use super::documents::{Own, TaskStats, counter_key};
use super::engine::Shared;
use crate::harness::RedisServer;

/// The end-of-run count of one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCheck {
    /// The key.
    pub key: String,
    /// `update` calls made on it.
    pub attempted: u64,
    /// `update` calls on it that returned `Ok`.
    pub acknowledged: u64,
    /// What the server holds after the run.
    pub value: u64,
}

impl CounterCheck {
    /// Increments acknowledged but missing.
    pub fn lost(&self) -> u64 {
        self.acknowledged.saturating_sub(self.value)
    }

    /// Increments beyond every attempted one (something applied twice).
    pub fn excess(&self) -> u64 {
        self.value.saturating_sub(self.attempted)
    }
}

/// The count check after the run, on a connection of its own (the server is up and nothing is in
/// flight): each of the `counters` counters against its attempted and acknowledged increments, and
/// each task's `own` key against what it may hold (reads checked, and violations, in `stats`). Then
/// stops the server.
pub(super) async fn final_count(
    server: RedisServer,
    shared: &Shared,
    counters: usize,
    own: Vec<Own>,
    stats: &mut TaskStats,
) -> Vec<CounterCheck> {
    let (server, counter_values, own_values) = tokio::task::spawn_blocking(move || {
        let mut connection = server.connection();
        let mut read = |key: &str| -> Option<u64> {
            let raw: Option<String> = redis::cmd("GET")
                .arg(format!("{PREFIX}{key}"))
                .query(&mut connection)
                .unwrap();
            raw.map(|raw| raw.parse().unwrap())
        };
        let counter_values: Vec<u64> = (0..counters)
            .map(|c| read(&counter_key(c)).unwrap_or(0))
            .collect();
        let own_values: Vec<Option<u64>> = own.iter().map(|own| read(&own.key)).collect();
        (server, counter_values, (own, own_values))
    })
    .await
    .unwrap();
    let counters: Vec<CounterCheck> = counter_values
        .iter()
        .enumerate()
        .map(|(c, &value)| CounterCheck {
            key: counter_key(c),
            attempted: shared.attempted[c].load(Ordering::SeqCst),
            acknowledged: shared.acknowledged[c].load(Ordering::SeqCst),
            value,
        })
        .collect();
    let (own, own_values) = own_values;
    for (own, value) in own.iter().zip(own_values) {
        stats.reads_checked += 1;
        if !own.allows(value) {
            stats.violation(format!(
                "after the run {}: holds {value:?}, last acknowledged {:?}, unknown outcomes {:?}",
                own.key, own.last_acknowledged, own.unknown
            ));
        }
    }
    tokio::task::spawn_blocking(move || drop(server)).await.unwrap();
    counters
}
