//! Runners that build a [`Backend`] and run one contract test body on it.
//!
//! Each runner gives the test a fresh namespace: a new in-memory store, or
//! a unique key prefix on the shared `redis-server` (or the shared Redis
//! Cluster) of the test process.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use statehouse::Ports;
use statehouse::layers::{Retrying, Traced};
use statehouse_memory::MemoryStore;
use statehouse_ports::Key;
use statehouse_redis::{RedisConfig, RedisStore};
use tracing::instrument::WithSubscriber;

use crate::contract::{Backend, Body, DurableView, Flavor, OtherProcess, PlantHash, RawHashes};
use crate::harness::{RedisCluster, RedisServer};

/// Whether the ports are used bare or under the app's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// The adapter itself.
    Bare,
    /// `Traced<Retrying<adapter>>`, with a subscriber recording every span.
    Layered,
}

/// Runs `body` on a fresh in-memory store.
pub fn run_memory(stack: Stack, flavor: Flavor, body: Body) {
    let paused = flavor == Flavor::Plain;
    run(
        flavor,
        paused,
        stack,
        async move {
            // The suite's stores combine concurrent updates of one key (the
            // library's default, said here so the suite never loses it).
            let store = MemoryStore::new().with_combining(true);
            let planter = store.clone();
            let plant_hash: PlantHash = Arc::new(move |key: Key| {
                planter.insert_hash_for_tests(&key, "field", b"value");
                Box::pin(async {})
            });
            let raw = Arc::new(MemoryHashes(store.clone()));
            let other = store.clone();
            let other_process: OtherProcess = Arc::new(move || {
                let ports = wrap(stack, Ports::of(other.clone()));
                Box::pin(async move { ports })
            });
            let viewed = store.clone();
            let view: DurableView =
                Arc::new(move |durability| wrap(stack, Ports::of(viewed.with_durability(durability))));
            let ports = wrap(stack, Ports::of(store));
            Backend::new("memory", ports, paused, plant_hash, raw)
                .with_other_process(other_process)
                .with_replicas(0, view)
        },
        body,
    );
}

/// Runs `body` against the test process's shared `redis-server`, under a key
/// prefix no other test uses.
pub fn run_redis(stack: Stack, flavor: Flavor, body: Body) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = RedisServer::shared();
    let url = server.url();
    let prefix = format!("t{}:", NEXT.fetch_add(1, Ordering::Relaxed));
    run(
        flavor,
        false,
        stack,
        redis_backend("redis", stack, url.clone(), prefix, RawTarget::Server(url), 0),
        body,
    );
}

/// Runs `body` against the test process's shared Redis Cluster (three
/// primaries, [`RedisCluster::shared`]) through a `redis+cluster://` URL
/// naming every node, under a key prefix no other test uses.
pub fn run_cluster(stack: Stack, flavor: Flavor, body: Body) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = RedisCluster::shared();
    let url = cluster.url();
    let seeds = cluster.seed_urls();
    let prefix = format!("c{}:", NEXT.fetch_add(1, Ordering::Relaxed));
    run(
        flavor,
        false,
        stack,
        redis_backend("cluster", stack, url, prefix, RawTarget::Cluster(seeds), 0),
        body,
    );
}

/// The backend of a Redis store at `url` (one server, a cluster, a
/// Sentinel service) under `prefix`: combining on, another process's store
/// on demand, raw hash access through `target`, and durable views of a
/// store with `replicas` replicas.
async fn redis_backend(
    name: &'static str,
    stack: Stack,
    url: String,
    prefix: String,
    target: RawTarget,
    replicas: u32,
) -> Backend {
    // The suite's stores combine concurrent updates of one key (the
    // library's default, said here so the suite never loses it).
    async fn connect(config: RedisConfig) -> RedisStore {
        RedisStore::connect(config).await.unwrap().with_combining(true)
    }
    let config = RedisConfig::new(url).with_prefix(prefix.clone());
    let store = connect(config.clone()).await;
    let other_process: OtherProcess = Arc::new(move || {
        let config = config.clone();
        Box::pin(async move { wrap(stack, Ports::of(connect(config).await)) })
    });
    let raw = Arc::new(RedisHashes { target, prefix });
    let planter = raw.clone();
    let plant_hash: PlantHash =
        Arc::new(move |key: Key| planter.hset(key.as_str().to_owned(), b"field".to_vec(), b"value".to_vec()));
    let ports = wrap(stack, Ports::of(store.clone()));
    Backend::new(name, ports, false, plant_hash, raw)
        .with_other_process(other_process)
        .with_replicas(replicas, redis_view(stack, store))
}

/// The test process's Sentinel service (one primary, two replicas, three
/// sentinels, keyspace notifications on), started on first use.
pub fn shared_sentinel_set() -> &'static crate::harness::SentinelSet {
    static SHARED: std::sync::OnceLock<crate::harness::SentinelSet> = std::sync::OnceLock::new();
    SHARED.get_or_init(crate::harness::SentinelSet::start)
}

/// Runs `body` against the test process's Sentinel service
/// (`redis+sentinel://…`, [`shared_sentinel_set`]), under a key prefix no
/// other test uses; raw hash access goes to the primary the sentinels name.
pub fn run_sentinel(stack: Stack, flavor: Flavor, body: Body) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let set = shared_sentinel_set();
    let url = set.url();
    let primary = set.primary().url();
    let prefix = format!("s{}:", NEXT.fetch_add(1, Ordering::Relaxed));
    run(
        flavor,
        false,
        stack,
        redis_backend("sentinel", stack, url, prefix, RawTarget::Server(primary), 2),
        body,
    );
}

