//! `tasks save|show|list|set-status|log|del|migrate`: task records from the command line.

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Map, Value};
use statehouse::Tasks;
use statehouse_ports::{LegacyMove, PageRequest, StoreError, TaskCursor, TaskPage, TaskRecord, TaskStatus};

use crate::output::{CliError, Output, describe, print_stream, quoted};

#[derive(Debug, Subcommand)]
pub(super) enum TasksCommand {
    /// Create (or replace) the task ID, pending, with an empty log.
    Save(SaveArgs),
    /// Show a task: the record and its log as a table (exit status 1 if it does not exist).
    Show {
        /// The task id.
        id: String,
    },
    /// List the tasks of a service or of a user, most recently updated first.
    List(ListArgs),
    /// Move a task to STATUS (pending, running, completed, failed, cancelled),
    /// logging --log if given. Leaving a final status is refused (exit status 2).
    SetStatus {
        /// The task id.
        id: String,
        /// The new status.
        status: TaskStatus,
        /// A line for the task's log.
        #[arg(long)]
        log: Option<String>,
    },
    /// Append MESSAGE to a task's log.
    Log {
        /// The task id.
        id: String,
        /// The line to log.
        message: String,
    },
    /// Delete a task and its index entries (exit status 1 if it does not exist).
    Del {
        /// The task id.
        id: String,
    },
    /// Move the tasks stored in the layout before buckets ({ns}:task:<id>) into their buckets
    /// ({ns:bN}:task:<id>), keeping each task's update time and TTL. Idempotent and resumable: run
    /// it again after an interruption; it deletes only the legacy keys of tasks it moved. Run it
    /// once every client writes the bucketed layout. Exit status 3 if a task could not be moved.
    Migrate {
        /// Only list the ids of the tasks that would move (as they are found; a JSON array with
        /// --json); write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub(super) struct SaveArgs {
    /// The task id.
    id: String,
    /// The service the task belongs to.
    #[arg(long)]
    service: String,
    /// The user the task runs for.
    #[arg(long)]
    user: String,
    /// Metadata: a JSON object, e.g. '{"file":"report.csv"}'.
    #[arg(long)]
    meta: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("index").required(true).args(["service", "user"])))]
pub(super) struct ListArgs {
    /// The tasks of this service.
    #[arg(long)]
    service: Option<String>,
    /// The tasks of this user.
    #[arg(long)]
    user: Option<String>,
    /// At most this many tasks (1 to 1000).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Start after this cursor (printed with the previous page).
    #[arg(long)]
    after: Option<String>,
}

/// `tasks list --json`.
#[derive(Debug, Serialize)]
struct PageJson {
    tasks: Vec<Value>,
    next: Option<String>,
}

pub(super) async fn tasks(
    tasks: &Tasks,
    command: TasksCommand,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    match command {
        TasksCommand::Save(args) => {
            let metadata = match &args.meta {
                None => Map::new(),
                Some(text) => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(map)) => map,
                    _ => {
                        return Err(CliError::Usage(format!(
                            "--meta for task {} must be a JSON object, e.g. '{{\"rows\":12}}'",
                            quoted(&args.id)
                        )));
                    }
                },
            };
            let task = tasks
                .create_with(&args.id, &args.service, &args.user, metadata)
                .await?;
            out.print(&task, format_args!("saved task {}", quoted(task.id.as_str())))
        }
        TasksCommand::Show { id } => match tasks.get(&id).await? {
            Some(task) => show(&task, out),
            None => {
                out.json(&Value::Null)?;
                Err(missing(&id))
            }
        },
        TasksCommand::List(args) => {
            let mut page = PageRequest::first(args.limit);
            if let Some(after) = &args.after {
                let cursor: TaskCursor = after
                    .parse()
                    .map_err(|error| CliError::Usage(format!("--after {}: {error}", quoted(after))))?;
                page = page.after(cursor);
            }
            let listed = match (&args.service, &args.user) {
                (Some(service), _) => tasks.list_by_service(service, page).await?,
                (None, Some(user)) => tasks.list_by_user(user, page).await?,
                (None, None) => return Err(CliError::Usage("give --service or --user".into())),
            };
            list(&listed, out)
        }
        TasksCommand::SetStatus { id, status, log } => {
            let task = tasks
                .set_status(&id, status, log.as_deref())
                .await
                .map_err(|error| about_task(&id, error))?;
            out.print(
                &task,
                format_args!("task {} is {}", quoted(task.id.as_str()), task.status),
            )
        }
        TasksCommand::Log { id, message } => {
            let task = tasks
                .append_log(&id, &message)
                .await
                .map_err(|error| about_task(&id, error))?;
            out.print(
                &task,
                format_args!(
                    "logged to task {} ({} lines)",
                    quoted(task.id.as_str()),
                    task.log.len()
                ),
            )
        }
        TasksCommand::Del { id } => {
            let deleted = tasks.delete(&id).await?;
            out.json(&serde_json::json!({"id": id, "deleted": deleted}))?;
            if deleted {
                out.say(format_args!("deleted task {}", quoted(&id)))
            } else {
                Err(missing(&id))
            }
        }
        TasksCommand::Migrate { dry_run } => migrate(tasks, dry_run, out).await,
    }
}

