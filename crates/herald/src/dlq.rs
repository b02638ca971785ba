//! Dead letters: events a consumer group gave up on, and the tools to inspect, replay and
//! discard them.
//!
//! Each consumer group has its own dead-letter topic per source topic, named
//! `<topic>.<group>.dlq` ([`dlq_topic`]; characters of the group that a topic name cannot
//! hold become `_`). A dead letter is the original record — same key, value and headers,
//! so the event keeps its id — plus `herald_dlq_*` headers: reason, error chain, attempts,
//! first and last failure time, original topic, partition and offset, group and
//! traceparent.
//!
//! Two policies decide what happens to the rest of a failed event's key
//! ([`DeadLetterPolicy`]): under `Skip` later events are handled as usual; under
//! `Sequenced` they are *parked* in the dead-letter topic behind the failed one (kind
//! `parked`), so the key's order is never broken, until the failed event is replayed or
//! discarded.
//!
//! Resolving a dead letter appends a marker to the dead-letter topic (header
//! `herald_dlq_resolution`), so the topic stays append-only and every tool sees the same
//! state. Replays go to the original topic and partition with `herald_replay_of` (and
//! `herald_replay_group` when only the dead letter's group should handle them; other groups
//! skip the record). Discarding a sequenced dead letter also appends an `unblock` control
//! record to the original topic, which the group's router uses to release the key.

mod tools;

use std::time::SystemTime;

pub use tools::{DeadLetterFilter, DeadLetterQueue, DlqCounts, DlqError, ReplayTarget};

use crate::{
    rfc3339,
    transport::{ConsumedRecord, Header, OutgoingRecord, RecordPosition, header_str},
};

/// Header names of dead letters, replays and control records.
pub mod headers {
    /// Prefix of every dead-letter header.
    pub const PREFIX: &str = "herald_dlq_";
    /// `failed` or `parked`.
    pub const KIND: &str = "herald_dlq_kind";
    /// Why the event was given up: the last error's message, or why it was parked.
    pub const REASON: &str = "herald_dlq_reason";
    /// The last error and its sources, as a JSON array of strings.
    pub const ERROR_CHAIN: &str = "herald_dlq_error_chain";
    /// Handler attempts made.
    pub const ATTEMPTS: &str = "herald_dlq_attempts";
    /// First failure, RFC 3339.
    pub const FIRST_FAILURE: &str = "herald_dlq_first_failure";
    /// Last failure, RFC 3339.
    pub const LAST_FAILURE: &str = "herald_dlq_last_failure";
    /// Topic the event was consumed from.
    pub const ORIGINAL_TOPIC: &str = "herald_dlq_original_topic";
    /// Partition it was consumed from.
    pub const ORIGINAL_PARTITION: &str = "herald_dlq_original_partition";
    /// Offset it was consumed at.
    pub const ORIGINAL_OFFSET: &str = "herald_dlq_original_offset";
    /// Consumer group that gave up.
    pub const GROUP: &str = "herald_dlq_group";
    /// The event's traceparent, if any.
    pub const TRACEPARENT: &str = "herald_dlq_traceparent";
    /// The event id (or a synthetic id for records that are not CloudEvents).
    pub const EVENT_ID: &str = "herald_dlq_event_id";
    /// `skip` or `sequenced`: the group's policy when the letter was written.
    pub const POLICY: &str = "herald_dlq_policy";
    /// For parked events: the id of the failed event they wait behind.
    pub const BLOCKED_BY: &str = "herald_dlq_blocked_by";
    /// On a resolution marker: `replayed` or `discarded`.
    pub const RESOLUTION: &str = "herald_dlq_resolution";
    /// On a resolution marker: the resolved letter's `<partition>:<offset>`.
    pub const RESOLVES: &str = "herald_dlq_resolves";
    /// On a replayed record: the letter it came from, `<dlq topic>:<partition>:<offset>`.
    pub const REPLAY_OF: &str = "herald_replay_of";
    /// On a replayed record: the only group that should handle it.
    pub const REPLAY_GROUP: &str = "herald_replay_group";
    /// On a replayed record: the event identity the letter was filed under.
    pub const REPLAY_ID: &str = "herald_replay_id";
    /// On a control record: what it asks (`unblock`).
    pub const CONTROL: &str = "herald_control";
    /// On a control record: the group it is for.
    pub const CONTROL_GROUP: &str = "herald_control_group";
    /// On a control record: the event id it is about.
    pub const CONTROL_EVENT_ID: &str = "herald_control_event_id";
}

