//! The fault soak: the real default stack under load while the server is killed, restarted, frozen
//! and thawed, with a count of what survived.
//!
//! [`run`] starts a durable `redis-server` ([`RedisServer::start_durable`]: an append-only file
//! fsync'd before every reply), connects with [`Statehouse::with_settings`] (the stack an
//! application gets: tracing layer over the Redis adapter) and lets [`Options::tasks`] tasks call
//! `set`, `get`, `mget` and `update` as fast as they can, while a chaos thread injects faults one at
//! a time:
//!
//! * **stop/restart**: `SIGKILL`, down for a random outage, then a new process on the same port that
//!   reloads the AOF;
//! * **pause/resume**: `SIGSTOP` for a random outage (connections are accepted by the kernel but
//!   nothing is answered: a black-holed server), then `SIGCONT`.
//!
//! After each fault the chaos thread waits until the tasks have recovered (the first successful call,
//! and the first successful `update`, completed after the server is back), then lets them work for a
//! random healthy interval before the next fault.
//!
//! # What is checked
//!
//! * **Nothing acknowledged is lost, nothing is applied twice.** Increments go through `update` on
//!   [`Options::counters`] shared counter keys. Every `update` call counts as *attempted* before it
//!   is sent, and as *acknowledged* once it returned `Ok`. A call that failed (timeout, connection
//!   lost, cancelled by the caller) has an unknown outcome: its EXEC may have run. So at any time a
//!   counter holds at least every increment acknowledged before the read started and at most every
//!   increment attempted when it ended; `mget` checks that during the run, each `update` checks its own
//!   result, and the end of the run checks every counter.
//! * **Reads see acknowledged writes.** Each task writes its own keys with increasing numbers; a read
//!   of one must return its last acknowledged value or the value of a later or earlier `set` whose
//!   outcome was unknown; anything else is a lost (or resurrected) write.
//! * **No call waits longer than its [bound](Options::bound)** for a server that does not answer
//!   (one response timeout per round trip or update attempt, plus slack): the longest stretch
//!   between two answers the soak can see, counted from a fault if one began in it. A call still running at [`Options::hang_limit`] is abandoned and reported
//!   as hung.
//! * **Every fault is recovered from** within [`Options::recovery_limit`].
//!
//! The [`Report`] has all figures; `Display` prints them for people, [`Report::to_json`] for
//! machines. `cargo run --release -p statehouse-tests --bin soak -- --seconds 300` runs it;
//! `tests/tests/soak.rs` runs 10 seconds of it in the test suite.
//!
//! # Layout
//!
//! - `mod.rs`: what to run ([`Options`], with each operation's [bound](Options::bound)) and the
//!   operations ([`Op`]).
//! - `engine.rs`: [`run`]: the server, the tasks and the chaos thread, then the [`Report`].
//! - `documents.rs`: the workload, one task of `set`, `get`, `mget` and `update` calls on its own
//!   keys and the shared counters, checking each read.
//! - `faults.rs`: the chaos thread, injecting the faults one at a time and timing each recovery.
//! - `check.rs`: the count check at the end of the run.
//! - `report.rs`: the [`Report`], for people (`Display`) and machines ([`Report::to_json`]).
//!
//! [`RedisServer::start_durable`]: crate::harness::RedisServer::start_durable
//! [`Statehouse::with_settings`]: statehouse::Statehouse::with_settings

use std::time::Duration;

mod check;
mod documents;
mod engine;
mod faults;
mod report;

pub use check::CounterCheck;
pub use engine::run;
pub use faults::{Fault, FaultKind};
pub use report::{OpStats, Report, SlowCall, human};

