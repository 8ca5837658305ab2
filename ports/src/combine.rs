//! Combining: concurrent read-modify-writes of one key from one store run
//! as one round of THE optimistic loop ([`RetryPolicy::run`]).
//!
//! Callers of one store that update the same key (under the same policy)
//! at the same time line up in a [`Combiner`] lane. The first of a batch
//! leads: it runs the backend's section once for the whole batch (WATCH and
//! read once), hands the value through every member's closure in arrival
//! order ([`Pass::apply`]: each member applies its own closure in its own
//! task, so nothing borrowed ever crosses tasks), and writes the final
//! value once. A conflict reruns the whole batch; the batch ends with one
//! outcome that every member shares ([`Ticket::wait`]): committed at
//! attempt `n`, or the leader's error. Each member keeps what its own
//! closure answered in the last pass, so it returns exactly what it would
//! have returned had the updates run one after another in that order.
//!
//! - A batch holds at most [`Combiner::max_batch`] members; a caller that
//!   arrives while a round runs joins the next batch (no starvation: the
//!   batches run in arrival order).
//! - A waiting caller that is cancelled before its batch starts leaves it;
//!   once it started, its turns are skipped (the value passes on
//!   unchanged), and the others' outcome is unaffected.
//! - A leader cancelled before its write went out hands the batch to the
//!   next member, which runs it again from the read (nothing was written);
//!   after the write went out, the members get a `Connection` error saying
//!   the outcome is unknown, as the leader's own caller would.
//! - Off ([`Combiner::off`]), every caller leads a batch of one: today's
//!   path, one WATCH round per update.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use crate::{RetryPolicy, StoreError};

/// The default bound on a batch's size.
pub const DEFAULT_MAX_BATCH: usize = 64;

/// The lanes of a combiner by key and policy.
type Lanes<V> = Mutex<HashMap<(String, RetryPolicy), Arc<Lane<V>>>>;

/// The lanes of one store's combined updates, one per key and policy.
///
/// `V` is what the section reads and the closures pass on (a document's
/// bytes, a property's value).
#[derive(Debug)]
pub struct Combiner<V> {
    lanes: Lanes<V>,
    max_batch: usize,
}

impl<V> Default for Combiner<V> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BATCH)
    }
}

impl<V> Combiner<V> {
    /// Batches of at most `max_batch` members (1: no combining).
    pub fn new(max_batch: usize) -> Self {
        Self {
            lanes: Mutex::new(HashMap::new()),
            max_batch: max_batch.max(1),
        }
    }

    /// No combining: every update is a batch of its own.
    pub fn off() -> Self {
        Self::new(1)
    }

    /// The bound on a batch's size (1: combining is off).
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Lines a caller up for an update of `key` under `policy`: joins the
    /// forming batch of the key's lane (or starts one), to wait in with
    /// [`Ticket::wait`].
    pub fn join(&self, key: &str, policy: RetryPolicy) -> Ticket<'_, V> {
        let lane = {
            let mut lanes = lock(&self.lanes);
            let lane = lanes
                .entry((key.to_owned(), policy))
                .or_insert_with(|| {
                    Arc::new(Lane {
                        state: Mutex::new(LaneState {
                            running: false,
                            batches: VecDeque::new(),
                            users: 0,
                        }),
                    })
                })
                .clone();
            lock(&lane.state).users += 1;
            lane
        };
        let (batch, index) = lane.enqueue(self.max_batch);
        Ticket {
            combiner_lanes: &self.lanes,
            key: (key.to_owned(), policy),
            lane,
            batch,
            index,
            finished: false,
        }
    }
}

/// The batches of one key, in arrival order; the front one runs.
#[derive(Debug)]
struct Lane<V> {
    state: Mutex<LaneState<V>>,
}

#[derive(Debug)]
struct LaneState<V> {
    /// Whether the front batch is running (it has a leader).
    running: bool,
    batches: VecDeque<Arc<Batch<V>>>,
    /// Tickets alive on this lane (the lane is dropped at zero).
    users: usize,
}

