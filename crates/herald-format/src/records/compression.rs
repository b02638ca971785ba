//! The record-section codecs of a v2 batch, with Kafka's framing for each.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use super::RecordError;

/// Default cap on the uncompressed size of one batch's records, so that a small
/// compressed batch that inflates to gigabytes is an error and not an out-of-memory kill.
/// Far above any sane `max.message.bytes`.
pub const DEFAULT_MAX_UNCOMPRESSED: usize = 64 << 20;

/// xerial snappy-java's stream magic; Java clients frame snappy with it.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
/// Magic, then version and minimum compatible version (big-endian i32 each).
const XERIAL_HEADER_LEN: usize = XERIAL_MAGIC.len() + 8;

/// Kafka's default zstd level (`compression.zstd.level`).
const ZSTD_LEVEL: i32 = 3;

/// Compression codec of a batch's records section, as stored in the low three
/// attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Records stored as is (id 0).
    #[default]
    None,
    /// gzip (id 1).
    Gzip,
    /// Snappy (id 2). Written as raw snappy; read as raw or xerial-framed snappy.
    Snappy,
    /// LZ4 frame format (id 3).
    Lz4,
    /// Zstandard (id 4).
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec id Kafka puts in the batch attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with Kafka id `id`; ids 5 to 7 fit the attribute bits but mean nothing.
    pub fn from_id(id: u8) -> Result<Self, RecordError> {
        Self::ALL
            .get(usize::from(id))
            .copied()
            .ok_or(RecordError::UnknownCompression(id))
    }

    /// Compresses `data` the way Kafka clients do, so that any Kafka consumer reads it.
    pub fn compress(self, data: &[u8]) -> Result<Vec<u8>, RecordError> {
        let wrap = |source: io::Error| RecordError::Compress {
            codec: self,
            source,
        };
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data).map_err(wrap)?;
                enc.finish().map_err(wrap)
            }
            // Raw, not xerial: librdkafka writes raw, and Java reads both.
            Compression::Snappy => snap::raw::Encoder::new()
                .compress_vec(data)
                .map_err(|e| wrap(e.into())),
            Compression::Lz4 => {
                // Kafka's Java LZ4 stream reads 64 KiB independent blocks; linked blocks or
                // a content size would not be readable by every client.
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
                enc.write_all(data).map_err(wrap)?;
                enc.finish().map_err(|e| wrap(e.into()))
            }
            Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).map_err(wrap),
        }
    }

    /// Decompresses `data`, failing with [`RecordError::TooLarge`] once the output would
    /// exceed `limit` bytes. `None` returns a copy without applying the limit: nothing
    /// inflates.
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
        self.decompress_cow(data, limit).map(Cow::into_owned)
    }

    pub(super) fn decompress_cow(
        self,
        data: &[u8],
        limit: usize,
    ) -> Result<Cow<'_, [u8]>, RecordError> {
        let corrupt = |source: io::Error| RecordError::Decompress {
            codec: self,
            source,
        };
        let out = match self {
            Compression::None => return Ok(Cow::Borrowed(data)),
            // Multi-member: Java's GZIPInputStream reads concatenated members too.
            Compression::Gzip => {
                read_bounded(self, flate2::read::MultiGzDecoder::new(data), data, limit)?
            }
            Compression::Snappy if data.starts_with(XERIAL_MAGIC) => {
                xerial_decompress(data, limit)?
            }
            Compression::Snappy => {
                let mut out = Vec::new();
                snappy_block(data, limit, &mut out)?;
                out
            }
            Compression::Lz4 => {
                read_bounded(self, lz4_flex::frame::FrameDecoder::new(data), data, limit)?
            }
            Compression::Zstd => {
                let dec = zstd::stream::read::Decoder::with_buffer(data).map_err(corrupt)?;
                read_bounded(self, dec, data, limit)?
            }
        };
        Ok(Cow::Owned(out))
    }
}

impl TryFrom<u8> for Compression {
    type Error = RecordError;

    fn try_from(id: u8) -> Result<Self, RecordError> {
        Self::from_id(id)
    }
}

fn read_bounded(
    codec: Compression,
    reader: impl Read,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, RecordError> {
    // One byte past the limit tells "exactly at the limit" from "over it".
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|source| RecordError::Decompress { codec, source })?;
    if out.len() > limit {
        return Err(RecordError::TooLarge { codec, limit });
    }
    Ok(out)
}

fn snappy_error(source: io::Error) -> RecordError {
    RecordError::Decompress {
        codec: Compression::Snappy,
        source,
    }
}

/// Appends one raw snappy block to `out`. The block's own length prefix is checked
/// against what the limit still allows before anything is allocated.
fn snappy_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let len = snap::raw::decompress_len(block).map_err(|e| snappy_error(e.into()))?;
    if len > limit - out.len() {
        return Err(RecordError::TooLarge {
            codec: Compression::Snappy,
            limit,
        });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| snappy_error(e.into()))?;
    out.truncate(start + written);
    Ok(())
}

/// snappy-java's stream: header, then chunks of (big-endian u32 length, raw snappy block).
fn xerial_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let eof = |what| snappy_error(io::Error::new(io::ErrorKind::UnexpectedEof, what));
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| eof("xerial snappy header is truncated"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| eof("xerial snappy chunk length is truncated"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > tail.len() {
            return Err(eof("xerial snappy chunk is truncated"));
        }
        let (chunk, tail) = tail.split_at(len);
        snappy_block(chunk, limit, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ids_fail() {
        for codec in Compression::ALL {
            assert_eq!(Compression::from_id(codec.id()).unwrap(), codec);
        }
        for id in 5..=255 {
            assert!(matches!(
                Compression::from_id(id),
                Err(RecordError::UnknownCompression(i)) if i == id
            ));
        }
    }

    #[test]
    fn reads_xerial_framed_snappy() {
        let text = b"hello hello hello hello, xerial".repeat(50);
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for part in text.chunks(300) {
            let block = snap::raw::Encoder::new().compress_vec(part).unwrap();
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        let out = Compression::Snappy.decompress(&framed, 1 << 20).unwrap();
        assert_eq!(out, text);
        assert!(matches!(
            Compression::Snappy.decompress(&framed, text.len() - 1),
            Err(RecordError::TooLarge { .. })
        ));
        assert!(matches!(
            Compression::Snappy.decompress(&framed[..framed.len() - 1], 1 << 20),
            Err(RecordError::Decompress { .. })
        ));
    }

    #[test]
    fn limit_is_inclusive() {
        let data = vec![7u8; 10_000];
        for codec in Compression::ALL {
            let packed = codec.compress(&data).unwrap();
            assert_eq!(
                codec.decompress(&packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            if codec != Compression::None {
                assert!(
                    matches!(
                        codec.decompress(&packed, data.len() - 1),
                        Err(RecordError::TooLarge { .. })
                    ),
                    "{codec:?}"
                );
            }
        }
    }
}
