//! `demo`: a short tour of what statehouse does, on the chosen store.

use std::io::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use statehouse_ports::{SetOptions, StoreError, Update};

use super::documents::ttl_in_words;
use super::{CliError, describe, quoted, store_name, to_json};
use crate::Statehouse;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Admin,
    Member,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    role: Role,
    joined: chrono::DateTime<chrono::Utc>,
}

pub(super) async fn demo(state: &Statehouse, out: &mut dyn Write) -> Result<(), CliError> {
    let docs = state.documents();
    writeln!(
        out,
        "statehouse demo on {} ({})",
        store_name(state.settings()),
        state.backend()
    )?;

    writeln!(
        out,
        "\n1. Typed documents (JSON; enums lowercase, timestamps RFC 3339 UTC)"
    )?;
    let ada = User {
        name: "Ada".into(),
        role: Role::Admin,
        joined: chrono::Utc::now(),
    };
    docs.set("demo:user:1", &ada).await?;
    let raw = docs.get_raw("demo:user:1").await?.unwrap_or_default();
    writeln!(
        out,
        "   set demo:user:1 -> stored {}",
        String::from_utf8_lossy(&raw)
    )?;
    let back: Option<User> = docs.get("demo:user:1").await?;
    writeln!(out, "   get demo:user:1 -> {}", to_json(&back)?)?;
    if back.as_ref() != Some(&ada) {
        return Err(CliError::Failed("demo: the document did not round-trip".into()));
    }

    writeln!(out, "\n2. mget reports a result per key")?;
    docs.set_raw("demo:user:broken", "{not json", SetOptions::new())
        .await?;
    let keys = ["demo:user:1", "demo:user:2", "demo:user:broken", "bad\nkey"];
    let results = docs.mget::<User>(&keys).await?;
    for (key, result) in keys.iter().zip(&results) {
        let shown = match result {
            Ok(Some(user)) => format!("found {}", user.name),
            Ok(None) => "absent".to_owned(),
            Err(error) => format!("failed: {}", describe(error)),
        };
        writeln!(out, "   {}: {shown}", quoted(key))?;
    }

    writeln!(out, "\n3. Atomic updates: 8 tasks x 25 increments of one counter")?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let docs = docs.clone();
        tasks.spawn(async move {
            for _ in 0..25 {
                docs.update("demo:counter", |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                    .await?;
            }
            Ok::<(), StoreError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| CliError::Failed(format!("demo task failed: {e}")))??;
    }
    let counter: Option<u64> = docs.get("demo:counter").await?;
    writeln!(out, "   demo:counter = {} (expected 200)", counter.unwrap_or(0))?;
    if counter != Some(200) {
        return Err(CliError::Failed("demo: an increment was lost".into()));
    }

    writeln!(out, "\n4. TTLs are set with the write")?;
    docs.set_with_ttl("demo:session", &"token", Duration::from_millis(300))
        .await?;
    writeln!(
        out,
        "   demo:session ttl -> {}",
        ttl_in_words(docs.ttl("demo:session").await?)
    )?;
    tokio::time::sleep(Duration::from_millis(350)).await;
    writeln!(
        out,
        "   after 350 ms: exists = {}",
        docs.exists("demo:session").await?
    )?;
    let zero = docs.set_with_ttl("demo:session", &"token", Duration::ZERO).await;
    if let Err(error) = zero {
        writeln!(out, "   a zero TTL is refused: {}", describe(&error))?;
    }

    writeln!(out, "\n5. Listing by pattern (SCAN, never KEYS)")?;
    writeln!(
        out,
        "   demo:user:* -> {}",
        to_json(&docs.list_keys("demo:user:*").await?)?
    )?;

    writeln!(out, "\n6. Clean up and health")?;
    let mut removed = 0;
    for key in docs.list_keys("demo:*").await? {
        removed += usize::from(docs.delete(&key).await?);
    }
    writeln!(
        out,
        "   deleted {removed} demo keys; store alive = {}",
        docs.is_alive().await
    )?;
    Ok(())
}
