//! Typed documents (workloads 1–4): set+get from one task and from 64, `MGET` of 1,000 keys, and
//! the contended update against the naive WATCH loop.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use statehouse::{Documents, Update};

use crate::Res;
use crate::cluster_raw::RawCon;
use crate::engine::{Bench, Interleaved, Sample, Side, Step, interleaved};

/// Tasks of the concurrent set/get workload.
pub(crate) const CONCURRENT_TASKS: usize = 64;
/// Keys each set/get task cycles through.
pub(crate) const KEYS_PER_TASK: usize = 32;
/// Keys per MGET.
pub(crate) const MGET_KEYS: usize = 1_000;
/// Tasks of the contended update workload.
pub(crate) const UPDATE_TASKS: usize = 16;
/// The serialized size the sample document is padded to.
const DOC_BYTES: usize = 1_024;
/// The key of the contended counter.
const COUNTER_KEY: &str = "bench:counter";

/// A typical application document, padded to about 1 KiB of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Doc {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) active: bool,
    pub(crate) score: f64,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) tags: Vec<String>,
    pub(crate) address: Address,
    pub(crate) bio: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Address {
    street: String,
    city: String,
    postcode: String,
    country: String,
}

/// The contended counter.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

pub(crate) fn sample_doc() -> Res<Doc> {
    let mut doc = Doc {
        id: 100_000,
        name: "Ada Lovelace".to_owned(),
        email: "ada.lovelace@example.com".to_owned(),
        active: true,
        score: 98.25,
        created_at: DateTime::from_timestamp(1_700_000_000, 0).ok_or("bad timestamp")?,
        tags: ["admin", "beta", "eu-west", "newsletter", "mathematics", "engines"]
            .map(str::to_owned)
            .to_vec(),
        address: Address {
            street: "12 St James's Square".to_owned(),
            city: "London".to_owned(),
            postcode: "SW1Y 4JH".to_owned(),
            country: "GB".to_owned(),
        },
        bio: String::new(),
    };
    let base = serde_json::to_vec(&doc)?.len();
    let words = "analytical engine notes on the bernoulli numbers and a general purpose computer ";
    doc.bio = words.repeat(DOC_BYTES / words.len() + 1);
    doc.bio.truncate(DOC_BYTES.saturating_sub(base));
    Ok(doc)
}

async fn pairs_statehouse(docs: Documents, keys: Arc<[String]>, mut doc: Doc, pairs: u64) -> Res<u64> {
    for i in 0..pairs {
        pair_statehouse(&docs, &keys, &mut doc, i).await?;
    }
    Ok(pairs)
}

/// Set+get pair `i` (of the key `i` picks from `keys`), checked.
async fn pair_statehouse(docs: &Documents, keys: &[String], doc: &mut Doc, i: u64) -> Res<()> {
    let key = &keys[i as usize % keys.len()];
    doc.id = i;
    docs.set(key, &*doc).await?;
    let got: Doc = docs.get(key).await?.ok_or("GET found nothing")?;
    check_id(&got, i)
}

async fn pairs_raw(mut con: RawCon, keys: Arc<[String]>, mut doc: Doc, pairs: u64) -> Res<u64> {
    for i in 0..pairs {
        pair_raw(&mut con, &keys, &mut doc, i).await?;
    }
    Ok(pairs)
}

async fn pair_raw(con: &mut RawCon, keys: &[String], doc: &mut Doc, i: u64) -> Res<()> {
    let key = &keys[i as usize % keys.len()];
    doc.id = i;
    let bytes = serde_json::to_vec(&*doc)?;
    redis::cmd("SET").arg(key).arg(bytes).exec_async(con).await?;
    let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(con).await?;
    let got: Doc = serde_json::from_slice(&bytes.ok_or("GET found nothing")?)?;
    check_id(&got, i)
}

/// Set+get pairs of one task, for [`interleaved`].
struct PairStep {
    docs: Documents,
    keys: Arc<[String]>,
    doc: Doc,
    done: u64,
}

impl Step for PairStep {
    async fn step(&mut self) -> Res<()> {
        pair_statehouse(&self.docs, &self.keys, &mut self.doc, self.done).await?;
        self.done += 1;
        Ok(())
    }
}

/// The same pairs raw, for [`interleaved`].
struct RawPairStep {
    con: RawCon,
    keys: Arc<[String]>,
    doc: Doc,
    done: u64,
}

impl Step for RawPairStep {
    async fn step(&mut self) -> Res<()> {
        pair_raw(&mut self.con, &self.keys, &mut self.doc, self.done).await?;
        self.done += 1;
        Ok(())
    }
}

