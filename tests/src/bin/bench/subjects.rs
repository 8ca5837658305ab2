//! Subjects (after the rounds): `store()` of 20 staged properties, and `set_with` from 16 tasks
//! against the naive WATCH/HGET/HSET loop.

use redis::aio::MultiplexedConnection;
use statehouse::Statehouse;

use crate::Res;
use crate::args::Options;
use crate::cluster::Figures;
use crate::cluster_raw::RawCon;
use crate::documents::UPDATE_TASKS;
use crate::engine::{Bench, Sample, Side, Step, TURN, interleaved};
use crate::report::median;

/// Properties per `store()` in the subjects workload.
const SUBJECT_PROPS: usize = 20;
/// The subject of the subjects workload (KRules' key, no subject prefix).
const SUBJECT_KEY: &str = "s:bench:subject";

/// Subjects, after the rounds: `store()` of 20 staged properties against raw `MULTI; HSET (20
/// fields); EXEC`, and 16 tasks of `set_with(counter, +1)` against the naive WATCH/HGET/HSET loop
/// (exact count required). Median ratios of `options.rounds` runs, against the targets; returns
/// statehouse's median rates and the ratios.
pub(crate) async fn subjects_bench(state: &Statehouse, bench: &Bench, options: Options) -> Res<Figures> {
    let subjects = state.subjects();
    let stores = if options.quick { 300 } else { 2_000 };
    let increments = options.increments;
    let mut store_ratios = Vec::new();
    let mut contended_ratios = Vec::new();
    let (mut store_rates, mut contended_sh) = (Vec::new(), Vec::new());
    // Round 0 warms up (connections, the handle's first load, caches) and is not counted.
    for round in 0..=options.rounds {
        let mut contended_rates = [0.0; 2];
        // Uncontended store() of 20 staged properties: both sides in turns of a few stores in one
        // task (`interleaved`), or one side in slices (`--side`, the instruction count).
        let store_figures = if options.side.is_none() {
            let steps = (subjects.subject("bench:subject")?, bench.raw.clone());
            let (statehouse, raw) = (
                StoreStep::new(steps.0, 0).await?,
                RawStoreStep { con: steps.1, n: 0 },
            );
            let row = Some(("11. subjects: store() of 20 properties", 1));
            let measured = interleaved(row, statehouse, raw, stores, TURN).await?;
            Some(measured)
        } else {
            for slice in 0..options.slices {
                for side in options.sides(round * options.slices + slice) {
                    bench
                        .subject_stores(&subjects, side, (stores / options.slices as u64).max(1))
                        .await?;
                }
            }
            None
        };
        for side in options.sides(round) {
            let i = usize::from(side == Side::Raw);

            // Contended set_with: 16 tasks, one property.
            let mut con = bench.raw.clone();
            redis::cmd("DEL").arg(SUBJECT_KEY).exec_async(&mut con).await?;
            let mut dedicated = Vec::new();
            if side == Side::Raw {
                for _ in 0..UPDATE_TASKS {
                    dedicated.push(bench.raw_nodes.dedicated(SUBJECT_KEY).await?);
                }
            }
            let mut dedicated = dedicated.into_iter();
            let timed = bench
                .timed(UPDATE_TASKS, |_| {
                    let subjects = subjects.clone();
                    let con = dedicated.next();
                    async move {
                        match side {
                            Side::Statehouse => {
                                let mut subject = subjects.subject("bench:subject")?;
                                for _ in 0..increments {
                                    subject
                                        .set_with("counter", |n: Option<u64>| n.unwrap_or(0) + 1)
                                        .await?;
                                }
                                Ok(increments)
                            }
                            Side::Raw => hincrement_naive(con.ok_or("no connection")?, increments).await,
                        }
                    }
                })
                .await?;
            let expected = UPDATE_TASKS as u64 * increments;
            let stored: Option<String> = redis::cmd("HGET")
                .arg(SUBJECT_KEY)
                .arg("pcounter")
                .query_async(&mut con)
                .await?;
            if stored.as_deref() != Some(expected.to_string().as_str()) {
                return Err(format!(
                    "WRONG COUNT ({side:?}): the subject counter is {stored:?}, expected {expected}"
                )
                .into());
            }
            contended_rates[i] = expected as f64 / timed.elapsed.as_secs_f64().max(1e-9);
        }
        if round == 0 {
            continue;
        }
        if options.side.is_some() {
            continue; // one side (--side, --instructions): no ratio
        }
        let Some(measured) = store_figures else {
            return Err("the subjects workload measured no store()".into());
        };
        store_ratios.push(measured.ratio());
        contended_ratios.push(contended_rates[0] / contended_rates[1]);
        store_rates.push(measured.rate(Side::Statehouse));
        contended_sh.push(contended_rates[0]);
        println!(
            "subjects round {}/{}: store() of {SUBJECT_PROPS} {:.0}/s vs raw {:.0}/s (in turns of {TURN}); \
             set_with {UPDATE_TASKS}x{increments} {:.0}/s vs naive {:.0}/s",
            round,
            options.rounds,
            measured.rate(Side::Statehouse),
            measured.rate(Side::Raw),
            contended_rates[0],
            contended_rates[1],
        );
    }
    let store = median(store_ratios);
    let contended = median(contended_ratios);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "subjects: store() {store:.2}x raw (target >= 0.9: {}), contended set_with {contended:.2}x the naive \
         loop (target >= 1.5: {}), counts exact",
        verdict(store >= 0.9),
        verdict(contended >= 1.5),
    );
    Ok(vec![
        ("11. subjects store() of 20", median(store_rates), store, 0.9),
        (
            "11. subjects set_with, 16 tasks (vs naive loop)",
            median(contended_sh),
            contended,
            1.5,
        ),
    ])
}