/// Raw hash access to a memory store.
struct MemoryHashes(MemoryStore);

impl RawHashes for MemoryHashes {
    fn hset(&self, key: String, field: Vec<u8>, value: Vec<u8>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        assert!(self.0.hset_for_tests(&key, &field, &value), "{key} is no hash");
        Box::pin(async {})
    }

    fn hget(&self, key: String, field: Vec<u8>) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>> {
        let value = self.0.hget_for_tests(&key, &field);
        Box::pin(async move { value })
    }

    fn zadd(&self, key: String, member: String, score: f64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        assert!(
            self.0.zadd_for_tests(&key, &member, score),
            "{key} is no sorted set"
        );
        Box::pin(async {})
    }
}

/// Raw hash access to the test's namespace on a Redis server or cluster,
/// on a connection of its own (another process, as far as the store can
/// tell).
struct RedisHashes {
    target: RawTarget,
    prefix: String,
}

/// Where [`RedisHashes`] connects.
#[derive(Clone)]
enum RawTarget {
    /// A server's URL.
    Server(String),
    /// A cluster's seed URLs (`redis://` each).
    Cluster(Vec<String>),
}

/// A plain connection of either kind.
enum RawConn {
    Server(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for RawConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            RawConn::Server(conn) => conn.req_packed_command(cmd),
            RawConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            RawConn::Server(conn) => conn.req_packed_commands(cmd, offset, count),
            RawConn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

impl RedisHashes {
    async fn conn(target: RawTarget) -> RawConn {
        match target {
            RawTarget::Server(url) => {
                let client = redis::Client::open(url).unwrap();
                RawConn::Server(client.get_multiplexed_async_connection().await.unwrap())
            }
            RawTarget::Cluster(seeds) => {
                let client = redis::cluster::ClusterClient::new(seeds).unwrap();
                RawConn::Cluster(client.get_async_connection().await.unwrap())
            }
        }
    }
}

impl RawHashes for RedisHashes {
    fn hset(&self, key: String, field: Vec<u8>, value: Vec<u8>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let (target, key) = (self.target.clone(), format!("{}{key}", self.prefix));
        Box::pin(async move {
            let mut conn = Self::conn(target).await;
            redis::cmd("HSET")
                .arg(key)
                .arg(field)
                .arg(value)
                .exec_async(&mut conn)
                .await
                .unwrap();
        })
    }

    fn hget(&self, key: String, field: Vec<u8>) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>> {
        let (target, key) = (self.target.clone(), format!("{}{key}", self.prefix));
        Box::pin(async move {
            let mut conn = Self::conn(target).await;
            redis::cmd("HGET")
                .arg(key)
                .arg(field)
                .query_async(&mut conn)
                .await
                .unwrap()
        })
    }

    fn zadd(&self, key: String, member: String, score: f64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let (target, key) = (self.target.clone(), format!("{}{key}", self.prefix));
        Box::pin(async move {
            let mut conn = Self::conn(target).await;
            redis::cmd("ZADD")
                .arg(key)
                .arg(score)
                .arg(member)
                .exec_async(&mut conn)
                .await
                .unwrap();
        })
    }
}

/// The durable views of a Redis store (a refused durability panics: the
/// suite checks the refusal on the store itself).
fn redis_view(stack: Stack, store: RedisStore) -> DurableView {
    Arc::new(move |durability| {
        let view = store
            .with_durability(durability)
            .expect("a durability within the response timeout");
        wrap(stack, Ports::of(view))
    })
}

fn wrap(stack: Stack, ports: Ports) -> Ports {
    match stack {
        Stack::Bare => ports,
        Stack::Layered => Ports::new(
            Arc::new(Traced::new(Retrying::with_defaults(ports.documents))),
            Arc::new(Traced::new(Retrying::with_defaults(ports.tasks))),
            Arc::new(Traced::new(Retrying::with_defaults(ports.subjects))),
            Arc::new(Traced::new(Retrying::with_defaults(ports.tenants))),
            Arc::new(Traced::new(Retrying::with_defaults(ports.triggers))),
            Arc::new(Traced::new(Retrying::with_defaults(ports.queues))),
            Arc::new(Traced::new(Retrying::with_defaults(ports.changes))),
            Arc::new(Traced::new(Retrying::with_defaults(ports.synced))),
        ),
    }
}

/// Builds the runtime for `flavor`, the backend, and runs `body` as a task
/// (so that `block_in_place` works in it), re-raising its panic if any.
fn run(flavor: Flavor, paused: bool, stack: Stack, make: impl Future<Output = Backend>, body: Body) {
    let runtime = match flavor {
        Flavor::Plain => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(paused)
            .build(),
        Flavor::Threaded => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .unwrap();
    runtime.block_on(async move {
        let backend = make.await;
        let test = body(backend);
        let joined = match stack {
            Stack::Bare => tokio::spawn(test).await,
            Stack::Layered => {
                let subscriber = tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::TRACE)
                    .with_writer(std::io::sink)
                    .finish();
                tokio::spawn(test.with_subscriber(subscriber)).await
            }
        };
        if let Err(error) = joined {
            match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("test task failed: {error}"),
            }
        }
    });
}
