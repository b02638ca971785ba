//! Records inside v2 batches: what we build is what Kafka clients read, what Kafka clients
//! build is what we read, and no input makes decoding panic or over-allocate.
//!
//! "Kafka clients" here is the `kafka-protocol` crate, an implementation we did not write
//! (its snappy is xerial-framed like Java's, its lz4 is the C library). Its records keep
//! headers in a map, so comparisons against it go through the same map.

use herald_format::batch::{self, ATTRIBUTES, BATCH_LENGTH, CRC, HEADER_LEN, RECORD_COUNT};
use herald_format::records::{
    BatchBuilder, Compression, DEFAULT_MAX_UNCOMPRESSED, DecodedRecord, Header, Record,
    RecordError, decode_batch, decode_batch_with_limit, first_record_at_or_after,
};
use proptest::prelude::*;

/// A record as a producer hands it over: timestamp, key, value, headers.
type Input = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<Header>);

fn build(codec: Compression, inputs: &[Input]) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec);
    for (ts, key, value, headers) in inputs {
        b.push(*ts, key.as_deref(), value.as_deref(), headers);
    }
    b.build().expect("build")
}

fn expected(inputs: &[Input], base_offset: i64) -> Vec<DecodedRecord> {
    inputs
        .iter()
        .zip(base_offset..)
        .map(|((ts, key, value, headers), offset)| DecodedRecord {
            offset,
            timestamp: *ts,
            key: key.clone(),
            value: value.clone(),
            headers: headers.clone(),
        })
        .collect()
}

/// Replaces the records section of a valid batch and fixes count, length and CRC, so tests
/// reach the record parser with bytes of their choosing.
fn reframe(batch: &[u8], codec_id: u8, record_count: i32, section: &[u8]) -> Vec<u8> {
    let mut out = batch[..HEADER_LEN].to_vec();
    out.extend_from_slice(section);
    let len = (out.len() - BATCH_LENGTH - 4) as i32;
    out[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
    out[ATTRIBUTES + 1] = (out[ATTRIBUTES + 1] & !0x07) | codec_id;
    out[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&record_count.to_be_bytes());
    fix_crc(&mut out);
    out
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

fn sample_inputs() -> Vec<Input> {
    vec![
        (
            1_700_000_000_000,
            Some(b"order-1".to_vec()),
            Some(b"{\"qty\":1}".to_vec()),
            vec![Header::new("trace", "a"), Header::null("empty")],
        ),
        // Earlier than the first: a negative timestamp delta.
        (1_699_999_999_000, None, Some(Vec::new()), vec![]),
        (
            1_700_000_000_500,
            Some(Vec::new()),
            None,
            vec![Header::new("", "")],
        ),
    ]
}

/// What goes into a batch comes back out, for every codec.
mod round_trip {
    use super::*;

    #[test]
    fn every_codec_round_trips_keys_values_nulls_and_empties() {
        let inputs = sample_inputs();
        for codec in Compression::ALL {
            let bytes = build(codec, &inputs);
            let decoded = decode_batch(&bytes).unwrap();
            assert_eq!(decoded.records, expected(&inputs, 0), "{codec:?}");
            assert_eq!(decoded.compression(), codec);
            let h = decoded.header;
            assert_eq!(
                (h.base_offset, h.last_offset_delta, h.record_count),
                (0, 2, 3)
            );
            assert_eq!(
                h.base_timestamp, 1_700_000_000_000,
                "first record's timestamp"
            );
            assert_eq!(h.max_timestamp, 1_700_000_000_500);
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (-1, -1, -1)
            );
        }
    }

    #[test]
    fn duplicate_header_keys_are_kept_in_order() {
        let headers = vec![
            Header::new("k", "1"),
            Header::new("other", "x"),
            Header::new("k", "2"),
            Header::null("k"),
        ];
        let bytes = BatchBuilder::new(Compression::Gzip)
            .push(5, None, Some(b"v".as_slice()), &headers)
            .build()
            .unwrap();
        assert_eq!(decode_batch(&bytes).unwrap().records[0].headers, headers);
    }

    #[test]
    fn producer_fields_and_offsets_after_the_log_assigns_a_base_offset() {
        let mut bytes = BatchBuilder::new(Compression::Snappy)
            .producer(4242, 3, 17)
            .partition_leader_epoch(9)
            .transactional(true)
            .push(10, None, Some(b"a".as_slice()), &[])
            .push(11, None, Some(b"b".as_slice()), &[])
            .build()
            .unwrap();
        batch::set_base_offset(&mut bytes, 1_000);
        let decoded = decode_batch(&bytes).unwrap();
        let h = decoded.header;
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (4242, 3, 17)
        );
        assert_eq!(h.partition_leader_epoch, 9);
        assert!(h.is_transactional());
        let offsets: Vec<i64> = decoded.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [1_000, 1_001]);
    }

    #[test]
    fn log_append_time_gives_every_record_the_batch_max_timestamp() {
        let bytes = BatchBuilder::new(Compression::None)
            .log_append_time(9_999)
            .push(1, None, None, &[])
            .push(2, None, None, &[])
            .build()
            .unwrap();
        let decoded = decode_batch(&bytes).unwrap();
        assert!(decoded.is_log_append_time());
        assert!(decoded.records.iter().all(|r| r.timestamp == 9_999));
    }

    #[test]
    fn empty_builder_is_an_error_not_an_empty_batch() {
        assert!(matches!(
            BatchBuilder::new(Compression::None).build(),
            Err(RecordError::EmptyBatch)
        ));
    }

    #[test]
    fn builder_reports_its_size_and_length() {
        let mut b = BatchBuilder::new(Compression::None);
        assert!(b.is_empty());
        b.push(1, Some(b"key".as_slice()), Some(b"value".as_slice()), &[]);
        assert_eq!(b.len(), 1);
        assert_eq!(b.uncompressed_size(), b.build().unwrap().len());
    }

    #[test]
    fn non_utf8_header_key_decodes_lossily_like_java() {
        let valid = build(Compression::None, &[(0, None, None, vec![])]);
        // Length 9: attributes, deltas, null key and value, one header: key 0xff, null value.
        let section = [18, 0, 0, 0, 1, 1, 2, 2, 0xff, 1];
        let bytes = reframe(&valid, 0, 1, &section);
        let decoded = decode_batch(&bytes).unwrap();
        assert_eq!(decoded.records[0].headers, [Header::null("\u{fffd}")]);
    }
}

