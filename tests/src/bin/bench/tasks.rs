//! The task lifecycle (workloads 7–9): `save` and `set_status` from 16 writers, and a page of a
//! service's tasks, each against raw redis-rs sending the same commands and running the same script.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use statehouse::{
    PageRequest, ServiceName, TaskBucket, TaskCursor, TaskId, TaskRecord, TaskStatus, Tasks, UserId,
};
use statehouse_ports::BucketMerge;

use crate::Res;
use crate::cluster_raw::{RawCon, RawTxn};
use crate::engine::{Bench, Interleaved, Sample, Side, Step, interleaved};

/// Concurrent writers of the task save and set_status workloads, each on its own tasks (fewer than
/// statehouse's 32 pooled WATCH connections, so no writer waits for one).
pub(crate) const TASK_WRITERS: usize = 16;
/// Records each writer of the task save workload cycles through.
const SAVE_IDS_PER_WRITER: usize = 4;
/// Tasks of the service the list workload pages through.
pub(crate) const LIST_TASKS: usize = 500;
/// Items per page of the list workload.
pub(crate) const LIST_PAGE: usize = 50;
/// Index entries per bucket and `ZRANGE` of a listing: twice a bucket's share of the page and one
/// more (`ceil(51 / 16) * 2`), and 4 of slack: what statehouse's `BucketMerge` asks for first
/// (checked at start-up by [`check_task_layout`]).
const LIST_BATCH: usize = 12;
/// The buckets of a task namespace (`TaskBucket::COUNT`).
const BUCKETS: u16 = 16;
/// The log cap of the task workloads (`TaskSpace::with_max_log`), on both sides.
pub(crate) const TASK_MAX_LOG: usize = 10;
/// The message of every status change.
const STATUS_MESSAGE: &str = "checkpoint: 1000 more rows exported";
pub(crate) const SAVE_SERVICE: &str = "bench-save";
const STATUS_SERVICE: &str = "bench-status";
const LIST_SERVICE: &str = "bench-list";

/// statehouse's `TASK_WRITE` script (`adapters/redis/src/scripts.rs`), which the raw side runs too,
/// so both sides send the same commands. At start-up the run still checks that its SHA1 is a script
/// the fresh server got from statehouse (`SCRIPT EXISTS` before the raw side loads anything).
pub(crate) const RAW_TASK_WRITE: &str = statehouse_redis::TASK_WRITE_SCRIPT;

/// The bucket of a task id as a raw program computes it from the documented formula: the top 4
/// bits of CRC-16/XMODEM(id) × 0x9E3779B1 (mod 2^32). The checksum is the standard one (Redis
/// Cluster's); [`check_task_layout`] checks the buckets against statehouse's.
fn raw_bucket(id: &str) -> u16 {
    (u32::from(TaskBucket::crc16(id.as_bytes())).wrapping_mul(0x9E37_79B1) >> 28) as u16
}

/// The Redis keys of the task layout, as a raw redis-rs program would write them for ids that need
/// no escaping; [`check_task_layout`] checks them against statehouse's.
fn raw_record_key(id: &str) -> String {
    format!("{{tasks:b{}}}:task:{id}", raw_bucket(id))
}

fn raw_service_key(bucket: u16, service: &str) -> String {
    format!("{{tasks:b{bucket}}}:by-service:{service}")
}

fn raw_user_key(bucket: u16, user: &str) -> String {
    format!("{{tasks:b{bucket}}}:by-user:{user}")
}

/// The TTL the raw side gives records and indexes: statehouse's default, 90 days.
const TASK_TTL_MS: u64 = 90 * 24 * 3600 * 1000;

/// Stops unless the raw side's keys and TTL are statehouse's.
pub(crate) fn check_task_layout(space: &statehouse::TaskSpace) -> Res<()> {
    let keys = space.keys();
    let ids = (0..TASK_WRITERS).flat_map(|w| (0..SAVE_IDS_PER_WRITER).map(move |i| format!("save-{w}-{i}")));
    let ids = ids.chain((0..LIST_TASKS).map(|i| format!("list-{i:04}")));
    let same_keys = ids.into_iter().all(|id| {
        let bucket = TaskBucket::of(&id);
        keys.record(&id) == raw_record_key(&id)
            && keys.by_service(bucket, SAVE_SERVICE) == raw_service_key(raw_bucket(&id), SAVE_SERVICE)
            && keys.by_user(bucket, "bench-user-3") == raw_user_key(raw_bucket(&id), "bench-user-3")
    });
    let first_reads = BucketMerge::new(&PageRequest::first(LIST_PAGE)).reads();
    let same = same_keys
        && TaskBucket::COUNT == BUCKETS
        && first_reads.len() == usize::from(BUCKETS)
        && first_reads
            .iter()
            .all(|read| read.count == LIST_BATCH && read.max.is_none())
        && space.ttl().as_millis() == TASK_TTL_MS
        && space.max_log() == Some(TASK_MAX_LOG);
    if same {
        Ok(())
    } else {
        Err(format!(
            "the raw side's task layout differs from statehouse's: {} / {}",
            keys.record("save-1-2"),
            raw_record_key("save-1-2")
        )
        .into())
    }
}

