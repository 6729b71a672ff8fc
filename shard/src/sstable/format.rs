//! The SSTable byte format: its constants, the fixed-size footer, section bounds and checksums,
//! and the rkyv types of the index and meta sections. `FORMAT.md` draws the layout byte by
//! byte; the numbers here are the ones it names.
//!
//! Invariants:
//! - Every fixed-width integer outside the rkyv archives is little-endian.
//! - Every offset and length read from a table is checked, with checked arithmetic, to lie
//!   inside the bytes actually present before it is used to slice them.
//! - Values stored on disk (`FORMAT_VERSION`, `Compression`, `BLOOM_KIND_*`) are never
//!   renumbered; a change of meaning takes a new number.

use rkyv::{Archive, Serialize};

use super::SstError;

/// The last eight bytes of every table.
pub const MAGIC: [u8; 8] = *b"TSRA-SST";
/// The one format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in the footer (see `FORMAT.md`).
pub const FOOTER_LEN: usize = 76;
/// Bytes after each stored block: compression kind (1) and CRC32C (4).
pub const BLOCK_TRAILER_LEN: usize = 5;
/// Bytes before each entry's key: key length (4) and value length (4).
pub const ENTRY_HEADER_LEN: usize = 8;
/// Largest uncompressed block a reader accepts, so a corrupt length cannot make it allocate
/// without bound. A single entry larger than this is refused by the builder.
pub const BLOCK_RAW_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Most bloom hash functions a reader accepts (1% false positives needs 7).
pub const BLOOM_HASHES_MAX: u32 = 32;

/// How a data block's payload is stored. Stored as one byte; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// The payload is the raw entry bytes (compression did not make them smaller).
    None = 0,
    /// The payload is one zstd frame of the raw entry bytes.
    Zstd = 1,
}

impl Compression {
    /// The kind named by a stored byte, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::None),
            1 => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// Where one section lies in the table and the CRC32C of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

/// The fixed-size trailer that locates everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    pub index: Section,
    pub meta: Section,
    pub bloom: Section,
}

/// Byte offsets of the footer's fields, relative to the footer's start.
const FOOTER_CRC_AT: usize = 60;
const FOOTER_VERSION_AT: usize = 64;
const FOOTER_MAGIC_AT: usize = 68;

impl Footer {
    /// The footer's bytes, checksum included.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        let sections = [self.index, self.meta, self.bloom];
        for (i, s) in sections.iter().enumerate() {
            out[i * 16..i * 16 + 8].copy_from_slice(&s.offset.to_le_bytes());
            out[i * 16 + 8..i * 16 + 16].copy_from_slice(&s.len.to_le_bytes());
            out[48 + i * 4..52 + i * 4].copy_from_slice(&s.crc.to_le_bytes());
        }
        out[FOOTER_VERSION_AT..FOOTER_MAGIC_AT].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[FOOTER_MAGIC_AT..].copy_from_slice(&MAGIC);
        let crc = footer_crc(&out);
        out[FOOTER_CRC_AT..FOOTER_VERSION_AT].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads and checks the footer at the end of `table`: length, magic, version, checksum,
    /// in that order (the version decides how the rest is laid out).
    pub fn decode(table: &[u8]) -> Result<Self, SstError> {
        let start = table
            .len()
            .checked_sub(FOOTER_LEN)
            .ok_or(SstError::TooShort {
                len: table.len(),
                min: FOOTER_LEN,
            })?;
        let f = &table[start..];
        if f[FOOTER_MAGIC_AT..] != MAGIC {
            return Err(SstError::corrupt("footer magic", "not an SSTable"));
        }
        let version = read_u32(f, FOOTER_VERSION_AT);
        if version != FORMAT_VERSION {
            return Err(SstError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        check_crc("footer", footer_crc(f), read_u32(f, FOOTER_CRC_AT))?;
        let section = |i: usize| Section {
            offset: read_u64(f, i * 16),
            len: read_u64(f, i * 16 + 8),
            crc: read_u32(f, 48 + i * 4),
        };
        Ok(Self {
            index: section(0),
            meta: section(1),
            bloom: section(2),
        })
    }
}

/// CRC32C of a footer's bytes other than the checksum field itself.
fn footer_crc(footer: &[u8]) -> u32 {
    let head = crc32c::crc32c(&footer[..FOOTER_CRC_AT]);
    crc32c::crc32c_append(head, &footer[FOOTER_VERSION_AT..FOOTER_LEN])
}

/// `bytes[at..at + 4]` as little-endian; callers pass offsets inside a checked footer.
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// `bytes[at..at + 8]` as little-endian; callers pass offsets inside a checked footer.
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// `table[offset..offset + len]`, provided that range ends at or before `limit` (which must be
/// at most `table.len()`).
pub fn slice_within<'a>(
    table: &'a [u8],
    offset: u64,
    len: u64,
    limit: usize,
    what: &'static str,
) -> Result<&'a [u8], SstError> {
    let out_of_bounds = || {
        SstError::corrupt(
            what,
            format!("{len} bytes at {offset} pass the end at {limit}"),
        )
    };
    let end = offset.checked_add(len).ok_or_else(out_of_bounds)?;
    let end = usize::try_from(end).map_err(|_| out_of_bounds())?;
    if end > limit.min(table.len()) {
        return Err(out_of_bounds());
    }
    // offset <= end <= limit, so it fits in usize too.
    let start = usize::try_from(offset).map_err(|_| out_of_bounds())?;
    Ok(&table[start..end])
}

