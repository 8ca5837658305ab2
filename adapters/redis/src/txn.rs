//! The bounded WATCH/MULTI/EXEC section behind every atomic
//! read-modify-write of the Redis adapter.
//!
//! One attempt is two round trips on a dedicated connection:
//! `WATCH k; <reads>` pipelined, then the caller decides, then
//! `MULTI; <writes>; EXEC`. EXEC answering nil means a watched key changed
//! since WATCH: that is not an error but a retry, after the policy's
//! jittered backoff. Only running out of attempts is `Conflict`. The loop
//! itself (counting, backoff, giving up) is the one every read-modify-write
//! shares, `RetryPolicy::run` (ports); this file is the Redis attempt.
//!
//! The connection is marked dirty before WATCH and clean only once EXEC or
//! UNWATCH answered (both drop all watches). If anything cuts the section
//! short, the pool sees a dirty connection and discards it.
//!
//! Each attempt, from taking a pooled connection to EXEC, is bounded by one
//! response timeout, so an update that gets no answer fails like any other
//! call; only conflicts and repeats (answered EXECs) start a new attempt,
//! with a deadline of its own.
//!
//! On a Redis Cluster the section runs on a dedicated connection to the
//! primary owning the slot of its watched keys (which must share one slot:
//! an error naming them otherwise). A node that redirects the section
//! before EXEC answered (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, an
//! `EXECABORT` caused by one) or drops its connection wrote nothing: the
//! section runs again from WATCH where the redirect points, the slot map
//! refreshed (`Connections::recover`), within the attempt's deadline and
//! without counting as a conflict. WATCH and EXEC always run on one
//! connection, so EXEC never runs on a node where WATCH was not set.
//!
//! Writes may run statehouse's Lua scripts (`scripts/`) by `EVALSHA`: the
//! scripts are loaded in the first read pipeline of a connection, and a
//! `NOSCRIPT` from EXEC (a flushed script cache: nothing ran) loads them
//! again and repeats the attempt once, without counting it as a conflict.

use std::future::Future;
use std::time::Duration;

use redis::{Cmd, FromRedisValue, Pipeline};
use statehouse_ports::{
    Attempt, Backoff, Combiner, FieldStep, JsonFieldFn, JsonValue, Landing, Optimistic, Pass, RetryPolicy,
    Role, StoreError, field_result, field_step,
};

use crate::conn::{Connections, PooledTxn, Recovery, SectionFailure, Target};
use crate::{error, scripts};

/// The pauses between repeats of a section a cluster node turned away
/// (`TRYAGAIN`, `CLUSTERDOWN`, a failover).
const MIN_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// What to do after reading the watched keys.
pub(crate) enum Decision<T> {
    /// Run these writes atomically (MULTI/EXEC) if nothing changed, then
    /// return `T`. Add each write with `.ignore()`.
    Commit(Pipeline, T),
    /// Write nothing; return `T`.
    Done(T),
}

/// What decides after the reads of a section: a plain closure
/// ([`optimistic`]), or a combined round that hands the value through every
/// waiting caller's closure before deciding (`Combiner`, ports).
pub(crate) trait Decide<R, T>: Send {
    /// The decision on what the reads answered.
    fn decide(&mut self, current: R) -> impl Future<Output = Result<Decision<T>, StoreError>> + Send;

    /// Sends the writes of attempt number `attempt` (EXEC, and the WAIT
    /// after it) and waits for their answer: here, in the caller's task
    /// ([`Write::run`]); a combined round runs them in a task of its own
    /// (`Pass::write`, [`Write::detached`]), so that cancelling its leader
    /// does not cut them short.
    fn write(&mut self, attempt: u32, write: Write<'_>) -> impl Future<Output = Exec> + Send {
        let _ = attempt;
        write.run()
    }

    /// The writes did not run (a watched key changed, a redirect, a lost
    /// script): the next decision starts over.
    fn not_written(&mut self) {}
}

