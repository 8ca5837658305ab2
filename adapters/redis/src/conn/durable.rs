//! Durability on demand: THE place a write waits for its replicas.
//!
//! A write made through [`Connections::writer`]'s handle is sent together
//! with `WAIT count timeout`, as one pipeline on the same connection (one
//! round trip; nothing of another caller comes between them on the wire,
//! so the `WAIT` covers this write). On a cluster the pipeline goes where
//! its write's key lives (redis-rs routes a pipeline by its first keyed
//! command; a lone `WAIT` it would send to every primary). A WATCH section
//! sends its `WAIT` after `EXEC` on its dedicated connection
//! ([`Connections::confirm_exec`]). Each `WAIT`'s answer is kept in the
//! call's [`Acks`]; [`Connections::confirm`] turns a shortfall into
//! [`StoreError::NotDurable`]. Reads use [`Connections::shared`] and never
//! wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::{Cmd, Pipeline, RedisResult, Value};
use statehouse_ports::{Durability, StoreError};

use super::{Connections, Shared};

/// The `WAIT` one write sends, and where its answers are kept.
#[derive(Clone)]
pub(crate) struct Wait {
    count: u32,
    timeout: Duration,
    acks: Acks,
}

/// The fewest replicas any `WAIT` of one call confirmed; nothing when the
/// store waits for none. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Acks(Option<Arc<AtomicU64>>);

/// No `WAIT` answered yet.
const NONE_YET: u64 = u64::MAX;

impl Acks {
    fn record(&self, confirmed: u64) {
        if let Some(fewest) = &self.0 {
            fewest.fetch_min(confirmed, Ordering::AcqRel);
        }
    }

    /// The fewest confirmations seen, if a `WAIT` answered.
    fn fewest(&self) -> Option<u64> {
        let fewest = self.0.as_ref()?.load(Ordering::Acquire);
        (fewest != NONE_YET).then_some(fewest)
    }
}

impl Wait {
    /// `WAIT count timeout` (milliseconds; at least 1: 0 would block for
    /// ever).
    fn command(&self) -> Cmd {
        let millis = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.count).arg(millis);
        cmd
    }

    /// Keeps the answer of a `WAIT` (the number of replicas that confirmed);
    /// a refused `WAIT` (e.g. sent to a replica) is the call's error.
    fn keep(&self, answer: Value) -> RedisResult<()> {
        match answer.extract_error()? {
            Value::Int(confirmed) => {
                self.acks.record(u64::try_from(confirmed).unwrap_or(0));
                Ok(())
            }
            other => Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "WAIT answered something else than a number of replicas",
                format!("{other:?}"),
            ))),
        }
    }

    /// `cmd` then `WAIT` as one pipeline on `inner`; `cmd`'s answer.
    pub(super) async fn command_then_wait(&self, inner: &mut Shared, cmd: &Cmd) -> RedisResult<Value> {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone()).add_command(self.command());
        let mut answers = together(inner, &pipe, 0, 2).await?.into_iter();
        let (Some(answer), Some(wait)) = (answers.next(), answers.next()) else {
            return Err(short_answer());
        };
        // A refused write was not applied: its error, not the WAIT's.
        let answer = answer.extract_error()?;
        self.keep(wait)?;
        Ok(answer)
    }

    /// `pipeline` (a transaction spelled out as `MULTI … EXEC`) then `WAIT`,
    /// as one pipeline on `inner`; the `count` answers from `offset`, as
    /// redis-rs asked for them. A plain pipeline on a cluster: each command
    /// with its own `WAIT`.
    pub(super) async fn pipeline_then_wait(
        &self,
        inner: &mut Shared,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let transaction = pipeline.is_transaction();
        if !transaction && matches!(inner, Shared::Cluster(_)) {
            // A plain pipeline on a cluster may span slots (a round of
            // scripts of many tenants): as `ClusterShared::pipeline` does,
            // each command on its own, here each with its `WAIT`, on the
            // node of its key; answers in order.
            let calls = pipeline.cmd_iter().map(|cmd| {
                let mut shared = inner.clone();
                async move { self.command_then_wait(&mut shared, cmd).await }
            });
            let values = futures_util::future::try_join_all(calls).await?;
            return Ok(values.into_iter().skip(offset).take(count).collect());
        }
        let mut pipe = redis::pipe();
        if transaction {
            pipe.cmd("MULTI");
        }
        for cmd in pipeline.cmd_iter() {
            pipe.add_command(cmd.clone());
        }
        if transaction {
            pipe.cmd("EXEC");
        }
        pipe.add_command(self.command());
        let mut answers = together(inner, &pipe, offset, count + 1).await?;
        let Some(wait) = answers.pop() else {
            return Err(short_answer());
        };
        if answers.len() != count {
            return Err(short_answer());
        }
        self.keep(wait)?;
        Ok(answers)
    }
}

fn short_answer() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "a write with its WAIT answered too few replies",
    ))
}

/// `pipeline` sent as one request: to one server, or where its first
/// keyed command lives on a cluster (not split per command).
async fn together(
    inner: &mut Shared,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    use redis::aio::ConnectionLike;
    match inner {
        Shared::Single(conn) => conn.req_packed_commands(pipeline, offset, count).await,
        Shared::Cluster(cluster) => cluster.pipeline_together(pipeline, offset, count).await,
        Shared::Node(cluster, addr) => cluster.pipeline_on_address(addr, pipeline, offset, count).await,
        Shared::Durable(inner, _) => Box::pin(together(inner, pipeline, offset, count)).await,
    }
}

