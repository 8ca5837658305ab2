//! `doc get|set|del|list|ttl`: typed documents from the command line.

use std::io::Write;

use clap::{Args, Subcommand};
use serde::de::IgnoredAny;
use statehouse_ports::{KeyTtl, SetOptions, Ttl, ValidationExt, decode};

use super::{CliError, describe, human_duration, quoted, store_name};
use crate::{Documents, Statehouse};

#[derive(Debug, Subcommand)]
pub(super) enum DocCommand {
    /// Print the JSON value stored under KEY (exit status 1 if it does not
    /// exist, 3 if what is stored is not JSON: --raw prints any bytes).
    Get {
        /// The key.
        key: String,
        /// Print the stored bytes as they are, even if they are not JSON.
        #[arg(long)]
        raw: bool,
    },
    /// Store VALUE (JSON, unless --raw) under KEY.
    Set(SetArgs),
    /// Delete KEY (exit status 1 if it does not exist).
    Del {
        /// The key.
        key: String,
    },
    /// List keys matching a Redis glob pattern (sorted, via SCAN).
    List {
        /// The pattern (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes).
        #[arg(default_value = "*")]
        pattern: String,
    },
    /// Show the remaining time to live of KEY (exit status 1 if it does not exist).
    Ttl {
        /// The key.
        key: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct SetArgs {
    /// The key.
    key: String,
    /// The value: a JSON document, e.g. '{"name":"Ada"}' or '"text"'.
    value: String,
    /// Expire the key after this many seconds (more than 0).
    #[arg(long, allow_negative_numbers = true)]
    ttl: Option<i64>,
    /// Only write if the key does not exist yet (exit status 1 if it does: nothing written).
    #[arg(long)]
    if_absent: bool,
    /// Store VALUE as it is, without checking that it is JSON.
    #[arg(long)]
    raw: bool,
}

/// `ping`: check that the store answers.
pub(super) async fn ping(state: &Statehouse, docs: &Documents, out: &mut dyn Write) -> Result<(), CliError> {
    docs.ping().await?;
    writeln!(
        out,
        "PONG from {} ({})",
        store_name(state.settings()),
        state.backend()
    )?;
    Ok(())
}

pub(super) async fn doc(docs: &Documents, command: DocCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        DocCommand::Get { key, raw } => {
            let Some(bytes) = docs.get_raw(&key).await? else {
                return Err(CliError::NotFound(format!("{} does not exist", quoted(&key))));
            };
            if raw {
                out.write_all(&bytes)?;
                return Ok(());
            }
            // The message never quotes the data (decode strips it).
            if let Err(error) = decode::<IgnoredAny>("get", &key, &bytes) {
                return Err(CliError::Failed(format!(
                    "{}; `doc get --raw` prints it as it is",
                    describe(&error)
                )));
            }
            out.write_all(&bytes)?;
            writeln!(out)?;
            Ok(())
        }
        DocCommand::Set(args) => {
            if !args.raw {
                serde_json::from_str::<serde_json::Value>(&args.value).map_err(|error| {
                    CliError::Usage(format!(
                        "the value for {} is not valid JSON ({error}); quote text as '\"text\"' or pass --raw",
                        quoted(&args.key)
                    ))
                })?;
            }
            let mut options = SetOptions::new();
            if let Some(secs) = args.ttl {
                options = options.ttl(Ttl::from_secs_signed(secs).for_op("set", &args.key)?);
            }
            if args.if_absent {
                options = options.if_absent();
            }
            if docs.set_raw(&args.key, args.value, options).await? {
                writeln!(out, "OK")?;
                Ok(())
            } else {
                Err(CliError::NotFound(format!(
                    "{} already exists; nothing written",
                    quoted(&args.key)
                )))
            }
        }
        DocCommand::Del { key } => {
            if !docs.delete(&key).await? {
                return Err(CliError::NotFound(format!(
                    "{} does not exist; nothing deleted",
                    quoted(&key)
                )));
            }
            writeln!(out, "deleted")?;
            Ok(())
        }
        DocCommand::List { pattern } => {
            for key in docs.list_keys(&pattern).await? {
                writeln!(out, "{key}")?;
            }
            Ok(())
        }
        DocCommand::Ttl { key } => {
            match docs.ttl(&key).await? {
                KeyTtl::Missing => {
                    return Err(CliError::NotFound(format!("{} does not exist", quoted(&key))));
                }
                ttl => writeln!(out, "{}", ttl_in_words(ttl))?,
            }
            Ok(())
        }
    }
}

/// A key's remaining life in words: `expires in 0.3 s`, `no TTL`, `missing`.
pub(super) fn ttl_in_words(ttl: KeyTtl) -> String {
    match ttl {
        KeyTtl::Missing => "missing".to_owned(),
        KeyTtl::Persistent => "no TTL".to_owned(),
        KeyTtl::ExpiresIn(left) => format!("expires in {}", human_duration(left)),
    }
}