/// The writes of an attempt, ready to go out on the section's connection.
pub(crate) struct Write<'a> {
    conns: &'a Connections,
    op: &'static str,
    key: &'a str,
    txn: PooledTxn,
    writes: Pipeline,
}

impl Write<'_> {
    /// EXEC (and the durability's WAIT), in the caller's task.
    pub(crate) async fn run(self) -> Exec {
        exec(self.conns, self.op, self.key, self.txn, self.writes).await
    }

    /// The same, owning what it needs, for a task of its own.
    pub(crate) fn detached(self) -> impl Future<Output = Exec> + Send + 'static {
        let (conns, op, key) = (self.conns.clone(), self.op, self.key.to_owned());
        let (txn, writes) = (self.txn, self.writes);
        async move { exec(&conns, op, &key, txn, writes).await }
    }
}

/// What EXEC (and the WAIT after it) came to.
pub(crate) enum Exec {
    /// The writes ran; then the durability's check.
    Committed(Result<(), StoreError>),
    /// A watched key changed: nothing ran.
    Changed,
    /// `NOSCRIPT` (a flushed script cache): nothing ran; the connection
    /// loads the scripts again on its next read.
    NoScript,
    /// Aborted by a redirect (`EXECABORT`): nothing ran.
    Redirected(redis::RedisError),
    /// No answer, or an error: the outcome is unknown.
    Failed(StoreError),
}

impl Exec {
    /// How the writes landed, for a combined round (`Pass::write`).
    pub(crate) fn landing(&self) -> Landing<'_> {
        match self {
            Self::Committed(Ok(())) => Landing::Committed,
            Self::Committed(Err(error)) | Self::Failed(error) => Landing::Failed(error),
            Self::Changed | Self::NoScript | Self::Redirected(_) => Landing::NotWritten,
        }
    }
}

/// Sends `writes` (MULTI … EXEC) on the section's connection `txn`, then,
/// if they ran, waits for the replicas the durability asks for.
async fn exec(
    conns: &Connections,
    op: &'static str,
    key: &str,
    mut txn: PooledTxn,
    writes: Pipeline,
) -> Exec {
    let exec: redis::RedisResult<Option<()>> =
        match conns.run_raw(op, key, writes.query_async(&mut txn.conn)).await {
            Ok(exec) => exec,
            // Cut short: the connection stays dirty and the pool drops it.
            Err(error) => return Exec::Failed(error),
        };
    // EXEC answered, committed or not: no watch is left.
    txn.clean = true;
    match exec {
        Ok(Some(())) => Exec::Committed(conns.confirm_exec(op, key, &mut txn.conn, true).await),
        Ok(None) => Exec::Changed,
        Err(error) if error::is_no_script(&error) => {
            txn.scripts_loaded = false;
            Exec::NoScript
        }
        // Not a dropped connection: EXEC's outcome would be unknown.
        Err(error) if error::redirect_of(&error).is_some() => Exec::Redirected(error),
        Err(error) => Exec::Failed(conns.map_dedicated(op, key, error)),
    }
}

/// A plain closure as a [`Decide`].
struct Now<'a, R, T>(&'a mut (dyn FnMut(R) -> Result<Decision<T>, StoreError> + Send));

impl<R: Send, T: Send> Decide<R, T> for Now<'_, R, T> {
    async fn decide(&mut self, current: R) -> Result<Decision<T>, StoreError> {
        (self.0)(current)
    }
}

/// A combined round's decision (`Combiner`, ports): the value read handed
/// through every member's closure ([`Pass::apply`]), then the final value
/// written once by `writes` (nothing if no closure changed it); the write
/// of a batch with other members runs in a task of its own
/// ([`Pass::write`]), so that cancelling the leader changes nobody else's
/// outcome.
struct Round<'p, 't, 'c, V, A, F, W> {
    pass: &'p mut Pass<'t, 'c, V>,
    apply: &'p mut A,
    /// The value of what the reads answered.
    value_of: F,
    writes: W,
}

