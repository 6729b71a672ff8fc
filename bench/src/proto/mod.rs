//! The protocols the runner speaks, as sans-IO codecs: a call is encoded into bytes, and
//! answers are decoded from the front of a receive buffer. The event loop in
//! [`crate::engine`] owns the sockets.
//!
//! | codec | server | answers |
//! |---|---|---|
//! | [`native::NativeCodec`] | Tessera's own port, one socket per shard | carry the request id, any order |
//! | [`resp::RespCodec`] | Redis, or Tessera's RESP port | in order |
//! | [`memcache::MemcacheCodec`] | memcached (text protocol) | in order |
//! | [`echo::EchoCodec`] | `tessera-bench echo-server` | in order |
//!
//! Invariant: `decode` never consumes more than it was given, never allocates more than a
//! bound from a length it read, and returns `Ok(None)` until a whole answer is buffered.

pub mod echo;
pub mod memcache;
pub mod native;
pub mod resp;

/// What an operation asks of the server.
#[derive(Clone, Copy, Debug)]
pub enum Call<'a> {
    /// Read a key.
    Get {
        /// The key.
        key: &'a [u8],
    },
    /// Write a key.
    Set {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
        /// Causal context from the last answer for this key (native only; may be empty).
        context: &'a [u8],
    },
    /// Send bytes to be sent back.
    Echo {
        /// The bytes.
        payload: &'a [u8],
    },
}

/// The server's answer to one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A read's values: none (not found), one, or several (siblings).
    Values {
        /// The values.
        values: Vec<Vec<u8>>,
        /// Context for the next write (native only; empty otherwise).
        context: Vec<u8>,
    },
    /// A write was acknowledged.
    Stored {
        /// Context covering the write (native only; empty otherwise).
        context: Vec<u8>,
    },
    /// An echo came back.
    Echoed,
    /// The server refused the call; the connection stays usable.
    Refused(String),
}

/// One answer decoded from the front of a buffer.
#[derive(Debug)]
pub struct Decoded {
    /// Bytes of the buffer it took.
    pub consumed: usize,
    /// The request id it answers, for protocols that carry one.
    pub id: Option<u64>,
    /// The answer.
    pub answer: Answer,
}

/// A protocol's encoder and decoder for one socket.
pub trait Codec: Send {
    /// Appends `call`, tagged with `id` where the protocol carries ids, to `out`.
    fn encode(&mut self, id: u64, call: &Call<'_>, out: &mut Vec<u8>);

    /// Decodes one answer from the front of `buf`. `Ok(None)`: incomplete. `Err`: the byte
    /// stream is broken and the connection must be closed.
    fn decode(&mut self, buf: &[u8]) -> Result<Option<Decoded>, String>;
}
