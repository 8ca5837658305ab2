//! The fault soak: every family of the real default stack under load while the topology is
//! faulted, with one accounting of what was acknowledged against what is found afterwards.
//!
//! [`run`] starts a [`Topology`] (by default a single durable `redis-server`:
//! [`RedisServer::start_durable`], an append-only file fsync'd before every reply), connects with
//! [`Statehouse::with_settings`] (the stack an application gets: tracing layer over the Redis
//! adapter) and lets [`Options::tasks`] tasks call every family as fast as they can
//! (documents, tasks, subjects, tenants, triggers, queues, config; the mix: [`Op`]), while a chaos
//! thread injects faults one at a time, of the kinds in [`Options::faults`] ([`FaultKind`]):
//!
//! * **stop/restart**: `SIGKILL`, down for a random outage, then a new process on the same port that
//!   reloads the AOF (on a volatile server, [`Options::durable`] false, it comes back empty);
//! * **pause/resume**: `SIGSTOP` for a random outage (connections are accepted by the kernel but
//!   nothing is answered: a black-holed server), then `SIGCONT`;
//! * **connection kill**: `CLIENT KILL` of every client connection (commands and subscriptions);
//! * **sentinel failover** and **cluster primary killed**: the failover faults of
//!   [`harness::failover`](crate::harness::failover), on the [`Topology::Sentinel`] and
//!   [`Topology::Cluster`] topologies, once statehouse connects to them.
//!
//! After each fault the chaos thread waits until the tasks have recovered (the first successful call,
//! and the first successful `update`, completed after the topology is back), then lets them work for a
//! random healthy interval before the next fault.
//!
//! # What is checked
//!
//! * **One accounting of writes, per family.** Every write counts as *attempted* before it is sent
//!   and as *acknowledged* once it returned `Ok`; a write that failed (timeout, connection lost,
//!   cancelled by the caller) has an unknown outcome. After the run, on a fresh connection, each
//!   family's writes are read back ([`FamilyCheck`]): increments (documents' `update`, subjects'
//!   `set_with`, tenants' `increment`, config versions) must sum to at least the acknowledged and at
//!   most the attempted ones; items (task records, triggers, queue items) must each be found if
//!   acknowledged, and nothing never attempted may be found. What is missing is *lost* and reported
//!   with its number, never hidden; what is beyond is *excess* (applied twice).
//! * **Reads see acknowledged writes.** Each task writes its own document keys with increasing
//!   numbers, and reads its own task records: a read must return its last acknowledged value (or one
//!   whose outcome was unknown); anything else is a lost (or resurrected) write. Counter reads during
//!   the run (`mget`, each update's result) are checked against the same window as at the end.
//! * **No call waits longer than its [bound](Options::bound)** for a server that does not answer
//!   (one response timeout per round trip or attempt, plus slack): the longest stretch between two
//!   answers the soak can see, counted from a fault if one began in it. A call still running at
//!   [`Options::hang_limit`] is abandoned and reported as hung.
//! * **Every fault is recovered from** within [`Options::recovery_limit`].
//!
//! The [`Report`] has all figures; `Display` prints them for people, [`Report::to_json`] for
//! machines. `cargo run --release -p statehouse-tests --bin soak -- --seconds 300` runs it;
//! `tests/tests/soak.rs` runs 10 seconds of it in the test suite, and a volatile run that must
//! report lost writes.
//!
//! # Layout
//!
//! - `mod.rs`: what to run ([`Options`], with each operation's [bound](Options::bound)), the
//!   families ([`Family`]) and the operations ([`Op`]).
//! - `topology.rs`: [`Topology`], the deployment it starts and the faults it can take.
//! - `engine.rs`: [`run`]: the topology, the tasks and the chaos thread, then the check and the
//!   [`Report`].
//! - `task.rs`: one task: picks operations, times every call and records its outcome.
//! - `ledger.rs`: the accounting: attempted and acknowledged increments and items, and what a
//!   family's check found ([`FamilyCheck`]).
//! - one file per family (`documents.rs`, `tasks.rs`, `subjects.rs`, `tenants.rs`, `triggers.rs`,
//!   `queues.rs`, `config.rs`): its operations and its check after the run.
//! - `faults.rs`: the chaos thread, injecting the faults one at a time and timing each recovery.
//! - `check.rs`: the check after the run, every family on a fresh connection.
//! - `report/`: the [`Report`] (`mod.rs`), for people (`display.rs`) and machines (`json.rs`).
//!
//! [`RedisServer::start_durable`]: crate::harness::RedisServer::start_durable
//! [`Statehouse::with_settings`]: statehouse::Statehouse::with_settings

