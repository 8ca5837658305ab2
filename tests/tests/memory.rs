//! The contract suite on the in-memory adapter.

use statehouse_tests::backends::{Stack, run_memory};
use statehouse_tests::contract::{Body, Flavor};

fn run(flavor: Flavor, body: Body) {
    run_memory(Stack::Bare, flavor, body);
}

statehouse_tests::contract_suite!(run);
