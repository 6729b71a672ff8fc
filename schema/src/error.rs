//! Errors of the wire boundary: one enum for framing, one for decoding.
//!
//! Both mean "the bytes from the peer are bad", never "this process has a bug": they are returned,
//! not panicked on. Each message says what is wrong and what to do about it. After a
//! [`FrameError`] the byte stream has lost its framing and the connection must be closed; after a
//! [`DecodeError`] the stream is still in sync and the server may answer the request with
//! [`DecodeError::to_wire_error`] (see [`peek_request_id`](crate::peek_request_id)).
#![forbid(unsafe_code)]

use tessera_core::CoreError;

use crate::message::{ErrorCode, WireError};

/// A frame header that cannot be accepted. The stream is out of sync: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announces a body longer than the receiver's limit.
    #[error(
        "frame body of {len} bytes is over the {limit}-byte limit; split the batch or shrink the \
         values (the connection will be closed)"
    )]
    TooLarge {
        /// Body length announced by the header.
        len: usize,
        /// Limit in force (the receiver's, capped at `FRAME_BYTES_MAX`).
        limit: usize,
    },
    /// The header announces an empty body, which no Tessera message encodes to.
    #[error(
        "frame with an empty body; the peer is not speaking the Tessera protocol (the connection \
         will be closed)"
    )]
    Empty,
}

/// A frame body that is not a valid message of this protocol version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The flatbuffers verifier rejected the body: corrupt bytes, a non-Tessera peer, or a
    /// crafted buffer over the verifier limits.
    #[error(
        "frame body failed flatbuffers verification ({0}); the peer sent corrupt or non-Tessera \
         bytes"
    )]
    Invalid(#[from] flatbuffers::InvalidFlatbuffer),
    /// A field the message cannot do without is absent.
    #[error("field `{0}` is missing; the peer's encoder is broken or speaks another version")]
    MissingField(&'static str),
    /// The union tag names a message this version does not know.
    #[error("message type unknown to this version; upgrade this side or downgrade the peer")]
    UnknownMessage,
    /// A batch or list is longer than its bound.
    #[error("{count} items where at most {max} are allowed; split the request into smaller ones")]
    TooManyItems {
        /// Items in the message.
        count: usize,
        /// The bound (a constant in `limits.rs`).
        max: usize,
    },
    /// An enum field holds a value this version does not know, and guessing would be unsafe
    /// (e.g. a durability level).
    #[error("`{field}` has value {value}, unknown to this version; upgrade this side")]
    UnknownEnumValue {
        /// Which field.
        field: &'static str,
        /// The raw value on the wire.
        value: u32,
    },
    /// A number is above its bound (a constant in `limits.rs`), e.g. a request asking more
    /// replicas than any key can have.
    #[error("`{field}` is {value} where at most {max} is allowed; ask for less")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// The value on the wire.
        value: u64,
        /// The bound.
        max: u64,
    },
    /// The fields are individually valid but contradict each other.
    #[error("malformed message: {0}; the peer's encoder is broken")]
    Malformed(&'static str),
    /// A byte string or text field is longer than its bound.
    #[error("`{field}` is {len} bytes where at most {max} are allowed; shorten it")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length in the message.
        len: usize,
        /// The bound (a constant in `limits.rs`).
        max: usize,
    },
    /// The fields decode, but the value they describe breaks an invariant of core's types (a
    /// version vector out of order, a sibling its clock does not cover, a ring owner that is not
    /// a member, an impossible tree shape).
    #[error("message breaks an invariant ({0}); the peer's encoder is broken")]
    Invariant(#[from] CoreError),
}

impl DecodeError {
    /// The error to send back to a peer whose request failed to decode: `TooLarge` for
    /// over-limit batches (the client should split them), `BadRequest` for everything else.
    pub fn to_wire_error(&self) -> WireError {
        let code = match self {
            DecodeError::TooManyItems { .. } | DecodeError::TooLong { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::BadRequest,
        };
        WireError::new(code, self.to_string())
    }
}
