//! The faults and the chaos thread that injects them, one at a time, each followed by a wait for
//! recovery and a healthy interval.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Options;
use super::engine::{Rng, Shared};
use super::topology::Deployment;

/// The kinds of fault, each a hook of the chaos thread; which topology takes which:
/// [`Topology::supports`](super::Topology::supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `SIGKILL`, then a new process on the same port (that reloads the AOF when durable).
    StopRestart,
    /// `SIGSTOP`, then `SIGCONT`.
    PauseResume,
    /// `CLIENT KILL` of every command and subscription connection (on every data node that takes
    /// writes).
    ConnectionKill,
    /// `SENTINEL FAILOVER`: a replica promoted, the old primary demoted (Sentinel only).
    SentinelFailover,
    /// `SIGKILL` of a cluster primary: its replica promoted (cluster only).
    ClusterPrimaryKill,
    /// `SIGKILL` of the Sentinel service's primary: the sentinels promote a replica (Sentinel
    /// only); the killed node is restarted as a replica.
    SentinelPrimaryKill,
}

impl FaultKind {
    /// Every kind, in report order.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::StopRestart,
        FaultKind::PauseResume,
        FaultKind::ConnectionKill,
        FaultKind::SentinelFailover,
        FaultKind::SentinelPrimaryKill,
        FaultKind::ClusterPrimaryKill,
    ];

    /// Its name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::StopRestart => "stop/restart",
            FaultKind::PauseResume => "pause/resume",
            FaultKind::ConnectionKill => "connection kill",
            FaultKind::SentinelFailover => "sentinel failover",
            FaultKind::ClusterPrimaryKill => "cluster primary killed",
            FaultKind::SentinelPrimaryKill => "sentinel primary killed",
        }
    }

    /// The kind named `name`: its [`name`](Self::name) or a short form (`restart`, `pause`,
    /// `kill-connections`, `sentinel-failover`, `cluster-primary-kill`).
    pub fn from_name(name: &str) -> Option<FaultKind> {
        let short = match name {
            "restart" => Some(FaultKind::StopRestart),
            "pause" => Some(FaultKind::PauseResume),
            "kill-connections" => Some(FaultKind::ConnectionKill),
            "sentinel-failover" => Some(FaultKind::SentinelFailover),
            "cluster-primary-kill" => Some(FaultKind::ClusterPrimaryKill),
            "sentinel-primary-kill" => Some(FaultKind::SentinelPrimaryKill),
            _ => None,
        };
        short.or_else(|| Self::ALL.into_iter().find(|kind| kind.name() == name))
    }
}

