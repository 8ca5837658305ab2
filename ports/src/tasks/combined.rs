//! Concurrent changes of one task (`set_status`, `append_log`) from one
//! store, combined (`Combiner`): one read of the record per round, each
//! caller's [`TaskChange`] applied in turn in its own task, one write of
//! the result. Many workers logging progress to one task then never
//! conflict with each other; only writers in other processes can.

use statehouse_domain::{TaskRecord, Ttl};

use super::{TaskChange, TaskSpace};
use crate::StoreError;
use crate::combine::member_result;

/// The value a combined round of task changes hands from caller to caller.
#[derive(Debug, Clone, PartialEq)]
pub enum HeldTask {
    /// No record under the key.
    Missing,
    /// The record as stored, not decoded yet.
    Stored(Vec<u8>),
    /// The record as the callers before changed it: what the round writes.
    Changed {
        /// The record after the last change (boxed: a record is large,
        /// and the other cases hand on a few words).
        record: Box<TaskRecord>,
        /// Its encoding, the bytes to store.
        encoded: Vec<u8>,
        /// The TTL of the write: the longest of the changing callers'
        /// spaces, so that the record lives as long as it would had the
        /// changes been written one after another.
        ttl: Ttl,
    },
}

impl HeldTask {
    /// What a round read: the record's bytes, if any.
    pub fn read(bytes: Option<Vec<u8>>) -> Self {
        bytes.map_or(Self::Missing, Self::Stored)
    }
}

/// What one caller's change came to in the last pass of a combined round:
/// the record after it, or its own error (the task is missing, its record
/// does not parse, the transition is refused).
pub type TaskStep = Option<Result<TaskRecord, StoreError>>;

/// A task change of `space` on the record `key` as a member of a combined
/// round: applies `change` to the record handed to it, records its own
/// answer in `own` and passes on the changed record (`None`: unchanged,
/// after an error). The rules are [`TaskChange::apply`]'s, as in an
/// uncombined change.
///
/// ```
/// use statehouse_domain::{ServiceName, TaskId, TaskRecord, UserId};
/// use statehouse_ports::{HeldTask, TaskChange, TaskSpace, encode, task_result, task_step};
///
/// let space = TaskSpace::default();
/// let key = space.keys().record("export-1");
/// let id = TaskId::new("export-1").unwrap();
/// let record = TaskRecord::new(id, ServiceName::new("svc").unwrap(), UserId::new("u").unwrap(), chrono::Utc::now());
/// let read = HeldTask::read(Some(encode("append_log", &key, &record).unwrap()));
///
/// // Two callers' changes, one after the other, as a round hands the record on.
/// let (mut first, mut second) = (None, None);
/// let held = task_step(&space, &key, TaskChange::Log("10%"), &mut first)(&read).unwrap();
/// let held = task_step(&space, &key, TaskChange::Log("20%"), &mut second)(&held).unwrap();
/// assert!(matches!(held, HeldTask::Changed { .. })); // what the round writes, once
///
/// // Once the round committed (at attempt 1), each gets the record its own change left.
/// assert_eq!(task_result("append_log", &key, first, Ok(1)).unwrap().log.len(), 1);
/// assert_eq!(task_result("append_log", &key, second, Ok(1)).unwrap().log.len(), 2);
/// ```
pub fn task_step<'f>(
    space: &'f TaskSpace,
    key: &'f str,
    change: TaskChange<'f>,
    own: &'f mut TaskStep,
) -> impl FnMut(&HeldTask) -> Option<HeldTask> + Send + 'f {
    move |held| {
        let (changed, ttl) = match held {
            HeldTask::Missing => (change.applied_to(space, key, None), space.ttl()),
            HeldTask::Stored(bytes) => (change.applied_to(space, key, Some(bytes)), space.ttl()),
            HeldTask::Changed { record, ttl, .. } => (
                change.applied(space, key, TaskRecord::clone(record)),
                space.ttl().max(*ttl),
            ),
        };
        match changed {
            Ok((record, encoded)) => {
                *own = Some(Ok(record.clone()));
                Some(HeldTask::Changed {
                    record: Box::new(record),
                    encoded,
                    ttl,
                })
            }
            Err(error) => {
                *own = Some(Err(error));
                None
            }
        }
    }
}

