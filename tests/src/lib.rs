//! statehouse's test support: the `redis-server` harness, the contract
//! suite run against every backend, backend runners, and (in `src/bin`)
//! the benchmark.
//!
//! # Layout
//!
//! - [`harness`]: real `redis-server` processes on free loopback ports.
//! - [`contract`]: the behaviour tests every backend must pass, listed once
//!   in [`contract_suite!`].
//! - [`backends`]: runners building a [`contract::Backend`] for memory and
//!   Redis, plain or under the layers.
//!
//! Test files in `tests/`: `memory.rs`, `redis.rs`, `layered.rs` (the suite
//! per backend), `redis_faults.rs` (stop, pause, restart, cancellation),
//! `harness.rs`, `cli.rs`.

// Test support: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod backends;
pub mod contract;
pub mod harness;
