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
use crate::engine::{Bench, Sample, Side};

/// The id of the synced model of workload 10.
const MODEL_ID: &str = "bench-1";
/// Its key, `{TypeName}:{id}`.
const MODEL_KEY: &str = "BenchModel:bench-1";

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
        let stored = synced.modify(|model| model.version += 1).await?;
        if stored.version != i {
            return Err(format!("modify stored version {} where {i} was expected", stored.version).into());
        }
    }
    Ok(modifies)
}

/// The same with redis-rs: `WATCH`+`HGETALL` pipelined, decode the fields (the version, the
/// document's JSON), change, then `MULTI`/`HSET version`/`EXEC`, starting over on an aborted
/// EXEC.
async fn modify_raw(mut con: MultiplexedConnection, modifies: u64) -> Res<u64> {
    for i in 1..=modifies {
        loop {
            let (fields,): (HashMap<String, Vec<u8>>,) = redis::pipe()
                .cmd("WATCH")
                .arg(MODEL_KEY)
                .ignore()
                .cmd("HGETALL")
                .arg(MODEL_KEY)
                .query_async(&mut con)
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
                .arg(MODEL_KEY)
                .arg("version")
                .arg(version)
                .ignore()
                .query_async(&mut con)
                .await?;
            if committed.is_some() {
                if version != i {
                    return Err(format!("stored version {version} where {i} was expected").into());
                }
                break;
            }
        }
    }
    Ok(modifies)
}

impl Bench {
    /// One task changing the synced model `modifies` times, uncontended; checks the final version.
    pub(crate) async fn model(&self, side: Side, modifies: u64) -> Res<Sample> {
        let mut con = self.raw.clone();
        let start = BenchModel {
            id: MODEL_ID.to_owned(),
            version: 0,
            doc: Some(self.doc.clone()),
        };
        let mut reset = redis::pipe();
        reset.atomic().cmd("DEL").arg(MODEL_KEY).ignore();
        let hset = reset.cmd("HSET").arg(MODEL_KEY);
        for (field, value) in hash_fields::to_fields(&start)? {
            hset.arg(field).arg(value);
        }
        hset.ignore();
        reset.exec_async(&mut con).await?;
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
                        Side::Raw => modify_raw(con.ok_or("no connection")?, modifies).await,
                    }
                }
            })
            .await?;
        let version: Option<u64> = redis::cmd("HGET")
            .arg(MODEL_KEY)
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
        Ok(Sample::new(&timed, modifies, 0))
    }
}
