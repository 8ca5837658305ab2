//! The config store (after the rounds): the update round trip against raw `EVALSHA` of the same
//! compare-and-set script, the delivery from the update's return to a remote watcher against raw
//! `PUBLISH` -> `SUBSCRIBE`, and a cached fetch against a raw `GET` + decode.

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
const UPDATE_ROW: &str = "15. config: update round trip (raw: EVALSHA of the same script)";
const DELIVERY_ROW: &str = "15. config: delivery, update's return -> watcher (raw: PUBLISH -> SUBSCRIBE)";
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

/// The envelope the raw side writes: what a config entry in plain mode holds.
#[derive(serde::Serialize)]
struct RawEntry<'a> {
    version: u64,
    value: &'a Doc,
}

/// Config, after the rounds: the update round trip against raw `EVALSHA` of the same
/// compare-and-set script (`DOC_SWAP_CODE`, with the envelope and change notice a raw client
/// would build), the delivery from the update's return to a remote watcher against raw `PUBLISH`
/// -> `SUBSCRIBE` of the same bytes, and a cached fetch against a raw `GET` + decode. Two
/// `Statehouse` instances (two connections, two caches), like two services.
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

    // The raw compare-and-set: the same script on a key of its own; the raw client keeps the
    // bytes it wrote, as the writer's cache does. Its notice reaches as many listeners as
    // statehouse's (the writer's cache and the reader's), each a connection of its own reading
    // it in a task: the server fans each notice out to them before or beside the script's reply
    // on both sides alike.
    let swap = redis::Script::new(statehouse_redis::DOC_SWAP_CODE);
    let (raw_key, raw_channel) = ("bench:raw-config", "bench:raw-config-changes");
    let mut listeners = Vec::new();
    for _ in 0..2 {
        let mut listener = bench.client.get_async_pubsub().await?;
        listener.subscribe(raw_channel).await?;
        listeners.push(tokio::spawn(async move {
            let mut notices = listener.into_on_message();
            while let Some(notice) = notices.next().await {
                let notice: serde_json::Value =
                    serde_json::from_slice(notice.get_payload_bytes()).unwrap_or_default();
                std::hint::black_box(notice);
            }
        }));
    }
    // Its own connection, with room for callgrind's slowdown (the shared one answers within 500 ms).
    let mut swap_con = bench
        .client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    redis::cmd("DEL").arg(raw_key).exec_async(&mut swap_con).await?;
    let mut raw_bytes: Option<Vec<u8>> = None;
    let mut raw_version = 0_u64;

    let samples = if options.quick { 300 } else { 3_000 };
    let warm = samples / 10;
    let (mut updates, mut delivered, mut raw_swaps, mut raw) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..warm + samples {
        // Alternate which side goes first.
        for side in options.sides(i) {
            match side {
                Side::Statehouse => {
                    doc.id = i as u64;
                    let section = crate::instructions::start(UPDATE_ROW, side).await;
                    let start = Instant::now();
                    let version = writer.update(CONFIG_NAME, &doc).await?;
                    let update = start.elapsed();
                    section.end(1).await;
                    let section = crate::instructions::start(DELIVERY_ROW, side).await;
                    let start = Instant::now();
                    let seen = tokio::time::timeout(
                        Duration::from_secs(10),
                        rx.wait_for(|s| s.current.as_ref().is_some_and(|c| c.version >= version)),
                    )
                    .await
                    .map_err(|_| format!("the watcher did not see version {version} within 10 s"))??
                    .current
                    .as_ref()
                    .map(|c| c.value.id);
                    let delivery = start.elapsed();
                    section.end(1).await;
                    if seen != Some(i as u64) {
                        return Err(format!("the watcher holds another value than update {i}").into());
                    }
                    if i >= warm {
                        updates.push(update);
                        delivered.push(delivery);
                    }
                }
                Side::Raw => {
                    doc.id = i as u64;
                    let section = crate::instructions::start(UPDATE_ROW, side).await;
                    let start = Instant::now();
                    let next = serde_json::to_vec(&RawEntry {
                        version: raw_version + 1,
                        value: &doc,
                    })?;
                    let notice = format!(r#"{{"kind":"set","version":{}}}"#, raw_version + 1);
                    let reply: Vec<redis::Value> = swap
                        .key(raw_key)
                        .arg(if raw_bytes.is_some() { "1" } else { "0" })
                        .arg(raw_bytes.as_deref().unwrap_or_default())
                        .arg(&next)
                        .arg(raw_channel)
                        .arg(notice)
                        .invoke_async(&mut swap_con)
                        .await?;
                    if !matches!(reply.as_slice(), [redis::Value::Int(1)]) {
                        return Err(format!("the raw swap was refused: {reply:?}").into());
                    }
                    raw_bytes = Some(next);
                    raw_version += 1;
                    let update = start.elapsed();
                    section.end(1).await;
                    let section = crate::instructions::start(DELIVERY_ROW, side).await;
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
                        raw_swaps.push(update);
                        raw.push(latency);
                    }
                }
            }
        }
    }
    for listener in listeners {
        listener.abort();
    }
    for list in [&mut updates, &mut delivered, &mut raw_swaps, &mut raw] {
        list.sort_unstable();
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let quantiles = |sorted: &[Duration]| (quantile(sorted, 0.5), quantile(sorted, 0.99));
    let (u50, u99) = quantiles(&updates);
    let (s50, s99) = quantiles(&raw_swaps);
    let (d50, d99) = quantiles(&delivered);
    let (r50, r99) = quantiles(&raw);
    // Ratios as the table's: raw's time over statehouse's (>= 0.9 is the target).
    println!(
        "config: update round trip ({samples} samples, ~{} B document): p50 {}, p99 {}; raw EVALSHA of \
         the same script p50 {}, p99 {}; p50 {:.2}x raw's speed (target >= 0.9: {})",
        payload.len(),
        micros(u50),
        micros(u99),
        micros(s50),
        micros(s99),
        ratio(s50, u50),
        verdict(ratio(s50, u50) >= 0.9),
    );
    println!(
        "config: delivery from the update's return to the remote watcher: p50 {}, p99 {}; raw PUBLISH -> \
         SUBSCRIBE of the same bytes p50 {}, p99 {}; p50 {:.2}x raw's speed (target >= 0.9: {}), p99 {:.2}x",
        micros(d50),
        micros(d99),
        micros(r50),
        micros(r99),
        ratio(r50, d50),
        verdict(ratio(r50, d50) >= 0.9),
        ratio(r99, d99),
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
