//! The blocking twin of [`KeyStream`]: an iterator.

use std::sync::Arc;

use statehouse_ports::{KeyStream, StoreError};

use super::{OwnedRuntime, block_on};

/// Blocking twin of [`KeyStream`]: an iterator over a listing that fetches
/// the next page (one `SCAN` step) whenever the current one runs out, so
/// memory stays flat however many keys match.
///
/// It ends after the first error (a temporary failure was already retried
/// by the store's `Retrying` layer, if it has one): `collect::<Result<Vec<_>,
/// _>>()` and `?` in a `for` loop see it, and nothing loops on it.
///
/// ```
/// use statehouse::blocking::Statehouse;
///
/// let docs = Statehouse::connect("memory://")?.documents();
/// docs.set("user:1", &1)?;
/// for key in docs.stream_keys("user:*")? {
///     assert_eq!(key?, "user:1");
/// }
/// # Ok::<(), statehouse::StoreError>(())
/// ```
#[derive(Debug)]
pub struct Keys {
    stream: Option<KeyStream>,
    runtime: Arc<OwnedRuntime>,
    op: &'static str,
}

impl Keys {
    pub(super) fn new(stream: KeyStream, runtime: Arc<OwnedRuntime>, op: &'static str) -> Self {
        Self {
            stream: Some(stream),
            runtime,
            op,
        }
    }
}

impl Iterator for Keys {
    type Item = Result<String, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let stream = self.stream.as_mut()?;
        match block_on(&self.runtime, self.op, stream.next()) {
            Ok(Some(key)) => Some(Ok(key)),
            Ok(None) => {
                self.stream = None;
                None
            }
            Err(error) => {
                self.stream = None;
                Some(Err(error))
            }
        }
    }
}

impl std::iter::FusedIterator for Keys {}