/// One `store()` of [`SUBJECT_PROPS`] staged properties through a loaded `Subject` handle (the
/// values count stores).
struct StoreStep {
    subject: statehouse::Subject,
    n: u64,
}

impl StoreStep {
    /// Loaded before the clock starts, as a service's handle would be.
    async fn new(mut subject: statehouse::Subject, n: u64) -> Res<Self> {
        subject.get::<serde_json::Value>("prop0").await?;
        Ok(Self { subject, n })
    }
}

impl Step for StoreStep {
    async fn step(&mut self) -> Res<()> {
        for p in 0..SUBJECT_PROPS {
            self.subject.set(&format!("prop{p}"), &self.n).await?;
        }
        self.subject.store().await?;
        self.n += 1;
        Ok(())
    }
}

/// The same write raw: `MULTI; HSET` of the [`SUBJECT_PROPS`] fields `; EXEC`.
struct RawStoreStep {
    con: RawCon,
    n: u64,
}

impl Step for RawStoreStep {
    async fn step(&mut self) -> Res<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let hset = pipe.cmd("HSET").arg(SUBJECT_KEY);
        for p in 0..SUBJECT_PROPS {
            hset.arg(format!("pprop{p}")).arg(serde_json::to_string(&self.n)?);
        }
        hset.ignore();
        pipe.exec_async(&mut self.con).await?;
        self.n += 1;
        Ok(())
    }
}

/// The naive optimistic loop on a hash field: WATCH; HGET; MULTI/HSET/EXEC; start over at once on
/// an aborted EXEC. Returns how many increments it made.
async fn hincrement_naive(mut con: MultiplexedConnection, increments: u64) -> Res<u64> {
    for _ in 0..increments {
        loop {
            redis::cmd("WATCH").arg(SUBJECT_KEY).exec_async(&mut con).await?;
            let old: Option<String> = redis::cmd("HGET")
                .arg(SUBJECT_KEY)
                .arg("pcounter")
                .query_async(&mut con)
                .await?;
            let count: u64 = match old {
                Some(text) => serde_json::from_str(&text)?,
                None => 0,
            };
            let committed: Option<()> = redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(SUBJECT_KEY)
                .arg("pcounter")
                .arg(serde_json::to_string(&(count + 1))?)
                .ignore()
                .query_async(&mut con)
                .await?;
            if committed.is_some() {
                break;
            }
        }
    }
    Ok(increments)
}

impl Bench {
    /// `stores` × `store()` of [`SUBJECT_PROPS`] staged properties through one loaded `Subject`
    /// handle, or the same `MULTI; HSET …; EXEC` raw, in one task.
    pub(crate) async fn subject_stores(
        &self,
        subjects: &statehouse::Subjects,
        side: Side,
        stores: u64,
    ) -> Res<Sample> {
        let mut statehouse = match side {
            Side::Statehouse => Some(StoreStep::new(subjects.subject("bench:subject")?, 0).await?),
            Side::Raw => None,
        };
        let raw = self.raw.clone();
        let timed = self
            .timed(1, |_| {
                let statehouse = statehouse.take();
                let mut raw = RawStoreStep {
                    con: raw.clone(),
                    n: 0,
                };
                async move {
                    match (side, statehouse) {
                        (Side::Statehouse, Some(mut statehouse)) => {
                            for _ in 0..stores {
                                statehouse.step().await?;
                            }
                        }
                        (Side::Statehouse, None) => return Err("no subject handle".into()),
                        (Side::Raw, _) => {
                            for _ in 0..stores {
                                raw.step().await?;
                            }
                        }
                    }
                    Ok(stores)
                }
            })
            .await?;
        Ok(Sample::new(&timed, stores, 0))
    }
}
