//! Task lifecycle: the record a service publishes about a long-running task,
//! its status and its log, and the rules of how a status may change.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{MAX_KEY_BYTES, ValidationError, validate_identifier};

identifier!(
    /// The id of a task, e.g. `export-2026-11-23-42`. Any text that is a
    /// valid key ([`validate_identifier`]); escaped where it becomes part of
    /// a Redis key.
    TaskId,
    "task id",
    MAX_KEY_BYTES
);

identifier!(
    /// The name of the service a task belongs to, e.g. `mailer`.
    ServiceName,
    "service",
    MAX_KEY_BYTES
);

identifier!(
    /// The id of the user a task was started for.
    UserId,
    "user id",
    MAX_KEY_BYTES
);

/// Where a task is in its life. Serialized as its lowercase name.
///
/// `Completed`, `Failed` and `Cancelled` are final: a task never leaves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Created, not started.
    Pending,
    /// Being worked on.
    Running,
    /// Done (final).
    Completed,
    /// Gave up with an error (final).
    Failed,
    /// Stopped on request (final).
    Cancelled,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 5] = [
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the status is final (completed, failed, cancelled).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Whether a task may move from `self` to `to`: any move out of a
    /// non-final status is allowed, a final status is never left, and
    /// "moving" to the same status is always allowed (it only logs).
    pub fn check_transition(self, to: TaskStatus) -> Result<(), TransitionError> {
        if self == to || !self.is_final() {
            Ok(())
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = ValidationError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or(ValidationError::UnknownName {
                what: "task status",
                expected: "pending, running, completed, failed or cancelled",
            })
    }
}

/// A status change that the lifecycle forbids: leaving a final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot move a task from {from} to {to}: {from} is final")]
pub struct TransitionError {
    /// The task's status.
    pub from: TaskStatus,
    /// The status asked for.
    pub to: TaskStatus,
}

/// One line of a task's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When it was logged (UTC).
    pub at: DateTime<Utc>,
    /// The text.
    pub message: String,
    /// The task's status when it was logged (after the change, for a line
    /// logged with a status change).
    pub status: TaskStatus,
}

