//! The bounded WATCH/MULTI/EXEC loop behind every atomic read-modify-write.
//!
//! One attempt is two round trips on a dedicated connection:
//! `WATCH k; <reads>` pipelined, then the caller decides, then
//! `MULTI; <writes>; EXEC`. EXEC answering nil means a watched key changed
//! since WATCH: that is not an error but a retry, after the policy's
//! jittered backoff. Only running out of attempts is `Conflict`.
//!
//! The connection is marked dirty before WATCH and clean only once EXEC or
//! UNWATCH answered (both drop all watches). If anything cuts the section
//! short, the pool sees a dirty connection and discards it.

use redis::{Cmd, FromRedisValue, Pipeline};
use statehouse_ports::{RetryPolicy, StoreError};

use crate::conn::{Connections, PooledTxn};

/// What to do after reading the watched keys.
pub(crate) enum Decision<T> {
    /// Run these writes atomically (MULTI/EXEC) if nothing changed, then
    /// return `T`. Add each write with `.ignore()`.
    Commit(Pipeline, T),
    /// Write nothing; return `T`.
    Done(T),
}

/// A successful optimistic section.
pub(crate) struct Committed<T> {
    pub(crate) value: T,
    pub(crate) attempts: u32,
}

/// Runs `WATCH watched; reads` and `decide` until a commit goes through, at
/// most `policy.max_attempts()` times. `decide` may run more than once; an
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
    R: FromRedisValue,
{
    let mut read = redis::pipe();
    read.cmd("WATCH").arg(watched).ignore();
    for cmd in reads {
        read.add_command(cmd.clone());
    }
    let mut fresh = false;
    for attempt in 1..=policy.max_attempts() {
        // Taken per attempt, so that a conflict's backoff sleeps without
        // holding a pooled connection others could use.
        let mut txn = conns.dedicated(op, key).await?;
        txn.clean = false;
        let current: R = match conns
            .run_dedicated(op, key, read.query_async(&mut txn.conn))
            .await
        {
            Ok(current) => current,
            // A pooled connection can have died while idle (server restart,
            // idle timeout). WATCH and the reads change nothing, so trying
            // once more on a fresh connection is safe; the dead one is
            // dirty and the pool drops it.
            Err(StoreError::Connection { .. }) if !fresh => {
                fresh = true;
                txn = conns.dedicated(op, key).await?;
                txn.clean = false;
                conns
                    .run_dedicated(op, key, read.query_async(&mut txn.conn))
                    .await?
            }
            Err(error) => return Err(error),
        };
        let decision = match decide(current) {
            Ok(decision) => decision,
            Err(error) => {
                unwatch(conns, op, key, &mut txn).await;
                return Err(error);
            }
        };
        match decision {
            Decision::Done(value) => {
                unwatch(conns, op, key, &mut txn).await;
                return Ok(Committed {
                    value,
                    attempts: attempt,
                });
            }
            Decision::Commit(mut writes, value) => {
                writes.atomic();
                let committed: Option<()> = conns
                    .run_dedicated(op, key, writes.query_async(&mut txn.conn))
                    .await?;
                // EXEC answered, committed or not: no watch is left.
                txn.clean = true;
                if committed.is_some() {
                    return Ok(Committed {
                        value,
                        attempts: attempt,
                    });
                }
                tracing::debug!(op, key, attempt, "watched key changed; retrying");
            }
        }
        drop(txn);
        if attempt < policy.max_attempts() {
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
    }
    Err(StoreError::Conflict {
        op,
        key: key.to_owned(),
        attempts: policy.max_attempts(),
    })
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