/// Checks that the raw side's copy of the task-write script is the one statehouse loaded on this
/// server, then loads it for the raw side. Returns its SHA1.
pub(crate) async fn check_task_write_script(raw: &RawCon) -> Res<String> {
    let mut con = raw.clone();
    let sha = redis::Script::new(RAW_TASK_WRITE).get_hash().to_owned();
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query_async(&mut con)
        .await?;
    if exists != [true] {
        return Err(format!(
            "the task-write script (SHA1 {sha}) is not a script statehouse loaded: \
             the raw side would not run the same commands"
        )
        .into());
    }
    let loaded: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(RAW_TASK_WRITE)
        .query_async(&mut con)
        .await?;
    if loaded != sha {
        return Err(format!("SCRIPT LOAD answered {loaded}, expected {sha}").into());
    }
    Ok(sha)
}

/// A task record of the size the task workloads use: some metadata and a full log.
pub(crate) fn sample_task(id: &str, service: &str, user: &str) -> Res<TaskRecord> {
    let at = DateTime::from_timestamp(1_700_000_000, 0).ok_or("bad timestamp")?;
    let mut record = TaskRecord::new(
        TaskId::new(id)?,
        ServiceName::new(service)?,
        UserId::new(user)?,
        at,
    );
    let metadata = serde_json::json!({
        "kind": "export",
        "format": "csv",
        "source": "warehouse.orders",
        "destination": "s3://exports/2026/11/orders.csv",
        "rows": 120_000,
        "priority": 3,
    });
    record.metadata = metadata.as_object().cloned().ok_or("metadata is an object")?;
    for i in 0..TASK_MAX_LOG {
        record.append_log(STATUS_MESSAGE, at + chrono::Duration::seconds(i as i64));
    }
    Ok(record)
}

/// The ids of the save workload's writer `writer`.
fn save_ids(writer: usize) -> Res<Vec<TaskId>> {
    (0..SAVE_IDS_PER_WRITER)
        .map(|i| Ok(TaskId::new(format!("save-{writer}-{i}"))?))
        .collect()
}

/// The task of the set_status workload's writer `writer`.
fn status_id(writer: usize) -> String {
    format!("status-{writer}")
}

/// Writes the records of the save and set_status workloads: each set_status task is pending with
/// a full log, as every slice leaves it.
pub(crate) async fn populate_tasks(tasks: &Tasks, template: &TaskRecord) -> Res<()> {
    for writer in 0..TASK_WRITERS {
        let mut record = template.clone();
        record.user = UserId::new(format!("bench-user-{writer}"))?;
        for id in save_ids(writer)? {
            record.id = id;
            tasks.save(record.clone()).await?;
        }
        record.id = TaskId::new(status_id(writer))?;
        record.service = ServiceName::new(STATUS_SERVICE)?;
        tasks.save(record).await?;
    }
    Ok(())
}

/// Writes the list workload's tasks; returns the ids of its first page in listing order (newest
/// first, then by id descending) and the cursor after that page.
pub(crate) async fn populate_list(tasks: &Tasks, template: &TaskRecord) -> Res<(Arc<[String]>, TaskCursor)> {
    let mut record = template.clone();
    record.service = ServiceName::new(LIST_SERVICE)?;
    let mut positions = Vec::with_capacity(LIST_TASKS);
    for i in 0..LIST_TASKS {
        record.id = TaskId::new(format!("list-{i:04}"))?;
        record.user = UserId::new(format!("bench-user-{}", i % 10))?;
        let stored = tasks.save(record.clone()).await?;
        positions.push(TaskCursor::after(&stored));
    }
    positions.sort_by(|a, b| (b.updated_millis, b.id.as_str()).cmp(&(a.updated_millis, a.id.as_str())));
    let next = positions[LIST_PAGE - 1].clone();
    let expected = positions[..LIST_PAGE]
        .iter()
        .map(|c| c.id.as_str().to_owned())
        .collect();
    Ok((expected, next))
}