/// Reading header values as text.
mod headers {
    use herald_format::records::header_str;

    use super::*;

    #[test]
    fn header_str_takes_the_last_value() {
        let headers = vec![Header::new("a", "1"), Header::new("a", "2")];
        assert_eq!(header_str(&headers, "a"), Some("2"));
        assert_eq!(header_str(&headers, "b"), None);
    }

    #[test]
    fn value_str_is_none_for_null_and_non_utf8_values() {
        assert_eq!(Header::new("k", "v").value_str(), Some("v"));
        assert_eq!(Header::null("k").value_str(), None);
        assert_eq!(Header::new("k", vec![0xff]).value_str(), None);
    }
}

/// Batches checked once and carried with their check.
mod validated {
    use herald_format::batch::validate_batches;
    use herald_format::records::decode_validated;

    use super::*;

    #[test]
    fn assigned_offsets_keep_every_batch_valid_and_decode_like_decode_batch() {
        let mut bytes = build(Compression::Lz4, &sample_inputs());
        bytes.extend_from_slice(&build(Compression::None, &sample_inputs()[..1]));
        let mut checked = validate_batches(bytes).unwrap();
        assert_eq!(checked.assign_offsets(40, 7), 44);
        let positions: Vec<_> = checked.headers().iter().map(|(pos, _)| *pos).collect();
        assert_eq!(checked.batches().len(), 2);
        for (batch, pos) in checked.batches().zip(positions) {
            let header = batch::validate(batch.bytes()).expect("still valid");
            assert_eq!(&header, batch.header());
            assert_eq!(
                batch.bytes(),
                &checked.bytes()[pos..pos + header.total_len()]
            );
            assert_eq!(
                decode_validated(batch).unwrap(),
                decode_batch(batch.bytes()).unwrap()
            );
        }
        let bases: Vec<_> = checked
            .headers()
            .iter()
            .map(|(_, h)| h.base_offset)
            .collect();
        assert_eq!(bases, [40, 43]);
        assert!(
            checked
                .headers()
                .iter()
                .all(|(_, h)| h.partition_leader_epoch == 7)
        );
    }

    #[test]
    fn refused_bytes_come_back_with_the_position_and_the_reason() {
        let good = build(Compression::None, &sample_inputs());
        let mut bytes = good.clone();
        bytes.extend_from_slice(&good);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let refused = validate_batches(bytes.clone()).unwrap_err();
        assert_eq!(refused.position, good.len());
        assert!(matches!(refused.error, batch::BatchError::BadCrc { .. }));
        assert_eq!(refused.bytes, bytes);
    }