/// The dead-letter topic of `group` for events from `topic`: `<topic>.<group>.dlq`.
pub fn dlq_topic(topic: &str, group: &str) -> String {
    let group: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{topic}.{group}.dlq")
}

/// What happens to a key's later events when one of its events is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeadLetterPolicy {
    /// Later events of the key are handled as usual.
    #[default]
    Skip,
    /// Later events of the key are parked behind the failed one until it is replayed or
    /// discarded.
    Sequenced,
}

impl DeadLetterPolicy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Sequenced => "sequenced",
        }
    }
}

/// Whether a letter failed itself or waits behind one that did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// Its handler failed permanently or ran out of retries (or it could not be decoded).
    Failed,
    /// It was parked behind an earlier failure of its key (sequenced policy).
    Parked,
}

impl DeadLetterKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Parked => "parked",
        }
    }
}

/// Why and when an event failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Short reason, e.g. `retries exhausted: connection refused`.
    pub reason: String,
    /// The last error and its sources, outermost first.
    pub error_chain: Vec<String>,
    /// Handler attempts made.
    pub attempts: u32,
    /// First failed attempt.
    pub first_failure: SystemTime,
    /// Last failed attempt.
    pub last_failure: SystemTime,
}

/// One dead letter as read back from a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where the letter is in the dead-letter topic.
    pub position: RecordPosition,
    /// Failed or parked.
    pub kind: DeadLetterKind,
    /// The event id (a synthetic `<topic>/<partition>/<offset>` for non-CloudEvents).
    pub event_id: String,
    /// Why and when it failed (for parked letters: attempts 0, times of parking).
    pub failure: Failure,
    /// For parked letters, the event they wait behind.
    pub blocked_by: Option<String>,
    /// The group that gave up.
    pub group: String,
    /// The policy of that group.
    pub policy: DeadLetterPolicy,
    /// Where the event was consumed.
    pub original_topic: String,
    /// Partition it was consumed from.
    pub original_partition: u32,
    /// Offset it was consumed at.
    pub original_offset: u64,
    /// The event's traceparent.
    pub traceparent: Option<String>,
    /// The original record key.
    pub key: Option<bytes::Bytes>,
    /// The original record value.
    pub value: Option<bytes::Bytes>,
    /// The original headers (without the `herald_dlq_` ones).
    pub headers: Vec<Header>,
}

/// Everything a dead letter is written from.
pub(crate) struct LetterParts<'a> {
    pub(crate) record: &'a ConsumedRecord,
    pub(crate) group: &'a str,
    pub(crate) policy: DeadLetterPolicy,
    pub(crate) kind: DeadLetterKind,
    pub(crate) event_id: &'a str,
    pub(crate) traceparent: Option<&'a str>,
    pub(crate) blocked_by: Option<&'a str>,
    pub(crate) failure: &'a Failure,
}

/// Headers of the original record without Herald's DLQ, replay and control headers.
fn original_headers(headers: &[Header]) -> Vec<Header> {
    headers
        .iter()
        .filter(|h| !h.key.starts_with(headers::PREFIX) && !h.key.starts_with("herald_replay_"))
        .cloned()
        .collect()
}

impl LetterParts<'_> {
    /// The dead-letter record: the original key, value and headers plus `herald_dlq_*`.
    pub(crate) fn to_record(&self) -> OutgoingRecord {
        use headers::*;
        let f = self.failure;
        let mut h = original_headers(&self.record.headers);
        let chain = serde_json::to_string(&f.error_chain).unwrap_or_else(|_| "[]".into());
        let fields = [
            (KIND, Some(self.kind.as_str().to_owned())),
            (REASON, Some(f.reason.clone())),
            (ERROR_CHAIN, Some(chain)),
            (ATTEMPTS, Some(f.attempts.to_string())),
            (FIRST_FAILURE, Some(rfc3339::format(f.first_failure))),
            (LAST_FAILURE, Some(rfc3339::format(f.last_failure))),
            (ORIGINAL_TOPIC, Some(self.record.topic.clone())),
            (ORIGINAL_PARTITION, Some(self.record.partition.to_string())),
            (ORIGINAL_OFFSET, Some(self.record.offset.to_string())),
            (GROUP, Some(self.group.to_owned())),
            (POLICY, Some(self.policy.as_str().to_owned())),
            (EVENT_ID, Some(self.event_id.to_owned())),
            (TRACEPARENT, self.traceparent.map(str::to_owned)),
            (BLOCKED_BY, self.blocked_by.map(str::to_owned)),
        ];
        h.extend(
            fields
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| Header::new(k, v))),
        );
        OutgoingRecord {
            key: self.record.key.clone(),
            value: self.record.value.clone(),
            headers: h,
            timestamp: Some(self.record.timestamp),
            partition: None,
        }
    }
}

