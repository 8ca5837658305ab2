//! `subject show|set|del|list`: subjects (KRules' layout) from the command
//! line.

use std::collections::BTreeMap;

use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;
use statehouse::Subjects;
use statehouse_ports::PropertyKind;

use crate::output::{CliError, Output, quoted};

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
    /// Delete subject NAME, or only its property PROP (both kinds) (exit status 1 if absent).
    Del {
        /// The subject's name.
        name: String,
        /// Only this property.
        prop: Option<String>,
    },
    /// List the subjects whose names match a glob PATTERN.
    List {
        /// A Redis glob pattern over subject names, e.g. 'user:*'.
        pattern: String,
    },
}

/// `subject show --json`.
#[derive(Debug, Serialize)]
struct ShowJson {
    subject: String,
    default: BTreeMap<String, Value>,
    extended: BTreeMap<String, Value>,
}

pub(super) async fn subject(
    subjects: &Subjects,
    command: SubjectCommand,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    match command {
        SubjectCommand::Show { name } => {
            let mut subject = subjects.subject(&name)?;
            let default = subject.properties(PropertyKind::Default).await?;
            let extended = subject.properties(PropertyKind::Extended).await?;
            if default.is_empty() && extended.is_empty() && !subjects.exists(&name).await? {
                out.json(&Value::Null)?;
                return Err(CliError::NotFound(format!(
                    "subject {} does not exist",
                    quoted(&name)
                )));
            }
            if out.is_json() {
                return out.json(&ShowJson {
                    subject: name,
                    default,
                    extended,
                });
            }
            out.say(format_args!("subject {}", quoted(&name)))?;
            out.say(format_args!("{:<9} {:<24} value", "kind", "property"))?;
            for (kind, properties) in [("default", &default), ("extended", &extended)] {
                for (prop, value) in properties {
                    out.say(format_args!("{kind:<9} {prop:<24} {value}"))?;
                }
            }
            Ok(())
        }
        SubjectCommand::Set {
            name,
            prop,
            value,
            extended,
        } => {
            let value: Value = serde_json::from_str(&value).map_err(|_| {
                CliError::Usage(format!(
                    "the value of {} is not JSON; quote strings: '\"text\"'",
                    quoted(&prop)
                ))
            })?;
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
        SubjectCommand::List { pattern } => {
            let names = subjects.list(&pattern).await?;
            if out.is_json() {
                return out.json(&names);
            }
            for name in &names {
                out.say(name)?;
            }
            Ok(())
        }
    }
}
