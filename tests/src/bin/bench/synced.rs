//! Synced models (workload 10): `Synced::modify` of one field of a model in the hash layout against
//! raw redis-rs running the same commands: `WATCH`+`HGETALL`, decode, change, then
//! `MULTI`/`HSET` of the changed field/`EXEC`.

use std::collections::HashMap;

use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use statehouse::{Synced, SyncedModel};
use statehouse_ports::hash_fields;

use crate::Res;
use crate::documents::Doc;
use crate::engine::{Bench, Interleaved, Sample, Side, Step, interleaved};

/// The id of the synced model of workload 10.
const MODEL_ID: &str = "bench-1";
/// Its key, `{TypeName}:{id}`.
const MODEL_KEY: &str = "BenchModel:bench-1";
/// The raw side's copy when both sides run in turns ([`Bench::model_in_turns`]), so that each side
/// finds the model as it left it.
const MODEL_KEY_RAW: &str = "BenchModel:bench-raw";

/// The synced model of workload 10: the sample document (a field of JSON text), and a version
/// every modify bumps (the one field it writes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BenchModel {
    #[serde(rename = "id_")]
    id: String,
    version: u64,
    doc: Option<Doc>,
}

impl SyncedModel for BenchModel {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn set_id(&mut self, id: &str) {
        self.id = id.to_owned();
    }
}

/// `Synced::modify`, `modifies` times; checks each stored version.
async fn modify_statehouse(mut synced: Synced<BenchModel>, modifies: u64) -> Res<u64> {
    for i in 1..=modifies {
        modify_statehouse_once(&mut synced, i).await?;
    }
    Ok(modifies)
}

/// One `Synced::modify` that must store version `expected`.
async fn modify_statehouse_once(synced: &mut Synced<BenchModel>, expected: u64) -> Res<()> {
    let stored = synced.modify(|model| model.version += 1).await?;
    if stored.version != expected {
        return Err(format!(
            "modify stored version {} where {expected} was expected",
            stored.version
        )
        .into());
    }
    Ok(())
}

/// The same with redis-rs on `key`: `WATCH`+`HGETALL` pipelined, decode the fields (the version,
/// the document's JSON), change, then `MULTI`/`HSET version`/`EXEC`, starting over on an aborted
/// EXEC.
async fn modify_raw(mut con: MultiplexedConnection, key: &str, modifies: u64) -> Res<u64> {
    for i in 1..=modifies {
        modify_raw_once(&mut con, key, i).await?;
    }
    Ok(modifies)
}

/// One raw modify of `key` that must store version `expected`.
async fn modify_raw_once(con: &mut MultiplexedConnection, key: &str, expected: u64) -> Res<()> {
    loop {
        let (fields,): (HashMap<String, Vec<u8>>,) = redis::pipe()
            .cmd("WATCH")
            .arg(key)
            .ignore()
            .cmd("HGETALL")
            .arg(key)
            .query_async(con)
            .await?;
        let version: u64 = match fields.get("version") {
            Some(text) => std::str::from_utf8(text)?.parse()?,
            None => 0,
        };
        let _doc: Option<Doc> = fields
            .get("doc")
            .map(|json| serde_json::from_slice(json))
            .transpose()?;
        let version = version + 1;
        let committed: Option<()> = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(key)
            .arg("version")
            .arg(version)
            .ignore()
            .query_async(con)
            .await?;
        if committed.is_some() {
            if version != expected {
                return Err(format!("stored version {version} where {expected} was expected").into());
            }
            return Ok(());
        }
    }
}

/// A statehouse modify, for [`interleaved`].
struct ModifyStep {
    synced: Synced<BenchModel>,
    done: u64,
}

impl Step for ModifyStep {
    async fn step(&mut self) -> Res<()> {
        self.done += 1;
        modify_statehouse_once(&mut self.synced, self.done).await
    }
}

