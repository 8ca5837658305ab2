//! The migration from the layout before buckets (`{tasks}:task:<id>`).

use std::time::Duration;

use statehouse::{ErrorKind, KeyTtl, LegacyMove, PageRequest, SetOptions, TaskRecord, TaskSpace, Ttl};

use super::{expect_kind, ids, pages_of, record_at, record_key};
use crate::contract::Backend;

const T: i64 = 1_700_000_000_000;

/// Writes `records` as statehouse did before buckets, in `namespace`: the
/// record at `{<ns>}:task:<id>` (with `ttl`, or none), an entry scored by
/// its update time in `{<ns>}:by-service:<service>` and `{<ns>}:by-user:<user>`.
async fn write_legacy(backend: &Backend, namespace: &str, records: &[TaskRecord], ttl: Option<Duration>) {
    let space = TaskSpace::new(namespace);
    let legacy = space.keys().legacy();
    for record in records {
        let id = record.id.as_str();
        let mut options = SetOptions::new();
        if let Some(ttl) = ttl {
            options = options.ttl(Ttl::new(ttl).unwrap());
        }
        let json = serde_json::to_vec(record).unwrap();
        backend
            .docs()
            .set_raw(&legacy.record(id), json, options)
            .await
            .unwrap();
        let score = record.updated_millis() as f64;
        backend
            .zadd_raw(&legacy.by_service(record.service.as_str()), id, score)
            .await;
        backend
            .zadd_raw(&legacy.by_user(record.user.as_str()), id, score)
            .await;
    }
}

pub async fn legacy_tasks_move_into_their_buckets_keeping_order_and_ttl(backend: Backend) {
    // 20 tasks of the layout before buckets, some updated in the same
    // millisecond, with a TTL of a minute.
    let records: Vec<TaskRecord> = (0..20)
        .map(|i| record_at(&format!("old-{i:02}"), "svc", &format!("u{}", i % 2), T + i / 3))
        .collect();
    write_legacy(&backend, "tasks", &records, Some(Duration::from_secs(60))).await;
    let tasks = backend.tasks();
    // The bucketed layout does not read them.
    assert_eq!(tasks.get("old-00").await.unwrap(), None);
    assert_eq!(tasks.count_by_service("svc").await.unwrap(), 0);
    let legacy_ids: Vec<String> = tasks.legacy_ids().await.unwrap();
    let mut expected_ids: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
    expected_ids.sort();
    assert_eq!(legacy_ids, expected_ids);

    for id in &legacy_ids {
        assert_eq!(tasks.migrate_legacy(id).await.unwrap(), LegacyMove::Moved, "{id}");
    }
    // Each record as it was (its update time: its place in listings), in
    // its bucket, with what was left of its TTL.
    for record in &records {
        let id = record.id.as_str();
        assert_eq!(tasks.get(id).await.unwrap().as_ref(), Some(record));
        match backend.docs().ttl(&record_key(id)).await.unwrap() {
            KeyTtl::ExpiresIn(left) => assert!(left <= Duration::from_secs(60), "{id}: {left:?}"),
            other => panic!("{id}: expected a TTL, got {other:?}"),
        }
    }
    let mut expected: Vec<(i64, String)> = records
        .iter()
        .map(|r| (r.updated_millis(), r.id.to_string()))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    let listed: Vec<(i64, String)> = pages_of(&tasks, "svc", 6)
        .await
        .iter()
        .flat_map(|page| page.items.iter())
        .map(|item| {
            let r = item.as_ref().unwrap();
            (r.updated_millis(), r.id.to_string())
        })
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(tasks.count_by_user("u0").await.unwrap(), 10);
    // Nothing of the legacy layout is left; a second run has nothing to do.
    assert_eq!(
        backend.docs().list_keys("{tasks}:*").await.unwrap(),
        Vec::<String>::new()
    );
    assert!(tasks.legacy_ids().await.unwrap().is_empty());
    assert_eq!(tasks.migrate_legacy("old-00").await.unwrap(), LegacyMove::Absent);
    assert_eq!(tasks.get("old-00").await.unwrap().as_ref(), Some(&records[0]));
}

pub async fn the_migration_keeps_the_newer_copy_and_deletes_only_what_it_moved(backend: Backend) {
    let tasks = backend.tasks();
    // Written since in the bucketed layout, newer than its legacy copy.
    let current = tasks.create("both", "svc-new", "u").await.unwrap();
    // Its legacy copy is newer than the bucketed one (a client of the old
    // layout wrote it last), and it has no TTL.
    let bucketed = tasks.create("late", "svc-a", "u").await.unwrap();
    let late = record_at("late", "svc-b", "u", bucketed.updated_millis() + 60_000);
    write_legacy(
        &backend,
        "tasks",
        &[record_at("both", "svc-old", "u", T), late.clone()],
        None,
    )
    .await;
    // An unreadable legacy record, an entry of a legacy task that expired,
    // and another namespace's legacy task.
    backend
        .docs()
        .set_raw("{tasks}:task:broken", b"{not json".to_vec(), SetOptions::new())
        .await
        .unwrap();
    backend
        .zadd_raw("{tasks}:by-service:svc-old", "expired", T as f64)
        .await;
    write_legacy(&backend, "other", &[record_at("x", "svc", "u", T)], None).await;

    let legacy_ids: Vec<String> = tasks.legacy_ids().await.unwrap();
    assert_eq!(legacy_ids, ["both", "broken", "late"]);

    assert_eq!(
        tasks.migrate_legacy("both").await.unwrap(),
        LegacyMove::Superseded
    );
    assert_eq!(tasks.get("both").await.unwrap(), Some(current));
    assert!(!backend.docs().exists("{tasks}:task:both").await.unwrap());

    assert_eq!(tasks.migrate_legacy("late").await.unwrap(), LegacyMove::Moved);
    assert_eq!(tasks.get("late").await.unwrap(), Some(late));
    assert_eq!(
        ids(&tasks
            .list_by_service("svc-b", PageRequest::default())
            .await
            .unwrap()),
        ["late"]
    );
    assert_eq!(
        tasks.count_by_service("svc-a").await.unwrap(),
        0,
        "moved out of its old index"
    );
    match backend.docs().ttl(&record_key("late")).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left > Duration::from_secs(3600), "{left:?}"),
        other => panic!("expected the space's TTL, got {other:?}"),
    }

    let error = expect_kind(
        tasks.migrate_legacy("broken").await,
        ErrorKind::Deserialization,
        "{tasks}:task:broken",
    );
    assert_eq!(error.op(), "migrate_legacy");
    // What it did not move is where it was.
    for key in [
        "{tasks}:task:broken",
        "{tasks}:by-service:svc-old",
        "{other}:task:x",
        "{other}:by-user:u",
    ] {
        assert!(backend.docs().exists(key).await.unwrap(), "{key} was deleted");
    }
    assert_eq!(tasks.legacy_ids().await.unwrap().len(), 1);
    assert_eq!(tasks.migrate_legacy("nothing").await.unwrap(), LegacyMove::Absent);
}