impl<V> Lane<V> {
    /// Adds a member to the last batch that still forms, or a new one;
    /// starts it at once if nothing runs. Returns the batch and the index.
    fn enqueue(&self, max_batch: usize) -> (Arc<Batch<V>>, usize) {
        let mut lane = lock(&self.state);
        if let Some(last) = lane.batches.back() {
            let mut batch = lock(&last.state);
            if !batch.started && batch.members.len() < max_batch {
                batch.members.push(Member::default());
                let index = batch.members.len() - 1;
                drop(batch);
                return (last.clone(), index);
            }
        }
        let batch = Arc::new(Batch {
            state: Mutex::new(BatchState {
                members: vec![Member::default()],
                started: false,
                leader: None,
                turn: None,
                value: None,
                changed: false,
                writing: false,
                generation: 0,
                outcome: None,
                leader_waker: None,
            }),
        });
        lane.batches.push_back(batch.clone());
        if !lane.running {
            lane.running = true;
            // Its one member is there: it leads.
            start(&batch);
        }
        (batch, 0)
    }

    /// The front batch ended: starts the next one, if any.
    fn next(&self, finished: &Arc<Batch<V>>) {
        let mut lane = lock(&self.state);
        if !lane
            .batches
            .front()
            .is_some_and(|front| Arc::ptr_eq(front, finished))
        {
            return;
        }
        lane.batches.pop_front();
        // A batch whose members all left before it started ends at once.
        while let Some(batch) = lane.batches.front() {
            if start(batch) {
                return;
            }
            lane.batches.pop_front();
        }
        lane.running = false;
    }
}

/// Freezes a batch's membership and makes its first live member the
/// leader; returns whether there was one (else the batch has ended).
fn start<V>(batch: &Arc<Batch<V>>) -> bool {
    let mut state = lock(&batch.state);
    state.started = true;
    state.elect();
    state.leader.is_some()
}

/// One batch: members in arrival order, the value passing through them.
#[derive(Debug)]
struct Batch<V> {
    state: Mutex<BatchState<V>>,
}

#[derive(Debug)]
struct BatchState<V> {
    members: Vec<Member>,
    started: bool,
    leader: Option<usize>,
    /// Whose turn it is to apply its closure in the running pass; `None`
    /// between passes or once every member had its turn.
    turn: Option<usize>,
    /// The value handed to the member whose turn it is.
    value: Option<V>,
    /// Whether a member changed the value in this pass.
    changed: bool,
    /// Whether the leader's write went out (its outcome may be unknown).
    writing: bool,
    /// Counts passes (and new leaders): a member's answer to an older
    /// pass is dropped.
    generation: u64,
    /// How the batch ended: committed at attempt `n`, or an error (with
    /// each member's copy taken from it).
    outcome: Option<Result<u32, SharedError>>,
    leader_waker: Option<Waker>,
}

#[derive(Debug, Default)]
struct Member {
    waker: Option<Waker>,
    /// Left the batch (cancelled); its turns are skipped.
    gone: bool,
}

impl<V> BatchState<V> {
    /// Makes the first member still there the leader and wakes it; with
    /// none left, the batch ends.
    fn elect(&mut self) {
        self.generation += 1;
        let leader = self.members.iter().position(|member| !member.gone);
        self.leader = leader;
        match leader {
            Some(index) => wake(&mut self.members[index].waker),
            None => self.outcome = Some(Ok(0)),
        }
    }

    /// The next member after `after` (or the first, for `None`) that has
    /// a turn: not the leader, not gone.
    fn next_turn(&self, after: Option<usize>) -> Option<usize> {
        let from = after.map_or(0, |index| index + 1);
        (from..self.members.len()).find(|&index| Some(index) != self.leader && !self.members[index].gone)
    }

