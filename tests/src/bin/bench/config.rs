//! The config store (after the rounds): update -> remote watcher latency against raw PUBLISH ->
//! SUBSCRIBE, and a cached fetch against a raw GET + decode.

use std::time::{Duration, Instant};

use statehouse::{Settings, Statehouse};

use crate::Res;
use crate::args::Options;
use crate::documents::Doc;
use crate::engine::{Bench, Side};
use crate::report::median;

/// The config entry of the config workload.
const CONFIG_NAME: &str = "bench";
/// The rows of `--instructions`.
const WATCH_ROW: &str = "15. config: update -> watcher (raw: PUBLISH -> SUBSCRIBE)";
const FETCH_ROW: &str = "15. config: cached fetch (raw: GET + decode)";

/// The `q`-quantile (0..=1) of sorted `values`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(duration: Duration) -> String {
    format!("{:.0} us", duration.as_secs_f64() * 1e6)
}

/// Config, after the rounds: update -> remote watcher latency against raw PUBLISH -> SUBSCRIBE,
/// and a cached fetch against a raw GET + decode. Two `Statehouse` instances (two connections,
/// two caches), like two services.
pub(crate) async fn config_bench(url: &str, bench: &Bench, options: Options) -> Res<()> {
    use futures_util::StreamExt as _;

    let writer = Statehouse::with_settings(Settings::new(url)).await?.config();
    let reader = Statehouse::with_settings(Settings::new(url)).await?.config();
    let mut doc = bench.doc.clone();
    writer.update(CONFIG_NAME, &doc).await?;
    // The writer caches the entry (a service that reads the config it
    // writes): with its cache current, an update is one compare-and-set
    // round trip.
    writer.fetch::<Doc>(CONFIG_NAME).await?;
    let mut rx = reader.watch::<Doc>(CONFIG_NAME).await?;

    let channel = "bench:raw-changes";
    let mut subscriber = bench.client.get_async_pubsub().await?;
    subscriber.subscribe(channel).await?;
    let mut messages = subscriber.into_on_message();
    let mut publisher = bench.client.get_multiplexed_async_connection().await?;
    let payload = serde_json::to_vec(&doc)?;

    let samples = if options.quick { 300 } else { 3_000 };
    let warm = samples / 10;
    let (mut seen, mut committed, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..warm + samples {
        // Alternate which side goes first.
        for side in options.sides(i) {
            match side {
                Side::Statehouse => {
                    let section = crate::instructions::start(WATCH_ROW, side).await;
                    doc.id = i as u64;
                    let start = Instant::now();
                    let version = writer.update(CONFIG_NAME, &doc).await?;
                    let done = start.elapsed();
                    let snapshot = tokio::time::timeout(
                        Duration::from_secs(10),
                        rx.wait_for(|s| s.current.as_ref().is_some_and(|c| c.version >= version)),
                    )
                    .await
                    .map_err(|_| format!("the watcher did not see version {version} within 10 s"))??
                    .clone();
                    let latency = start.elapsed();
                    section.end(1).await;
                    if snapshot.current.map(|c| c.value.id) != Some(i as u64) {
                        return Err(format!("the watcher holds another value than update {i}").into());
                    }
                    if i >= warm {
                        seen.push(latency);
                        committed.push(latency.saturating_sub(done));
                    }
                }
                Side::Raw => {
                    let section = crate::instructions::start(WATCH_ROW, side).await;
                    let start = Instant::now();
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(&payload)
                        .exec_async(&mut publisher)
                        .await?;
                    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                        .await
                        .map_err(|_| "the raw subscriber got nothing within 10 s")?
                        .ok_or("the raw subscription ended")?;
                    let latency = start.elapsed();
                    section.end(1).await;
                    if message.get_payload_bytes().len() != payload.len() {
                        return Err("the raw subscriber got another payload".into());
                    }
                    if i >= warm {
                        raw.push(latency);
                    }
                }
            }
        }
    }
    for list in [&mut seen, &mut committed, &mut raw] {
        list.sort_unstable();
    }
    let (p50, p99) = (quantile(&seen, 0.5), quantile(&seen, 0.99));
    let (c50, c99) = (quantile(&committed, 0.5), quantile(&committed, 0.99));
    let (r50, r99) = (quantile(&raw, 0.5), quantile(&raw, 0.99));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "config: update -> remote watcher ({samples} samples, ~{} B document): p50 {}, p99 {}; \
         from the update's return: p50 {}, p99 {}",
        payload.len(),
        micros(p50),
        micros(p99),
        micros(c50),
        micros(c99),
    );
    println!(
        "config: raw PUBLISH -> SUBSCRIBE of the same bytes: p50 {}, p99 {}; p99 {:.2}x raw (target <= 2: {}), \
         from the update's return {:.2}x",
        micros(r50),
        micros(r99),
        ratio(p99, r99),
        verdict(ratio(p99, r99) <= 2.0),
        ratio(c99, r99),
    );

    // Cached fetch against a raw GET + decode of the same document.
    let key = format!("config:{CONFIG_NAME}");
    let mut raw_con = bench.raw.clone();
    let fetches: u32 = if options.quick { 20_000 } else { 200_000 };
    let gets: u32 = if options.quick { 2_000 } else { 20_000 };
    let mut fetch_ratios = Vec::new();
    for round in 0..=options.rounds {
        let section = crate::instructions::start(FETCH_ROW, Side::Statehouse).await;
        let start = Instant::now();
        for _ in 0..fetches {
            let fetched = reader.fetch::<Doc>(CONFIG_NAME).await?;
            std::hint::black_box(&fetched);
        }
        let fetch = start.elapsed() / fetches;
        section.end(fetches.into()).await;
        let section = crate::instructions::start(FETCH_ROW, Side::Raw).await;
        let start = Instant::now();
        for _ in 0..gets {
            let bytes: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut raw_con).await?;
            let entry: serde_json::Value = serde_json::from_slice(&bytes)?;
            let decoded: Doc = serde_json::from_value(entry["value"].clone())?;
            std::hint::black_box(&decoded);
        }
        let get = start.elapsed() / gets;
        section.end(gets.into()).await;
        if round > 0 {
            fetch_ratios.push(ratio(get, fetch));
            println!(
                "config round {round}/{}: cached fetch {:.2} us, raw GET + decode {:.1} us",
                options.rounds,
                fetch.as_secs_f64() * 1e6,
                get.as_secs_f64() * 1e6,
            );
        }
    }
    let speedup = median(fetch_ratios);
    println!(
        "config: cached fetch {speedup:.0}x faster than a Redis GET + decode (target >= 100: {})",
        verdict(speedup >= 100.0)
    );
    Ok(())
}
