//! Listing, replaying and discarding dead letters.

use std::{
    collections::{BTreeMap, HashSet},
    time::SystemTime,
};

use thiserror::Error;

use super::{DeadLetter, DeadLetterKind, DeadLetterPolicy, dlq_topic, headers};
use crate::transport::{
    ConsumedRecord, Header, OutgoingRecord, Publisher, TopicPartition, TopicReader, TransportError,
    header_str,
};

/// Records read per call while scanning a dead-letter topic.
const SCAN_CHUNK: usize = 512;

/// A dead-letter tool failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DlqError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Which dead letters an operation applies to. All conditions must hold; the default
/// matches every unresolved letter.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// Only this event id.
    pub event_id: Option<String>,
    /// Only letters whose reason contains this text.
    pub reason_contains: Option<String>,
    /// Only letters of this key.
    pub key: Option<Vec<u8>>,
    /// Only letters whose last failure is at or after this time.
    pub since: Option<SystemTime>,
    /// Only letters whose last failure is before this time.
    pub until: Option<SystemTime>,
    /// Only letters of this kind.
    pub kind: Option<DeadLetterKind>,
}

impl DeadLetterFilter {
    /// Every unresolved letter.
    pub fn all() -> Self {
        Self::default()
    }

    /// The letters of one event.
    pub fn event(id: impl Into<String>) -> Self {
        Self {
            event_id: Some(id.into()),
            ..Self::default()
        }
    }

    /// Also requires the reason to contain `text`.
    pub fn reason_contains(mut self, text: impl Into<String>) -> Self {
        self.reason_contains = Some(text.into());
        self
    }

    /// Also requires the key.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Also requires the last failure to be in `[since, until)`.
    pub fn between(mut self, since: Option<SystemTime>, until: Option<SystemTime>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// Whether `letter` matches.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        self.event_id
            .as_ref()
            .is_none_or(|id| *id == letter.event_id)
            && self
                .reason_contains
                .as_ref()
                .is_none_or(|r| letter.failure.reason.contains(r.as_str()))
            && self
                .key
                .as_ref()
                .is_none_or(|k| letter.key.as_deref() == Some(k.as_slice()))
            && self.since.is_none_or(|t| letter.failure.last_failure >= t)
            && self.until.is_none_or(|t| letter.failure.last_failure < t)
            && self.kind.is_none_or(|k| letter.kind == k)
    }
}

/// Who handles replayed events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayTarget {
    /// Only the group that dead-lettered them; other groups skip the replayed records.
    #[default]
    OwnGroup,
    /// Every group on the original topic (groups that handled the event already skip it
    /// through their inbox, since the id is kept).
    AllGroups,
}

/// What a replay or discard did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DlqCounts {
    /// Letters that matched.
    pub matched: usize,
    /// Letters replayed.
    pub replayed: usize,
    /// Letters discarded.
    pub discarded: usize,
}

/// The dead letters of one group for one source topic.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue<T> {
    transport: T,
    topic: String,
    /// Only letters of this group: group names that differ only in characters a topic
    /// name cannot hold share a dead-letter topic.
    group: Option<String>,
}

// Only reading and appending: a transport that cannot consume in a group (the broker's
// own, in `herald serve`) serves it too.
impl<T: Publisher + TopicReader> DeadLetterQueue<T> {
    /// The dead-letter topic of `group` for events from `topic`.
    pub fn new(transport: T, topic: &str, group: &str) -> Self {
        Self {
            group: Some(group.to_owned()),
            ..Self::for_dlq_topic(transport, dlq_topic(topic, group))
        }
    }

    /// A dead-letter topic by name, with the letters of every group in it.
    pub fn for_dlq_topic(transport: T, dlq_topic: impl Into<String>) -> Self {
        Self {
            transport,
            topic: dlq_topic.into(),
            group: None,
        }
    }

    /// The dead-letter topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Every record of the dead-letter topic.
    async fn scan(&self) -> Result<Vec<ConsumedRecord>, DlqError> {
        let Some(partitions) = self.transport.partitions(&self.topic).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for p in 0..partitions {
            let tp = TopicPartition::new(self.topic.clone(), p);
            let end = self.transport.end_offset(&tp).await?;
            let mut next = self.transport.start_offset(&tp).await?;
            while next < end {
                let chunk = self.transport.read(&tp, next, SCAN_CHUNK).await?;
                let Some(last) = chunk.last() else { break };
                next = last.offset + 1;
                out.extend(chunk);
            }
        }
        Ok(out)
    }

