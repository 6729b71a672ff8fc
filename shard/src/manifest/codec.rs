//! The manifest's bytes and CURRENT's bytes, drawn once for the writer and the reader.
//!
//! ```text
//! MANIFEST-<seq, 20 decimal digits>
//!   0  magic          8  b"TSRMANI\x01"
//!   8  format_version 4  u32 LE = 1
//!  12  body_len       4  u32 LE, bytes of body that follow
//!  16  body           body_len bytes
//!      crc            4  u32 LE, CRC32C of bytes 0..16+body_len (header and body)
//! body
//!   0  seq            8  u64 LE, equal to the number in the file name
//!   8  next_table_id  8  u64 LE, greater than every live table id
//!  16  log_floor      8  u64 LE, first commit-log segment still needed
//!  24  table_count    4  u32 LE, <= MANIFEST_TABLES_MAX
//!  28  table*         table_count of:
//! table
//!   0  id             8  u64 LE
//!   8  level          1  < MANIFEST_LEVELS_MAX
//!   9  entry_count    8  u64 LE
//!  17  file_size      8  u64 LE
//!  25  smallest_len   4  u32 LE, <= MANIFEST_KEY_BYTES_MAX
//!      smallest       smallest_len bytes
//!      largest_len    4  u32 LE, <= MANIFEST_KEY_BYTES_MAX
//!      largest        largest_len bytes (smallest <= largest)
//!
//! CURRENT (39 bytes of ASCII)
//!   "MANIFEST-" seq(20 decimal digits) " " crc(8 lowercase hex digits) "\n"
//!   crc = CRC32C of the first 29 bytes (the file name)
//! ```
//!
//! CURRENT names seq 0 for "the empty manifest, no file" (see the parent module for why).
//! The reader checks the whole-file length against `MANIFEST_BYTES_MAX` before reading, the
//! CRC before parsing, and every length against the bytes left before slicing; bad bytes are
//! a [`Corruption`], never a panic. Values stored here are never renumbered.

use super::{Manifest, TableMeta};

/// Opens every manifest file.
pub const MAGIC: [u8; 8] = *b"TSRMANI\x01";
/// The only format version so far.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the body: magic, version, body length.
pub const HEADER_BYTES: usize = 16;
/// Bytes of the trailing checksum.
pub const CRC_BYTES: usize = 4;
/// Fixed bytes of one table entry (everything but the two keys).
const TABLE_FIXED_BYTES: usize = 8 + 1 + 8 + 8 + 4 + 4;
/// Fixed bytes of the body before the tables.
const BODY_FIXED_BYTES: usize = 8 + 8 + 8 + 4;

/// Prefix of manifest file names.
pub const MANIFEST_PREFIX: &str = "MANIFEST-";
/// Digits of the sequence number in a manifest file name (enough for any u64).
const SEQ_DIGITS: usize = 20;
/// Bytes of the file name part of CURRENT.
const CURRENT_NAME_BYTES: usize = MANIFEST_PREFIX.len() + SEQ_DIGITS;
/// Bytes of CURRENT: name, space, 8 hex digits, newline.
pub const CURRENT_BYTES: usize = CURRENT_NAME_BYTES + 1 + 8 + 1;

/// The file name of manifest `seq`; zero-padded so names sort in sequence order.
pub fn manifest_name(seq: u64) -> String {
    format!("{MANIFEST_PREFIX}{seq:0width$}", width = SEQ_DIGITS)
}

/// The sequence number in a manifest file name, or `None` if `name` is not one exactly.
pub fn parse_manifest_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(MANIFEST_PREFIX)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// CURRENT's content naming manifest `seq`.
pub fn encode_current(seq: u64) -> Vec<u8> {
    let name = manifest_name(seq);
    let crc = crc32c::crc32c(name.as_bytes());
    format!("{name} {crc:08x}\n").into_bytes()
}

/// The sequence number CURRENT names.
pub fn decode_current(bytes: &[u8]) -> Result<u64, Corruption> {
    if bytes.len() != CURRENT_BYTES {
        return Err(Corruption::CurrentLength {
            len: bytes.len(),
            expected: CURRENT_BYTES,
        });
    }
    let (name, rest) = bytes.split_at(CURRENT_NAME_BYTES);
    // Lowercase hex only, as written: `from_str_radix` would also take uppercase, and a
    // flipped case bit would then pass unnoticed.
    let crc_text = rest
        .get(1..9)
        .filter(|t| {
            t.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        })
        .and_then(|t| std::str::from_utf8(t).ok());
    let stored = crc_text.and_then(|t| u32::from_str_radix(t, 16).ok());
    if rest[0] != b' ' || rest[9] != b'\n' || stored.is_none() {
        return Err(Corruption::CurrentSyntax);
    }
    if stored != Some(crc32c::crc32c(name)) {
        return Err(Corruption::Checksum);
    }
    std::str::from_utf8(name)
        .ok()
        .and_then(parse_manifest_name)
        .ok_or(Corruption::CurrentSyntax)
}

/// Bytes `encode` will produce for `manifest`, to bound it before building it.
pub fn encoded_len(manifest: &Manifest) -> usize {
    let tables: usize = manifest
        .tables
        .iter()
        .map(|t| TABLE_FIXED_BYTES + t.smallest.len() + t.largest.len())
        .sum();
    HEADER_BYTES + BODY_FIXED_BYTES + tables + CRC_BYTES
}