/// The prefix of every key the soak writes.
const PREFIX: &str = "soak:";
/// At most this many slow calls and read violations are kept in the report (all are counted).
const KEEP: usize = 20;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// How long the tasks work.
    pub duration: Duration,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Shared counter keys, incremented with `update`.
    pub counters: usize,
    /// Keys each task `set`s, `get`s and `mget`s (its own; nobody else writes them).
    pub keys_per_task: usize,
    /// `Settings::connect_timeout`.
    pub connect_timeout: Duration,
    /// `Settings::response_timeout`.
    pub response_timeout: Duration,
    /// Allowance for scheduling on a loaded machine, added to the bound.
    pub slack: Duration,
    /// Healthy time between recovering from one fault and the next, drawn uniformly.
    pub healthy: (Duration, Duration),
    /// How long a stopped server stays down, or a paused one frozen, drawn uniformly.
    pub outage: (Duration, Duration),
    /// How long to wait for recovery before declaring a fault unrecovered.
    pub recovery_limit: Duration,
    /// Seed of the random choices (operations, keys, faults, intervals).
    pub seed: u64,
}

impl Options {
    /// A run of `duration` with the default mix: 32 tasks, 8 counters, a response timeout of
    /// 500 ms, the library's default connect timeout of 2 s (so that an update waiting for the pool
    /// to open a connection, bounded by connect + response timeout, would stand out far past its
    /// bound), slack 250 ms, faults every 0.3–1.5 s lasting 0.1–1.2 s.
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            tasks: 32,
            counters: 8,
            keys_per_task: 4,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_millis(500),
            slack: Duration::from_millis(250),
            healthy: (Duration::from_millis(300), Duration::from_millis(1_500)),
            outage: (Duration::from_millis(100), Duration::from_millis(1_200)),
            recovery_limit: Duration::from_secs(15),
            seed: 0x5eed_50a4,
        }
    }

    /// The longest `op` may wait for a server that does not answer, between two answers the soak
    /// can see (below): what the library promises, plus [`slack`](Self::slack) for the scheduler of
    /// a loaded machine.
    ///
    /// The library bounds every wait for an answer by the response timeout (RT): a `get` or `set`
    /// is one round trip, so **RT**; `mget` of a missing key is two (MGET, then TYPE for the nils),
    /// so **2 RT**; an `update` attempt (taking a pooled connection, WATCH and GET, EXEC) has one RT
    /// in all, and only an answered conflict (EXEC answering nil) starts another, after a backoff
    /// of at most 50 ms, so between two answers the soak sees (runs of the update's closure, which
    /// follow each answered WATCH and GET) **2 RT + 50 ms**: the rest of one attempt, whose EXEC
    /// may be answered nil just before its deadline, then the next attempt.
    ///
    /// A call's *wait* is the longest stretch between consecutive points it is known to have
    /// progressed: its start, each run of its closure (updates only) and its end; a stretch in
    /// which a fault began counts from the fault (the server answered until then). What a call
    /// did in between (answered round trips, conflict retries under contention) is progress, not
    /// waiting: an update's total time is bounded by its retry policy, not by a timeout.
    pub fn bound(&self, op: Op) -> Duration {
        let rt = self.response_timeout;
        let promised = match op {
            Op::Set | Op::Get => rt,
            Op::Mget => rt * 2,
            Op::Update | Op::CancelledUpdate => rt * 2 + Duration::from_millis(50),
        };
        promised + self.slack
    }

    /// When a call is abandoned as hung (and reported past the bound).
    pub fn hang_limit(&self) -> Duration {
        self.bound(Op::Update) * 4 + Duration::from_secs(5)
    }
}

/// The operations, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `set` of one of the task's keys.
    Set,
    /// `get` of one of the task's keys.
    Get,
    /// `mget` of two own keys, a counter and a key never written.
    Mget,
    /// `update` incrementing a counter.
    Update,
    /// `update` incrementing a counter, under a caller deadline of 0–4 ms (so mostly cancelled).
    CancelledUpdate,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 5] = [Op::Set, Op::Get, Op::Mget, Op::Update, Op::CancelledUpdate];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::Get => "get",
            Op::Mget => "mget",
            Op::Update => "update",
            Op::CancelledUpdate => "update+cancel",
        }
    }
}
