//! Pages of a task listing: the cursor, the request, the page, and THE
//! merge of an index's buckets that both adapters list through.

use std::collections::VecDeque;
use std::fmt;

use statehouse_domain::layout::TaskBucket;
use statehouse_domain::{TaskId, TaskRecord, ValidationError};

use crate::StoreError;

/// Where a page of a listing starts: after the task last shown. Listings
/// are ordered by update time, newest first, then by task id (descending,
/// byte-wise) among tasks updated in the same millisecond. This order is
/// the same whatever bucket a task is in: a listing merges the buckets.
///
/// Its text form (`<millis>:<task id>`) can be handed to a client and parsed
/// back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskCursor {
    /// The update time of the last task shown, in ms since the epoch.
    pub updated_millis: i64,
    /// Its id.
    pub id: TaskId,
}

impl TaskCursor {
    /// The cursor after `record`.
    pub fn after(record: &TaskRecord) -> Self {
        Self {
            updated_millis: record.updated_millis(),
            id: record.id.clone(),
        }
    }

    /// Whether an index entry `(score, id)` comes after this cursor in
    /// listing order.
    pub fn precedes(&self, score: i64, id: &str) -> bool {
        comes_after((self.updated_millis, self.id.as_str()), (score, id))
    }
}

/// Whether index entry `entry` comes after `position` in listing order
/// (older, or as old with a smaller id).
fn comes_after(position: (i64, &str), entry: (i64, &str)) -> bool {
    entry.0 < position.0 || (entry.0 == position.0 && entry.1 < position.1)
}

impl fmt::Display for TaskCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.updated_millis, self.id)
    }
}

impl std::str::FromStr for TaskCursor {
    type Err = ValidationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ValidationError::UnknownName {
            what: "cursor",
            expected: "<millis>:<task id>, as returned with a page",
        };
        let (millis, id) = text.split_once(':').ok_or_else(bad)?;
        Ok(Self {
            updated_millis: millis.parse().map_err(|_| bad())?,
            id: TaskId::new(id)?,
        })
    }
}

/// Which page of a listing to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    limit: usize,
    after: Option<TaskCursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(Self::DEFAULT_LIMIT)
    }
}

impl PageRequest {
    /// The page size unless one is chosen.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest page.
    pub const MAX_LIMIT: usize = 1000;

    /// The first `limit` tasks (clamped to 1..=[`MAX_LIMIT`](Self::MAX_LIMIT)).
    pub fn first(limit: usize) -> Self {
        Self {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            after: None,
        }
    }

    /// The same page size, starting after `cursor`.
    #[must_use]
    pub fn after(mut self, cursor: TaskCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// How many tasks at most.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Where the page starts.
    pub fn cursor(&self) -> Option<&TaskCursor> {
        self.after.as_ref()
    }
}

/// One page of a listing.
#[derive(Debug)]
pub struct TaskPage {
    /// The tasks, newest first. A record that does not parse is an `Err`
    /// ([`StoreError::Deserialization`] naming its key) in its place; the
    /// rest of the page is unaffected.
    pub items: Vec<Result<TaskRecord, StoreError>>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<TaskCursor>,
}

impl TaskPage {
    /// Builds a page from items gathered up to one beyond `limit`, with
    /// each item's index position `(score, id)`: there is a next page exactly
    /// when an item beyond the limit was found, and it starts after the last
    /// item kept. What both adapters do at the end of a listing.
    pub fn cut(
        mut items: Vec<Result<TaskRecord, StoreError>>,
        positions: &[(i64, String)],
        limit: usize,
    ) -> Self {
        let mut next = None;
        if items.len() > limit {
            items.truncate(limit);
            next = limit
                .checked_sub(1)
                .and_then(|last| positions.get(last))
                .and_then(|(score, id)| {
                    Some(TaskCursor {
                        updated_millis: *score,
                        id: TaskId::new(id.as_str()).ok()?,
                    })
                });
        }
        Self { items, next }
    }
}

/// A read of one bucket's index that a [`BucketMerge`] needs: its entries
/// scored at most `max` (`None`: no bound), newest first (ties by id
/// descending), the first `count` of them. On Redis:
/// `ZRANGE <index in bucket> <max or +inf> -inf BYSCORE REV LIMIT 0 <count> WITHSCORES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRead {
    /// The bucket whose index to read.
    pub bucket: TaskBucket,
    /// The highest score wanted, inclusive.
    pub max: Option<i64>,
    /// How many entries at most.
    pub count: usize,
}

