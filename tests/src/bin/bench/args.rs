//! The command line: [`USAGE`], [`Options`], the workloads `--only` names.

use std::time::Duration;

use crate::Res;
use crate::engine::Side;

const USAGE: &str = "\
usage: bench [--quick] [--rounds N] [--current-thread] [--only WORKLOAD] [--side SIDE] [--fixed-size]
             [--bare] [--instructions] [--cluster]

  --quick          short run (3 rounds of ~0.15 s, 16x50 increments): a smoke check
  --rounds N       rounds per workload (default 7; 3 with --quick)
  --current-thread run on tokio's current-thread runtime (default: multi-thread, one worker per CPU)
  --only WORKLOAD  run one workload: seq, conc, mget, update, rb, save, status, list, model,
                   subjects, tenants, tq (triggers and queues) or config
                   (for profiling)
  --side SIDE      run one side: statehouse or raw (for profiling; no ratios)
  --fixed-size     fixed round sizes (1000 sequential pairs, 64x20 concurrent pairs, 20 MGETs,
                   16x20 task saves, 16x20 status changes, 20 list pages, 1000 model
                   modifies) instead of sizes
                   calibrated to the round time (for profiling, e.g. callgrind)
  --bare           measure statehouse without its tracing layer (the Redis adapter
                   through Statehouse::from_ports), to see what the layers cost
  --instructions   after the run, count the client instructions per op of both sides of every
                   workload under valgrind's callgrind (one run per workload and side, with --quick --fixed-size
                   --current-thread --rounds 1 and the same --only/--bare), and print them beside
                   this run's wall-clock ratios (takes minutes; valgrind must be on PATH);
                   with --cluster, the cluster's rows, counted on the run's cluster
  --cluster        also start a 3-primary Redis Cluster and run the cluster workloads (conc, mget,
                   update, save, status, list, subjects, tenants, tq) on it against redis-rs'
                   cluster client, beside the same workloads on the single server (cluster.rs)
  -h, --help       this text

Starts its own redis-server (never the one on 6379) and compares statehouse with raw redis-rs.";

#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) rounds: usize,
    /// How long one side's run of one workload should last, in all its slices.
    pub(crate) round_time: Duration,
    /// Alternating slices a round's run of each side is cut into.
    pub(crate) slices: usize,
    /// Increments per task in the contended update workload.
    pub(crate) increments: u64,
    /// Run only this workload (for profiling).
    pub(crate) only: Option<Workload>,
    /// Run only this side (for profiling).
    pub(crate) side: Option<Side>,
    /// Run on tokio's current-thread runtime instead of the multi-thread one.
    pub(crate) current_thread: bool,
    /// Fixed round sizes instead of calibrated ones (for profiling).
    pub(crate) fixed_size: bool,
    /// Measure the bare Redis adapter instead of the default stack (for attributing costs).
    pub(crate) bare: bool,
    /// After the run, count client instructions per op under callgrind.
    pub(crate) instructions: bool,
    /// Run the cluster workloads on a 3-primary cluster beside the single server.
    pub(crate) cluster: bool,
}

impl Options {
    pub(crate) fn runs(&self, workload: Workload) -> bool {
        self.only.is_none_or(|only| only == workload)
            && (!self.cluster || crate::cluster::ON_CLUSTER.contains(&workload))
    }

    /// The sides to run in this slice, in order. As it yields each side it tells the
    /// instruction counter which side runs now (for the sections of [`Bench::timed`](crate::engine::Bench::timed)).
    pub(crate) fn sides(&self, slice: usize) -> Sides {
        Sides(
            match self.side {
                Some(side) => vec![side],
                // The order flips every slice, so that a drift hits both sides alike.
                None if slice.is_multiple_of(2) => vec![Side::Statehouse, Side::Raw],
                None => vec![Side::Raw, Side::Statehouse],
            }
            .into_iter(),
        )
    }
}

/// What [`Options::sides`] yields.
pub(crate) struct Sides(std::vec::IntoIter<Side>);

impl Iterator for Sides {
    type Item = Side;

    fn next(&mut self) -> Option<Side> {
        let side = self.0.next()?;
        crate::instructions::set_side(side);
        Some(side)
    }
}

/// The workloads, as named by `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    Seq,
    Conc,
    Mget,
    Update,
    Model,
    RedisBenchmark,
    Save,
    Status,
    List,
    Subjects,
    Tenants,
    TriggersQueues,
    Config,
}

impl Workload {
    /// The name `--only` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Seq => "seq",
            Workload::Conc => "conc",
            Workload::Mget => "mget",
            Workload::Update => "update",
            Workload::Model => "model",
            Workload::RedisBenchmark => "rb",
            Workload::Save => "save",
            Workload::Status => "status",
            Workload::List => "list",
            Workload::Subjects => "subjects",
            Workload::Tenants => "tenants",
            Workload::TriggersQueues => "tq",
            Workload::Config => "config",
        }
    }

    /// The workloads that run in rounds, in their order.
    pub(crate) const MEASURED: [Workload; 8] = [
        Workload::Seq,
        Workload::Conc,
        Workload::Mget,
        Workload::Update,
        Workload::Save,
        Workload::Status,
        Workload::List,
        Workload::Model,
    ];
}

pub(crate) fn parse_args() -> Res<Option<Options>> {
    let mut quick = false;
    let mut rounds = None;
    let mut only = None;
    let mut side = None;
    let mut current_thread = false;
    let mut fixed_size = false;
    let mut bare = false;
    let mut instructions = false;
    let mut cluster = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--quick" => quick = true,
            "--current-thread" => current_thread = true,
            "--fixed-size" => fixed_size = true,
            "--bare" => bare = true,
            "--instructions" => instructions = true,
            "--cluster" => cluster = true,
            "--rounds" => {
                let value = value("--rounds")?;
                let parsed: usize = value.parse().map_err(|e| format!("--rounds {value:?}: {e}"))?;
                rounds = Some(parsed.max(1));
            }
            "--only" => {
                only = Some(match value("--only")?.as_str() {
                    "seq" => Workload::Seq,
                    "conc" => Workload::Conc,
                    "mget" => Workload::Mget,
                    "update" => Workload::Update,
                    "model" => Workload::Model,
                    "rb" => Workload::RedisBenchmark,
                    "save" => Workload::Save,
                    "status" => Workload::Status,
                    "list" => Workload::List,
                    "subjects" => Workload::Subjects,
                    "tenants" => Workload::Tenants,
                    "tq" => Workload::TriggersQueues,
                    "config" => Workload::Config,
                    other => {
                        return Err(format!(
                            "--only {other:?}: expected seq, conc, mget, update, rb, save, status, list, model, \
                             subjects, tenants, tq or config"
                        )
                        .into());
                    }
                });
            }
            "--side" => {
                side = Some(match value("--side")?.as_str() {
                    "statehouse" => Side::Statehouse,
                    "raw" => Side::Raw,
                    other => return Err(format!("--side {other:?}: expected statehouse or raw").into()),
                });
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    Ok(Some(Options {
        quick,
        rounds: rounds.unwrap_or(if quick { 3 } else { 7 }),
        round_time: Duration::from_millis(if quick { 150 } else { 500 }),
        slices: if quick { 3 } else { 5 },
        increments: if quick { 50 } else { 200 },
        only,
        side,
        current_thread,
        fixed_size,
        bare,
        instructions,
        cluster,
    }))
}
