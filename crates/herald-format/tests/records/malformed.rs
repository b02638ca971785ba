//! Truncated, corrupt and hostile input: always an error, never a panic or a huge
//! allocation.

use super::*;

fn valid() -> Vec<u8> {
    build(Compression::None, &[(0, None, None, vec![])])
}

fn record_error(bytes: &[u8]) -> RecordError {
    match decode_batch(bytes).expect_err("must be rejected") {
        RecordError::InRecord { index: 0, source } => *source,
        other => panic!("expected an error in record 0, got {other:?}"),
    }
}

#[test]
fn every_truncation_of_a_batch_is_an_error() {
    for codec in Compression::ALL {
        let bytes = build(codec, &sample_inputs());
        for len in 0..bytes.len() {
            assert!(
                decode_batch(&bytes[..len]).is_err(),
                "{codec:?} cut at {len}"
            );
            assert!(first_record_at_or_after(&bytes[..len], 0).is_err());
        }
    }
}

#[test]
fn every_truncation_of_the_records_section_with_a_fixed_crc_is_an_error_or_exact() {
    let inputs = sample_inputs();
    for codec in Compression::ALL {
        let bytes = build(codec, &inputs);
        let section = &bytes[HEADER_LEN..];
        for len in 0..section.len() {
            let cut = reframe(&bytes, codec.id(), 3, &section[..len]);
            // Some codecs tolerate a missing trailer; then the records must be exact.
            if let Ok(decoded) = decode_batch(&cut) {
                assert_eq!(
                    decoded.records,
                    expected(&inputs, 0),
                    "{codec:?} cut at {len}"
                );
            }
        }
        if codec == Compression::None {
            for len in 0..section.len() {
                let cut = reframe(&bytes, 0, 3, &section[..len]);
                assert!(decode_batch(&cut).is_err(), "cut at {len}");
            }
        }
    }
}

#[test]
fn key_length_below_minus_one() {
    // Key length -2 is zig-zag 3.
    let bytes = reframe(&valid(), 0, 1, &[12, 0, 0, 0, 3, 1, 0]);
    assert!(matches!(
        record_error(&bytes),
        RecordError::InvalidLength {
            field: "record key",
            value: -2
        }
    ));
}

#[test]
fn record_length_past_the_end() {
    let bytes = reframe(&valid(), 0, 1, &[100, 0, 0, 0, 1, 1, 0]);
    assert!(matches!(
        record_error(&bytes),
        RecordError::Truncated {
            field: "record",
            ..
        }
    ));
}

#[test]
fn record_length_longer_than_its_fields() {
    let bytes = reframe(&valid(), 0, 1, &[14, 0, 0, 0, 1, 1, 0, 9]);
    assert!(matches!(
        record_error(&bytes),
        RecordError::RecordLength {
            declared: 7,
            used: 6
        }
    ));
}

#[test]
fn negative_record_length() {
    let bytes = reframe(&valid(), 0, 1, &[1, 0, 0, 0, 1, 1, 0]);
    assert!(matches!(
        record_error(&bytes),
        RecordError::InvalidLength { value: -1, .. }
    ));
}

#[test]
fn huge_header_count_fails_on_the_bytes_present() {
    // header count i32::MAX (zig-zag 0xfffffffe), then nothing.
    let section = [20, 0, 0, 0, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f];
    let bytes = reframe(&valid(), 0, 1, &section);
    assert!(matches!(
        record_error(&bytes),
        RecordError::Truncated { .. }
    ));
}

#[test]
fn overlong_varint() {
    let section = [22, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 1, 1, 0];
    let bytes = reframe(&valid(), 0, 1, &section);
    assert!(matches!(
        record_error(&bytes),
        RecordError::VarintTooLong {
            field: "offset delta"
        }
    ));
}

#[test]
fn record_count_larger_than_the_records_present_does_not_allocate_for_it() {
    let good = valid();
    let section = good[HEADER_LEN..].to_vec();
    let bytes = reframe(&good, 0, i32::MAX, &section);
    assert!(matches!(
        decode_batch(&bytes),
        Err(RecordError::MissingRecords {
            declared: i32::MAX,
            found: 1
        })
    ));
}