use std::time::Duration;

mod check;
mod config;
mod documents;
mod engine;
mod faults;
mod ledger;
mod queues;
mod report;
mod subjects;
mod task;
mod tasks;
mod tenants;
mod topology;
mod triggers;

pub use engine::run;
pub use faults::{Fault, FaultKind};
pub use ledger::{CounterCheck, FamilyCheck};
pub use report::{LoadAverage, OpStats, Report, SlowCall, human};
pub use topology::Topology;

/// The prefix of every key the soak writes.
const PREFIX: &str = "soak:";
/// Calls started this long after the topology is back from a fault (answering again, or the new
/// primary promoted) must succeed: issue 16's promise for a failover.
pub const RECOVERED_WITHIN: Duration = Duration::from_secs(5);
/// At most this many slow calls and read violations are kept in the report (all are counted).
const KEEP: usize = 20;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// How long the tasks work.
    pub duration: Duration,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Shared counters per counting family (documents, subjects, tenants).
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
    /// What to run against.
    pub topology: Topology,
    /// Whether the data nodes persist every write before answering (`appendfsync always`); a
    /// volatile server loses everything on a restart, which the accounting must report.
    pub durable: bool,
    /// `Settings::durability`: how many replicas must confirm a write before it is acknowledged
    /// (`WAIT`); [`Durability::Primary`](statehouse::Durability) by default.
    pub durability: statehouse::Durability,
    /// The kinds of fault injected (each at least once if the run is long enough, in this order,
    /// then at random); empty: none. [`Topology::default_faults`] by default.
    pub faults: Vec<FaultKind>,
}

impl Options {
    /// A run of `duration` with the default mix on a single durable server: 32 tasks, 8 counters, a
    /// response timeout of 500 ms, the library's default connect timeout of 2 s (so that an update
    /// waiting for the pool to open a connection, bounded by connect + response timeout, would
    /// stand out far past its bound), slack 250 ms, faults every 0.3–1.5 s lasting 0.1–1.2 s.
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
            topology: Topology::Single,
            durable: true,
            durability: statehouse::Durability::Primary,
            faults: Topology::Single.default_faults(),
        }
    }

    /// The same on `topology`, with its default faults.
    #[must_use]
    pub fn on(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self.faults = topology.default_faults();
        self
    }

    /// The longest `op` may wait for a server that does not answer, between two answers the soak
    /// can see (below): what the library promises, plus [`slack`](Self::slack) for the scheduler of
    /// a loaded machine.
    ///
    /// The library bounds every wait for an answer by the response timeout (RT):
    ///
    /// * a `get`, `set` or task `get` is one round trip, so **RT**; `mget` of a missing key is two
    ///   (MGET, then TYPE for the nils), so **2 RT**;
    /// * an `update` attempt (taking a pooled connection, WATCH and GET, EXEC) has one RT in all, and
    ///   only an answered conflict (EXEC answering nil) starts another, after a backoff of at most
    ///   50 ms, so between two answers the soak sees (runs of the update's closure, which follow
    ///   each answered WATCH and GET) **2 RT + 50 ms**: the rest of one attempt, whose EXEC may be
    ///   answered nil just before its deadline, then the next attempt. The same for a subject's
    ///   `set_with` (its closure is seen too) and a task's `create` (the WATCH loop again; its only
    ///   repeat is a `NOSCRIPT` after a restart, no conflict: the ids are unique);
    /// * a script run on the shared connection (tenants' `increment`, triggers' `set`, queues'
    ///   `enqueue`) is `EVALSHA`, and after a restart `SCRIPT LOAD` and `EVALSHA` again: **3 RT**;
    /// * a config `update` is a compare-and-set script (3 RT as above) that this handle, which never
    ///   fetched the entry, first sends expecting the entry absent; the refusal carries the current
    ///   bytes and the second attempt, after a backoff, writes: **6 RT + 50 ms**.
    ///
    /// A call's *wait* is the longest stretch between consecutive points it is known to have
    /// progressed: its start, each run of its closure (updates only) and its end; a stretch in
    /// which a fault began counts from the fault (the server answered until then). What a call
    /// did in between (answered round trips, conflict retries under contention) is progress, not
    /// waiting: an update's total time is bounded by its retry policy, not by a timeout.
    pub fn bound(&self, op: Op) -> Duration {
        let rt = self.response_timeout;
        let backoff = Duration::from_millis(50);
        let promised = match op {
            Op::Set | Op::Get | Op::TaskGet => rt,
            Op::Mget => rt * 2,
            Op::Update | Op::CancelledUpdate | Op::SubjectIncrement | Op::TaskCreate => rt * 2 + backoff,
            Op::TenantIncrement | Op::TriggerSet | Op::QueueEnqueue => rt * 3,
            Op::ConfigUpdate => rt * 6 + backoff,
        };
        promised + self.slack
    }

    /// When a call is abandoned as hung (and reported past the bound).
    pub fn hang_limit(&self) -> Duration {
        self.bound(Op::ConfigUpdate) * 4 + Duration::from_secs(5)
    }
}