impl DeadLetter {
    /// Reads a dead letter from a record of a dead-letter topic; `None` for records that
    /// are not letters (resolution markers) or lack the letter headers.
    pub fn from_record(record: &ConsumedRecord) -> Option<Self> {
        use headers::*;
        let get = |k| header_str(&record.headers, k);
        let kind = match get(KIND)? {
            "failed" => DeadLetterKind::Failed,
            "parked" => DeadLetterKind::Parked,
            _ => return None,
        };
        let time = |k| get(k).and_then(|v| rfc3339::parse(v).ok());
        Some(Self {
            position: RecordPosition {
                partition: record.partition,
                offset: record.offset,
            },
            kind,
            event_id: get(EVENT_ID)?.to_owned(),
            failure: Failure {
                reason: get(REASON).unwrap_or_default().to_owned(),
                error_chain: get(ERROR_CHAIN)
                    .and_then(|c| serde_json::from_str(c).ok())
                    .unwrap_or_default(),
                attempts: get(ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(0),
                first_failure: time(FIRST_FAILURE).unwrap_or(SystemTime::UNIX_EPOCH),
                last_failure: time(LAST_FAILURE).unwrap_or(SystemTime::UNIX_EPOCH),
            },
            blocked_by: get(BLOCKED_BY).map(str::to_owned),
            group: get(GROUP)?.to_owned(),
            policy: match get(POLICY) {
                Some("sequenced") => DeadLetterPolicy::Sequenced,
                _ => DeadLetterPolicy::Skip,
            },
            original_topic: get(ORIGINAL_TOPIC)?.to_owned(),
            original_partition: get(ORIGINAL_PARTITION)?.parse().ok()?,
            original_offset: get(ORIGINAL_OFFSET)?.parse().ok()?,
            traceparent: get(TRACEPARENT).map(str::to_owned),
            key: record.key.clone(),
            value: record.value.clone(),
            headers: original_headers(&record.headers),
        })
    }

    /// The identity resolution markers refer to: `<partition>:<offset>` in the DLQ topic.
    pub fn letter_id(&self) -> String {
        format!("{}:{}", self.position.partition, self.position.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dlq_topic_names_are_valid_topics() {
        assert_eq!(dlq_topic("orders", "billing"), "orders.billing.dlq");
        let odd = dlq_topic("orders", "team a/billing");
        assert_eq!(odd, "orders.team_a_billing.dlq");
        crate::transport::validate_topic_name(&odd).unwrap();
    }

    #[test]
    fn a_letter_round_trips_through_its_record() {
        let record = ConsumedRecord {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            timestamp: 1_000,
            key: Some("k".into()),
            value: Some("v".into()),
            headers: vec![
                Header::new("ce_id", "e-1"),
                Header::new("herald_replay_of", "x"),
            ],
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let failure = Failure {
            reason: "retries exhausted: boom".into(),
            error_chain: vec!["boom".into(), "io".into()],
            attempts: 3,
            first_failure: t0,
            last_failure: t0 + Duration::from_millis(1500),
        };
        let out = LetterParts {
            record: &record,
            group: "billing",
            policy: DeadLetterPolicy::Sequenced,
            kind: DeadLetterKind::Failed,
            event_id: "e-1",
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            blocked_by: None,
            failure: &failure,
        }
        .to_record();
        assert!(out.headers.iter().all(|h| h.key != "herald_replay_of"));
        let stored = ConsumedRecord {
            topic: "orders.billing.dlq".into(),
            partition: 0,
            offset: 5,
            timestamp: 1_000,
            key: out.key,
            value: out.value,
            headers: out.headers,
        };
        let letter = DeadLetter::from_record(&stored).unwrap();
        assert_eq!(letter.failure, failure);
        assert_eq!(letter.kind, DeadLetterKind::Failed);
        assert_eq!(letter.policy, DeadLetterPolicy::Sequenced);
        assert_eq!(
            (
                letter.original_topic.as_str(),
                letter.original_partition,
                letter.original_offset
            ),
            ("orders", 2, 41)
        );
        assert_eq!(letter.headers, vec![Header::new("ce_id", "e-1")]);
        assert_eq!(letter.letter_id(), "0:5");
        assert!(letter.traceparent.is_some());
    }
}
