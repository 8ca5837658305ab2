//! A plain command's future stays small. Every port call moves its future
//! into a box (`#[async_trait]`), and each layer moves the futures it
//! awaits into its own: a large state inline (redis-rs' single-server
//! call holds about 4 KiB) is copied at every one of those moves, which
//! cost the documents' set+get more than the allocation it saved
//! (`docs/benchmarks.md`, "Fewer allocations per call than raw"). The size
//! of the boxed future is its type's, whatever the deployment: one server
//! stands for all.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

use statehouse_domain::Key;
use statehouse_ports::{DocumentStore, SetOptions};
use statehouse_redis::{RedisConfig, RedisStore};
use statehouse_tests::harness::RedisServer;

/// The most bytes a plain command's boxed future may take: about twice what
/// `get` and `set` take today (0.6–0.9 KiB in a debug build), a quarter of
/// what they took with redis-rs' single-server call held inline.
const MAX_FUTURE_BYTES: usize = 2048;

#[tokio::test]
async fn the_futures_of_plain_commands_stay_small() {
    let server = RedisServer::start();
    let store = RedisStore::connect(RedisConfig::new(server.url())).await.unwrap();
    let key = Key::new("k").unwrap();
    let get = store.get(&key);
    let get_size = std::mem::size_of_val(&*get);
    drop(get);
    let set = store.set(&key, b"v", SetOptions::new());
    let set_size = std::mem::size_of_val(&*set);
    drop(set);
    assert!(
        get_size <= MAX_FUTURE_BYTES && set_size <= MAX_FUTURE_BYTES,
        "get's future takes {get_size} bytes and set's {set_size}, over {MAX_FUTURE_BYTES}: \
         something large is held inline (box it where it is made)"
    );
}
