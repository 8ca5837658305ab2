//! krules-framework 3.3.0 (`SubjectsRedisStorage`): a subject is the hash
//! `s:{prefix}{subject}`, fields `p<name>`/`e<name>` of `json.dumps` text.

use serde_json::{Value, json};
use statehouse::{PropertyKind, Statehouse, Subject};

use crate::{Res, expect};

/// KRules' `key_prefix` in interop.py.
const PREFIX: &str = "interop:";

fn subject(state: &Statehouse, name: &str) -> Res<Subject> {
    Ok(state.subjects().with_prefix(PREFIX).subject(name)?)
}

/// What KRules stored (`set` then `store`), typed.
pub(crate) async fn read(state: &Statehouse) -> Res<()> {
    let mut user = subject(state, "user:py")?;
    expect("name", user.get::<String>("name").await?, Some("Zoë 🎉".into()))?;
    expect("age", user.get::<u32>("age").await?, Some(42))?;
    expect("score", user.get::<f64>("score").await?, Some(1e20))?;
    expect(
        "tags",
        user.get::<Vec<String>>("tags").await?,
        Some(vec!["a".into(), "é".into()]),
    )?;
    expect(
        "profile",
        user.get::<Value>("profile").await?,
        Some(json!({"city": "Torino", "zip": null})),
    )?;
    expect(
        "origin (extended)",
        user.get_of::<String>(PropertyKind::Extended, "origin").await?,
        Some("krules".into()),
    )
}

/// Properties KRules reads back (`krules-read`).
pub(crate) async fn write(state: &Statehouse) -> Res<()> {
    let mut user = subject(state, "user:rs")?;
    user.set("name", "Ada 🎉").await?;
    user.set("age", &36).await?;
    user.set("ratio", &0.1).await?;
    user.set("big", &1e16).await?;
    user.set("flags", &json!([true, false, null])).await?;
    user.set("nested", &json!({"k": [1, 2.5]})).await?;
    user.set_ext("origin", "statehouse").await?;
    user.store().await?;
    Ok(())
}

/// `n` atomic increments with `set_with`, against KRules' callable `set`:
/// the `i`-th waits until KRules made `i` of its own, so the two
/// interleave (KRules' increments land inside `set_with`'s WATCH sections,
/// which then start over).
pub(crate) async fn race(state: &Statehouse, url: &str, n: u64) -> Res<()> {
    let mut counter = subject(state, "counter")?;
    crate::start_together(url, "krules-race").await?;
    let mut mine = Vec::new();
    for i in 0..n {
        crate::pace("krules-race", || async move {
            // A fresh handle reads the stored value (a handle caches).
            let hits = subject(state, "counter")?.get::<u64>("hits").await?;
            Ok(hits.unwrap_or(0) > 2 * i)
        })
        .await?;
        mine.push(
            counter
                .set_with("hits", |hits: Option<u64>| hits.unwrap_or(0) + 1)
                .await?,
        );
    }
    let jumps = mine.windows(2).filter(|pair| pair[1] != pair[0] + 1).count();
    println!("rust krules-race: KRules incremented in between {jumps} times of {n}");
    Ok(())
}

/// Every increment of both sides is there.
pub(crate) async fn check(state: &Statehouse, total: u64) -> Res<()> {
    let mut counter = subject(state, "counter")?;
    expect("hits", counter.get::<u64>("hits").await?, Some(total))
}