    /// Hands the value on to the next member with a turn, or back to the
    /// leader once all had theirs.
    fn pass_on(&mut self, after: Option<usize>) {
        self.turn = self.next_turn(after);
        match self.turn {
            Some(index) => wake(&mut self.members[index].waker),
            None => wake(&mut self.leader_waker),
        }
    }

    fn finish(&mut self, outcome: Result<u32, SharedError>) {
        self.outcome = Some(outcome);
        self.turn = None;
        for member in &mut self.members {
            wake(&mut member.waker);
        }
    }
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(waker) = waker.take() {
        waker.wake();
    }
}

/// A caller's place in a lane, from [`Combiner::join`].
#[derive(Debug)]
pub struct Ticket<'c, V> {
    combiner_lanes: &'c Lanes<V>,
    key: (String, RetryPolicy),
    lane: Arc<Lane<V>>,
    batch: Arc<Batch<V>>,
    index: usize,
    finished: bool,
}

/// What a waiting caller became: its batch's outcome came, or it leads.
#[derive(Debug)]
pub enum Role<'t, 'c, V> {
    /// The batch committed at this attempt number (the member's own
    /// closure's last answer is its result), or failed with this error.
    Finished(Result<u32, StoreError>),
    /// This caller leads the batch: run the section through the [`Pass`].
    Lead(Pass<'t, 'c, V>),
}