/// The families of statehouse, as the soak reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `Documents`: `set`, `get`, `mget`, `update`.
    Documents,
    /// `Tasks`: `create`, `get`.
    Tasks,
    /// `Subjects`: `set_with` incrementing a property.
    Subjects,
    /// A tenant's `Users`: `increment` of a field.
    Tenants,
    /// `Triggers`: `set` of a trigger due in an hour.
    Triggers,
    /// `Queues`: `enqueue` of one item.
    Queues,
    /// `ConfigStore`: `update` (each a new version).
    Config,
}

impl Family {
    /// Every family, in report order.
    pub const ALL: [Family; 7] = [
        Family::Documents,
        Family::Tasks,
        Family::Subjects,
        Family::Tenants,
        Family::Triggers,
        Family::Queues,
        Family::Config,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::Documents => "documents",
            Family::Tasks => "tasks",
            Family::Subjects => "subjects",
            Family::Tenants => "tenants",
            Family::Triggers => "triggers",
            Family::Queues => "queues",
            Family::Config => "config",
        }
    }
}

/// The operations, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// `Tasks::create` of a new task.
    TaskCreate,
    /// `Tasks::get` of one of the task's acknowledged tasks.
    TaskGet,
    /// `Subject::set_with` incrementing a shared subject's property.
    SubjectIncrement,
    /// `Users::increment` of a shared user's field.
    TenantIncrement,
    /// `Triggers::set` of a new trigger (due in an hour: none fires during the run).
    TriggerSet,
    /// `Queues::enqueue` of one new item.
    QueueEnqueue,
    /// `ConfigStore::update` of the task's own entry (a new version).
    ConfigUpdate,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 12] = [
        Op::Set,
        Op::Get,
        Op::Mget,
        Op::Update,
        Op::CancelledUpdate,
        Op::TaskCreate,
        Op::TaskGet,
        Op::SubjectIncrement,
        Op::TenantIncrement,
        Op::TriggerSet,
        Op::QueueEnqueue,
        Op::ConfigUpdate,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::Get => "get",
            Op::Mget => "mget",
            Op::Update => "update",
            Op::CancelledUpdate => "update+cancel",
            Op::TaskCreate => "task create",
            Op::TaskGet => "task get",
            Op::SubjectIncrement => "subject set_with",
            Op::TenantIncrement => "user increment",
            Op::TriggerSet => "trigger set",
            Op::QueueEnqueue => "enqueue",
            Op::ConfigUpdate => "config update",
        }
    }

    /// The family it belongs to.
    pub fn family(self) -> Family {
        match self {
            Op::Set | Op::Get | Op::Mget | Op::Update | Op::CancelledUpdate => Family::Documents,
            Op::TaskCreate | Op::TaskGet => Family::Tasks,
            Op::SubjectIncrement => Family::Subjects,
            Op::TenantIncrement => Family::Tenants,
            Op::TriggerSet => Family::Triggers,
            Op::QueueEnqueue => Family::Queues,
            Op::ConfigUpdate => Family::Config,
        }
    }

    /// Whether it is an optimistic update whose first success after a fault is awaited separately
    /// (recovery of the WATCH pool).
    pub fn is_update(self) -> bool {
        matches!(self, Op::Update | Op::CancelledUpdate)
    }
}
