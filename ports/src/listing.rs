//! Listings as streams: [`KeyStream`], what every listing of every port
//! returns, and [`KeyPages`], what a backend implements to feed one.
//!
//! A listing never collects what it lists: a backend hands out one page
//! at a time (Redis: one `SCAN` step), so memory stays flat however many
//! keys match. Collecting is the caller's choice
//! ([`KeyStream::collect_sorted`]).
//!
//! The streams are written by hand (an async `next`, no `futures`
//! dependency) and own everything they need (`'static`): a caller may keep
//! one across awaits, move it to a task, or wrap it.

use std::fmt;

use async_trait::async_trait;

use crate::StoreError;

/// Where a [`KeyStream`] gets its keys: a backend's listing, page by page.
///
/// # Contract
///
/// - `next_page` returns the next page (`Some`, possibly empty) until the
///   listing is complete (`None`, then `None` again on every call).
/// - Every key that matches for the whole listing is returned, exactly
///   once; a key created or deleted during the listing may or may not be.
///   The order is the backend's (Redis: hash order); no page is sorted.
/// - An `Err` leaves the listing where it was: calling `next_page` again
///   tries the same step again (Redis: the same cursor). So an error that
///   [`is_retryable`](StoreError::is_retryable) may be retried without
///   losing or repeating keys; any other error ends the listing (keep
///   calling and it comes back).
/// - A listing that cannot keep that promise (the server restarted in the
///   middle, a cluster moved slots) fails with an error saying so; it
///   never ends early as if complete.
#[async_trait]
pub trait KeyPages: fmt::Debug + Send + 'static {
    /// The next page of keys, or `None` when the listing is complete.
    async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError>;
}

/// A listing of keys (or names, ids: whatever the listing yields), read as
/// it is fetched.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse_ports::StoreError> {
/// use statehouse_ports::KeyStream;
///
/// let mut keys = KeyStream::from_keys(["user:1", "user:2"]);
/// while let Some(key) = keys.next().await? {
///     println!("{key}");
/// }
/// let upper = KeyStream::from_keys(["b", "a", "c"]).filter_map(|key| (key != "c").then(|| key.to_uppercase()));
/// assert_eq!(upper.collect_sorted().await?, ["A", "B"]);
/// # Ok(()) }
/// ```
pub struct KeyStream {
    pages: Option<Box<dyn KeyPages>>,
    /// What is left of the page last fetched.
    page: std::vec::IntoIter<String>,
}

impl fmt::Debug for KeyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStream")
            .field("pages", &self.pages)
            .field("buffered", &self.page.len())
            .finish()
    }
}

impl KeyStream {
    /// The stream of a backend's pages.
    pub fn new(pages: impl KeyPages) -> Self {
        Self {
            pages: Some(Box::new(pages)),
            page: Vec::new().into_iter(),
        }
    }

    /// A stream of keys already at hand, as one page.
    pub fn from_keys<K: Into<String>>(keys: impl IntoIterator<Item = K>) -> Self {
        Self {
            pages: None,
            page: keys.into_iter().map(Into::into).collect::<Vec<_>>().into_iter(),
        }
    }

    /// A stream that yields nothing.
    pub fn empty() -> Self {
        Self::from_keys(Vec::<String>::new())
    }

    /// The next key, or `None` at the end. An error leaves the stream
    /// where it was (see [`KeyPages`]): calling again retries that step.
    ///
    /// ```text
    /// while let Some(key) = keys.next().await? { … }
    /// ```
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        loop {
            if let Some(key) = self.page.next() {
                return Ok(Some(key));
            }
            match self.fetch().await? {
                Some(page) => self.page = page.into_iter(),
                None => return Ok(None),
            }
        }
    }

    /// The rest of the current page, or the next page that is not empty;
    /// `None` at the end. For callers that work page by page (a batch of
    /// deletes per page; a flush per page).
    pub async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        if self.page.len() > 0 {
            return Ok(Some(std::mem::take(&mut self.page).collect()));
        }
        loop {
            match self.fetch().await? {
                Some(page) if page.is_empty() => {}
                other => return Ok(other),
            }
        }
    }

    /// Every key left, in the order the stream yields them. Holds them all:
    /// for listings known to be small.
    pub async fn collect(mut self) -> Result<Vec<String>, StoreError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// Every key left, sorted, each once. Holds them all: for listings known
    /// to be small, and what the `list…` convenience methods return.
    pub async fn collect_sorted(self) -> Result<Vec<String>, StoreError> {
        let mut all = self.collect().await?;
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// The stream of `f(key)` for every key for which it is `Some` (keys to
    /// names, ids; a filter), page by page.
    #[must_use]
    pub fn filter_map<F>(self, f: F) -> Self
    where
        F: FnMut(String) -> Option<String> + Send + 'static,
    {
        Self::new(FilterMap { inner: self, f })
    }

    /// The stream as its pages (what a decorator wraps), the buffered rest
    /// of the current page first.
    pub fn into_pages(self) -> Box<dyn KeyPages> {
        match (self.pages, self.page.len()) {
            (Some(pages), 0) => pages,
            (pages, _) => Box::new(Self {
                pages,
                page: self.page,
            }),
        }
    }

    /// The next page from the source, `None` (and no source any more) at
    /// the end.
    async fn fetch(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        let Some(pages) = self.pages.as_mut() else {
            return Ok(None);
        };
        let page = pages.next_page().await?;
        if page.is_none() {
            self.pages = None;
        }
        Ok(page)
    }
}