impl<R, V, A, F, W> Decide<(R,), ()> for Round<'_, '_, '_, V, A, F, W>
where
    R: Send,
    V: Send + 'static,
    A: FnMut(&V) -> Option<V> + Send,
    F: FnMut(R) -> V + Send,
    W: FnMut(V) -> Pipeline + Send,
{
    async fn decide(&mut self, (current,): (R,)) -> Result<Decision<()>, StoreError> {
        let current = (self.value_of)(current);
        let (value, changed) = self.pass.apply(current, &mut *self.apply).await;
        if !changed {
            return Ok(Decision::Done(()));
        }
        Ok(Decision::Commit((self.writes)(value), ()))
    }

    async fn write(&mut self, attempt: u32, write: Write<'_>) -> Exec {
        if self.pass.size() > 1 {
            // Others' outcomes hang on it: a task of its own.
            self.pass.write(attempt, write.detached(), Exec::landing).await
        } else {
            self.pass.writing();
            write.run().await
        }
    }

    fn not_written(&mut self) {
        self.pass.conflicted();
    }
}

/// The WATCH section of a combined round, led by this caller (`Combiner`):
/// `WATCH watched; reads` once (the reads answer the value `V`), every
/// member's closure through `pass` and `apply`, then `writes` of the final
/// value once; a conflict reruns the whole batch. Returns the attempt that
/// committed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn combined<V, A, W>(
    conns: &Connections,
    op: &'static str,
    key: &str,
    watched: &[&str],
    reads: &[Cmd],
    policy: RetryPolicy,
    pass: &mut Pass<'_, '_, V>,
    apply: &mut A,
    writes: W,
) -> Result<u32, StoreError>
where
    (V,): FromRedisValue,
    V: Send + 'static,
    A: FnMut(&V) -> Option<V> + Send,
    W: FnMut(V) -> Pipeline + Send,
{
    let section = (op, key, watched, reads);
    combined_as(
        conns,
        section,
        policy,
        pass,
        apply,
        std::convert::identity,
        writes,
    )
    .await
}

/// [`combined`] with reads that answer `R`, made the round's value by
/// `value_of` (a synced model's hash or string, `HeldModel`).
pub(crate) async fn combined_as<R, V, A, W>(
    conns: &Connections,
    (op, key, watched, reads): (&'static str, &str, &[&str], &[Cmd]),
    policy: RetryPolicy,
    pass: &mut Pass<'_, '_, V>,
    apply: &mut A,
    value_of: impl FnMut(R) -> V + Send,
    writes: W,
) -> Result<u32, StoreError>
where
    (R,): FromRedisValue,
    R: Send,
    V: Send + 'static,
    A: FnMut(&V) -> Option<V> + Send,
    W: FnMut(V) -> Pipeline + Send,
{
    let mut round = Round {
        pass,
        apply,
        value_of,
        writes,
    };
    let committed = optimistic_with(conns, op, key, watched, reads, policy, &mut round).await?;
    Ok(committed.attempts)
}

/// A combined update of one JSON field of the hash `rkey` (a subject's
/// property, a tenant record's field), in the lane `lane` of `combiner`:
/// one `WATCH rkey; HGET rkey field` per round, each caller's closure `f`
/// on the value as `decode` reads it (its errors its own), then `writes`
/// of the final value (as `encode` made it) once. Answers `(old, new,
/// attempts)`; `None` when combining is off (the caller runs its own round).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) async fn combined_field(
    conns: &Connections,
    combiner: &Combiner<Option<Vec<u8>>>,
    op: &'static str,
    (lane, key): (&str, &str),
    (rkey, field): (&str, &str),
    policy: RetryPolicy,
    f: &mut JsonFieldFn<'_>,
    decode: impl Fn(&[u8]) -> Result<JsonValue, StoreError> + Send,
    encode: impl Fn(&JsonValue) -> Vec<u8> + Send,
    writes: impl FnMut(Option<Vec<u8>>) -> Pipeline + Send,
) -> Option<Result<(Option<JsonValue>, JsonValue, u32), StoreError>> {
    let mut ticket = combiner.join(lane, policy)?;
    let mut own: FieldStep = None;
    let outcome = {
        let mut apply = field_step((op, key), f, decode, encode, &mut own);
        match ticket.wait(op, key, &mut apply).await {
            Role::Finished(outcome) => outcome,
            Role::Lead(mut pass) => {
                let mut hget = redis::cmd("HGET");
                hget.arg(rkey).arg(field);
                let outcome = combined(
                    conns,
                    op,
                    key,
                    &[rkey],
                    &[hget],
                    policy,
                    &mut pass,
                    &mut apply,
                    writes,
                )
                .await;
                pass.finish(&outcome);
                outcome
            }
        }
    };
    Some(field_result(op, key, own, outcome))
}

