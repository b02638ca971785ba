//! REST produce and consume: JSON records in, decoded records out.
//!
//! Keys, values and header values travel as UTF-8 text (`key`, `value`) or as base64
//! (`key_base64`, `value_base64`) when they are arbitrary bytes; a JSON `value` that is
//! not a string is stored as its compact JSON text. On the way out each is given as text
//! when it is valid UTF-8 and as base64 otherwise.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{extract::State, http::StatusCode};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use herald_api::records::{
    ConsumeQuery, ConsumeResponse, HeaderOut, HeadersIn, ProduceBody, ProduceResponse, RecordIn,
    RecordOffset, RecordOut,
};
use herald_format::records::{BatchBuilder, Compression, Header, decode_batches};
use serde_json::Value;
use tokio::time::Instant;

use super::{
    AppState, MAX_WAIT_MS,
    error::{ApiError, JsonBody, Path, Query, codes},
};
use crate::{broker::Acks, telemetry::RecordsFetched, topic_config};
use herald_format::partitioner::partition_for_key;

/// Default and largest `max_bytes` of a consume request.
const DEFAULT_MAX_BYTES: usize = 1 << 20;
const MAX_MAX_BYTES: usize = 64 << 20;

fn bytes_of(
    what: &str,
    text: Option<String>,
    base64: Option<String>,
) -> Result<Option<Vec<u8>>, ApiError> {
    match (text, base64) {
        (Some(_), Some(_)) => Err(ApiError::bad_body(format!(
            "give either {what} or {what}_base64, not both"
        ))),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(b)) => BASE64
            .decode(b.as_bytes())
            .map(Some)
            .map_err(|e| ApiError::bad_body(format!("{what}_base64 is not valid base64: {e}"))),
        (None, None) => Ok(None),
    }
}

/// A record after decoding its JSON form.
struct Outgoing {
    partition: Option<i32>,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<Header>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn decode_record(r: RecordIn, index: usize, now: i64) -> Result<Outgoing, ApiError> {
    let at = |e: ApiError| {
        ApiError::new(
            e.status(),
            e.body().error_code,
            format!("record {index}: {}", e.body().message),
        )
    };
    let key = bytes_of("key", r.key, r.key_base64).map_err(at)?;
    let value_text = match r.value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    let value = bytes_of("value", value_text, r.value_base64).map_err(at)?;
    let headers = match r.headers {
        HeadersIn::Map(map) => map
            .into_iter()
            .map(|(k, v)| Header {
                key: k,
                value: v.map(String::into_bytes),
            })
            .collect(),
        HeadersIn::List(list) => list
            .into_iter()
            .map(|h| {
                Ok(Header {
                    value: bytes_of("header value", h.value, h.value_base64).map_err(at)?,
                    key: h.key,
                })
            })
            .collect::<Result<_, ApiError>>()?,
    };
    Ok(Outgoing {
        partition: r.partition,
        timestamp: r.timestamp.unwrap_or(now),
        key,
        value,
        headers,
    })
}

/// `POST /api/v1/topics/{name}/records`: appends the records, one batch per partition,
/// and answers once they are durable (acks=all). Everything is checked before anything
/// is written.
pub(crate) async fn produce(
    State(shared): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<ProduceBody>,
) -> Result<axum::Json<ProduceResponse>, ApiError> {
    let broker = shared.broker()?;
    let topic = broker
        .topics()
        .get(&name)
        .ok_or_else(|| ApiError::unknown_topic(&name))?;
    if body.records.is_empty() {
        return Err(ApiError::bad_body(
            "\"records\" is empty: send at least one record",
        ));
    }
    let count = topic.partition_count();
    let now = now_ms();
    // Partition of each record, in request order, and the records of each partition.
    let mut placement = Vec::with_capacity(body.records.len());
    let mut batches: BTreeMap<i32, BatchBuilder> = BTreeMap::new();
    for (i, r) in body.records.into_iter().enumerate() {
        let r = decode_record(r, i, now)?;
        let partition = match (r.partition, &r.key) {
            (Some(p), _) if (0..count).contains(&p) => p,
            (Some(p), _) => return Err(ApiError::unknown_partition(&name, p, count)),
            (None, Some(key)) => partition_for_key(key, count.max(1) as u32) as i32,
            (None, None) => shared.next_partition(&name, count),
        };
        let builder = batches
            .entry(partition)
            .or_insert_with(|| BatchBuilder::new(Compression::None));
        placement.push((partition, builder.len() as i64));
        builder.push(
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        );
    }
    let max = topic_config::effective(broker.topics().defaults(), &topic.configs())
        .map_err(ApiError::internal)?
        .max_batch_bytes as usize;
    let mut built = Vec::with_capacity(batches.len());
    for (partition, builder) in batches {
        let batch = builder.build().map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_RECORD,
                e.to_string(),
            )
        })?;
        if batch.len() > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::INVALID_RECORD,
                format!(
                    "the records for partition {partition} make a batch of {} bytes, above \
                     the topic's max.message.bytes ({max}): send fewer or smaller records",
                    batch.len()
                ),
            ));
        }
        built.push((partition, batch));
    }
    let mut base_offsets = BTreeMap::new();
    let mut written = Vec::new();
    for (partition, batch) in built {
        match broker.produce(&name, partition, batch, Acks::All).await {
            Ok(p) => {
                base_offsets.insert(partition, p.base_offset);
                written.push(partition);
            }
            Err(e) if written.is_empty() => return Err(e.into()),
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "{e}; the records for partitions {written:?} were written"
                )));
            }
        }
    }
    let offsets = placement
        .into_iter()
        .map(|(partition, delta)| RecordOffset {
            partition,
            offset: base_offsets[&partition] + delta,
        })
        .collect();
    Ok(axum::Json(ProduceResponse {
        topic: name,
        offsets,
    }))
}

