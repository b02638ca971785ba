//! Broker-side schema validation: a topic with `confluent.value.schema.validation=true`
//! (or `confluent.key.schema.validation=true`) accepts only records whose value (or key)
//! is in the Confluent wire format (magic byte 0, then a 4-byte big-endian schema id)
//! with an id registered under the topic's subject, `<topic>-value` (or `<topic>-key`,
//! Confluent's TopicNameStrategy).
//!
//! The broker knows nothing of schemas: it asks a [`SchemaIdCheck`] that the embedder
//! installs with [`BrokerConfig::with_schema_id_check`](crate::BrokerConfig::with_schema_id_check)
//! (`herald serve` installs the schema registry's). A batch with one bad record is
//! refused whole with `INVALID_RECORD`, naming the record and the reason; nothing of it is
//! written. A null value or key (a tombstone) carries no schema and passes.
//!
//! ```
//! use std::sync::Arc;
//! use herald_broker::{BrokerConfig, validation::{SchemaIdCheck, SchemaIdStatus}};
//!
//! #[derive(Debug)]
//! struct OnlySeven;
//! impl SchemaIdCheck for OnlySeven {
//!     fn check(&self, _subject: &str, id: u32) -> SchemaIdStatus {
//!         if id == 7 { SchemaIdStatus::Registered } else { SchemaIdStatus::NotInSubject }
//!     }
//! }
//! let config = BrokerConfig::new("/tmp/herald", "127.0.0.1:0".parse().unwrap())
//!     .with_schema_id_check(Arc::new(OnlySeven));
//! ```

use std::{fmt, sync::Arc};

use bytes::BytesMut;
use herald_format::{
    batch::{self, ValidatedBatches},
    records::{self, Compression, DecodedBatch, RecordError, decode_batch, decode_validated},
};

use crate::{
    error::ProduceError,
    partition::{AppendOutcome, Partition},
    topic_config,
    topics::TopicManager,
};

/// The Confluent wire format's first byte.
pub const MAGIC_BYTE: u8 = 0;
/// Magic byte plus the 4-byte schema id.
pub const WIRE_HEADER_LEN: usize = 5;

/// What a [`SchemaIdCheck`] says about one schema id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaIdStatus {
    /// The id is a live (not deleted) version of the subject.
    Registered,
    /// The id exists but is not a live version of the subject.
    NotInSubject,
    /// No schema has that id.
    UnknownId,
    /// The check itself failed (the registry is unavailable); the record is refused.
    Unavailable(String),
}

/// Answers whether a schema id is registered under a subject. Called for every record
/// of a validated topic, on a blocking thread: it must be quick (an in-memory lookup).
pub trait SchemaIdCheck: Send + Sync + fmt::Debug + 'static {
    /// Whether `id` is a live version of `subject`.
    fn check(&self, subject: &str, id: u32) -> SchemaIdStatus;
}

/// The installed check, if any; kept in [`BrokerConfig`](crate::BrokerConfig).
#[derive(Clone, Default)]
pub struct SchemaIdCheckSlot(pub(crate) Option<Arc<dyn SchemaIdCheck>>);

impl fmt::Debug for SchemaIdCheckSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(c) => write!(f, "SchemaIdCheckSlot({c:?})"),
            None => f.write_str("SchemaIdCheckSlot(none)"),
        }
    }
}

pub use crate::topic_config::Validation;

/// A produced batch after the topic's schema check, on its way to its partition.
#[derive(Debug)]
pub(crate) enum ProducedBatch {
    /// As received (the topic validates nothing): the append checks it in full.
    Unchecked(BytesMut),
    /// Checked in full (CRC included) by the schema check, which had to decode it: the
    /// append does not compute its CRC again.
    Validated(ValidatedBatches<BytesMut>),
}

impl ProducedBatch {
    /// Appends the batch to `partition` (see [`Partition::append`]).
    pub(crate) fn append_to(
        self,
        partition: &Partition,
        known_producer: impl Fn(i64) -> bool,
    ) -> Result<AppendOutcome, ProduceError> {
        match self {
            ProducedBatch::Unchecked(mut records) => partition.append(&mut records, known_producer),
            ProducedBatch::Validated(mut checked) => {
                partition.append_validated(&mut checked, known_producer)
            }
        }
    }
}

