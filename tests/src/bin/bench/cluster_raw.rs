//! The raw side's connections, on one server or on a Redis Cluster, so that every workload's raw
//! code runs unchanged on both:
//!
//! - [`RawCon`], the shared connection: redis-rs' `ConnectionManager` on one server, its cluster
//!   client's `ClusterConnection` (feature `cluster-async`: routing by slot, redirects, the slot
//!   map) on a cluster. redis-rs refuses a plain pipeline whose commands are in different slots
//!   (`CROSSSLOT`), so on a cluster a plain pipeline is sent as its commands, all at once, answers
//!   in order: what a raw program has to do there, and what statehouse's cluster connection does.
//! - [`RawNodes`] and [`RawTxn`], the raw side's WATCH connections: WATCH belongs to a connection,
//!   and redis-rs' cluster connection is shared (it sends `UNWATCH` to every primary), so a raw
//!   program WATCHes on a connection of its own to the primary that owns the key's slot (from
//!   `CLUSTER SLOTS`, the slot computed client-side with Redis Cluster's CRC16).

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use statehouse_domain::layout::hash_slot;

use crate::Res;

/// The raw side's shared connection; see the [module documentation](self).
#[derive(Clone)]
pub(crate) enum RawCon {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RawCon {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RawCon::Single(con) => con.req_packed_command(cmd),
            RawCon::Cluster(con) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        if let (RawCon::Cluster(con), false) = (&*self, pipeline.is_transaction()) {
            let con = con.clone();
            return Box::pin(async move {
                let calls = pipeline.cmd_iter().map(|cmd| {
                    let mut con = con.clone();
                    async move { con.req_packed_command(cmd).await }
                });
                let values = futures_util::future::try_join_all(calls).await?;
                Ok(values.into_iter().skip(offset).take(count).collect())
            });
        }
        match self {
            RawCon::Single(con) => con.req_packed_commands(pipeline, offset, count),
            RawCon::Cluster(con) => con.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// Where the raw side opens WATCH connections: the server, or each primary with its slot ranges.
#[derive(Clone)]
pub(crate) struct RawNodes {
    /// `(first slot, last slot, client of the primary)`; one entry covering every slot on one
    /// server.
    ranges: Vec<(u16, u16, redis::Client)>,
}

impl RawNodes {
    /// One server.
    pub(crate) fn single(client: redis::Client) -> Self {
        Self {
            ranges: vec![(0, u16::MAX, client)],
        }
    }

    /// A cluster's primaries, from `CLUSTER SLOTS` asked of `seed` (`redis://host:port`).
    pub(crate) async fn cluster(seed: &str) -> Res<Self> {
        let mut con = redis::Client::open(seed)?
            .get_multiplexed_async_connection()
            .await?;
        let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut con).await?;
        let bad = || format!("CLUSTER SLOTS answered {slots:?}");
        let Value::Array(entries) = &slots else {
            return Err(bad().into());
        };
        let mut ranges = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(fields) = entry else {
                return Err(bad().into());
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(primary))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(bad().into());
            };
            let host: String = redis::from_redis_value(primary.first().ok_or_else(bad)?.clone())?;
            let port: u16 = redis::from_redis_value(primary.get(1).ok_or_else(bad)?.clone())?;
            let client = redis::Client::open(format!("redis://{host}:{port}"))?;
            ranges.push((u16::try_from(*first)?, u16::try_from(*last)?, client));
        }
        Ok(Self { ranges })
    }

    /// The client of the primary that owns `key`'s slot.
    fn client_for(&self, key: &str) -> Res<&redis::Client> {
        let slot = if self.ranges.len() == 1 {
            0
        } else {
            hash_slot(key.as_bytes())
        };
        self.ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, client)| client)
            .ok_or_else(|| format!("no primary owns the slot {slot} of {key}").into())
    }

    /// A new connection of its own to the primary of `key` (for a naive WATCH loop on one key).
    pub(crate) async fn dedicated(&self, key: &str) -> Res<MultiplexedConnection> {
        Ok(self.client_for(key)?.get_multiplexed_async_connection().await?)
    }

    /// A new connection of its own to every primary (for a writer's WATCH sections on keys of any
    /// slot).
    pub(crate) async fn txn(&self) -> Res<RawTxn> {
        let mut ranges = Vec::with_capacity(self.ranges.len());
        for (first, last, client) in &self.ranges {
            ranges.push((*first, *last, client.get_multiplexed_async_connection().await?));
        }
        Ok(RawTxn { ranges })
    }
}

/// A raw writer's own connections for WATCH sections: one per primary (one on a single server).
#[derive(Clone)]
pub(crate) struct RawTxn {
    ranges: Vec<(u16, u16, MultiplexedConnection)>,
}

impl RawTxn {
    /// The connection to the primary of `key`'s slot.
    pub(crate) fn for_key(&self, key: &str) -> Res<MultiplexedConnection> {
        if let [(_, _, con)] = self.ranges.as_slice() {
            return Ok(con.clone());
        }
        let slot = hash_slot(key.as_bytes());
        self.ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, con)| con.clone())
            .ok_or_else(|| format!("no primary owns the slot {slot} of {key}").into())
    }
}
