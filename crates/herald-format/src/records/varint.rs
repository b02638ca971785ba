//! Kafka's zig-zag varints and a bounds-checked reader over untrusted bytes.
//!
//! Overlong encodings are cut off where Java's `ByteUtils` cuts them off (5 bytes for a
//! varint, 10 for a varlong); bits past the target width in the last byte are dropped, as
//! Java does, so anything a Java client accepts decodes the same here.

use super::RecordError;

const VARINT_MAX_BYTES: usize = 5;
const VARLONG_MAX_BYTES: usize = 10;

/// Appends `value` as a zig-zag varint.
pub(super) fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends `value` as a zig-zag varlong.
pub(super) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes `put_varint(value)` writes.
pub(super) fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// Bytes `put_varlong(value)` writes.
pub(super) fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

fn unsigned_len(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// A cursor over bytes that came from outside: every read checks what is left first, so a
/// lying length can neither read out of bounds nor drive an allocation.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn position(&self) -> usize {
        self.pos
    }

    pub(super) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        if n > self.remaining() {
            return Err(RecordError::Truncated {
                field,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(super) fn i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        Ok(self.take(1, field)?[0] as i8)
    }

    fn unsigned(&mut self, max_bytes: usize, field: &'static str) -> Result<u64, RecordError> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.take(1, field)?[0];
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::VarintTooLong { field })
    }

    pub(super) fn varint(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let v = self.unsigned(VARINT_MAX_BYTES, field)? as u32;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    pub(super) fn varlong(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let v = self.unsigned(VARLONG_MAX_BYTES, field)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A length that must not be negative (header key, record length, counts).
    pub(super) fn length(&mut self, field: &'static str) -> Result<usize, RecordError> {
        let len = self.varint(field)?;
        usize::try_from(len).map_err(|_| RecordError::InvalidLength {
            field,
            value: i64::from(len),
        })
    }

    /// Length-prefixed bytes where -1 means null.
    pub(super) fn nullable_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<&'a [u8]>, RecordError> {
        match self.varint(field)? {
            -1 => Ok(None),
            len if len < 0 => Err(RecordError::InvalidLength {
                field,
                value: i64::from(len),
            }),
            len => self.take(len as usize, field).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_extremes_and_lengths_agree() {
        for v in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(Reader::new(&out).varint("t").unwrap(), v);
        }
        for v in [0, 1, -1, i64::from(i32::MAX) + 1, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_len(v), "{v}");
            assert_eq!(Reader::new(&out).varlong("t").unwrap(), v);
        }
    }

    #[test]
    fn zig_zag_matches_kafka_spec_examples() {
        let enc = |v| {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(-1), [0x01]);
        assert_eq!(enc(1), [0x02]);
        assert_eq!(enc(-64), [0x7f]);
        assert_eq!(enc(64), [0x80, 0x01]);
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let six = [0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(
            Reader::new(&six).varint("t"),
            Err(RecordError::VarintTooLong { .. })
        ));
        let eleven = [0xff; 11];
        assert!(matches!(
            Reader::new(&eleven).varlong("t"),
            Err(RecordError::VarintTooLong { .. })
        ));
        assert!(matches!(
            Reader::new(&[0x80]).varint("t"),
            Err(RecordError::Truncated { .. })
        ));
    }
}