/// What a service publishes about one task.
///
/// Stored as one JSON document; timestamps are RFC 3339 UTC, the status its
/// lowercase name. Fields added later are optional, so records written by
/// older versions still load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task's id.
    pub id: TaskId,
    /// The service it belongs to (indexed).
    pub service: ServiceName,
    /// The user it was started for (indexed).
    pub user: UserId,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last written: set by every write.
    pub updated_at: DateTime<Utc>,
    /// The log, oldest first.
    #[serde(default)]
    pub log: Vec<LogEntry>,
    /// Free-form metadata (a JSON object).
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// The result, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error text of a failed task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TaskRecord {
    /// A new pending task created at `now`, with an empty log.
    pub fn new(id: TaskId, service: ServiceName, user: UserId, now: DateTime<Utc>) -> Self {
        Self {
            id,
            service,
            user,
            status: TaskStatus::Pending,
            created_at: now,
            updated_at: now,
            log: Vec::new(),
            metadata: Map::new(),
            result: None,
            error: None,
        }
    }

    /// The same record with `metadata`.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Moves the task to `to` at `now`, logging `message` if given (under
    /// the new status). Setting the status it already has only appends the
    /// log line. Leaving a final status is an error, and changes nothing.
    pub fn set_status(
        &mut self,
        to: TaskStatus,
        message: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        self.status.check_transition(to)?;
        self.status = to;
        self.updated_at = now;
        if let Some(message) = message {
            self.push_log(message, now);
        }
        Ok(())
    }

    /// Appends `message` to the log at `now`, under the current status.
    pub fn append_log(&mut self, message: &str, now: DateTime<Utc>) {
        self.updated_at = now;
        self.push_log(message, now);
    }

    /// Keeps only the newest `max` log entries.
    pub fn cap_log(&mut self, max: usize) {
        if self.log.len() > max {
            let drop = self.log.len() - max;
            self.log.drain(..drop);
        }
    }

    /// Milliseconds since the Unix epoch of [`updated_at`](Self::updated_at):
    /// the score of the record in its indexes.
    pub fn updated_millis(&self) -> i64 {
        self.updated_at.timestamp_millis()
    }

    fn push_log(&mut self, message: &str, now: DateTime<Utc>) {
        self.log.push(LogEntry {
            at: now,
            message: message.to_owned(),
            status: self.status,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, second).unwrap()
    }

    fn record() -> TaskRecord {
        TaskRecord::new(
            TaskId::new("t1").unwrap(),
            ServiceName::new("mailer").unwrap(),
            UserId::new("u1").unwrap(),
            at(0),
        )
    }

    #[test]
    fn transition_table() {
        // Rows: from; columns: to, in TaskStatus::ALL order.
        let allowed = [
            (Pending, [true, true, true, true, true]),
            (Running, [true, true, true, true, true]),
            (Completed, [false, false, true, false, false]),
            (Failed, [false, false, false, true, false]),
            (Cancelled, [false, false, false, false, true]),
        ];
        for (from, row) in allowed {
            for (to, ok) in TaskStatus::ALL.into_iter().zip(row) {
                let result = from.check_transition(to);
                assert_eq!(result.is_ok(), ok, "{from} -> {to}");
                if let Err(error) = result {
                    assert_eq!(error, TransitionError { from, to });
                    assert_eq!(
                        error.to_string(),
                        format!("cannot move a task from {from} to {to}: {from} is final")
                    );
                }
            }
        }
    }

    #[test]
    fn same_status_only_appends_the_log_line() {
        let mut task = record();
        task.set_status(Running, Some("started"), at(1)).unwrap();
        task.set_status(Completed, Some("done"), at(2)).unwrap();
        task.set_status(Completed, Some("really done"), at(3)).unwrap();
        assert_eq!(task.status, Completed);
        let lines: Vec<(&str, TaskStatus)> =
            task.log.iter().map(|e| (e.message.as_str(), e.status)).collect();
        assert_eq!(
            lines,
            [
                ("started", Running),
                ("done", Completed),
                ("really done", Completed)
            ]
        );
        assert_eq!(task.updated_at, at(3));
    }

    #[test]
    fn an_invalid_transition_changes_nothing() {
        let mut task = record();
        task.set_status(Failed, None, at(1)).unwrap();
        let before = task.clone();
        assert!(task.set_status(Running, Some("retry"), at(2)).is_err());
        assert_eq!(task, before);
    }

    #[test]
    fn log_cap_drops_the_oldest() {
        let mut task = record();
        for i in 0..5 {
            task.append_log(&format!("line {i}"), at(i));
        }
        task.cap_log(2);
        let lines: Vec<&str> = task.log.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(lines, ["line 3", "line 4"]);
    }

    #[test]
    fn json_form_is_lowercase_and_rfc3339() {
        let mut task = record();
        task.set_status(Running, Some("go"), at(1)).unwrap();
        let json = serde_json::to_value(&task).unwrap();
        assert_eq!(json["status"], "running");
        assert_eq!(json["created_at"], "2026-11-23T10:00:00Z");
        assert_eq!(json["log"][0]["status"], "running");
        assert!(json.get("result").is_none());
        let back: TaskRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, task);
    }

    #[test]
    fn unknown_status_and_bad_ids_do_not_parse() {
        let mut json = serde_json::to_value(record()).unwrap();
        json["status"] = "paused".into();
        assert!(serde_json::from_value::<TaskRecord>(json).is_err());
        let mut json = serde_json::to_value(record()).unwrap();
        json["id"] = "".into();
        assert!(serde_json::from_value::<TaskRecord>(json).is_err());
        assert!("paused".parse::<TaskStatus>().is_err());
        assert_eq!("failed".parse::<TaskStatus>().unwrap(), Failed);
    }
}
