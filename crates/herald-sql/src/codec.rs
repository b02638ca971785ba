//! How an envelope is stored in a row, and read back.
//!
//! A row keeps the envelope's partition key and data in columns of their own and every
//! other attribute as its CloudEvents binary-mode headers
//! ([`Envelope::to_headers`]) in one `headers` blob:
//!
//! ```text
//! u32 count, then per header: u32 key length, key bytes (UTF-8),
//!                             i32 value length (-1 = null), value bytes
//! ```
//!
//! All integers little-endian. Reading runs [`Envelope::from_parts`] over the decoded
//! headers, so an envelope comes back exactly as it was written (id, type, time,
//! correlation, causation, trace context, extensions).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use herald::{Envelope, transport::Header};

use crate::error::{Error, Result};

/// Relay slots: every row belongs to slot `murmur2(key) mod RELAY_SLOTS`, and at most one
/// relay owns a slot at a time, so this is also the most relays that can work at once.
pub const RELAY_SLOTS: u32 = 16;

/// Encodes headers into the `headers` blob.
pub(crate) fn encode_headers(headers: &[Header]) -> Vec<u8> {
    let size: usize = headers
        .iter()
        .map(|h| 8 + h.key.len() + h.value.as_ref().map_or(0, Vec::len))
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for h in headers {
        out.extend_from_slice(&(h.key.len() as u32).to_le_bytes());
        out.extend_from_slice(h.key.as_bytes());
        match &h.value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&(-1i32).to_le_bytes()),
        }
    }
    out
}

/// Decodes the `headers` blob; `Err` names what is wrong.
pub(crate) fn decode_headers(mut buf: &[u8]) -> Result<Vec<Header>, String> {
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if buf.len() < n {
            return Err(format!(
                "headers truncated: {n} bytes needed, {} left",
                buf.len()
            ));
        }
        let (head, tail) = buf.split_at(n);
        *buf = tail;
        Ok(head)
    }
    fn int(buf: &mut &[u8]) -> Result<[u8; 4], String> {
        Ok(take(buf, 4)?.try_into().expect("4 bytes"))
    }
    let count = u32::from_le_bytes(int(&mut buf)?) as usize;
    let mut headers = Vec::with_capacity(count.min(buf.len() / 8));
    for _ in 0..count {
        let len = u32::from_le_bytes(int(&mut buf)?) as usize;
        let key = std::str::from_utf8(take(&mut buf, len)?)
            .map_err(|_| "header key is not UTF-8".to_owned())?
            .to_owned();
        let len = i32::from_le_bytes(int(&mut buf)?);
        let value = match len {
            -1 => None,
            n if n >= 0 => Some(take(&mut buf, n as usize)?.to_vec()),
            n => return Err(format!("header value length {n}")),
        };
        headers.push(Header { key, value });
    }
    if !buf.is_empty() {
        return Err(format!("{} bytes after the last header", buf.len()));
    }
    Ok(headers)
}

/// The relay slot of an envelope: by its key, or by its id when it has none.
pub(crate) fn slot_of(envelope: &Envelope) -> i32 {
    let hashed = match &envelope.key {
        Some(key) => herald::transport::murmur2(key),
        None => herald::transport::murmur2(envelope.id.as_bytes()),
    };
    ((hashed as u32 & 0x7fff_ffff) % RELAY_SLOTS) as i32
}

/// Milliseconds since the Unix epoch.
pub(crate) fn millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub(crate) fn now_ms() -> i64 {
    millis(SystemTime::now())
}

/// Rebuilds the envelope stored at `position`.
pub(crate) fn envelope(
    position: u64,
    key: Option<Vec<u8>>,
    headers: &[u8],
    data: Vec<u8>,
) -> Result<Envelope> {
    let corrupt = |reason: String| Error::Corrupt { position, reason };
    let headers = decode_headers(headers).map_err(corrupt)?;
    Envelope::from_parts(key.map(Bytes::from), Some(Bytes::from(data)), &headers)
        .map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_with_null_and_empty_values() {
        let headers = vec![
            Header::new("ce_id", "1"),
            Header::new("empty", ""),
            Header {
                key: "null".into(),
                value: None,
            },
            Header::new("bin", vec![0u8, 255, 7]),
        ];
        let bytes = encode_headers(&headers);
        assert_eq!(decode_headers(&bytes).unwrap(), headers);
        assert_eq!(decode_headers(&encode_headers(&[])).unwrap(), vec![]);
    }

    #[test]
    fn damaged_headers_are_errors_not_panics() {
        let bytes = encode_headers(&[Header::new("ce_id", "abc")]);
        for cut in 0..bytes.len() {
            assert!(decode_headers(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(
            decode_headers(&long)
                .unwrap_err()
                .contains("after the last")
        );
        let mut huge = bytes;
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_headers(&huge).is_err());
    }

    #[test]
    fn envelopes_round_trip_exactly() {
        let e = Envelope::new("urn:t", "t.happened", &b"{}"[..])
            .with_key("k-1")
            .with_correlation_id("c")
            .with_causation_id("d")
            .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .with_schema_version(3)
            .with_extension("x-tenant", "acme");
        let back = envelope(
            1,
            e.key.clone().map(|k| k.to_vec()),
            &encode_headers(&e.to_headers()),
            e.data.to_vec(),
        )
        .unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn slots_follow_the_key() {
        let a = Envelope::new("s", "t", Bytes::new()).with_key("order-1");
        let b = Envelope::new("s", "t", Bytes::new()).with_key("order-1");
        assert_eq!(slot_of(&a), slot_of(&b));
        let spread: std::collections::HashSet<i32> = (0..200)
            .map(|i| slot_of(&Envelope::new("s", "t", Bytes::new()).with_key(format!("k{i}"))))
            .collect();
        assert_eq!(spread.len(), RELAY_SLOTS as usize);
        assert!(spread.iter().all(|s| (0..RELAY_SLOTS as i32).contains(s)));
    }
}