/// The file image of `manifest`. The caller has validated it (lengths within the maxima, so
/// every `as u32` below is lossless).
pub fn encode(manifest: &Manifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(manifest));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // body_len, filled in below
    out.extend_from_slice(&manifest.seq.to_le_bytes());
    out.extend_from_slice(&manifest.next_table_id.to_le_bytes());
    out.extend_from_slice(&manifest.log_floor.to_le_bytes());
    out.extend_from_slice(&(manifest.tables.len() as u32).to_le_bytes());
    for t in &manifest.tables {
        out.extend_from_slice(&t.id.to_le_bytes());
        out.push(t.level);
        out.extend_from_slice(&t.entry_count.to_le_bytes());
        out.extend_from_slice(&t.file_size.to_le_bytes());
        for key in [&t.smallest, &t.largest] {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
        }
    }
    let body_len = (out.len() - HEADER_BYTES) as u32;
    out[12..16].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads fields off the front of a byte slice, checking every length first.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Corruption> {
        if n > self.bytes.len() {
            return Err(Corruption::Truncated { field });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Corruption> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, Corruption> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, Corruption> {
        self.array(field).map(u32::from_le_bytes)
    }

    /// A length-prefixed key, its length checked against `max` and the bytes left.
    fn key(&mut self, field: &'static str, max: usize) -> Result<Vec<u8>, Corruption> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(Corruption::OverLimit {
                field,
                value: len as u64,
                max: max as u64,
            });
        }
        self.take(len, field).map(<[u8]>::to_vec)
    }
}

/// Parses and checks a manifest file image; semantic checks are [`Manifest::validate`]'s.
pub fn decode(bytes: &[u8]) -> Result<Manifest, Corruption> {
    let min = HEADER_BYTES + CRC_BYTES;
    if bytes.len() < min {
        return Err(Corruption::TooShort {
            len: bytes.len(),
            min,
        });
    }
    let mut header = Cursor { bytes };
    if header.array::<8>("magic")? != MAGIC {
        return Err(Corruption::BadMagic);
    }
    let version = header.u32("format_version")?;
    if version != FORMAT_VERSION {
        return Err(Corruption::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let declared = header.u32("body_len")? as usize;
    let actual = bytes.len() - min;
    if declared != actual {
        return Err(Corruption::LengthMismatch { declared, actual });
    }
    let (covered, crc) = bytes.split_at(bytes.len() - CRC_BYTES);
    let mut stored = [0; CRC_BYTES];
    stored.copy_from_slice(crc);
    if u32::from_le_bytes(stored) != crc32c::crc32c(covered) {
        return Err(Corruption::Checksum);
    }
    let mut body = Cursor {
        bytes: &covered[HEADER_BYTES..],
    };
    let seq = body.u64("seq")?;
    let next_table_id = body.u64("next_table_id")?;
    let log_floor = body.u64("log_floor")?;
    let count = body.u32("table_count")? as usize;
    if count > super::MANIFEST_TABLES_MAX {
        let max = super::MANIFEST_TABLES_MAX as u64;
        return Err(Corruption::OverLimit {
            field: "table_count",
            value: count as u64,
            max,
        });
    }
    // Not `with_capacity(count)`: the count is checked against a maximum, but the bytes
    // left are the real bound, and a lying count must not reserve memory.
    let mut tables = Vec::new();
    for _ in 0..count {
        let id = body.u64("table id")?;
        let [level] = body.array::<1>("table level")?;
        let entry_count = body.u64("table entry_count")?;
        let file_size = body.u64("table file_size")?;
        let smallest = body.key("table smallest", super::MANIFEST_KEY_BYTES_MAX)?;
        let largest = body.key("table largest", super::MANIFEST_KEY_BYTES_MAX)?;
        tables.push(TableMeta {
            id,
            level,
            smallest,
            largest,
            entry_count,
            file_size,
        });
    }
    if !body.bytes.is_empty() {
        return Err(Corruption::TrailingBytes {
            len: body.bytes.len(),
        });
    }
    let manifest = Manifest {
        seq,
        next_table_id,
        tables,
        log_floor,
    };
    manifest.validate()?;
    Ok(manifest)
}

/// Why stored manifest bytes (or CURRENT's) are not a manifest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// Shorter than a header and checksum.
    #[error("{len} bytes, shorter than the {min}-byte minimum")]
    TooShort { len: usize, min: usize },
    /// Larger than any manifest this build writes.
    #[error("{len} bytes, over the {max}-byte maximum")]
    TooLarge { len: u64, max: u64 },
    /// Not a manifest file.
    #[error("bad magic")]
    BadMagic,
    /// Written by a newer format: upgrade this build.
    #[error("format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    /// The header's body length disagrees with the file length.
    #[error("header says {declared} body bytes, file holds {actual}")]
    LengthMismatch { declared: usize, actual: usize },
    /// The checksum does not match the bytes.
    #[error("checksum mismatch")]
    Checksum,
    /// A field runs past the end of the body.
    #[error("{field} runs past the end")]
    Truncated { field: &'static str },
    /// A count or length over its maximum.
    #[error("{field} is {value}, over the maximum {max}")]
    OverLimit {
        field: &'static str,
        value: u64,
        max: u64,
    },
    /// Bytes after the last table.
    #[error("{len} bytes after the last table")]
    TrailingBytes { len: usize },
    /// A field breaks an invariant (see the module doc).
    #[error("{0}")]
    Invalid(&'static str),
    /// The file's seq differs from the number in its name.
    #[error("file named seq {named} holds seq {found}")]
    SeqMismatch { named: u64, found: u64 },
    /// CURRENT has the wrong length (torn or overwritten).
    #[error("CURRENT is {len} bytes, expected {expected}")]
    CurrentLength { len: usize, expected: usize },
    /// CURRENT is not `MANIFEST-<20 digits> <8 hex>\n`.
    #[error("CURRENT is not a manifest name and checksum")]
    CurrentSyntax,
}