/// The fields of a stored record the raw save needs: the indexes it leaves if they change.
#[derive(Deserialize)]
struct Owners {
    service: String,
    user: String,
}

async fn save_statehouse(tasks: Tasks, mut record: TaskRecord, ids: Vec<TaskId>, saves: u64) -> Res<u64> {
    for i in 0..saves {
        // The record goes in and comes back as stored, as raw's stays in its hands.
        let id = &ids[i as usize % ids.len()];
        record.id = id.clone();
        record = tasks.save(record).await?;
        if record.id != *id {
            return Err(format!("saved {} where {id} was written", record.id).into());
        }
    }
    Ok(saves)
}

/// The save as a raw redis-rs program does it, with the commands statehouse sends: `WATCH` and
/// `GET` of the record in one pipeline, then `MULTI`, `EVALSHA` of the task-write script (record,
/// indexes, TTLs), `EXEC`; on an aborted `EXEC`, again. Returns the attempts.
async fn save_raw(
    txn: RawTxn,
    sha: String,
    mut record: TaskRecord,
    ids: Vec<TaskId>,
    saves: u64,
) -> Res<u64> {
    let mut attempts = 0;
    for i in 0..saves {
        record.id = ids[i as usize % ids.len()].clone();
        let key = raw_record_key(record.id.as_str());
        let mut con = txn.for_key(&key)?;
        loop {
            attempts += 1;
            let (current,): (Option<Vec<u8>>,) = redis::pipe()
                .cmd("WATCH")
                .arg(&key)
                .ignore()
                .cmd("GET")
                .arg(&key)
                .query_async(&mut con)
                .await?;
            let bucket = raw_bucket(record.id.as_str());
            let mut keys = vec![
                key.clone(),
                raw_service_key(bucket, record.service.as_str()),
                raw_user_key(bucket, record.user.as_str()),
            ];
            // Indexes the record leaves, if its service or user changed.
            if let Some(bytes) = current {
                let old: Owners = serde_json::from_slice(&bytes)?;
                if old.service != record.service.as_str() {
                    keys.push(raw_service_key(bucket, &old.service));
                }
                if old.user != record.user.as_str() {
                    keys.push(raw_user_key(bucket, &old.user));
                }
            }
            record.updated_at = Utc::now();
            record.cap_log(TASK_MAX_LOG);
            let bytes = serde_json::to_vec(&record)?;
            if raw_task_write(&mut con, &sha, &keys, &bytes, &record).await? {
                break;
            }
        }
    }
    Ok(attempts)
}

/// `MULTI; EVALSHA <task write> …; EXEC`: whether it committed.
async fn raw_task_write(
    con: &mut MultiplexedConnection,
    sha: &str,
    keys: &[String],
    bytes: &[u8],
    record: &TaskRecord,
) -> Res<bool> {
    let committed: Option<()> = redis::pipe()
        .atomic()
        .cmd("EVALSHA")
        .arg(sha)
        .arg(keys.len())
        .arg(keys)
        .arg(bytes)
        .arg(TASK_TTL_MS)
        .arg(record.updated_millis())
        .arg(record.id.as_str())
        .arg(2)
        .ignore()
        .query_async(con)
        .await?;
    Ok(committed.is_some())
}

/// Step `i` of a status task: pending -> running on even steps, running -> pending on odd ones.
fn status_step(i: u64) -> (TaskStatus, TaskStatus) {
    if i.is_multiple_of(2) {
        (TaskStatus::Pending, TaskStatus::Running)
    } else {
        (TaskStatus::Running, TaskStatus::Pending)
    }
}

async fn status_statehouse(tasks: Tasks, id: String, changes: u64) -> Res<u64> {
    for i in 0..changes {
        let (from, to) = status_step(i);
        let stored = tasks.set_status(&id, to, Some(STATUS_MESSAGE)).await?;
        // The change was made on the previous one: the log line before the new one has the status
        // the task was in.
        let log = &stored.log;
        if stored.status != to
            || log.len() != TASK_MAX_LOG
            || log[TASK_MAX_LOG - 1].status != to
            || log[TASK_MAX_LOG - 2].status != from
        {
            return Err(format!("set_status on {id}: {from} -> {to} stored {stored:?}").into());
        }
    }
    Ok(changes)
}

