//! One task's record and index entries.

use std::time::Duration;

use serde_json::json;
use statehouse::{ErrorKind, KeyTtl, PageRequest, TaskBucket, TaskSpace, TaskStatus};

use super::{expect_kind, ids, next_millisecond, record_key, service_key, user_key};
use crate::contract::Backend;

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
    // The documented key: the record in the bucket of its id.
    assert_eq!(TaskBucket::of("export-1").number(), 12);
    assert_eq!(record_key("export-1"), "{tasks:b12}:task:export-1");
    let raw = backend
        .docs()
        .get_raw("{tasks:b12}:task:export-1")
        .await
        .unwrap()
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(stored["status"], "pending");
    assert!(stored["created_at"].as_str().unwrap().ends_with('Z'), "{stored}");
    assert_eq!(tasks.count_by_service("exporter").await.unwrap(), 1);
    assert_eq!(tasks.count_by_user("ada").await.unwrap(), 1);
    // Its index entries are in the same bucket, and only there.
    for key in ["{tasks:b12}:by-service:exporter", "{tasks:b12}:by-user:ada"] {
        assert!(backend.docs().exists(key).await.unwrap(), "{key}");
    }
    let everywhere = backend.docs().list_keys("{tasks:b*}:*").await.unwrap();
    assert_eq!(everywhere.len(), 3, "{everywhere:?}");
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
        &record_key("job"),
    );
    assert!(error.to_string().contains("from completed to running"), "{error}");
    assert_eq!(tasks.get("job").await.unwrap().unwrap(), done, "nothing written");
}

pub async fn unknown_task_is_not_found(backend: Backend) {
    let tasks = backend.tasks();
    expect_kind(
        tasks.set_status("ghost", TaskStatus::Running, None).await,
        ErrorKind::NotFound,
        &record_key("ghost"),
    );
    expect_kind(
        tasks.append_log("ghost", "hello").await,
        ErrorKind::NotFound,
        &record_key("ghost"),
    );
    assert!(!tasks.delete("ghost").await.unwrap());
    assert_eq!(tasks.get("ghost").await.unwrap(), None, "nothing was created");
}

pub async fn saving_under_another_user_moves_the_index_entries(backend: Backend) {
    let tasks = backend.tasks();
    let mut task = tasks.create("moving", "svc-a", "alice").await.unwrap();
    task.user = "bob".parse().unwrap();
    task.service = "svc-b".parse().unwrap();
    tasks.save(task).await.unwrap();
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
    assert!(!backend.docs().exists(&user_key("moving", "alice")).await.unwrap());
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
    for id in ["d1", "d2"] {
        for key in [record_key(id), service_key(id, "svc"), user_key(id, "u")] {
            assert!(!backend.docs().exists(&key).await.unwrap(), "{key} left behind");
        }
    }
}

pub async fn expired_tasks_vanish_from_listings_and_counts(backend: Backend) {
    let short = TaskSpace::default().with_ttl(Duration::from_millis(200)).unwrap();
    let tasks = backend.tasks_in(short);
    tasks.create("brief", "svc", "u").await.unwrap();
    for key in [
        record_key("brief"),
        service_key("brief", "svc"),
        user_key("brief", "u"),
    ] {
        match backend.docs().ttl(&key).await.unwrap() {
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
    let ttl = |key: String| {
        let docs = backend.docs();
        async move {
            match docs.ttl(&key).await.unwrap() {
                KeyTtl::ExpiresIn(left) => left,
                other => panic!("{key}: expected a TTL, got {other:?}"),
            }
        }
    };
    let keys = [record_key("t"), service_key("t", "svc"), user_key("t", "u")];
    ten_s.create("t", "svc", "u").await.unwrap();
    one_s.append_log("t", "shorter TTL asked").await.unwrap();
    for key in &keys {
        assert!(
            ttl(key.clone()).await > Duration::from_secs(9),
            "{key} was shortened"
        );
    }
    minute.set_status("t", TaskStatus::Running, None).await.unwrap();
    for key in &keys {
        assert!(
            ttl(key.clone()).await > Duration::from_secs(59),
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
    let key = record_key("b2");
    let key = key.as_str();
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

pub async fn a_key_of_another_type_fails_the_write_and_writes_nothing(backend: Backend) {
    let tasks = backend.tasks();
    backend.plant_hash(&user_key("t", "u")).await;
    let error = tasks.create("t", "svc", "u").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    assert_eq!(tasks.get("t").await.unwrap(), None);
    assert!(!backend.docs().exists(&service_key("t", "svc")).await.unwrap());
    assert_eq!(tasks.count_by_service("svc").await.unwrap(), 0);
}
