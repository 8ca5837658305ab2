//! Contract: the subjects port itself, in KRules' Redis layout.

use super::*;

pub async fn load_reads_both_kinds_and_keeps_null_apart_from_missing(backend: Backend) {
    let store = &backend.subjects;
    let space = SubjectSpace::default();
    let user = subject("user:1");
    assert!(
        store.load(&space, &user).await.unwrap().is_empty(),
        "a missing subject loads empty"
    );
    assert!(!store.exists(&space, &user).await.unwrap());
    store
        .store(
            &space,
            &user,
            &[
                set(P, "name", json!("John")),
                set(P, "age", json!(30)),
                set(P, "nothing", Value::Null),
                set(E, "origin", json!({"via": ["api", 2]})),
                set(E, "name", json!("ext")),
            ],
        )
        .await
        .unwrap();
    assert!(store.exists(&space, &user).await.unwrap());
    let data = store.load(&space, &user).await.unwrap();
    assert_eq!(
        values(&data, P),
        [
            ("age".to_owned(), Ok(json!(30))),
            ("name".to_owned(), Ok(json!("John"))),
            ("nothing".to_owned(), Ok(Value::Null)),
        ]
    );
    assert_eq!(
        values(&data, E),
        [
            ("name".to_owned(), Ok(json!("ext"))),
            ("origin".to_owned(), Ok(json!({"via": ["api", 2]}))),
        ]
    );
    for (kind, name, expected) in [
        (P, "nothing", Some(Value::Null)),
        (P, "missing", None),
        (E, "age", None),
        (E, "name", Some(json!("ext"))),
    ] {
        let got = store
            .get_property(&space, &user, kind, &prop(name))
            .await
            .unwrap();
        assert_eq!(
            got, expected,
            "{kind} {name}: null and missing differ, kinds are separate"
        );
    }
}

