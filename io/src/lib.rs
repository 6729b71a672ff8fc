//! `tessera-io`: the only Tessera crate that talks to the kernel.
//!
//! It owns executor bootstrap (one glommio `LocalExecutor` per shard, the polled-I/O probe
//! warmed before anything else touches a file, a preempt timer suited to latency), DMA file
//! helpers, the group-commit log writer, framed TCP reading and the cross-shard mesh.
//!
//! Everything here is Linux-only (io_uring via glommio); `linux-only.md` at the repository root
//! says what the kernel and its limits must provide. Formats are not drawn here: the commit
//! log's bytes are supplied by the caller through [`log_writer::LogFormat`], so the writer and
//! reader of every format can live side by side in `shard/`.

pub mod constants;
pub mod executor;
pub mod file;
pub mod log_writer;
pub mod mesh;
pub mod net;
pub mod notify;
pub mod turns;

pub use executor::{spawn_executor, ExecutorConfig, ShardPlacement};
pub use log_writer::{GroupCommitLog, LogConfig, LogError, LogFormat, LogPosition, Ticket};
pub use mesh::{ConnectedMesh, Mesh, MeshEndpoint};
pub use net::{FrameReadError, FrameReader};
pub use notify::Notify;
pub use turns::Turns;
