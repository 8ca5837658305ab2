//! `demo`: a short tour of what statehouse does, on the chosen store.
//!
//! Each run works in a namespace of its own, `demo:<run id>:`, with a run
//! id made of the time, the process id and a randomly keyed hash. It records
//! every key before writing it, writes only keys that do not exist yet, and
//! at the end deletes exactly the keys it recorded: after success, after a
//! failure, and after Ctrl-C (exit status 130). Keys of the user's that
//! happen to start with `demo:` are never read, changed or deleted.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::{Deserialize, Serialize};
use statehouse::{Documents, Statehouse};
use statehouse_ports::{KeyTtl, SetOptions, StoreError, Ttl, Update, ValidationExt};
use tokio::task::JoinSet;

use crate::output::{CliError, Output, ctrl_c, describe, quoted, store_name, to_json, ttl_in_words};

/// Options of `demo`; the hidden ones exist for the tests of its clean-up.
#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Stop with an error (exit status 3) after step N, as a failure would.
    #[arg(long, hide = true, value_name = "N")]
    fail_after_step: Option<u8>,
    /// Wait for Ctrl-C after step N.
    #[arg(long, hide = true, value_name = "N")]
    pause_after_step: Option<u8>,
}

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

/// How many tasks increment the counter, and how many times each.
const TASKS: u64 = 8;
const INCREMENTS: u64 = 25;

/// What the demo did, printed with `--json` whatever the outcome.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// `done`, `failed` or `interrupted`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    url: String,
    prefix: String,
    backend: &'static str,
    run_id: String,
    namespace: String,
    user: Option<User>,
    mget: Vec<MgetResult>,
    counter: Option<u64>,
    session_ttl_ms: Option<u64>,
    session_expired: bool,
    zero_ttl_refused: Option<String>,
    listed: Vec<String>,
    alive: Option<bool>,
    /// Every key this run created (or may have: recorded before writing).
    created: Vec<String>,
    /// Those the clean-up could not delete.
    left_behind: Vec<String>,
}

/// One key of the mget step.
#[derive(Debug, Serialize)]
struct MgetResult {
    key: String,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One run: its namespace, the keys it created, the tasks it spawned.
#[derive(Debug)]
struct Run {
    docs: Documents,
    namespace: String,
    created: RefCell<Vec<String>>,
    /// Outlives a tour cut short, so that the clean-up can stop the tasks
    /// (and wait for them) before it deletes the keys they write.
    tasks: tokio::sync::Mutex<JoinSet<Result<(), StoreError>>>,
}

impl Run {
    /// The full key of `name` in this run's namespace.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.namespace)
    }

    /// Writes `bytes` under the new key `key` (only if it does not exist:
    /// a key the run did not create is never overwritten, nor deleted
    /// later), recording it first so that a write whose outcome is unknown
    /// (a timeout) is cleaned up too.
    async fn create(
        &self,
        key: &str,
        bytes: impl AsRef<[u8]> + Send,
        options: SetOptions,
    ) -> Result<(), CliError> {
        self.created.borrow_mut().push(key.to_owned());
        let written = self.docs.set_raw(key, bytes, options.if_absent()).await?;
        if !written {
            self.created.borrow_mut().retain(|created| created != key);
            return Err(CliError::Failed(format!(
                "demo: {} already exists, and is not this run's; left alone",
                quoted(key)
            )));
        }
        Ok(())
    }

    /// Deletes every key this run created, unless a second Ctrl-C comes
    /// first; returns those left behind, and why.
    async fn clean_up(&self) -> (Vec<String>, Option<String>) {
        // A task still running could write a key again after its delete.
        self.tasks.lock().await.shutdown().await;
        let created = self.created.borrow().clone();
        let (mut left, mut why) = (Vec::new(), None);
        let mut pending = created.iter();
        let delete_all = async {
            for key in pending.by_ref() {
                // Already gone (an expired session) is fine.
                if let Err(error) = self.docs.delete(key).await {
                    left.push(key.clone());
                    why = Some(describe(&error));
                }
            }
        };
        tokio::select! {
            () = delete_all => {}
            () = ctrl_c() => why = Some("interrupted again (Ctrl-C)".to_owned()),
        }
        left.extend(pending.cloned());
        (left, why)
    }
}

