//! The `statehouse` command line: a demo tour and document commands.
//!
//! The binary is a thin `main` over [`main_with`], so tests can run the
//! whole CLI in-process with captured output.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use statehouse_ports::{KeyTtl, SetOptions, StoreError, Ttl, Update, ValidationExt};

use crate::{Documents, Settings, Statehouse};

/// Typed application state shared through Redis.
#[derive(Debug, Parser)]
#[command(name = "statehouse", version, about)]
pub struct Cli {
    /// Store URL: memory:// (embedded, the default), redis://, rediss://, unix://
    #[arg(
        long,
        global = true,
        env = "STATEHOUSE_URL",
        default_value = "memory://",
        hide_env_values = true
    )]
    url: String,
    /// Prefix put in front of every Redis key.
    #[arg(long, global = true, env = "STATEHOUSE_PREFIX", default_value = "")]
    prefix: String,
    /// Bound on each call to the store, in milliseconds.
    #[arg(long, global = true, default_value_t = 2000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A short tour of what statehouse does, on the chosen store (keys under `demo:`, removed afterwards).
    Demo,
    /// Typed documents: get, set, delete, list.
    #[command(subcommand)]
    Doc(DocCommand),
    /// Check that the store answers.
    Ping,
    /// Show how statehouse lays out its Redis keys.
    Layout,
}

#[derive(Debug, Subcommand)]
enum DocCommand {
    /// Print the value stored under KEY (exit status 1 if it does not exist).
    Get {
        /// The key.
        key: String,
    },
    /// Store VALUE (JSON, unless --raw) under KEY.
    Set(SetArgs),
    /// Delete KEY.
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
    /// Show the remaining time to live of KEY.
    Ttl {
        /// The key.
        key: String,
    },
}

#[derive(Debug, Args)]
struct SetArgs {
    /// The key.
    key: String,
    /// The value: a JSON document, e.g. '{"name":"Ada"}' or '"text"'.
    value: String,
    /// Expire the key after this many seconds (more than 0).
    #[arg(long, allow_negative_numbers = true)]
    ttl: Option<i64>,
    /// Only write if the key does not exist yet.
    #[arg(long)]
    if_absent: bool,
    /// Store VALUE as it is, without checking that it is JSON.
    #[arg(long)]
    raw: bool,
}

/// A CLI failure: a store error, or a message of the CLI's own.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The input or the result is not what the command needs.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Parses `args` (including the program name) and runs the command,
/// writing results to `out` and errors to `err`. Returns the exit status:
/// 0 on success, 1 on failure, 2 on a usage error.
pub fn main_with(args: impl IntoIterator<Item = OsString>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let code = error.exit_code();
            let rendered = error.render();
            let target: &mut dyn Write = if error.use_stderr() { err } else { out };
            let _ = write!(target, "{rendered}");
            return code;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(err, "error: cannot start the async runtime: {error}");
            return 1;
        }
    };
    let result = runtime.block_on(run(cli, out));
    match result {
        Ok(()) => 0,
        Err(error) => {
            let _ = writeln!(err, "error: {error}");
            1
        }
    }
}

/// Runs a parsed command.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let mut settings = Settings::new(cli.url);
    settings.prefix = cli.prefix;
    settings.response_timeout = Duration::from_millis(cli.timeout_ms.max(1));
    settings.connect_timeout = settings.response_timeout;
    if let Command::Layout = cli.command {
        return layout(&settings, out);
    }
    let state = Statehouse::with_settings(settings).await?;
    let docs = state.documents();
    match cli.command {
        Command::Demo => demo(&state, out).await,
        Command::Ping => {
            docs.ping().await?;
            writeln!(out, "PONG from {} ({})", state.settings(), state.backend())?;
            Ok(())
        }
        Command::Layout => Ok(()),
        Command::Doc(command) => doc(&docs, command, out).await,
    }
}