/// Checks every record of one produced batch (any compression) for a topic that asks
/// for validation, and hands the batch on. A topic that validates nothing passes it on
/// unchecked.
/// Replicas of every partition in sync: Herald is one broker with one replica.
const IN_SYNC_REPLICAS: i64 = 1;

pub(crate) async fn check_produce(
    slot: &SchemaIdCheckSlot,
    topics: &TopicManager,
    topic: &str,
    batch: BytesMut,
    acks_all: bool,
) -> Result<ProducedBatch, ProduceError> {
    let Some(t) = topics.get(topic) else {
        return Ok(ProducedBatch::Unchecked(batch));
    };
    // On every produce: read the overrides in place rather than cloning them.
    let (validation, target, bounds, min_insync) = {
        let overrides = t.configs.read().unwrap_or_else(|p| p.into_inner());
        (
            topic_config::schema_validation(&overrides),
            topic_config::compression(&overrides),
            topic_config::timestamp_bounds(&overrides, topics.defaults().log_append_time),
            topic_config::min_insync_replicas(&overrides),
        )
    };
    // As Kafka's leader does before it appends: one replica is in sync, here always.
    if acks_all && min_insync > IN_SYNC_REPLICAS {
        return Err(ProduceError::NotEnoughReplicas {
            in_sync: IN_SYNC_REPLICAS,
            required: min_insync,
        });
    }
    let batch = match bounds {
        Some(bounds) => check_timestamps(batch, bounds).await?,
        None => batch,
    };
    let checked = if validation.any() {
        check_schemas(slot, topic, validation, batch).await?
    } else {
        ProducedBatch::Unchecked(batch)
    };
    match target {
        Some(target) => recompressed(checked, target).await,
        None => Ok(checked),
    }
}

/// Refuses a batch with a record timestamp more than `before` ms behind or `after` ms
/// ahead of the broker's clock (KIP-937), with INVALID_TIMESTAMP naming the record.
async fn check_timestamps(
    batch: BytesMut,
    (before, after): (i64, i64),
) -> Result<BytesMut, ProduceError> {
    off_runtime("check record timestamps", move || {
        let decoded = decode_batch(&batch).map_err(unreadable)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for (index, r) in decoded.records.iter().enumerate() {
            let (earliest, latest) = (now.saturating_sub(before), now.saturating_add(after));
            if r.timestamp < earliest || r.timestamp > latest {
                return Err(ProduceError::InvalidTimestamp(format!(
                    "record {index} has timestamp {}, outside [{earliest}, {latest}] (the \
                     topic's message.timestamp.before.max.ms = {before} and \
                     message.timestamp.after.max.ms = {after} around the broker's clock)",
                    r.timestamp
                )));
            }
        }
        Ok(batch)
    })
    .await
}

/// Runs the CPU work `f` (decoding, recompressing) on the blocking pool.
async fn off_runtime<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, ProduceError> + Send + 'static,
) -> Result<T, ProduceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ProduceError::Storage(herald_log::LogError::TaskJoin {
            op,
            reason: e.to_string(),
        })
    })?
}

/// Records that do not decode: a bad batch frame or CRC is CORRUPT_MESSAGE, the rest
/// (a codec failure) is [`ProduceError::Records`].
fn unreadable(e: RecordError) -> ProduceError {
    match e {
        RecordError::Batch(e) => ProduceError::Corrupt(e),
        e => ProduceError::Records(e),
    }
}