/// A raw modify of [`MODEL_KEY_RAW`], for [`interleaved`].
struct RawModifyStep {
    con: MultiplexedConnection,
    done: u64,
}

impl Step for RawModifyStep {
    async fn step(&mut self) -> Res<()> {
        self.done += 1;
        modify_raw_once(&mut self.con, MODEL_KEY_RAW, self.done).await
    }
}

impl Bench {
    /// One task changing the synced model `modifies` times, uncontended; checks the final version.
    pub(crate) async fn model(&self, side: Side, modifies: u64) -> Res<Sample> {
        self.reset_model(MODEL_KEY).await?;
        // Set up before the clock starts: the raw side's dedicated connection, statehouse's handle.
        let mut dedicated = match side {
            Side::Raw => Some(self.raw_nodes.dedicated(MODEL_KEY).await?),
            Side::Statehouse => None,
        };
        let mut synced = match side {
            Side::Statehouse => Some(Synced::<BenchModel>::load_from(&self.models, MODEL_ID).await?),
            Side::Raw => None,
        };
        if synced.as_ref().is_some_and(|synced| synced.key() != MODEL_KEY) {
            return Err(format!("the synced model is not under {MODEL_KEY}").into());
        }
        let timed = self
            .timed(1, |_| {
                let (synced, con) = (synced.take(), dedicated.take());
                async move {
                    match side {
                        Side::Statehouse => modify_statehouse(synced.ok_or("no model")?, modifies).await,
                        Side::Raw => modify_raw(con.ok_or("no connection")?, MODEL_KEY, modifies).await,
                    }
                }
            })
            .await?;
        self.check_model(MODEL_KEY, side, modifies).await?;
        Ok(Sample::new(&timed, modifies, 0))
    }

    /// Both sides, `modifies` each, in turns in one task ([`interleaved`]), each on its own key.
    pub(crate) async fn model_in_turns(&self, modifies: u64, turn: u64) -> Res<Interleaved> {
        self.reset_model(MODEL_KEY).await?;
        self.reset_model(MODEL_KEY_RAW).await?;
        let statehouse = ModifyStep {
            synced: Synced::<BenchModel>::load_from(&self.models, MODEL_ID).await?,
            done: 0,
        };
        let raw = RawModifyStep {
            con: self.raw_nodes.dedicated(MODEL_KEY_RAW).await?,
            done: 0,
        };
        let row = Some(("10. synced: modify", 1));
        let measured = interleaved(row, statehouse, raw, modifies, turn).await?;
        self.check_model(MODEL_KEY, Side::Statehouse, modifies).await?;
        self.check_model(MODEL_KEY_RAW, Side::Raw, modifies).await?;
        Ok(measured)
    }

    /// The model at version 0 under `key`, in the hash layout.
    async fn reset_model(&self, key: &str) -> Res<()> {
        let mut con = self.raw.clone();
        let start = BenchModel {
            id: MODEL_ID.to_owned(),
            version: 0,
            doc: Some(self.doc.clone()),
        };
        let mut reset = redis::pipe();
        reset.atomic().cmd("DEL").arg(key).ignore();
        let hset = reset.cmd("HSET").arg(key);
        for (field, value) in hash_fields::to_fields(&start)? {
            hset.arg(field).arg(value);
        }
        hset.ignore();
        reset.exec_async(&mut con).await?;
        Ok(())
    }

    /// That the model under `key` is at version `modifies`.
    async fn check_model(&self, key: &str, side: Side, modifies: u64) -> Res<()> {
        let mut con = self.raw.clone();
        let version: Option<u64> = redis::cmd("HGET")
            .arg(key)
            .arg("version")
            .query_async(&mut con)
            .await?;
        let version = version.ok_or("the model is gone")?;
        if version != modifies {
            return Err(format!(
                "WRONG VERSION ({side:?}): the model is at version {version} after {modifies} modifies"
            )
            .into());
        }
        Ok(())
    }
}
