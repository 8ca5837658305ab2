//! Listings merged over the buckets, newest first.

use std::collections::BTreeSet;

use statehouse::{PageRequest, SetOptions, TaskBucket, TaskCursor, TaskId, TaskRecord, TaskSpace};

use super::{all_pages, ids, next_millisecond, pages_of, record_at, record_key};
use crate::contract::Backend;

pub async fn listings_are_newest_first_and_paged(backend: Backend) {
    let tasks = backend.tasks();
    for i in 1..=7 {
        let user = if i % 2 == 0 { "even" } else { "odd" };
        tasks.create(&format!("t{i}"), "svc", user).await.unwrap();
        next_millisecond();
    }
    assert_eq!(
        all_pages(&tasks, "svc", 3).await,
        [vec!["t7", "t6", "t5"], vec!["t4", "t3", "t2"], vec!["t1"]]
    );
    // An update moves a task to the front.
    tasks.append_log("t2", "touched").await.unwrap();
    let first = tasks.list_by_service("svc", PageRequest::first(2)).await.unwrap();
    assert_eq!(ids(&first), ["t2", "t7"]);
    let evens = tasks.list_by_user("even", PageRequest::first(10)).await.unwrap();
    assert_eq!(ids(&evens), ["t2", "t6", "t4"]);
    assert!(evens.next.is_none());
    assert_eq!(tasks.count_by_service("svc").await.unwrap(), 7);
    assert_eq!(tasks.count_by_user("odd").await.unwrap(), 4);
    assert_eq!(tasks.count_by_user("nobody").await.unwrap(), 0);
    let none = tasks
        .list_by_user("nobody", PageRequest::default())
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next.is_none());
}

pub async fn paging_through_same_millisecond_updates_loses_nothing(backend: Backend) {
    let tasks = backend.tasks();
    // Written as fast as possible: many share a millisecond.
    let mut expected = BTreeSet::new();
    for i in 0..40 {
        tasks.create(&format!("fast-{i:02}"), "burst", "u").await.unwrap();
        expected.insert(format!("fast-{i:02}"));
    }
    for limit in [1, 3, 7, 40, 100] {
        let pages = all_pages(&tasks, "burst", limit).await;
        let seen: Vec<String> = pages.into_iter().flatten().collect();
        let distinct: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(seen.len(), 40, "limit {limit}: {seen:?}");
        assert_eq!(distinct, expected, "limit {limit}");
        // Order: update time descending, then id descending.
        let mut records = Vec::new();
        for id in &seen {
            records.push(tasks.get(id).await.unwrap().unwrap());
        }
        for pair in records.windows(2) {
            let key = |r: &TaskRecord| (r.updated_millis(), r.id.to_string());
            assert!(key(&pair[0]) > key(&pair[1]), "limit {limit}: out of order");
        }
    }
}

pub async fn stale_index_entries_are_skipped(backend: Backend) {
    let tasks = backend.tasks();
    for id in ["s1", "s2", "s3"] {
        tasks.create(id, "svc", "u").await.unwrap();
        next_millisecond();
    }
    // The record vanishes behind the repository's back (as an expired one
    // does); its index entries stay.
    assert!(backend.docs().delete(&record_key("s2")).await.unwrap());
    assert_eq!(tasks.count_by_service("svc").await.unwrap(), 2);
    let page = tasks.list_by_service("svc", PageRequest::first(2)).await.unwrap();
    assert_eq!(ids(&page), ["s3", "s1"]);
    assert!(page.next.is_none(), "no phantom next page");
    assert_eq!(
        ids(&tasks.list_by_user("u", PageRequest::default()).await.unwrap()),
        ["s3", "s1"]
    );
    // A task re-created under the same id is listed again.
    tasks.create("s2", "svc", "u").await.unwrap();
    assert_eq!(
        ids(&tasks.list_by_service("svc", PageRequest::first(1)).await.unwrap()),
        ["s2"]
    );
}

/// Writes `records` as another client does, in the documented layout: the
/// record at `{tasks:b<bucket>}:task:<id>`, an entry scored by its update
/// time (ms) in its bucket's service and user indexes.
async fn write_as_another_client(backend: &Backend, records: &[TaskRecord]) {
    let keys = TaskSpace::default().keys().clone();
    for record in records {
        let id = record.id.as_str();
        let bucket = TaskBucket::of(id);
        let json = serde_json::to_vec(record).unwrap();
        backend
            .docs()
            .set_raw(&keys.record(id), json, SetOptions::new())
            .await
            .unwrap();
        let score = record.updated_millis() as f64;
        backend
            .zadd_raw(&keys.by_service(bucket, record.service.as_str()), id, score)
            .await;
        backend
            .zadd_raw(&keys.by_user(bucket, record.user.as_str()), id, score)
            .await;
    }
}

