//! The fault soak: many tasks calling every family on the default stack while the topology is
//! faulted (a durable server killed, restarted, paused and resumed, its connections killed); then
//! the accounting of acknowledged writes against what is found.
//!
//! ```text
//! cargo run --release -p statehouse-tests --bin soak                  # 60 s
//! cargo run --release -p statehouse-tests --bin soak -- --seconds 300 --json
//! ```
//!
//! The engine is `statehouse_tests::soak` (also run for 10 s by `tests/tests/soak.rs`); this binary
//! parses arguments, prints the report and exits non-zero if a promise was broken: an acknowledged
//! write lost, a write applied twice, a call past its bound, a fault never recovered from.
//! It starts its own `redis-server`s (the test harness, on free loopback ports) and touches no other.
//! See `docs/reliability.md`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use statehouse_tests::soak::{self, FaultKind, Options, Topology};

const USAGE: &str = "\
usage: soak [--seconds N] [--tasks N] [--counters N] [--timeout-ms N] [--connect-timeout-ms N]
            [--slack-ms N] [--seed N] [--topology T] [--faults K,K] [--volatile] [--json]

  --seconds N     how long the tasks work (default 60)
  --tasks N       concurrent tasks (default 32)
  --counters N    counter keys incremented with update (default 8)
  --timeout-ms N  the response timeout (default 500)
  --connect-timeout-ms N
                  the connect timeout (default 2000)
  --slack-ms N    allowance for the scheduler in each call's bound (default 250)
  --seed N        seed of the random operations and faults
  --topology T    single (default), sentinel or cluster
  --faults K,K    the fault kinds, in order: restart, pause, kill-connections (single);
                  sentinel-failover, sentinel-primary-kill, kill-connections (sentinel); cluster-primary-kill,
                  kill-connections (cluster); `none` for none (default: all of the topology's)
  --durability N  acknowledge a write once N replicas confirmed it (WAIT, timeout half the
                  response timeout; give --timeout-ms first); default: the primary alone
  --volatile      data nodes without persistence: a restart loses every write, and the
                  accounting must report them lost
  --json          print the summary as JSON instead of tables
  -h, --help      this text

Starts its own durable redis-servers (never the one on 6379); exits 1 if an acknowledged write
was lost, a write applied twice, a call took longer than its bound or a fault was never
recovered from; 2 on bad arguments, or a topology statehouse cannot connect to.";

struct Args {
    options: Options,
    json: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut options = Options::new(Duration::from_secs(60));
    let mut json = false;
    let mut faults: Option<Vec<FaultKind>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            match value.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "{name} {value:?}: expected a whole number greater than 0"
                )),
            }
        };
        match arg.as_str() {
            "--seconds" => options.duration = Duration::from_secs(number("--seconds")?),
            "--tasks" => options.tasks = usize::try_from(number("--tasks")?).unwrap_or(usize::MAX),
            "--counters" => {
                options.counters = usize::try_from(number("--counters")?).unwrap_or(usize::MAX);
            }
            "--timeout-ms" => options.response_timeout = Duration::from_millis(number("--timeout-ms")?),
            "--connect-timeout-ms" => {
                options.connect_timeout = Duration::from_millis(number("--connect-timeout-ms")?);
            }
            "--slack-ms" => options.slack = Duration::from_millis(number("--slack-ms")?),
            "--seed" => options.seed = number("--seed")?,
            "--topology" => {
                let name = args.next().ok_or("--topology needs a value")?;
                let topology = Topology::from_name(&name)
                    .ok_or_else(|| format!("--topology {name:?}: expected single, sentinel or cluster"))?;
                options = options.on(topology);
            }
            "--faults" => {
                let list = args.next().ok_or("--faults needs a value")?;
                let kinds = if list == "none" {
                    Vec::new()
                } else {
                    list.split(',')
                        .map(|name| {
                            FaultKind::from_name(name.trim())
                                .ok_or_else(|| format!("--faults: unknown fault kind {name:?}"))
                        })
                        .collect::<Result<Vec<_>, _>>()?
                };
                faults = Some(kinds);
            }
            "--volatile" => options.durable = false,
            "--durability" => {
                let replicas = u32::try_from(number("--durability")?).unwrap_or(u32::MAX);
                // WAIT's timeout: at most half the response timeout (Settings' rule).
                options.durability = statehouse::Durability::replicas(replicas, options.response_timeout / 2);
            }
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(faults) = faults {
        options.faults = faults;
    }
    Ok(Some(Args { options, json }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("soak: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; timings need `cargo run --release`");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("soak: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(soak::run(args.options)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("soak: {error}");
            return ExitCode::from(2);
        }
    };
    // A closed pipe (`soak | head`) is not worth a panic.
    let mut out = std::io::stdout().lock();
    let _ = if args.json {
        writeln!(out, "{:#}", report.to_json())
    } else {
        writeln!(out, "{report}")
    };
    if report.violations().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