/// set_status as a raw redis-rs program does it, with the commands statehouse sends: `WATCH` and
/// `GET` in one pipeline, decode, change, cap the log, encode, then `MULTI`, `EVALSHA`, `EXEC`; on
/// an aborted `EXEC`, again. Returns the attempts.
async fn status_raw(txn: RawTxn, sha: String, id: String, changes: u64) -> Res<u64> {
    let key = raw_record_key(&id);
    let mut con = txn.for_key(&key)?;
    let mut attempts = 0;
    for i in 0..changes {
        let (from, to) = status_step(i);
        loop {
            attempts += 1;
            let (current,): (Option<Vec<u8>>,) = redis::pipe()
                .cmd("WATCH")
                .arg(&key)
                .ignore()
                .cmd("GET")
                .arg(&key)
                .query_async(&mut con)
                .await?;
            let mut record: TaskRecord = serde_json::from_slice(&current.ok_or("set_status: no such task")?)?;
            if record.status != from {
                return Err(format!(
                    "set_status on {id}: found {} where {from} was written",
                    record.status
                )
                .into());
            }
            let now = Utc::now();
            record.set_status(to, Some(STATUS_MESSAGE), now)?;
            record.cap_log(TASK_MAX_LOG);
            let bytes = serde_json::to_vec(&record)?;
            let bucket = raw_bucket(&id);
            let keys = [
                key.clone(),
                raw_service_key(bucket, record.service.as_str()),
                raw_user_key(bucket, record.user.as_str()),
            ];
            if raw_task_write(&mut con, &sha, &keys, &bytes, &record).await? {
                break;
            }
        }
    }
    Ok(attempts)
}

/// Checks a first page against the expected ids and cursor.
fn check_page<'a>(
    ids: impl ExactSizeIterator<Item = &'a str>,
    next: Option<&TaskCursor>,
    expected: &[String],
    expected_next: &TaskCursor,
) -> Res<()> {
    let len = ids.len();
    if len != expected.len() || !ids.zip(expected).all(|(id, want)| id == want) || next != Some(expected_next)
    {
        return Err(format!(
            "WRONG PAGE: {len} items, next {next:?}; expected {} items, next {expected_next}",
            expected.len()
        )
        .into());
    }
    Ok(())
}

async fn list_statehouse(tasks: Tasks, expected: Arc<[String]>, next: TaskCursor, pages: u64) -> Res<u64> {
    for _ in 0..pages {
        list_page_statehouse(&tasks, &expected, &next).await?;
    }
    Ok(pages)
}

/// One first page through the facade, checked.
async fn list_page_statehouse(tasks: &Tasks, expected: &[String], next: &TaskCursor) -> Res<()> {
    let page = tasks
        .list_by_service(LIST_SERVICE, PageRequest::first(LIST_PAGE))
        .await?;
    let records = page.items.into_iter().collect::<Result<Vec<_>, _>>()?;
    check_page(
        records.iter().map(|r| r.id.as_str()),
        page.next.as_ref(),
        expected,
        next,
    )
}

/// A first page as a raw redis-rs program reads it, with the commands statehouse sends: a pipeline
/// of `ZRANGE <bucket's index> +inf -inf BYSCORE REV LIMIT 0 12 WITHSCORES` for each of the 16
/// buckets, the newest 51 entries of all (a bucket that answered a whole batch may hold newer ones
/// than the 51st only if its last entry is newer: then the page would need another read, which is
/// an error here), a pipeline of one `MGET` per bucket of those records (in the order buckets first
/// appear), then decode records in order until one more than a page is found (a missing record, or
/// one of another service, is skipped), keep the page and make the cursor after its last item.
async fn list_raw(mut con: RawCon, expected: Arc<[String]>, next: TaskCursor, pages: u64) -> Res<u64> {
    let indexes = raw_list_indexes();
    for _ in 0..pages {
        list_page_raw(&mut con, &indexes, &expected, &next).await?;
    }
    Ok(pages)
}

/// A first page through the facade, for [`interleaved`].
struct ListStep {
    tasks: Tasks,
    expected: Arc<[String]>,
    next: TaskCursor,
}

impl Step for ListStep {
    async fn step(&mut self) -> Res<()> {
        list_page_statehouse(&self.tasks, &self.expected, &self.next).await
    }
}

