//! Tenants (after the rounds): a one-field update, a merge-upsert returning the merged state, and a
//! contended increment, each against raw redis-rs sending the same commands.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use statehouse::Statehouse;

use crate::Res;
use crate::args::Options;
use crate::documents::UPDATE_TASKS;
use crate::engine::{Bench, Side, TURN};
use crate::report::median;

/// The user hash of the tenants workload (tenant `bench`, user `bench-user`).
const TENANT_USER_KEY: &str = "t:{bench}:user:bench-user";
/// The handler state hash of the tenants workload.
const TENANT_HANDLER_KEY: &str = "t:{bench}:handler:bench-user:chat";

/// The three tenant workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TenantOp {
    /// One-field update: `Users::set_field` against `HSET`.
    Field,
    /// Merge-upsert returning the merged state: `HandlerStates::merge` against `MULTI; HSET;
    /// HGETALL; EXEC` and a decode of every field.
    Merge,
    /// 16 tasks incrementing one field: `Users::increment` against `EVALSHA` of the same script.
    Increment,
}

/// What the tenant workloads share.
struct TenantBench<'a> {
    bench: &'a Bench,
    users: statehouse::Users,
    handlers: statehouse::HandlerStates,
    script: redis::Script,
}

impl TenantBench<'_> {
    /// Runs `n` ops of `op` on `side` (for `Increment`, `n` per task, 16 tasks; the count is
    /// checked); returns the ops done and the time they took.
    async fn run(&self, op: TenantOp, side: Side, n: u64) -> Res<(u64, Duration)> {
        let mut con = self.bench.raw.clone();
        match op {
            TenantOp::Field => {
                let section = crate::instructions::start("12. tenants: set_field", side).await;
                let start = Instant::now();
                for i in 0..n {
                    match side {
                        Side::Statehouse => self.users.set_field("bench-user", "step", &i).await?,
                        Side::Raw => {
                            redis::cmd("HSET")
                                .arg(TENANT_USER_KEY)
                                .arg("step")
                                .arg(serde_json::to_string(&i)?)
                                .exec_async(&mut con)
                                .await?;
                        }
                    }
                }
                section.end(n).await;
                Ok((n, start.elapsed()))
            }
            TenantOp::Merge => {
                let section = crate::instructions::start("12. tenants: merge-upsert", side).await;
                let start = Instant::now();
                for i in 0..n {
                    let merged: HashMap<String, serde_json::Value> = match side {
                        Side::Statehouse => {
                            self.handlers
                                .merge("bench-user", "chat", &serde_json::json!({"step": i}))
                                .await?
                        }
                        Side::Raw => {
                            let (fields,): (Vec<(String, Vec<u8>)>,) = redis::pipe()
                                .atomic()
                                .cmd("HSET")
                                .arg(TENANT_HANDLER_KEY)
                                .arg("step")
                                .arg(serde_json::to_string(&i)?)
                                .ignore()
                                .cmd("HGETALL")
                                .arg(TENANT_HANDLER_KEY)
                                .query_async(&mut con)
                                .await?;
                            let mut merged = HashMap::with_capacity(fields.len());
                            for (field, value) in fields {
                                merged.insert(field, serde_json::from_slice(&value)?);
                            }
                            merged
                        }
                    };
                    if merged.len() != 3 || merged.get("step") != Some(&serde_json::json!(i)) {
                        return Err(format!("WRONG MERGE ({side:?}): {merged:?}").into());
                    }
                }
                section.end(n).await;
                Ok((n, start.elapsed()))
            }
            TenantOp::Increment => {
                redis::cmd("HDEL")
                    .arg(TENANT_USER_KEY)
                    .arg("count")
                    .exec_async(&mut con)
                    .await?;
                let timed = self
                    .bench
                    .timed(UPDATE_TASKS, |_| {
                        let users = self.users.clone();
                        let script = self.script.clone();
                        let mut con = self.bench.raw.clone();
                        async move {
                            for _ in 0..n {
                                match side {
                                    Side::Statehouse => {
                                        users.increment("bench-user", "count", 1).await?;
                                    }
                                    Side::Raw => {
                                        let _: i64 = script
                                            .key(TENANT_USER_KEY)
                                            .arg("count")
                                            .arg(1)
                                            .arg(0)
                                            .invoke_async(&mut con)
                                            .await?;
                                    }
                                }
                            }
                            Ok(n)
                        }
                    })
                    .await?;
                let expected = UPDATE_TASKS as u64 * n;
                let stored: Option<String> = redis::cmd("HGET")
                    .arg(TENANT_USER_KEY)
                    .arg("count")
                    .query_async(&mut con)
                    .await?;
                if stored.as_deref() != Some(expected.to_string().as_str()) {
                    return Err(format!(
                        "WRONG COUNT ({side:?}): the tenant counter is {stored:?}, expected {expected}"
                    )
                    .into());
                }
                Ok((expected, timed.elapsed))
            }
        }
    }
}

