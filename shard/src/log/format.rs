//! The commit log's bytes, drawn once for its writer and its reader.
//!
//! A shard's log is a sequence of segment files `NNNNNNNNNNNNNNNNNNNN.log` (the segment number,
//! zero-padded so names sort in order) in the shard's `log/` directory.
//!
//! ```text
//! segment  := segment_header batch* zero_padding
//! segment_header (32 bytes)
//!   0  magic          8  b"TSRLOG\0\x01"
//!   8  format_version 4  u32 LE = 1
//!  12  segment        8  u64 LE, equal to the number in the file name
//!  20  first_record   8  u64 LE, sequence number of the segment's first record
//!  28  header_crc     4  CRC32C of bytes 0..28
//! batch (starts 8-byte aligned; one batch = one group-commit write)
//!   0  magic          4  u32 LE 0x48435442 ("BTCH")
//!   4  payload_len    4  u32 LE, bytes of records that follow the header
//!   8  first_record   8  u64 LE, sequence number of the batch's first record
//!  16  payload_crc    4  CRC32C of the payload
//!  20  header_crc     4  CRC32C of bytes 0..20
//!  24  payload        payload_len bytes: record*
//!      padding        zeros up to the next multiple of 8
//! record
//!   0  len            4  u32 LE, bytes of kind + body
//!   4  crc            4  CRC32C of kind + body
//!   8  kind           1  1 = object (the whole stored state of one key after a write)
//!   9  keyspace_len   1
//!  10  keyspace       keyspace_len bytes (UTF-8)
//!      key_len        4  u32 LE
//!      key            key_len bytes
//!      object         the rest: tessera_core::Object encoding
//! ```
//!
//! Why batches carry their own checksum when records do too: only the last batch can be torn
//! (one write is in flight at a time), so recovery drops a bad last batch whole, while a bad
//! batch followed by a good one is corruption. The record checksum pinpoints the record.
//! Values stored here are never renumbered.

use std::path::{Path, PathBuf};

use tessera_io::LogFormat;

/// Opens every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TSRLOG\0\x01";
/// The only format version so far.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// Opens every batch.
pub const BATCH_MAGIC: u32 = 0x4843_5442;
/// Bytes of a batch header.
pub const BATCH_HEADER_BYTES: usize = 24;
/// Batches start at multiples of this offset.
pub const BATCH_ALIGNMENT: usize = 8;
/// Bytes of a record's length and checksum.
pub const RECORD_HEADER_BYTES: usize = 8;
/// Record kind: the whole object of one key.
pub const RECORD_KIND_OBJECT: u8 = 1;
/// File name suffix of segments.
pub const SEGMENT_SUFFIX: &str = ".log";

/// Path of segment `segment` in `dir`.
pub fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}{SEGMENT_SUFFIX}"))
}

/// The segment number a file name stands for, if it is a segment's name.
pub fn parse_segment_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Draws a segment header.
pub fn encode_segment_header(segment: u64, first_record: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(SEGMENT_HEADER_BYTES);
    h.extend_from_slice(&SEGMENT_MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&segment.to_le_bytes());
    h.extend_from_slice(&first_record.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(h.len(), SEGMENT_HEADER_BYTES);
    h
}

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment number.
    pub segment: u64,
    /// First record's sequence number.
    pub first_record: u64,
}

/// Reads a segment header; `None` if the bytes are not a valid one.
pub fn decode_segment_header(bytes: &[u8]) -> Option<SegmentHeader> {
    let h = bytes.get(..SEGMENT_HEADER_BYTES)?;
    if h[..8] != SEGMENT_MAGIC || u32_at(h, 8)? != FORMAT_VERSION {
        return None;
    }
    if crc32c::crc32c(&h[..28]) != u32_at(h, 28)? {
        return None;
    }
    Some(SegmentHeader {
        segment: u64_at(h, 12)?,
        first_record: u64_at(h, 20)?,
    })
}

