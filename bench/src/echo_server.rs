//! A TCP echo server built the way the Tessera server is: one glommio `LocalExecutor` per
//! shard (pinned by default), every shard listening on the same port (glommio sets
//! `SO_REUSEPORT`, so the kernel spreads connections over shards), frames read with
//! [`FrameReader`] and written back whole. It is the baseline `echo` measures.
//!
//! Shard 0 binds first; the others bind the address it got, so `--listen` may use port 0.
//! Output is batched like the server's: frames that arrived together go back in one write.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use tessera_io::constants::PREEMPT_TIMER_MS_DEFAULT;
use tessera_io::{spawn_executor, ExecutorConfig, FrameReader, ShardPlacement};

use crate::constants::{
    ECHO_CONNECTIONS_PER_SHARD_MAX, ECHO_FRAME_BYTES_MAX, ECHO_SHARDS_MAX, ECHO_SHUTDOWN_POLL_MS,
};
use crate::error::BenchError;

/// Output a connection gathers before it writes, even if more frames are buffered.
const OUT_FLUSH_BYTES: usize = 64 << 10;

/// How to run the echo server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoServerConfig {
    /// Address every shard listens on.
    pub listen: SocketAddr,
    /// Shards (executors, threads).
    pub shards: u16,
    /// Pinned to CPUs, or unbound.
    pub placement: ShardPlacement,
}

impl EchoServerConfig {
    /// Checks every bound; the error names the flag to change.
    pub fn validate(&self) -> Result<(), BenchError> {
        if !(1..=ECHO_SHARDS_MAX).contains(&self.shards) {
            return Err(BenchError::InvalidArgs(format!(
                "--shards must be between 1 and {ECHO_SHARDS_MAX}, not {}",
                self.shards
            )));
        }
        Ok(())
    }
}

type ShardHandle = tessera_io::executor::ExecutorHandle<()>;

/// A running echo server.
#[derive(Debug)]
pub struct EchoServer {
    handles: Vec<ShardHandle>,
    stop: Arc<AtomicBool>,
    local_addr: SocketAddr,
}

impl EchoServer {
    /// Starts every shard and returns once all listen.
    pub fn start(config: &EchoServerConfig) -> Result<Self, BenchError> {
        config.validate()?;
        let exec = ExecutorConfig {
            name: "bench-echo".into(),
            placement: config.placement,
            preempt_timer: Duration::from_millis(PREEMPT_TIMER_MS_DEFAULT),
        };
        let mut server = Self {
            handles: Vec::with_capacity(usize::from(config.shards)),
            stop: Arc::new(AtomicBool::new(false)),
            local_addr: config.listen,
        };
        // One at a time: shard 0 decides the port (when --listen says 0).
        for shard in 0..config.shards {
            match server.start_shard(shard, &exec) {
                Ok(addr) => server.local_addr = addr,
                Err(e) => {
                    server.stop();
                    let _ = server.wait();
                    return Err(e);
                }
            }
        }
        Ok(server)
    }

    fn start_shard(&mut self, shard: u16, exec: &ExecutorConfig) -> Result<SocketAddr, BenchError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (addr, stop) = (self.local_addr, self.stop.clone());
        let handle = spawn_executor(shard, exec, move || run_shard(addr, ready_tx, stop))
            .map_err(|e| BenchError::EchoServer(e.to_string()))?;
        match ready_rx.recv() {
            Ok(ready) => {
                self.handles.push(handle);
                ready.map_err(BenchError::EchoServer)
            }
            // The executor ended before its shard ran: its result says why.
            Err(_) => Err(BenchError::EchoServer(match handle.join() {
                Ok(Err(e)) => format!("shard {shard}: {e}"),
                Ok(Ok(())) => format!("shard {shard} stopped before it listened"),
                Err(e) => format!("shard {shard} executor: {e}"),
            })),
        }
    }

    /// The address the shards listen on (with the real port when `--listen` said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A flag that stops the server when set (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Asks every shard to stop; open connections are dropped.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits until every shard has stopped.
    pub fn wait(self) -> Result<(), BenchError> {
        tessera_io::executor::join_all(self.handles).map_err(BenchError::EchoServer)
    }
}

/// One shard: listen, report the bound address, serve until asked to stop.
async fn run_shard(
    addr: SocketAddr,
    ready: mpsc::Sender<Result<SocketAddr, String>>,
    stop: Arc<AtomicBool>,
) {
    let listener = match TcpListener::bind(addr).and_then(|l| Ok((l.local_addr()?, l))) {
        Ok((bound, listener)) => {
            let _ = ready.send(Ok(bound));
            listener
        }
        Err(e) => {
            let _ = ready.send(Err(format!("cannot listen on {addr}: {e}")));
            return;
        }
    };
    let accept = glommio::spawn_local(accept_loop(listener)).detach();
    while !stop.load(Ordering::Acquire) {
        glommio::timer::sleep(Duration::from_millis(ECHO_SHUTDOWN_POLL_MS)).await;
    }
    accept.cancel();
}

async fn accept_loop(listener: TcpListener) {
    let connections = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if connections.get() >= ECHO_CONNECTIONS_PER_SHARD_MAX {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        connections.set(connections.get() + 1);
        let connections = connections.clone();
        glommio::spawn_local(async move {
            echo(stream).await;
            connections.set(connections.get() - 1);
        })
        .detach();
    }
}

/// Echoes frames until the peer closes the stream or sends a bad frame.
async fn echo(stream: TcpStream) {
    let (reader, mut writer) = futures_lite::io::split(stream);
    let mut frames = FrameReader::new(reader, ECHO_FRAME_BYTES_MAX);
    let mut out = Vec::new();
    while let Ok(Some(body)) = frames.next_frame().await {
        let len = u32::try_from(body.len()).expect("FrameReader bounds bodies by the u32 prefix");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        if frames.has_buffered() && out.len() < OUT_FLUSH_BYTES {
            continue; // answer frames that arrived together with one write
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
        if out.capacity() > 4 * OUT_FLUSH_BYTES {
            out = Vec::new();
        }
    }
    let _ = writer.close().await;
}
