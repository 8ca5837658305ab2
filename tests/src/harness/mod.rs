//! Test harness: real `redis-server` processes for integration tests.
//!
//! See [`RedisServer`] and the [`server`] module documentation for the design.

pub mod server;
pub mod tls;

pub use server::{RedisServer, SHARED_ARGS};
pub use tls::TlsRedisServer;
