//! Kafka framing: each request and response is an `i32` big-endian length followed by
//! that many bytes.

use bytes::BytesMut;

use crate::request_budget::{RequestBudget, Reservation};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes read from the socket per step while filling a large frame, so that a client that
/// declares a large frame but sends little does not make us allocate it all up front.
const READ_CHUNK: usize = 64 * 1024;

/// A frame up to this size gets its whole buffer at once: producers send batches of up
/// to 1 MiB (librdkafka's and the Java client's default `batch.size` limits), and growing
/// the buffer chunk by chunk would copy such a frame once more. Larger frames grow as
/// their bytes arrive.
const WHOLE_ALLOC: usize = 1024 * 1024 + 64 * 1024;

/// Why a frame could not be read. Each of these closes the connection.
#[derive(Debug, Error)]
pub(crate) enum FrameError {
    /// The declared length is above the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes (max_frame_bytes)")]
    TooLarge {
        /// Declared length.
        size: i64,
        /// Configured maximum.
        max: usize,
    },
    /// The "length" is the start of a TLS record: a client configured for SSL or
    /// SASL_SSL connected to this plaintext listener.
    #[error("the client started a TLS handshake on the plaintext Kafka listener")]
    TlsHandshake,
    /// The declared length is negative.
    #[error("frame length {0} is negative")]
    NegativeLength(i32),
    /// The peer closed the connection inside a frame.
    #[error("connection closed inside a frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the frame (or its length prefix) should have had.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame's payload. `Ok(None)` when the peer closed the connection cleanly
/// between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<BytesMut>, FrameError> {
    read_frame_within(reader, max, None)
        .await
        .map(|f| f.map(|(frame, _)| frame))
}

/// [`read_frame`], with the frame's bytes taken from `budget` before its buffer is
/// allocated; the reservation comes back with the frame and is held until it is handled.
pub(crate) async fn read_frame_within<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
    budget: Option<&RequestBudget>,
) -> Result<Option<(BytesMut, Option<Reservation>)>, FrameError> {
    let mut len_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut len_buf[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated { expected: 4, got })
            };
        }
        got += n;
    }
    let len = i32::from_be_bytes(len_buf);
    if len < 0 {
        return Err(FrameError::NegativeLength(len));
    }
    let len = len as usize;
    if len > max && looks_like_tls(len_buf) {
        return Err(FrameError::TlsHandshake);
    }
    if len > max {
        return Err(FrameError::TooLarge {
            size: len as i64,
            max,
        });
    }
    let reservation = match budget {
        Some(b) => Some(b.reserve(len).await),
        None => None,
    };
    let mut buf = BytesMut::with_capacity(if len <= WHOLE_ALLOC { len } else { READ_CHUNK });
    while buf.len() < len {
        buf.reserve((len - buf.len()).min(READ_CHUNK));
        let want = len - buf.len();
        let n = (&mut *reader).take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                expected: len,
                got: buf.len(),
            });
        }
    }
    Ok(Some((buf, reservation)))
}

/// A TLS record header (content type 22, handshake; protocol version 3.x), which read as
/// a length is above 369 MB: never a Kafka frame below the maximum.
fn looks_like_tls(prefix: [u8; 4]) -> bool {
    prefix[0] == 0x16 && prefix[1] == 0x03 && prefix[2] <= 0x04
}

/// Writes one already-framed buffer (length prefix included) and flushes it.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    framed: &[u8],
) -> std::io::Result<()> {
    writer.write_all(framed).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Option<BytesMut>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max).await
    }

    #[tokio::test]
    async fn frames_are_length_prefixed() {
        let mut input = vec![0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0];
        let mut r = &input[..];
        assert_eq!(&read_frame(&mut r, 10).await.unwrap().unwrap()[..], b"abc");
        assert_eq!(read_frame(&mut r, 10).await.unwrap().unwrap().len(), 0);
        assert!(read_frame(&mut r, 10).await.unwrap().is_none());
        input.truncate(5);
        assert!(matches!(
            read(&input, 10).await,
            Err(FrameError::Truncated {
                expected: 3,
                got: 1
            })
        ));
    }

    #[tokio::test]
    async fn a_tls_client_hello_is_told_apart_from_a_large_frame() {
        // TLS 1.0-1.3 record headers of a ClientHello: 16 03 01 (or 03 03) + length.
        for hello in [[0x16, 0x03, 0x01, 0x02], [0x16, 0x03, 0x03, 0x00]] {
            let mut bytes = hello.to_vec();
            bytes.extend_from_slice(&[1u8; 64]);
            assert!(matches!(
                read(&bytes, 100 << 20).await,
                Err(FrameError::TlsHandshake)
            ));
        }
        assert!(matches!(
            read(&[0x17, 0x03, 0x01, 0x00], 100 << 20).await,
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn bad_lengths_are_refused_before_allocating() {
        assert!(matches!(
            read(&[0x7f, 0xff, 0xff, 0xff], 1 << 20).await,
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            read(&[0xff, 0xff, 0xff, 0xfe], 1 << 20).await,
            Err(FrameError::NegativeLength(-2))
        ));
        assert!(matches!(
            read(&[0, 0], 1 << 20).await,
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        ));
    }
}