/// The bytes in Redis are what KRules (Python's `json.dumps`) writes and
/// reads: key `s:<prefix><subject>`, fields `p<name>`/`e<name>`.
pub async fn the_wire_layout_is_krules_layout(backend: Backend) {
    let store = &backend.subjects;
    let space = SubjectSpace::new("app:");
    let user = subject("user:7");
    store
        .store(
            &space,
            &user,
            &[
                set(P, "name", json!("John")),
                set(P, "age", json!(30)),
                set(P, "none", Value::Null),
                set(P, "nested", json!({"a": [1, 2.5, "é😀"], "b": 1e20})),
                set(E, "origin", json!("api")),
            ],
        )
        .await
        .unwrap();
    let raw = |field: &'static str| backend.hget_raw("s:app:user:7", field.as_bytes());
    assert_eq!(raw("pname").await.as_deref(), Some(&b"\"John\""[..]));
    assert_eq!(raw("page").await.as_deref(), Some(&b"30"[..]));
    assert_eq!(raw("pnone").await.as_deref(), Some(&b"null"[..]));
    assert_eq!(
        raw("pnested").await.as_deref(),
        Some(&br#"{"a": [1, 2.5, "\u00e9\ud83d\ude00"], "b": 1e+20}"#[..])
    );
    assert_eq!(raw("eorigin").await.as_deref(), Some(&b"\"api\""[..]));
    // What a Python service wrote reads back.
    backend
        .hset_raw(
            "s:app:user:7",
            b"pcity",
            br#"{"name": "M\u00fcnchen", "zip": 80331}"#,
        )
        .await;
    assert_eq!(
        store.get_property(&space, &user, P, &prop("city")).await.unwrap(),
        Some(json!({"name": "München", "zip": 80331}))
    );
    // Prefix `app` + subject `:user:7` is the same key (nothing is escaped).
    let other = SubjectSpace::new("app");
    assert_eq!(
        store
            .get_property(&other, &subject(":user:7"), P, &prop("age"))
            .await
            .unwrap(),
        Some(json!(30))
    );
}

pub async fn store_writes_field_by_field_and_keeps_other_writers_properties(backend: Backend) {
    let store = &backend.subjects;
    let space = SubjectSpace::default();
    let s = subject("device");
    store
        .store(
            &space,
            &s,
            &[
                set(P, "a", json!(1)),
                set(P, "b", json!(2)),
                set(E, "a", json!(3)),
            ],
        )
        .await
        .unwrap();
    // Another process writes a property this one never saw.
    backend.hset_raw("s:device", b"pforeign", b"\"theirs\"").await;
    store
        .store(
            &space,
            &s,
            &[
                set(P, "a", json!(10)),
                delete(P, "b"),
                delete(P, "never-there"),
                set(P, "c", json!(1)),
                delete(P, "c"),
                delete(E, "x"),
                set(E, "x", json!(true)),
            ],
        )
        .await
        .unwrap();
    let data = store.load(&space, &s).await.unwrap();
    assert_eq!(
        values(&data, P),
        [
            ("a".to_owned(), Ok(json!(10))),
            ("foreign".to_owned(), Ok(json!("theirs"))),
        ],
        "field-level writes: the other writer's property survives; a later change of a field wins"
    );
    assert_eq!(
        values(&data, E),
        [("a".to_owned(), Ok(json!(3))), ("x".to_owned(), Ok(json!(true)))]
    );
    // An empty batch writes nothing, not even an empty subject.
    store.store(&space, &subject("ghost"), &[]).await.unwrap();
    assert!(!store.exists(&space, &subject("ghost")).await.unwrap());
    // Deleting every property removes the subject, as Redis removes an empty hash.
    store
        .store(
            &space,
            &s,
            &[
                delete(P, "a"),
                delete(P, "foreign"),
                delete(E, "a"),
                delete(E, "x"),
            ],
        )
        .await
        .unwrap();
    assert!(!store.exists(&space, &s).await.unwrap());
}

pub async fn update_property_returns_old_and_new(backend: Backend) {
    let store = &backend.subjects;
    let space = SubjectSpace::default();
    let s = subject("counter");
    let name = prop("n");
    let updated = store
        .update_property(&space, &s, P, &name, &mut |old| {
            assert_eq!(old, None, "missing, not null");
            Ok(json!(1))
        })
        .await
        .unwrap();
    assert_eq!((updated.old, updated.new, updated.attempts), (None, json!(1), 1));
    store
        .store(&space, &s, &[set(P, "n", Value::Null)])
        .await
        .unwrap();
    let updated = store
        .update_property(&space, &s, P, &name, &mut |old| {
            assert_eq!(old, Some(&Value::Null));
            Ok(json!("was null"))
        })
        .await
        .unwrap();
    assert_eq!(updated.old, Some(Value::Null));
    // A failing closure writes nothing.
    let error = store
        .update_property(&space, &s, P, &name, &mut |_| Err("no".into()))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Aborted, "{error}");
    assert_eq!(error.key(), "s:counter");
    assert_eq!(
        store.get_property(&space, &s, P, &name).await.unwrap(),
        Some(json!("was null"))
    );
    assert_eq!(
        backend.hget_raw("s:counter", b"pn").await.as_deref(),
        Some(&b"\"was null\""[..])
    );
}