/// The batch in the topic's `compression.type` (unchanged when it already is, or is
/// a control batch); a recompressed batch is checked again in full by the append.
async fn recompressed(
    batch: ProducedBatch,
    target: Compression,
) -> Result<ProducedBatch, ProduceError> {
    off_runtime("recompress a produced batch", move || {
        let bytes: &[u8] = match &batch {
            ProducedBatch::Unchecked(b) => b,
            ProducedBatch::Validated(v) => v.bytes(),
        };
        match records::recompress(bytes, target) {
            Ok(Some(new)) => Ok(ProducedBatch::Unchecked(BytesMut::from(&new[..]))),
            Ok(None) => Ok(batch),
            Err(e) => Err(unreadable(e)),
        }
    })
    .await
}

/// The schema-id check of a batch for a topic with validation on.
async fn check_schemas(
    slot: &SchemaIdCheckSlot,
    topic: &str,
    validation: Validation,
    batch: BytesMut,
) -> Result<ProducedBatch, ProduceError> {
    let Some(check) = slot.0.clone() else {
        return Err(ProduceError::SchemaValidation(format!(
            "topic {topic:?} has schema validation on but this broker has no schema registry \
             attached"
        )));
    };
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || check_batch(check.as_ref(), &topic, validation, batch))
        .await
        .map_err(|e| ProduceError::SchemaValidation(format!("validation task failed: {e}")))?
        .map_err(ProduceError::SchemaValidation)
}

/// [`validate_batch`] that keeps the check of the batch's framing and CRC for the append.
/// Bytes that are not exactly one valid batch are refused by decoding them, with the
/// reason [`validate_batch`] gives.
fn check_batch(
    check: &dyn SchemaIdCheck,
    topic: &str,
    validation: Validation,
    batch: BytesMut,
) -> Result<ProducedBatch, String> {
    let bytes = match batch::validate_batches(batch) {
        Ok(checked) if checked.headers().len() == 1 => {
            for one in checked.batches() {
                let decoded = decode_validated(one).map_err(cannot_read)?;
                check_records(check, topic, validation, &decoded)?;
            }
            return Ok(ProducedBatch::Validated(checked));
        }
        Ok(checked) => checked.into_inner(),
        Err(refused) => refused.bytes,
    };
    validate_batch(check, topic, validation, &bytes)?;
    Ok(ProducedBatch::Unchecked(bytes))
}

/// Checks one batch; the error names the first bad record and why.
pub fn validate_batch(
    check: &dyn SchemaIdCheck,
    topic: &str,
    validation: Validation,
    batch: &[u8],
) -> Result<(), String> {
    let decoded = decode_batch(batch).map_err(cannot_read)?;
    check_records(check, topic, validation, &decoded)
}

fn cannot_read(e: RecordError) -> String {
    format!("cannot read the batch: {e}")
}

fn check_records(
    check: &dyn SchemaIdCheck,
    topic: &str,
    validation: Validation,
    decoded: &DecodedBatch,
) -> Result<(), String> {
    let key_subject = format!("{topic}-key");
    let value_subject = format!("{topic}-value");
    for (index, record) in decoded.records.iter().enumerate() {
        let parts = [
            (validation.key, "key", &record.key, &key_subject),
            (validation.value, "value", &record.value, &value_subject),
        ];
        for (on, part, bytes, subject) in parts {
            let Some(bytes) = bytes.as_deref().filter(|_| on) else {
                continue;
            };
            check_one(check, subject, bytes)
                .map_err(|why| format!("record {index} of the batch: its {part} {why}"))?;
        }
    }
    Ok(())
}