/// A successful optimistic section.
pub(crate) struct Committed<T> {
    pub(crate) value: T,
    pub(crate) attempts: u32,
}

/// Runs `WATCH watched; reads` and `decide` until a commit goes through,
/// under `policy` (THE loop, [`RetryPolicy::run`]: a changed watched key is
/// a conflict, a `NOSCRIPT` a repeat). `decide` may run more than once; an
/// `Err` from it unwatches and is returned as is.
pub(crate) async fn optimistic<R, T>(
    conns: &Connections,
    op: &'static str,
    key: &str,
    watched: &[&str],
    reads: &[Cmd],
    policy: RetryPolicy,
    decide: &mut (dyn FnMut(R) -> Result<Decision<T>, StoreError> + Send),
) -> Result<Committed<T>, StoreError>
where
    R: FromRedisValue + Send,
    T: Send,
{
    optimistic_with(conns, op, key, watched, reads, policy, &mut Now(decide)).await
}

/// [`optimistic`] with any [`Decide`]: an asynchronous decision (a
/// combined round).
pub(crate) async fn optimistic_with<R, T, D>(
    conns: &Connections,
    op: &'static str,
    key: &str,
    watched: &[&str],
    reads: &[Cmd],
    policy: RetryPolicy,
    decide: &mut D,
) -> Result<Committed<T>, StoreError>
where
    R: FromRedisValue + Send,
    T: Send,
    D: Decide<R, T>,
{
    let home = conns.route(op, key, watched)?;
    let read = read_pipeline(None, watched, reads, false);
    let mut watch = Watch {
        conns,
        op,
        key,
        section: Section {
            read: &read,
            watched,
            reads,
            home,
        },
        decide,
        fresh: false,
        reloaded: false,
        decides: std::marker::PhantomData,
    };
    let (value, attempts) = policy.run(op, key, &mut watch).await?;
    Ok(Committed { value, attempts })
}

/// The attempts of one WATCH section, for [`RetryPolicy::run`].
struct Watch<'a, R, T, D> {
    conns: &'a Connections,
    op: &'static str,
    key: &'a str,
    section: Section<'a>,
    decide: &'a mut D,
    /// A dead pooled connection was replaced already (once per update).
    fresh: bool,
    /// The scripts were reloaded after a `NOSCRIPT` already (once per update).
    reloaded: bool,
    decides: std::marker::PhantomData<fn(R) -> T>,
}

