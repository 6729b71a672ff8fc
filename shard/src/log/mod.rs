//! The shard's commit log: `format.rs` draws the bytes, `writer.rs` appends through io's
//! group-commit writer, `reader.rs` recovers.

pub mod format;
pub mod reader;
pub mod writer;

pub use reader::{recover, RecoveryError, RecoveryReport, TornTail};
pub use writer::CommitLog;
