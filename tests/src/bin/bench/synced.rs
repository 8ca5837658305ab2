//! Synced models (workload 10): `Synced::modify` against raw WATCH/GET/MULTI/SET/EXEC.

use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use statehouse::{Synced, SyncedModel};

use crate::Res;
use crate::documents::Doc;
use crate::engine::{Bench, Sample, Side};

/// The id of the synced model of workload 10.
const MODEL_ID: &str = "bench-1";
/// Its key, `{TypeName}:{id}`.
const MODEL_KEY: &str = "BenchModel:bench-1";

/// The synced model of workload 10: the sample document, and a version every modify bumps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BenchModel {
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

/// The same with redis-rs: `WATCH`+`GET` pipelined, decode, change, encode, then
/// `MULTI`/`SET … KEEPTTL`/`EXEC`, starting over on an aborted EXEC.
async fn modify_raw(mut con: MultiplexedConnection, modifies: u64) -> Res<u64> {
    for i in 1..=modifies {
        loop {
            let (old,): (Option<Vec<u8>>,) = redis::pipe()
                .cmd("WATCH")
                .arg(MODEL_KEY)
                .ignore()
                .cmd("GET")
                .arg(MODEL_KEY)
                .query_async(&mut con)
                .await?;
            let mut model = match old {
                Some(bytes) => serde_json::from_slice::<BenchModel>(&bytes)?,
                None => BenchModel::default(),
            };
            model.version += 1;
            let new = serde_json::to_vec(&model)?;
            let committed: Option<()> = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(MODEL_KEY)
                .arg(new)
                .arg("KEEPTTL")
                .ignore()
                .query_async(&mut con)
                .await?;
            if committed.is_some() {
                if model.version != i {
                    return Err(format!("stored version {} where {i} was expected", model.version).into());
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
        redis::cmd("SET")
            .arg(MODEL_KEY)
            .arg(serde_json::to_vec(&start)?)
            .exec_async(&mut con)
            .await?;
        // Set up before the clock starts: the raw side's dedicated connection, statehouse's handle.
        let mut dedicated = match side {
            Side::Raw => Some(self.client.get_multiplexed_async_connection().await?),
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
        let stored: Option<Vec<u8>> = redis::cmd("GET").arg(MODEL_KEY).query_async(&mut con).await?;
        let version = serde_json::from_slice::<BenchModel>(&stored.ok_or("the model is gone")?)?.version;
        if version != modifies {
            return Err(format!(
                "WRONG VERSION ({side:?}): the model is at version {version} after {modifies} modifies"
            )
            .into());
        }
        Ok(Sample::new(&timed, modifies, 0))
    }
}
