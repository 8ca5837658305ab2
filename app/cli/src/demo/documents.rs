//! Steps 1 to 5 of the demo: typed documents, `mget` with a result per key,
//! an atomic counter under contention, a TTL set with the write, listing by
//! pattern.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use statehouse_ports::{KeyTtl, SetOptions, StoreError, Ttl, Update, ValidationExt};

use super::{INCREMENTS, Run, Summary, TASKS, join_all};
use crate::output::{CliError, Output, describe, quoted, to_json, ttl_in_words};

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

/// What steps 1 to 5 did (at the top level of the demo's `--json`).
#[derive(Debug, Default, Serialize)]
pub(super) struct DocumentsJson {
    user: Option<User>,
    mget: Vec<MgetResult>,
    counter: Option<u64>,
    session_ttl_ms: Option<u64>,
    session_expired: bool,
    zero_ttl_refused: Option<String>,
    listed: Vec<String>,
}

/// One key of the mget step.
#[derive(Debug, Serialize)]
struct MgetResult {
    key: String,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Step 1: a typed document written and read back.
pub(super) async fn typed(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    out.say("\n1. Typed documents (JSON; enums lowercase, timestamps RFC 3339 UTC)")?;
    let key = "user:1";
    let ada = User {
        name: "Ada".into(),
        role: Role::Admin,
        joined: chrono::Utc::now(),
    };
    run.create(key, to_json(&ada)?, SetOptions::new()).await?;
    let raw = run.docs.get_raw(key).await?.unwrap_or_default();
    out.say(format_args!(
        "   set {} -> stored {}",
        run.shown(key),
        String::from_utf8_lossy(&raw)
    ))?;
    let back: Option<User> = run.docs.get(key).await?;
    out.say(format_args!("   get {} -> {}", run.shown(key), to_json(&back)?))?;
    if back.as_ref() != Some(&ada) {
        return Err(CliError::Failed(format!(
            "demo: the document {} did not round-trip",
            quoted(&run.shown(key))
        )));
    }
    summary.documents.user = back;
    summary.toured("documents");
    Ok(())
}

/// Step 2: `mget`, a result per key, a bad one failing alone.
pub(super) async fn mget(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    out.say("\n2. mget reports a result per key")?;
    run.create("user:broken", "{not json", SetOptions::new()).await?;
    let keys = ["user:1", "user:2", "user:broken", "bad\nkey"];
    let results = run.docs.mget::<User>(&keys).await?;
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
        let key = run.shown(key);
        out.say(format_args!("   {}: {shown}", quoted(&key)))?;
        summary.documents.mget.push(MgetResult { key, result, error });
    }
    Ok(())
}

/// Step 3: many tasks increment one counter atomically; none is lost.
pub(super) async fn counter(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    let expected = TASKS * INCREMENTS;
    out.say(format_args!(
        "\n3. Atomic updates: {TASKS} tasks x {INCREMENTS} increments of one counter"
    ))?;
    // The counter starts at 0 in a key of this run's: a total below the
    // expected one means an increment was lost, and nothing else.
    let key = "counter";
    run.create(key, "0", SetOptions::new()).await?;
    {
        let mut tasks = run.tasks.lock().await;
        for _ in 0..TASKS {
            let docs = run.docs.clone();
            tasks.spawn(async move {
                for _ in 0..INCREMENTS {
                    docs.update(key, |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                        .await?;
                }
                Ok::<(), StoreError>(())
            });
        }
    }
    join_all(run, &run.shown(key)).await?;
    let counter: Option<u64> = run.docs.get(key).await?;
    let shown = counter.map_or_else(|| "missing".to_owned(), |n| n.to_string());
    out.say(format_args!(
        "   {} = {shown} (expected {expected})",
        run.shown(key)
    ))?;
    summary.documents.counter = counter;
    if counter != Some(expected) {
        return Err(CliError::Failed(format!(
            "demo: the counter {} is {shown} instead of {expected}: an increment was lost",
            quoted(&run.shown(key))
        )));
    }
    Ok(())
}

/// Step 4: a TTL set with the write; the key expires.
pub(super) async fn ttl(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    out.say("\n4. TTLs are set with the write")?;
    let key = "session";
    run.create(
        key,
        to_json("token")?,
        SetOptions::new().ttl(Ttl::from_millis(300).for_op("set", key)?),
    )
    .await?;
    let ttl = run.docs.ttl(key).await?;
    out.say(format_args!("   {} ttl -> {}", run.shown(key), ttl_in_words(ttl)))?;
    if let KeyTtl::ExpiresIn(left) = ttl {
        summary.documents.session_ttl_ms = u64::try_from(left.as_millis()).ok();
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    let exists = run.docs.exists(key).await?;
    out.say(format_args!("   after 350 ms: exists = {exists}"))?;
    summary.documents.session_expired = !exists;
    if let Err(error) = run.docs.set_with_ttl(key, &"token", Duration::ZERO).await {
        out.say(format_args!("   a zero TTL is refused: {}", describe(&error)))?;
        summary.documents.zero_ttl_refused = Some(describe(&error));
    }
    Ok(())
}

/// Step 5: listing by pattern.
pub(super) async fn listing(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    out.say("\n5. Listing by pattern (SCAN, never KEYS)")?;
    let pattern = "user:*";
    let listed: Vec<String> = run
        .docs
        .list_keys(pattern)
        .await?
        .iter()
        .map(|key| run.shown(key))
        .collect();
    out.say(format_args!("   {} -> {}", run.shown(pattern), to_json(&listed)?))?;
    summary.documents.listed = listed;
    Ok(())
}