/// `Err(Corrupt)` unless the computed and stored checksums agree.
pub fn check_crc(what: &'static str, computed: u32, stored: u32) -> Result<(), SstError> {
    if computed == stored {
        Ok(())
    } else {
        Err(SstError::corrupt(
            what,
            format!("crc32c {computed:#010x}, stored {stored:#010x}"),
        ))
    }
}

/// One data block in the index: the block's last key and where its payload lies.
#[derive(Archive, Serialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct BlockHandle {
    /// The largest key in the block; blocks are ordered by it.
    pub last_key: Vec<u8>,
    /// Offset of the stored payload from the start of the table.
    pub offset: u64,
    /// Bytes of stored payload; the 5-byte trailer follows them.
    pub stored_len: u64,
    /// Bytes of the payload once decompressed.
    pub raw_len: u64,
}

/// The index section: every data block in key order.
#[derive(Archive, Serialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct IndexSection {
    pub blocks: Vec<BlockHandle>,
}

/// The meta section: what a reader needs besides the index.
#[derive(Archive, Serialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct MetaSection {
    /// Repeats the footer's version, so the archive is self-describing.
    pub format_version: u32,
    pub entry_count: u64,
    pub block_count: u64,
    /// Bytes of data blocks (with trailers) at the start of the table.
    pub data_len: u64,
    /// Smallest and largest key; both empty in an empty table.
    pub first_key: Vec<u8>,
    pub last_key: Vec<u8>,
    /// Which bloom algorithm (`BLOOM_KIND_*` in `bloom.rs`).
    pub bloom_kind: u8,
    /// The seed of the key hash, fixed per table so any process can probe it.
    pub bloom_seed: u128,
    pub bloom_hashes: u32,
    /// Bloom filter size in 64-bit words.
    pub bloom_words: u64,
}

/// Validated, in-place access to an rkyv archive whose checksum has already been checked.
pub fn access_archive<'a, T>(bytes: &'a [u8], what: &'static str) -> Result<&'a T, SstError>
where
    T: rkyv::Portable
        + for<'v> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'v, rkyv::rancor::Error>>,
{
    rkyv::access::<T, rkyv::rancor::Error>(bytes)
        .map_err(|e| SstError::corrupt(what, e.to_string()))
}

/// An rkyv archive of `value`.
pub fn to_archive<T>(value: &T, what: &'static str) -> Result<Vec<u8>, SstError>
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            rkyv::util::AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rkyv::rancor::Error,
        >,
    >,
{
    rkyv::to_bytes::<rkyv::rancor::Error>(value)
        .map(|bytes| bytes.to_vec())
        .map_err(|e| SstError::Encode {
            what,
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer() -> Footer {
        let s = |offset, len, crc| Section { offset, len, crc };
        Footer {
            index: s(100, 20, 1),
            meta: s(120, 30, 2),
            bloom: s(150, 40, 3),
        }
    }

    #[test]
    fn footer_round_trips() {
        let bytes = footer().encode();
        assert_eq!(&bytes[FOOTER_LEN - 8..], &MAGIC);
        assert_eq!(Footer::decode(&bytes).unwrap(), footer());
    }

    #[test]
    fn footer_rejects_short_bad_magic_version_and_crc() {
        let bytes = footer().encode();
        let mut prefixed = vec![7u8; 5];
        prefixed.extend_from_slice(&bytes);
        assert_eq!(Footer::decode(&prefixed).unwrap(), footer());
        let mut magic = bytes;
        magic[FOOTER_LEN - 1] ^= 1;
        assert!(matches!(
            Footer::decode(&magic),
            Err(SstError::Corrupt {
                what: "footer magic",
                ..
            })
        ));
        assert!(matches!(
            Footer::decode(&bytes[..10]),
            Err(SstError::TooShort { len: 10, .. })
        ));
        let mut v = bytes;
        v[FOOTER_VERSION_AT] = 2;
        assert!(matches!(
            Footer::decode(&v),
            Err(SstError::UnsupportedVersion { found: 2, .. })
        ));
        let mut c = bytes;
        c[3] ^= 1;
        assert!(matches!(
            Footer::decode(&c),
            Err(SstError::Corrupt { what: "footer", .. })
        ));
    }

    #[test]
    fn slice_within_checks_overflow_and_limit() {
        let table = [0u8; 10];
        assert_eq!(slice_within(&table, 2, 3, 10, "x").unwrap(), &[0, 0, 0]);
        assert!(slice_within(&table, 8, 3, 10, "x").is_err());
        assert!(slice_within(&table, 2, 3, 4, "x").is_err());
        assert!(slice_within(&table, u64::MAX, 2, 10, "x").is_err());
        assert!(slice_within(&table, 0, 10, 20, "x").unwrap().len() == 10);
    }

    #[test]
    fn archives_round_trip() {
        let index = IndexSection {
            blocks: vec![BlockHandle {
                last_key: b"k".to_vec(),
                offset: 0,
                stored_len: 9,
                raw_len: 12,
            }],
        };
        let bytes = to_archive(&index, "index").unwrap();
        let archived = access_archive::<ArchivedIndexSection>(&bytes, "index").unwrap();
        assert_eq!(archived.blocks[0].last_key.as_slice(), b"k");
        assert_eq!(archived.blocks[0].raw_len.to_native(), 12);
    }
}
