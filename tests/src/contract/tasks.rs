//! Contract: task lifecycle ([`statehouse_ports::TaskRepository`] through the `Tasks` facade).
//!
//! # Layout
//!
//! - `records.rs`: one task's record and index entries: round trip, the
//!   lifecycle, the key layout in buckets, TTLs, bad records, wrong types.
//! - `listing.rs`: listings merged over the buckets, newest first: pages,
//!   ties in one millisecond, page boundaries across buckets, stale
//!   entries, tasks written by another client in the documented layout.
//! - `concurrency.rs`: concurrent writers of one task, and paging while
//!   tasks are inserted and updated.
//! - `legacy.rs`: the migration from the layout before buckets.

use std::time::Duration;

use chrono::{DateTime, Utc};
use statehouse::{
    ErrorKind, PageRequest, ServiceName, StoreError, TaskBucket, TaskId, TaskPage, TaskRecord, TaskSpace,
    Tasks, UserId,
};

mod concurrency;
mod legacy;
mod listing;
mod records;

pub use concurrency::*;
pub use legacy::*;
pub use listing::*;
pub use records::*;

fn expect_kind<T: std::fmt::Debug>(result: Result<T, StoreError>, kind: ErrorKind, key: &str) -> StoreError {
    let error = result.expect_err("expected an error");
    assert_eq!(error.kind(), kind, "{error}");
    assert_eq!(error.key(), key, "{error}");
    error
}

/// Makes sure the next write gets a later millisecond than the last one
/// (listings order by update time; real time, not tokio's).
fn next_millisecond() {
    std::thread::sleep(Duration::from_millis(2));
}

/// The key of task `id`'s record in the default space.
fn record_key(id: &str) -> String {
    TaskSpace::default().keys().record(id)
}

/// The key of `service`'s index in the bucket of task `id`.
fn service_key(id: &str, service: &str) -> String {
    TaskSpace::default()
        .keys()
        .by_service(TaskBucket::of(id), service)
}

/// The key of `user`'s index in the bucket of task `id`.
fn user_key(id: &str, user: &str) -> String {
    TaskSpace::default().keys().by_user(TaskBucket::of(id), user)
}

/// Every page of a listing by service, gathered with `limit`.
async fn pages_of(tasks: &Tasks, service: &str, limit: usize) -> Vec<TaskPage> {
    let mut pages = Vec::new();
    let mut page = PageRequest::first(limit);
    loop {
        let got = tasks.list_by_service(service, page.clone()).await.unwrap();
        let next = got.next.clone();
        pages.push(got);
        match next {
            Some(cursor) => page = PageRequest::first(limit).after(cursor),
            None => return pages,
        }
        assert!(pages.len() < 1000, "paging does not end");
    }
}

/// Every page of a listing by service, gathered with `limit`, as ids.
async fn all_pages(tasks: &Tasks, service: &str, limit: usize) -> Vec<Vec<String>> {
    pages_of(tasks, service, limit).await.iter().map(ids).collect()
}

fn ids(page: &TaskPage) -> Vec<String> {
    page.items
        .iter()
        .map(|item| item.as_ref().unwrap().id.to_string())
        .collect()
}

/// A record as another client (or the layout before buckets) would have
/// written it: updated at `millis`.
fn record_at(id: &str, service: &str, user: &str, millis: i64) -> TaskRecord {
    let at: DateTime<Utc> = DateTime::from_timestamp_millis(millis).expect("a valid time");
    let mut record = TaskRecord::new(
        TaskId::new(id).unwrap(),
        ServiceName::new(service).unwrap(),
        UserId::new(user).unwrap(),
        at,
    );
    record.updated_at = at;
    record
}
