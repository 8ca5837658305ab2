//! The contract suite through the app's layers, `Traced<Retrying<_>>`, on
//! both adapters: decorators must not change behaviour. (`Statehouse` uses
//! `Traced<_>` alone by default; this stack covers both layers.)

use statehouse_tests::backends::{Stack, run_memory, run_redis};
use statehouse_tests::contract::{Body, Flavor};

mod memory {
    use super::*;

    fn run(flavor: Flavor, body: Body) {
        run_memory(Stack::Layered, flavor, body);
    }

    statehouse_tests::contract_suite!(run);
}

mod redis {
    use super::*;

    fn run(flavor: Flavor, body: Body) {
        run_redis(Stack::Layered, flavor, body);
    }

    statehouse_tests::contract_suite!(run);
}
