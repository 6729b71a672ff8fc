//! A RESP connection's input: bytes read from the socket and not yet parsed.
//!
//! Invariants: the buffer never grows past the command bound plus one read chunk (the caller
//! refuses a command that does not fit before reading more); reads are at least as large as
//! what is already buffered, so a large command arrives in a few reads and the bytes moved to
//! the front stay linear in its size; a drained buffer left large by a big command is freed.

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt};

use crate::constants::{RESP_READ_CHUNK_BYTES, RESP_READ_RETAINED_BYTES_MAX};

/// Unparsed input, `buf[start..end]`.
#[derive(Debug)]
pub struct Input<R> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> Input<R> {
    /// Input from `reader`, with nothing buffered yet.
    pub fn new(reader: R) -> Self {
        Input {
            reader,
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The bytes read and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops `used` bytes from the front (a parsed command).
    pub fn consume(&mut self, used: usize) {
        debug_assert!(used <= self.end - self.start, "consumed more than buffered");
        self.start = (self.start + used).min(self.end);
    }

    /// Reads more; false at end of stream. `command_bytes_max` bounds the buffer: call only
    /// while fewer bytes than that are buffered.
    pub async fn fill(&mut self, command_bytes_max: usize) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > RESP_READ_RETAINED_BYTES_MAX {
                self.buf = Vec::new();
            }
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // Always more than `end` (the caller keeps `end` under the bound), so a read of zero
        // bytes means the end of the stream, never a full buffer.
        let target = (self.end + self.end.max(RESP_READ_CHUNK_BYTES))
            .min(command_bytes_max + RESP_READ_CHUNK_BYTES);
        if self.buf.len() < target {
            self.buf.resize(target, 0);
        }
        let n = self.reader.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures_lite::future::block_on;
    use futures_lite::io::Cursor;

    use super::*;

    #[test]
    fn keeps_unconsumed_bytes_and_bounds_the_buffer() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut input = Input::new(Cursor::new(data.clone()));
        block_on(async {
            assert!(input.fill(100_000).await.unwrap());
            let first = input.buffered().len();
            assert!(first >= RESP_READ_CHUNK_BYTES);
            input.consume(10);
            while input.buffered().len() < 100_000 {
                assert!(input.fill(100_000).await.unwrap());
            }
            assert_eq!(input.buffered(), &data[10..10 + input.buffered().len()]);
            assert!(input.buf.len() <= 100_000 + RESP_READ_CHUNK_BYTES);
            let len = input.buffered().len();
            input.consume(len);
            while input.fill(100_000).await.unwrap() {
                let len = input.buffered().len();
                input.consume(len);
            }
            assert!(input.buffered().is_empty());
        });
    }
}
