//! What a saga instance looks like from the outside: its status, its recorded state and
//! its history, as the query API, the HTTP API and `herald sagas` show them.

use std::{fmt, str::FromStr, time::SystemTime};

use serde::{Deserialize, Serialize};

/// Extension header carrying the saga id on every command. A service that replies
/// without the command's id as causation id may copy it onto the reply instead.
pub const SAGA_ID_HEADER: &str = "ce_sagaid";
/// Extension header carrying the saga type on every command.
pub const SAGA_TYPE_HEADER: &str = "ce_sagatype";
/// Extension header carrying the step name on every command.
pub const SAGA_STEP_HEADER: &str = "ce_sagastep";

/// Where a saga instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Executing its steps forward: the current step's command was sent (or is waiting
    /// for its retry) and its reply is awaited.
    Running,
    /// A step failed: the compensations of the steps before it run in reverse order.
    Compensating,
    /// Every step succeeded. Final.
    Completed,
    /// A step failed and every compensation succeeded. Final.
    Compensated,
    /// A compensation failed or ran out of attempts: the saga stopped with effects that
    /// were not undone, and needs a person. Final, and visible in the query API.
    Failed,
}

impl SagaStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [SagaStatus; 5] = [
        SagaStatus::Running,
        SagaStatus::Compensating,
        SagaStatus::Completed,
        SagaStatus::Compensated,
        SagaStatus::Failed,
    ];

    /// The name stored in the database and shown by the APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Compensated => "compensated",
            SagaStatus::Failed => "failed",
        }
    }

    /// Whether the saga has ended (completed, compensated or failed).
    pub fn is_final(self) -> bool {
        !matches!(self, SagaStatus::Running | SagaStatus::Compensating)
    }
}

impl fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SagaStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SagaStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("unknown saga status {s:?}; expected one of running, compensating, completed, compensated, failed")
            })
    }
}

/// What happened to a saga, one entry of its append-only history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// The saga was created.
    Started,
    /// A step's command was sent (attempt 1, or a retry).
    StepStarted,
    /// A step's success reply arrived.
    StepSucceeded,
    /// A step's failure reply arrived.
    StepFailed,
    /// A step's reply did not arrive by its deadline.
    StepTimedOut,
    /// The saga turned to compensating (after a failed or exhausted step).
    Compensating,
    /// A compensation's command was sent.
    CompensationStarted,
    /// A compensation's success reply arrived.
    CompensationSucceeded,
    /// A compensation's failure reply arrived.
    CompensationFailed,
    /// A compensation's reply did not arrive by its deadline.
    CompensationTimedOut,
    /// Every step succeeded.
    Completed,
    /// Every compensation succeeded.
    Compensated,
    /// The saga stopped without undoing everything.
    Failed,
}

impl HistoryKind {
    const ALL: [HistoryKind; 13] = [
        HistoryKind::Started,
        HistoryKind::StepStarted,
        HistoryKind::StepSucceeded,
        HistoryKind::StepFailed,
        HistoryKind::StepTimedOut,
        HistoryKind::Compensating,
        HistoryKind::CompensationStarted,
        HistoryKind::CompensationSucceeded,
        HistoryKind::CompensationFailed,
        HistoryKind::CompensationTimedOut,
        HistoryKind::Completed,
        HistoryKind::Compensated,
        HistoryKind::Failed,
    ];

    /// The name stored in the database and shown by the APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Started => "started",
            HistoryKind::StepStarted => "step_started",
            HistoryKind::StepSucceeded => "step_succeeded",
            HistoryKind::StepFailed => "step_failed",
            HistoryKind::StepTimedOut => "step_timed_out",
            HistoryKind::Compensating => "compensating",
            HistoryKind::CompensationStarted => "compensation_started",
            HistoryKind::CompensationSucceeded => "compensation_succeeded",
            HistoryKind::CompensationFailed => "compensation_failed",
            HistoryKind::CompensationTimedOut => "compensation_timed_out",
            HistoryKind::Completed => "completed",
            HistoryKind::Compensated => "compensated",
            HistoryKind::Failed => "failed",
        }
    }
}

impl fmt::Display for HistoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HistoryKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HistoryKind::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown saga history kind {s:?}"))
    }
}

