//! Decorators over the ports: each wraps any store (`Arc<dyn …>`, `Box`,
//! or a concrete adapter) and implements the same port, so they stack:
//! `Traced<Retrying<RedisStore>>`. The contract suite runs through them.

mod retrying;
mod traced;

pub use retrying::{Retrying, transient_policy};
pub use traced::Traced;