async fn mget_statehouse(docs: Documents, keys: Arc<[String]>, calls: u64) -> Res<u64> {
    for _ in 0..calls {
        mget_once_statehouse(&docs, &keys).await?;
    }
    Ok(calls)
}

/// One MGET of `keys` through the facade, every value checked.
async fn mget_once_statehouse(docs: &Documents, keys: &[String]) -> Res<()> {
    let fetched = docs.mget::<Doc>(keys).await?;
    if fetched.len() != keys.len() {
        return Err("MGET answered the wrong number of values".into());
    }
    for (i, doc) in fetched.into_iter().enumerate() {
        check_id(&doc?.ok_or("MGET found nothing")?, i as u64)?;
    }
    Ok(())
}

async fn mget_raw(mut con: RawCon, keys: Arc<[String]>, calls: u64) -> Res<u64> {
    for _ in 0..calls {
        mget_once_raw(&mut con, &keys).await?;
    }
    Ok(calls)
}

/// One MGET of `keys` raw, every value decoded and checked.
async fn mget_once_raw(con: &mut RawCon, keys: &[String]) -> Res<()> {
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(keys).query_async(con).await?;
    // Consuming `values` frees each value right after it is decoded, as statehouse does.
    let fetched = values
        .into_iter()
        .map(|value| match value {
            Some(bytes) => serde_json::from_slice::<Doc>(&bytes).map(Some),
            None => Ok(None),
        })
        .collect::<Vec<_>>();
    if fetched.len() != keys.len() {
        return Err("MGET answered the wrong number of values".into());
    }
    for (i, doc) in fetched.into_iter().enumerate() {
        check_id(&doc?.ok_or("MGET found nothing")?, i as u64)?;
    }
    Ok(())
}

/// MGETs of the MGET keys, for [`interleaved`].
struct MgetStep {
    docs: Documents,
    keys: Arc<[String]>,
}

impl Step for MgetStep {
    async fn step(&mut self) -> Res<()> {
        mget_once_statehouse(&self.docs, &self.keys).await
    }
}

/// The same MGETs raw, for [`interleaved`].
struct RawMgetStep {
    con: RawCon,
    keys: Arc<[String]>,
}

impl Step for RawMgetStep {
    async fn step(&mut self) -> Res<()> {
        mget_once_raw(&mut self.con, &self.keys).await
    }
}

fn check_id(doc: &Doc, expected: u64) -> Res<()> {
    if doc.id == expected {
        Ok(())
    } else {
        Err(format!("read back document {} where {expected} was expected", doc.id).into())
    }
}

/// statehouse's atomic update through the facade; returns how often the closure ran.
async fn increment_statehouse(docs: Documents, increments: u64) -> Res<u64> {
    let mut runs = 0u64;
    for _ in 0..increments {
        let stored = docs
            .update(COUNTER_KEY, |old: Option<Counter>| {
                runs += 1;
                Update::Set(Counter {
                    count: old.map_or(0, |c| c.count) + 1,
                })
            })
            .await?;
        stored.ok_or("the update stored nothing")?;
    }
    Ok(runs)
}

/// The naive optimistic loop as commonly written with redis-rs: WATCH; GET; MULTI/SET/EXEC; on an
/// aborted EXEC, start over at once (no backoff). Returns how many attempts it made.
async fn increment_naive(mut con: MultiplexedConnection, increments: u64) -> Res<u64> {
    let mut runs = 0u64;
    for _ in 0..increments {
        loop {
            runs += 1;
            redis::cmd("WATCH").arg(COUNTER_KEY).exec_async(&mut con).await?;
            let old: Option<Vec<u8>> = redis::cmd("GET").arg(COUNTER_KEY).query_async(&mut con).await?;
            let count = match old {
                Some(bytes) => serde_json::from_slice::<Counter>(&bytes)?.count,
                None => 0,
            };
            let new = serde_json::to_vec(&Counter { count: count + 1 })?;
            let committed: Option<()> = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(COUNTER_KEY)
                .arg(new)
                .ignore()
                .query_async(&mut con)
                .await?;
            if committed.is_some() {
                break;
            }
        }
    }
    Ok(runs)
}

impl Bench {
    /// `tasks` tasks each doing `pairs` typed SET + GET pairs on their own keys.
    pub(crate) async fn set_get(&self, side: Side, tasks: usize, pairs: u64) -> Res<Sample> {
        let timed = self
            .timed(tasks, |task| {
                let keys = Arc::clone(&self.task_keys[task]);
                let doc = self.doc.clone();
                let docs = self.docs.clone();
                let raw = self.raw.clone();
                async move {
                    match side {
                        Side::Statehouse => pairs_statehouse(docs, keys, doc, pairs).await,
                        Side::Raw => pairs_raw(raw, keys, doc, pairs).await,
                    }
                }
            })
            .await?;
        Ok(Sample::new(&timed, 2 * pairs * tasks as u64, 0))
    }

