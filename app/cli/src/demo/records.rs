//! Steps 6 to 9 of the demo: a synced model shared by two handles, a
//! task's lifecycle, a subject updated from many tasks, and a tenant's
//! records with the task-local current shared state of a request.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use statehouse::{PageRequest, SharedState, StoreError, Synced, SyncedModel, TaskStatus};

use super::{INCREMENTS, Run, Summary, TASKS, join_all};
use crate::output::{CliError, Output, describe, quoted, to_json};

/// An order, synced with the hash `Order:<id>` (what a Python service
/// would write too).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Order {
    id: String,
    items: Vec<String>,
    total_cents: u64,
}

impl SyncedModel for Order {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn set_id(&mut self, id: &str) {
        id.clone_into(&mut self.id);
    }
}

/// Step 6 in `--json`.
#[derive(Debug, Serialize)]
pub(super) struct ModelJson {
    key: String,
    value: Order,
    /// Whether the first handle saw the second one's change on refresh.
    seen_by_refresh: bool,
}

/// Step 7 in `--json`.
#[derive(Debug, Serialize)]
pub(super) struct TaskJson {
    id: String,
    service: String,
    /// The statuses it went through, in order.
    statuses: Vec<TaskStatus>,
    log: Vec<String>,
    /// Why leaving its final status was refused.
    final_refused: Option<String>,
    /// The tasks listed for its service.
    listed: Vec<String>,
}

/// Step 8 in `--json`.
#[derive(Debug, Serialize)]
pub(super) struct SubjectJson {
    subject: String,
    property: &'static str,
    tasks: u64,
    updates_each: u64,
    value: Option<u64>,
}

/// Step 9 in `--json`.
#[derive(Debug, Serialize)]
pub(super) struct TenantJson {
    tenant: &'static str,
    user: Value,
    order: Value,
    /// The user's shared state "draft", as the request's handlers left it.
    shared_state: Value,
    /// What `SharedState::current` says outside a request.
    outside_a_request: Option<String>,
}

/// Step 6: a synced model: written through by one handle, seen by another.
pub(super) async fn model(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    out.say("\n6. Synced models: a struct bound to the hash Order:<id>, written through field by field")?;
    let mut order = Synced::<Order>::load(&run.state, "7").await?;
    let key = run.shown(order.key());
    out.say(format_args!("   load Order 7 -> exists = {}", order.exists()))?;
    order
        .modify(|order| {
            order.items.push("tea".into());
            order.total_cents += 450;
        })
        .await?;
    out.say(format_args!("   modify -> {key} = {}", to_json(order.value())?))?;
    // Another handle (another process, in real life) changes it too.
    let mut other = Synced::<Order>::load(&run.state, "7").await?;
    other
        .modify(|order| {
            order.items.push("cake".into());
            order.total_cents += 300;
        })
        .await?;
    order.refresh().await?;
    let seen = order.value().items.len() == 2;
    out.say(format_args!(
        "   a second handle adds cake; refresh -> {}",
        to_json(order.value())?
    ))?;
    if !seen {
        return Err(CliError::Failed(format!(
            "demo: the model {} did not show the second handle's change",
            quoted(&key)
        )));
    }
    summary.model = Some(ModelJson {
        key,
        value: order.value().clone(),
        seen_by_refresh: seen,
    });
    summary.toured("synced");
    Ok(())
}

/// Step 7: a task from pending to completed, logged; a final status stays.
pub(super) async fn task(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    out.say("\n7. Task lifecycle: pending -> running -> completed, with a log")?;
    let tasks = run.state.tasks();
    let (id, service) = ("export-1", "reports");
    let mut metadata = serde_json::Map::new();
    metadata.insert("rows".into(), json!(1200));
    let created = tasks.create_with(id, service, "ada", metadata).await?;
    let mut statuses = vec![created.status];
    out.say(format_args!("   save task {} -> {}", quoted(id), created.status))?;
    let running = tasks.set_status(id, TaskStatus::Running, Some("started")).await?;
    statuses.push(running.status);
    tasks.append_log(id, "600 of 1200 rows").await?;
    let done = tasks.set_status(id, TaskStatus::Completed, Some("done")).await?;
    statuses.push(done.status);
    let log: Vec<String> = done.log.iter().map(|entry| entry.message.clone()).collect();
    out.say(format_args!(
        "   -> {} -> {}; log {}",
        running.status,
        done.status,
        to_json(&log)?
    ))?;
    let final_refused = match tasks.set_status(id, TaskStatus::Running, None).await {
        Err(error @ StoreError::InvalidTransition { .. }) => Some(describe(&error)),
        Err(other) => return Err(other.into()),
        Ok(_) => None,
    };
    match &final_refused {
        Some(why) => out.say(format_args!("   back to running is refused: {why}"))?,
        None => {
            return Err(CliError::Failed(format!(
                "demo: task {} left its final status",
                quoted(id)
            )));
        }
    }
    let page = tasks.list_by_service(service, PageRequest::first(10)).await?;
    let listed = page
        .items
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .map(|task| task.id.as_str().to_owned())
        .collect::<Vec<_>>();
    out.say(format_args!(
        "   tasks of service {} -> {}",
        quoted(service),
        to_json(&listed)?
    ))?;
    summary.task = Some(TaskJson {
        id: id.to_owned(),
        service: service.to_owned(),
        statuses,
        log,
        final_refused,
        listed,
    });
    summary.toured("tasks");
    Ok(())
}