/// A first page raw, for [`interleaved`].
struct RawListStep {
    con: RawCon,
    indexes: Vec<String>,
    expected: Arc<[String]>,
    next: TaskCursor,
}

impl Step for RawListStep {
    async fn step(&mut self) -> Res<()> {
        list_page_raw(&mut self.con, &self.indexes, &self.expected, &self.next).await
    }
}

/// The index of each bucket of [`LIST_SERVICE`].
fn raw_list_indexes() -> Vec<String> {
    (0..BUCKETS).map(|b| raw_service_key(b, LIST_SERVICE)).collect()
}

/// One first page raw (see [`list_raw`]), checked.
async fn list_page_raw(
    con: &mut RawCon,
    indexes: &[String],
    expected: &[String],
    next: &TaskCursor,
) -> Res<()> {
    let mut ranges = redis::pipe();
    for index in indexes {
        ranges
            .cmd("ZRANGE")
            .arg(index)
            .arg("+inf")
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(LIST_BATCH)
            .arg("WITHSCORES");
    }
    let answers: Vec<Vec<(String, f64)>> = ranges.query_async(con).await?;
    let mut entries: Vec<(i64, String, u16)> = Vec::with_capacity(answers.len() * LIST_BATCH);
    let mut horizon = None;
    for (bucket, answer) in (0..BUCKETS).zip(answers) {
        if answer.len() == LIST_BATCH {
            let (id, score) = &answer[LIST_BATCH - 1];
            let last = (*score as i64, id.clone());
            horizon = horizon.max(Some(last));
        }
        entries.extend(answer.into_iter().map(|(id, score)| (score as i64, id, bucket)));
    }
    entries.sort_unstable_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    entries.truncate(LIST_PAGE + 1);
    if let (Some(horizon), Some(last)) = (&horizon, entries.last())
        && (last.0, &last.1) < (horizon.0, &horizon.1)
    {
        return Err("the raw page needs a second read of a bucket".into());
    }
    // One MGET per bucket, in the order buckets first appear.
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (at, (_, _, bucket)) in entries.iter().enumerate() {
        match groups.iter_mut().find(|(b, _)| b == bucket) {
            Some((_, members)) => members.push(at),
            None => groups.push((*bucket, vec![at])),
        }
    }
    let mut mgets = redis::pipe();
    for (_, members) in &groups {
        let mget = mgets.cmd("MGET");
        for &at in members {
            mget.arg(raw_record_key(&entries[at].1));
        }
    }
    let answers: Vec<Vec<Option<Vec<u8>>>> = mgets.query_async(con).await?;
    let mut values: Vec<Option<Vec<u8>>> = vec![None; entries.len()];
    for ((_, members), answer) in groups.iter().zip(answers) {
        for (&at, value) in members.iter().zip(answer) {
            values[at] = value;
        }
    }
    let mut records = Vec::with_capacity(LIST_PAGE + 1);
    let mut positions = Vec::with_capacity(LIST_PAGE + 1);
    for ((score, id, _), value) in entries.into_iter().zip(values) {
        let Some(bytes) = value else { continue };
        let record: TaskRecord = serde_json::from_slice(&bytes)?;
        if record.service.as_str() != LIST_SERVICE {
            continue;
        }
        records.push(record);
        positions.push((score, id));
    }
    let mut cursor = None;
    if records.len() > LIST_PAGE {
        records.truncate(LIST_PAGE);
        let (score, id) = positions.swap_remove(LIST_PAGE - 1);
        cursor = Some(TaskCursor {
            updated_millis: score,
            id: TaskId::new(id)?,
        });
    }
    check_page(
        records.iter().map(|r| r.id.as_str()),
        cursor.as_ref(),
        expected,
        next,
    )
}

