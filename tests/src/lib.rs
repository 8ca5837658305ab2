//! statehouse's test support: the `redis-server` harness, the contract
//! suite run against every backend, backend runners, the fault soak, and
//! (in `src/bin`) the benchmark and the soak's command line.
//!
//! # Layout
//!
//! - [`harness`]: real `redis-server` processes on free loopback ports.
//! - [`contract`]: the behaviour tests every backend must pass, listed once
//!   in [`contract_suite!`].
//! - [`backends`]: runners building a [`contract::Backend`] for memory and
//!   Redis, plain or under the layers.
//! - [`soak`]: the fault soak (load, kills, pauses, then the count check).
//!
//! Test files in `tests/`: `memory.rs`, `redis.rs`, `layered.rs` (the suite
//! per backend), `redis_faults.rs` (stop, pause, restart, cancellation),
//! `soak.rs` (ten seconds of the fault soak), `harness/` (the harness's
//! own tests), `cli.rs`.

// Test support: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod backends;
pub mod contract;
pub mod harness;
pub mod soak;