/// 16 tasks × 250 increments of one property end at exactly 4,000.
pub async fn concurrent_updates_of_one_property_lose_nothing(backend: Backend) {
    let space = SubjectSpace::default().with_policy(RetryPolicy::new(1000));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = backend.subjects.clone();
        let space = space.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..250 {
                store
                    .update_property(&space, &subject("hot"), P, &prop("counter"), &mut |old| {
                        Ok(json!(old.and_then(Value::as_u64).unwrap_or(0) + 1))
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        backend
            .subjects
            .get_property(&space, &subject("hot"), P, &prop("counter"))
            .await
            .unwrap(),
        Some(json!(4000))
    );
}

pub async fn conflict_reruns_the_closure_with_the_new_value(backend: Backend) {
    let store = backend.subjects.clone();
    let interferer = backend.subjects.clone();
    let space = SubjectSpace::default();
    let s = subject("raced");
    store.store(&space, &s, &[set(P, "n", json!(1))]).await.unwrap();
    let runtime = tokio::runtime::Handle::current();
    let calls = AtomicU32::new(0);
    let mut seen = Vec::new();
    let updated = store
        .update_property(&space, &s, P, &prop("n"), &mut |old| {
            seen.push(old.cloned());
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                // Another property of the same subject: still a conflict
                // (the whole hash is watched, as KRules watches it).
                tokio::task::block_in_place(|| {
                    runtime.block_on(interferer.store(&space, &s, &[set(P, "n", json!(100))]))
                })
                .unwrap();
            }
            Ok(json!(old.and_then(Value::as_u64).unwrap_or(0) + 1))
        })
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(seen, [Some(json!(1)), Some(json!(100))]);
    assert_eq!(
        (updated.old, updated.new, updated.attempts),
        (Some(json!(100)), json!(101), 2)
    );

    let no_retry = SubjectSpace::default().with_policy(RetryPolicy::no_retry());
    let result = store
        .update_property(&no_retry, &s, P, &prop("n"), &mut |_| {
            tokio::task::block_in_place(|| {
                runtime.block_on(interferer.store(&space, &s, &[set(E, "other", json!(0))]))
            })
            .unwrap();
            Ok(json!(0))
        })
        .await;
    match result {
        Err(StoreError::Conflict { op, key, attempts }) => {
            assert_eq!((op, key.as_str(), attempts), ("update_property", "s:raced", 1));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store.get_property(&space, &s, P, &prop("n")).await.unwrap(),
        Some(json!(101))
    );
}

pub async fn invalid_json_fails_alone_naming_subject_and_property(backend: Backend) {
    let store = &backend.subjects;
    let space = SubjectSpace::default();
    let s = subject("broken");
    store
        .store(
            &space,
            &s,
            &[set(P, "good", json!(1)), set(E, "fine", json!("x"))],
        )
        .await
        .unwrap();
    backend.hset_raw("s:broken", b"pbad", b"{not json").await;
    let data = store.load(&space, &s).await.unwrap();
    assert_eq!(data.default["good"].as_ref().unwrap(), &json!(1));
    assert_eq!(data.extended["fine"].as_ref().unwrap(), &json!("x"));
    let error = data.default["bad"].as_ref().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization, "{error}");
    assert_eq!(error.key(), "s:broken property pbad");
    assert!(
        !error.to_string().contains("not json"),
        "the value stays out of messages: {error}"
    );

    let error = store.get_property(&space, &s, P, &prop("bad")).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::Deserialization, "s:broken property pbad")
    );
    let calls = AtomicU32::new(0);
    let error = store
        .update_property(&space, &s, P, &prop("bad"), &mut |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(json!(0))
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization, "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the closure never sees bad data");
    // Overwriting the bad property by a batch repairs it.
    store
        .store(&space, &s, &[set(P, "bad", json!("ok"))])
        .await
        .unwrap();
    assert_eq!(
        store.get_property(&space, &s, P, &prop("bad")).await.unwrap(),
        Some(json!("ok"))
    );
}

pub async fn fields_without_a_marker_are_ignored(backend: Backend) {
    let store = &backend.subjects;
    let space = SubjectSpace::default();
    let s = subject("mixed");
    store
        .store(&space, &s, &[set(P, "kept", json!(1))])
        .await
        .unwrap();
    for field in [&b"xother"[..], b"p", b"e", b"Pupper", b"\xffbinary"] {
        backend.hset_raw("s:mixed", field, b"not even json").await;
    }
    let data = store.load(&space, &s).await.unwrap();
    assert_eq!(values(&data, P), [("kept".to_owned(), Ok(json!(1)))]);
    assert!(data.extended.is_empty());
    // A batch leaves them alone.
    store.store(&space, &s, &[delete(P, "kept")]).await.unwrap();
    assert_eq!(
        backend.hget_raw("s:mixed", b"xother").await.as_deref(),
        Some(&b"not even json"[..])
    );
    assert!(store.exists(&space, &s).await.unwrap());
}

pub async fn a_subject_key_of_another_type_is_wrong_type(backend: Backend) {
    let store = &backend.subjects;
    let space = SubjectSpace::default();
    let s = subject("stringly");
    backend.docs().set("s:stringly", &"a document").await.unwrap();
    let expect = |result: Result<(), StoreError>| {
        let error = result.unwrap_err();
        assert_eq!(
            (error.kind(), error.key()),
            (ErrorKind::WrongType, "s:stringly"),
            "{error}"
        );
    };
    expect(store.load(&space, &s).await.map(drop));
    expect(store.get_property(&space, &s, P, &prop("a")).await.map(drop));
    expect(
        store
            .store(&space, &s, &[set(P, "a", json!(1)), delete(P, "b")])
            .await,
    );
    expect(store.store(&space, &s, &[delete(P, "b")]).await);
    expect(
        store
            .update_property(&space, &s, P, &prop("a"), &mut |_| Ok(json!(1)))
            .await
            .map(drop),
    );
    expect(store.exists(&space, &s).await.map(drop));
    expect(store.delete_subject(&space, &s).await.map(drop));
    assert_eq!(
        backend
            .docs()
            .get::<String>("s:stringly")
            .await
            .unwrap()
            .as_deref(),
        Some("a document"),
        "nothing was written"
    );
    assert!(
        store
            .list(&space, &KeyPattern::new("*").unwrap())
            .collect()
            .await
            .unwrap()
            .is_empty(),
        "listings hold subjects only"
    );
}

