//! Keys, version vectors, objects and core errors on the peer wire: the pieces every other part
//! of the protocol carries.
//!
//! A version vector is a vector of `Dot` structs (node, counter) in node order; an object is its
//! clock plus its siblings, each sibling a dot, a timestamp and a value or a tombstone flag.
//! Decoding rebuilds them through `VersionVector::from_sorted_entries` and `Object::from_parts`,
//! so a peer cannot hand this node an object that breaks core's invariants.
//!
//! A [`CoreError`] travels as an `ErrorCode` and the fields its variant has. One variant cannot
//! make the round trip whole: `CoreError::Malformed { what }` holds a `&'static str`, which no
//! decoder can make from received text without leaking memory. The text still travels (for
//! zero-copy readers and logs), but [`decode_peer`](super::decode_peer) reads the error back as
//! `Malformed { what: MALFORMED_FROM_PEER }`.
#![forbid(unsafe_code)]

use flatbuffers::{Vector, WIPOffset};
use tessera_core::node::Key;
use tessera_core::{CoreError, Dot, NodeId, Object, Sibling, Token, VersionVector};

use super::{bytes, bytes_within, required, text_within, to_usize, wire, DecodeError, Writer};
use crate::decode::counted;
use crate::limits::{
    PEER_CLOCK_ENTRIES_MAX, PEER_ERROR_TEXT_BYTES_MAX, PEER_KEY_BYTES_MAX, PEER_OBJECT_SIBLINGS_MAX,
};

/// The `what` of every [`CoreError::Malformed`] decoded from a peer frame (see the module docs).
pub const MALFORMED_FROM_PEER: &str =
    "data on a peer (its own description is in the frame and the peer's log)";

// ---- Writing ----

impl Writer<'_> {
    pub(super) fn key(&mut self, key: &Key) -> WIPOffset<wire::Key<'static>> {
        let bytes = self.bytes(&key.bytes);
        let args = wire::KeyArgs {
            token: key.token.0,
            bytes,
        };
        wire::Key::create(self.fbb, &args)
    }

    /// A version vector's entries, or nothing for the empty vector.
    pub(super) fn version_vector(
        &mut self,
        vv: &VersionVector,
    ) -> Option<WIPOffset<Vector<'static, wire::Dot>>> {
        if vv.is_empty() {
            return None;
        }
        self.dots.clear();
        self.dots.extend(
            vv.iter()
                .map(|(node, counter)| wire::Dot::new(node.0, counter)),
        );
        Some(self.fbb.create_vector(self.dots))
    }

    pub(super) fn object(&mut self, object: &Object) -> WIPOffset<wire::Object<'static>> {
        let start = self.tables.len();
        for sibling in object.siblings() {
            let offset = self.sibling(sibling);
            self.tables.push(offset.value());
        }
        let siblings = self.tables_since::<wire::Sibling<'static>>(start);
        let clock = self.version_vector(object.clock());
        wire::Object::create(self.fbb, &wire::ObjectArgs { clock, siblings })
    }

    fn sibling(&mut self, sibling: &Sibling) -> WIPOffset<wire::Sibling<'static>> {
        let value = sibling.value.as_deref().and_then(|value| self.bytes(value));
        let args = wire::SiblingArgs {
            dot: Some(&dot(sibling.dot)),
            timestamp_ms: sibling.timestamp_ms,
            value,
            tombstone: sibling.value.is_none(),
        };
        wire::Sibling::create(self.fbb, &args)
    }

    pub(super) fn error(&mut self, error: &CoreError) -> WIPOffset<wire::Error<'static>> {
        use wire::ErrorCode as Code;
        // Counts and sizes are `usize` in core; they fit a `u64` on every target Tessera runs on.
        let wide = |n: usize| n as u64;
        let mut args = wire::ErrorArgs::default();
        let text = match error {
            CoreError::Malformed { what } => {
                args.code = Code::Malformed;
                *what
            }
            CoreError::InvalidPartitionCount(count) => {
                args.code = Code::InvalidPartitionCount;
                args.count = u64::from(*count);
                ""
            }
            CoreError::InvalidShardCount(count) => {
                args.code = Code::InvalidShardCount;
                args.count = u64::from(*count);
                ""
            }
            CoreError::InvalidShardTable { detail } => {
                args.code = Code::InvalidShardTable;
                detail
            }
            CoreError::TooManySiblings { count, max } => {
                args.code = Code::TooManySiblings;
                (args.count, args.limit) = (wide(*count), wide(*max));
                ""
            }
            CoreError::TooManyClockEntries { count, max } => {
                args.code = Code::TooManyClockEntries;
                (args.count, args.limit) = (wide(*count), wide(*max));
                ""
            }
            CoreError::ValueTooLarge { size_bytes, max } => {
                args.code = Code::ValueTooLarge;
                (args.count, args.limit) = (wide(*size_bytes), wide(*max));
                ""
            }
            CoreError::CounterExhausted { node } => {
                args.code = Code::CounterExhausted;
                args.node = node.0;
                ""
            }
            CoreError::InvalidTreeShape { level_bits, levels } => {
                args.code = Code::InvalidTreeShape;
                (args.level_bits, args.levels) = (*level_bits, *levels);
                ""
            }
            CoreError::TransferQueueFull { queued, max } => {
                args.code = Code::TransferQueueFull;
                (args.count, args.limit) = (wide(*queued), wide(*max));
                ""
            }
            CoreError::InvalidMembers { detail } => {
                args.code = Code::InvalidMembers;
                detail
            }
            CoreError::StaleRing {
                coordinator,
                replica,
            } => {
                args.code = Code::StaleRing;
                (args.coordinator_ring, args.replica_ring) = (*coordinator, *replica);
                ""
            }
            CoreError::InvalidReplication { detail } => {
                args.code = Code::InvalidReplication;
                detail
            }
            // A variant added to core after this encoder (`CoreError` is non-exhaustive): it goes
            // out as `Unknown` with its text, and the receiver refuses it, so the message is lost,
            // which every peer protocol tolerates. Give it a code here when it is added.
            other => {
                args.code = Code::Unknown;
                args.text = self.text(&other.to_string());
                return wire::Error::create(self.fbb, &args);
            }
        };
        args.text = self.text(text);
        wire::Error::create(self.fbb, &args)
    }
}