#[test]
fn bytes_after_the_declared_records() {
    let good = valid();
    let mut section = good[HEADER_LEN..].to_vec();
    section.extend_from_slice(&good[HEADER_LEN..]);
    let bytes = reframe(&good, 0, 1, &section);
    assert!(matches!(
        decode_batch(&bytes),
        Err(RecordError::TrailingBytes { count: 7 })
    ));
    // The same extra record is fine once the count says so.
    assert_eq!(
        decode_batch(&reframe(&good, 0, 2, &section))
            .unwrap()
            .records
            .len(),
        2
    );
}

#[test]
fn unknown_codec_ids() {
    let good = valid();
    for id in 5..=7 {
        let bytes = reframe(&good, id, 1, &good[HEADER_LEN..]);
        assert!(matches!(decode_batch(&bytes), Err(RecordError::UnknownCompression(i)) if i == id));
        assert!(first_record_at_or_after(&bytes, 0).is_err());
    }
}

#[test]
fn zip_bomb_hits_the_default_limit() {
    let zeros = vec![0u8; DEFAULT_MAX_UNCOMPRESSED + 1];
    let packed = Compression::Zstd.compress(&zeros).unwrap();
    assert!(packed.len() < 64 * 1024, "a bomb: {} bytes", packed.len());
    let bytes = reframe(&valid(), Compression::Zstd.id(), 1, &packed);
    assert!(matches!(
        decode_batch(&bytes),
        Err(RecordError::TooLarge {
            codec: Compression::Zstd,
            limit: DEFAULT_MAX_UNCOMPRESSED
        })
    ));
    assert!(matches!(
        first_record_at_or_after(&bytes, 0),
        Err(RecordError::TooLarge { .. })
    ));
}

#[test]
fn every_codec_honours_a_caller_limit() {
    let bytes_of = |codec| build(codec, &[(0, None, Some(vec![1u8; 100_000]), vec![])]);
    for codec in Compression::ALL
        .into_iter()
        .filter(|&c| c != Compression::None)
    {
        let bytes = bytes_of(codec);
        assert!(
            decode_batch_with_limit(&bytes, 100_100).is_ok(),
            "{codec:?}"
        );
        assert!(
            matches!(
                decode_batch_with_limit(&bytes, 50_000),
                Err(RecordError::TooLarge { .. })
            ),
            "{codec:?}"
        );
    }
}

#[test]
fn raw_snappy_claiming_four_gib_is_refused_before_allocating() {
    let section = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    let bytes = reframe(&valid(), Compression::Snappy.id(), 1, &section);
    assert!(matches!(
        decode_batch(&bytes),
        Err(RecordError::TooLarge { .. })
    ));
}

#[test]
fn xerial_chunk_longer_than_the_data() {
    let mut section = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
    section.extend_from_slice(&1000u32.to_be_bytes());
    section.extend_from_slice(&[0; 10]);
    let bytes = reframe(&valid(), Compression::Snappy.id(), 1, &section);
    assert!(matches!(
        decode_batch(&bytes),
        Err(RecordError::Decompress { .. })
    ));
}

#[test]
fn garbage_in_every_codec_is_an_error() {
    let garbage: Vec<u8> = (0..500u32).map(|i| (i * 7919 % 256) as u8).collect();
    for codec in Compression::ALL {
        let bytes = reframe(&valid(), codec.id(), 3, &garbage);
        assert!(decode_batch(&bytes).is_err(), "{codec:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_batch(&bytes);
        let _ = first_record_at_or_after(&bytes, 0);
        let _ = Record::decode(&bytes);
    }

    #[test]
    fn random_sections_behind_a_valid_header_never_panic(
        section in proptest::collection::vec(any::<u8>(), 0..300),
        codec_id in 0u8..8,
        count in -2i32..20,
        prefix_xerial in any::<bool>(),
    ) {
        let mut section = section;
        if prefix_xerial {
            section.splice(0..0, b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".iter().copied());
        }
        let bytes = reframe(&valid(), codec_id, count, &section);
        let _ = decode_batch_with_limit(&bytes, 1 << 20);
        let _ = first_record_at_or_after(&bytes, 0);
    }

    #[test]
    fn flipped_bytes_with_a_fixed_crc_never_panic(
        codec in proptest::sample::select(Compression::ALL.to_vec()),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
    ) {
        let mut bytes = build(codec, &sample_inputs());
        for (at, mask) in flips {
            let i = ATTRIBUTES + at.index(bytes.len() - ATTRIBUTES);
            bytes[i] ^= mask;
        }
        fix_crc(&mut bytes);
        let _ = decode_batch_with_limit(&bytes, 1 << 20);
        let _ = first_record_at_or_after(&bytes, 0);
    }
}