    /// Unresolved letters matching `filter`, in original order (topic, partition, offset).
    pub async fn list(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, DlqError> {
        let records = self.scan().await?;
        let resolved: HashSet<String> = records
            .iter()
            .filter(|r| header_str(&r.headers, headers::RESOLUTION).is_some())
            .filter_map(|r| header_str(&r.headers, headers::RESOLVES).map(str::to_owned))
            .collect();
        let mut letters: Vec<DeadLetter> = records
            .iter()
            .filter_map(DeadLetter::from_record)
            .filter(|l| self.group.as_ref().is_none_or(|g| *g == l.group))
            .filter(|l| !resolved.contains(&l.letter_id()) && filter.matches(l))
            .collect();
        letters.sort_by(|a, b| {
            (
                &a.original_topic,
                a.original_partition,
                a.original_offset,
                a.position.offset,
            )
                .cmp(&(
                    &b.original_topic,
                    b.original_partition,
                    b.original_offset,
                    b.position.offset,
                ))
        });
        Ok(letters)
    }

    /// Publishes the matching letters back to their original topic and partition, in
    /// original order and with their ids, then marks them resolved.
    pub async fn replay(
        &self,
        filter: &DeadLetterFilter,
        target: ReplayTarget,
    ) -> Result<DlqCounts, DlqError> {
        let letters = self.list(filter).await?;
        let mut by_topic: BTreeMap<&str, Vec<OutgoingRecord>> = BTreeMap::new();
        for l in &letters {
            let mut h: Vec<Header> = l.headers.clone();
            h.push(Header::new(
                headers::REPLAY_OF,
                format!("{}:{}", self.topic, l.letter_id()),
            ));
            h.push(Header::new(headers::REPLAY_ID, l.event_id.as_str()));
            if target == ReplayTarget::OwnGroup {
                h.push(Header::new(headers::REPLAY_GROUP, l.group.as_str()));
            }
            by_topic
                .entry(l.original_topic.as_str())
                .or_default()
                .push(OutgoingRecord {
                    key: l.key.clone(),
                    value: l.value.clone(),
                    headers: h,
                    timestamp: None,
                    partition: Some(l.original_partition),
                });
        }
        for (topic, records) in by_topic {
            self.transport.publish(topic, records).await?;
        }
        self.resolve(&letters, "replayed").await?;
        Ok(DlqCounts {
            matched: letters.len(),
            replayed: letters.len(),
            discarded: 0,
        })
    }

    /// Marks the matching letters resolved without replaying them. For letters of a
    /// sequenced group this also releases their key: an `unblock` control record goes to
    /// the original partition, in order with the key's events.
    pub async fn discard(&self, filter: &DeadLetterFilter) -> Result<DlqCounts, DlqError> {
        let letters = self.list(filter).await?;
        let mut controls: BTreeMap<&str, Vec<OutgoingRecord>> = BTreeMap::new();
        for l in letters
            .iter()
            .filter(|l| l.policy == DeadLetterPolicy::Sequenced && l.key.is_some())
        {
            controls
                .entry(l.original_topic.as_str())
                .or_default()
                .push(OutgoingRecord {
                    key: l.key.clone(),
                    value: None,
                    headers: vec![
                        Header::new(headers::CONTROL, "unblock"),
                        Header::new(headers::CONTROL_GROUP, l.group.as_str()),
                        Header::new(headers::CONTROL_EVENT_ID, l.event_id.as_str()),
                    ],
                    timestamp: None,
                    partition: Some(l.original_partition),
                });
        }
        for (topic, records) in controls {
            self.transport.publish(topic, records).await?;
        }
        self.resolve(&letters, "discarded").await?;
        Ok(DlqCounts {
            matched: letters.len(),
            replayed: 0,
            discarded: letters.len(),
        })
    }

    async fn resolve(&self, letters: &[DeadLetter], how: &str) -> Result<(), DlqError> {
        if letters.is_empty() {
            return Ok(());
        }
        let markers = letters
            .iter()
            .map(|l| OutgoingRecord {
                key: l.key.clone(),
                value: None,
                headers: vec![
                    Header::new(headers::RESOLUTION, how),
                    Header::new(headers::RESOLVES, l.letter_id()),
                ],
                timestamp: None,
                partition: Some(l.position.partition),
            })
            .collect();
        self.transport.publish(&self.topic, markers).await?;
        Ok(())
    }
}
