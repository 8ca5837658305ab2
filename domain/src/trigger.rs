//! Expiration triggers and batch queues: the names a caller gives them.
//!
//! A trigger is an `(action, identifier)` pair of a tenant that comes due
//! after a delay ("send `reminder` to `user-123` in an hour"); a batch
//! queue is named by service, batch and action. Every name is any text
//! that is a valid key ([`validate_identifier`]); the layout escapes it
//! where it becomes part of a Redis key.

use crate::{MAX_KEY_BYTES, ValidationError, validate_identifier};

identifier!(
    /// The action of a trigger or a queue, e.g. `reminder`.
    ActionName,
    "action",
    MAX_KEY_BYTES
);

identifier!(
    /// What a trigger is about, e.g. `user-123` or `session:456`.
    TriggerId,
    "trigger id",
    MAX_KEY_BYTES
);

identifier!(
    /// The batch of a queue, e.g. `nightly`.
    BatchName,
    "batch",
    MAX_KEY_BYTES
);