    /// Set+get pairs of one task (the first task's keys), `pairs` of each side in turns in one
    /// task ([`interleaved`]).
    pub(crate) async fn set_get_in_turns(&self, pairs: u64, turn: u64) -> Res<Interleaved> {
        let statehouse = PairStep {
            docs: self.docs.clone(),
            keys: Arc::clone(&self.task_keys[0]),
            doc: self.doc.clone(),
            done: 0,
        };
        let raw = RawPairStep {
            con: self.raw.clone(),
            keys: Arc::clone(&self.task_keys[0]),
            doc: self.doc.clone(),
            done: 0,
        };
        let row = Some(("1. documents: set+get, 1 task (op = command)", 2));
        interleaved(row, statehouse, raw, pairs, turn).await
    }

    /// `calls` MGETs of each side in turns in one task ([`interleaved`]).
    pub(crate) async fn mget_in_turns(&self, calls: u64, turn: u64) -> Res<Interleaved> {
        let statehouse = MgetStep {
            docs: self.docs.clone(),
            keys: Arc::clone(&self.mget_keys),
        };
        let raw = RawMgetStep {
            con: self.raw.clone(),
            keys: Arc::clone(&self.mget_keys),
        };
        let row = Some(("3. documents: mget of 1000 (op = key)", MGET_KEYS as u64));
        interleaved(row, statehouse, raw, calls, turn).await
    }

    /// Writes the documents the MGET workload reads (document `i` has id `i`).
    pub(crate) async fn populate_mget(&self) -> Res<()> {
        let mut con = self.raw.clone();
        let mut pipe = redis::pipe();
        let mut doc = self.doc.clone();
        for (i, key) in self.mget_keys.iter().enumerate() {
            doc.id = i as u64;
            pipe.cmd("SET").arg(key).arg(serde_json::to_vec(&doc)?).ignore();
        }
        pipe.exec_async(&mut con).await?;
        Ok(())
    }

    /// One task doing `calls` MGETs of all the MGET keys, decoding every value.
    pub(crate) async fn mget(&self, side: Side, calls: u64) -> Res<Sample> {
        let keys = Arc::clone(&self.mget_keys);
        let docs = self.docs.clone();
        let raw = self.raw.clone();
        let timed = self
            .timed(1, move |_| {
                let keys = Arc::clone(&keys);
                let docs = docs.clone();
                let raw = raw.clone();
                async move {
                    match side {
                        Side::Statehouse => mget_statehouse(docs, keys, calls).await,
                        Side::Raw => mget_raw(raw, keys, calls).await,
                    }
                }
            })
            .await?;
        Ok(Sample::new(&timed, calls * MGET_KEYS as u64, 0))
    }

    /// `tasks` tasks each incrementing the one counter `increments` times; checks the final count.
    pub(crate) async fn update(&self, side: Side, tasks: usize, increments: u64) -> Res<Sample> {
        let mut con = self.raw.clone();
        redis::cmd("SET")
            .arg(COUNTER_KEY)
            .arg(serde_json::to_vec(&Counter { count: 0 })?)
            .exec_async(&mut con)
            .await?;
        // The naive loop's dedicated connections are opened before the clock starts (statehouse's
        // pool connections were opened by the warm-up).
        let mut dedicated = Vec::with_capacity(tasks);
        if side == Side::Raw {
            for _ in 0..tasks {
                dedicated.push(self.raw_nodes.dedicated(COUNTER_KEY).await?);
            }
        }
        let mut dedicated = dedicated.into_iter();
        let timed = self
            .timed(tasks, |_| {
                let docs = self.docs.clone();
                let con = dedicated.next();
                async move {
                    match side {
                        Side::Statehouse => increment_statehouse(docs, increments).await,
                        Side::Raw => increment_naive(con.ok_or("no connection")?, increments).await,
                    }
                }
            })
            .await?;

        let expected = tasks as u64 * increments;
        let stored: Option<Vec<u8>> = redis::cmd("GET").arg(COUNTER_KEY).query_async(&mut con).await?;
        let count = match stored {
            Some(bytes) => serde_json::from_slice::<Counter>(&bytes)?.count,
            None => 0,
        };
        if count != expected {
            return Err(format!(
                "WRONG COUNT ({side:?}): the counter is {count} after {tasks} tasks x {increments} \
                 increments, expected {expected} (updates were lost or applied twice)"
            )
            .into());
        }
        let attempts: u64 = timed.outputs.iter().sum();
        Ok(Sample::new(&timed, expected, attempts.saturating_sub(expected)))
    }
}