impl Connections {
    /// THE handle of writes on the shared connection, with the [`Acks`] its
    /// `WAIT`s answer into: with a [`Durability`] asking for replicas,
    /// every command or pipeline sent through it is followed by `WAIT`;
    /// otherwise it is [`shared`](Self::shared). Run the write with
    /// [`run_write`](Self::run_write) (or check [`confirm`](Self::confirm)
    /// after it).
    pub(crate) fn writer(&self) -> (Shared, Acks) {
        let shared = self.shared();
        match self.durability.wait() {
            None => (shared, Acks::default()),
            Some((count, timeout)) => {
                let acks = Acks(Some(Arc::new(AtomicU64::new(NONE_YET))));
                let wait = Wait {
                    count,
                    timeout,
                    acks: acks.clone(),
                };
                (Shared::Durable(Box::new(shared), wait), acks)
            }
        }
    }

    /// [`run`](Self::run) for a write on a [`writer`](Self::writer)
    /// handle: its answer once the replicas confirmed it, else
    /// [`StoreError::NotDurable`].
    pub(crate) async fn run_write<T>(
        &self,
        acks: Acks,
        op: &'static str,
        key: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let value = self.run(op, key, call).await?;
        self.confirm(op, key, &acks)?;
        Ok(value)
    }

    /// Whether the writes answered into `acks` were confirmed by as many
    /// replicas as the durability asks for; a shortfall is
    /// [`StoreError::NotDurable`] (and counted).
    pub(crate) fn confirm(&self, op: &'static str, key: &str, acks: &Acks) -> Result<(), StoreError> {
        match (self.durability.wait(), acks.fewest()) {
            (Some((count, timeout)), Some(confirmed)) if confirmed < u64::from(count) => {
                Err(self.not_durable(op, key, count, confirmed, timeout))
            }
            _ => Ok(()),
        }
    }

    /// After a WATCH section's `EXEC` on its dedicated connection `conn`:
    /// if it `committed` and the durability asks for replicas, `WAIT` there
    /// (the connection is the section's alone, so the `WAIT` covers its
    /// `EXEC`); a shortfall is [`StoreError::NotDurable`].
    pub(crate) async fn confirm_exec(
        &self,
        op: &'static str,
        key: &str,
        conn: &mut impl redis::aio::ConnectionLike,
        committed: bool,
    ) -> Result<(), StoreError> {
        let Some((count, timeout)) = self.durability.wait().filter(|_| committed) else {
            return Ok(());
        };
        let wait = Wait {
            count,
            timeout,
            acks: Acks(Some(Arc::new(AtomicU64::new(NONE_YET)))),
        };
        let confirmed: u64 = self
            .run_dedicated(op, key, wait.command().query_async(conn))
            .await?;
        wait.acks.record(confirmed);
        if confirmed < u64::from(count) {
            return Err(self.not_durable(op, key, count, confirmed, timeout));
        }
        Ok(())
    }

    fn not_durable(
        &self,
        op: &'static str,
        key: &str,
        wanted: u32,
        confirmed: u64,
        timeout: Duration,
    ) -> StoreError {
        tracing::debug!(
            op,
            key,
            wanted,
            confirmed,
            "WAIT: fewer replicas confirmed the write than asked"
        );
        StoreError::NotDurable {
            op,
            key: key.to_owned(),
            wanted,
            confirmed: u32::try_from(confirmed).unwrap_or(u32::MAX),
            timeout,
        }
    }

    /// The same connections, writes acknowledged as `durability` says
    /// (checked against `config`'s response timeout).
    pub(crate) fn with_durability(
        &self,
        durability: Durability,
        config: &crate::RedisConfig,
    ) -> Result<Self, StoreError> {
        check(durability, self.response_timeout, &config.redacted_url())?;
        let mut conns = self.clone();
        conns.durability = durability;
        Ok(conns)
    }
}

/// The shortfall of an early step of a write made of several (a mark,
/// then the write): a step that failed `NotDurable` was applied, so the
/// call goes on with the next step, and the shortfall is reported once the
/// last step succeeded. Without it, a `NotDurable` mark would leave its
/// write undone.
#[must_use]
pub(crate) struct Shortfall(Option<StoreError>);

impl Shortfall {
    /// Nothing short yet.
    pub(crate) fn none() -> Self {
        Self(None)
    }

    /// Keeps `step`'s shortfall; any other error is the call's.
    pub(crate) fn keep<T>(&mut self, step: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
        match step {
            Ok(value) => Ok(Some(value)),
            Err(error @ StoreError::NotDurable { .. }) => {
                self.0.get_or_insert(error);
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// The call's outcome: the last step's error, else the kept shortfall,
    /// else its value.
    pub(crate) fn after<T>(self, last: Result<T, StoreError>) -> Result<T, StoreError> {
        let value = last?;
        match self.0 {
            Some(shortfall) => Err(shortfall),
            None => Ok(value),
        }
    }
}

/// Refuses a durability whose `WAIT` would not fit in a call's response
/// timeout with room for the write itself: at most half of it.
pub(super) fn check(durability: Durability, response_timeout: Duration, url: &str) -> Result<(), StoreError> {
    match durability.wait() {
        Some((_, timeout)) if timeout > response_timeout / 2 => Err(StoreError::invalid_input(
            "connect",
            url,
            format!(
                "the durability's WAIT timeout ({timeout:?}) must be at most half the response timeout \
                 ({response_timeout:?}): the write and its WAIT share one response bound"
            ),
        )),
        _ => Ok(()),
    }
}
