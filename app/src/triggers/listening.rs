//! [`Listening`]: the state of a listener's loop (its options, its stop
//! signal, its wake-ups, its backoff after failures), shared by the
//! per-tenant listener ([`Triggers::listen`]) and the all-tenants one
//! ([`Triggers::listen_all`]), so each loop reads as its steps: claim (or
//! take), handle, acknowledge, rest.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use statehouse_domain::layout::{TriggerIndex, TriggerKeys};
use statehouse_ports::{Backoff, BoxError, ClaimedTrigger, Key, StoreError, Subscription, TenantId, Watched};
use tokio::sync::futures::Notified;
use tokio::time::Instant;

use super::{ListenOptions, Triggers};

/// How many hints a listener's subscription buffers (more: one `Lagged`,
/// which wakes it just the same).
const HINT_CAPACITY: usize = 16;
/// How long a listener waits before subscribing to the hints again after
/// the subscription failed or ended.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(5);
/// The first delay after a failed store call (doubling up to `max_idle`).
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The state of one listener's loop.
pub(super) struct Listening<'t, S> {
    triggers: &'t Triggers,
    pub(super) options: ListenOptions,
    stop: Pin<Box<S>>,
    stopped: bool,
    /// The cross-process wake-up hints (all-tenants listener only).
    hints: Option<Subscription>,
    /// When to try subscribing to the hints again, if not subscribed.
    resubscribe_at: Option<Instant>,
    backoff: Backoff,
}

/// The earliest of two known due times.
pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The next hint: `true` for an event, `false` once the feed ended; never
/// completes without a subscription.
async fn next_hint(hints: &mut Option<Subscription>) -> bool {
    match hints {
        Some(subscription) => subscription.next().await.is_some(),
        None => std::future::pending().await,
    }
}

impl<'t, S: Future<Output = ()>> Listening<'t, S> {
    /// A listener of `triggers`; `hints`: subscribe to the cross-process
    /// wake-up hints (if the facade has a change feed).
    pub(super) fn new(triggers: &'t Triggers, options: ListenOptions, stop: S, hints: bool) -> Self {
        let options = ListenOptions {
            batch: options.batch.max(1),
            tenants: options.tenants.max(1),
            lease: options.lease.max(Duration::from_millis(1)),
            max_idle: options.max_idle.max(Duration::from_millis(1)),
        };
        Self {
            triggers,
            options,
            stop: Box::pin(stop),
            stopped: false,
            hints: None,
            resubscribe_at: (hints && triggers.hints.is_some()).then(Instant::now),
            backoff: Backoff::new(FIRST_BACKOFF, options.max_idle),
        }
    }

    /// Whether the stop signal completed (checked without waiting: a
    /// listener kept busy by full batches still stops when asked).
    pub(super) async fn stop_requested(&mut self) -> bool {
        if !self.stopped {
            tokio::select! {
                biased;
                () = self.stop.as_mut() => self.stopped = true,
                () = std::future::ready(()) => {}
            }
        }
        self.stopped
    }