impl<R: FromRedisValue + Send, T: Send, D: Decide<R, T>> Optimistic for Watch<'_, R, T, D> {
    type Output = T;

    async fn attempt(&mut self, attempt: u32) -> Result<Attempt<T>, StoreError> {
        let (conns, op, key) = (self.conns, self.op, self.key);
        // One attempt (taking a connection, WATCH and reads, the decision,
        // the writes) gets one response timeout in all. Each step has its
        // own bound too, but they add up: waiting for the pool to open a
        // connection alone is bounded by connect + response timeout, so
        // without this a dead or frozen server kept an update waiting well
        // past the response timeout. If the deadline cuts the attempt short,
        // its connection is dirty and the pool discards it. Only a conflict
        // or a repeat (answered EXECs) starts another attempt, with a
        // deadline of its own.
        let deadline = tokio::time::Instant::now() + conns.response_timeout;
        let once = attempt_once(
            conns,
            op,
            key,
            &self.section,
            &mut self.fresh,
            attempt,
            &mut *self.decide,
        );
        let once = std::pin::pin!(once);
        let Ok(outcome) = tokio::time::timeout_at(deadline, once).await else {
            return Err(StoreError::Timeout {
                op,
                key: key.to_owned(),
                after: conns.response_timeout,
            });
        };
        match outcome? {
            Outcome::Executed(Some(value)) => Ok(Attempt::Done(value)),
            Outcome::Executed(None) => {
                tracing::debug!(op, key, attempt, "watched key changed; retrying");
                Ok(Attempt::Conflict)
            }
            // The scripts were loaded again: repeat this attempt, once.
            Outcome::NoScript if !self.reloaded => {
                self.reloaded = true;
                Ok(Attempt::Repeat)
            }
            Outcome::NoScript => Err(StoreError::Operation {
                op,
                key: key.to_owned(),
                source: "the server lost statehouse's scripts twice in one update (NOSCRIPT)".into(),
            }),
            Outcome::Unwatch(mut txn, result) => {
                // Best effort, in what is left of the attempt's time: the
                // result stands either way (nothing was written), and a
                // connection cut short stays dirty, so the pool discards it.
                let _ = tokio::time::timeout_at(deadline, unwatch(conns, op, key, &mut txn)).await;
                result.map(Attempt::Done)
            }
        }
    }
}

/// How an attempt ended, short of an error.
enum Outcome<T> {
    /// EXEC answered: committed (`Some`), or a watched key changed (`None`).
    Executed(Option<T>),
    /// Nothing to write, or the caller's decision failed: the connection
    /// still watches and needs UNWATCH; then this is the result.
    Unwatch(PooledTxn, Result<T, StoreError>),
    /// EXEC answered `NOSCRIPT`: nothing ran, and the connection will load
    /// the scripts again on its next read.
    NoScript,
}

/// One attempt, up to EXEC or the decision not to write. A section turned
/// away before EXEC wrote nothing: it runs again where
/// [`Connections::recover`] says (the attempt's deadline bounds the
/// repeats).
async fn attempt_once<R, T, D>(
    conns: &Connections,
    op: &'static str,
    key: &str,
    section: &Section<'_>,
    fresh: &mut bool,
    attempt: u32,
    decide: &mut D,
) -> Result<Outcome<T>, StoreError>
where
    R: FromRedisValue + Send,
    T: Send,
    D: Decide<R, T>,
{
    let mut target = Target::Slot(section.home_slot());
    let mut pause = Backoff::new(MIN_PAUSE, MAX_PAUSE);
    loop {
        // Taken per attempt, so that a conflict's backoff sleeps without
        // holding a pooled connection others could use.
        let mut txn = match conns.dedicated(op, key, &target).await {
            Ok(txn) => txn,
            Err(error) => match conns
                .recover(
                    SectionFailure::Store(&error),
                    &mut target,
                    section.home_slot(),
                    fresh,
                    &mut pause,
                )
                .await
            {
                Recovery::Repeat => continue,
                Recovery::Fail => return Err(error),
            },
        };
        let asking = target.asking();
        let current: R = match section.read(conns, op, key, &mut txn, asking).await? {
            Ok(current) => current,
            // A pooled connection can have died while idle (server restart,
            // idle timeout), a cluster node can have handed the slot on.
            // WATCH and the reads change nothing, so running them again is
            // safe; a dead connection is dirty and the pool drops it.
            Err(error) => match conns
                .recover(
                    SectionFailure::Redis(&error),
                    &mut target,
                    section.home_slot(),
                    fresh,
                    &mut pause,
                )
                .await
            {
                Recovery::Repeat => continue,
                Recovery::Fail => return Err(conns.map_dedicated(op, key, error)),
            },
        };
        let (mut writes, value) = match decide.decide(current).await {
            Err(error) => return Ok(Outcome::Unwatch(txn, Err(error))),
            Ok(Decision::Done(value)) => return Ok(Outcome::Unwatch(txn, Ok(value))),
            Ok(Decision::Commit(writes, value)) => (writes, value),
        };
        writes.atomic();
        if asking {
            // The connection is this section's alone: the flag reaches
            // MULTI, which keeps it until EXEC.
            if let Err(error) = conns
                .run_raw(op, key, redis::cmd("ASKING").exec_async(&mut txn.conn))
                .await?
            {
                return Err(conns.map_dedicated(op, key, error));
            }
        }
        let write = Write {
            conns,
            op,
            key,
            txn,
            writes,
        };
        match decide.write(attempt, write).await {
            Exec::Committed(confirmed) => {
                confirmed?;
                return Ok(Outcome::Executed(Some(value)));
            }
            Exec::Changed => {
                decide.not_written();
                return Ok(Outcome::Executed(None));
            }
            Exec::NoScript => {
                decide.not_written();
                return Ok(Outcome::NoScript);
            }
            // Aborted by a redirect (EXECABORT): nothing ran.
            Exec::Redirected(error) => {
                decide.not_written();
                match conns
                    .recover(
                        SectionFailure::Redis(&error),
                        &mut target,
                        section.home_slot(),
                        fresh,
                        &mut pause,
                    )
                    .await
                {
                    Recovery::Repeat => continue,
                    Recovery::Fail => return Err(conns.map_dedicated(op, key, error)),
                }
            }
            Exec::Failed(error) => return Err(error),
        }
    }
}