/// `tasks migrate --json`.
#[derive(Debug, Default, Serialize)]
struct MigrationJson {
    /// Tasks found in the layout before buckets.
    legacy: usize,
    moved: usize,
    superseded: usize,
    absent: usize,
    failed: Vec<Value>,
}

/// Progress is printed every this many tasks.
const MIGRATION_PROGRESS: usize = 1000;

async fn migrate(tasks: &Tasks, dry_run: bool, out: &mut Output<'_>) -> Result<(), CliError> {
    let mut ids = tasks.stream_legacy_ids();
    if dry_run {
        // The ids as they are listed (a JSON array with --json).
        return print_stream(out, ids).await;
    }
    let mut report = MigrationJson::default();
    // Each task moves as soon as it is listed: memory stays flat however
    // many there are. An id listed twice is found moved (absent).
    while let Some(page) = ids.next_page().await? {
        for id in page {
            report.legacy += 1;
            match tasks.migrate_legacy(&id).await {
                Ok(LegacyMove::Moved) => report.moved += 1,
                Ok(LegacyMove::Superseded) => report.superseded += 1,
                Ok(LegacyMove::Absent) => report.absent += 1,
                Err(error) => {
                    out.say(format_args!(
                        "task {} not moved: {}",
                        quoted(&id),
                        describe(&error)
                    ))?;
                    report.failed.push(serde_json::json!({
                        "id": id,
                        "key": error.key(),
                        "error": describe(&error),
                    }));
                }
            }
            if report.legacy % MIGRATION_PROGRESS == 0 {
                out.say(format_args!("{} tasks done", report.legacy))?;
                out.flush()?;
            }
        }
    }
    out.json(&report)?;
    out.say(format_args!(
        "{} tasks of the layout before buckets: moved {}, kept a newer bucketed copy of {}, found {} gone meanwhile, failed {}",
        report.legacy,
        report.moved,
        report.superseded,
        report.absent,
        report.failed.len()
    ))?;
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} tasks could not be moved (they stay in the layout before buckets; run again once fixed)",
            report.failed.len()
        )))
    }
}

fn missing(id: &str) -> CliError {
    CliError::NotFound(format!("task {} does not exist", quoted(id)))
}

/// A store error of a command on task `id`, named by the task rather than
/// by its Redis key: "task "job-1" does not exist", "task "job-1": cannot
/// move the task from completed to running".
fn about_task(id: &str, error: StoreError) -> CliError {
    match error {
        StoreError::NotFound { .. } => missing(id),
        StoreError::InvalidTransition { from, to, .. } => CliError::Usage(format!(
            "task {}: cannot move the task from {from} to {to}: {from} is final; nothing written",
            quoted(id)
        )),
        other => other.into(),
    }
}

/// A time as people read it: RFC 3339 in UTC, to the second.
fn when(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn show(task: &TaskRecord, out: &mut Output<'_>) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(task);
    }
    out.say(format_args!("task     {}", quoted(task.id.as_str())))?;
    out.say(format_args!("service  {}", quoted(task.service.as_str())))?;
    out.say(format_args!("user     {}", quoted(task.user.as_str())))?;
    out.say(format_args!("status   {}", task.status))?;
    out.say(format_args!("created  {}", when(&task.created_at)))?;
    out.say(format_args!("updated  {}", when(&task.updated_at)))?;
    if !task.metadata.is_empty() {
        out.say(format_args!("metadata {}", Value::Object(task.metadata.clone())))?;
    }
    if let Some(result) = &task.result {
        out.say(format_args!("result   {result}"))?;
    }
    if let Some(error) = &task.error {
        out.say(format_args!("error    {}", quoted(error)))?;
    }
    if task.log.is_empty() {
        return out.say("log      (empty)");
    }
    out.say("")?;
    out.say(format_args!("{:<20}  {:<9}  message", "at", "status"))?;
    for entry in &task.log {
        out.say(format_args!(
            "{:<20}  {:<9}  {}",
            when(&entry.at),
            entry.status,
            entry.message
        ))?;
    }
    Ok(())
}

fn list(page: &TaskPage, out: &mut Output<'_>) -> Result<(), CliError> {
    if out.is_json() {
        let tasks = page
            .items
            .iter()
            .map(|item| match item {
                Ok(task) => serde_json::to_value(task).unwrap_or(Value::Null),
                Err(error) => serde_json::json!({"key": error.key(), "error": describe(error)}),
            })
            .collect();
        return out.json(&PageJson {
            tasks,
            next: page.next.as_ref().map(ToString::to_string),
        });
    }
    if page.items.is_empty() {
        return out.say("no tasks");
    }
    out.say(format_args!(
        "{:<24}  {:<9}  {:<20}  {:<16}  {:<16}  log",
        "task", "status", "updated", "service", "user"
    ))?;
    for item in &page.items {
        match item {
            Ok(task) => out.say(format_args!(
                "{:<24}  {:<9}  {:<20}  {:<16}  {:<16}  {}",
                task.id.as_str(),
                task.status,
                when(&task.updated_at),
                task.service.as_str(),
                task.user.as_str(),
                task.log.len()
            ))?,
            Err(error) => out.say(format_args!("(unreadable)  {}", unreadable(error)))?,
        }
    }
    if let Some(next) = &page.next {
        out.say(format_args!("more: --after {}", quoted(&next.to_string())))?;
    }
    Ok(())
}

fn unreadable(error: &StoreError) -> String {
    describe(error)
}
