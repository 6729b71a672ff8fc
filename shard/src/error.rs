//! The server's errors, and how each becomes a typed error on the wire.

use tessera_core::CoreError;
use tessera_io::LogError;
use tessera_schema::{ErrorCode, WireError};

/// Why a request failed inside a shard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// The request is malformed (bad context, empty key...).
    #[error("{0}")]
    BadRequest(String),
    /// A key, value or object over its limit.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The keyspace does not exist.
    #[error("keyspace '{0}' does not exist (this node serves 'default')")]
    NoSuchKeyspace(String),
    /// The version layer refused the write (too many siblings...).
    #[error("{0}")]
    Version(#[from] CoreError),
    /// The commit log refused or failed the write.
    #[error("{0}")]
    Log(#[from] LogError),
    /// Writes wait for a flush or compaction that keeps failing (a full disk): refused rather
    /// than queued without bound. Free disk space; writes resume on their own.
    #[error("writes are refused until this shard can write its tables again: {0}")]
    WritesStalled(String),
    /// The shard's tables could not be read or written (damage, or I/O): the data is not
    /// returned rather than returned wrong. Restore the shard from a replica.
    #[error("storage error: {0}")]
    Storage(String),
    /// The shard is closing: the write was not applied.
    #[error("the shard is shutting down; retry on another replica or after restart")]
    Closing,
    /// The owning shard cannot be reached (shutting down).
    #[error("shard {0} is unavailable (the node is shutting down)")]
    ShardUnavailable(u16),
}

impl ShardError {
    /// The wire code a client acts on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::NoSuchKeyspace(_) => ErrorCode::NotFound,
            Self::Version(CoreError::ValueTooLarge { .. }) => ErrorCode::TooLarge,
            Self::Version(_) => ErrorCode::BadRequest,
            Self::Log(LogError::RecordTooLarge { .. }) => ErrorCode::TooLarge,
            // Retryable: writes resume once the operator frees disk space.
            Self::Log(LogError::NoSpace(_)) => ErrorCode::Unavailable,
            Self::Log(_) | Self::ShardUnavailable(_) => ErrorCode::Unavailable,
            Self::Storage(_) => ErrorCode::Internal,
            Self::WritesStalled(_) | Self::Closing => ErrorCode::Unavailable,
        }
    }

    /// The error as sent to the client.
    pub fn to_wire(&self) -> WireError {
        WireError::new(self.code(), self.to_string())
    }
}
