//! Contract: task lifecycle ([`statehouse_ports::TaskRepository`] through the `Tasks` facade).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use statehouse::{ErrorKind, KeyTtl, PageRequest, StoreError, TaskRecord, TaskSpace, TaskStatus, Tasks};

use super::Backend;

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

/// Every page of a listing by service, gathered with `limit`, as ids.
async fn all_pages(tasks: &Tasks, service: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut page = PageRequest::first(limit);
    loop {
        let got = tasks.list_by_service(service, page.clone()).await.unwrap();
        pages.push(
            got.items
                .iter()
                .map(|item| item.as_ref().unwrap().id.to_string())
                .collect(),
        );
        match got.next {
            Some(cursor) => page = PageRequest::first(limit).after(cursor),
            None => return pages,
        }
        assert!(pages.len() < 1000, "paging does not end");
    }
}

fn ids(page: &statehouse::TaskPage) -> Vec<String> {
    page.items
        .iter()
        .map(|item| item.as_ref().unwrap().id.to_string())
        .collect()
}

pub async fn save_and_get_round_trip_a_record(backend: Backend) {
    let tasks = backend.tasks();
    let meta = json!({"file": "report.csv", "rows": 1200});
    let created = tasks
        .create_with("export-1", "exporter", "ada", meta.as_object().unwrap().clone())
        .await
        .unwrap();
    assert_eq!(created.status, TaskStatus::Pending);
    assert_eq!(created.metadata["rows"], 1200);
    let read = tasks.get("export-1").await.unwrap().unwrap();
    assert_eq!(read, created);
    assert_eq!(tasks.get("export-2").await.unwrap(), None);
    // The stored form: lowercase status, RFC 3339 UTC timestamps.
    let raw = backend
        .docs()
        .get_raw("{tasks}:task:export-1")
        .await
        .unwrap()
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(stored["status"], "pending");
    assert!(stored["created_at"].as_str().unwrap().ends_with('Z'), "{stored}");
    assert_eq!(tasks.count_by_service("exporter").await.unwrap(), 1);
    assert_eq!(tasks.count_by_user("ada").await.unwrap(), 1);
}

pub async fn status_changes_follow_the_lifecycle(backend: Backend) {
    let tasks = backend.tasks();
    tasks.create("job", "worker", "u1").await.unwrap();
    let running = tasks
        .set_status("job", TaskStatus::Running, Some("started"))
        .await
        .unwrap();
    assert_eq!(running.status, TaskStatus::Running);
    tasks
        .set_status("job", TaskStatus::Running, Some("still running"))
        .await
        .unwrap();
    tasks
        .set_status("job", TaskStatus::Completed, None)
        .await
        .unwrap();
    let done = tasks.get("job").await.unwrap().unwrap();
    let log: Vec<(&str, TaskStatus)> = done.log.iter().map(|e| (e.message.as_str(), e.status)).collect();
    assert_eq!(
        log,
        [
            ("started", TaskStatus::Running),
            ("still running", TaskStatus::Running)
        ]
    );
    assert!(done.updated_at >= running.updated_at);

    let error = expect_kind(
        tasks.set_status("job", TaskStatus::Running, Some("again")).await,
        ErrorKind::InvalidTransition,
        "{tasks}:task:job",
    );
    assert!(error.to_string().contains("from completed to running"), "{error}");
    assert_eq!(tasks.get("job").await.unwrap().unwrap(), done, "nothing written");
}

pub async fn unknown_task_is_not_found(backend: Backend) {
    let tasks = backend.tasks();
    expect_kind(
        tasks.set_status("ghost", TaskStatus::Running, None).await,
        ErrorKind::NotFound,
        "{tasks}:task:ghost",
    );
    expect_kind(
        tasks.append_log("ghost", "hello").await,
        ErrorKind::NotFound,
        "{tasks}:task:ghost",
    );
    assert!(!tasks.delete("ghost").await.unwrap());
    assert_eq!(tasks.get("ghost").await.unwrap(), None, "nothing was created");
}

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

