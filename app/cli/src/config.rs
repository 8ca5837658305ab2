//! `config get|set|history|watch` (versioned configuration) and `watch`
//! (the raw change feed) from the command line.
//!
//! Text output shows a version and its value as `version N  <json>`, one
//! per line; `--json` prints one JSON document per line instead. The
//! watching commands run until Ctrl-C (exit status 130, after closing the
//! subscription) or until `--count` events were printed (0).

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use statehouse::{ConfigStore, Snapshot, Statehouse};
use statehouse_ports::{ChangeEvent, FeedEvent, StoreError};

use crate::output::{CliError, Output, ctrl_c, parse_json, quoted};

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Print the current value of NAME (or of one version, if still held)
    /// as `version N  <json>` (exit status 1 if it does not exist).
    Get {
        /// The entry's name.
        name: String,
        /// A version to read instead of the current one (history mode).
        #[arg(long, value_name = "N")]
        version: Option<u64>,
    },
    /// Write JSON as the next version of NAME and print that version.
    Set {
        /// The entry's name.
        name: String,
        /// The value, as JSON text (e.g. '{"rate":10}', '"text"', 3).
        #[arg(value_name = "JSON")]
        value: String,
        /// Keep this many older versions (history mode; 0: plain). Without
        /// it the entry keeps its mode.
        #[arg(long, value_name = "N")]
        history: Option<usize>,
        /// Write only if NAME is at this version (0: does not exist);
        /// otherwise fail (exit status 3) and write nothing.
        #[arg(long, value_name = "N")]
        if_version: Option<u64>,
    },
    /// Print every version of NAME that is held, newest first (exit
    /// status 1 if it does not exist).
    History {
        /// The entry's name.
        name: String,
    },
    /// Print the value of NAME, then each change, until Ctrl-C.
    Watch {
        /// The entry's name.
        name: String,
        #[command(flatten)]
        limit: Limit,
    },
}

