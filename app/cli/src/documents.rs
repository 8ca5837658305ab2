//! `doc get|set|del|list|ttl|incr|append`: typed documents from the command line.

use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::IgnoredAny;
use statehouse::{Documents, Statehouse};
use statehouse_ports::{KeyTtl, SetOptions, Ttl, ValidationExt, decode};

use crate::output::{
    CliError, Output, StoreJson, describe, parse_json, print_stream, quoted, store_name, ttl_in_words,
};

#[derive(Debug, Subcommand)]
pub(super) enum DocCommand {
    /// Print the JSON value stored under KEY (exit status 1 if it does not
    /// exist, 3 if what is stored is not JSON: --raw prints any bytes).
    Get {
        /// The key.
        key: String,
        /// Print the stored bytes as they are, even if they are not JSON (also with --json).
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
    /// List keys matching a Redis glob pattern (via SCAN, printed page by
    /// page as they come, in the store's order; --json: one array, streamed).
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
    /// Add BY (default 1, may be negative) to the JSON integer under KEY on
    /// the server, in one step (a missing key starts at 0), and print the
    /// new value (exit status 3 if KEY holds no integer: nothing written).
    Incr {
        /// The key.
        key: String,
        /// The amount to add.
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        by: i64,
    },
    /// Append the JSON value ITEM to the JSON array under KEY on the server,
    /// in one step (a missing key becomes `[ITEM]`), and print the array's
    /// new length (exit status 3 if KEY holds no array: nothing written).
    Append {
        /// The key.
        key: String,
        /// The item, as JSON: '"text"', 3, '{"a":1}'.
        #[arg(value_name = "JSON")]
        item: String,
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

/// `doc set --json`.
#[derive(Debug, Serialize)]
struct Written<'a> {
    key: &'a str,
    written: bool,
}

/// `doc incr --json`.
#[derive(Debug, Serialize)]
struct Incremented<'a> {
    key: &'a str,
    value: i64,
}

/// `doc append --json`.
#[derive(Debug, Serialize)]
struct Appended<'a> {
    key: &'a str,
    length: usize,
}

/// `doc del --json`.
#[derive(Debug, Serialize)]
struct Deleted<'a> {
    key: &'a str,
    deleted: bool,
}

/// `doc ttl --json`: `state` is `expires` (then `ttl_ms` is set),
/// `persistent` or `missing`.
#[derive(Debug, Serialize)]
struct TtlJson<'a> {
    key: &'a str,
    ttl_ms: Option<u64>,
    state: &'static str,
}

/// `ping`: check that the store answers.
pub(super) async fn ping(state: &Statehouse, docs: &Documents, out: &mut Output<'_>) -> Result<(), CliError> {
    docs.ping().await?;
    out.print(
        &StoreJson::new(state.settings(), state.backend()),
        format_args!("PONG from {} ({})", store_name(state.settings()), state.backend()),
    )
}

pub(super) async fn doc(docs: &Documents, command: DocCommand, out: &mut Output<'_>) -> Result<(), CliError> {
    match command {
        DocCommand::Get { key, raw } => get(docs, &key, raw, out).await,
        DocCommand::Set(args) => set(docs, args, out).await,
        DocCommand::Del { key } => {
            let deleted = docs.delete(&key).await?;
            if !deleted {
                out.json(&Deleted {
                    key: &key,
                    deleted: false,
                })?;
                return Err(CliError::NotFound(format!(
                    "{} does not exist; nothing deleted",
                    quoted(&key)
                )));
            }
            out.print(
                &Deleted {
                    key: &key,
                    deleted: true,
                },
                "deleted",
            )
        }
        DocCommand::List { pattern } => print_stream(out, docs.stream_keys(&pattern)?).await,
        DocCommand::Incr { key, by } => {
            let value = docs.increment(&key, by).await?;
            out.print(&Incremented { key: &key, value }, value)
        }
        DocCommand::Append { key, item } => {
            let item: serde_json::Value = parse_json(&item, &quoted(&key), "")?;
            let length = docs.append(&key, &item).await?;
            out.print(&Appended { key: &key, length }, length)
        }
        DocCommand::Ttl { key } => {
            let ttl = docs.ttl(&key).await?;
            let (ttl_ms, state) = match ttl {
                KeyTtl::Missing => (None, "missing"),
                KeyTtl::Persistent => (None, "persistent"),
                KeyTtl::ExpiresIn(left) => (
                    Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
                    "expires",
                ),
            };
            let result = TtlJson {
                key: &key,
                ttl_ms,
                state,
            };
            if ttl == KeyTtl::Missing {
                out.json(&result)?;
                return Err(CliError::NotFound(format!("{} does not exist", quoted(&key))));
            }
            out.print(&result, ttl_in_words(ttl))
        }
    }
}

/// `doc get`: the stored JSON as it is (people) or compact (`--json`);
/// with `--raw`, any bytes as they are.
async fn get(docs: &Documents, key: &str, raw: bool, out: &mut Output<'_>) -> Result<(), CliError> {
    let Some(bytes) = docs.get_raw(key).await? else {
        return Err(CliError::NotFound(format!("{} does not exist", quoted(key))));
    };
    if raw {
        return out.bytes(&bytes);
    }
    // The message never quotes the data (decode strips it).
    if let Err(error) = decode::<IgnoredAny>("get", key, &bytes) {
        return Err(CliError::Failed(format!(
            "{}; `doc get --raw` prints it as it is",
            describe(&error)
        )));
    }
    if out.is_json() {
        out.bytes(&compact_json(&bytes))?;
        return out.bytes(b"\n");
    }
    out.bytes(&bytes)?;
    if !bytes.ends_with(b"\n") {
        out.bytes(b"\n")?;
    }
    Ok(())
}

/// `doc set`.
async fn set(docs: &Documents, args: SetArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    if !args.raw {
        parse_json::<IgnoredAny>(&args.value, &quoted(&args.key), " or pass --raw")?;
    }
    let mut options = SetOptions::new();
    if let Some(secs) = args.ttl {
        options = options.ttl(Ttl::from_secs_signed(secs).for_op("set", &args.key)?);
    }
    if args.if_absent {
        options = options.if_absent();
    }
    let written = docs.set_raw(&args.key, args.value, options).await?;
    let result = Written {
        key: &args.key,
        written,
    };
    if !written {
        out.json(&result)?;
        return Err(CliError::NotFound(format!(
            "{} already exists; nothing written",
            quoted(&args.key)
        )));
    }
    out.print(&result, "OK")
}

/// Valid JSON without the whitespace between its tokens: the same document
/// on one line, byte for byte otherwise (numbers keep every digit, object
/// members their order).
fn compact_json(json: &[u8]) -> Vec<u8> {
    let mut compact = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        } else if byte == b'"' {
            in_string = true;
        }
        compact.push(byte);
    }
    compact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_json_drops_whitespace_between_tokens_only() {
        let pretty = b"{\n  \"a b\": [ 1 ,\t2.50 ],\r\n  \"q\\\" \\\\\": \" x \" }\n";
        assert_eq!(
            String::from_utf8_lossy(&compact_json(pretty)),
            r#"{"a b":[1,2.50],"q\" \\":" x "}"#
        );
        let big = b"123456789012345678901234567890";
        assert_eq!(compact_json(big), big);
    }
}
