//! First come, first served turns for sending into a full mesh channel.
//!
//! Why: glommio's channel lets a sender that finds room freed take it before an earlier
//! sender, woken by that room, runs again; so two forwards to one shard could leave in the
//! opposite order from the one they were made in. Forwards of one RESP connection must leave
//! in command order (a pipelined `SET k 1`, `SET k 2` must end with 2), so a shard takes a
//! turn per destination before each send.
//!
//! The queue itself lives in `tessera-io` ([`tessera_io::turns`]), because the commit log's
//! wait for room needs the same order.

pub use tessera_io::turns::{Turn, Turns};
