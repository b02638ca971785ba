//! Cross-checks against kafka-protocol's encoder and decoder, every codec both ways.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};

use super::*;

fn kp_codec(codec: Compression) -> KpCompression {
    match codec {
        Compression::None => KpCompression::None,
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
    }
}

/// Kafka-protocol's view of headers: a map, so a repeated key keeps its first position and
/// its last value.
fn header_map(headers: &[Header]) -> IndexMap<StrBytes, Option<Bytes>> {
    headers
        .iter()
        .map(|h| {
            (
                StrBytes::from_string(h.key.clone()),
                h.value.clone().map(Bytes::from),
            )
        })
        .collect()
}

fn kp_decode(bytes: &[u8]) -> Vec<KpRecord> {
    let mut buf = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode(&mut buf)
        .expect("kafka-protocol decodes our batch")
        .records
}

fn check_ours_in_kp(codec: Compression, inputs: &[Input], producer: (i64, i16, i32)) {
    let mut b = BatchBuilder::new(codec);
    b.producer(producer.0, producer.1, producer.2);
    for (ts, key, value, headers) in inputs {
        b.push(*ts, key.as_deref(), value.as_deref(), headers);
    }
    let records = kp_decode(&b.build().unwrap());
    assert_eq!(records.len(), inputs.len());
    for (i, (r, (ts, key, value, headers))) in records.iter().zip(inputs).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.timestamp, *ts);
        assert_eq!(r.key.as_deref(), key.as_deref());
        assert_eq!(r.value.as_deref(), value.as_deref());
        assert_eq!(r.headers, header_map(headers));
        assert_eq!((r.producer_id, r.producer_epoch), (producer.0, producer.1));
        assert_eq!(r.sequence, producer.2.wrapping_add(i as i32));
    }
}

fn kp_encode(codec: Compression, inputs: &[Input], producer: (i64, i16, i32)) -> Vec<u8> {
    let records: Vec<KpRecord> = inputs
        .iter()
        .enumerate()
        .map(|(i, (ts, key, value, headers))| KpRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: producer.2.wrapping_add(i as i32),
            timestamp: *ts,
            key: key.clone().map(Bytes::from),
            value: value.clone().map(Bytes::from),
            headers: header_map(headers),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: kp_codec(codec),
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("kafka-protocol encodes");
    buf.to_vec()
}

fn check_kp_in_ours(codec: Compression, inputs: &[Input], producer: (i64, i16, i32)) {
    let bytes = kp_encode(codec, inputs, producer);
    let decoded = decode_batch(&bytes).unwrap();
    assert_eq!(decoded.compression(), codec);
    let h = decoded.header;
    assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), producer);
    assert_eq!(decoded.records.len(), inputs.len());
    for (i, (r, (ts, key, value, headers))) in decoded.records.iter().zip(inputs).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.timestamp, *ts);
        assert_eq!(&r.key, key);
        assert_eq!(&r.value, value);
        assert_eq!(header_map(&r.headers), header_map(headers));
    }
}

#[test]
fn our_batches_decode_in_kafka_protocol_for_every_codec() {
    for codec in Compression::ALL {
        check_ours_in_kp(codec, &sample_inputs(), (77, 2, 1_000));
    }
}

#[test]
fn kafka_protocol_batches_decode_in_ours_for_every_codec() {
    for codec in Compression::ALL {
        check_kp_in_ours(codec, &sample_inputs(), (77, 2, 1_000));
    }
}

#[test]
fn multi_block_payloads_cross_both_ways() {
    // Over 64 KiB so snappy (32 KiB xerial chunks) and lz4 (64 KiB blocks) use several.
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i % 251) as u8 ^ (i / 997) as u8)
        .collect();
    let inputs = vec![
        (1, None, Some(big.clone()), vec![]),
        (2, Some(big), None, vec![]),
    ];
    for codec in Compression::ALL {
        check_ours_in_kp(codec, &inputs, (-1, -1, -1));
        check_kp_in_ours(codec, &inputs, (-1, -1, -1));
    }
}

fn interop_input() -> impl Strategy<Value = Input> {
    (
        0i64..4_000_000_000_000,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(super::properties::header(), 0..4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn arbitrary_batches_cross_both_ways(
        inputs in proptest::collection::vec(interop_input(), 1..12),
        codec in proptest::sample::select(Compression::ALL.to_vec()),
        producer in (any::<i64>(), any::<i16>(), any::<i32>()),
    ) {
        check_ours_in_kp(codec, &inputs, producer);
        check_kp_in_ours(codec, &inputs, producer);
    }
}