/// A caller's result of a combined task change: the record after its own
/// change once the batch committed (`outcome`), its own error whatever the
/// batch did.
pub fn task_result(
    op: &'static str,
    key: &str,
    own: TaskStep,
    outcome: Result<u32, StoreError>,
) -> Result<TaskRecord, StoreError> {
    member_result(op, key, own, outcome, |record, _| record)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use statehouse_domain::{ServiceName, TaskId, TaskStatus, UserId};

    use super::*;
    use crate::{ErrorKind, encode};

    fn record() -> TaskRecord {
        TaskRecord::new(
            TaskId::new("t").unwrap(),
            ServiceName::new("svc").unwrap(),
            UserId::new("u").unwrap(),
            chrono::Utc::now(),
        )
    }

    #[test]
    fn changes_follow_one_another_and_each_keeps_its_own_record() {
        let space = TaskSpace::default();
        let key = space.keys().record("t");
        let stored = HeldTask::read(Some(encode("test", &key, &record()).unwrap()));
        let (mut first, mut second) = (None, None);
        let held = task_step(&space, &key, TaskChange::Log("one"), &mut first)(&stored).unwrap();
        let held = task_step(&space, &key, TaskChange::Log("two"), &mut second)(&held).unwrap();
        let first = task_result("append_log", &key, first, Ok(1)).unwrap();
        let second = task_result("append_log", &key, second, Ok(1)).unwrap();
        assert_eq!(first.log.len(), 1);
        assert_eq!(second.log.len(), 2);
        let HeldTask::Changed { record, encoded, .. } = held else {
            panic!("the round holds no change: {held:?}")
        };
        assert_eq!(*record, second);
        assert_eq!(encoded, encode("test", &key, &second).unwrap());
    }

    #[test]
    fn an_error_is_its_callers_own_and_passes_the_record_on_unchanged() {
        let space = TaskSpace::default();
        let key = space.keys().record("t");
        let mut done = record();
        done.set_status(TaskStatus::Completed, None, chrono::Utc::now())
            .unwrap();
        let stored = HeldTask::read(Some(encode("test", &key, &done).unwrap()));
        let mut own = None;
        let running = TaskChange::Status {
            status: TaskStatus::Running,
            message: None,
        };
        assert_eq!(task_step(&space, &key, running, &mut own)(&stored), None);
        let error = task_result("set_status", &key, own, Ok(1)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidTransition);

        let mut own = None;
        assert_eq!(
            task_step(&space, &key, TaskChange::Log("x"), &mut own)(&HeldTask::Missing),
            None
        );
        let error = task_result("append_log", &key, own, Ok(1)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotFound);
        assert!(error.to_string().contains(&key), "{error}");

        let mut own = None;
        let garbage = HeldTask::read(Some(b"{not json".to_vec()));
        assert_eq!(
            task_step(&space, &key, TaskChange::Log("x"), &mut own)(&garbage),
            None
        );
        let error = task_result("append_log", &key, own, Ok(1)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Deserialization);
    }

    #[test]
    fn the_write_lives_as_long_as_the_longest_of_the_changing_spaces() {
        let short = TaskSpace::default().with_ttl(Duration::from_secs(60)).unwrap();
        let long = TaskSpace::default().with_ttl(Duration::from_secs(3600)).unwrap();
        let key = short.keys().record("t");
        let stored = HeldTask::read(Some(encode("test", &key, &record()).unwrap()));
        let (mut a, mut b, mut c) = (None, None, None);
        let held = task_step(&long, &key, TaskChange::Log("a"), &mut a)(&stored).unwrap();
        let held = task_step(&short, &key, TaskChange::Log("b"), &mut b)(&held).unwrap();
        let HeldTask::Changed { ttl, .. } = &held else {
            panic!("no change: {held:?}")
        };
        assert_eq!(*ttl, long.ttl());
        let held = task_step(&short, &key, TaskChange::Log("c"), &mut c)(&stored).unwrap();
        let HeldTask::Changed { ttl, .. } = &held else {
            panic!("no change: {held:?}")
        };
        assert_eq!(*ttl, short.ttl());
    }

    #[test]
    fn a_missing_outcome_or_a_failed_batch_reach_the_caller() {
        let key = "k";
        let error = task_result("append_log", key, None, Ok(1)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Operation);
        let failed = StoreError::Conflict {
            op: "append_log",
            key: key.to_owned(),
            attempts: 3,
        };
        let error = task_result("append_log", key, Some(Ok(record())), Err(failed)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Conflict);
    }
}