/// Tenants, after the rounds: a one-field update, a merge-upsert returning the merged state, and a
/// contended increment (16 tasks, one field, exact count), each against raw redis-rs sending the
/// same commands. In each round the two sides run in alternating slices (the order flipping each
/// slice); median ratios of `options.rounds` rounds, against the target (>= 0.9x raw); returns
/// statehouse's median rates and the ratios.
pub(crate) async fn tenants_bench(
    state: &Statehouse,
    bench: &Bench,
    options: Options,
) -> Res<crate::cluster::Figures> {
    let tenant = state.tenant("bench")?;
    let run = TenantBench {
        bench,
        users: tenant.users(),
        handlers: tenant.handler_states(),
        script: redis::Script::new(statehouse_redis::TENANT_INCREMENT_SCRIPT),
    };
    // The raw increments must run the script statehouse runs: after one statehouse increment on
    // this fresh server, the server holds the raw side's script (same SHA1). On a cluster: the
    // primary of the tenant's slot (`{bench}`, its hash tag), where statehouse ran it.
    let mut con = bench.raw_nodes.dedicated("{bench}").await?;
    run.users.increment("bench-user", "warm", 1).await?;
    let (loaded,): (Vec<bool>,) = redis::pipe()
        .cmd("SCRIPT")
        .arg("EXISTS")
        .arg(run.script.get_hash())
        .query_async(&mut con)
        .await?;
    if loaded != [true] {
        return Err("the raw side runs another increment script than statehouse".into());
    }
    run.handlers
        .set(
            "bench-user",
            "chat",
            &serde_json::json!({"topic": "billing", "lang": "en", "step": 0}),
        )
        .await?;
    let per_slice = |op: TenantOp| -> u64 {
        match op {
            TenantOp::Increment => options.increments,
            TenantOp::Field | TenantOp::Merge => {
                if options.quick {
                    100
                } else {
                    1_000
                }
            }
        }
    };
    let ops = [TenantOp::Field, TenantOp::Merge, TenantOp::Increment];
    let mut ratios: [Vec<f64>; 3] = Default::default();
    let mut sh_rates: [Vec<f64>; 3] = Default::default();
    // Round 0 warms up and is not counted.
    for round in 0..=options.rounds {
        let mut rates = [[0.0; 2]; 3];
        for (k, op) in ops.into_iter().enumerate() {
            let mut done = [(0u64, Duration::ZERO); 2];
            // One task's ops run in turns of a few when both sides run, so that both run under the
            // same conditions (`engine::interleaved`); the contended increment in slices.
            let (parts, n) = if options.side.is_none() && op != TenantOp::Increment {
                let ops = options.slices as u64 * per_slice(op);
                (ops.div_ceil(TURN) as usize, TURN)
            } else {
                (options.slices, per_slice(op))
            };
            for part in 0..parts {
                for side in options.sides(round + part) {
                    let (n, took) = run.run(op, side, n).await?;
                    let i = usize::from(side == Side::Raw);
                    done[i].0 += n;
                    done[i].1 += took;
                }
            }
            for i in 0..2 {
                rates[k][i] = done[i].0 as f64 / done[i].1.as_secs_f64().max(1e-9);
            }
        }
        if round == 0 {
            continue;
        }
        for ((ratio, sh), rate) in ratios.iter_mut().zip(&mut sh_rates).zip(rates) {
            ratio.push(rate[0] / rate[1]);
            sh.push(rate[0]);
        }
        println!(
            "tenants round {}/{}: set_field {:.0}/s vs raw {:.0}/s; merge {:.0}/s vs raw {:.0}/s; \
             increment {UPDATE_TASKS} tasks {:.0}/s vs raw {:.0}/s",
            round,
            options.rounds,
            rates[0][0],
            rates[0][1],
            rates[1][0],
            rates[1][1],
            rates[2][0],
            rates[2][1],
        );
    }
    let [field, merge, increment] = ratios.map(median);
    let verdict = |ratio: f64| if ratio >= 0.9 { "met" } else { "MISSED" };
    println!(
        "tenants: one-field update {field:.2}x raw ({}), merge-upsert {merge:.2}x raw ({}), contended \
         increment {increment:.2}x raw ({}); target >= 0.9 each; counts exact",
        verdict(field),
        verdict(merge),
        verdict(increment),
    );
    let [field_rate, merge_rate, increment_rate] = sh_rates.map(median);
    Ok(vec![
        ("12. tenants set_field", field_rate, field, 0.9),
        ("12. tenants merge-upsert", merge_rate, merge, 0.9),
        ("12. tenants increment, 16 tasks", increment_rate, increment, 0.9),
    ])
}
