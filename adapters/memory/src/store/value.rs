//! What a key holds: [`Value`] (a string, hash, sorted set or list, typed
//! as in Redis) with its bookkeeping ([`Entry`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use tokio::time::Instant;

/// A value and its bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    /// Unique per write across the store: a changed version means a changed key.
    pub(crate) version: u64,
    pub(crate) expires_at: Option<Instant>,
}

/// What a key holds. Redis keys have types; so do these, so that using a
/// key with the wrong kind of operation fails the same way on both backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A Redis string: what documents are stored as.
    Str(Vec<u8>),
    /// A Redis hash.
    Hash(Hash),
    /// A Redis sorted set.
    ZSet(ZSet),
    /// A Redis list.
    List(VecDeque<Vec<u8>>),
}

impl Value {
    /// Whether this is an empty container, which Redis removes.
    pub(super) fn is_empty_container(&self) -> bool {
        match self {
            Self::Str(_) => false,
            Self::Hash(hash) => hash.is_empty(),
            Self::ZSet(zset) => zset.len() == 0,
            Self::List(list) => list.is_empty(),
        }
    }
}

/// A Redis hash: fields and values, both bytes.
pub(crate) type Hash = BTreeMap<Vec<u8>, Vec<u8>>;

/// A Redis sorted set: members with scores, ordered by (score, member) with
/// members compared byte-wise, as Redis orders them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ZSet {
    pub(super) scores: HashMap<String, Score>,
    order: BTreeSet<(Score, String)>,
}

/// A score, totally ordered (`f64::total_cmp`), like Redis' doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Score(pub(crate) f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl ZSet {
    /// Adds `member` or moves it to `score` (`ZADD`).
    pub(crate) fn insert(&mut self, member: &str, score: f64) {
        let score = Score(score);
        if let Some(old) = self.scores.insert(member.to_owned(), score) {
            self.order.remove(&(old, member.to_owned()));
        }
        self.order.insert((score, member.to_owned()));
    }

    /// Removes `member` (`ZREM`); returns whether it was there.
    pub(crate) fn remove(&mut self, member: &str) -> bool {
        match self.scores.remove(member) {
            Some(score) => {
                self.order.remove(&(score, member.to_owned()));
                true
            }
            None => false,
        }
    }

    /// Members with their scores, highest score first, then member
    /// descending (`ZRANGE … REV`).
    pub(crate) fn rev_iter(&self) -> impl Iterator<Item = (f64, &str)> {
        self.order
            .iter()
            .rev()
            .map(|(score, member)| (score.0, member.as_str()))
    }

    /// How many members (`ZCARD`).
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    /// Members with their scores, lowest score first, then member
    /// ascending (`ZRANGE`).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (f64, &str)> {
        self.order
            .iter()
            .map(|(score, member)| (score.0, member.as_str()))
    }

    /// The score of `member` (`ZSCORE`).
    pub(crate) fn score(&self, member: &str) -> Option<f64> {
        self.scores.get(member).map(|score| score.0)
    }
}