/// One saga instance as stored: its state, not its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaInstance {
    /// The saga type (its definition's name), e.g. `order`.
    pub saga_type: String,
    /// The instance id, unique per type (often the business id, e.g. the order id).
    pub saga_id: String,
    /// Where it is.
    pub status: SagaStatus,
    /// Index (from 0) of the step being executed or compensated; for a completed saga
    /// the number of steps.
    pub step: u32,
    /// Name of that step, if there is one.
    pub step_name: Option<String>,
    /// Attempt (from 1) of the current command.
    pub attempt: u32,
    /// The saga's data (JSON), with what replies added to it.
    pub data: serde_json::Value,
    /// The correlation id every command of this saga carries.
    pub correlation_id: String,
    /// When the awaited reply times out (or the next retry is sent); `None` when final.
    #[serde(with = "crate::model::opt_time")]
    pub deadline: Option<SystemTime>,
    /// Why the saga is compensating or failed (the failed step's reply type, or a
    /// timeout).
    pub error: Option<String>,
    /// Bumped by every transition (optimistic concurrency).
    pub version: u64,
    /// When the saga was started.
    #[serde(with = "crate::model::time")]
    pub created_at: SystemTime,
    /// When the saga last changed.
    #[serde(with = "crate::model::time")]
    pub updated_at: SystemTime,
}

/// One entry of a saga's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Position in the saga's history, from 1.
    pub seq: u64,
    /// When it was recorded.
    #[serde(with = "crate::model::time")]
    pub at: SystemTime,
    /// What happened.
    pub kind: HistoryKind,
    /// The step it concerns (index from 0), if any.
    pub step: Option<u32>,
    /// That step's name.
    pub step_name: Option<String>,
    /// The attempt it concerns, if any.
    pub attempt: Option<u32>,
    /// The event involved: the command sent, or the reply received.
    pub event_id: Option<String>,
    /// That event's type.
    pub event_type: Option<String>,
    /// A note (e.g. the timeout that expired).
    pub detail: Option<String>,
}

/// A saga with its whole history, as `show` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaDetails {
    /// The state.
    #[serde(flatten)]
    pub instance: SagaInstance,
    /// Every history entry, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// Which sagas `list` returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaFilter {
    /// Only this saga type.
    #[serde(default, rename = "type")]
    pub saga_type: Option<String>,
    /// Only this status.
    #[serde(default)]
    pub status: Option<SagaStatus>,
    /// At most this many (default 50, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Skip this many (paging).
    #[serde(default)]
    pub offset: Option<u64>,
}

impl SagaFilter {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 1000;

    /// Every saga (first page).
    pub fn all() -> Self {
        Self::default()
    }

    /// Only sagas of `saga_type`.
    pub fn saga_type(mut self, saga_type: impl Into<String>) -> Self {
        self.saga_type = Some(saga_type.into());
        self
    }

    /// Only sagas in `status`.
    pub fn status(mut self, status: SagaStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// At most `limit` sagas.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Skips the first `offset` sagas.
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// A page of `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaPage {
    /// The sagas, newest first.
    pub sagas: Vec<SagaInstance>,
    /// How many sagas match the filter in all.
    pub total: u64,
}

/// How many sagas are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Running.
    pub running: u64,
    /// Compensating.
    pub compensating: u64,
    /// Completed.
    pub completed: u64,
    /// Compensated.
    pub compensated: u64,
    /// Failed.
    pub failed: u64,
}

impl StatusCounts {
    pub(crate) fn add(&mut self, status: SagaStatus, n: u64) {
        let slot = match status {
            SagaStatus::Running => &mut self.running,
            SagaStatus::Compensating => &mut self.compensating,
            SagaStatus::Completed => &mut self.completed,
            SagaStatus::Compensated => &mut self.compensated,
            SagaStatus::Failed => &mut self.failed,
        };
        *slot += n;
    }

    /// Sagas not yet final.
    pub fn active(&self) -> u64 {
        self.running + self.compensating
    }
}

/// Times as RFC 3339 text in JSON.
pub(crate) mod time {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&herald::rfc3339::format(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        herald::rfc3339::parse(&text).map_err(D::Error::custom)
    }
}

/// Optional times as RFC 3339 text (or null) in JSON.
pub(crate) mod opt_time {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&herald::rfc3339::format(*t)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => herald::rfc3339::parse(&text)
                .map(Some)
                .map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in SagaStatus::ALL {
            assert_eq!(s.as_str().parse::<SagaStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        for k in HistoryKind::ALL {
            assert_eq!(k.as_str().parse::<HistoryKind>().unwrap(), k);
        }
        assert!(
            "done"
                .parse::<SagaStatus>()
                .unwrap_err()
                .contains("running")
        );
    }
}