/// Decodes the records at or after `offset` from whole batches; returns them and the
/// offset after the last batch.
fn decode_records(bytes: &[u8], offset: i64) -> Result<(Vec<RecordOut>, i64), ApiError> {
    let mut out = Vec::new();
    let mut next = offset;
    for batch in decode_batches(bytes) {
        let batch = batch.map_err(|e| ApiError::internal(format!("stored batch: {e}")))?;
        next = next.max(batch.header.last_offset() + 1);
        out.extend(
            batch
                .records
                .into_iter()
                .filter(|r| r.offset >= offset)
                .map(|r| RecordOut {
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|h| HeaderOut {
                            key: h.key,
                            value: h.value,
                        })
                        .collect(),
                    value: r.value,
                }),
        );
    }
    Ok((out, next))
}

/// `GET /api/v1/topics/{name}/partitions/{partition}/records`: whole batches from the
/// offset, decoded; waits up to `wait_ms` for records when there are none yet.
pub(crate) async fn consume(
    State(shared): State<AppState>,
    Path((name, partition)): Path<(String, i32)>,
    Query(q): Query<ConsumeQuery>,
) -> Result<axum::Json<ConsumeResponse>, ApiError> {
    let broker = shared.broker()?;
    let topic = broker
        .topics()
        .get(&name)
        .ok_or_else(|| ApiError::unknown_topic(&name))?;
    let p = topic
        .partition(partition)
        .ok_or_else(|| ApiError::unknown_partition(&name, partition, topic.partition_count()))?;
    let max_bytes = q.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 || max_bytes > MAX_MAX_BYTES {
        return Err(ApiError::bad_parameter(format!(
            "max_bytes must be between 1 and {MAX_MAX_BYTES}, got {max_bytes}"
        )));
    }
    let wait_ms = q.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        return Err(ApiError::bad_parameter(format!(
            "wait_ms must be at most {MAX_WAIT_MS}, got {wait_ms}"
        )));
    }
    let (log_start, hw) = p.offsets()?;
    let offset = match q.offset.as_deref() {
        None | Some("earliest") => log_start,
        Some("latest") => hw,
        Some(s) => s.parse::<i64>().map_err(|_| {
            ApiError::bad_parameter(format!(
                "offset must be a number, \"earliest\" or \"latest\", got {s:?}"
            ))
        })?,
    };
    if offset < log_start || offset > hw {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::OFFSET_OUT_OF_RANGE,
            format!(
                "offset {offset} is outside partition {name}-{partition}'s range \
                 [{log_start}, {hw}]: use offset=earliest or offset=latest"
            ),
        ));
    }
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let mut broker_stop = broker.core.shutdown.clone();
    let mut http_stop = shared.stop_signal();
    let notify = p.watermark_notify().clone();
    loop {
        // Register before reading so that an append between the two is not missed.
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let part = p.clone();
        let read = tokio::task::spawn_blocking(move || part.read(offset, max_bytes))
            .await
            .map_err(|e| ApiError::internal(format!("read task failed: {e}")))??;
        let (records, next_offset) = decode_records(&read.bytes, offset)?;
        let stopping = *broker_stop.borrow() || *http_stop.borrow();
        if !records.is_empty() || Instant::now() >= deadline || stopping {
            if !read.bytes.is_empty() {
                RecordsFetched {
                    topic: &name,
                    bytes: read.bytes.len() as u64,
                    records: crate::telemetry::count_records(&read.bytes),
                }
                .emit();
            }
            return Ok(axum::Json(ConsumeResponse {
                topic: name,
                partition,
                log_start_offset: read.log_start_offset as i64,
                high_watermark: read.high_watermark as i64,
                next_offset,
                records,
            }));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = crate::server::stopped(&mut broker_stop) => {}
            _ = http_stop.wait_for(|s| *s) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_text_and_base64_is_refused() {
        assert!(bytes_of("key", Some("a".into()), Some("YQ==".into())).is_err());
        assert!(bytes_of("key", None, Some("not base64!".into())).is_err());
        assert_eq!(
            bytes_of("key", None, Some("YQ==".into())).unwrap(),
            Some(b"a".to_vec())
        );
    }
}
