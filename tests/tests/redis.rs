//! The contract suite on the Redis adapter, against a real `redis-server`
//! spawned for this test process (each test under its own key prefix).

use std::future::Future;

use statehouse_tests::backends::{Stack, run_redis};
use statehouse_tests::contract::{Backend, Flavor};

fn run<Fut: Future<Output = ()> + Send + 'static>(flavor: Flavor, body: impl FnOnce(Backend) -> Fut) {
    run_redis(Stack::Bare, flavor, body);
}

statehouse_tests::contract_suite!(run);