/// What the merge knows of one bucket's index.
#[derive(Debug, Default)]
struct Source {
    /// Entries read and not yet handed out, newest first.
    pending: VecDeque<(i64, String)>,
    /// The last entry read, and how many entries of that read had its
    /// score: the next read starts at its score and skips what was seen.
    frontier: Option<((i64, String), usize)>,
    /// Nothing is left beyond `pending`.
    exhausted: bool,
    /// Entries read so far (a further read asks for at least as many).
    read: usize,
}

/// THE newest-first merge of an index's [`TaskBucket::COUNT`] buckets, for
/// one page of a listing; no I/O of its own. The adapter asks which
/// [`reads`](Self::reads) are needed, hands each answer to
/// [`take`](Self::take), and draws entries in listing order with
/// [`next`](Self::next) until it has a page (and one more) of live
/// records, or the merge [`is_done`](Self::is_done).
///
/// Every entry after the page's cursor comes out exactly once, in listing
/// order, whatever the buckets hold: an entry is handed out only when every
/// bucket that may hold more has a read entry waiting (so none of them can
/// hold a newer one), and a further read of a bucket starts at the score of
/// the last entry it read and drops what is not strictly after that entry
/// (so entries written or moved meanwhile neither repeat nor hide others).
///
/// Cost: the first read of each bucket asks for about twice its share of
/// a page; a page is two round trips (the reads, then the records) unless
/// the page's tasks crowd into a few buckets or many entries are stale.
#[derive(Debug)]
pub struct BucketMerge {
    after: Option<TaskCursor>,
    batch: usize,
    sources: Vec<Source>,
}

impl BucketMerge {
    /// Entries read per bucket beyond twice its share of a page.
    const SLACK: usize = 4;

    /// The merge of one page of `page`.
    pub fn new(page: &PageRequest) -> Self {
        let share = (page.limit() + 1).div_ceil(usize::from(TaskBucket::COUNT));
        Self {
            after: page.cursor().cloned(),
            batch: share * 2 + Self::SLACK,
            sources: TaskBucket::all().map(|_| Source::default()).collect(),
        }
    }

    /// The reads needed before more entries can be handed out: one per
    /// bucket whose read entries are used up and that may hold more. Empty
    /// when [`next`](Self::next) can go on, or the merge is done.
    pub fn reads(&self) -> Vec<BucketRead> {
        TaskBucket::all()
            .zip(&self.sources)
            .filter(|(_, source)| !source.exhausted && source.pending.is_empty())
            .map(|(bucket, source)| match &source.frontier {
                None => BucketRead {
                    bucket,
                    max: self.after.as_ref().map(|cursor| cursor.updated_millis),
                    count: self.batch,
                },
                Some(((score, _), ties)) => BucketRead {
                    bucket,
                    max: Some(*score),
                    count: ties + self.batch.max(source.read),
                },
            })
            .collect()
    }

    /// Takes the answer to `read` (entries newest first, with their
    /// scores in ms).
    pub fn take(&mut self, read: &BucketRead, entries: Vec<(i64, String)>) {
        let Some(source) = self.sources.get_mut(read.bucket.index()) else {
            return;
        };
        source.exhausted = entries.len() < read.count;
        source.read += entries.len();
        let frontier = entries.last().map(|(score, id)| {
            let ties = entries.iter().filter(|(s, _)| s == score).count();
            ((*score, id.clone()), ties)
        });
        let seen = source.frontier.take();
        for (score, id) in entries {
            let new = seen
                .as_ref()
                .is_none_or(|((s, last), _)| comes_after((*s, last), (score, &id)));
            let wanted = self
                .after
                .as_ref()
                .is_none_or(|cursor| cursor.precedes(score, &id));
            if new && wanted {
                source.pending.push_back((score, id));
            }
        }
        source.frontier = frontier.or(seen);
    }