/// Fills a batch header for `payload`.
pub fn seal_batch_header(header: &mut [u8], payload: &[u8], first_record: u64) {
    assert_eq!(header.len(), BATCH_HEADER_BYTES, "batch header slot");
    let len = u32::try_from(payload.len()).expect("batch payload is bounded far below 4 GiB");
    header[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..16].copy_from_slice(&first_record.to_le_bytes());
    header[16..20].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let crc = crc32c::crc32c(&header[..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// A batch found valid at some offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Bytes of records.
    pub payload_len: usize,
    /// First record's sequence number.
    pub first_record: u64,
}

impl BatchHeader {
    /// Bytes from this batch's start to the next batch's start.
    pub fn total_len(&self) -> usize {
        (BATCH_HEADER_BYTES + self.payload_len).div_ceil(BATCH_ALIGNMENT) * BATCH_ALIGNMENT
    }
}

/// The batch header at the start of `bytes`, if its own checksum holds (the payload is not
/// checked).
pub fn decode_batch_header(bytes: &[u8]) -> Option<BatchHeader> {
    let h = bytes.get(..BATCH_HEADER_BYTES)?;
    if u32_at(h, 0)? != BATCH_MAGIC || crc32c::crc32c(&h[..20]) != u32_at(h, 20)? {
        return None;
    }
    Some(BatchHeader {
        payload_len: u32_at(h, 4)? as usize,
        first_record: u64_at(h, 8)?,
    })
}

/// The batch at the start of `bytes`, if its header and payload checksums hold.
pub fn decode_batch(bytes: &[u8]) -> Option<(BatchHeader, &[u8])> {
    let header = decode_batch_header(bytes)?;
    let end = BATCH_HEADER_BYTES.checked_add(header.payload_len)?;
    let payload = bytes.get(BATCH_HEADER_BYTES..end)?;
    if crc32c::crc32c(payload) != u32_at(bytes, 16)? {
        return None;
    }
    Some((header, payload))
}

/// Appends one object record for (keyspace, key) whose object encoding `encode_object`
/// writes. Returns nothing: the record's bounds are the caller's (checked before).
pub fn encode_object_record(
    out: &mut Vec<u8>,
    keyspace: &str,
    key: &[u8],
    encode_object: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    out.push(RECORD_KIND_OBJECT);
    let ks = u8::try_from(keyspace.len()).expect("keyspace names are validated to fit a byte");
    out.push(ks);
    out.extend_from_slice(keyspace.as_bytes());
    let key_len = u32::try_from(key.len()).expect("keys are validated far below 4 GiB");
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key);
    encode_object(out);
    let body = start + RECORD_HEADER_BYTES;
    let len = u32::try_from(out.len() - body).expect("records are bounded by the log");
    let crc = crc32c::crc32c(&out[body..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// One record decoded from a batch payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectRecord<'a> {
    /// Keyspace name.
    pub keyspace: &'a str,
    /// Key bytes.
    pub key: &'a [u8],
    /// The encoded object.
    pub object: &'a [u8],
}

/// Why a record inside a checksummed batch is not readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the record claims.
    #[error("record truncated")]
    Truncated,
    /// Record checksum mismatch.
    #[error("record checksum mismatch")]
    Checksum,
    /// Unknown kind byte.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// Fields inconsistent with the record length, or a keyspace that is not UTF-8.
    #[error("malformed record fields")]
    Malformed,
}

/// Splits the next record off `payload`, returning it and the rest.
pub fn decode_record(payload: &[u8]) -> Result<(ObjectRecord<'_>, &[u8]), RecordError> {
    let len = u32_at(payload, 0).ok_or(RecordError::Truncated)? as usize;
    let crc = u32_at(payload, 4).ok_or(RecordError::Truncated)?;
    let end = RECORD_HEADER_BYTES
        .checked_add(len)
        .ok_or(RecordError::Truncated)?;
    let body = payload
        .get(RECORD_HEADER_BYTES..end)
        .ok_or(RecordError::Truncated)?;
    if crc32c::crc32c(body) != crc {
        return Err(RecordError::Checksum);
    }
    let (&kind, rest) = body.split_first().ok_or(RecordError::Malformed)?;
    if kind != RECORD_KIND_OBJECT {
        return Err(RecordError::UnknownKind(kind));
    }
    let (&ks_len, rest) = rest.split_first().ok_or(RecordError::Malformed)?;
    let (ks, rest) = split(rest, usize::from(ks_len))?;
    let keyspace = std::str::from_utf8(ks).map_err(|_| RecordError::Malformed)?;
    let key_len = u32_at(rest, 0).ok_or(RecordError::Malformed)? as usize;
    let (key, object) = split(&rest[4..], key_len)?;
    let record = ObjectRecord {
        keyspace,
        key,
        object,
    };
    Ok((record, &payload[end..]))
}

fn split(bytes: &[u8], at: usize) -> Result<(&[u8], &[u8]), RecordError> {
    if at > bytes.len() {
        return Err(RecordError::Malformed);
    }
    Ok(bytes.split_at(at))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The format handed to io's group-commit writer.
#[derive(Debug)]
pub struct ShardLogFormat {
    dir: PathBuf,
}

impl ShardLogFormat {
    /// Format for the log in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

impl LogFormat for ShardLogFormat {
    fn batch_header_bytes(&self) -> usize {
        BATCH_HEADER_BYTES
    }
    fn batch_alignment(&self) -> usize {
        BATCH_ALIGNMENT
    }
    fn seal_batch(&self, header: &mut [u8], records: &[u8], first_record: u64) {
        seal_batch_header(header, records, first_record);
    }
    fn segment_header(&self, segment: u64, first_record: u64) -> Vec<u8> {
        encode_segment_header(segment, first_record)
    }
    fn segment_path(&self, segment: u64) -> PathBuf {
        segment_path(&self.dir, segment)
    }
}