    /// A wake-up of this process's `set`s, registered now: create it
    /// before a claim, so a `set` between the claim and the rest still
    /// wakes the listener.
    pub(super) fn woken(&self) -> Notified<'t> {
        self.triggers.wake.notified()
    }

    /// Forgets the hints received so far (the claim about to run sees what
    /// they told of), and subscribes to them if due.
    pub(super) async fn refresh_hints(&mut self) {
        if let Some(hints) = &mut self.hints {
            while hints.try_next().is_some() {}
            return;
        }
        let (Some(at), Some(feed)) = (self.resubscribe_at, &self.triggers.hints) else {
            return;
        };
        if Instant::now() < at {
            return;
        }
        let watched = TriggerIndex::all()
            .shards()
            .iter()
            .filter_map(|shard| Key::new(shard.wake()).ok())
            .collect();
        match feed.subscribe(&Watched::Keys(watched), HINT_CAPACITY).await {
            Ok(mut subscription) => {
                // Its first event, `Subscribed`, tells of nothing to claim.
                while subscription.try_next().is_some() {}
                self.hints = Some(subscription);
                self.resubscribe_at = None;
            }
            Err(error) => {
                tracing::warn!(
                    target: "statehouse",
                    %error,
                    "subscribing to trigger wake-up hints failed; due triggers are found at the next wake-up"
                );
                self.resubscribe_at = Some(Instant::now() + RESUBSCRIBE_AFTER);
            }
        }
    }

    /// The rest before the next claim: until the earliest known due time
    /// (at most `max_idle`), a wake-up, a hint or the stop signal. `false`
    /// once stopped.
    pub(super) async fn rest(&mut self, woken: Pin<&mut Notified<'t>>, until: Option<Instant>) -> bool {
        let idle = Instant::now() + self.options.max_idle;
        let deadline = until.map_or(idle, |until| until.min(idle));
        self.rest_until(woken, deadline).await
    }

    /// The rest after a failed store call: the next backoff delay; the
    /// error itself if it is not temporary.
    pub(super) async fn recover(
        &mut self,
        woken: Pin<&mut Notified<'t>>,
        error: StoreError,
        what: &'static str,
    ) -> Result<bool, StoreError> {
        if !error.is_retryable() {
            return Err(error);
        }
        tracing::warn!(target: "statehouse", %error, "{what}; retrying");
        let deadline = Instant::now() + self.backoff.next_delay();
        Ok(self.rest_until(woken, deadline).await)
    }

    /// A store call succeeded: the next failure backs off from the start.
    pub(super) fn succeeded(&mut self) {
        self.backoff.reset();
    }

    async fn rest_until(&mut self, mut woken: Pin<&mut Notified<'t>>, deadline: Instant) -> bool {
        if self.stopped {
            return false;
        }
        loop {
            tokio::select! {
                () = self.stop.as_mut() => {
                    self.stopped = true;
                    return false;
                }
                () = tokio::time::sleep_until(deadline) => return true,
                () = woken.as_mut() => return true,
                alive = next_hint(&mut self.hints) => {
                    if alive {
                        return true;
                    }
                    // The feed ended: rest on, subscribe again later.
                    self.hints = None;
                    self.resubscribe_at = Some(Instant::now() + RESUBSCRIBE_AFTER);
                }
            }
        }
    }

    /// Serves the tenants of one round, taken from the due index: claims
    /// their due triggers (all tenants together, one port call: on Redis
    /// one pipeline), runs `handler` on each trigger with its tenant (one
    /// after the other, in the order taken), then acknowledges each
    /// tenant's handled triggers (all together again), which files the
    /// tenant in the index at its next due time. A temporary failure of
    /// the claims is handed back in [`Round::failed`] (the round's tenants
    /// come back after the take's lease); of the acks, logged (their
    /// triggers come back after theirs). When the stop signal comes, the
    /// handlers of the tenants not yet served are skipped (their triggers
    /// come back after the lease) and every tenant is filed.
    pub(super) async fn serve_round<F, Fut>(
        &mut self,
        tenants: Vec<TenantId>,
        handler: &mut F,
    ) -> Result<Round, StoreError>
    where
        F: FnMut(TenantId, ClaimedTrigger) -> Fut,
        Fut: Future<Output = Result<(), BoxError>>,
    {
        let port = &self.triggers.port;
        let ListenOptions { batch, lease, .. } = self.options;
        let mut round = Round::default();
        if tenants.is_empty() {
            return Ok(round);
        }
        let keys: Vec<TriggerKeys> = tenants.into_iter().map(TriggerKeys::of).collect();
        let claims = match port.claim_round(&keys, batch, lease).await {
            Ok(claims) => claims,
            Err(error) if error.is_retryable() => {
                // The round's tenants come back after the take's lease.
                round.failed = Some(error);
                return Ok(round);
            }
            Err(error) => return Err(error),
        };
        let mut filings = Vec::new();
        for (keys, claimed) in keys.into_iter().zip(claims) {
            round.next = earliest(round.next, deadline(claimed.next_due_in));
            // None or a full batch: filed by the claim already.
            let filed = claimed.triggers.is_empty() || claimed.triggers.len() >= batch;
            let stopping = self.stop_requested().await;
            let mut handled = Vec::with_capacity(claimed.triggers.len());
            for trigger in claimed.triggers {
                if stopping {
                    break;
                }
                match handler(keys.tenant().clone(), trigger.clone()).await {
                    Ok(()) => handled.push(trigger),
                    Err(error) => handler_failed(&trigger, &error),
                }
            }
            if !filed || !handled.is_empty() {
                filings.push((keys, handled));
            }
        }
        if !filings.is_empty()
            && let Err(error) = self.triggers.port.ack_round(&filings).await
        {
            ack_failed(error)?;
        }
        Ok(round)
    }
}

/// What a round of [`Listening::serve_round`] learnt.
#[derive(Debug, Default)]
pub(super) struct Round {
    /// When the earliest next trigger (or lease) of its tenants is due, as
    /// their claims saw it.
    pub(super) next: Option<Instant>,
    /// The first temporary failure of a claim, if any.
    pub(super) failed: Option<StoreError>,
}

/// The deadline of a `next_due_in` measured now.
pub(super) fn deadline(next: Option<Duration>) -> Option<Instant> {
    next.map(|next| Instant::now() + next)
}

/// Logs a failed handler: the trigger comes back after its lease.
pub(super) fn handler_failed(trigger: &ClaimedTrigger, error: &BoxError) {
    tracing::warn!(
        target: "statehouse",
        action = %trigger.action,
        %error,
        "trigger handler failed; it is delivered again after its lease"
    );
}

/// A failed ack: logged if temporary (the trigger comes back after its
/// lease), else returned.
pub(super) fn ack_failed(error: StoreError) -> Result<(), StoreError> {
    if !error.is_retryable() {
        return Err(error);
    }
    tracing::warn!(
        target: "statehouse",
        %error,
        "acknowledging a trigger failed; it is delivered again after its lease"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_known_deadline_wins() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(earliest(Some(now), Some(later)), Some(now));
        assert_eq!(earliest(None, Some(later)), Some(later));
        assert_eq!(earliest(Some(now), None), Some(now));
        assert_eq!(earliest(None, None), None);
    }
}
