//! `/api/v1/groups`: consumer groups with their members, assignments, committed offsets
//! and lag; and the lag computation that `/metrics` shares.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{Extension, extract::State};
use bytes::Bytes;
use herald_api::groups::{
    AssignedTopic, GroupDetail, GroupList, GroupListEntry, Member, OffsetLag,
};
use herald_format::{batch::BatchHeader, records::decode_batch};
use herald_security::{Caller, Operation, ResourceType};
use kafka_protocol::{messages::ConsumerProtocolAssignment, protocol::Decodable};

use super::{
    AppState,
    error::{ApiError, Path, codes},
};
use crate::{broker::Broker, group::CommittedOffset};

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Timestamp of the first record at or after `offset` in `bytes` (whole batches).
fn first_timestamp_at_or_after(mut bytes: &[u8], offset: i64) -> Option<i64> {
    while let Ok(header) = BatchHeader::parse(bytes) {
        let len = header.total_len();
        if len == 0 || len > bytes.len() {
            return None;
        }
        if header.last_offset() >= offset {
            let batch = decode_batch(&bytes[..len]).ok()?;
            if let Some(r) = batch.records.iter().find(|r| r.offset >= offset) {
                return Some(r.timestamp);
            }
        }
        bytes = &bytes[len..];
    }
    None
}

/// Computes the lag of one committed offset (blocking: may read one batch).
pub(crate) fn lag_of(broker: &Broker, c: &CommittedOffset, now_ms: i64) -> OffsetLag {
    let mut lag = OffsetLag {
        topic: c.topic.clone(),
        partition: c.partition,
        committed_offset: c.offset,
        high_watermark: None,
        lag_messages: None,
        lag_seconds: None,
        metadata: c.metadata.clone(),
        commit_timestamp_ms: c.commit_timestamp_ms,
    };
    let Some(partition) = broker.topics().partition(&c.topic, c.partition) else {
        return lag;
    };
    let Ok((log_start, hw)) = partition.offsets() else {
        return lag;
    };
    lag.high_watermark = Some(hw);
    lag.lag_messages = Some((hw - c.offset).max(0));
    let first = c.offset.max(log_start);
    let seconds = if first >= hw {
        0.0
    } else {
        match partition.read(first, 1) {
            Ok(read) => first_timestamp_at_or_after(&read.bytes, first)
                .map_or(0.0, |ts| (now_ms - ts).max(0) as f64 / 1000.0),
            Err(e) => {
                tracing::debug!(topic = %c.topic, partition = c.partition, error = %e,
                    "cannot read the first unconsumed record for lag");
                return lag;
            }
        }
    };
    lag.lag_seconds = Some(seconds);
    lag
}

/// Lag of every committed offset, optionally of one group only (blocking).
pub(crate) fn all_lags(broker: &Broker, group: Option<&str>) -> Vec<(String, OffsetLag)> {
    let now = now_ms();
    let mut offsets = broker.groups().committed_offsets();
    offsets.retain(|c| group.is_none_or(|g| g == c.group));
    offsets
        .sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    offsets
        .iter()
        .map(|c| (c.group.clone(), lag_of(broker, c, now)))
        .collect()
}

/// Decodes a consumer-protocol assignment (version, then the v0–v3 body).
fn decode_assignment(bytes: &[u8]) -> Option<Vec<AssignedTopic>> {
    if bytes.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    let mut body = Bytes::copy_from_slice(&bytes[2..]);
    let decoded = ConsumerProtocolAssignment::decode(&mut body, version.clamp(0, 3)).ok()?;
    Some(
        decoded
            .assigned_partitions
            .into_iter()
            .map(|tp| AssignedTopic {
                topic: tp.topic.0.to_string(),
                partitions: tp.partitions,
            })
            .collect(),
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))
}

/// `GET /api/v1/groups`
pub(crate) async fn list(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<GroupList>, ApiError> {
    let broker = shared.broker()?;
    let all = super::authz::sees_all_groups(&caller);
    let groups = blocking(move || {
        let lags = all_lags(&broker, None);
        broker
            .groups()
            .groups()
            .into_iter()
            // Every group with DESCRIBE on the cluster, else those it may describe.
            .filter(|g| all || caller.may(Operation::Describe, ResourceType::Group, &g.group_id))
            .map(|g| GroupListEntry {
                lag_messages: lags
                    .iter()
                    .filter(|(id, _)| *id == g.group_id)
                    .filter_map(|(_, l)| l.lag_messages)
                    .sum(),
                state: g.state.as_str().to_string(),
                members: g.members.len(),
                protocol_type: g.protocol_type,
                group_id: g.group_id,
            })
            .collect()
    })
    .await?;
    Ok(axum::Json(GroupList { groups }))
}

/// `GET /api/v1/groups/{id}`
pub(crate) async fn describe(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<GroupDetail>, ApiError> {
    let broker = shared.broker()?;
    let detail = blocking(move || {
        let group = broker
            .groups()
            .groups()
            .into_iter()
            .find(|g| g.group_id == id)?;
        let offsets: Vec<OffsetLag> = all_lags(&broker, Some(&id))
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        let consumer = group.protocol_type == "consumer";
        Some(GroupDetail {
            lag_messages: offsets.iter().filter_map(|l| l.lag_messages).sum(),
            offsets,
            state: group.state.as_str().to_string(),
            protocol: group.protocol_name,
            generation: group.generation,
            leader: group.leader,
            members: group
                .members
                .into_iter()
                .map(|m| Member {
                    assignment: if consumer {
                        decode_assignment(&m.assignment)
                    } else {
                        None
                    },
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                })
                .collect(),
            protocol_type: group.protocol_type,
            group_id: group.group_id,
        })
    })
    .await?;
    detail.map(axum::Json).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            codes::UNKNOWN_GROUP,
            "unknown consumer group",
        )
    })
}

#[cfg(test)]
mod tests {
    use herald_format::records::{BatchBuilder, Compression};
    use kafka_protocol::{
        messages::{TopicName, consumer_protocol_assignment::TopicPartition},
        protocol::{Encodable, StrBytes},
    };

    use super::*;

    #[test]
    fn first_unconsumed_timestamp_skips_earlier_records_of_the_batch() {
        let mut a = BatchBuilder::new(Compression::None)
            .push(1_000, None, Some(b"a"), &[])
            .push(2_000, None, Some(b"b"), &[])
            .build()
            .unwrap();
        let mut b = BatchBuilder::new(Compression::Zstd)
            .push(3_000, None, Some(b"c"), &[])
            .build()
            .unwrap();
        herald_format::batch::set_base_offset(&mut a, 10);
        herald_format::batch::set_base_offset(&mut b, 12);
        a.extend_from_slice(&b);
        assert_eq!(first_timestamp_at_or_after(&a, 10), Some(1_000));
        assert_eq!(first_timestamp_at_or_after(&a, 11), Some(2_000));
        assert_eq!(first_timestamp_at_or_after(&a, 12), Some(3_000));
        assert_eq!(first_timestamp_at_or_after(&a, 13), None);
    }

    #[test]
    fn consumer_assignments_decode() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![0, 2]),
        ]);
        let mut bytes = bytes::BytesMut::new();
        bytes.extend_from_slice(&1i16.to_be_bytes());
        assignment.encode(&mut bytes, 1).unwrap();
        let decoded = decode_assignment(&bytes).unwrap();
        assert_eq!(decoded[0].topic, "orders");
        assert_eq!(decoded[0].partitions, vec![0, 2]);
        assert!(decode_assignment(&[]).is_none());
    }
}
