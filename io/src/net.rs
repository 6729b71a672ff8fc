//! Framed reading from a byte stream: frames are a little-endian `u32` body length followed by
//! the body (DESIGN §8; the body's meaning belongs to `schema/`).
//!
//! Invariants: the length is checked against the limit before any buffer grows for it, so an
//! oversized or hostile prefix never causes an allocation; the buffer holds at most one frame
//! limit plus one read chunk; many frames that arrive in one read are returned one by one
//! without further reads (pipelining costs no extra syscalls).

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt};

use crate::constants::FRAME_READ_CHUNK_BYTES;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameReadError {
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// The prefix announced more than the limit; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Announced body length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A zero-length frame, which no message encodes to.
    #[error("empty frame")]
    Empty,
    /// The peer closed the stream in the middle of a frame.
    #[error("connection closed in the middle of a frame ({have} of {want} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        have: usize,
        /// Bytes of the frame expected (prefix included).
        want: usize,
    },
}

/// Reads length-prefixed frames from `R`.
#[derive(Debug)]
pub struct FrameReader<R> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    limit: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader that refuses frame bodies longer than `limit` bytes.
    pub fn new(reader: R, limit: usize) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            start: 0,
            end: 0,
            limit,
        }
    }

    /// Whether bytes of a further frame are already buffered (no read needed to make progress).
    pub fn has_buffered(&self) -> bool {
        self.end > self.start
    }

    /// The next frame's body, or `None` when the peer closed the stream between frames.
    pub async fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameReadError> {
        loop {
            let want = match self.buffered_frame_len()? {
                Some(total) if self.end - self.start >= total => {
                    let body = self.start + LENGTH_PREFIX_BYTES..self.start + total;
                    self.start += total;
                    return Ok(Some(&self.buf[body]));
                }
                Some(total) => total,
                None => LENGTH_PREFIX_BYTES,
            };
            if !self.fill(want).await? {
                let have = self.end - self.start;
                return if have == 0 {
                    Ok(None)
                } else {
                    Err(FrameReadError::Truncated { have, want })
                };
            }
        }
    }

    /// Total length (prefix included) of the frame at `start`, if its prefix is buffered.
    fn buffered_frame_len(&self) -> Result<Option<usize>, FrameReadError> {
        if self.end - self.start < LENGTH_PREFIX_BYTES {
            return Ok(None);
        }
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        prefix.copy_from_slice(&self.buf[self.start..self.start + LENGTH_PREFIX_BYTES]);
        let len = u32::from_le_bytes(prefix) as usize;
        if len == 0 {
            return Err(FrameReadError::Empty);
        }
        if len > self.limit {
            return Err(FrameReadError::TooLarge {
                len,
                limit: self.limit,
            });
        }
        Ok(Some(LENGTH_PREFIX_BYTES + len))
    }

    /// Reads at least one more byte, making room for a frame of `want` bytes. Returns false at
    /// end of stream.
    async fn fill(&mut self, want: usize) -> Result<bool, FrameReadError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 4 * FRAME_READ_CHUNK_BYTES {
                self.buf = Vec::new();
            }
        } else if self.start + want > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // Memory follows the bytes that actually arrived, not the length a peer announced: a
        // peer that announces a large frame and stalls pins at most one chunk more than it
        // sent. Growth at least doubles what is buffered, so copying stays linear. `want` is
        // bounded by limit + prefix (checked above), so this growth is bounded too.
        let have = self.end - self.start;
        let target = want.min((have + FRAME_READ_CHUNK_BYTES).max(2 * have));
        let needed = (self.start + target).max(self.end + FRAME_READ_CHUNK_BYTES / 4);
        if self.buf.len() < needed {
            let grown = needed.max(FRAME_READ_CHUNK_BYTES.min(self.limit + LENGTH_PREFIX_BYTES));
            self.buf.resize(grown, 0);
        }
        let n = self.reader.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use futures_lite::io::Cursor;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reads_many_frames_from_one_buffer_and_stops_cleanly() {
        let mut bytes = frame(b"one");
        bytes.extend(frame(&[7u8; 100_000]));
        bytes.extend(frame(b"three"));
        let mut r = FrameReader::new(Cursor::new(bytes), 1 << 20);
        block_on(async {
            assert_eq!(r.next_frame().await.unwrap().unwrap(), b"one");
            assert_eq!(r.next_frame().await.unwrap().unwrap().len(), 100_000);
            assert_eq!(r.next_frame().await.unwrap().unwrap(), b"three");
            assert!(r.next_frame().await.unwrap().is_none());
        });
    }

    #[test]
    fn oversized_prefix_is_refused_before_allocation() {
        let bytes = u32::MAX.to_le_bytes().to_vec();
        let mut r = FrameReader::new(Cursor::new(bytes), 1024);
        let err = block_on(r.next_frame()).unwrap_err();
        assert!(
            matches!(err, FrameReadError::TooLarge { len, limit: 1024 } if len == u32::MAX as usize)
        );
        assert!(
            r.buf.len() <= FRAME_READ_CHUNK_BYTES,
            "buffer grew to {}",
            r.buf.len()
        );
    }

    #[test]
    fn an_announced_frame_grows_the_buffer_only_as_bytes_arrive() {
        let mut bytes = (4u32 << 20).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[1u8; 100]);
        let mut r = FrameReader::new(Cursor::new(bytes), 8 << 20);
        let err = block_on(r.next_frame()).unwrap_err();
        assert!(
            matches!(err, FrameReadError::Truncated { have: 104, .. }),
            "{err:?}"
        );
        assert!(
            r.buf.len() <= 2 * FRAME_READ_CHUNK_BYTES,
            "buffer grew to {}",
            r.buf.len()
        );
    }

    #[test]
    fn truncated_frame_and_empty_frame_are_errors() {
        let mut bytes = frame(b"hello");
        bytes.truncate(6);
        let mut r = FrameReader::new(Cursor::new(bytes), 1024);
        assert!(matches!(
            block_on(r.next_frame()),
            Err(FrameReadError::Truncated { have: 6, want: 9 })
        ));
        let mut r = FrameReader::new(Cursor::new(vec![0u8; 4]), 1024);
        assert!(matches!(
            block_on(r.next_frame()),
            Err(FrameReadError::Empty)
        ));
    }
}