pub async fn saving_under_another_user_moves_the_index_entries(backend: Backend) {
    let tasks = backend.tasks();
    let mut task = tasks.create("moving", "svc-a", "alice").await.unwrap();
    task.user = "bob".parse().unwrap();
    task.service = "svc-b".parse().unwrap();
    tasks.save(&task).await.unwrap();
    assert_eq!(tasks.count_by_user("alice").await.unwrap(), 0);
    assert_eq!(tasks.count_by_service("svc-a").await.unwrap(), 0);
    assert!(
        tasks
            .list_by_user("alice", PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        ids(&tasks.list_by_user("bob", PageRequest::default()).await.unwrap()),
        ["moving"]
    );
    assert_eq!(
        ids(&tasks
            .list_by_service("svc-b", PageRequest::default())
            .await
            .unwrap()),
        ["moving"]
    );
    // The emptied index is gone from the keyspace, as on Redis.
    assert!(!backend.docs().exists("{tasks}:by-user:alice").await.unwrap());
}

pub async fn delete_removes_the_record_and_its_index_entries(backend: Backend) {
    let tasks = backend.tasks();
    tasks.create("d1", "svc", "u").await.unwrap();
    tasks.create("d2", "svc", "u").await.unwrap();
    assert!(tasks.delete("d1").await.unwrap());
    assert_eq!(tasks.get("d1").await.unwrap(), None);
    assert_eq!(
        ids(&tasks
            .list_by_service("svc", PageRequest::default())
            .await
            .unwrap()),
        ["d2"]
    );
    assert!(tasks.delete("d2").await.unwrap());
    for key in ["{tasks}:task:d2", "{tasks}:by-service:svc", "{tasks}:by-user:u"] {
        assert!(!backend.docs().exists(key).await.unwrap(), "{key} left behind");
    }
}

pub async fn expired_tasks_vanish_from_listings_and_counts(backend: Backend) {
    let short = TaskSpace::default().with_ttl(Duration::from_millis(200)).unwrap();
    let tasks = backend.tasks_in(short);
    tasks.create("brief", "svc", "u").await.unwrap();
    for key in [
        "{tasks}:task:brief",
        "{tasks}:by-service:svc",
        "{tasks}:by-user:u",
    ] {
        match backend.docs().ttl(key).await.unwrap() {
            KeyTtl::ExpiresIn(left) => assert!(left <= Duration::from_millis(200), "{key}: {left:?}"),
            other => panic!("{key}: expected a TTL, got {other:?}"),
        }
    }
    // Another task in the same index, written with a long TTL, keeps the
    // index alive after the first record expired.
    let long = backend.tasks();
    long.create("lasting", "svc", "u").await.unwrap();
    backend.elapse(Duration::from_millis(300)).await;
    assert_eq!(tasks.get("brief").await.unwrap(), None);
    assert_eq!(tasks.count_by_service("svc").await.unwrap(), 1);
    assert_eq!(
        ids(&tasks
            .list_by_service("svc", PageRequest::default())
            .await
            .unwrap()),
        ["lasting"]
    );
    assert_eq!(
        ids(&tasks.list_by_user("u", PageRequest::first(1)).await.unwrap()),
        ["lasting"]
    );
}

pub async fn writes_refresh_the_ttl_but_never_shorten_it(backend: Backend) {
    let ten_s = backend.tasks_in(TaskSpace::default().with_ttl(Duration::from_secs(10)).unwrap());
    let one_s = backend.tasks_in(TaskSpace::default().with_ttl(Duration::from_secs(1)).unwrap());
    let minute = backend.tasks_in(TaskSpace::default().with_ttl(Duration::from_secs(60)).unwrap());
    let ttl = |key: &'static str| {
        let docs = backend.docs();
        async move {
            match docs.ttl(key).await.unwrap() {
                KeyTtl::ExpiresIn(left) => left,
                other => panic!("{key}: expected a TTL, got {other:?}"),
            }
        }
    };
    let keys = ["{tasks}:task:t", "{tasks}:by-service:svc", "{tasks}:by-user:u"];
    ten_s.create("t", "svc", "u").await.unwrap();
    one_s.append_log("t", "shorter TTL asked").await.unwrap();
    for key in keys {
        assert!(ttl(key).await > Duration::from_secs(9), "{key} was shortened");
    }
    minute.set_status("t", TaskStatus::Running, None).await.unwrap();
    for key in keys {
        assert!(
            ttl(key).await > Duration::from_secs(59),
            "{key} was not refreshed"
        );
    }
}

pub async fn bad_record_fails_alone_in_its_page(backend: Backend) {
    let tasks = backend.tasks();
    for id in ["b1", "b2", "b3"] {
        tasks.create(id, "svc", "u").await.unwrap();
        next_millisecond();
    }
    // A record edited by hand with a status statehouse does not know.
    let key = "{tasks}:task:b2";
    let raw = backend.docs().get_raw(key).await.unwrap().unwrap();
    let edited = String::from_utf8(raw)
        .unwrap()
        .replace("\"pending\"", "\"paused\"");
    backend
        .docs()
        .set_raw(key, edited, statehouse::SetOptions::new())
        .await
        .unwrap();

    expect_kind(tasks.get("b2").await, ErrorKind::Deserialization, key);
    expect_kind(tasks.append_log("b2", "x").await, ErrorKind::Deserialization, key);
    let page = tasks
        .list_by_service("svc", PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.items[0].as_ref().unwrap().id.as_str(), "b3");
    let failed = page.items[1].as_ref().unwrap_err();
    assert_eq!((failed.kind(), failed.key()), (ErrorKind::Deserialization, key));
    assert_eq!(page.items[2].as_ref().unwrap().id.as_str(), "b1");
    // Replacing the bad record works and keeps one index entry.
    tasks.create("b2", "svc", "u").await.unwrap();
    assert_eq!(tasks.count_by_service("svc").await.unwrap(), 3);
}

