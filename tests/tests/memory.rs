//! The contract suite on the in-memory adapter.

use std::future::Future;

use statehouse_tests::backends::{Stack, run_memory};
use statehouse_tests::contract::{Backend, Flavor};

fn run<Fut: Future<Output = ()> + Send + 'static>(flavor: Flavor, body: impl FnOnce(Backend) -> Fut) {
    run_memory(Stack::Bare, flavor, body);
}

statehouse_tests::contract_suite!(run);
