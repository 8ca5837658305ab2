//! `model show` and `model set`: synced models (`{Type}:{id}`, a hash of
//! fields or a JSON document) from the command line, without their Rust
//! type.

use std::collections::BTreeMap;

use clap::Subcommand;
use serde_json::Value;
use statehouse::{Models, StoreError, StoredModel};
use statehouse_ports::JsonError;

use crate::output::{CliError, Output, quoted};

#[derive(Debug, Subcommand)]
pub(super) enum ModelCommand {
    /// Show the synced model ID of type TYPE, under `TYPE:ID`, in the layout
    /// its key holds: a hash (a field per model field, as Python's
    /// pydantic-state writes it) is shown field by field with each field's
    /// text, a JSON document with each field's JSON value; --json prints the
    /// fields as one JSON object (a hash's values as strings, as stored).
    /// Exit status 1 if it does not exist, 3 if a document is not JSON.
    Show {
        /// The type name, as in the key (e.g. Order).
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The model's id.
        id: String,
    },
    /// Write field FIELD of the synced model ID of type TYPE: in a hash the
    /// field holds VALUE as it is (one HSET, what a Python attribute
    /// assignment sends); in a JSON document the field becomes VALUE read as
    /// JSON, or as a string if it is not JSON. A model that does not exist
    /// yet becomes a hash of that one field.
    Set {
        /// The type name, as in the key (e.g. Order).
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The model's id.
        id: String,
        /// The field to write.
        field: String,
        /// Its new value (text).
        value: String,
    },
}

pub(super) async fn model(
    models: &Models,
    command: ModelCommand,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    match command {
        ModelCommand::Show { type_name, id } => {
            let key = format!("{type_name}:{id}");
            match models.load_raw(&type_name, &id).await? {
                Some(StoredModel::Hash(fields)) => show_hash(&key, &fields, out),
                Some(StoredModel::Json(bytes)) => {
                    let value: Value = serde_json::from_slice(&bytes).map_err(|error| {
                        StoreError::deserialization(
                            "model show",
                            key.as_str(),
                            "JSON value",
                            JsonError::without_data(&error),
                        )
                    })?;
                    show_json(&key, &value, out)
                }
                None => {
                    out.json(&Value::Null)?;
                    Err(CliError::NotFound(format!(
                        "model {} {} does not exist (nothing under {})",
                        type_name,
                        quoted(&id),
                        quoted(&key)
                    )))
                }
            }
        }
        ModelCommand::Set {
            type_name,
            id,
            field,
            value,
        } => {
            let layout = models.set_raw_field(&type_name, &id, &field, &value).await?;
            let key = format!("{type_name}:{id}");
            out.print(
                &serde_json::json!({ "key": key, "field": field, "layout": layout.as_str() }),
                format_args!(
                    "model {} ({layout}): field {} written",
                    quoted(&key),
                    quoted(&field)
                ),
            )
        }
    }
}

/// A hash model: each field's text as stored (not UTF-8: shown lossily).
fn show_hash(key: &str, fields: &BTreeMap<String, Vec<u8>>, out: &mut Output<'_>) -> Result<(), CliError> {
    let texts: BTreeMap<&str, String> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value).into_owned()))
        .collect();
    if out.is_json() {
        return out.json(&texts);
    }
    out.say(format_args!("model {} (hash)", quoted(key)))?;
    let width = texts.keys().map(|name| name.chars().count()).max().unwrap_or(0);
    for (name, text) in &texts {
        // Text with control characters is shown quoted, so a line is a field.
        let shown = if text.chars().any(char::is_control) {
            quoted(text)
        } else {
            text.clone()
        };
        out.say(format_args!("  {name:<width$}  {shown}"))?;
    }
    Ok(())
}

/// A JSON model: each field's JSON value, in name order.
fn show_json(key: &str, value: &Value, out: &mut Output<'_>) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(value);
    }
    out.say(format_args!("model {} (json)", quoted(key)))?;
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