    /// Up to `max` further entries `(bucket, score, id)` in listing order,
    /// as far as the reads so far allow (fewer when a bucket needs a read
    /// first: see [`reads`](Self::reads)).
    pub fn next(&mut self, max: usize) -> Vec<(TaskBucket, i64, String)> {
        let mut out = Vec::new();
        while out.len() < max {
            if self
                .sources
                .iter()
                .any(|source| !source.exhausted && source.pending.is_empty())
            {
                break;
            }
            let newest = TaskBucket::all()
                .zip(&self.sources)
                .filter_map(|(bucket, source)| source.pending.front().map(|(s, id)| (bucket, (*s, id))))
                .max_by(|(_, a), (_, b)| a.cmp(b))
                .map(|(bucket, _)| bucket);
            let Some(bucket) = newest else { break };
            if let Some((score, id)) = self.sources[bucket.index()].pending.pop_front() {
                out.push((bucket, score, id));
            }
        }
        out
    }

    /// Whether every entry after the cursor was handed out.
    pub fn is_done(&self) -> bool {
        self.sources
            .iter()
            .all(|source| source.exhausted && source.pending.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_as_text() {
        let cursor = TaskCursor {
            updated_millis: 1_700_000_000_123,
            id: TaskId::new("job:7").unwrap(),
        };
        let text = cursor.to_string();
        assert_eq!(text, "1700000000123:job:7");
        assert_eq!(text.parse::<TaskCursor>().unwrap(), cursor);
        assert!("nonsense".parse::<TaskCursor>().is_err());
        assert!("12:".parse::<TaskCursor>().is_err());
    }

    #[test]
    fn cursor_order_is_newest_first_then_id_descending() {
        let cursor = TaskCursor {
            updated_millis: 10,
            id: TaskId::new("m").unwrap(),
        };
        assert!(cursor.precedes(9, "z"));
        assert!(cursor.precedes(10, "a"));
        assert!(!cursor.precedes(10, "m"));
        assert!(!cursor.precedes(10, "n"));
        assert!(!cursor.precedes(11, "a"));
    }

    #[test]
    fn page_limits_are_clamped() {
        assert_eq!(PageRequest::first(0).limit(), 1);
        assert_eq!(PageRequest::first(5000).limit(), PageRequest::MAX_LIMIT);
    }

    /// Buckets as sorted sets: `(score, id)` per bucket.
    type Buckets = Vec<Vec<(i64, String)>>;

    /// `ZRANGE max -inf BYSCORE REV LIMIT 0 count` of one bucket.
    fn answer(buckets: &Buckets, read: &BucketRead) -> Vec<(i64, String)> {
        let mut entries = buckets[read.bucket.index()].clone();
        entries.sort_by(|a, b| b.cmp(a));
        entries
            .into_iter()
            .filter(|(score, _)| read.max.is_none_or(|max| *score <= max))
            .take(read.count)
            .collect()
    }

    /// Every entry of a merge, with how many reads it took.
    fn drain(buckets: &Buckets, page: &PageRequest) -> (Vec<(i64, String)>, usize) {
        let mut merge = BucketMerge::new(page);
        let mut out = Vec::new();
        let mut reads = 0;
        while !merge.is_done() {
            for read in merge.reads() {
                reads += 1;
                merge.take(&read, answer(buckets, &read));
            }
            out.extend(merge.next(7).into_iter().map(|(_, s, id)| (s, id)));
            assert!(reads < 10_000, "the merge does not end");
        }
        (out, reads)
    }

    fn spread(entries: &[(i64, &str)]) -> Buckets {
        let mut buckets: Buckets = TaskBucket::all().map(|_| Vec::new()).collect();
        for (score, id) in entries {
            buckets[TaskBucket::of(id).index()].push((*score, (*id).to_owned()));
        }
        buckets
    }

    fn sorted(entries: &[(i64, &str)]) -> Vec<(i64, String)> {
        let mut all: Vec<(i64, String)> = entries.iter().map(|(s, id)| (*s, (*id).to_owned())).collect();
        all.sort_by(|a, b| b.cmp(a));
        all
    }

    #[test]
    fn the_merge_hands_out_every_entry_once_newest_first() {
        let ids: Vec<String> = (0..500).map(|i| format!("t{i}")).collect();
        // Many ties: 500 entries over 37 scores.
        let entries: Vec<(i64, &str)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| ((i % 37) as i64, id.as_str()))
            .collect();
        let buckets = spread(&entries);
        for limit in [1, 3, 50, 1000] {
            let (out, _) = drain(&buckets, &PageRequest::first(limit));
            assert_eq!(out, sorted(&entries), "limit {limit}");
        }
        // After a cursor in the middle of a tie group.
        let all = sorted(&entries);
        let (score, id) = &all[123];
        let cursor = TaskCursor {
            updated_millis: *score,
            id: TaskId::new(id.as_str()).unwrap(),
        };
        let (out, _) = drain(&buckets, &PageRequest::first(10).after(cursor));
        assert_eq!(out, all[124..]);
    }

    #[test]
    fn tasks_crowded_into_one_bucket_and_huge_tie_groups_still_merge() {
        // 300 ids of one bucket, all in one millisecond, and a few elsewhere.
        let crowded: Vec<String> = (0..20_000)
            .map(|i| format!("c{i}"))
            .filter(|id| TaskBucket::of(id).number() == 5)
            .take(300)
            .collect();
        let mut entries: Vec<(i64, &str)> = crowded.iter().map(|id| (7, id.as_str())).collect();
        entries.extend([(9, "x"), (7, "y"), (1, "z")]);
        let buckets = spread(&entries);
        let (out, reads) = drain(&buckets, &PageRequest::first(50));
        assert_eq!(out, sorted(&entries));
        // The crowded bucket's reads grow (the batch doubles): few of them.
        assert!(reads < 16 + 16, "{reads} reads");
    }

    #[test]
    fn a_first_page_takes_one_read_per_bucket() {
        let ids: Vec<String> = (0..500).map(|i| format!("task-{i}")).collect();
        let entries: Vec<(i64, &str)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (i as i64, id.as_str()))
            .collect();
        let buckets = spread(&entries);
        let mut merge = BucketMerge::new(&PageRequest::first(50));
        let reads = merge.reads();
        assert_eq!(reads.len(), usize::from(TaskBucket::COUNT));
        for read in &reads {
            merge.take(read, answer(&buckets, read));
        }
        let page = merge.next(51);
        assert_eq!(page.len(), 51);
        assert!(merge.reads().is_empty(), "no second read for a first page");
        let ids: Vec<(i64, String)> = page.into_iter().map(|(_, s, id)| (s, id)).collect();
        assert_eq!(ids, sorted(&entries)[..51]);
    }