/// Step 8: a subject's property updated atomically from many tasks at once.
pub(super) async fn subject(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    let (name, property) = ("sensor-1", "readings");
    out.say(format_args!(
        "\n8. Subjects (KRules' layout): {TASKS} tasks x {INCREMENTS} set_with on one property"
    ))?;
    let subjects = run.state.subjects();
    let shown = format!("{} property {}", quoted(name), quoted(property));
    {
        let mut tasks = run.tasks.lock().await;
        for _ in 0..TASKS {
            // A handle per task, as each service or request would hold.
            let mut subject = subjects.subject(name)?;
            tasks.spawn(async move {
                for _ in 0..INCREMENTS {
                    subject
                        .set_with(property, |n: Option<u64>| n.unwrap_or(0) + 1)
                        .await?;
                }
                Ok::<(), StoreError>(())
            });
        }
    }
    join_all(run, &format!("subject {shown}")).await?;
    let value: Option<u64> = subjects.subject(name)?.get(property).await?;
    let expected = TASKS * INCREMENTS;
    let text = value.map_or_else(|| "missing".to_owned(), |n| n.to_string());
    out.say(format_args!(
        "   subject {shown} = {text} (expected {expected}), in hash {}",
        run.shown(&format!("s:{name}"))
    ))?;
    summary.subject = Some(SubjectJson {
        subject: name.to_owned(),
        property,
        tasks: TASKS,
        updates_each: INCREMENTS,
        value,
    });
    if value != Some(expected) {
        return Err(CliError::Failed(format!(
            "demo: subject {shown} is {text} instead of {expected}: an update was lost"
        )));
    }
    summary.toured("subjects");
    Ok(())
}

/// What a request handler does: it finds the request's shared state
/// without being handed it, and so does a tool it starts on another task
/// (bound to the same state: a plain spawn would not carry it; the run's
/// task set, so that a Ctrl-C's clean-up waits for it).
async fn handle_request(run: &Run, text: &str) -> Result<(), CliError> {
    let state = SharedState::current()?;
    state.set("draft", &json!({"text": text})).await?;
    run.tasks.lock().await.spawn(state.scope(async {
        // The tool, on its own task.
        SharedState::current()?.set_field("draft", "words", &1).await
    }));
    join_all(run, "shared state \"draft\"").await
}

/// Step 9: a tenant's records, and the current shared state of a request.
pub(super) async fn tenant(run: &Run, out: &mut Output<'_>, summary: &mut Summary) -> Result<(), CliError> {
    let tenant = "acme";
    out.say(format_args!(
        "\n9. Tenants: {}'s records, and the current shared state of a request",
        quoted(tenant)
    ))?;
    let acme = run.state.tenant(tenant)?;
    acme.users()
        .upsert("ada", &json!({"name": "Ada", "plan": "pro"}))
        .await?;
    acme.tables()
        .set("orders", "42", &json!({"total": 9.5, "paid": false}))
        .await?;
    let user: Value = acme.users().get("ada").await?.unwrap_or(Value::Null);
    let order: Value = acme.tables().get("orders", "42").await?.unwrap_or(Value::Null);
    out.say(format_args!("   user \"ada\" -> {user}"))?;
    out.say(format_args!("   table \"orders\" row \"42\" -> {order}"))?;
    // The request for user ada: its handlers reach the state through
    // `SharedState::current()`, a task-local bound by `scope`.
    acme.shared_states()
        .for_user("ada")?
        .scope(handle_request(run, "Hello"))
        .await?;
    let shared: Value = acme
        .shared_states()
        .get("ada", "draft")
        .await?
        .unwrap_or(Value::Null);
    out.say(format_args!(
        "   a request's handlers found it as the current shared state -> state \"draft\" = {shared}"
    ))?;
    let outside = SharedState::current().err().map(|error| describe(&error));
    if outside.is_some() {
        out.say("   outside a request there is none: an invalid-input error, not a panic")?;
    }
    summary.tenant = Some(TenantJson {
        tenant,
        user,
        order,
        shared_state: shared,
        outside_a_request: outside,
    });
    summary.toured("tenants");
    Ok(())
}