pub async fn log_cap_keeps_the_newest_entries(backend: Backend) {
    let capped = backend.tasks_in(TaskSpace::default().with_max_log(3));
    capped.create("chatty", "svc", "u").await.unwrap();
    for i in 0..10 {
        capped.append_log("chatty", &format!("line {i}")).await.unwrap();
    }
    let task = capped.get("chatty").await.unwrap().unwrap();
    let lines: Vec<&str> = task.log.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(lines, ["line 7", "line 8", "line 9"]);
    // Uncapped by default.
    backend.tasks().append_log("chatty", "line 10").await.unwrap();
    assert_eq!(backend.tasks().get("chatty").await.unwrap().unwrap().log.len(), 4);
}

pub async fn stale_index_entries_are_skipped(backend: Backend) {
    let tasks = backend.tasks();
    for id in ["s1", "s2", "s3"] {
        tasks.create(id, "svc", "u").await.unwrap();
        next_millisecond();
    }
    // The record vanishes behind the repository's back (as an expired one
    // does); its index entries stay.
    assert!(backend.docs().delete("{tasks}:task:s2").await.unwrap());
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

pub async fn ids_with_separators_and_globs_never_collide(backend: Backend) {
    let tasks = backend.tasks();
    let cases = [
        ("a:b", "svc*", "u:1"),
        ("a%3Ab", "svc1", "u"),
        ("{x}", "svc?", "u:1:2"),
        ("a", "svc[1]", "u 1"),
        ("b", "svc\\", "é"),
    ];
    for (id, service, user) in cases {
        tasks.create(id, service, user).await.unwrap();
    }
    for (id, service, user) in cases {
        let task = tasks.get(id).await.unwrap().unwrap();
        assert_eq!((task.service.as_str(), task.user.as_str()), (service, user));
        assert_eq!(
            ids(&tasks
                .list_by_service(service, PageRequest::default())
                .await
                .unwrap()),
            [id]
        );
        assert_eq!(
            ids(&tasks.list_by_user(user, PageRequest::default()).await.unwrap()),
            [id]
        );
        assert_eq!(tasks.count_by_service(service).await.unwrap(), 1);
    }
    assert!(
        tasks
            .list_by_service("svc", PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn invalid_ids_are_rejected_before_any_io(backend: Backend) {
    let tasks = backend.tasks();
    expect_kind(tasks.create("", "svc", "u").await, ErrorKind::InvalidInput, "");
    expect_kind(
        tasks.create("t", "bad\nsvc", "u").await,
        ErrorKind::InvalidInput,
        "bad\nsvc",
    );
    expect_kind(tasks.get("a\u{0}b").await, ErrorKind::InvalidInput, "a\u{0}b");
    expect_kind(
        tasks.list_by_user("", PageRequest::default()).await,
        ErrorKind::InvalidInput,
        "",
    );
    assert!(backend.docs().list_keys("*").await.unwrap().is_empty());
}

pub async fn concurrent_log_appends_lose_nothing(backend: Backend) {
    const WRITERS: usize = 8;
    const LINES: usize = 100;
    backend.tasks().create("busy", "svc", "u").await.unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let tasks = backend.tasks();
        writers.spawn(async move {
            for i in 0..LINES {
                tasks.append_log("busy", &format!("{w}:{i}")).await.unwrap();
            }
        });
    }
    writers.join_all().await;
    let task = backend.tasks().get("busy").await.unwrap().unwrap();
    assert_eq!(task.log.len(), WRITERS * LINES);
    for w in 0..WRITERS {
        let mine: Vec<usize> = task
            .log
            .iter()
            .filter_map(|e| e.message.strip_prefix(&format!("{w}:")))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(mine, (0..LINES).collect::<Vec<_>>(), "writer {w}'s lines");
    }
}

pub async fn status_change_racing_with_appends_loses_neither(backend: Backend) {
    backend.tasks().create("race", "svc", "u").await.unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let tasks = backend.tasks();
        writers.spawn(async move {
            for i in 0..50 {
                tasks.append_log("race", &format!("{w}:{i}")).await.unwrap();
            }
        });
    }
    let tasks = backend.tasks();
    writers.spawn(async move {
        tasks
            .set_status("race", TaskStatus::Running, Some("run"))
            .await
            .unwrap();
        tasks
            .set_status("race", TaskStatus::Completed, Some("done"))
            .await
            .unwrap();
    });
    writers.join_all().await;
    let task = backend.tasks().get("race").await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.log.len(), 4 * 50 + 2);
    let statuses: Vec<&str> = task
        .log
        .iter()
        .filter(|e| e.message == "run" || e.message == "done")
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(statuses, ["running", "completed"]);
}

pub async fn a_key_of_another_type_fails_the_write_and_writes_nothing(backend: Backend) {
    let tasks = backend.tasks();
    backend.plant_hash("{tasks}:by-user:u").await;
    let error = tasks.create("t", "svc", "u").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    assert_eq!(tasks.get("t").await.unwrap(), None);
    assert!(!backend.docs().exists("{tasks}:by-service:svc").await.unwrap());
    assert_eq!(tasks.count_by_service("svc").await.unwrap(), 0);
}