fn dot(dot: Dot) -> wire::Dot {
    wire::Dot::new(dot.node.0, dot.counter)
}

// ---- Reading ----

pub(super) fn key(key: Option<wire::Key<'_>>, field: &'static str) -> Result<Key, DecodeError> {
    let key = required(key, field)?;
    Ok(Key {
        token: Token(key.token()),
        bytes: bytes_within(key.bytes(), PEER_KEY_BYTES_MAX, "Key.bytes")?,
    })
}

/// A version vector: at most [`PEER_CLOCK_ENTRIES_MAX`] entries, canonical (sorted by node,
/// unique, no zero counter).
pub(super) fn version_vector(
    dots: Option<Vector<'_, wire::Dot>>,
) -> Result<VersionVector, DecodeError> {
    let dots = counted(dots, PEER_CLOCK_ENTRIES_MAX)?;
    let entries = dots
        .iter()
        .map(|dot| (NodeId(dot.node()), dot.counter()))
        .collect();
    Ok(VersionVector::from_sorted_entries(entries)?)
}

pub(super) fn object(
    object: Option<wire::Object<'_>>,
    field: &'static str,
) -> Result<Object, DecodeError> {
    let object = required(object, field)?;
    let clock = version_vector(object.clock())?;
    let siblings = counted(object.siblings(), PEER_OBJECT_SIBLINGS_MAX)?;
    let siblings = siblings
        .iter()
        .map(sibling)
        .collect::<Result<Vec<Sibling>, DecodeError>>()?;
    Ok(Object::from_parts(clock, siblings)?)
}

fn sibling(sibling: wire::Sibling<'_>) -> Result<Sibling, DecodeError> {
    let dot = required(sibling.dot(), "Sibling.dot")?;
    let value = match (sibling.tombstone(), sibling.value()) {
        (false, value) => Some(bytes(value)),
        (true, None) => None,
        (true, Some(_)) => return Err(DecodeError::Malformed("a tombstone sibling holds a value")),
    };
    Ok(Sibling {
        dot: Dot {
            node: NodeId(dot.node()),
            counter: dot.counter(),
        },
        timestamp_ms: sibling.timestamp_ms(),
        value,
    })
}

pub(super) fn error(error: wire::Error<'_>) -> Result<CoreError, DecodeError> {
    use wire::ErrorCode as Code;
    let detail = || text_within(error.text(), PEER_ERROR_TEXT_BYTES_MAX, "Error.text");
    let count = || {
        to_usize(
            error.count(),
            "Error.count does not fit this machine's usize",
        )
    };
    let limit = || {
        to_usize(
            error.limit(),
            "Error.limit does not fit this machine's usize",
        )
    };
    let count_u32 =
        || u32::try_from(error.count()).map_err(|_| DecodeError::Malformed("Error.count over u32"));
    Ok(match error.code() {
        Code::Malformed => {
            // The text is bounded like any other, even though it is not kept.
            detail()?;
            CoreError::Malformed {
                what: MALFORMED_FROM_PEER,
            }
        }
        Code::InvalidPartitionCount => CoreError::InvalidPartitionCount(count_u32()?),
        Code::InvalidShardCount => CoreError::InvalidShardCount(count_u32()?),
        Code::InvalidShardTable => CoreError::InvalidShardTable { detail: detail()? },
        Code::TooManySiblings => CoreError::TooManySiblings {
            count: count()?,
            max: limit()?,
        },
        Code::TooManyClockEntries => CoreError::TooManyClockEntries {
            count: count()?,
            max: limit()?,
        },
        Code::ValueTooLarge => CoreError::ValueTooLarge {
            size_bytes: count()?,
            max: limit()?,
        },
        Code::CounterExhausted => CoreError::CounterExhausted {
            node: NodeId(error.node()),
        },
        Code::InvalidTreeShape => CoreError::InvalidTreeShape {
            level_bits: error.level_bits(),
            levels: error.levels(),
        },
        Code::TransferQueueFull => CoreError::TransferQueueFull {
            queued: count()?,
            max: limit()?,
        },
        Code::InvalidMembers => CoreError::InvalidMembers { detail: detail()? },
        Code::StaleRing => CoreError::StaleRing {
            coordinator: error.coordinator_ring(),
            replica: error.replica_ring(),
        },
        Code::InvalidReplication => CoreError::InvalidReplication { detail: detail()? },
        code => {
            return Err(DecodeError::UnknownEnumValue {
                field: "Error.code",
                value: u32::from(code.0),
            })
        }
    })
}
