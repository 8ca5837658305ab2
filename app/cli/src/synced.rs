//! `model show`: synced models (`{Type}:{id}` JSON documents) from the
//! command line.

use clap::Subcommand;
use serde_json::Value;
use statehouse::Documents;
use statehouse_domain::synced_key_of;
use statehouse_ports::ValidationExt;

use crate::output::{CliError, Output, quoted};

#[derive(Debug, Subcommand)]
pub(super) enum ModelCommand {
    /// Show the synced model ID of type TYPE, the JSON document under
    /// `TYPE:ID`: one line per field (in name order), or the document with --json (exit
    /// status 1 if it does not exist, 3 if what is stored is not JSON).
    Show {
        /// The type name, as in the key (e.g. Order).
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The model's id.
        id: String,
    },
}

pub(super) async fn model(
    docs: &Documents,
    command: ModelCommand,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    match command {
        ModelCommand::Show { type_name, id } => {
            let key = synced_key_of(&type_name, &id).for_op("model show", &format!("{type_name}:{id}"))?;
            match docs.get::<Value>(key.as_str()).await? {
                Some(value) => show(key.as_str(), &value, out),
                None => {
                    out.json(&Value::Null)?;
                    Err(CliError::NotFound(format!(
                        "model {} {} does not exist (no document under {})",
                        type_name,
                        quoted(&id),
                        quoted(key.as_str())
                    )))
                }
            }
        }
    }
}

fn show(key: &str, value: &Value, out: &mut Output<'_>) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(value);
    }
    out.say(format_args!("model {}", quoted(key)))?;
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            let width = fields.keys().map(|name| name.chars().count()).max().unwrap_or(0);
            for (name, field) in fields {
                out.say(format_args!("  {name:<width$}  {field}"))?;
            }
            Ok(())
        }
        other => out.say(format_args!("  {other}")),
    }
}
