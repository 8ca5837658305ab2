//! The `statehouse` command line over the statehouse library: a tour of
//! every family (`demo`) and a command per family.
//!
//! The binary is a thin `main` over [`main_with`], so tests can run the
//! whole CLI in-process with captured output.
//!
//! # Layout
//!
//! - `lib.rs` (this file): the parser and the dispatch, nothing else.
//! - `output.rs`: what every command shares: `Output` (text for people,
//!   or `--json`), [`CliError`] and the [`exit`] codes,
//!   quoting, durations and TTLs in words, Ctrl-C.
//! - one file per command family: `documents.rs` (`doc`, `ping`),
//!   `tasks.rs`, `subjects.rs`, `synced.rs` (`model`), `tenants.rs`,
//!   `queues.rs` (`triggers` and `queue`), `config.rs` (`config` and
//!   `watch`), `layout.rs`, `status.rs`, and `demo/` (the tour). Commands import
//!   `output.rs`, never each other.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use statehouse::{Settings, Statehouse};

mod config;
mod demo;
mod documents;
mod layout;
mod output;
mod queues;
mod status;
mod subjects;
mod synced;
mod tasks;
mod tenants;

use documents::DocCommand;
pub use output::{CliError, exit};
use output::{EXIT_STATUS_HELP, Output};

/// Typed application state shared through Redis.
// `Debug` shows the URL without its password, like every other output.
#[derive(Parser)]
#[command(name = "statehouse", version, about, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    /// Store URL: memory:// (embedded, the default), redis://[user:pw@]host[:port][/db],
    /// rediss://… (TLS), unix:///path, redis+cluster://[user:pw@]host1:port1,host2:port2
    /// (a Redis Cluster, its nodes as seeds; rediss+cluster://… with TLS),
    /// redis+sentinel://[user:pw@]s1:26379,s2:26379/SERVICE[/DB][?sentinel_username=…&sentinel_password=…]
    /// (the primary of a Sentinel service, followed on failover; rediss+sentinel://… with TLS)
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
    /// Print results as JSON, one document on stdout, for scripts (errors stay text on stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A short tour of what statehouse does, on the chosen store. Its keys are
    /// under `demo:<run id>:`, a namespace of each run's own, and removed
    /// afterwards, also after a failure or Ctrl-C (exit status 130).
    Demo(demo::DemoArgs),
    /// Typed documents: get, set, delete, list, ttl, incr, append.
    #[command(subcommand)]
    Doc(DocCommand),
    /// Task lifecycle: save, show, list, set-status, log, del.
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// Subjects (KRules' layout): show, set, incr, del, list.
    #[command(subcommand)]
    Subject(subjects::SubjectCommand),
    /// Synced models under TYPE:ID (a hash of fields, or a JSON document): show, set.
    #[command(subcommand)]
    Model(synced::ModelCommand),
    /// One tenant's records: users [get USER], state USER [NAME], table TABLE [PK].
    Tenant(tenants::TenantArgs),
    /// Expiration triggers of a tenant: `triggers TENANT [--due]` lists
    /// them, `triggers set TENANT ACTION ID DELAY` sets one, `triggers due
    /// [--limit N]` shows the due index across tenants.
    Triggers(queues::TriggersArgs),
    /// Batch queues: `queue TENANT SERVICE BATCH ACTION [--peek N]` shows a
    /// queue, `queue pending SERVICE` the tenants with queued work.
    Queue(queues::QueueArgs),
    /// Versioned configuration: get, set, history, watch.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print the change events of the keys matching PATTERN (the raw change
    /// feed), until Ctrl-C. On Redis, writes by other clients and expiry
    /// show only when the server has keyspace notifications enabled.
    Watch(config::WatchArgs),
    /// Check that the store answers.
    Ping,
    /// Show how statehouse lays out its Redis keys.
    Layout,
    /// Show the topology: each endpoint, the role its server reports, its
    /// replicas or primary and the replication lag (exit status 3 if an
    /// endpoint cannot be reached).
    Status,
}

impl fmt::Debug for Cli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cli")
            .field("url", &Settings::new(self.url.as_str()).redacted_url())
            .field("prefix", &self.prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("json", &self.json)
            .field("command", &self.command)
            .finish()
    }
}

/// Parses `args` (including the program name) and runs the command,
/// writing results to `out` and errors to `err`. Returns the exit status,
/// one of [`exit`]'s (clap's own: 0 for `--help`, 2 for a parse error).
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
            return exit::FAILED;
        }
    };
    let result = runtime.block_on(run(cli, out));
    match result {
        Ok(()) => exit::DONE,
        Err(error) => {
            let _ = writeln!(err, "error: {error}");
            error.exit_code()
        }
    }
}

/// Runs a parsed command.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let mut settings = Settings::new(cli.url);
    settings.prefix = cli.prefix;
    settings.response_timeout = Duration::from_millis(cli.timeout_ms.max(1));
    settings.connect_timeout = settings.response_timeout;
    let out = &mut Output::new(out, cli.json);
    let command = match cli.command {
        Command::Layout => return layout::layout(&settings, out),
        // Status asks each endpoint itself: an unreachable one is reported, not fatal.
        Command::Status => return status::status(&settings, status::backend_of(&settings), out).await,
        // The demo connects itself, under a namespace of its own.
        Command::Demo(args) => return demo::demo(settings, args, out).await,
        command => command,
    };
    let state = Statehouse::with_settings(settings).await?;
    let docs = state.documents();
    match command {
        Command::Layout | Command::Demo(_) | Command::Status => Ok(()),
        Command::Ping => documents::ping(&state, &docs, out).await,
        Command::Doc(command) => documents::doc(&docs, command, out).await,
        Command::Tasks(command) => tasks::tasks(&state.tasks(), command, out).await,
        Command::Subject(command) => subjects::subject(&state, command, out).await,
        Command::Tenant(args) => tenants::tenant(&state, args, out).await,
        Command::Model(command) => synced::model(&state.models(), command, out).await,
        Command::Triggers(args) => queues::triggers(&state.triggers(), args, out).await,
        Command::Queue(args) => queues::queue(&state.queues(), args, out).await,
        Command::Config(command) => config::config(&state, command, out).await,
        Command::Watch(args) => args.run(&state, out).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_parsed_command_line_hides_the_password() {
        let cli = Cli::try_parse_from(["statehouse", "--url", "redis://u:hunter2@db:6379", "ping"]).unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db:6379"), "{shown}");
    }
}
