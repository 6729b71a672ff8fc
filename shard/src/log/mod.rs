//! The shard's commit log: `format.rs` draws the bytes, `writer.rs` appends through io's
//! group-commit writer and releases segments below the floor, `reader.rs` recovers. All of it
//! runs on the file-system seam (`tessera_io::fs`), on the kernel or the crash simulator.

pub mod format;
pub mod reader;
pub mod writer;

pub use reader::{recover, RecoveryError, RecoveryReport, RecoveryStart, TornTail};
pub use writer::CommitLog;
