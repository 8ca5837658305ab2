//! `demo`: a tour of every family on the chosen store: documents, a synced
//! model, a task's lifecycle, a subject updated from many tasks, a tenant's
//! records with the current shared state, a trigger firing, a queue
//! drained, a config change reaching a watcher. Text for people, or one
//! JSON document with `--json` (whatever the outcome).
//!
//! # Its keys, and only its keys
//!
//! Each run works in a namespace of its own, `demo:<run id>:` (a run id
//! made of the time, the process id and a randomly keyed hash): the demo's
//! `Statehouse` puts it in front of every key it writes (after `--prefix`),
//! so the keys of every family, index and queue bookkeeping included
//! (`{tasks:b12}:by-service:…`, `t:{acme}:triggers:claims`,
//! `svc:{mailer}:pending`, …), are under it. The demo
//!
//! - refuses to start if its namespace holds a key already;
//! - writes its documents only where no key exists, recording each key
//!   before writing it (so that a write of unknown outcome is cleaned up
//!   too);
//! - at the end, after success, after a failure and after Ctrl-C (exit
//!   status 130), stops the tasks it spawned, then deletes every key under
//!   its namespace (a SCAN of it, plus the recorded keys).
//!
//! Keys outside the namespace are never read, changed or deleted, user
//! keys that happen to start with `demo:` included.
//!
//! The steps live in `documents.rs` (1 to 5), `records.rs` (6 to 9: the
//! synced model, the task, the subject, the tenant) and `events.rs` (10 to
//! 12: the trigger, the queue, the config watcher).

mod documents;
mod events;
mod records;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::Serialize;
use statehouse::{Documents, Settings, Statehouse};
use statehouse_ports::{SetOptions, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::output::{CliError, Output, ctrl_c, describe, quoted, store_name, to_json};

/// Options of `demo`; the hidden ones exist for the tests of its clean-up.
#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Stop with an error (exit status 3) after step N, as a failure would.
    #[arg(long, hide = true, value_name = "N")]
    fail_after_step: Option<u8>,
    /// Wait for Ctrl-C after step N.
    #[arg(long, hide = true, value_name = "N")]
    pause_after_step: Option<u8>,
    /// Stop after step N as Ctrl-C stops it (exit status 130).
    #[arg(long, hide = true, value_name = "N")]
    interrupt_after_step: Option<u8>,
}

/// How long the demo waits for something another task delivers (a
/// trigger, a config change) before it calls it a failure.
const WAIT: Duration = Duration::from_secs(5);

/// How many tasks update one value at once (the counter, the subject),
/// and how many times each.
const TASKS: u64 = 8;
const INCREMENTS: u64 = 25;

/// What the demo did, printed with `--json` whatever the outcome: a
/// section per step that ran, and the keys it created and removed.
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
    /// The families the tour went through, in order.
    families: Vec<&'static str>,
    #[serde(flatten)]
    documents: documents::DocumentsJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<records::ModelJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<records::TaskJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<records::SubjectJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<records::TenantJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger: Option<events::TriggerJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<events::QueueJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<events::ConfigJson>,
    alive: Option<bool>,
    /// Every key this run created (or may have: recorded before writing),
    /// with the namespace.
    created: Vec<String>,
    /// Those the clean-up could not delete.
    left_behind: Vec<String>,
}

impl Summary {
    /// Notes that the tour went through `family`.
    fn toured(&mut self, family: &'static str) {
        if !self.families.contains(&family) {
            self.families.push(family);
        }
    }
}

/// One run: its store (every key under the run's namespace), the keys it
/// recorded, the tasks it spawned.
#[derive(Debug)]
struct Run {
    state: Statehouse,
    docs: Documents,
    namespace: String,
    /// Keys (within the namespace) recorded before writing them.
    recorded: RefCell<Vec<String>>,
    /// Outlives a tour cut short, so that the clean-up can stop the tasks
    /// (and wait for them) before it deletes the keys they write.
    tasks: tokio::sync::Mutex<JoinSet<Result<(), StoreError>>>,
    /// The test hook `--interrupt-after-step`: what Ctrl-C would do.
    interrupt: Notify,
}

