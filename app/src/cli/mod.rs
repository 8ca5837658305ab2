//! The `statehouse` command line: a demo tour and document commands.
//!
//! The binary is a thin `main` over [`main_with`], so tests can run the
//! whole CLI in-process with captured output.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use statehouse_ports::StoreError;

use crate::{Settings, Statehouse};

mod demo;
mod documents;
mod layout;

use documents::DocCommand;

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
        return layout::layout(&settings, out);
    }
    let state = Statehouse::with_settings(settings).await?;
    let docs = state.documents();
    match cli.command {
        Command::Demo => demo::demo(&state, out).await,
        Command::Ping => documents::ping(&state, &docs, out).await,
        Command::Layout => Ok(()),
        Command::Doc(command) => documents::doc(&docs, command, out).await,
    }
}