    #[test]
    fn a_validated_batch_with_bad_records_is_still_an_error() {
        let good = build(Compression::None, &sample_inputs());
        // Valid framing and CRC around a records section that is not records.
        let bytes = reframe(&good, 0, 1, &[0x7f; 3]);
        let checked = validate_batches(&bytes[..]).unwrap();
        let batch = checked.batches().next().unwrap();
        assert!(decode_validated(batch).is_err());
    }
}

/// Batches cross to and from kafka-protocol, every codec both ways.
#[path = "records/kafka_protocol_interop.rs"]
mod kafka_protocol_interop;

/// ListOffsets by timestamp within one batch.
mod list_offsets {
    use super::*;

    #[test]
    fn finds_first_record_in_batch_order_at_or_after_the_timestamp() {
        let inputs: Vec<Input> = [10, 30, 20, 40].map(|ts| (ts, None, None, vec![])).to_vec();
        for codec in Compression::ALL {
            let mut bytes = build(codec, &inputs);
            batch::set_base_offset(&mut bytes, 100);
            let at = |ts| first_record_at_or_after(&bytes, ts).unwrap();
            assert_eq!(at(i64::MIN), Some((100, 10)));
            assert_eq!(at(10), Some((100, 10)));
            // 20 is at offset 102, but 30 at 101 comes first: Kafka answers 101.
            assert_eq!(at(15), Some((101, 30)));
            assert_eq!(at(31), Some((103, 40)));
            assert_eq!(at(40), Some((103, 40)));
            assert_eq!(at(41), None);
        }
    }

    #[test]
    fn log_append_time_batch_answers_with_its_first_record() {
        let mut bytes = BatchBuilder::new(Compression::Lz4)
            .log_append_time(500)
            .push(1, None, None, &[])
            .push(900, None, None, &[])
            .build()
            .unwrap();
        batch::set_base_offset(&mut bytes, 7);
        assert_eq!(
            first_record_at_or_after(&bytes, 400).unwrap(),
            Some((7, 500))
        );
        assert_eq!(first_record_at_or_after(&bytes, 501).unwrap(), None);
    }

    #[test]
    fn rejects_a_corrupt_batch() {
        let mut bytes = build(Compression::None, &sample_inputs());
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            first_record_at_or_after(&bytes, 0),
            Err(RecordError::Batch(batch::BatchError::BadCrc { .. }))
        ));
    }

    proptest! {
        #[test]
        fn agrees_with_a_linear_scan(
            stamps in proptest::collection::vec(0i64..50, 1..20),
            target in -5i64..60,
            codec in proptest::sample::select(Compression::ALL.to_vec()),
        ) {
            let inputs: Vec<Input> = stamps.iter().map(|&ts| (ts, None, None, vec![])).collect();
            let bytes = build(codec, &inputs);
            let model = stamps
                .iter()
                .enumerate()
                .find(|&(_, &ts)| ts >= target)
                .map(|(i, &ts)| (i as i64, ts));
            prop_assert_eq!(first_record_at_or_after(&bytes, target).unwrap(), model);
        }
    }
}

/// Hostile and broken input.
#[path = "records/malformed.rs"]
mod malformed;

/// Round trips over arbitrary records, headers and codecs.
mod properties {
    use super::*;

    pub(super) fn header() -> impl Strategy<Value = Header> {
        (
            // Small alphabet so duplicate keys are common.
            prop_oneof!["[ab]{0,2}", any::<String>()],
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        )
            .prop_map(|(key, value)| Header { key, value })
    }

