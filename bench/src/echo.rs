//! The `echo` workload: one length-prefixed frame out, the same frame back, over a plain
//! blocking `TcpStream` with `TCP_NODELAY`. Against the echo server this is the ceiling no
//! request/response server can beat on the machine: the same driver, threads and syscalls per
//! operation, but no encoding, routing or storage.

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use tessera_io::net::LENGTH_PREFIX_BYTES;

use crate::constants::{ECHO_FRAME_BYTES_MAX, ECHO_INFLIGHT_BYTES_MAX};
use crate::error::{BenchError, OpError};
use crate::report::OpKind;
use crate::Op;

/// How long connecting to the echo server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Read buffer of one echo connection: many pipelined answers per `read` call.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// What `echo` does, apart from how it is driven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoConfig {
    /// The echo server.
    pub server: String,
    /// Frame body bytes.
    pub size: usize,
}

impl EchoConfig {
    /// Checks every bound (the window must fit in socket buffers, see
    /// [`ECHO_INFLIGHT_BYTES_MAX`]); the error names the flag to change.
    pub fn validate(&self, pipeline: usize) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::InvalidArgs(m));
        if !(1..=ECHO_FRAME_BYTES_MAX).contains(&self.size) {
            return bad(format!(
                "--size must be between 1 and {ECHO_FRAME_BYTES_MAX}, not {}",
                self.size
            ));
        }
        let window = pipeline.saturating_mul(self.size + LENGTH_PREFIX_BYTES);
        if pipeline > 1 && window > ECHO_INFLIGHT_BYTES_MAX {
            return bad(format!(
                "--pipeline {pipeline} x --size {} puts {window} bytes in flight; with --pipeline above 1 at most {ECHO_INFLIGHT_BYTES_MAX} are allowed (more could fill both socket buffers and deadlock)",
                self.size
            ));
        }
        Ok(())
    }
}

/// Encodes one frame: little-endian `u32` body length, then the body.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("echo bodies are bounded by ECHO_FRAME_BYTES_MAX");
    let mut out = Vec::with_capacity(LENGTH_PREFIX_BYTES + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// One echo connection.
#[derive(Debug)]
pub struct EchoOp {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// The frame sent every time.
    frame: Vec<u8>,
    /// Where an answer's body is read into.
    answer: Vec<u8>,
}

impl EchoOp {
    /// Connects to the echo server.
    pub fn open(config: &EchoConfig) -> Result<Self, OpError> {
        let addr = config
            .server
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| OpError(format!("{} resolves to nothing", config.server)))?;
        let writer = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| OpError(format!("cannot connect to {addr}: {e}")))?;
        writer.set_nodelay(true)?;
        let reader = BufReader::with_capacity(READ_BUFFER_BYTES, writer.try_clone()?);
        let body: Vec<u8> = (0..config.size).map(|i| (i % 251) as u8).collect();
        Ok(Self {
            writer,
            reader,
            frame: frame(&body),
            answer: vec![0; config.size],
        })
    }
}

impl Op for EchoOp {
    type InFlight = ();

    fn start(&mut self) -> Result<(OpKind, ()), OpError> {
        self.writer.write_all(&self.frame)?;
        Ok((OpKind::Echo, ()))
    }

    fn finish(&mut self, (): ()) -> Result<(), OpError> {
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        self.reader.read_exact(&mut prefix)?;
        let len = u32::from_le_bytes(prefix) as usize;
        if len != self.answer.len() {
            return Err(OpError(format!(
                "echo answered a {len}-byte frame to a {}-byte one",
                self.answer.len()
            )));
        }
        self.reader.read_exact(&mut self.answer)?;
        if self.answer != self.frame[LENGTH_PREFIX_BYTES..] {
            return Err(OpError("echo answered different bytes".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(size: usize) -> EchoConfig {
        EchoConfig {
            server: "127.0.0.1:1".into(),
            size,
        }
    }

    #[test]
    fn frames_are_length_prefixed() {
        assert_eq!(frame(b"abc"), [3, 0, 0, 0, b'a', b'b', b'c']);
    }

    #[test]
    fn validate_bounds_size_and_window() {
        assert!(config(100).validate(1).is_ok());
        assert!(
            config(ECHO_FRAME_BYTES_MAX).validate(1).is_ok(),
            "pipeline 1 never deadlocks"
        );
        assert!(config(100).validate(1000).is_ok());
        let err = config(0).validate(1).unwrap_err().to_string();
        assert!(err.contains("--size"), "{err}");
        let err = config(ECHO_FRAME_BYTES_MAX + 1)
            .validate(1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--size"), "{err}");
        let err = config(64 << 10).validate(4).unwrap_err().to_string();
        assert!(err.contains("--pipeline"), "{err}");
    }
}