impl FaultKind {
    /// Whether it replaces the primary (the topology is back once a replica is promoted).
    pub fn is_failover(self) -> bool {
        matches!(
            self,
            FaultKind::SentinelFailover | FaultKind::SentinelPrimaryKill | FaultKind::ClusterPrimaryKill
        )
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Which.
    pub kind: FaultKind,
    /// When it began, from the start of the run.
    pub at: Duration,
    /// From the kill (or `SIGSTOP`, `CLIENT KILL`, `SENTINEL FAILOVER`) until the topology answered
    /// again (a restart includes loading the AOF; a failover, the promotion).
    pub outage: Duration,
    /// Whether the fault replaced the primary (a failover): then `outage` ends at the promotion.
    pub failover: bool,
    /// From the server being back to the first successful call of any kind completing.
    pub recovery: Option<Duration>,
    /// From the server being back to the first successful `update` completing.
    pub update_recovery: Option<Duration>,
    /// From the server being back until the failover's restore ended (the replaced primary back
    /// as a synced replica of its successor, or the set settled); `None` for a fault that is not a
    /// failover. Until then a write that waits for every replica cannot be confirmed.
    pub restored: Option<Duration>,
    /// Successful calls between the end of this fault and the start of the next (or the end).
    pub ok_calls_after: u64,
}

/// Watches for the first successful calls after a fault.
#[derive(Debug, Default)]
pub(super) struct RecoveryWatch {
    /// A successful call of any kind is awaited.
    pub(super) any: AtomicBool,
    /// A successful update is awaited.
    pub(super) update: AtomicBool,
    pub(super) state: Mutex<WatchState>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WatchState {
    pub(super) back_at: Option<Instant>,
    pub(super) any: Option<Duration>,
    pub(super) update: Option<Duration>,
}

/// The chaos thread: faults of the kinds of `options` one at a time (each kind once, in order,
/// then at random), each followed by a wait for recovery and a healthy interval, until
/// `deadline`. Returns the deployment (running) and the faults.
pub(super) fn chaos(
    mut deployment: Deployment,
    shared: &Shared,
    options: &Options,
    deadline: Instant,
) -> Chaos {
    let mut rng = Rng(options.seed ^ 0xc4a0_5c4a_05c4_a05c);
    let mut faults: Vec<Fault> = Vec::new();
    let mut ok_before = 0;
    let mut ok_at_last_end = 0;
    std::thread::sleep(rng.between(options.healthy));
    loop {
        let outage = rng.between(options.outage);
        // Room for the outage, a (generous) recovery and some healthy work afterwards.
        if Instant::now() + outage + options.healthy.0 + Duration::from_secs(1) > deadline {
            break;
        }
        let kinds = &options.faults;
        if kinds.is_empty() {
            break;
        }
        let kind = match kinds.get(faults.len()) {
            Some(kind) => *kind,
            None => kinds[rng.below(kinds.len())],
        };
        let pick = rng.below(usize::MAX);
        let ok_now = shared.ok_calls.load(Ordering::SeqCst);
        match faults.last_mut() {
            Some(last) => last.ok_calls_after = ok_now - ok_at_last_end,
            None => ok_before = ok_now,
        }
        *shared.watch.state.lock().unwrap() = WatchState::default();
        let began = Instant::now();
        shared.fault_starts.lock().unwrap().push(began);
        let injected = deployment.inject(kind, outage, pick);
        let back_at = injected.back_at;
        shared.fault_ends.lock().unwrap().push(back_at);
        shared.watch.state.lock().unwrap().back_at = Some(back_at);
        shared.watch.any.store(true, Ordering::Release);
        shared.watch.update.store(true, Ordering::Release);
        // The old primary back, while the tasks recover (and are timed) from the promotion.
        let restored = injected.promotion.as_ref().map(|promotion| {
            deployment.restore(promotion);
            back_at.elapsed()
        });
        ok_at_last_end = shared.ok_calls.load(Ordering::SeqCst);
        let give_up = back_at + options.recovery_limit;
        let state = loop {
            let state = *shared.watch.state.lock().unwrap();
            if (state.any.is_some() && state.update.is_some()) || Instant::now() >= give_up {
                break state;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        shared.watch.any.store(false, Ordering::Release);
        shared.watch.update.store(false, Ordering::Release);
        faults.push(Fault {
            kind,
            at: began - shared.start,
            outage: back_at - began,
            failover: kind.is_failover(),
            recovery: state.any,
            update_recovery: state.update,
            restored,
            ok_calls_after: 0,
        });
        // The shortest healthy interval until each kind happened once, so that every kind happens
        // early even in a short run.
        let healthy = rng.between(options.healthy);
        std::thread::sleep(if faults.len() < kinds.len() {
            options.healthy.0
        } else {
            healthy
        });
    }
    Chaos {
        deployment,
        faults,
        ok_calls_before_faults: ok_before,
        ok_calls_at_last_end: ok_at_last_end,
    }
}

/// What the chaos thread hands back.
pub(super) struct Chaos {
    pub(super) deployment: Deployment,
    pub(super) faults: Vec<Fault>,
    pub(super) ok_calls_before_faults: u64,
    pub(super) ok_calls_at_last_end: u64,
}
