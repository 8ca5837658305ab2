//! Contract: the `Subject` handle (app facade) over the subjects port.

use super::*;

fn subjects(backend: &Backend) -> statehouse::Subjects {
    statehouse::Subjects::new(
        backend.subjects.clone(),
        SubjectSpace::default().with_policy(RetryPolicy::new(1000)),
    )
}

pub async fn a_failed_store_keeps_every_staged_change(backend: Backend) {
    let subjects = subjects(&backend);
    let mut user = subjects.subject("user:fails").unwrap();
    user.set("name", &"Ann").await.unwrap();
    user.delete(P, "old").await.unwrap();
    user.set_ext("origin", &"api").await.unwrap();
    // Someone puts a document where the subject lives: the batch fails.
    backend.docs().set("s:user:fails", &"in the way").await.unwrap();
    let error = user.store().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    assert!(user.has_staged(), "the failed batch stays staged");
    assert_eq!(user.get::<String>("name").await.unwrap().as_deref(), Some("Ann"));

    backend.docs().delete("s:user:fails").await.unwrap();
    user.store().await.unwrap();
    assert!(!user.has_staged());
    let mut fresh = subjects.subject("user:fails").unwrap();
    assert_eq!(fresh.get::<String>("name").await.unwrap().as_deref(), Some("Ann"));
    assert_eq!(
        fresh.get_ext::<String>("origin").await.unwrap().as_deref(),
        Some("api")
    );
}

pub async fn handle_caches_stages_and_stores_in_one_batch(backend: Backend) {
    let subjects = subjects(&backend);
    let mut user = subjects.subject("user:9").unwrap();
    user.set("name", &"John").await.unwrap();
    user.set("age", &30).await.unwrap();
    user.set_ext("origin", &"api").await.unwrap();
    user.set("nothing", &Value::Null).await.unwrap();
    assert!(user.has_staged());
    assert_eq!(
        user.get::<String>("name").await.unwrap().as_deref(),
        Some("John"),
        "staged reads back"
    );
    assert!(
        !subjects.exists("user:9").await.unwrap(),
        "nothing written before store()"
    );
    user.store().await.unwrap();
    assert!(!user.has_staged());

    // Another process writes one property and changes another.
    backend.hset_raw("s:user:9", b"pcity", b"\"Rome\"").await;
    backend.hset_raw("s:user:9", b"page", b"99").await;
    // The handle reads its cache (loaded once): it does not see them.
    assert_eq!(user.get::<u32>("age").await.unwrap(), Some(30));
    assert_eq!(user.get::<String>("city").await.unwrap(), None);

    user.delete(P, "name").await.unwrap();
    assert_eq!(
        user.get::<String>("name").await.unwrap(),
        None,
        "staged for deletion reads as missing"
    );
    user.set("age", &31).await.unwrap();
    user.store().await.unwrap();

    let mut fresh = subjects.subject("user:9").unwrap();
    assert_eq!(
        fresh.get::<String>("city").await.unwrap().as_deref(),
        Some("Rome"),
        "field-level: theirs survives"
    );
    assert_eq!(fresh.get::<u32>("age").await.unwrap(), Some(31));
    assert_eq!(fresh.get::<String>("name").await.unwrap(), None);
    assert_eq!(
        fresh.get::<Value>("nothing").await.unwrap(),
        Some(Value::Null),
        "null is not missing"
    );
    assert_eq!(fresh.get::<Value>("never").await.unwrap(), None);
    assert_eq!(
        fresh.get_ext::<String>("origin").await.unwrap().as_deref(),
        Some("api")
    );
    assert_eq!(
        fresh.get::<String>("origin").await.unwrap(),
        None,
        "kinds are separate"
    );

    // set_now writes at once, leaving other staged changes staged.
    fresh.set("later", &1).await.unwrap();
    fresh.set_now("now", &2).await.unwrap();
    assert_eq!(
        backend.hget_raw("s:user:9", b"pnow").await.as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(backend.hget_raw("s:user:9", b"plater").await, None);
    assert!(fresh.has_staged());
    // reload() drops the cache and what was staged.
    fresh.reload();
    assert_eq!(fresh.get::<u32>("later").await.unwrap(), None);
    assert_eq!(subjects.list("user:*").await.unwrap(), ["user:9"]);
    assert!(subjects.delete("user:9").await.unwrap());
    assert!(!subjects.exists("user:9").await.unwrap());
}

/// 16 tasks × 250 `set_with(counter, +1)` on one subject end at 4,000.
pub async fn handles_on_many_tasks_count_to_exactly_4000(backend: Backend) {
    let subjects = subjects(&backend);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut counter = subjects.subject("stats").unwrap();
        tasks.push(tokio::spawn(async move {
            for _ in 0..250 {
                counter
                    .set_with("counter", |n: Option<u64>| n.unwrap_or(0) + 1)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut stats = subjects.subject("stats").unwrap();
    assert_eq!(stats.get::<u64>("counter").await.unwrap(), Some(4000));
    assert_eq!(
        backend.hget_raw("s:stats", b"pcounter").await.as_deref(),
        Some(&b"4000"[..])
    );
}

pub async fn callbacks_see_old_new_and_kind(backend: Backend) {
    let subjects = subjects(&backend);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut s = subjects.subject("watched").unwrap();
    let sink = Arc::clone(&seen);
    s.on_change(move |change| {
        sink.lock().unwrap().push((
            change.kind,
            change.name.clone(),
            change.old.clone(),
            change.new.clone(),
        ));
    });
    s.set("a", &1).await.unwrap();
    s.set_ext("a", &"x").await.unwrap();
    s.store().await.unwrap();
    s.set_now("a", &2).await.unwrap();
    let n: u32 = s
        .set_with("a", |n: Option<u32>| n.unwrap_or(0) * 10)
        .await
        .unwrap();
    assert_eq!(n, 20);
    s.delete(P, "a").await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (P, "a".to_owned(), None, Some(json!(1))),
            (E, "a".to_owned(), None, Some(json!("x"))),
            (P, "a".to_owned(), Some(json!(1)), Some(json!(2))),
            (P, "a".to_owned(), Some(json!(2)), Some(json!(20))),
            (P, "a".to_owned(), Some(json!(20)), None),
        ]
    );
}

pub async fn handle_reports_a_bad_property_and_reads_the_rest(backend: Backend) {
    let subjects = subjects(&backend);
    backend.hset_raw("s:half", b"pgood", b"1").await;
    backend.hset_raw("s:half", b"pbad", b"[1,").await;
    let mut s = subjects.subject("half").unwrap();
    assert_eq!(s.get::<u32>("good").await.unwrap(), Some(1));
    let error = s.get::<u32>("bad").await.unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::Deserialization, "s:half property pbad"),
        "{error}"
    );
    let error = s
        .set_with("bad", |n: Option<u32>| n.unwrap_or(0))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization, "{error}");
    let error = subjects.subject("bad\nname").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
}