impl<'c, V: Send> Ticket<'c, V> {
    /// Waits for this caller's turns, applying `apply` to the value handed
    /// to it (`None` from `apply`: keep it as it is), until the batch ends
    /// or this caller must lead it.
    ///
    /// `op` and `key` name the update in an error of the batch.
    pub async fn wait<A>(&mut self, op: &'static str, key: &str, apply: &mut A) -> Role<'_, 'c, V>
    where
        A: FnMut(&V) -> Option<V> + Send,
    {
        loop {
            let step = poll_fn(|cx| {
                let mut state = lock(&self.batch.state);
                if let Some(outcome) = &state.outcome {
                    return Poll::Ready(Step::Outcome(match outcome {
                        Ok(attempts) => Ok(*attempts),
                        Err(shared) => Err(shared.to_error(op, key)),
                    }));
                }
                if state.leader == Some(self.index) {
                    return Poll::Ready(Step::Lead);
                }
                if state.turn == Some(self.index) {
                    let value = state.value.take();
                    return Poll::Ready(Step::Apply(value, state.generation));
                }
                state.members[self.index].waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            match step {
                Step::Outcome(result) => {
                    self.finished = true;
                    return Role::Finished(result);
                }
                Step::Lead => return Role::Lead(Pass { ticket: self }),
                Step::Apply(value, generation) => {
                    let Some(value) = value else { continue };
                    let new = apply(&value);
                    let mut state = lock(&self.batch.state);
                    if state.generation != generation || state.turn != Some(self.index) {
                        // The leader left meanwhile: the batch starts over.
                        continue;
                    }
                    state.changed |= new.is_some();
                    state.value = Some(new.unwrap_or(value));
                    state.pass_on(Some(self.index));
                }
            }
        }
    }
}

enum Step<V> {
    Outcome(Result<u32, StoreError>),
    Lead,
    Apply(Option<V>, u64),
}

impl<V> Drop for Ticket<'_, V> {
    fn drop(&mut self) {
        if !self.finished {
            let mut state = lock(&self.batch.state);
            let running = state.outcome.is_none();
            if running {
                state.members[self.index].gone = true;
                if state.leader == Some(self.index) {
                    // A leader cancelled mid-round (its `Pass` is gone too).
                    if state.writing {
                        state.finish(Err(SharedError::Unknown));
                    } else {
                        state.turn = None;
                        state.value = None;
                        state.elect();
                    }
                } else if state.turn == Some(self.index) {
                    // Cancelled while the value was handed to it: the value
                    // is still in the batch; pass it on unchanged.
                    state.pass_on(Some(self.index));
                }
            }
            let ended = running && state.outcome.is_some();
            drop(state);
            if ended {
                self.lane.next(&self.batch);
            }
        }
        let mut lanes = lock(self.combiner_lanes);
        let mut lane = lock(&self.lane.state);
        lane.users -= 1;
        if lane.users == 0 {
            drop(lane);
            lanes.remove(&self.key);
        }
    }
}

/// The leader's hold on its batch, for one round of the optimistic loop.
#[derive(Debug)]
pub struct Pass<'t, 'c, V> {
    ticket: &'t mut Ticket<'c, V>,
}

impl<V: Send> Pass<'_, '_, V> {
    /// How many members are in the batch, the leader included.
    pub fn size(&self) -> usize {
        lock(&self.ticket.batch.state)
            .members
            .iter()
            .filter(|member| !member.gone)
            .count()
    }

    /// One pass: `current` (what the section read) through the leader's
    /// own closure `apply`, then every other member's, in arrival order.
    /// Returns the final value and whether any closure changed it.
    pub async fn apply<A>(&mut self, current: V, apply: &mut A) -> (V, bool)
    where
        A: FnMut(&V) -> Option<V> + Send,
    {
        let own = apply(&current);
        {
            let mut state = lock(&self.ticket.batch.state);
            state.generation += 1;
            state.changed = own.is_some();
            state.value = Some(own.unwrap_or(current));
            state.pass_on(None);
        }
        poll_fn(|cx| {
            let mut state = lock(&self.ticket.batch.state);
            if state.turn.is_none() {
                let value = state.value.take();
                if let Some(value) = value {
                    return Poll::Ready((value, state.changed));
                }
            }
            state.leader_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Marks the write as sent: from here a cancelled leader leaves its
    /// batch's outcome unknown.
    pub fn writing(&mut self) {
        lock(&self.ticket.batch.state).writing = true;
    }

    /// The write of the last pass did not go through (a conflict): the
    /// next pass starts over from a new read.
    pub fn conflicted(&mut self) {
        lock(&self.ticket.batch.state).writing = false;
    }

    /// Ends the batch with the leader's outcome (its caller keeps the
    /// error itself; the members get a copy) and starts the next batch.
    pub fn finish(self, outcome: &Result<u32, StoreError>) {
        let ticket = self.ticket;
        lock(&ticket.batch.state).finish(match outcome {
            Ok(attempts) => Ok(*attempts),
            Err(error) => Err(SharedError::of(error)),
        });
        ticket.finished = true;
        ticket.lane.next(&ticket.batch);
    }
}

/// The leader's error, as each member gets its own copy.
#[derive(Debug, Clone)]
enum SharedError {
    Timeout(std::time::Duration),
    Conflict(u32),
    Connection(String),
    Other(String),
    /// The leader was cancelled after its write went out.
    Unknown,
}

impl SharedError {
    fn of(error: &StoreError) -> Self {
        match error {
            StoreError::Timeout { after, .. } => Self::Timeout(*after),
            StoreError::Conflict { attempts, .. } => Self::Conflict(*attempts),
            StoreError::Connection { source, .. } => Self::Connection(source.to_string()),
            other => Self::Other(other.to_string()),
        }
    }

    fn to_error(&self, op: &'static str, key: &str) -> StoreError {
        let key = key.to_owned();
        match self {
            Self::Timeout(after) => StoreError::Timeout {
                op,
                key,
                after: *after,
            },
            Self::Conflict(attempts) => StoreError::Conflict {
                op,
                key,
                attempts: *attempts,
            },
            Self::Connection(source) => StoreError::Connection {
                op,
                key,
                source: source.clone().into(),
            },
            Self::Other(message) => StoreError::Operation {
                op,
                key,
                source: format!("the round that combined this update failed: {message}").into(),
            },
            Self::Unknown => StoreError::Connection {
                op,
                key,
                source: "the update leading this one's round was cancelled while writing; \
                         the outcome is unknown"
                    .into(),
            },
        }
    }
}

/// Locks a mutex, recovering from poisoning (a panicking closure runs
/// outside every lock here, so the data stays consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
