//! The blocking twin of [`crate::Triggers`], with its listener loops: the
//! async loop runs on the blocking API's runtime and hands each trigger to
//! the calling thread, which runs the handler and hands the answer back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use statehouse_ports::{
    BoxError, Claimed, ClaimedTrigger, IndexedTenant, PendingTrigger, StoreError, TenantId, ValidationExt,
};
use tokio::sync::{Notify, oneshot};

use super::{OwnedRuntime, block_on};
use crate::ListenOptions;

/// Stops a listener from any thread (or from its own handler): clone it,
/// keep one, pass the other to the listener.
///
/// ```
/// use statehouse::blocking::Stop;
///
/// let stop = Stop::new();
/// assert!(!stop.is_stopped());
/// stop.clone().stop();
/// assert!(stop.is_stopped());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<StopState>);

#[derive(Debug, Default)]
struct StopState {
    stopped: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// A stop signal not given yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives the signal: the listeners holding it stop after the trigger
    /// they handle (unacknowledged triggers of their round go back to the
    /// index).
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }

    /// Whether the signal was given.
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    /// Completes once the signal is given (for an async listener).
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

/// Gives the signal when dropped: a handler that panics stops the loop.
struct StopOnDrop(Stop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A trigger handed to the calling thread, and where its answer goes.
type Job = (TenantId, ClaimedTrigger, oneshot::Sender<Result<(), BoxError>>);

/// The async handler of a blocking listener: hands the trigger to the
/// calling thread and waits for its answer.
async fn forward(jobs: mpsc::Sender<Job>, tenant: TenantId, trigger: ClaimedTrigger) -> Result<(), BoxError> {
    let (answer, answered) = oneshot::channel();
    jobs.send((tenant, trigger, answer))
        .map_err(|_| "the listening thread is gone")?;
    answered.await.map_err(|_| "the listening thread is gone")?
}

/// What starts an async listener, given where triggers go and its stop.
type Start = Box<
    dyn FnOnce(
        mpsc::Sender<Job>,
        Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>,
>;

/// Blocking twin of [`crate::Triggers`], with both listener loops:
/// [`listen_all`](Self::listen_all) (every tenant) and
/// [`listen`](Self::listen) (one tenant). Their handlers run on the calling
/// thread, outside any runtime, so they may use the rest of the blocking
/// API.
///
/// ```
/// use std::time::Duration;
/// use statehouse::ListenOptions;
/// use statehouse::blocking::{Statehouse, Stop};
///
/// let state = Statehouse::connect("memory://")?;
/// let triggers = state.triggers();
/// triggers.set("acme", "remind", "user-1", Duration::ZERO)?;
/// triggers.set("globex", "remind", "user-2", Duration::from_millis(20))?;
///
/// // The worker: every tenant, on this thread, stopped after two.
/// let stop = Stop::new();
/// let docs = state.documents();
/// let mut seen = Vec::new();
/// triggers.listen_all(ListenOptions::default(), &stop, |tenant, trigger| {
///     docs.set(&format!("reminded:{}", trigger.id), &tenant.as_str())?; // blocking calls are fine here
///     seen.push(format!("{tenant} {}", trigger.id));
///     if seen.len() == 2 {
///         stop.stop();
///     }
///     Ok(())
/// })?;
/// assert_eq!(seen, ["acme user-1", "globex user-2"]);
/// assert_eq!(docs.get::<String>("reminded:user-2")?.as_deref(), Some("globex"));
///
/// // By hand: claim and acknowledge.
/// triggers.set("acme", "remind", "user-3", Duration::ZERO)?;
/// let claimed = triggers.claim("acme", 10, Duration::from_secs(30))?;
/// for trigger in &claimed.triggers {
///     assert!(triggers.ack("acme", trigger)?);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Triggers {
    pub(super) inner: crate::Triggers,
    pub(super) runtime: Arc<OwnedRuntime>,
}

impl Triggers {
    /// See [`crate::Triggers::set`].
    pub fn set(&self, tenant: &str, action: &str, id: &str, delay: Duration) -> Result<(), StoreError> {
        block_on(
            &self.runtime,
            "trigger_set",
            self.inner.set(tenant, action, id, delay),
        )
    }

    /// See [`crate::Triggers::cancel`].
    pub fn cancel(&self, tenant: &str, action: &str, id: &str) -> Result<bool, StoreError> {
        block_on(
            &self.runtime,
            "trigger_cancel",
            self.inner.cancel(tenant, action, id),
        )
    }

    /// See [`crate::Triggers::cancel_all`].
    pub fn cancel_all(&self, tenant: &str, id: &str) -> Result<usize, StoreError> {
        block_on(
            &self.runtime,
            "trigger_cancel_all",
            self.inner.cancel_all(tenant, id),
        )
    }

    /// See [`crate::Triggers::list`].
    pub fn list(&self, tenant: &str) -> Result<Vec<PendingTrigger>, StoreError> {
        block_on(&self.runtime, "trigger_list", self.inner.list(tenant))
    }

    /// See [`crate::Triggers::due`].
    pub fn due(&self, tenant: &str) -> Result<Vec<PendingTrigger>, StoreError> {
        block_on(&self.runtime, "trigger_list", self.inner.due(tenant))
    }

    /// See [`crate::Triggers::index`].
    pub fn index(&self, limit: usize) -> Result<Vec<IndexedTenant>, StoreError> {
        block_on(&self.runtime, "trigger_indexed", self.inner.index(limit))
    }

    /// See [`crate::Triggers::claim`].
    pub fn claim(&self, tenant: &str, max: usize, lease: Duration) -> Result<Claimed, StoreError> {
        block_on(
            &self.runtime,
            "trigger_claim",
            self.inner.claim(tenant, max, lease),
        )
    }

    /// See [`crate::Triggers::ack`].
    pub fn ack(&self, tenant: &str, trigger: &ClaimedTrigger) -> Result<bool, StoreError> {
        block_on(&self.runtime, "trigger_ack", self.inner.ack(tenant, trigger))
    }

    /// Blocking twin of [`crate::Triggers::listen_all`]: serves every
    /// tenant until `stop` is given, running `handler` on the calling
    /// thread (where the blocking API may be used) with each trigger and
    /// its tenant; `Ok` acknowledges it, `Err` leaves it to its lease.
    pub fn listen_all(
        &self,
        options: ListenOptions,
        stop: &Stop,
        mut handler: impl FnMut(TenantId, ClaimedTrigger) -> Result<(), BoxError>,
    ) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let start: Start = Box::new(move |jobs, stop| {
            Box::pin(async move {
                inner
                    .listen_all(options, stop, |tenant, trigger| {
                        forward(jobs.clone(), tenant, trigger)
                    })
                    .await
            })
        });
        self.drive("trigger_listen", stop, start, &mut handler)
    }

    /// Blocking twin of [`crate::Triggers::listen`]: serves `tenant` until
    /// `stop` is given, running `handler` on the calling thread.
    pub fn listen(
        &self,
        tenant: &str,
        options: ListenOptions,
        stop: &Stop,
        mut handler: impl FnMut(ClaimedTrigger) -> Result<(), BoxError>,
    ) -> Result<(), StoreError> {
        const OP: &str = "trigger_listen";
        let id = TenantId::new(tenant).for_op(OP, tenant)?;
        let inner = self.inner.clone();
        let start: Start = Box::new(move |jobs, stop| {
            Box::pin(async move {
                inner
                    .listen(id.as_str(), options, stop, |trigger| {
                        forward(jobs.clone(), id.clone(), trigger)
                    })
                    .await
            })
        });
        self.drive(OP, stop, start, &mut |_, trigger| handler(trigger))
    }

    /// Runs the listener `start` makes on the runtime and the handler on
    /// this thread, until the listener ends.
    fn drive(
        &self,
        op: &'static str,
        stop: &Stop,
        start: Start,
        handler: &mut dyn FnMut(TenantId, ClaimedTrigger) -> Result<(), BoxError>,
    ) -> Result<(), StoreError> {
        // Refused inside an async runtime, as every blocking call.
        block_on(&self.runtime, op, async { Ok::<(), StoreError>(()) })?;
        let aborted = StopOnDrop(Stop::new());
        let signals = (stop.clone(), aborted.0.clone());
        let stopped = Box::pin(async move {
            tokio::select! {
                () = signals.0.stopped() => {}
                () = signals.1.stopped() => {}
            }
        });
        let (jobs, queue) = mpsc::channel();
        let listener = self.runtime.spawn(start(jobs, stopped));
        // Ends when the listener ends (it drops the last sender).
        for (tenant, trigger, answer) in queue {
            let _ = answer.send(handler(tenant, trigger));
        }
        drop(aborted);
        block_on(&self.runtime, op, async move {
            listener.await.map_err(|error| StoreError::Operation {
                op,
                key: String::new(),
                source: Box::new(error),
            })?
        })
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::blocking::Statehouse;

    #[test]
    fn the_tenant_listener_runs_its_handler_on_the_calling_thread() {
        let state = Statehouse::connect("memory://").unwrap();
        let triggers = state.triggers();
        for id in ["u1", "u2", "u3"] {
            triggers.set("acme", "remind", id, Duration::ZERO).unwrap();
        }
        let caller = std::thread::current().id();
        let (stop, mut seen) = (Stop::new(), Vec::new());
        triggers
            .listen("acme", ListenOptions::default(), &stop, |trigger| {
                assert_eq!(std::thread::current().id(), caller);
                seen.push(trigger.id);
                if seen.len() == 2 {
                    // A failed handler: left to its lease.
                    return Err("not now".into());
                }
                if seen.len() == 3 {
                    stop.stop();
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, ["u1", "u2", "u3"]);
        let left = triggers.list("acme").unwrap();
        assert_eq!(left.len(), 1, "the failed one waits for its lease: {left:?}");
        assert!(left[0].claimed);
    }

    #[test]
    fn a_panicking_handler_stops_the_listener() {
        let state = Statehouse::connect("memory://").unwrap();
        let triggers = state.triggers();
        triggers.set("acme", "remind", "u1", Duration::ZERO).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            triggers.listen_all(ListenOptions::default(), &Stop::new(), |_, _| {
                panic!("handler bug")
            })
        }));
        assert!(panicked.is_err());
        // The loop stopped with the panic; the API still answers.
        assert_eq!(triggers.list("acme").unwrap().len(), 1);
    }

    #[tokio::test]
    async fn refuses_to_listen_inside_a_runtime() {
        let triggers = std::thread::spawn(|| Statehouse::connect("memory://").unwrap().triggers())
            .join()
            .unwrap();
        let error = triggers
            .listen_all(ListenOptions::default(), &Stop::new(), |_, _| Ok(()))
            .unwrap_err();
        assert!(error.to_string().contains("inside an async runtime"), "{error}");
    }
}
