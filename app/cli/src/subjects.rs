//! `subject show|set|del|list`: subjects (KRules' layout) from the command
//! line.

use std::collections::BTreeMap;

use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;
use statehouse::Statehouse;
use statehouse_ports::{PropertyKind, SubjectName, ValidationExt};

use crate::output::{CliError, Output, describe, parse_json, print_stream, quoted};

#[derive(Debug, Subcommand)]
pub(super) enum SubjectCommand {
    /// Show a subject's default and extended properties (exit status 1 if it does not exist).
    Show {
        /// The subject's name.
        name: String,
    },
    /// Set property PROP of subject NAME to the JSON value JSON, at once.
    Set {
        /// The subject's name.
        name: String,
        /// The property's name.
        prop: String,
        /// The value, as JSON: '"John"', 30, null, '{"a":1}'.
        #[arg(value_name = "JSON")]
        value: String,
        /// An extended property (field `e<prop>`) instead of a default one.
        #[arg(long)]
        extended: bool,
    },
    /// Add BY (default 1, may be negative) to integer property PROP of
    /// subject NAME on the server, in one step (a missing property starts
    /// at 0), and print the new value (exit status 3 if it holds no
    /// integer: nothing written).
    Incr {
        /// The subject's name.
        name: String,
        /// The property's name.
        prop: String,
        /// The amount to add.
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        by: i64,
        /// An extended property (field `e<prop>`) instead of a default one.
        #[arg(long)]
        extended: bool,
    },
    /// Delete subject NAME, or only its property PROP (both kinds) (exit status 1 if absent).
    Del {
        /// The subject's name.
        name: String,
        /// Only this property.
        prop: Option<String>,
    },
    /// List the subjects whose names match a glob PATTERN (printed page by
    /// page as they come, in the store's order; --json: one array, streamed).
    List {
        /// A Redis glob pattern over subject names, e.g. 'user:*'.
        pattern: String,
    },
}

/// `subject show --json`: the properties that are JSON by kind, and those
/// whose stored text is not (their error, never their bytes).
#[derive(Debug, Serialize)]
struct ShowJson {
    subject: String,
    default: BTreeMap<String, Value>,
    extended: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Unreadable>,
}

/// A property whose stored text is not JSON.
#[derive(Debug, Serialize)]
struct Unreadable {
    kind: PropertyKind,
    property: String,
    error: String,
}

pub(super) async fn subject(
    state: &Statehouse,
    command: SubjectCommand,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    let subjects = state.subjects();
    match command {
        SubjectCommand::Show { name } => {
            // Through the port: a property that is not JSON is shown as
            // unreadable, not left out as the cached handle leaves it.
            let subject = SubjectName::new(&name).for_op("subject", &name)?;
            let data = state.ports().subjects.load(subjects.space(), &subject).await?;
            let mut shown = ShowJson {
                subject: name,
                default: BTreeMap::new(),
                extended: BTreeMap::new(),
                errors: Vec::new(),
            };
            for kind in PropertyKind::ALL {
                for (prop, loaded) in data.of_kind(kind) {
                    match loaded {
                        Ok(value) => {
                            let values = match kind {
                                PropertyKind::Default => &mut shown.default,
                                PropertyKind::Extended => &mut shown.extended,
                            };
                            values.insert(prop.clone(), value.clone());
                        }
                        Err(error) => shown.errors.push(Unreadable {
                            kind,
                            property: prop.clone(),
                            error: describe(error),
                        }),
                    }
                }
            }
            let name = &shown.subject;
            if data.default.is_empty() && data.extended.is_empty() && !subjects.exists(name).await? {
                out.json(&Value::Null)?;
                return Err(CliError::NotFound(format!(
                    "subject {} does not exist",
                    quoted(name)
                )));
            }
            if out.is_json() {
                return out.json(&shown);
            }
            out.say(format_args!("subject {}", quoted(name)))?;
            out.say(format_args!("{:<9} {:<24} value", "kind", "property"))?;
            for (kind, properties) in [("default", &shown.default), ("extended", &shown.extended)] {
                for (prop, value) in properties {
                    out.say(format_args!("{kind:<9} {prop:<24} {value}"))?;
                }
            }
            for unreadable in &shown.errors {
                out.say(format_args!(
                    "{:<9} {:<24} (unreadable: {})",
                    unreadable.kind.to_string(),
                    unreadable.property,
                    unreadable.error
                ))?;
            }
            Ok(())
        }
        SubjectCommand::Set {
            name,
            prop,
            value,
            extended,
        } => {
            let value: Value = parse_json(
                &value,
                &format!("property {} of subject {}", quoted(&prop), quoted(&name)),
                "",
            )?;
            let kind = if extended {
                PropertyKind::Extended
            } else {
                PropertyKind::Default
            };
            let mut subject = subjects.subject(&name)?;
            subject.set_now_of(kind, &prop, &value).await?;
            out.print(
                &serde_json::json!({"subject": name, "property": prop, "kind": kind, "value": value}),
                format_args!(
                    "set {kind} property {} of subject {}",
                    quoted(&prop),
                    quoted(&name)
                ),
            )
        }
        SubjectCommand::Incr {
            name,
            prop,
            by,
            extended,
        } => {
            let kind = if extended {
                PropertyKind::Extended
            } else {
                PropertyKind::Default
            };
            let mut subject = subjects.subject(&name)?;
            let value = subject.increment_of(kind, &prop, by).await?;
            out.print(
                &serde_json::json!({"subject": name, "property": prop, "kind": kind, "value": value}),
                value,
            )
        }
        SubjectCommand::Del { name, prop: None } => {
            let deleted = subjects.delete(&name).await?;
            out.json(&serde_json::json!({"subject": name, "deleted": deleted}))?;
            if deleted {
                out.say(format_args!("deleted subject {}", quoted(&name)))
            } else {
                Err(CliError::NotFound(format!(
                    "subject {} does not exist",
                    quoted(&name)
                )))
            }
        }
        SubjectCommand::Del {
            name,
            prop: Some(prop),
        } => {
            let mut subject = subjects.subject(&name)?;
            let mut found = false;
            for kind in PropertyKind::ALL {
                if subject.get_of::<Value>(kind, &prop).await?.is_some() {
                    subject.delete(kind, &prop).await?;
                    found = true;
                }
            }
            subject.store().await?;
            out.json(&serde_json::json!({"subject": name, "property": prop, "deleted": found}))?;
            if found {
                out.say(format_args!(
                    "deleted property {} of subject {}",
                    quoted(&prop),
                    quoted(&name)
                ))
            } else {
                Err(CliError::NotFound(format!(
                    "subject {} has no property {}",
                    quoted(&name),
                    quoted(&prop)
                )))
            }
        }
        SubjectCommand::List { pattern } => print_stream(out, subjects.stream(&pattern)?).await,
    }
}
