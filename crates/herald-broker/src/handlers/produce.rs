//! Produce v3–v9: one record batch per partition, stored verbatim; acks 0, 1 and -1.
//!
//! A produce is handled in two halves so that a connection can pipeline them (see
//! `server::serve_connection`): [`start`] writes every partition's batch, in request
//! order, and returns a [`ProduceInFlight`]; its [`finish`](ProduceInFlight::finish) waits
//! for durability as acks says and builds the response. The connection starts the next
//! request while earlier ones wait for their fsync, so one producer's in-flight requests
//! share a group commit.
//!
//! The batches are not copied: the request frame is decoded, the records' positions in the
//! frame are noted, the decoded request is dropped, and the frame's buffer (now unique
//! again) is split into one mutable piece per partition, in which herald-log rewrites the
//! base offset before writing it.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::{
    ResponseError,
    messages::{
        ProduceRequest, ProduceResponse, TopicName,
        produce_response::{PartitionProduceResponse, TopicProduceResponse},
    },
    protocol::StrBytes,
};

use herald_security::Operation;

use super::Ctx;
use crate::{
    broker::{Acks, PendingProduce},
    error::ProduceError,
};

fn partition_error(
    version: i16,
    index: i32,
    code: i16,
    message: Option<String>,
) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default();
    p.index = index;
    p.error_code = code;
    p.base_offset = -1;
    p.log_append_time_ms = -1;
    if version >= 5 {
        p.log_start_offset = -1;
    }
    if version >= 8 {
        p.error_message = message.map(StrBytes::from_string);
    }
    p
}

/// One partition's part of a request, with its records detached from the request.
struct PartitionData {
    index: i32,
    records: BytesMut,
}

/// Where a partition's records are: `(start, len)` in the request frame, or a separate
/// buffer (never for requests our decoder produced, handled anyway).
type Place = Result<(usize, usize), Bytes>;

/// Per partition of a topic: the append started, or `None` when nothing was written
/// because acks is invalid.
type Started = Vec<(i32, Option<Result<PendingProduce, ProduceError>>)>;

/// Takes the records of every partition out of `req` without copying them: `frame` is the
/// whole request frame that `req` was decoded from (it and `req` must be its only
/// references for the zero-copy path; otherwise the records are copied, which is correct,
/// only slower).
fn detach_records(
    req: ProduceRequest,
    frame: Bytes,
) -> (i16, Vec<(TopicName, Vec<PartitionData>)>) {
    let base = frame.as_ptr() as usize;
    let end = base + frame.len();
    // (topic, partition index, where its records sit in the frame or an owned copy)
    let mut layout: Vec<(TopicName, Vec<(i32, Place)>)> = Vec::with_capacity(req.topic_data.len());
    let acks = req.acks;
    for topic in req.topic_data {
        // The topic name is copied (a few bytes) so that it no longer shares the frame.
        let name = TopicName(StrBytes::from_string(topic.name.0.to_string()));
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let records = data.records.unwrap_or_default();
            let at = records.as_ptr() as usize;
            let place = if !records.is_empty() && at >= base && at + records.len() <= end {
                Ok((at - base, records.len()))
            } else {
                Err(records)
            };
            parts.push((data.index, place));
        }
        layout.push((name, parts));
    }
    // The decoded request (and with it every slice of the frame) is gone, so the frame is
    // unique again. The decoder reads partitions front to back, so their places ascend;
    // anything else (or a frame still shared) takes the copying path.
    let ascending = layout
        .iter()
        .flat_map(|(_, parts)| parts.iter())
        .filter_map(|(_, place)| place.as_ref().ok())
        .try_fold(0usize, |cursor, &(start, len)| {
            (start >= cursor).then_some(start + len)
        })
        .is_some();
    let mut whole = if ascending {
        frame.try_into_mut()
    } else {
        Err(frame)
    };
    let mut cursor = 0usize;
    let topics = layout
        .into_iter()
        .map(|(name, parts)| {
            let parts = parts
                .into_iter()
                .map(|(index, place)| {
                    let records = match (place, &mut whole) {
                        (Ok((start, len)), Ok(rest)) => {
                            rest.advance(start - cursor);
                            cursor = start + len;
                            rest.split_to(len)
                        }
                        (Ok((start, len)), Err(frame)) => {
                            BytesMut::from(&frame[start..start + len])
                        }
                        (Err(owned), _) => BytesMut::from(&owned[..]),
                    };
                    PartitionData { index, records }
                })
                .collect();
            (name, parts)
        })
        .collect();
    (acks, topics)
}

/// A produce request whose batches are written, waiting to be answered.
pub(crate) struct ProduceInFlight {
    version: i16,
    raw_acks: i16,
    acks: Option<Acks>,
    topics: Vec<(TopicName, Started)>,
}

