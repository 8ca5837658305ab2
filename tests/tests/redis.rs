//! The contract suite on the Redis adapter, against a real `redis-server`
//! spawned for this test process (each test under its own key prefix).

use statehouse_tests::backends::{Stack, run_redis};
use statehouse_tests::contract::{Body, Flavor};

fn run(flavor: Flavor, body: Body) {
    run_redis(Stack::Bare, flavor, body);
}

statehouse_tests::contract_suite!(run);
