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
//!
//! Writes may run statehouse's Lua scripts (`scripts.rs`) by `EVALSHA`: the
//! scripts are loaded in the first read pipeline of a connection, and a
//! `NOSCRIPT` from EXEC (a flushed script cache) loads them again and
//! repeats the attempt once, without counting it as a conflict.

use redis::{Cmd, FromRedisValue, Pipeline};
use statehouse_ports::{RetryPolicy, StoreError};

use crate::conn::{Connections, PooledTxn};
use crate::{error, scripts};

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
    let read = read_pipeline(None, watched, reads);
    let section = Section {
        read: &read,
        watched,
        reads,
    };
    let mut fresh = false;
    let mut reloaded = false;
    let mut attempt = 1;
    while attempt <= policy.max_attempts() {
        // Taken per attempt, so that a conflict's backoff sleeps without
        // holding a pooled connection others could use.
        let mut txn = conns.dedicated(op, key).await?;
        let current: R = match section.read(conns, op, key, &mut txn).await {
            Ok(current) => current,
            // A pooled connection can have died while idle (server restart,
            // idle timeout). WATCH and the reads change nothing, so trying
            // once more on a fresh connection is safe; the dead one is
            // dirty and the pool drops it.
            Err(StoreError::Connection { .. }) if !fresh => {
                fresh = true;
                txn = conns.dedicated(op, key).await?;
                section.read(conns, op, key, &mut txn).await?
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
                let exec = conns.run_raw(op, key, writes.query_async(&mut txn.conn)).await?;
                // EXEC answered, committed or not: no watch is left.
                txn.clean = true;
                match exec {
                    Ok(Some(())) => {
                        return Ok(Committed {
                            value,
                            attempts: attempt,
                        });
                    }
                    Ok(None) => tracing::debug!(op, key, attempt, "watched key changed; retrying"),
                    // The script cache was emptied under us: nothing ran.
                    // Load the scripts again and repeat this attempt once.
                    Err(error) if error::is_no_script(&error) && !reloaded => {
                        reloaded = true;
                        txn.scripts_loaded = false;
                        continue;
                    }
                    Err(error) => return Err(conns.map_dedicated(op, key, error)),
                }
            }
        }
        drop(txn);
        if attempt < policy.max_attempts() {
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
        attempt += 1;
    }
    Err(StoreError::Conflict {
        op,
        key: key.to_owned(),
        attempts: policy.max_attempts(),
    })
}

/// `[SCRIPT LOAD …;] WATCH watched; reads`, with only the reads' answers
/// kept.
fn read_pipeline(load: Option<Pipeline>, watched: &[&str], reads: &[Cmd]) -> Pipeline {
    let mut pipe = load.unwrap_or_else(redis::pipe);
    pipe.cmd("WATCH").arg(watched).ignore();
    for cmd in reads {
        pipe.add_command(cmd.clone());
    }
    pipe
}

/// What an attempt reads.
struct Section<'a> {
    read: &'a Pipeline,
    watched: &'a [&'a str],
    reads: &'a [Cmd],
}

impl Section<'_> {
    /// Runs the read pipeline on `txn`, marking it dirty first; the first
    /// time on a connection, with the scripts loaded in the same round trip.
    async fn read<R: FromRedisValue>(
        &self,
        conns: &Connections,
        op: &'static str,
        key: &str,
        txn: &mut PooledTxn,
    ) -> Result<R, StoreError> {
        txn.clean = false;
        let current = if txn.scripts_loaded {
            conns
                .run_dedicated(op, key, self.read.query_async(&mut txn.conn))
                .await?
        } else {
            let first = read_pipeline(Some(scripts::load_all()), self.watched, self.reads);
            conns
                .run_dedicated(op, key, first.query_async(&mut txn.conn))
                .await?
        };
        txn.scripts_loaded = true;
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