/// `[SCRIPT LOAD …;] WATCH watched; reads`, with only the reads' answers
/// kept; with `asking`, each keyed command preceded by `ASKING` (a node
/// importing the slot serves only commands asked so).
fn read_pipeline(load: Option<Pipeline>, watched: &[&str], reads: &[Cmd], asking: bool) -> Pipeline {
    let mut pipe = load.unwrap_or_else(redis::pipe);
    if asking {
        pipe.cmd("ASKING").ignore();
    }
    pipe.cmd("WATCH").arg(watched).ignore();
    for cmd in reads {
        if asking {
            pipe.cmd("ASKING").ignore();
        }
        pipe.add_command(cmd.clone());
    }
    pipe
}

/// What an attempt reads.
struct Section<'a> {
    read: &'a Pipeline,
    watched: &'a [&'a str],
    reads: &'a [Cmd],
    /// Where the section runs unless redirected.
    home: Target,
}

impl Section<'_> {
    fn home_slot(&self) -> Option<u16> {
        match self.home {
            Target::Slot(slot) => slot,
            Target::Node { .. } => None,
        }
    }

    /// Runs the read pipeline on `txn`, marking it dirty first; the first
    /// time on a connection, with the scripts loaded in the same round trip.
    /// Only the timeout is mapped: the caller decides on a redis-rs error.
    async fn read<R: FromRedisValue>(
        &self,
        conns: &Connections,
        op: &'static str,
        key: &str,
        txn: &mut PooledTxn,
        asking: bool,
    ) -> Result<redis::RedisResult<R>, StoreError> {
        txn.clean = false;
        let load = (!txn.scripts_loaded).then(scripts::load_all);
        let current = if load.is_none() && !asking {
            conns
                .run_raw(op, key, self.read.query_async(&mut txn.conn))
                .await?
        } else {
            let pipe = read_pipeline(load, self.watched, self.reads, asking);
            conns.run_raw(op, key, pipe.query_async(&mut txn.conn)).await?
        };
        if current.is_ok() {
            txn.scripts_loaded = true;
        }
        Ok(current)
    }
}

/// Drops the watches. Best effort: nothing was written either way, so a
/// failure here only leaves the connection dirty, and the pool discards it.
async fn unwatch(conns: &Connections, op: &'static str, key: &str, txn: &mut PooledTxn) {
    match conns
        .run_dedicated(op, key, redis::cmd("UNWATCH").exec_async(&mut txn.conn))
        .await
    {
        Ok(()) => txn.clean = true,
        Err(error) => tracing::debug!(op, key, %error, "UNWATCH failed; discarding the connection"),
    }
}
