//! `tenant TENANT users [get USER]`, `tenant TENANT state USER [NAME]`,
//! `tenant TENANT table TABLE [PK]`: one tenant's records, read-only.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use statehouse::Statehouse;
use statehouse_ports::Fields;

use crate::output::{CliError, Output, describe, print_stream, quoted};

#[derive(Debug, Args)]
pub(super) struct TenantArgs {
    /// The tenant's id (any text; escaped in its keys).
    tenant: String,
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// List the tenant's users, or show one (`users get USER`; exit status 1 if absent).
    Users {
        #[command(subcommand)]
        command: Option<UsersCommand>,
    },
    /// List a user's shared states, or show state NAME (exit status 1 if absent).
    State {
        /// The user's id.
        user: String,
        /// The state's name.
        name: Option<String>,
    },
    /// List the primary keys of table TABLE, or show row PK (exit status 1 if absent).
    Table {
        /// The table's name.
        table: String,
        /// The row's primary key.
        pk: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Show one user's fields.
    Get {
        /// The user's id.
        user: String,
    },
}

/// A shown record: its fields, and the fields that are not JSON (as an
/// error message, never their bytes).
#[derive(Debug, Serialize)]
struct Record<'a> {
    tenant: &'a str,
    #[serde(flatten)]
    id: BTreeMap<&'static str, String>,
    fields: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    errors: BTreeMap<String, String>,
}

pub(super) async fn tenant(
    state: &Statehouse,
    args: TenantArgs,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    let tenant = state.tenant(&args.tenant)?;
    let id = args.tenant.as_str();
    match args.command {
        TenantCommand::Users { command: None } => print_stream(out, tenant.users().stream()).await,
        TenantCommand::Users {
            command: Some(UsersCommand::Get { user }),
        } => {
            let fields = tenant.users().get_fields(&user).await?;
            show(out, id, [("user", user)], fields)
        }
        TenantCommand::State { user, name: None } => {
            print_stream(out, tenant.shared_states().stream(&user)?).await
        }
        TenantCommand::State {
            user,
            name: Some(name),
        } => {
            let fields = tenant.shared_states().get_fields(&user, &name).await?;
            show(out, id, [("user", user), ("state", name)], fields)
        }
        TenantCommand::Table { table, pk: None } => print_stream(out, tenant.tables().stream(&table)?).await,
        TenantCommand::Table { table, pk: Some(pk) } => {
            let fields = tenant.tables().get_fields(&table, &pk).await?;
            show(out, id, [("table", table), ("pk", pk)], fields)
        }
    }
}

fn show<const N: usize>(
    out: &mut Output<'_>,
    tenant: &str,
    id: [(&'static str, String); N],
    fields: Fields,
) -> Result<(), CliError> {
    let what = id
        .iter()
        .map(|(kind, value)| format!("{kind} {}", quoted(value)))
        .collect::<Vec<_>>()
        .join(" ");
    if fields.is_empty() {
        out.json(&Value::Null)?;
        return Err(CliError::NotFound(format!(
            "{what} of tenant {} does not exist",
            quoted(tenant)
        )));
    }
    let mut record = Record {
        tenant,
        id: id.into_iter().collect(),
        fields: BTreeMap::new(),
        errors: BTreeMap::new(),
    };
    for (name, value) in fields {
        match value {
            Ok(value) => {
                record.fields.insert(name, value);
            }
            Err(error) => {
                record.errors.insert(name, describe(&error));
            }
        }
    }
    if out.is_json() {
        return out.json(&record);
    }
    out.say(format_args!("{what} of tenant {}", quoted(tenant)))?;
    out.say(format_args!("{:<24} value", "field"))?;
    for (name, value) in &record.fields {
        out.say(format_args!("{name:<24} {value}"))?;
    }
    for (name, error) in &record.errors {
        out.say(format_args!("{name:<24} (unreadable: {error})"))?;
    }
    Ok(())
}