async fn doc(docs: &Documents, command: DocCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        DocCommand::Get { key } => match docs.get_raw(&key).await? {
            Some(bytes) => {
                out.write_all(&bytes)?;
                writeln!(out)?;
                Ok(())
            }
            None => Err(CliError::Usage(format!("{key:?} does not exist"))),
        },
        DocCommand::Set(args) => {
            if !args.raw {
                serde_json::from_str::<serde_json::Value>(&args.value).map_err(|error| {
                    CliError::Usage(format!(
                        "the value for {:?} is not valid JSON ({error}); quote text as '\"text\"' or pass --raw",
                        args.key
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
                Err(CliError::Usage(format!(
                    "{:?} already exists; nothing written",
                    args.key
                )))
            }
        }
        DocCommand::Del { key } => {
            let existed = docs.delete(&key).await?;
            writeln!(out, "{}", if existed { "deleted" } else { "did not exist" })?;
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
                KeyTtl::Missing => return Err(CliError::Usage(format!("{key:?} does not exist"))),
                KeyTtl::Persistent => writeln!(out, "no expiry")?,
                KeyTtl::ExpiresIn(left) => writeln!(out, "{} ms", left.as_millis())?,
            }
            Ok(())
        }
    }
}

fn layout(settings: &Settings, out: &mut dyn Write) -> Result<(), CliError> {
    let prefix = if settings.prefix.is_empty() {
        "(none)".to_owned()
    } else {
        format!("{:?}", settings.prefix)
    };
    writeln!(out, "statehouse key layout (see docs/keys.md)")?;
    writeln!(out, "store:  {settings}")?;
    writeln!(out, "prefix: {prefix}, put in front of every key and pattern")?;
    writeln!(out)?;
    writeln!(out, "family     redis key                 type    notes")?;
    writeln!(
        out,
        "documents  {{prefix}}{{key}}              string  JSON value; key used verbatim (validated: 1-512 bytes, no control characters)"
    )?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Admin,
    Member,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    role: Role,
    joined: chrono::DateTime<chrono::Utc>,
}

async fn demo(state: &Statehouse, out: &mut dyn Write) -> Result<(), CliError> {
    let docs = state.documents();
    writeln!(
        out,
        "statehouse demo on {} ({})",
        state.settings(),
        state.backend()
    )?;

    writeln!(
        out,
        "\n1. Typed documents (JSON; enums lowercase, timestamps RFC 3339 UTC)"
    )?;
    let ada = User {
        name: "Ada".into(),
        role: Role::Admin,
        joined: chrono::Utc::now(),
    };
    docs.set("demo:user:1", &ada).await?;
    let raw = docs.get_raw("demo:user:1").await?.unwrap_or_default();
    writeln!(
        out,
        "   set demo:user:1 -> stored {}",
        String::from_utf8_lossy(&raw)
    )?;
    let back: Option<User> = docs.get("demo:user:1").await?;
    writeln!(out, "   get demo:user:1 -> {back:?}")?;
    if back.as_ref() != Some(&ada) {
        return Err(CliError::Usage("demo: the document did not round-trip".into()));
    }

    writeln!(out, "\n2. mget reports a result per key")?;
    docs.set_raw("demo:user:broken", "{not json", SetOptions::new())
        .await?;
    let keys = ["demo:user:1", "demo:user:2", "demo:user:broken", "bad\nkey"];
    let results = docs.mget::<User>(&keys).await?;
    for (key, result) in keys.iter().zip(&results) {
        let shown = match result {
            Ok(Some(user)) => format!("found {}", user.name),
            Ok(None) => "absent".to_owned(),
            Err(error) => format!("failed: {error}"),
        };
        writeln!(out, "   {key:?}: {shown}")?;
    }

    writeln!(out, "\n3. Atomic updates: 8 tasks x 25 increments of one counter")?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let docs = docs.clone();
        tasks.spawn(async move {
            for _ in 0..25 {
                docs.update("demo:counter", |n: Option<u64>| Update::Set(n.unwrap_or(0) + 1))
                    .await?;
            }
            Ok::<(), StoreError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| CliError::Usage(format!("demo task failed: {e}")))??;
    }
    let counter: Option<u64> = docs.get("demo:counter").await?;
    writeln!(out, "   demo:counter = {} (expected 200)", counter.unwrap_or(0))?;
    if counter != Some(200) {
        return Err(CliError::Usage("demo: an increment was lost".into()));
    }

    writeln!(out, "\n4. TTLs are set with the write")?;
    docs.set_with_ttl("demo:session", &"token", Duration::from_millis(300))
        .await?;
    writeln!(
        out,
        "   demo:session ttl -> {:?}",
        docs.ttl("demo:session").await?
    )?;
    tokio::time::sleep(Duration::from_millis(350)).await;
    writeln!(
        out,
        "   after 350 ms: exists = {}",
        docs.exists("demo:session").await?
    )?;
    let zero = docs.set_with_ttl("demo:session", &"token", Duration::ZERO).await;
    if let Err(error) = zero {
        writeln!(out, "   a zero TTL is refused: {error}")?;
    }

    writeln!(out, "\n5. Listing by pattern (SCAN, never KEYS)")?;
    writeln!(
        out,
        "   demo:user:* -> {:?}",
        docs.list_keys("demo:user:*").await?
    )?;

    writeln!(out, "\n6. Clean up and health")?;
    let mut removed = 0;
    for key in docs.list_keys("demo:*").await? {
        removed += usize::from(docs.delete(&key).await?);
    }
    writeln!(
        out,
        "   deleted {removed} demo keys; store alive = {}",
        docs.is_alive().await
    )?;
    Ok(())
}
