//! The faults and the chaos thread that injects them, one at a time, each followed by a wait for
//! recovery and a healthy interval.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Options;
use super::engine::{Rng, Shared};
use crate::harness::RedisServer;

/// The two kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `SIGKILL`, then a new process that reloads the AOF.
    StopRestart,
    /// `SIGSTOP`, then `SIGCONT`.
    PauseResume,
}

impl FaultKind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::StopRestart => "stop/restart",
            FaultKind::PauseResume => "pause/resume",
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Which.
    pub kind: FaultKind,
    /// When it began, from the start of the run.
    pub at: Duration,
    /// From the kill (or `SIGSTOP`) until the server answered again (restart includes loading the
    /// AOF).
    pub outage: Duration,
    /// From the server being back to the first successful call of any kind completing.
    pub recovery: Option<Duration>,
    /// From the server being back to the first successful `update` completing.
    pub update_recovery: Option<Duration>,
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

/// The chaos thread: faults one at a time, each followed by a wait for recovery and a healthy
/// interval, until `deadline`. Returns the server (running) and the faults.
pub(super) fn chaos(mut server: RedisServer, shared: &Shared, options: &Options, deadline: Instant) -> Chaos {
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
        let kind = match faults.len() {
            0 => FaultKind::StopRestart,
            1 => FaultKind::PauseResume,
            _ if rng.below(2) == 0 => FaultKind::StopRestart,
            _ => FaultKind::PauseResume,
        };
        let ok_now = shared.ok_calls.load(Ordering::SeqCst);
        match faults.last_mut() {
            Some(last) => last.ok_calls_after = ok_now - ok_at_last_end,
            None => ok_before = ok_now,
        }
        *shared.watch.state.lock().unwrap() = WatchState::default();
        let began = Instant::now();
        shared.fault_starts.lock().unwrap().push(began);
        match kind {
            FaultKind::StopRestart => {
                server.stop();
                std::thread::sleep(outage);
                server.restart();
            }
            FaultKind::PauseResume => {
                server.pause();
                std::thread::sleep(outage);
                server.resume();
            }
        }
        let back_at = Instant::now();
        shared.watch.state.lock().unwrap().back_at = Some(back_at);
        shared.watch.any.store(true, Ordering::Release);
        shared.watch.update.store(true, Ordering::Release);
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
            recovery: state.any,
            update_recovery: state.update,
            ok_calls_after: 0,
        });
        // The shortest healthy interval after the first fault, so that the second (the first
        // pause) happens early even in a short run.
        let healthy = rng.between(options.healthy);
        std::thread::sleep(if faults.len() == 1 {
            options.healthy.0
        } else {
            healthy
        });
    }
    Chaos {
        server,
        faults,
        ok_calls_before_faults: ok_before,
        ok_calls_at_last_end: ok_at_last_end,
    }
}

/// What the chaos thread hands back.
pub(super) struct Chaos {
    pub(super) server: RedisServer,
    pub(super) faults: Vec<Fault>,
    pub(super) ok_calls_before_faults: u64,
    pub(super) ok_calls_at_last_end: u64,
}