pub async fn list_matches_names_under_the_prefix_taken_literally(backend: Backend) {
    let store = &backend.subjects;
    let literal = SubjectSpace::new("x[1]:");
    let lookalike = SubjectSpace::new("x1:");
    for name in ["user:1", "user:2", "device:1"] {
        store
            .store(&literal, &subject(name), &[set(P, "v", json!(1))])
            .await
            .unwrap();
    }
    store
        .store(&lookalike, &subject("user:3"), &[set(P, "v", json!(1))])
        .await
        .unwrap();
    let list = |space: &SubjectSpace, pattern: &str| {
        let space = space.clone();
        let pattern = KeyPattern::new(pattern).unwrap();
        let store = Arc::clone(&backend.subjects);
        async move { store.list(&space, &pattern).collect_sorted().await.unwrap() }
    };
    assert_eq!(list(&literal, "user:*").await, ["user:1", "user:2"]);
    assert_eq!(list(&literal, "*").await, ["device:1", "user:1", "user:2"]);
    assert_eq!(list(&lookalike, "*").await, ["user:3"]);
    assert!(list(&SubjectSpace::new("nothing:"), "*").await.is_empty());
    assert_eq!(list(&SubjectSpace::default(), "x1:*").await, ["x1:user:3"]);

    assert!(store.delete_subject(&literal, &subject("user:1")).await.unwrap());
    assert!(!store.delete_subject(&literal, &subject("user:1")).await.unwrap());
    assert_eq!(list(&literal, "user:*").await, ["user:2"]);
}

pub async fn increment_property_adds_on_the_server_and_refuses_non_integers(backend: Backend) {
    let space = SubjectSpace::default();
    let store = &backend.subjects;
    let device = subject("device:inc");
    assert_eq!(
        store
            .increment_property(&space, &device, P, &prop("count"), 3)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .increment_property(&space, &device, E, &prop("count"), -1)
            .await
            .unwrap(),
        -1
    );
    assert_eq!(
        store
            .increment_property(&space, &device, P, &prop("count"), 4)
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        backend.hget_raw("s:device:inc", b"pcount").await.as_deref(),
        Some(&b"7"[..])
    );
    assert_eq!(
        store
            .get_property(&space, &device, E, &prop("count"))
            .await
            .unwrap(),
        Some(json!(-1))
    );

    for (field, text) in [
        (&b"pfloat"[..], &b"1.5"[..]),
        (b"pname", b"\"Ann\""),
        (b"pbad", b"{not json"),
    ] {
        backend.hset_raw("s:device:inc", field, text).await;
        let name = std::str::from_utf8(&field[1..]).unwrap();
        let error = store
            .increment_property(&space, &device, P, &prop(name), 1)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Deserialization, "{error}");
        let field_name = std::str::from_utf8(field).unwrap();
        assert_eq!(error.key(), format!("s:device:inc property {field_name}"));
        assert_eq!(
            backend.hget_raw("s:device:inc", field).await.as_deref(),
            Some(text)
        );
    }
    backend
        .hset_raw("s:device:inc", b"pbig", i64::MAX.to_string().as_bytes())
        .await;
    let error = store
        .increment_property(&space, &device, P, &prop("big"), 1)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(error.key(), "s:device:inc property pbig");

    backend.plant_hash("h").await;
    backend.docs().set("s:doc", &1).await.unwrap();
    let error = store
        .increment_property(&space, &subject("doc"), P, &prop("n"), 1)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::WrongType, "{error}");
    assert_eq!(error.key(), "s:doc");
    assert_eq!(backend.docs().get::<i32>("s:doc").await.unwrap(), Some(1));
}