/// Writes every partition's batch of `req`, in request order, without waiting for
/// durability. `frame` is the request frame `req` was decoded from.
pub(crate) async fn start(ctx: Ctx<'_>, req: ProduceRequest, frame: Bytes) -> ProduceInFlight {
    let (broker, version) = (ctx.broker, ctx.version);
    let (raw_acks, topics) = detach_records(req, frame);
    let acks = Acks::from_kafka(raw_acks);
    let mut written = Vec::with_capacity(topics.len());
    for (name, parts) in topics {
        let mut results = Vec::with_capacity(parts.len());
        // Kafka checks WRITE before the topic's existence, so a denied client learns
        // nothing about which topics exist.
        let allowed = ctx.may_on_topic(Operation::Write, &name);
        for data in parts {
            let started = match acks {
                // Invalid acks: nothing is written; finish() answers INVALID_REQUIRED_ACKS.
                None => None,
                Some(_) if !allowed => Some(Err(ProduceError::TopicAuthorizationFailed {
                    topic: name.to_string(),
                    principal: ctx.principal.to_string(),
                })),
                Some(acks) => Some(
                    broker
                        .start_produce(&name, data.index, data.records, acks)
                        .await,
                ),
            };
            results.push((data.index, started));
        }
        written.push((name, results));
    }
    ProduceInFlight {
        version,
        raw_acks,
        acks,
        topics: written,
    }
}

impl ProduceInFlight {
    /// Waits as acks says and builds the response. `None` for acks=0: the client expects
    /// no response.
    pub(crate) async fn finish(self) -> Option<ProduceResponse> {
        let version = self.version;
        let mut resp = ProduceResponse::default();
        for (name, parts) in self.topics {
            let mut t = TopicProduceResponse::default();
            for (index, started) in parts {
                let result = match (self.acks, started) {
                    (Some(acks), Some(Ok(p))) => p.finish(acks).await,
                    (_, Some(Err(e))) => Err(e),
                    (None, _) | (_, None) => {
                        t.partition_responses.push(partition_error(
                            version,
                            index,
                            ResponseError::InvalidRequiredAcks.code(),
                            Some(format!("acks must be 0, 1 or -1, got {}", self.raw_acks)),
                        ));
                        continue;
                    }
                };
                let p = match result {
                    Ok(produced) => {
                        let mut p = PartitionProduceResponse::default();
                        p.index = index;
                        p.base_offset = produced.base_offset;
                        p.log_append_time_ms = produced.log_append_time.unwrap_or(-1);
                        if version >= 5 {
                            p.log_start_offset = produced.log_start_offset;
                        }
                        p
                    }
                    Err(e) => {
                        log_refusal(&name, index, &e);
                        partition_error(version, index, e.kafka_code(version), Some(e.to_string()))
                    }
                };
                t.partition_responses.push(p);
            }
            t.name = name;
            resp.responses.push(t);
        }
        if self.acks == Some(Acks::None) {
            return None;
        }
        Some(resp)
    }
}

fn log_refusal(topic: &TopicName, index: i32, e: &ProduceError) {
    match e {
        ProduceError::UnknownTopicOrPartition { .. } => {
            tracing::debug!(topic = %topic.0, partition = index, error = %e, "produce refused")
        }
        ProduceError::Storage(_) => {
            tracing::error!(topic = %topic.0, partition = index, error = %e, "produce failed")
        }
        _ => {
            tracing::info!(topic = %topic.0, partition = index, error = %e, "produce refused")
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::{
        messages::produce_request::{PartitionProduceData, TopicProduceData},
        protocol::{Decodable, Encodable},
    };

    use super::*;

    /// A request for two topics, the second with two partitions, encoded and decoded the
    /// way the connection does it.
    fn decoded() -> (ProduceRequest, Bytes) {
        let mut req = ProduceRequest::default();
        req.acks = -1;
        for (topic, parts) in [("a", 1), ("b", 2)] {
            let mut t = TopicProduceData::default();
            t.name = TopicName(StrBytes::from_static_str(topic));
            for index in 0..parts {
                let mut p = PartitionProduceData::default();
                p.index = index;
                p.records = Some(Bytes::from(format!("{topic}{index} records").into_bytes()));
                t.partition_data.push(p);
            }
            req.topic_data.push(t);
        }
        let mut buf = BytesMut::new();
        req.encode(&mut buf, 9).unwrap();
        let frame = buf.freeze();
        let decoded = ProduceRequest::decode(&mut frame.clone(), 9).unwrap();
        (decoded, frame)
    }

    #[test]
    fn records_are_split_out_of_the_frame_without_copying() {
        let (req, frame) = decoded();
        let range = frame.as_ptr_range();
        let (acks, topics) = detach_records(req, frame);
        assert_eq!(acks, -1);
        let seen: Vec<(String, i32, Vec<u8>, bool)> = topics
            .iter()
            .flat_map(|(name, parts)| {
                parts.iter().map(|p| {
                    let inside = range.contains(&p.records.as_ptr());
                    (name.0.to_string(), p.index, p.records.to_vec(), inside)
                })
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("a".into(), 0, b"a0 records".to_vec(), true),
                ("b".into(), 0, b"b0 records".to_vec(), true),
                ("b".into(), 1, b"b1 records".to_vec(), true),
            ]
        );
    }

    #[test]
    fn a_frame_still_shared_is_copied_correctly() {
        let (req, frame) = decoded();
        let keep = frame.clone();
        let (_, topics) = detach_records(req, frame);
        let values: Vec<(Vec<u8>, bool)> = topics
            .iter()
            .flat_map(|(_, parts)| parts.iter())
            .map(|p| {
                let inside = keep.as_ptr_range().contains(&p.records.as_ptr());
                (p.records.to_vec(), inside)
            })
            .collect();
        assert_eq!(
            values,
            vec![
                (b"a0 records".to_vec(), false),
                (b"b0 records".to_vec(), false),
                (b"b1 records".to_vec(), false)
            ]
        );
    }
}