impl Bench {
    /// [`TASK_WRITERS`] writers each saving `saves` records, cycling through its own.
    pub(crate) async fn task_save(&self, side: Side, saves: u64) -> Res<Sample> {
        let timed = self
            .timed(TASK_WRITERS, |writer| {
                let tasks = self.tasks.clone();
                let con = self.raw_txn[writer].clone();
                let sha = self.task_write_sha.clone();
                let mut record = self.task_record.clone();
                let ids = save_ids(writer);
                async move {
                    let ids = ids?;
                    record.user = UserId::new(format!("bench-user-{writer}"))?;
                    match side {
                        Side::Statehouse => save_statehouse(tasks, record, ids, saves).await,
                        Side::Raw => save_raw(con, sha, record, ids, saves).await,
                    }
                }
            })
            .await?;
        // Outside the clock: the records and their indexes are as written.
        let mut con = self.raw.clone();
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg(raw_record_key("save-0-0"))
            .query_async(&mut con)
            .await?;
        let stored: TaskRecord = serde_json::from_slice(&stored.ok_or("a saved task is missing")?)?;
        let mut cards = redis::pipe();
        for bucket in 0..BUCKETS {
            cards.cmd("ZCARD").arg(raw_service_key(bucket, SAVE_SERVICE));
        }
        let cards: Vec<u64> = cards.query_async(&mut con).await?;
        let in_index: u64 = cards.iter().sum();
        if stored.log.len() != TASK_MAX_LOG
            || stored.user.as_str() != "bench-user-0"
            || in_index != (TASK_WRITERS * SAVE_IDS_PER_WRITER) as u64
        {
            return Err(format!(
                "WRONG TASK ({side:?}): after saving, save-0-0 has {} log lines and user {}, and the \
                 service index {in_index} entries",
                stored.log.len(),
                stored.user
            )
            .into());
        }
        let ops = saves * TASK_WRITERS as u64;
        let attempts: u64 = timed.outputs.iter().sum();
        Ok(Sample::new(&timed, ops, attempts.saturating_sub(ops)))
    }

    /// [`TASK_WRITERS`] writers each changing the status of its own task `changes` times (even),
    /// running then pending, with a log line.
    pub(crate) async fn task_status(&self, side: Side, changes: u64) -> Res<Sample> {
        let changes = changes.div_ceil(2) * 2;
        let timed = self
            .timed(TASK_WRITERS, |writer| {
                let tasks = self.tasks.clone();
                let con = self.raw_txn[writer].clone();
                let sha = self.task_write_sha.clone();
                let id = status_id(writer);
                async move {
                    match side {
                        Side::Statehouse => status_statehouse(tasks, id, changes).await,
                        Side::Raw => status_raw(con, sha, id, changes).await,
                    }
                }
            })
            .await?;
        // Outside the clock: the task is pending again, with a full log.
        let mut con = self.raw.clone();
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg(raw_record_key(&status_id(0)))
            .query_async(&mut con)
            .await?;
        let stored: TaskRecord = serde_json::from_slice(&stored.ok_or("a status task is missing")?)?;
        if stored.status != TaskStatus::Pending || stored.log.len() != TASK_MAX_LOG {
            return Err(format!(
                "WRONG TASK ({side:?}): after {changes} status changes, status-0 is {} with {} log lines",
                stored.status,
                stored.log.len()
            )
            .into());
        }
        let ops = changes * TASK_WRITERS as u64;
        let attempts: u64 = timed.outputs.iter().sum();
        Ok(Sample::new(&timed, ops, attempts.saturating_sub(ops)))
    }

    /// `pages` first pages of each side in turns in one task ([`interleaved`]).
    pub(crate) async fn task_list_in_turns(&self, pages: u64, turn: u64) -> Res<Interleaved> {
        let statehouse = ListStep {
            tasks: self.tasks.clone(),
            expected: Arc::clone(&self.list_expected),
            next: self.list_next.clone(),
        };
        let raw = RawListStep {
            con: self.raw.clone(),
            indexes: raw_list_indexes(),
            expected: Arc::clone(&self.list_expected),
            next: self.list_next.clone(),
        };
        let row = Some(("9. tasks: list, 50-item page", 1));
        interleaved(row, statehouse, raw, pages, turn).await
    }

    /// One task reading the first page of the listed service `pages` times, checking each.
    pub(crate) async fn task_list(&self, side: Side, pages: u64) -> Res<Sample> {
        let tasks = self.tasks.clone();
        let raw = self.raw.clone();
        let expected = Arc::clone(&self.list_expected);
        let next = self.list_next.clone();
        let timed = self
            .timed(1, move |_| {
                let tasks = tasks.clone();
                let raw = raw.clone();
                let expected = Arc::clone(&expected);
                let next = next.clone();
                async move {
                    match side {
                        Side::Statehouse => list_statehouse(tasks, expected, next, pages).await,
                        Side::Raw => list_raw(raw, expected, next, pages).await,
                    }
                }
            })
            .await?;
        Ok(Sample::new(&timed, pages, 0))
    }
}
