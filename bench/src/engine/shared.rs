//! What every driver thread of one phase shares: where to connect, how keys route, the
//! records and their ledger, the causal contexts, and the cursor of load/verify phases.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tessera_core::ShardMap;
use tessera_schema::Durability;

use crate::check::Ledger;
use crate::proto::echo::EchoCodec;
use crate::proto::memcache::MemcacheCodec;
use crate::proto::native::{NativeCodec, WriteMode};
use crate::proto::resp::RespCodec;
use crate::proto::Codec;
use crate::striped::StripedMap;
use crate::workload::Records;

/// Locks of the context table; records hash onto them.
const CONTEXT_STRIPES: usize = 256;

/// The protocol a run speaks, with its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Tessera's native port.
    Native {
        /// Durability asked of every write.
        durability: Durability,
        /// How writes treat stored versions.
        mode: WriteMode,
    },
    /// RESP2 (Redis, Tessera's RESP port).
    Resp,
    /// memcached's text protocol.
    Memcache,
    /// Length-prefixed echo frames.
    Echo,
}

impl Protocol {
    /// A codec for one socket.
    pub fn codec(self, value_bytes_max: usize) -> Box<dyn Codec> {
        match self {
            Protocol::Native { durability, mode } => Box::new(NativeCodec::new(durability, mode)),
            Protocol::Resp => Box::new(RespCodec::default()),
            Protocol::Memcache => Box::new(MemcacheCodec::new(value_bytes_max)),
            Protocol::Echo => Box::new(EchoCodec),
        }
    }

    /// Whether writes carry the context of the key's last answer.
    pub fn uses_contexts(self) -> bool {
        matches!(
            self,
            Protocol::Native {
                mode: WriteMode::Context,
                ..
            }
        )
    }
}

/// Where a session's sockets connect and which one a key goes to.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Socket `i` of every session connects to `addrs[i]`.
    pub addrs: Vec<SocketAddr>,
    /// With a shard map, a key goes to its owning shard's socket; without, to socket 0.
    pub shard_map: Option<ShardMap>,
}

impl Endpoints {
    /// One address for everything.
    pub fn single(addr: SocketAddr) -> Self {
        Self {
            addrs: vec![addr],
            shard_map: None,
        }
    }

    /// The socket a key's requests go to.
    pub fn socket_of(&self, key: &[u8]) -> usize {
        match &self.shard_map {
            Some(map) => usize::from(map.shard_of_key(tessera_schema::DEFAULT_KEYSPACE, key).0),
            None => 0,
        }
    }
}

/// The latest causal context seen for each record (native context mode).
#[derive(Debug)]
pub struct Contexts {
    latest: StripedMap<Vec<u8>>,
}

impl Default for Contexts {
    fn default() -> Self {
        Self {
            latest: StripedMap::new(CONTEXT_STRIPES),
        }
    }
}

impl Contexts {
    /// Copies record `n`'s context into `out` (cleared first; empty if none seen).
    pub fn load(&self, n: u64, out: &mut Vec<u8>) {
        out.clear();
        self.latest.get_with(n, |c| {
            if let Some(c) = c {
                out.extend_from_slice(c);
            }
        });
    }

    /// Remembers the context of an answer for record `n`.
    pub fn store(&self, n: u64, context: Vec<u8>) {
        if !context.is_empty() {
            self.latest.insert(n, context);
        }
    }
}

/// Everything the threads of a run share, across its phases.
#[derive(Debug)]
pub struct Shared {
    /// Where to connect.
    pub endpoints: Endpoints,
    /// Bytes of every value written.
    pub value_size: usize,
    /// Keys are this prefix followed by the record number.
    pub key_prefix: String,
    /// Record numbers.
    pub records: Records,
    /// Write histories, for the final check.
    pub ledger: Ledger,
    /// Contexts per record (native context mode).
    pub contexts: Contexts,
    /// Next item of a load or verify phase.
    pub cursor: AtomicU64,
}

impl Shared {
    /// Takes the next item below `end` of a load or verify phase.
    pub fn take(&self, end: u64) -> Option<u64> {
        let i = self.cursor.fetch_add(1, Ordering::Relaxed);
        (i < end).then_some(i)
    }
}
