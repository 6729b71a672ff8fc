//! The client's errors: each says what happened and whether trying again may help.

use std::time::Duration;

use tessera_schema::{ErrorCode, WireError};

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No connection could be made.
    #[error("cannot connect to {addr}: {why}. Is a tessera server running there?")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why it failed.
        why: String,
    },
    /// The connection broke with the request in flight; it may or may not have been applied.
    #[error("connection to {addr} lost: {why}")]
    ConnectionLost {
        /// The shard's address.
        addr: String,
        /// Why.
        why: String,
    },
    /// No answer within the request timeout; the request may or may not have been applied.
    #[error("no answer within {0:?}; the server may be overloaded or unreachable")]
    Timeout(Duration),
    /// The server answered with a typed error.
    #[error("server error: {0}")]
    Server(WireError),
    /// The server's answer made no sense for the request (a bug or a version mismatch).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The request cannot be sent as given.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// Too many requests in flight on one connection.
    #[error("{0} requests already in flight on this connection; wait for some to finish")]
    TooManyInFlight(usize),
}

impl ClientError {
    /// The server's error code, if the server answered with an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server(e) => Some(e.code),
            _ => None,
        }
    }

    /// Whether the same request may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::ConnectionLost { .. }
            | Self::Timeout(_)
            | Self::TooManyInFlight(_) => true,
            Self::Server(e) => e.code.is_retryable(),
            Self::Protocol(_) | Self::InvalidArgument(_) => false,
        }
    }
}
