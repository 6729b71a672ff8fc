//! The load generator's errors: each says what went wrong and what to change.

use std::io;

/// Why a benchmark run could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A flag is out of range or flags contradict each other; fix the command line.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// A connection could not be set up before the run; is the server running and reachable?
    #[error("connection {index} could not be set up: {why}")]
    Setup {
        /// Which connection (0-based).
        index: usize,
        /// Why.
        why: String,
    },
    /// Writing the keys before the run failed; the server's answer says why.
    #[error("prefill failed: {0}")]
    Prefill(String),
    /// The echo server could not start or stopped badly.
    #[error("echo server: {0}")]
    EchoServer(String),
    /// A local file or thread could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's answer.
        source: io::Error,
    },
}

impl BenchError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
