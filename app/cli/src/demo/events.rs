//! Steps 10 to 12 of the demo: a trigger firing at its time, a queue
//! drained by a worker, a config change reaching a watcher.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use statehouse::{ListenOptions, Snapshot};

use super::{Run, Summary, WAIT};
use crate::output::{CliError, Output, human_duration, quoted, to_json};

/// Step 10 in `--json`.
#[derive(Debug, Serialize)]
pub(super) struct TriggerJson {
    tenant: &'static str,
    action: &'static str,
    id: &'static str,
    delay_ms: u64,
    /// When the listener got it, from the `set`.
    fired_after_ms: u64,
    /// The tenant's triggers after the listener acknowledged it.
    pending_after: usize,
}

/// Step 11 in `--json`.
#[derive(Debug, Serialize)]
pub(super) struct QueueJson {
    tenant: &'static str,
    queue: String,
    enqueued: Vec<Value>,
    /// The tenants with work for the service, before the drain.
    pending: Vec<String>,
    claimed: Vec<Value>,
    acked: usize,
    len_after: u64,
}

/// Step 12 in `--json`.
#[derive(Debug, Serialize)]
pub(super) struct ConfigJson {
    name: &'static str,
    /// The versions the watcher saw, in order.
    seen: Vec<u64>,
    value: Option<Value>,
}

/// Step 10: a trigger set a few hundred milliseconds ahead; a listener
/// gets it then, and acknowledges it.
pub(super) async fn trigger(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    let (tenant, action, id, delay) = ("acme", "remind", "ada", Duration::from_millis(300));
    out.say(format_args!(
        "\n10. Expiration triggers: {} {} of tenant {} in {}, to a listener",
        quoted(action),
        quoted(id),
        quoted(tenant),
        human_duration(delay)
    ))?;
    let triggers = run.state.triggers();
    let set_at = Instant::now();
    triggers.set(tenant, action, id, delay).await?;
    let fired = Arc::new(Mutex::new(None::<(String, String, Duration)>));
    let done = Arc::new(tokio::sync::Notify::new());
    let options = ListenOptions {
        max_idle: Duration::from_millis(100),
        ..ListenOptions::default()
    };
    let listening = triggers.listen(tenant, options, done.clone().notified_owned(), |trigger| {
        let (fired, done) = (fired.clone(), done.clone());
        async move {
            if let Ok(mut fired) = fired.lock() {
                *fired = Some((trigger.action, trigger.id, set_at.elapsed()));
            }
            // The listener acknowledges it, then stops.
            done.notify_one();
            Ok(())
        }
    });
    let what = format!(
        "trigger {} {} of tenant {}",
        quoted(action),
        quoted(id),
        quoted(tenant)
    );
    tokio::time::timeout(WAIT, listening).await.map_err(|_| {
        CliError::Failed(format!(
            "demo: the {what} did not fire within {}",
            human_duration(WAIT)
        ))
    })??;
    let got = fired.lock().ok().and_then(|mut fired| fired.take());
    let Some((got_action, got_id, after)) = got else {
        return Err(CliError::Failed(format!(
            "demo: the {what} never reached the listener"
        )));
    };
    out.say(format_args!(
        "   the listener got {} {} after {} (due after {}), and acknowledged it",
        quoted(&got_action),
        quoted(&got_id),
        human_duration(after),
        human_duration(delay)
    ))?;
    let pending = triggers.list(tenant).await?;
    out.say(format_args!("   the tenant's triggers now: {}", pending.len()))?;
    summary.trigger = Some(TriggerJson {
        tenant,
        action,
        id,
        delay_ms: millis(delay),
        fired_after_ms: millis(after),
        pending_after: pending.len(),
    });
    summary.toured("triggers");
    Ok(())
}

/// Step 11: a tenant's queue filled, then drained by a worker: claim, ack.
pub(super) async fn queue(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    let (tenant, service, batch, action) = ("acme", "mailer", "nightly", "send");
    let queues = run.state.queues();
    let queue = queues.queue(service, batch, action)?;
    let name = format!("{service}/{batch}/{action}");
    out.say(format_args!(
        "\n11. Batch queues: {} of tenant {} filled, then drained by a worker",
        quoted(&name),
        quoted(tenant)
    ))?;
    let enqueued = vec![
        json!({"to": "ada", "subject": "receipt"}),
        json!({"to": "bob", "subject": "welcome"}),
        json!({"to": "cy", "subject": "reminder"}),
    ];
    queues.enqueue(tenant, &queue, &enqueued).await?;
    let pending = queues.pending(service).await?;
    out.say(format_args!(
        "   enqueue 3 items -> tenants with work for {}: {}",
        quoted(service),
        to_json(&pending)?
    ))?;
    // A worker takes the tenant off the pending set before it drains (work
    // enqueued meanwhile marks it again), claims the items with a lease,
    // handles them and acknowledges them.
    queues.remove_pending(service, tenant).await?;
    let items = queues
        .claim::<Value>(tenant, &queue, 10, Duration::from_secs(30))
        .await?;
    let ids: Vec<u64> = items.iter().map(|item| item.id).collect();
    let claimed: Vec<Value> = items.into_iter().map(|item| item.value).collect();
    out.say(format_args!("   claim -> {}", to_json(&claimed)?))?;
    let acked = queues.ack(tenant, &queue, &ids).await?;
    let len_after = queues.len(tenant, &queue).await?;
    out.say(format_args!(
        "   ack {acked} -> {len_after} waiting; in queue order: {}",
        claimed == enqueued
    ))?;
    if claimed != enqueued || len_after != 0 {
        return Err(CliError::Failed(format!(
            "demo: queue {} of tenant {} was not drained in order",
            quoted(&name),
            quoted(tenant)
        )));
    }
    summary.queue = Some(QueueJson {
        tenant,
        queue: name,
        enqueued,
        pending,
        claimed,
        acked,
        len_after,
    });
    summary.toured("queues");
    Ok(())
}

/// Step 12: a config entry changed twice; a watcher sees each version.
pub(super) async fn config(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    let name = "checkout";
    out.say(format_args!(
        "\n12. Config store: a change of config {} reaching a watcher",
        quoted(name)
    ))?;
    let config = run.state.config();
    let mut watcher = config.watch::<Value>(name).await?;
    let mut seen = Vec::new();
    for value in [json!({"new_flow": false}), json!({"new_flow": true})] {
        let version = config.update(name, &value).await?;
        let changed = async {
            loop {
                let snapshot: Snapshot<Value> = watcher.borrow_and_update().clone();
                if let Some(current) = snapshot.current.filter(|current| current.version >= version) {
                    return Ok(current);
                }
                if watcher.changed().await.is_err() {
                    return Err(CliError::Failed(format!(
                        "demo: the watch of config {} ended (the store closed)",
                        quoted(name)
                    )));
                }
            }
        };
        let current = tokio::time::timeout(WAIT, changed).await.map_err(|_| {
            CliError::Failed(format!(
                "demo: version {version} of config {} did not reach the watcher within {}",
                quoted(name),
                human_duration(WAIT)
            ))
        })??;
        out.say(format_args!(
            "   update -> version {version}; the watcher sees version {}: {}",
            current.version, current.value
        ))?;
        seen.push(current.version);
    }
    summary.config = Some(ConfigJson {
        name,
        seen,
        value: config.fetch::<Value>(name).await?,
    });
    summary.toured("config");
    Ok(())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