/// When a watching command stops by itself.
#[derive(Debug, Args)]
pub(super) struct Limit {
    /// Stop after printing this many lines (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

impl Limit {
    /// Counts a printed line; `true` once the limit is reached.
    fn reached(&self, printed: &mut u64) -> bool {
        *printed += 1;
        self.count.is_some_and(|count| *printed >= count)
    }
}

#[derive(Debug, Serialize)]
struct VersionJson<'a> {
    name: &'a str,
    version: Option<u64>,
    value: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn absent(name: &str) -> CliError {
    CliError::NotFound(format!("config {} does not exist", quoted(name)))
}

pub(super) async fn config(
    state: &Statehouse,
    command: ConfigCommand,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    let store = state.config();
    match command {
        ConfigCommand::Get { name, version } => {
            let found = match version {
                None => store
                    .fetch_versioned::<Value>(&name)
                    .await?
                    .map(|entry| (entry.version, entry.value)),
                Some(version) => store
                    .fetch_version::<Value>(&name, version)
                    .await?
                    .map(|value| (version, value)),
            };
            let Some((version, value)) = found else {
                out.json(&Value::Null)?;
                return Err(match version {
                    Some(version) => {
                        CliError::NotFound(format!("config {} holds no version {version}", quoted(&name)))
                    }
                    None => absent(&name),
                });
            };
            print_version(out, &name, version, &value)
        }
        ConfigCommand::Set {
            name,
            value,
            history,
            if_version,
        } => {
            let value: Value = parse_json(&value, &format!("config {}", quoted(&name)), "")?;
            let store = match history {
                Some(len) => store.with_history(len),
                None => store,
            };
            let version = match if_version {
                Some(expected) => store.update_if(&name, expected, &value).await,
                None => store.update(&name, &value).await,
            };
            let version = version.map_err(|error| match error {
                StoreError::VersionConflict { actual, expected, .. } => CliError::Failed(format!(
                    "config {} is at version {actual}, not {expected}; nothing written",
                    quoted(&name),
                )),
                other => other.into(),
            })?;
            out.print(
                &VersionJson {
                    name: &name,
                    version: Some(version),
                    value: Some(&value),
                    error: None,
                },
                format_args!("version {version}"),
            )
        }
        ConfigCommand::History { name } => {
            let history = store.history(&name).await?;
            if history.is_empty() {
                out.json(&Vec::<Value>::new())?;
                return Err(absent(&name));
            }
            if out.is_json() {
                let rows: Vec<VersionJson<'_>> = history
                    .iter()
                    .map(|entry| VersionJson {
                        name: &name,
                        version: Some(entry.version),
                        value: Some(&entry.value),
                        error: None,
                    })
                    .collect();
                return out.json(&rows);
            }
            for entry in &history {
                out.say(format_args!("version {}  {}", entry.version, entry.value))?;
            }
            Ok(())
        }
        ConfigCommand::Watch { name, limit } => until_interrupted(follow(&store, &name, &limit, out)).await,
    }
}

/// Runs `command` until it ends or Ctrl-C (listened to before the command
/// prints anything, so a signal after its first line is always caught).
async fn until_interrupted(command: impl Future<Output = Result<(), CliError>>) -> Result<(), CliError> {
    tokio::select! {
        biased;
        () = ctrl_c() => Err(CliError::Interrupted),
        result = command => result,
    }
}

/// `config watch`: the current state, then each change.
async fn follow(
    store: &ConfigStore,
    name: &str,
    limit: &Limit,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    let mut rx = store.watch::<Value>(name).await?;
    let mut printed = 0;
    loop {
        let snapshot = rx.borrow_and_update().clone();
        print_snapshot(out, name, &snapshot)?;
        out.flush()?;
        if limit.reached(&mut printed) {
            return Ok(());
        }
        if rx.changed().await.is_err() {
            return Err(CliError::Failed(format!(
                "the watch of config {} ended (the store closed)",
                quoted(name)
            )));
        }
    }
}

fn print_version(out: &mut Output<'_>, name: &str, version: u64, value: &Value) -> Result<(), CliError> {
    out.print(
        &VersionJson {
            name,
            version: Some(version),
            value: Some(value),
            error: None,
        },
        format_args!("version {version}  {value}"),
    )
}

fn print_snapshot(out: &mut Output<'_>, name: &str, snapshot: &Snapshot<Value>) -> Result<(), CliError> {
    if let Some(error) = &snapshot.error {
        return out.print(
            &VersionJson {
                name,
                version: error.version,
                value: snapshot.current.as_ref().map(|current| &current.value),
                error: Some(error.to_string()),
            },
            format_args!("error  {error}"),
        );
    }
    match &snapshot.current {
        Some(current) => print_version(out, name, current.version, &current.value),
        None => out.print(
            &VersionJson {
                name,
                version: None,
                value: None,
                error: None,
            },
            "absent",
        ),
    }
}

/// `statehouse watch PATTERN`: every event of the raw change feed.
async fn watch(
    state: &Statehouse,
    pattern: &str,
    limit: Limit,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    let mut subscription = state.watch(pattern).await?;
    let mut printed = 0;
    loop {
        let Some(event) = subscription.next().await else {
            return Err(CliError::Failed(format!(
                "the change feed of {} ended (the store closed)",
                quoted(pattern)
            )));
        };
        let text = match &event {
            FeedEvent::Change(ChangeEvent { key, kind, version }) => match version {
                Some(version) => format!("{}  {}  version {version}", kind.as_str(), quoted(key)),
                None => format!("{}  {}", kind.as_str(), quoted(key)),
            },
            FeedEvent::Resync(reason) => {
                format!("resync  {}", serde_json::to_string(reason).unwrap_or_default())
            }
        };
        out.print(&event, text)?;
        out.flush()?;
        if limit.reached(&mut printed) {
            return Ok(());
        }
    }
}

/// The arguments of `statehouse watch`.
#[derive(Debug, Args)]
pub(super) struct WatchArgs {
    /// The keys to watch, a Redis glob (e.g. 'config:*', 'user:1').
    pattern: String,
    #[command(flatten)]
    limit: Limit,
}

impl WatchArgs {
    pub(super) async fn run(self, state: &Statehouse, out: &mut Output<'_>) -> Result<(), CliError> {
        until_interrupted(watch(state, &self.pattern, self.limit, out)).await
    }
}