/// What the clean-up did.
#[derive(Debug)]
struct Cleanup {
    /// Every key of the run, with the namespace.
    created: Vec<String>,
    left_behind: Vec<String>,
    why: Option<String>,
}

impl Run {
    /// `key` as people see it: with the namespace in front.
    fn shown(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }

    /// Writes `bytes` under the new key `key` (only if it does not exist:
    /// a key the run did not create is never overwritten), recording it
    /// first so that a write whose outcome is unknown (a timeout) is
    /// cleaned up too.
    async fn create(
        &self,
        key: &str,
        bytes: impl AsRef<[u8]> + Send,
        options: SetOptions,
    ) -> Result<(), CliError> {
        self.recorded.borrow_mut().push(key.to_owned());
        let written = self.docs.set_raw(key, bytes, options.if_absent()).await?;
        if !written {
            self.recorded.borrow_mut().retain(|recorded| recorded != key);
            return Err(CliError::Failed(format!(
                "demo: {} already exists, and is not this run's; left alone",
                quoted(&self.shown(key))
            )));
        }
        Ok(())
    }

    /// Stops the run's tasks, then deletes every key under the namespace
    /// and every recorded one, unless a second Ctrl-C comes first.
    async fn clean_up(&self) -> Cleanup {
        // A task still running could write a key again after its delete.
        self.tasks.lock().await.shutdown().await;
        let mut keys: BTreeSet<String> = self.recorded.borrow().iter().cloned().collect();
        let mut why = None;
        let mut unlisted = false;
        match self.docs.list_keys("*").await {
            Ok(found) => keys.extend(found),
            Err(error) => {
                why = Some(describe(&error));
                unlisted = true;
            }
        }
        let mut left = Vec::new();
        let mut pending = keys.iter();
        let delete_all = async {
            for key in pending.by_ref() {
                // Already gone (an expired session) is fine.
                if let Err(error) = self.docs.delete(key).await {
                    left.push(self.shown(key));
                    why = Some(describe(&error));
                }
            }
        };
        tokio::select! {
            () = delete_all => {}
            () = ctrl_c() => why = Some("interrupted again (Ctrl-C)".to_owned()),
        }
        left.extend(pending.map(|key| self.shown(key)));
        if unlisted {
            // Whatever else the run wrote: the namespace as a pattern.
            left.push(self.shown("*"));
        }
        Cleanup {
            created: keys.iter().map(|key| self.shown(key)).collect(),
            left_behind: left,
            why,
        }
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

/// `demo`, on the store `settings` name, under a namespace of its own.
pub(super) async fn demo(settings: Settings, args: DemoArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let run_id = run_id();
    let namespace = format!("demo:{run_id}:");
    let mut own = settings.clone();
    own.prefix = format!("{}{namespace}", settings.prefix);
    let state = Statehouse::with_settings(own).await?;
    let run = Run {
        docs: state.documents(),
        state,
        namespace,
        recorded: RefCell::new(Vec::new()),
        tasks: tokio::sync::Mutex::new(JoinSet::new()),
        interrupt: Notify::new(),
    };
    let mut summary = Summary {
        url: settings.redacted_url(),
        prefix: settings.prefix.clone(),
        backend: run.state.backend(),
        run_id,
        namespace: run.namespace.clone(),
        ..Summary::default()
    };
    out.say(format_args!(
        "statehouse demo on {} ({}); this run's keys are under {}",
        store_name(&settings),
        run.state.backend(),
        run.namespace
    ))?;

    // Nothing of anyone else's is ever deleted: a namespace that holds a
    // key already is left alone, and the run stops before writing.
    let existing = run.docs.list_keys("*").await?;
    if let Some(first) = existing.first() {
        let error = CliError::Failed(format!(
            "demo: {} already holds keys (e.g. {}), not this run's; nothing written or deleted",
            run.namespace,
            quoted(&run.shown(first))
        ));
        summary.outcome = "failed";
        summary.error = Some(error.to_string());
        out.json(&summary)?;
        return Err(error);
    }

    let outcome = tokio::select! {
        result = tour(&run, &args, out, &mut summary) => result,
        () = ctrl_c() => Err(CliError::Interrupted),
        () = run.interrupt.notified() => Err(CliError::Interrupted),
    };

    let cleanup = run.clean_up().await;
    summary.created = cleanup.created;
    summary.left_behind = cleanup.left_behind;
    let why = cleanup.why.as_deref().unwrap_or("unknown");
    let removed = summary.created.len().saturating_sub(summary.left_behind.len());
    let outcome = match outcome {
        Ok(()) if !summary.left_behind.is_empty() => Err(CliError::Failed(format!(
            "demo: could not remove {} of the keys it created ({why}): {}",
            summary.left_behind.len(),
            to_json(&summary.left_behind)?
        ))),
        other => other,
    };
    match &outcome {
        Ok(()) => {
            let alive = run.docs.is_alive().await;
            summary.alive = Some(alive);
            out.say("\n13. Clean up and health")?;
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
                    "   left behind ({why}; delete them by hand): {}",
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

/// Steps 1 to 12, each followed by its checkpoint.
async fn tour(
    run: &Run,
    args: &DemoArgs,
    out: &mut Output<'_>,
    summary: &mut Summary,
) -> Result<(), CliError> {
    documents::typed(run, out, summary).await?;
    checkpoint(1, run, args, out).await?;
    documents::mget(run, out, summary).await?;
    checkpoint(2, run, args, out).await?;
    documents::counter(run, out, summary).await?;
    checkpoint(3, run, args, out).await?;
    documents::ttl(run, out, summary).await?;
    checkpoint(4, run, args, out).await?;
    documents::listing(run, out, summary).await?;
    checkpoint(5, run, args, out).await?;
    records::model(run, out, summary).await?;
    checkpoint(6, run, args, out).await?;
    records::task(run, out, summary).await?;
    checkpoint(7, run, args, out).await?;
    records::subject(run, out, summary).await?;
    checkpoint(8, run, args, out).await?;
    records::tenant(run, out, summary).await?;
    checkpoint(9, run, args, out).await?;
    events::trigger(run, out, summary).await?;
    checkpoint(10, run, args, out).await?;
    events::queue(run, out, summary).await?;
    checkpoint(11, run, args, out).await?;
    events::config(run, out, summary).await?;
    checkpoint(12, run, args, out).await
}

/// The test hooks `--fail-after-step`, `--pause-after-step` and
/// `--interrupt-after-step`.
async fn checkpoint(step: u8, run: &Run, args: &DemoArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    if args.pause_after_step == Some(step) {
        out.say(format_args!("   (paused after step {step}, waiting for Ctrl-C)"))?;
        out.flush()?;
        std::future::pending::<()>().await;
    }
    if args.interrupt_after_step == Some(step) {
        // As a Ctrl-C would: `demo` drops the tour where it stands.
        run.interrupt.notify_one();
        std::future::pending::<()>().await;
    }
    if args.fail_after_step == Some(step) {
        return Err(CliError::Failed(format!(
            "demo: stopped after step {step}, as asked (--fail-after-step)"
        )));
    }
    Ok(())
}

/// Waits for the tasks of `run` spawned to update `key`, each of which
/// must succeed.
async fn join_all(run: &Run, key: &str) -> Result<(), CliError> {
    let mut tasks = run.tasks.lock().await;
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|error| {
            CliError::Failed(format!("demo: a task updating {} failed: {error}", quoted(key)))
        })??;
    }
    Ok(())
}
