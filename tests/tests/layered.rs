//! The contract suite through the app's layers, on both adapters:
//! `Traced<Retrying<_>>` and `Guarded<_>` (the stack `Statehouse` builds).
//! Decorators must not change behaviour.

use std::future::Future;

use statehouse_tests::backends::{Stack, run_memory, run_redis};
use statehouse_tests::contract::{Backend, Flavor};

macro_rules! stack {
    ($module:ident, $runner:ident, $stack:expr) => {
        mod $module {
            use super::*;

            fn run<Fut: Future<Output = ()> + Send + 'static>(
                flavor: Flavor,
                body: impl FnOnce(Backend) -> Fut,
            ) {
                $runner($stack, flavor, body);
            }

            statehouse_tests::contract_suite!(run);
        }
    };
}

stack!(memory_traced_retrying, run_memory, Stack::Layered);
stack!(memory_guarded, run_memory, Stack::Guarded);
stack!(redis_traced_retrying, run_redis, Stack::Layered);
stack!(redis_guarded, run_redis, Stack::Guarded);
