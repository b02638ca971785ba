//! Kafka framing: each request and response is an `i32` big-endian length followed by
//! that many bytes.

use bytes::BytesMut;
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
    if len > max {
        return Err(FrameError::TooLarge {
            size: len as i64,
            max,
        });
    }
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
    Ok(Some(buf))
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