    #[test]
    fn a_read_skips_what_was_seen_even_if_the_bucket_changed_in_between() {
        let page = PageRequest::first(1);
        let mut merge = BucketMerge::new(&page);
        let bucket = TaskBucket::of("a");
        let batch = merge.reads()[0].count;
        // The bucket holds `batch` entries of score 5; others are empty.
        let mut ids: Vec<String> = (0..10_000)
            .map(|i| format!("a{i}"))
            .filter(|id| TaskBucket::of(id) == bucket)
            .take(batch + 2)
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        let mut held: Vec<(i64, String)> = ids.iter().map(|id| (5, id.clone())).collect();
        for read in merge.reads() {
            let entries = if read.bucket == bucket {
                held[..batch].to_vec()
            } else {
                Vec::new()
            };
            merge.take(&read, entries);
        }
        let first = merge.next(batch);
        assert_eq!(first.len(), batch);
        // Meanwhile one entry already handed out moves away (updated); the
        // next read starts at score 5 from the top and must neither repeat
        // nor skip anything.
        held.remove(0);
        let read = merge.reads().pop().unwrap();
        assert_eq!(read.max, Some(5));
        let answer: Vec<(i64, String)> = held.iter().take(read.count).cloned().collect();
        merge.take(&read, answer);
        let rest = merge.next(10);
        let rest_ids: Vec<&str> = rest.iter().map(|(_, _, id)| id.as_str()).collect();
        assert_eq!(rest_ids, [ids[batch].as_str(), ids[batch + 1].as_str()]);
        assert!(merge.is_done());
    }
}
