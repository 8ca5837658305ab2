//! `demo`: a short tour of what statehouse does, on the chosen store.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use statehouse_ports::{KeyTtl, SetOptions, StoreError, Update};

use super::documents::ttl_in_words;
use super::{CliError, Output, describe, quoted, store_name, to_json};
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

/// What the demo did, printed with `--json`.
#[derive(Debug, Default, Serialize)]
struct Summary {
    outcome: &'static str,
    url: String,
    prefix: String,
    backend: &'static str,
    user: Option<User>,
    mget: Vec<MgetResult>,
    counter: Option<u64>,
    session_ttl_ms: Option<u64>,
    session_expired: bool,
    zero_ttl_refused: Option<String>,
    listed: Vec<String>,
    removed: usize,
    alive: bool,
}

/// One key of the mget step.
#[derive(Debug, Serialize)]
struct MgetResult {
    key: String,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(super) async fn demo(state: &Statehouse, out: &mut Output<'_>) -> Result<(), CliError> {
    let docs = state.documents();
    let mut summary = Summary {
        url: state.settings().redacted_url(),
        prefix: state.settings().prefix.clone(),
        backend: state.backend(),
        ..Summary::default()
    };
    out.say(format_args!(
        "statehouse demo on {} ({})",
        store_name(state.settings()),
        state.backend()
    ))?;

    out.say("\n1. Typed documents (JSON; enums lowercase, timestamps RFC 3339 UTC)")?;
    let ada = User {
        name: "Ada".into(),
        role: Role::Admin,
        joined: chrono::Utc::now(),
    };
    docs.set("demo:user:1", &ada).await?;
    let raw = docs.get_raw("demo:user:1").await?.unwrap_or_default();
    out.say(format_args!(
        "   set demo:user:1 -> stored {}",
        String::from_utf8_lossy(&raw)
    ))?;
    let back: Option<User> = docs.get("demo:user:1").await?;
    out.say(format_args!("   get demo:user:1 -> {}", to_json(&back)?))?;
    if back.as_ref() != Some(&ada) {
        return Err(CliError::Failed("demo: the document did not round-trip".into()));
    }
    summary.user = back;

    out.say("\n2. mget reports a result per key")?;
    docs.set_raw("demo:user:broken", "{not json", SetOptions::new())
        .await?;
    let keys = ["demo:user:1", "demo:user:2", "demo:user:broken", "bad\nkey"];
    let results = docs.mget::<User>(&keys).await?;
    for (key, result) in keys.iter().zip(&results) {
        let (shown, result, error) = match result {
            Ok(Some(user)) => (format!("found {}", user.name), "found", None),
            Ok(None) => ("absent".to_owned(), "absent", None),
            Err(error) => (
                format!("failed: {}", describe(error)),
                "failed",
                Some(describe(error)),
            ),
        };
        out.say(format_args!("   {}: {shown}", quoted(key)))?;
        summary.mget.push(MgetResult {
            key: (*key).to_owned(),
            result,
            error,
        });
    }

    out.say("\n3. Atomic updates: 8 tasks x 25 increments of one counter")?;
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
    out.say(format_args!(
        "   demo:counter = {} (expected 200)",
        counter.unwrap_or(0)
    ))?;
    if counter != Some(200) {
        return Err(CliError::Failed("demo: an increment was lost".into()));
    }
    summary.counter = counter;

    out.say("\n4. TTLs are set with the write")?;
    docs.set_with_ttl("demo:session", &"token", Duration::from_millis(300))
        .await?;
    let ttl = docs.ttl("demo:session").await?;
    out.say(format_args!("   demo:session ttl -> {}", ttl_in_words(ttl)))?;
    if let KeyTtl::ExpiresIn(left) = ttl {
        summary.session_ttl_ms = u64::try_from(left.as_millis()).ok();
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    let exists = docs.exists("demo:session").await?;
    out.say(format_args!("   after 350 ms: exists = {exists}"))?;
    summary.session_expired = !exists;
    let zero = docs.set_with_ttl("demo:session", &"token", Duration::ZERO).await;
    if let Err(error) = zero {
        out.say(format_args!("   a zero TTL is refused: {}", describe(&error)))?;
        summary.zero_ttl_refused = Some(describe(&error));
    }

    out.say("\n5. Listing by pattern (SCAN, never KEYS)")?;
    summary.listed = docs.list_keys("demo:user:*").await?;
    out.say(format_args!("   demo:user:* -> {}", to_json(&summary.listed)?))?;

    out.say("\n6. Clean up and health")?;
    for key in docs.list_keys("demo:*").await? {
        summary.removed += usize::from(docs.delete(&key).await?);
    }
    summary.alive = docs.is_alive().await;
    out.say(format_args!(
        "   deleted {} demo keys; store alive = {}",
        summary.removed, summary.alive
    ))?;
    summary.outcome = "done";
    out.json(&summary)
}
