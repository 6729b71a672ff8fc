//! SSTables: immutable sorted tables of (key, value) entries, as pure code over byte buffers.
//!
//! This module owns the table format (`FORMAT.md`, `format.rs`), its writer
//! ([`TableBuilder`]) and its reader ([`Table`]). It does no I/O: the builder returns the whole
//! table image and the reader borrows one; a file-system seam feeds them.
//!
//! Keys are memtable keys (`token ++ keyspace length ++ keyspace ++ key`, see `memtable.rs`),
//! so key order is (token, key) order and a partition is a contiguous key range; values are
//! encoded `Object`s, opaque here.
//!
//! Invariants:
//! - A table's keys strictly increase; the builder refuses anything else.
//! - Every byte a reader returns was covered by a CRC32C that matched, and every length or
//!   offset read from the table was bounds-checked first: bad bytes give an [`SstError`],
//!   never a panic and never wrong data.

mod block;
mod bloom;
mod builder;
mod format;
mod index;
mod reader;
#[cfg(test)]
mod tests;

pub use block::DecodedBlock;
pub use bloom::DEFAULT_BLOOM_SEED;
pub use builder::{TableBuilder, TableOptions};
pub use format::{Footer, FOOTER_LEN, FORMAT_VERSION, MAGIC};
pub use index::{tail_start, BlockLoc, TableIndex};
pub use reader::{Table, TableRange};

/// What can go wrong building or reading a table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SstError {
    /// The bytes cannot be a table: fewer than a footer. A truncated file; rebuild it.
    #[error("table is {len} bytes, shorter than the {min}-byte footer")]
    TooShort { len: usize, min: usize },
    /// Written by a format this build cannot read: upgrade, or rebuild the table.
    #[error("table format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    /// A check on the stored bytes failed (magic, checksum, bound, order): the table is
    /// damaged; do not trust it, rebuild it from a replica.
    #[error("corrupt table {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// `add` was given a key not greater than the previous one: a caller bug.
    #[error("key added out of order: {key:?} does not follow {previous:?}")]
    OutOfOrder { previous: Vec<u8>, key: Vec<u8> },
    /// One entry is larger than a block may be: split or refuse the value upstream.
    #[error("entry of {key_len}-byte key and {value_len}-byte value exceeds {max} bytes")]
    EntryTooLarge {
        key_len: usize,
        value_len: usize,
        max: u64,
    },
    /// Serialising a section failed (allocation): retry the flush later.
    #[error("cannot encode table {what}: {detail}")]
    Encode { what: &'static str, detail: String },
}

impl SstError {
    fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}
