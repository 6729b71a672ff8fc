//! Framing: `[u32 little-endian body length][body]`, and an incremental frame reader.
//!
//! Client and peer connections frame alike; only the ceiling differs ([`FRAME_BYTES_MAX`] for
//! client frames, [`PEER_FRAME_BYTES_MAX`] for node-to-node frames, see
//! [`FrameBuffer::for_peers`]).
//!
//! Invariants:
//! - A length read off the wire is checked against the limit ([`frame_body_len`],
//!   [`peer_frame_body_len`]) before any memory is sized from it. A zero length is refused (no
//!   message encodes to nothing).
//! - A [`FrameBuffer`] filled through [`FrameBuffer::read_from`] or [`FrameBuffer::spare_mut`]
//!   never holds more than `FRAME_HEADER_BYTES + limit` bytes, and grows only with the bytes
//!   that actually arrived (at most twice them plus one read chunk): a peer pins memory by
//!   sending data, not by announcing a large frame.
//! - Frames come out whole, in order, exactly as sent; bytes after a frame stay buffered for the
//!   next one.
//! - A framing error is sticky: the stream is out of sync and the connection must be closed.
#![forbid(unsafe_code)]

use std::io;

use crate::error::FrameError;
use crate::limits::{
    FRAME_BUFFER_RETAINED_BYTES_MAX, FRAME_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_READ_CHUNK_BYTES,
    PEER_FRAME_BYTES_MAX,
};

/// Body length announced by a client frame header, checked against
/// `min(limit, FRAME_BYTES_MAX)`.
///
/// Call this before allocating anything for the body.
pub fn frame_body_len(header: [u8; FRAME_HEADER_BYTES], limit: usize) -> Result<usize, FrameError> {
    body_len_within(header, limit.min(FRAME_BYTES_MAX))
}

/// Body length announced by a peer frame header, checked against
/// `min(limit, PEER_FRAME_BYTES_MAX)`.
///
/// Call this before allocating anything for the body.
pub fn peer_frame_body_len(
    header: [u8; FRAME_HEADER_BYTES],
    limit: usize,
) -> Result<usize, FrameError> {
    body_len_within(header, limit.min(PEER_FRAME_BYTES_MAX))
}

/// Body length announced by `header`, checked against `limit` (already capped by the caller).
fn body_len_within(header: [u8; FRAME_HEADER_BYTES], limit: usize) -> Result<usize, FrameError> {
    // u32 always fits in usize on the 64-bit targets Tessera runs on; saturate elsewhere so the
    // comparison below still refuses.
    let len = usize::try_from(u32::from_le_bytes(header)).unwrap_or(usize::MAX);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    Ok(len)
}

/// Header for a body of `body_len` bytes.
///
/// # Panics
/// If `body_len` does not fit in a `u32`. Bodies come from this process's own encoder, which
/// flatbuffers caps at 2 GiB, so that would be a bug here, not bad input.
pub fn frame_header(body_len: usize) -> [u8; FRAME_HEADER_BYTES] {
    let len = u32::try_from(body_len).expect("frame body over 4 GiB: flatbuffers caps at 2 GiB");
    len.to_le_bytes()
}

/// Incremental frame reader for one byte stream (one connection).
///
/// Feed it bytes with [`read_from`](Self::read_from) (a blocking reader),
/// [`spare_mut`](Self::spare_mut) + [`commit`](Self::commit) (an async or io_uring read into its
/// buffer), or [`extend`](Self::extend) (bytes already in hand); take frame bodies out with
/// [`next_frame`](Self::next_frame) (owned) or [`next_frame_ref`](Self::next_frame_ref)
/// (borrowed, no copy). Drain every complete frame before reading again.
#[derive(Debug)]
pub struct FrameBuffer {
    /// Backing storage, always initialized (so reads go straight into it without `unsafe`).
    /// Live bytes are `buf[start..end]`; `buf[end..]` is spare room for the next read.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Body limit, already capped at `FRAME_BYTES_MAX` (`PEER_FRAME_BYTES_MAX` for peers).
    limit: usize,
}

impl Default for FrameBuffer {
    /// A buffer with the protocol's ceiling, [`FRAME_BYTES_MAX`], as its limit.
    fn default() -> Self {
        FrameBuffer::new(FRAME_BYTES_MAX)
    }
}