/// A stream is a source of pages too: the rest of its current page, then
/// its source's pages.
#[async_trait]
impl KeyPages for KeyStream {
    async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        if self.page.len() > 0 {
            return Ok(Some(std::mem::take(&mut self.page).collect()));
        }
        self.fetch().await
    }
}

struct FilterMap<F> {
    inner: KeyStream,
    f: F,
}

impl<F> fmt::Debug for FilterMap<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterMap")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<F> KeyPages for FilterMap<F>
where
    F: FnMut(String) -> Option<String> + Send + 'static,
{
    async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        let page = KeyPages::next_page(&mut self.inner).await?;
        Ok(page.map(|page| page.into_iter().filter_map(&mut self.f).collect()))
    }
}

/// Compile-time check: a stream can move between tasks.
const _: fn(KeyStream) -> Box<dyn Send> = |stream| Box::new(stream);

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages as given; an error once before the page at `fail_before`.
    #[derive(Debug)]
    struct Scripted {
        pages: Vec<Vec<String>>,
        fail_before: Option<usize>,
        at: usize,
    }

    #[async_trait]
    impl KeyPages for Scripted {
        async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
            if self.fail_before == Some(self.at) {
                self.fail_before = None;
                return Err(StoreError::Timeout {
                    op: "list_keys",
                    key: "*".into(),
                    after: std::time::Duration::from_millis(1),
                });
            }
            let page = self.pages.get(self.at).cloned();
            self.at += 1;
            Ok(page)
        }
    }

    fn scripted(pages: &[&[&str]], fail_before: Option<usize>) -> KeyStream {
        KeyStream::new(Scripted {
            pages: pages
                .iter()
                .map(|page| page.iter().map(|key| (*key).to_owned()).collect())
                .collect(),
            fail_before,
            at: 0,
        })
    }

    #[tokio::test]
    async fn keys_come_page_after_page_skipping_empty_pages() {
        let mut stream = scripted(&[&["a", "b"], &[], &["c"]], None);
        let mut keys = Vec::new();
        while let Some(key) = stream.next().await.unwrap() {
            keys.push(key);
        }
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(stream.next().await.unwrap(), None, "the end stays the end");
        let mut stream = scripted(&[&["a", "b"], &[], &["c"]], None);
        assert_eq!(stream.next().await.unwrap().as_deref(), Some("a"));
        assert_eq!(
            stream.next_page().await.unwrap().unwrap(),
            ["b"],
            "the rest first"
        );
        assert_eq!(
            stream.next_page().await.unwrap().unwrap(),
            ["c"],
            "empty pages skipped"
        );
        assert_eq!(stream.next_page().await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_error_leaves_the_stream_where_it_was() {
        let mut stream = scripted(&[&["a"], &["b"]], Some(1));
        assert_eq!(stream.next().await.unwrap().as_deref(), Some("a"));
        assert!(stream.next().await.unwrap_err().is_retryable());
        assert_eq!(
            stream.collect().await.unwrap(),
            ["b"],
            "nothing lost, nothing repeated"
        );
    }

    #[tokio::test]
    async fn filter_map_and_into_pages_keep_the_buffered_rest() {
        let mut stream = scripted(&[&["x:1", "y:2", "x:3"], &["x:4"]], None);
        assert_eq!(stream.next().await.unwrap().as_deref(), Some("x:1"));
        let ids = stream.filter_map(|key| key.strip_prefix("x:").map(str::to_owned));
        assert_eq!(ids.collect().await.unwrap(), ["3", "4"]);
        assert_eq!(
            KeyStream::from_keys(["b", "a", "b"])
                .collect_sorted()
                .await
                .unwrap(),
            ["a", "b"]
        );
        assert_eq!(KeyStream::empty().collect().await.unwrap(), Vec::<String>::new());
    }
}