/// A run id: 12 hex digits from the time, the process id and a randomly
/// keyed hasher (no dependency needed).
fn run_id() -> String {
    let mut hasher = RandomState::new().build_hasher();
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default()
        .hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

pub(super) async fn demo(state: &Statehouse, args: DemoArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let run_id = run_id();
    let run = Run {
        docs: state.documents(),
        namespace: format!("demo:{run_id}:"),
        created: RefCell::new(Vec::new()),
        tasks: tokio::sync::Mutex::new(JoinSet::new()),
    };
    let mut summary = Summary {
        url: state.settings().redacted_url(),
        prefix: state.settings().prefix.clone(),
        backend: state.backend(),
        run_id,
        namespace: run.namespace.clone(),
        ..Summary::default()
    };
    out.say(format_args!(
        "statehouse demo on {} ({}); this run's keys are under {}",
        store_name(state.settings()),
        state.backend(),
        run.namespace
    ))?;

    let outcome = tokio::select! {
        result = tour(&run, &args, out, &mut summary) => result,
        () = ctrl_c() => Err(CliError::Interrupted),
    };

    let (left_behind, why) = run.clean_up().await;
    summary.created = run.created.borrow().clone();
    let removed = summary.created.len().saturating_sub(left_behind.len());
    summary.left_behind = left_behind;
    let outcome = match outcome {
        Ok(()) if !summary.left_behind.is_empty() => Err(CliError::Failed(format!(
            "demo: could not remove {} of the keys it created ({}): {}",
            summary.left_behind.len(),
            why.as_deref().unwrap_or("unknown"),
            to_json(&summary.left_behind)?
        ))),
        other => other,
    };
    match &outcome {
        Ok(()) => {
            let alive = run.docs.is_alive().await;
            summary.alive = Some(alive);
            out.say("\n6. Clean up and health")?;
            out.say(format_args!(
                "   removed the {removed} keys it created; store alive = {alive}"
            ))?;
            summary.outcome = "done";
        }
        Err(error) => {
            let what = match error {
                CliError::Interrupted => "interrupted",
                _ => "failed",
            };
            out.say(format_args!("\n{what}: removed the {removed} keys it created"))?;
            if !summary.left_behind.is_empty() {
                out.say(format_args!(
                    "   left behind ({}; delete them by hand): {}",
                    why.as_deref().unwrap_or("unknown"),
                    to_json(&summary.left_behind)?
                ))?;
            }
            summary.outcome = what;
            summary.error = Some(error.to_string());
        }
    }
    out.json(&summary)?;
    outcome
}

/// Steps 1 to 5; every key they write is created through `run`.
async fn tour(
    run: &Run,
    args: &DemoArgs,
    out: &mut Output<'_>,
    summary: &mut Summary,
) -> Result<(), CliError> {
    let docs = &run.docs;

    out.say("\n1. Typed documents (JSON; enums lowercase, timestamps RFC 3339 UTC)")?;
    let user_key = run.key("user:1");
    let ada = User {
        name: "Ada".into(),
        role: Role::Admin,
        joined: chrono::Utc::now(),
    };
    run.create(&user_key, to_json(&ada)?, SetOptions::new()).await?;
    let raw = docs.get_raw(&user_key).await?.unwrap_or_default();
    out.say(format_args!(
        "   set {user_key} -> stored {}",
        String::from_utf8_lossy(&raw)
    ))?;
    let back: Option<User> = docs.get(&user_key).await?;
    out.say(format_args!("   get {user_key} -> {}", to_json(&back)?))?;
    if back.as_ref() != Some(&ada) {
        return Err(CliError::Failed("demo: the document did not round-trip".into()));
    }
    summary.user = back;
    checkpoint(1, args, out).await?;

    out.say("\n2. mget reports a result per key")?;
    let broken_key = run.key("user:broken");
    run.create(&broken_key, "{not json", SetOptions::new()).await?;
    let keys = [
        user_key.clone(),
        run.key("user:2"),
        broken_key,
        "bad\nkey".to_owned(),
    ];
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
            key: key.clone(),
            result,
            error,
        });
    }
    checkpoint(2, args, out).await?;

    let expected = TASKS * INCREMENTS;
    out.say(format_args!(
        "\n3. Atomic updates: {TASKS} tasks x {INCREMENTS} increments of one counter"
    ))?;
    // The counter starts at 0 in a key of this run's: a total below the
    // expected one means an increment was lost, and nothing else.
    let counter_key = run.key("counter");
    run.create(&counter_key, "0", SetOptions::new()).await?;
    let mut tasks = run.tasks.lock().await;
    for _ in 0..TASKS {
        let docs = docs.clone();
        let key = counter_key.clone();
        tasks.spawn(async move {
            for _ in 0..INCREMENTS {
                docs.update(&key, |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                    .await?;
            }
            Ok::<(), StoreError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| CliError::Failed(format!("demo: a counter task failed: {e}")))??;
    }
    drop(tasks);
    let counter: Option<u64> = docs.get(&counter_key).await?;
    out.say(format_args!(
        "   {counter_key} = {} (expected {expected})",
        counter.map_or_else(|| "missing".to_owned(), |n| n.to_string())
    ))?;
    summary.counter = counter;
    if counter != Some(expected) {
        return Err(CliError::Failed(format!(
            "demo: the counter is {} instead of {expected}: an increment was lost",
            counter.map_or_else(|| "missing".to_owned(), |n| n.to_string())
        )));
    }
    checkpoint(3, args, out).await?;

    out.say("\n4. TTLs are set with the write")?;
    let session_key = run.key("session");
    run.create(
        &session_key,
        to_json("token")?,
        SetOptions::new().ttl(Ttl::from_millis(300).for_op("set", &session_key)?),
    )
    .await?;
    let ttl = docs.ttl(&session_key).await?;
    out.say(format_args!("   {session_key} ttl -> {}", ttl_in_words(ttl)))?;
    if let KeyTtl::ExpiresIn(left) = ttl {
        summary.session_ttl_ms = u64::try_from(left.as_millis()).ok();
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    let exists = docs.exists(&session_key).await?;
    out.say(format_args!("   after 350 ms: exists = {exists}"))?;
    summary.session_expired = !exists;
    if let Err(error) = docs.set_with_ttl(&session_key, &"token", Duration::ZERO).await {
        out.say(format_args!("   a zero TTL is refused: {}", describe(&error)))?;
        summary.zero_ttl_refused = Some(describe(&error));
    }
    checkpoint(4, args, out).await?;

    out.say("\n5. Listing by pattern (SCAN, never KEYS)")?;
    let pattern = run.key("user:*");
    summary.listed = docs.list_keys(&pattern).await?;
    out.say(format_args!("   {pattern} -> {}", to_json(&summary.listed)?))?;
    checkpoint(5, args, out).await
}

/// The test hooks of `--fail-after-step` and `--pause-after-step`.
async fn checkpoint(step: u8, args: &DemoArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    if args.pause_after_step == Some(step) {
        out.say(format_args!("   (paused after step {step}, waiting for Ctrl-C)"))?;
        out.flush()?;
        std::future::pending::<()>().await;
    }
    if args.fail_after_step == Some(step) {
        return Err(CliError::Failed(format!(
            "demo: stopped after step {step}, as asked (--fail-after-step)"
        )));
    }
    Ok(())
}