fn check_one(check: &dyn SchemaIdCheck, subject: &str, bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < WIRE_HEADER_LEN {
        return Err(format!(
            "is {} bytes, too short for the schema registry wire format (magic byte 0 and a \
             4-byte schema id)",
            bytes.len()
        ));
    }
    if bytes[0] != MAGIC_BYTE {
        return Err(format!(
            "starts with byte {:#04x}, not the wire format's magic byte 0: it was not \
             written by a schema-registry serializer",
            bytes[0]
        ));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    match check.check(subject, id) {
        SchemaIdStatus::Registered => Ok(()),
        SchemaIdStatus::NotInSubject => Err(format!(
            "carries schema id {id}, which is not a registered version of subject {subject:?}"
        )),
        SchemaIdStatus::UnknownId => Err(format!(
            "carries schema id {id}, which the schema registry does not know (subject \
             {subject:?})"
        )),
        SchemaIdStatus::Unavailable(why) => Err(format!(
            "could not be checked against subject {subject:?}: {why}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use herald_format::records::{BatchBuilder, Compression};

    use super::*;

    #[derive(Debug)]
    struct Fixed;
    impl SchemaIdCheck for Fixed {
        fn check(&self, subject: &str, id: u32) -> SchemaIdStatus {
            match (subject, id) {
                ("t-value", 1) | ("t-key", 2) => SchemaIdStatus::Registered,
                (_, 1 | 2) => SchemaIdStatus::NotInSubject,
                _ => SchemaIdStatus::UnknownId,
            }
        }
    }

    fn framed(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// (key, value) of each record.
    type Kv = (Option<Vec<u8>>, Option<Vec<u8>>);

    fn batch(records: &[Kv], codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec);
        for (k, v) in records {
            b.push(1, k.as_deref(), v.as_deref(), &[]);
        }
        b.build().unwrap()
    }

    const VALUE: Validation = Validation {
        key: false,
        value: true,
    };

    #[test]
    fn registered_ids_pass_in_every_codec() {
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let b = batch(
                &[
                    (None, Some(framed(1, b"a"))),
                    (Some(b"plain key".to_vec()), Some(framed(1, b""))),
                    (None, None),
                ],
                codec,
            );
            validate_batch(&Fixed, "t", VALUE, &b).unwrap();
        }
    }

    #[test]
    fn each_bad_record_is_named_with_its_reason() {
        let cases: [(Vec<u8>, &str); 4] = [
            (b"{\"json\": 1}".to_vec(), "magic byte"),
            (vec![0, 0, 0], "too short"),
            (
                framed(2, b"x"),
                "not a registered version of subject \"t-value\"",
            ),
            (framed(99, b"x"), "does not know"),
        ];
        for (value, why) in cases {
            let b = batch(
                &[(None, Some(framed(1, b"ok"))), (None, Some(value))],
                Compression::Lz4,
            );
            let err = validate_batch(&Fixed, "t", VALUE, &b).unwrap_err();
            assert!(err.starts_with("record 1 of the batch: its value"), "{err}");
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn keys_are_checked_against_the_key_subject() {
        let both = Validation {
            key: true,
            value: true,
        };
        let good = batch(
            &[(Some(framed(2, b"k")), Some(framed(1, b"v")))],
            Compression::None,
        );
        validate_batch(&Fixed, "t", both, &good).unwrap();
        let bad = batch(
            &[(Some(framed(1, b"k")), Some(framed(1, b"v")))],
            Compression::None,
        );
        let err = validate_batch(&Fixed, "t", both, &bad).unwrap_err();
        assert!(err.contains("its key") && err.contains("t-key"), "{err}");
    }

    /// The schema check of a produce keeps its check of the batch for the append, and
    /// refuses what is not one valid batch exactly as `validate_batch` does.
    #[test]
    fn the_produce_check_hands_on_one_checked_batch_and_refuses_the_rest_as_before() {
        let good = batch(&[(None, Some(framed(1, b"a")))], Compression::Snappy);
        match check_batch(&Fixed, "t", VALUE, BytesMut::from(&good[..])).unwrap() {
            ProducedBatch::Validated(checked) => assert_eq!(checked.bytes(), good),
            other => panic!("expected a validated batch, got {other:?}"),
        }
        let bad_record = batch(&[(None, Some(framed(99, b"a")))], Compression::None);
        let mut corrupt = good.clone();
        *corrupt.last_mut().unwrap() ^= 0xff;
        let mut two = good.clone();
        two.extend_from_slice(&good);
        for bytes in [bad_record, corrupt, two, good[..20].to_vec()] {
            let err = check_batch(&Fixed, "t", VALUE, BytesMut::from(&bytes[..])).unwrap_err();
            assert_eq!(err, validate_batch(&Fixed, "t", VALUE, &bytes).unwrap_err());
        }
    }
}