impl FrameBuffer {
    /// An empty buffer refusing bodies over `min(limit, FRAME_BYTES_MAX)`. Allocates nothing
    /// until bytes arrive.
    pub fn new(limit: usize) -> Self {
        FrameBuffer::with_ceiling(limit.min(FRAME_BYTES_MAX))
    }

    /// An empty buffer for a peer (node-to-node) connection, refusing bodies over
    /// `min(limit, PEER_FRAME_BYTES_MAX)`. Allocates nothing until bytes arrive.
    pub fn for_peers(limit: usize) -> Self {
        FrameBuffer::with_ceiling(limit.min(PEER_FRAME_BYTES_MAX))
    }

    fn with_ceiling(limit: usize) -> Self {
        FrameBuffer {
            buf: Vec::new(),
            start: 0,
            end: 0,
            limit,
        }
    }

    /// The body limit in force.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered_len(&self) -> usize {
        self.end - self.start
    }

    /// Whether no bytes are buffered (a clean place for the peer to close the stream).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes of memory the buffer holds, for accounting and tests.
    pub fn allocated_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Most bytes this buffer holds when fed by reads: one header plus one maximal body.
    fn held_bytes_max(&self) -> usize {
        FRAME_HEADER_BYTES + self.limit
    }

    /// Reads once from `reader` into the buffer and returns the number of bytes read (0 at end
    /// of stream). Never reads past `FRAME_HEADER_BYTES + limit` buffered bytes.
    ///
    /// Errors with `InvalidInput` if the buffer is full, which only happens when the caller did
    /// not drain complete frames (or ignored a framing error) before reading again.
    pub fn read_from(&mut self, reader: &mut impl io::Read) -> io::Result<usize> {
        let spare = self.spare_mut();
        if spare.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame buffer is full: call next_frame until it returns None before reading again",
            ));
        }
        let read = reader.read(spare)?;
        self.commit(read);
        Ok(read)
    }

    /// Room to read into; empty only if the buffer already holds `FRAME_HEADER_BYTES + limit`
    /// bytes. The buffer grows only as far as the frame being received needs, and at most
    /// doubles per call, so its memory follows the bytes actually received. Follow with
    /// [`commit`](Self::commit).
    pub fn spare_mut(&mut self) -> &mut [u8] {
        self.make_room();
        &mut self.buf[self.end..]
    }

    /// Marks `len` bytes at the start of [`spare_mut`](Self::spare_mut) as received.
    ///
    /// # Panics
    /// If `len` is larger than the spare room: the caller wrote past the slice it was given.
    pub fn commit(&mut self, len: usize) {
        let spare = self.buf.len() - self.end;
        assert!(
            len <= spare,
            "committed {len} bytes but only {spare} were spare"
        );
        self.end += len;
    }

    /// Appends bytes the caller already holds. Unlike reads this buffers all of them, even past
    /// `FRAME_HEADER_BYTES + limit` (the caller's memory is already spent); frame headers are
    /// still checked before frames are returned.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.buf.len() - self.end < bytes.len() {
            self.compact();
            let needed = self.end + bytes.len();
            if self.buf.len() < needed {
                self.buf.resize(needed, 0);
            }
        }
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// The next complete frame body, copied out. `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        Ok(self.next_frame_ref()?.map(<[u8]>::to_vec))
    }

    /// The next complete frame body, borrowed from the buffer (valid until the buffer is used
    /// again). `Ok(None)` if more bytes are needed. After an error the stream is out of sync:
    /// the same error is returned again, and the connection must be closed.
    pub fn next_frame_ref(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let Some(body_len) = self.pending_body_len()? else {
            return Ok(None);
        };
        let body_start = self.start + FRAME_HEADER_BYTES;
        let body_end = body_start + body_len;
        if body_end > self.end {
            return Ok(None);
        }
        self.start = body_end;
        Ok(Some(&self.buf[body_start..body_end]))
    }

    /// Body length of the frame at the front, once its header has arrived.
    fn pending_body_len(&self) -> Result<Option<usize>, FrameError> {
        match self.buf[self.start..self.end].first_chunk::<FRAME_HEADER_BYTES>() {
            Some(header) => body_len_within(*header, self.limit).map(Some),
            None => Ok(None),
        }
    }

    /// Ensures there is spare room after `end`, sized for what is coming, without ever growing
    /// the buffer past `held_bytes_max`.
    fn make_room(&mut self) {
        if self.is_empty() {
            self.start = 0;
            self.end = 0;
            self.release_excess();
        }
        let buffered = self.buffered_len();
        let frame_bytes = match self.pending_body_len() {
            Ok(Some(body_len)) => FRAME_HEADER_BYTES + body_len,
            // No header yet, or a bad one (the caller will see the error): read a chunk.
            Ok(None) | Err(_) => 0,
        };
        let wanted = if frame_bytes > buffered {
            // Grow towards the announced size by doubling what has actually arrived, not to the
            // announced size at once: a peer that sends a large header and stalls must not pin
            // `limit` bytes of memory. Doubling keeps the copying linear in the frame size.
            let doubled = (buffered + FRAME_READ_CHUNK_BYTES).max(buffered.saturating_mul(2));
            doubled.min(frame_bytes)
        } else {
            buffered + FRAME_READ_CHUNK_BYTES
        }
        .min(self.held_bytes_max());
        if self.buf.len() - self.start >= wanted {
            return;
        }
        self.compact();
        if self.buf.len() < wanted {
            // `resize` reserves exactly what is missing when growing past capacity, so capacity
            // stays at most `held_bytes_max`.
            self.buf.reserve_exact(wanted - self.buf.len());
            self.buf.resize(wanted, 0);
        }
    }

    /// Moves the live bytes to the front so the spare room is contiguous.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Gives back memory a large frame made the (now empty) buffer grow to.
    fn release_excess(&mut self) {
        debug_assert!(self.is_empty());
        if self.buf.capacity() > FRAME_BUFFER_RETAINED_BYTES_MAX {
            self.buf.truncate(FRAME_BUFFER_RETAINED_BYTES_MAX);
            self.buf.shrink_to(FRAME_BUFFER_RETAINED_BYTES_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut bytes = frame_header(body.len()).to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn body_len_checks_zero_and_limit() {
        assert_eq!(frame_body_len(5u32.to_le_bytes(), 5), Ok(5));
        assert_eq!(
            frame_body_len(0u32.to_le_bytes(), 5),
            Err(FrameError::Empty)
        );
        assert_eq!(
            frame_body_len(6u32.to_le_bytes(), 5),
            Err(FrameError::TooLarge { len: 6, limit: 5 })
        );
        // A caller's limit above the ceiling is capped at the ceiling.
        let over = u32::try_from(FRAME_BYTES_MAX + 1).unwrap();
        assert_eq!(
            frame_body_len(over.to_le_bytes(), usize::MAX),
            Err(FrameError::TooLarge {
                len: FRAME_BYTES_MAX + 1,
                limit: FRAME_BYTES_MAX
            })
        );
        assert!(frame_body_len(u32::MAX.to_le_bytes(), usize::MAX).is_err());
    }

    #[test]
    fn many_frames_in_one_extend() {
        let bodies: Vec<Vec<u8>> = (1..50u8).map(|n| vec![n; usize::from(n)]).collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        let mut buffer = FrameBuffer::new(1024);
        buffer.extend(&stream);
        for body in &bodies {
            assert_eq!(buffer.next_frame().unwrap().as_ref(), Some(body));
        }
        assert_eq!(buffer.next_frame().unwrap(), None);
        assert!(buffer.is_empty());
    }

    #[test]
    fn frames_split_at_every_byte_boundary() {
        let bodies = [vec![1u8], vec![2; 300], vec![3; 7]];
        let stream: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        for split in 0..=stream.len() {
            let mut buffer = FrameBuffer::new(1024);
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                buffer.extend(part);
                while let Some(body) = buffer.next_frame().unwrap() {
                    got.push(body);
                }
            }
            assert_eq!(got, bodies, "split at {split}");
            assert!(buffer.is_empty());
        }
    }

    #[test]
    fn byte_at_a_time_reads() {
        let bodies = [vec![9u8; 40], vec![8; 1], vec![7; 2000]];
        let stream: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        let mut reader = OneByteReader(&stream);
        let mut buffer = FrameBuffer::new(4096);
        let mut got = Vec::new();
        while buffer.read_from(&mut reader).unwrap() > 0 {
            while let Some(body) = buffer.next_frame_ref().unwrap() {
                got.push(body.to_vec());
            }
        }
        assert_eq!(got, bodies);
    }

    #[test]
    fn oversized_header_is_refused_before_buffering() {
        let limit = 1000;
        let mut stream = u32::MAX.to_le_bytes().to_vec();
        stream.extend_from_slice(&[0u8; 100_000]);
        let mut reader = &stream[..];
        let mut buffer = FrameBuffer::new(limit);
        // Even a reader with unlimited bytes cannot make the buffer hold more than one frame.
        for _ in 0..100 {
            if buffer.read_from(&mut reader).is_err() {
                break;
            }
        }
        assert!(buffer.allocated_bytes() <= FRAME_HEADER_BYTES + limit);
        let refused = Err(FrameError::TooLarge {
            len: u32::MAX as usize,
            limit,
        });
        assert_eq!(buffer.next_frame(), refused);
        // Sticky: the stream is out of sync.
        assert_eq!(buffer.next_frame(), refused);
    }

    #[test]
    fn a_frame_at_the_limit_is_read_whole_without_overshoot() {
        let limit = 3 * FRAME_READ_CHUNK_BYTES + 17;
        let body = vec![0xAB; limit];
        let stream = [frame(&body), frame(&[1, 2, 3])].concat();
        let mut reader = &stream[..];
        let mut buffer = FrameBuffer::new(limit);
        let mut got = Vec::new();
        while buffer.read_from(&mut reader).unwrap() > 0 {
            assert!(buffer.allocated_bytes() <= FRAME_HEADER_BYTES + limit);
            while let Some(body) = buffer.next_frame().unwrap() {
                got.push(body);
            }
        }
        assert_eq!(got, vec![body, vec![1, 2, 3]]);
    }

    #[test]
    fn announcing_a_large_frame_does_not_pin_memory() {
        let limit = FRAME_BYTES_MAX;
        let mut stream = u32::try_from(limit).unwrap().to_le_bytes().to_vec();
        stream.extend_from_slice(&[1u8; 100]);
        let mut reader = &stream[..];
        let mut buffer = FrameBuffer::new(limit);
        while buffer.read_from(&mut reader).unwrap() > 0 {}
        assert_eq!(buffer.next_frame(), Ok(None));
        assert!(buffer.allocated_bytes() <= 2 * FRAME_READ_CHUNK_BYTES);
    }

    #[test]
    fn memory_is_given_back_after_a_large_frame() {
        let body = vec![5u8; 4 * FRAME_BUFFER_RETAINED_BYTES_MAX];
        let stream = frame(&body);
        let mut reader = &stream[..];
        let mut buffer = FrameBuffer::default();
        while buffer.next_frame().unwrap().is_none() {
            buffer.read_from(&mut reader).unwrap();
        }
        assert!(buffer.allocated_bytes() > FRAME_BUFFER_RETAINED_BYTES_MAX);
        buffer.spare_mut();
        assert!(buffer.allocated_bytes() <= FRAME_BUFFER_RETAINED_BYTES_MAX);
    }

    #[test]
    fn zero_length_frame_is_refused() {
        let mut buffer = FrameBuffer::new(10);
        buffer.extend(&[0, 0, 0, 0, 1]);
        assert_eq!(buffer.next_frame(), Err(FrameError::Empty));
    }

    #[test]
    fn full_buffer_refuses_to_read() {
        let mut buffer = FrameBuffer::new(4);
        let stream = frame(&[1, 2, 3, 4]);
        let mut reader = &stream[..];
        while buffer.buffered_len() < stream.len() {
            buffer.read_from(&mut reader).unwrap();
        }
        assert_eq!(
            buffer.read_from(&mut &[9u8][..]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(buffer.next_frame().unwrap(), Some(vec![1, 2, 3, 4]));
    }

    struct OneByteReader<'a>(&'a [u8]);

    impl io::Read for OneByteReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = first;
            self.0 = rest;
            Ok(1)
        }
    }
}
