//! The contract suite on the Redis adapter connected to a Redis Cluster of
//! three primaries (`redis+cluster://…` naming every node), started once
//! for this test process (`RedisCluster::shared`, keyspace notifications
//! on); each test under its own key prefix.

use std::future::Future;

use statehouse_tests::backends::{Stack, run_cluster};
use statehouse_tests::contract::{Backend, Flavor};

fn run<Fut: Future<Output = ()> + Send + 'static>(flavor: Flavor, body: impl FnOnce(Backend) -> Fut) {
    run_cluster(Stack::Bare, flavor, body);
}

statehouse_tests::contract_suite!(run);
