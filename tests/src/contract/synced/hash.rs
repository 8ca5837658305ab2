//! Contract: synced models in the hash layout, byte for byte: what Python's
//! pydantic-state writes is read, and only changed fields are written.

use statehouse::{ErrorKind, ModelLayout, Synced};

use super::{Account, Backend, fields_of, load, stored};

const HASH: ModelLayout = ModelLayout::Hash;

/// Plants `fields` as another process (a Python service) writes them.
async fn plant(backend: &Backend, key: &str, fields: &[(&str, &str)]) {
    for (field, value) in fields {
        backend.hset_raw(key, field.as_bytes(), value.as_bytes()).await;
    }
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = fields
        .iter()
        .map(|(field, value)| ((*field).to_owned(), (*value).to_owned()))
        .collect();
    fields.sort();
    fields
}

pub async fn python_written_fields_read_leniently_and_only_changed_ones_are_written(backend: Backend) {
    // As redis-py writes a pydantic-state model's `model_dump()` (int and
    // float as `repr`, str as is), with text another writer left behind.
    let python = [
        ("id_", "acc-5"),
        ("owner", "Zoë 🎉"),
        ("balance", "1_000"),
        ("rate", "3"),
        ("vip", "true"),
        ("tags", r#"["a", "b"]"#),
        ("theme", "dark"),
    ];
    plant(&backend, "Account:acc-5", &python).await;
    let mut account = load::<Account>(&backend, HASH, "acc-5").await;
    assert_eq!(
        account.value(),
        &Account {
            id: "acc-5".into(),
            owner: "Zoë 🎉".into(),
            balance: 1000,
            rate: 3.0,
            vip: true,
            note: None,
            tags: vec!["a".into(), "b".into()],
        }
    );
    account.modify(|a| a.balance += 1).await.unwrap();
    let mut expected = python;
    expected[2] = ("balance", "1001");
    assert_eq!(
        fields_of(stored(&backend, "Account:acc-5").await),
        owned(&expected),
        "only `balance` is written: the other texts stay as they were, the unknown field too"
    );
    account.set("owner", "Ann").await.unwrap();
    expected[1] = ("owner", "Ann");
    assert_eq!(
        fields_of(stored(&backend, "Account:acc-5").await),
        owned(&expected)
    );

    // The handle remembers what it wrote; another writer's text of fields
    // it wrote before, same value or not, is read and left as it is too.
    backend.hset_raw("Account:acc-5", b"owner", b"Bo").await;
    backend.hset_raw("Account:acc-5", b"balance", b"+1_001").await;
    account.modify(|a| a.vip = false).await.unwrap();
    expected[1] = ("owner", "Bo");
    expected[2] = ("balance", "+1_001");
    expected[4] = ("vip", "False");
    assert_eq!(
        fields_of(stored(&backend, "Account:acc-5").await),
        owned(&expected)
    );
    assert_eq!(
        (account.value().owner.as_str(), account.value().balance),
        ("Bo", 1001)
    );
    account.modify(|a| a.balance += 1).await.unwrap();
    expected[2] = ("balance", "1002");
    assert_eq!(
        fields_of(stored(&backend, "Account:acc-5").await),
        owned(&expected)
    );
}

pub async fn values_have_the_bytes_python_reads_back(backend: Backend) {
    let mut account = load::<Account>(&backend, HASH, "acc-7").await;
    account
        .modify(|a| {
            a.rate = f64::NEG_INFINITY;
            a.vip = true;
            a.note = Some("hi".into());
            a.tags = vec!["x".into(), "é".into()];
            a.balance = 42;
        })
        .await
        .unwrap();
    assert_eq!(
        fields_of(stored(&backend, "Account:acc-7").await),
        owned(&[
            ("id_", "acc-7"),
            ("owner", ""),
            ("balance", "42"),
            ("rate", "-inf"),
            ("vip", "True"),
            ("note", "hi"),
            ("tags", r#"["x","é"]"#),
        ])
    );
    for (rate, text) in [
        (0.1, "0.1"),
        (1e16, "1e+16"),
        (1e-5, "1e-05"),
        (3.0, "3.0"),
        (f64::INFINITY, "inf"),
    ] {
        account.set("rate", &rate).await.unwrap();
        assert_eq!(
            backend.hget_raw("Account:acc-7", b"rate").await.unwrap(),
            text.as_bytes()
        );
        assert_eq!(load::<Account>(&backend, HASH, "acc-7").await.value().rate, rate);
    }
    account.set("vip", &false).await.unwrap();
    assert_eq!(backend.hget_raw("Account:acc-7", b"vip").await.unwrap(), b"False");
    // A field that becomes None is deleted (HDEL), nothing else is.
    account.modify(|a| a.note = None).await.unwrap();
    assert_eq!(backend.hget_raw("Account:acc-7", b"note").await, None);
    assert_eq!(backend.hget_raw("Account:acc-7", b"owner").await.unwrap(), b"");
}

pub async fn a_bad_field_names_key_field_and_type_and_the_others_stay_readable(backend: Backend) {
    let mut early = load::<Account>(&backend, HASH, "acc-6").await;
    early.modify(|a| a.owner = "Ann".into()).await.unwrap();
    backend.hset_raw("Account:acc-6", b"balance", b"lots").await;

    let error = Synced::<Account>::load_from(&backend.models(), "acc-6")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Deserialization, "{error}");
    assert_eq!(error.key(), "Account:acc-6 field balance");
    assert!(error.to_string().contains("integer (i64)"), "{error}");
    assert!(!error.to_string().contains("lots"), "{error}");

    let models = backend.models();
    let owner = Synced::<Account>::load_field::<String>(&models, "acc-6", "owner").await;
    assert_eq!(owner.unwrap().as_deref(), Some("Ann"));
    let missing = Synced::<Account>::load_field::<String>(&models, "acc-6", "note").await;
    assert_eq!(missing.unwrap(), None);
    let error = Synced::<Account>::load_field::<i64>(&models, "acc-6", "balance")
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::Deserialization, "Account:acc-6 field balance")
    );

    // A handle whose model went bad fails to modify, and writes nothing.
    let error = early.modify(|a| a.vip = true).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.key()),
        (ErrorKind::Deserialization, "Account:acc-6 field balance")
    );
    assert_eq!(backend.hget_raw("Account:acc-6", b"vip").await.unwrap(), b"False");
    // Its field writes go through: they read nothing.
    early.set("rate", &2.5).await.unwrap();
    assert_eq!(backend.hget_raw("Account:acc-6", b"rate").await.unwrap(), b"2.5");
}

pub async fn a_partial_hash_reads_missing_fields_from_the_defaults_and_the_next_write_stores_them(
    backend: Backend,
) {
    // Another service's field writes on a key that held no model (a Python
    // `HSET`, an `HINCRBY` of a field of its own).
    plant(&backend, "Account:acc-8", &[("visits", "3"), ("balance", "5")]).await;
    let mut account = load::<Account>(&backend, HASH, "acc-8").await;
    assert!(account.exists());
    assert_eq!(
        account.value(),
        &Account {
            id: "acc-8".into(),
            balance: 5,
            ..Account::default()
        }
    );
    account.modify(|a| a.balance += 1).await.unwrap();
    assert_eq!(
        fields_of(stored(&backend, "Account:acc-8").await),
        owned(&[
            ("id_", "acc-8"),
            ("owner", ""),
            ("balance", "6"),
            ("rate", "0.0"),
            ("vip", "False"),
            ("tags", "[]"),
            ("visits", "3"),
        ])
    );
}
