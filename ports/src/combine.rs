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
//!   next member, which runs it again from the read (nothing was written).
//!   The write of a batch with other members runs in a task of its own
//!   ([`Pass::write`]): a leader cancelled while it is out leaves the batch
//!   to that task, which ends the batch with the write's outcome (or hands
//!   it to the next member if nothing was written), so cancelling any
//!   caller never changes another caller's outcome.
//! - Off ([`Combiner::off`]), [`Combiner::join`] answers `None`: the
//!   caller runs today's path, one round of its own at once, without a
//!   lane.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Poll, Waker};

use crate::{RetryPolicy, StoreError};

/// The default bound on a batch's size.
pub const DEFAULT_MAX_BATCH: usize = 64;

/// Where every finished round is told (its operation and how many callers
/// it served), once [`observe_rounds`] set it.
static ROUNDS: OnceLock<fn(&'static str, usize)> = OnceLock::new();

/// Tells `hook` of every combined round that ends, in any store of the
/// process: the operation (`update`, `update_property`, `update_field`,
/// `update_model`, `set_status` and `append_log` (a round of task changes
/// is named by its leader's), the config store's `config_update`) and the
/// batch's size (its callers still waiting, the leader included).
/// Set once per process (later calls change nothing); the app's metrics
/// layer sets it (`statehouse_combined_batch_size`) and decides in it
/// whether to record.
pub fn observe_rounds(hook: fn(&'static str, usize)) {
    let _ = ROUNDS.set(hook);
}

/// Tells the hook of [`observe_rounds`] that a round of `op` served `size`.
fn report(op: &'static str, size: usize) {
    if let Some(hook) = ROUNDS.get() {
        hook(op, size);
    }
}

/// The lanes of a combiner by key, then policy (a key is looked up by
/// `&str`, without building a `String`).
type Lanes<V> = Mutex<HashMap<String, Vec<(RetryPolicy, Arc<Lane<V>>)>>>;

/// How many lanes a combiner keeps when nobody uses them, so that a key
/// updated again and again by one caller at a time finds its lane instead
/// of building one per update. Past this many keys, a lane goes when its
/// last user does.
const IDLE_LANES: usize = 1024;

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

    /// On (the default bound) or [`off`](Self::off).
    pub fn switched(on: bool) -> Self {
        if on { Self::default() } else { Self::off() }
    }

    /// The bound on a batch's size (1: combining is off).
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Whether combining is on (batches of more than one).
    pub fn is_on(&self) -> bool {
        self.max_batch > 1
    }

    /// Lines a caller up for an update of `key` under `policy`: joins the
    /// forming batch of the key's lane (or starts one), to wait in with
    /// [`Ticket::wait`]. `None` when combining is off: the caller runs its
    /// own round at once (today's path), not queued in a lane.
    pub fn join<'c>(&'c self, key: &'c str, policy: RetryPolicy) -> Option<Ticket<'c, V>> {
        if !self.is_on() {
            return None;
        }
        let lane = {
            let mut lanes = lock(&self.lanes);
            let known = lanes
                .get(key)
                .and_then(|of_key| of_key.iter().find(|(known, _)| *known == policy))
                .map(|(_, lane)| lane.clone());
            let lane = known.unwrap_or_else(|| {
                let lane = Arc::new(Lane {
                    state: Mutex::new(LaneState {
                        running: false,
                        batches: VecDeque::new(),
                        users: 0,
                    }),
                });
                lanes
                    .entry(key.to_owned())
                    .or_default()
                    .push((policy, lane.clone()));
                lane
            });
            lock(&lane.state).users += 1;
            lane
        };
        let (batch, index) = lane.enqueue(self.max_batch);
        Some(Ticket {
            combiner_lanes: &self.lanes,
            op: "",
            key: (key, policy),
            lane,
            batch,
            index,
            finished: false,
        })
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
    /// Tickets alive on this lane (at zero the lane is idle: kept, up to
    /// [`IDLE_LANES`] keys, else dropped).
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
                detached: false,
                landed: None,
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
    /// Whether the write runs in a task of its own ([`Pass::write`]): a
    /// leader cancelled meanwhile leaves the batch to it.
    detached: bool,
    /// How the detached write landed, once it did, until the leader takes
    /// its answer (or, cancelled, ends the batch with it).
    landed: Option<Landed>,
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

    /// The members still waiting (not cancelled).
    fn live(&self) -> usize {
        self.members.iter().filter(|member| !member.gone).count()
    }

    /// A detached write landed after its leader was cancelled: ends the
    /// batch with its outcome, or, if nothing was written, hands the batch
    /// to the next member (a new read). Returns whether the batch ended.
    fn resolve(&mut self, landed: Landed) -> bool {
        self.detached = false;
        match landed {
            Landed::Committed(attempts) => self.finish(Ok(attempts)),
            Landed::Failed(error) => self.finish(Err(error)),
            Landed::NotWritten => {
                self.writing = false;
                self.turn = None;
                self.value = None;
                self.elect();
            }
        }
        self.outcome.is_some()
    }
}

/// How a round's write landed, as the batch sees it ([`Pass::write`]).
#[derive(Debug)]
pub enum Landing<'e> {
    /// The write was applied: the members' answers stand.
    Committed,
    /// Nothing was written (a watched key changed, a redirect, a lost
    /// script): the batch runs again from a new read.
    NotWritten,
    /// The write failed, or its outcome is unknown: every member gets this.
    Failed(&'e StoreError),
}

/// A [`Landing`] kept in the batch (the error as each member copies it).
#[derive(Debug)]
enum Landed {
    Committed(u32),
    NotWritten,
    Failed(SharedError),
}

impl Landed {
    fn of(landing: Landing<'_>, attempt: u32) -> Self {
        match landing {
            Landing::Committed => Self::Committed(attempt),
            Landing::NotWritten => Self::NotWritten,
            Landing::Failed(error) => Self::Failed(SharedError::of(error)),
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
    /// The update's operation, for [`observe_rounds`].
    op: &'static str,
    key: (&'c str, RetryPolicy),
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
        self.op = op;
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
                    if state.detached {
                        // Its write runs on in a task of its own: the
                        // batch ends with its outcome, now if it landed
                        // already, else when it does (`Pass::write`).
                        if let Some(landed) = state.landed.take() {
                            state.resolve(landed);
                        }
                    } else if state.writing {
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
        if lane.users == 0 && lanes.len() > IDLE_LANES {
            drop(lane);
            let (key, policy) = self.key;
            if let Some(of_key) = lanes.get_mut(key) {
                of_key.retain(|(known, _)| *known != policy);
                if of_key.is_empty() {
                    lanes.remove(key);
                }
            }
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
        lock(&self.ticket.batch.state).live()
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
    /// batch's outcome unknown. For a write that completes (memory's, under
    /// one lock), or of a batch of one; else see [`write`](Self::write).
    pub fn writing(&mut self) {
        lock(&self.ticket.batch.state).writing = true;
    }

    /// Runs the round's write (attempt number `attempt`) in a task of its
    /// own and waits for its answer, so that cancelling the leader's caller
    /// does not cut the write short: the task then ends the batch with
    /// what `landing` makes of the answer (the members get the outcome they
    /// would have had), or, if nothing was written, hands the batch to the
    /// next member. A batch of one (nobody else's outcome hangs on it) runs
    /// the write in the caller's task; so does a write with no runtime to
    /// spawn on.
    pub async fn write<W, T>(&mut self, attempt: u32, write: W, landing: fn(&T) -> Landing<'_>) -> T
    where
        V: 'static,
        W: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.writing();
        let runtime = tokio::runtime::Handle::try_current();
        let (true, Ok(runtime)) = (self.size() > 1, runtime) else {
            return write.await;
        };
        let batch = self.ticket.batch.clone();
        let lane = self.ticket.lane.clone();
        let op = self.ticket.op;
        let answer: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        lock(&batch.state).detached = true;
        let (task_batch, task_answer) = (batch.clone(), answer.clone());
        runtime.spawn(async move {
            let out = write.await;
            let landed = Landed::of(landing(&out), attempt);
            let mut state = lock(&task_batch.state);
            if state.outcome.is_some() || !state.detached {
                // The leader gave up waiting (its attempt's deadline) and
                // ended the batch: nobody waits for this answer.
                return;
            }
            let leader_gone = state.leader.is_none_or(|index| state.members[index].gone);
            if leader_gone {
                let ended = state.resolve(landed);
                let size = state.live();
                drop(state);
                if ended {
                    report(op, size);
                    lane.next(&task_batch);
                }
            } else {
                state.landed = Some(landed);
                *lock(&task_answer) = Some(out);
                wake(&mut state.leader_waker);
            }
        });
        poll_fn(|cx| {
            let mut state = lock(&batch.state);
            if state.landed.is_some()
                && let Some(out) = lock(&answer).take()
            {
                state.landed = None;
                state.detached = false;
                return Poll::Ready(out);
            }
            state.leader_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The write of the last pass did not go through (a conflict): the
    /// next pass starts over from a new read.
    pub fn conflicted(&mut self) {
        lock(&self.ticket.batch.state).writing = false;
    }

    /// Whether the leader is alone in its batch. The batch's membership
    /// was frozen when it started (later callers form the next batch) and
    /// can only shrink, so a leader alone stays alone: it may run its
    /// update as it would without combining (no pass, no value handed on)
    /// and end the batch with [`finish_as`](Self::finish_as).
    pub fn alone(&self) -> bool {
        self.size() == 1
    }

    /// Ends the batch with the leader's outcome (its caller keeps the
    /// error itself; the members get a copy) and starts the next batch.
    pub fn finish(self, outcome: &Result<u32, StoreError>) {
        self.finish_as(outcome.as_ref().map(|attempts| *attempts));
    }

    /// [`finish`](Self::finish) with the outcome borrowed: the attempt
    /// that committed, or the error.
    pub fn finish_as(self, outcome: Result<u32, &StoreError>) {
        let ticket = self.ticket;
        let size = {
            let mut state = lock(&ticket.batch.state);
            state.finish(match outcome {
                Ok(attempts) => Ok(attempts),
                Err(error) => Err(SharedError::of(error)),
            });
            state.live()
        };
        report(ticket.op, size);
        ticket.finished = true;
        ticket.lane.next(&ticket.batch);
    }
}

/// What one caller's closure answered in the last pass of a combined
/// update of one JSON field (subjects' properties, tenant fields): the old
/// and new value, or its own error (the stored value's decoding, or its
/// closure's, as `Aborted`).
pub type FieldStep = Option<Result<(Option<serde_json::Value>, serde_json::Value), StoreError>>;

/// The closure of a JSON field's update (`PropertyFn`, `FieldFn`).
pub type JsonFieldFn<'a> =
    dyn FnMut(Option<&serde_json::Value>) -> Result<serde_json::Value, crate::BoxError> + Send + 'a;

/// A JSON field's update closure as a member of a combined round: decodes
/// the bytes handed to it with `decode`, applies `f`, records its own
/// answer in `own` (its error as `Aborted` of `op` on `key`) and passes on
/// the new value as `encode` writes it (`None`: unchanged, after an error).
pub fn field_step<'f, 'a: 'f>(
    (op, key): (&'static str, &'f str),
    f: &'f mut JsonFieldFn<'a>,
    decode: impl Fn(&[u8]) -> Result<serde_json::Value, StoreError> + Send + 'f,
    encode: impl Fn(&serde_json::Value) -> Vec<u8> + Send + 'f,
    own: &'f mut FieldStep,
) -> impl FnMut(&Option<Vec<u8>>) -> Option<Option<Vec<u8>>> + Send + 'f {
    let aborted = move |source| StoreError::Aborted {
        op,
        key: key.to_owned(),
        source,
    };
    move |current| {
        let old = match current.as_deref().map(&decode).transpose() {
            Ok(old) => old,
            Err(error) => {
                *own = Some(Err(error));
                return None;
            }
        };
        match f(old.as_ref()) {
            Ok(new) => {
                let bytes = encode(&new);
                *own = Some(Ok((old, new)));
                Some(Some(bytes))
            }
            Err(source) => {
                *own = Some(Err(aborted(source)));
                None
            }
        }
    }
}

/// A caller's result of a combined JSON field update: its own step after
/// the batch's `outcome` (the attempt that committed): `(old, new,
/// attempts)`. Its own error stands whatever the batch did.
#[allow(clippy::type_complexity)]
pub fn field_result(
    op: &'static str,
    key: &str,
    own: FieldStep,
    outcome: Result<u32, StoreError>,
) -> Result<(Option<serde_json::Value>, serde_json::Value, u32), StoreError> {
    member_result(op, key, own, outcome, |(old, new), attempts| (old, new, attempts))
}

/// A caller's result of a combined update of `op` on `key`: what its own
/// closure answered in the last pass (`own`), made its result by `done`
/// with the attempt the batch committed at (`outcome`); its own error
/// whatever the batch did; the batch's error if its closure never ran.
pub fn member_result<T, R>(
    op: &'static str,
    key: &str,
    own: Option<Result<T, StoreError>>,
    outcome: Result<u32, StoreError>,
    done: impl FnOnce(T, u32) -> R,
) -> Result<R, StoreError> {
    match own {
        Some(Err(error)) => Err(error),
        Some(Ok(answer)) => outcome.map(|attempts| done(answer, attempts)),
        None => outcome.and_then(|_| {
            Err(StoreError::Operation {
                op,
                key: key.to_owned(),
                source: "the combined round ended without running this update's closure".into(),
            })
        }),
    }
}

/// The leader's error, as each member gets its own copy.
#[derive(Debug, Clone)]
enum SharedError {
    Timeout(std::time::Duration),
    Conflict(u32),
    Connection(String),
    WrongType,
    NotDurable {
        wanted: u32,
        confirmed: u32,
        timeout: std::time::Duration,
    },
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
            StoreError::WrongType { .. } => Self::WrongType,
            StoreError::NotDurable {
                wanted,
                confirmed,
                timeout,
                ..
            } => Self::NotDurable {
                wanted: *wanted,
                confirmed: *confirmed,
                timeout: *timeout,
            },
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
            Self::WrongType => StoreError::WrongType { op, key },
            Self::NotDurable {
                wanted,
                confirmed,
                timeout,
            } => StoreError::NotDurable {
                op,
                key,
                wanted: *wanted,
                confirmed: *confirmed,
                timeout: *timeout,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(combiner: &Combiner<u64>) -> usize {
        lock(&combiner.lanes).len()
    }

    #[test]
    fn an_idle_lane_is_kept_for_its_key_up_to_the_bound() {
        let combiner = Combiner::<u64>::default();
        let policy = RetryPolicy::default();
        // One key, one caller at a time: one lane, found again each time.
        for _ in 0..3 {
            drop(combiner.join("hot", policy));
        }
        assert_eq!(lanes(&combiner), 1);
        // Many keys: the idle lanes stay bounded.
        for n in 0..3 * IDLE_LANES {
            drop(combiner.join(&format!("key{n}"), policy));
        }
        assert!(lanes(&combiner) <= IDLE_LANES + 1, "{} lanes", lanes(&combiner));
        // Two policies of one key are two lanes.
        let other = RetryPolicy::new(3);
        let (a, b) = (combiner.join("two", policy), combiner.join("two", other));
        let same = Arc::ptr_eq(&a.as_ref().unwrap().lane, &b.as_ref().unwrap().lane);
        assert!(!same, "one lane per key and policy");
    }
}