/// A stored value of another shape than the closure's `T` (valid JSON, not
/// a `T`) is a decoding error naming the subject and the property, never
/// `Aborted`; the closure never runs and nothing is written.
pub async fn set_with_of_a_value_of_another_shape_names_subject_and_property(backend: Backend) {
    let subjects = subjects(&backend);
    backend.hset_raw("s:shapes", b"page", b"\"thirty\"").await;
    backend.hset_raw("s:shapes", b"eorigin", b"[1, 2]").await;
    let mut s = subjects.subject("shapes").unwrap();
    for (kind, prop, field) in [(P, "age", "page"), (E, "origin", "eorigin")] {
        let calls = AtomicU32::new(0);
        let error = s
            .set_with_of(kind, prop, |n: Option<u32>| {
                calls.fetch_add(1, Ordering::SeqCst);
                n.unwrap_or(0) + 1
            })
            .await
            .unwrap_err();
        assert_eq!(
            (error.kind(), error.key()),
            (
                ErrorKind::Deserialization,
                format!("s:shapes property {field}").as_str()
            ),
            "{error}"
        );
        assert!(error.to_string().contains("u32"), "names the type: {error}");
        assert!(
            !error.to_string().contains("thirty"),
            "no data in errors: {error}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0, "the closure never sees it");
    }
    assert_eq!(
        backend.hget_raw("s:shapes", b"page").await.as_deref(),
        Some(&b"\"thirty\""[..]),
        "nothing written"
    );
    // A value that does not serialize is a serialization error naming them.
    let error = s
        .set_with("map", |_: Option<BTreeMap<(u8, u8), u8>>| {
            BTreeMap::from([((1, 2), 3)])
        })
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::Serialization, "s:shapes property pmap"),
        "{error}"
    );
}

pub async fn handle_increment_is_one_server_step_and_tells_callbacks(backend: Backend) {
    let subjects = subjects(&backend);
    let mut counter = subjects.subject("counter:1").unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    counter.on_change(move |change| {
        log.lock().unwrap().push((change.old.clone(), change.new.clone()));
    });
    counter.set_now("hits", &10).await.unwrap();
    assert_eq!(counter.increment("hits", 5).await.unwrap(), 15);
    assert_eq!(counter.get::<i64>("hits").await.unwrap(), Some(15));
    // Another handle increments on the server; this one's next increment
    // answers the server's sum.
    let mut other = subjects.subject("counter:1").unwrap();
    assert_eq!(other.increment("hits", 1).await.unwrap(), 16);
    assert_eq!(counter.increment("hits", 1).await.unwrap(), 17);
    assert_eq!(counter.increment_of(E, "ext", 2).await.unwrap(), 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[1], (Some(json!(10)), Some(json!(15))));
    assert_eq!(seen[2], (Some(json!(16)), Some(json!(17))));
    assert_eq!(seen[3], (None, Some(json!(2))), "the cache knew it missing");
    let error = counter.increment("", 1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
}
