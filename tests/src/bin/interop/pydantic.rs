//! pydantic-state 0.0.7 (`BaseRedisStateModel`): a model is the hash
//! `{Class}:{id_}`, a field per attribute, values as redis-py sends them.

use serde::{Deserialize, Serialize};
use statehouse::{Statehouse, StoredModel, Synced, SyncedModel};
use statehouse_ports::hash_fields;

use crate::{Res, expect};

/// The Python class `Account` (interop.py): what a Python service writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Account {
    #[serde(rename = "id_")]
    id: String,
    owner: String,
    balance: i64,
    rate: f64,
    big: f64,
    tiny: f64,
    limit: f64,
    py_writes: u64,
    rust_writes: u64,
}

impl SyncedModel for Account {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn set_id(&mut self, id: &str) {
        self.id = id.to_owned();
    }
}

/// The Python class `Ledger`: what statehouse writes for Python to read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Ledger {
    #[serde(rename = "id_")]
    id: String,
    owner: String,
    balance: i64,
    rate: f64,
    big: f64,
    limit: f64,
    nan: f64,
    vip: bool,
    tags: Vec<String>,
}

impl SyncedModel for Ledger {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn set_id(&mut self, id: &str) {
        self.id = id.to_owned();
    }
}

/// The model Python created and assigned, typed; and its bytes are the ones
/// statehouse writes for the same values.
pub(crate) async fn read(state: &Statehouse) -> Res<()> {
    let account = Synced::<Account>::load(state, "py-1").await?;
    expect("layout", account.layout(), statehouse::ModelLayout::Hash)?;
    let expected = Account {
        id: "py-1".into(),
        owner: "Zoë 🎉".into(),
        balance: 1_000_000_000_000,
        rate: 3.0,
        big: 1e20,
        tiny: 1.5e-7,
        limit: f64::NEG_INFINITY,
        py_writes: 0,
        rust_writes: 0,
    };
    expect("Account py-1", account.value(), &expected)?;
    let Some(StoredModel::Hash(stored)) = state.models().load_raw("Account", "py-1").await? else {
        return Err("Account:py-1 is not a hash".into());
    };
    for (field, bytes) in hash_fields::to_fields(&expected)? {
        let python = stored
            .get(&field)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        expect(
            &format!("the bytes of field {field}"),
            python,
            Some(String::from_utf8_lossy(&bytes).into_owned()),
        )?;
    }
    Ok(())
}

/// The model Python reads back (`pydantic-read`).
pub(crate) async fn write(state: &Statehouse) -> Res<()> {
    let mut ledger = Synced::<Ledger>::load(state, "rs-1").await?;
    ledger
        .modify(|l| {
            l.owner = "Ada 🎉".into();
            l.balance = -7;
            l.rate = 0.1;
            l.big = 1e16;
            l.limit = f64::INFINITY;
            l.nan = f64::NAN;
        })
        .await?;
    // Field by field, as a Python attribute assignment would.
    ledger.set("vip", &true).await?;
    ledger.set("tags", &["a", "b c", "é"]).await?;
    Ok(())
}

/// `n` atomic increments of `rust_writes` while Python assigns `py_writes`
/// `1..=n`: the `i`-th waits until Python's `i`-th assignment is in, so the
/// two interleave (Python's writes land inside the modifies' WATCH
/// sections, which then start over).
pub(crate) async fn race(state: &Statehouse, url: &str, n: u64) -> Res<()> {
    let mut account = Synced::<Account>::load(state, "race").await?;
    let models = state.models();
    crate::start_together(url, "pydantic-race").await?;
    let mut seen = std::collections::BTreeSet::new();
    for i in 1..=n {
        crate::pace("pydantic-race", || async {
            let python = Synced::<Account>::load_field::<u64>(&models, "race", "py_writes").await?;
            Ok(python.unwrap_or(0) >= i)
        })
        .await?;
        seen.insert(account.modify(|a| a.rust_writes += 1).await?.py_writes);
    }
    println!(
        "rust pydantic-race: saw {} values of Python's py_writes between its modifies",
        seen.len()
    );
    Ok(())
}

/// Both sides' writes are all there: neither overwrote the other's field.
pub(crate) async fn check(state: &Statehouse, n: u64) -> Res<()> {
    let account = Synced::<Account>::load(state, "race").await?;
    expect("rust_writes", account.value().rust_writes, n)?;
    expect("py_writes", account.value().py_writes, n)
}
