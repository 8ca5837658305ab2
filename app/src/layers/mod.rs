//! Decorators over the ports: each wraps any store (`Arc<dyn …>`, `Box`,
//! or a concrete adapter) and implements the same port, so they stack:
//! `Traced<Retrying<RedisStore>>`. [`Guarded`] is that stack as one
//! decorator (one future per call), the one `Statehouse` uses. The contract
//! suite runs through both.

mod guarded;
mod retrying;
mod traced;

pub use guarded::Guarded;
pub use retrying::Retrying;
pub use traced::Traced;