/// `(update time, id)` of every item of `pages`, in order.
fn positions(pages: &[statehouse::TaskPage]) -> Vec<(i64, String)> {
    pages
        .iter()
        .flat_map(|page| page.items.iter())
        .map(|item| {
            let record = item.as_ref().unwrap();
            (record.updated_millis(), record.id.to_string())
        })
        .collect()
}

pub async fn ties_in_one_millisecond_page_by_id_across_buckets(backend: Backend) {
    // 48 tasks updated in the same millisecond, spread over the buckets,
    // between a few newer and a few older ones: written by another client
    // (the only way to choose an update time).
    const T: i64 = 1_700_000_000_000;
    let mut records = Vec::new();
    for i in 0..48 {
        records.push(record_at(&format!("tie-{i:02}"), "svc", "u", T));
    }
    for i in 0..5 {
        records.push(record_at(&format!("newer-{i}"), "svc", "u", T + 1 + i));
        records.push(record_at(&format!("older-{i}"), "svc", "u", T - 1 - i));
    }
    let buckets: BTreeSet<TaskBucket> = records.iter().map(|r| TaskBucket::of(r.id.as_str())).collect();
    assert!(buckets.len() >= 12, "the ties span the buckets: {buckets:?}");
    write_as_another_client(&backend, &records).await;
    let mut expected: Vec<(i64, String)> = records
        .iter()
        .map(|r| (r.updated_millis(), r.id.to_string()))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    let tasks = backend.tasks();
    for limit in [1, 5, 7, 16, 17, 58, 100] {
        let pages = pages_of(&tasks, "svc", limit).await;
        assert_eq!(positions(&pages), expected, "limit {limit}");
        assert_eq!(pages.len(), expected.len().div_ceil(limit), "limit {limit}");
        for (page, next) in pages.iter().zip(pages.iter().skip(1)) {
            // A page ends where the next begins: its cursor is its last item.
            let last = page.items.last().unwrap().as_ref().unwrap();
            assert_eq!(page.next, Some(TaskCursor::after(last)));
            assert!(!next.items.is_empty());
        }
    }
    // A cursor inside the tie group, as a client sends it back as text.
    let cursor: TaskCursor = format!("{T}:tie-30").parse().unwrap();
    let page = tasks
        .list_by_user("u", PageRequest::first(4).after(cursor))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["tie-29", "tie-28", "tie-27", "tie-26"]);
    assert_eq!(tasks.count_by_service("svc").await.unwrap(), 58);
    assert_eq!(tasks.count_by_user("u").await.unwrap(), 58);
}

pub async fn pages_cross_bucket_boundaries_without_gaps_or_repeats(backend: Backend) {
    // Tasks whose ids fall in few buckets and tasks spread over all: a
    // page draws on several buckets and a bucket on several pages.
    let tasks = backend.tasks();
    let crowded: Vec<String> = (0..2000)
        .map(|i| format!("c-{i}"))
        .filter(|id| TaskBucket::of(id).number() < 2)
        .take(30)
        .collect();
    let spread: Vec<String> = (0..40).map(|i| format!("s-{i}")).collect();
    // Interleaved, a few per millisecond.
    let mut written = Vec::new();
    for i in 0..crowded.len().max(spread.len()) {
        for id in [crowded.get(i), spread.get(i)].into_iter().flatten() {
            tasks.create(id, "svc", "u").await.unwrap();
            written.push(id.clone());
        }
        if i % 2 == 0 {
            next_millisecond();
        }
    }
    let total = written.len();
    for limit in [1, 4, 9, 31, 1000] {
        let pages = pages_of(&tasks, "svc", limit).await;
        let seen = positions(&pages);
        assert_eq!(seen.len(), total, "limit {limit}");
        for pair in seen.windows(2) {
            assert!(
                pair[0] > pair[1],
                "limit {limit}: {pair:?} out of order or repeated"
            );
        }
        let distinct: BTreeSet<&String> = seen.iter().map(|(_, id)| id).collect();
        assert_eq!(distinct.len(), total, "limit {limit}");
    }
    // Every record is where the layout says, readable one by one.
    for id in &written {
        assert!(backend.docs().exists(&record_key(id)).await.unwrap(), "{id}");
        assert_eq!(
            tasks.get(id).await.unwrap().unwrap().id,
            TaskId::new(id.as_str()).unwrap()
        );
    }
}

pub async fn a_task_written_by_another_client_in_the_documented_layout_is_read(backend: Backend) {
    let record = record_at("py-7", "reports", "grace", 1_700_000_000_123);
    write_as_another_client(&backend, std::slice::from_ref(&record)).await;
    let tasks = backend.tasks();
    assert_eq!(tasks.get("py-7").await.unwrap(), Some(record.clone()));
    assert_eq!(
        ids(&tasks.list_by_user("grace", PageRequest::default()).await.unwrap()),
        ["py-7"]
    );
    let changed = tasks.append_log("py-7", "seen by statehouse").await.unwrap();
    assert_eq!(changed.log.len(), 1);
    assert_eq!(tasks.count_by_service("reports").await.unwrap(), 1);
}
