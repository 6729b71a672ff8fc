//! `tessera-io`: the only Tessera crate that talks to the kernel.
//!
//! It owns executor bootstrap (one glommio `LocalExecutor` per shard with a preempt timer
//! suited to latency), start-up file helpers ([`file`](mod@file)), the file-system seam with its real
//! and crash-simulating implementations ([`fs`]), the group-commit log writer, framed TCP
//! reading, the cross-shard mesh, first-come-first-served turns ([`turns`]), and the watchdog
//! that wakes an executor the kernel failed to wake ([`stall`]). Files are
//! glommio buffered files, never DMA: see `linux-only.md` for why.
//!
//! Everything here is Linux-only (io_uring via glommio); `linux-only.md` at the repository root
//! says what the kernel and its limits must provide. Formats are not drawn here: the commit
//! log's bytes are supplied by the caller through [`log_writer::LogFormat`], so the writer and
//! reader of every format can live side by side in `shard/`.

pub mod constants;
pub mod executor;
pub mod file;
pub mod fs;
pub mod log_writer;
pub mod mesh;
pub mod net;
pub mod notify;
pub mod stall;
pub mod turns;

pub use executor::{spawn_executor, ExecutorConfig, ShardPlacement};
pub use log_writer::{
    GroupCommitLog, LogConfig, LogError, LogFormat, LogPosition, SegmentStart, Ticket,
};
pub use mesh::{ConnectedMesh, Mesh, MeshEndpoint};
pub use net::{FrameReadError, FrameReader};
pub use notify::Notify;
pub use turns::Turns;