    fn input() -> impl Strategy<Value = Input> {
        (
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)),
            proptest::option::of(prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                (any::<u8>(), 0usize..5000).prop_map(|(b, n)| vec![b; n]),
            ]),
            proptest::collection::vec(header(), 0..5),
        )
    }

    proptest! {
        #[test]
        fn built_batches_decode_to_what_was_pushed(
            inputs in proptest::collection::vec(input(), 1..16),
            codec in proptest::sample::select(Compression::ALL.to_vec()),
            base_offset in 0i64..1 << 40,
        ) {
            let mut bytes = build(codec, &inputs);
            batch::set_base_offset(&mut bytes, base_offset);
            let header = batch::validate(&bytes).unwrap();
            prop_assert_eq!(header.record_count as usize, inputs.len());
            prop_assert_eq!(header.max_timestamp, inputs.iter().map(|i| i.0).max().unwrap());
            prop_assert_eq!(decode_batch(&bytes).unwrap().records, expected(&inputs, base_offset));
        }

        #[test]
        fn records_round_trip_alone(
            offset_delta in any::<i32>(),
            (timestamp_delta, key, value, headers) in input(),
            trailing in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let record = Record { offset_delta, timestamp_delta, key, value, headers };
            let mut bytes = Vec::new();
            record.encode(&mut bytes).unwrap();
            let len = bytes.len();
            bytes.extend_from_slice(&trailing);
            let (decoded, used) = Record::decode(&bytes).unwrap();
            prop_assert_eq!(used, len);
            prop_assert_eq!(decoded, record);
        }

        #[test]
        fn compression_round_trips(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            codec in proptest::sample::select(Compression::ALL.to_vec()),
        ) {
            let packed = codec.compress(&data).unwrap();
            prop_assert_eq!(codec.decompress(&packed, data.len()).unwrap(), data);
        }
    }
}

/// LogAppendTime stamping: the batch says so, every record reads the append time through
/// the max timestamp, the CRC is right again, and keys, values and headers are unchanged.
#[test]
fn stamping_log_append_time_keeps_the_batch_valid() {
    let inputs: Vec<Input> = vec![
        (1_000, Some(b"k".to_vec()), Some(b"a".to_vec()), vec![]),
        (
            2_000,
            None,
            Some(b"b".to_vec()),
            vec![Header::new("h", "v")],
        ),
    ];
    let mut bytes = build(Compression::Lz4, &inputs);
    bytes.extend(build(Compression::None, &inputs));
    let mut checked = batch::validate_batches(bytes).unwrap();
    checked.assign_offsets(10, 0);
    checked.stamp_log_append_time(1_700_000_000_123);
    assert!(
        checked
            .headers()
            .iter()
            .all(|(_, h)| h.max_timestamp == 1_700_000_000_123)
    );
    let bytes = checked.into_inner();
    let again = batch::validate_batches(bytes.clone()).expect("the CRC was recomputed");
    for (pos, header) in again.headers() {
        assert_eq!(
            header.attributes & batch::ATTR_TIMESTAMP_TYPE,
            batch::ATTR_TIMESTAMP_TYPE
        );
        assert_eq!(header.max_timestamp, 1_700_000_000_123);
        let decoded = decode_batch(&bytes[*pos..*pos + header.total_len()]).unwrap();
        assert!(decoded.is_log_append_time());
        // Decoding reads the append time as each record's timestamp, as clients do.
        let stamped: Vec<DecodedRecord> = expected(&inputs, header.base_offset)
            .into_iter()
            .map(|r| DecodedRecord {
                timestamp: 1_700_000_000_123,
                ..r
            })
            .collect();
        assert_eq!(decoded.records, stamped);
    }
}

/// Recompression keeps what the broker's checks and consumers rely on: producer id,
/// epoch, base sequence, record count, timestamps, keys, values and headers.
#[test]
fn recompress_keeps_producer_fields_and_records() {
    use herald_format::records::recompress;
    let inputs: Vec<Input> = vec![
        (
            1_000,
            Some(b"k".to_vec()),
            Some(b"a".repeat(300)),
            vec![Header::new("h", "v")],
        ),
        (1_500, None, None, vec![]),
    ];
    let mut b = BatchBuilder::new(Compression::Gzip);
    b.producer(42, 3, 17);
    for (ts, key, value, headers) in &inputs {
        b.push(*ts, key.as_deref(), value.as_deref(), headers);
    }
    let original = b.build().unwrap();
    assert_eq!(
        recompress(&original, Compression::Gzip).unwrap(),
        None,
        "already gzip"
    );
    for target in [
        Compression::None,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let new = recompress(&original, target).unwrap().expect("rewritten");
        let decoded = decode_batch(&new).unwrap();
        assert_eq!(decoded.compression(), target);
        let h = decoded.header;
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, 17)
        );
        assert_eq!(h.record_count, 2);
        assert_eq!(decoded.records, expected(&inputs, 0), "{target:?}");
    }
    let mut broken = original.clone();
    let last = broken.len() - 1;
    broken[last] ^= 1;
    assert!(
        recompress(&broken, Compression::Zstd).is_err(),
        "a bad CRC is refused"
    );
}
