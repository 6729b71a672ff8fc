//! One TCP connection to one shard, shared by any number of threads.
//!
//! Writers encode and write under a mutex; one reader thread per connection decodes answers
//! and hands each to the caller waiting for its request id. When the connection breaks, every
//! waiting caller is told at once (nobody waits for a timeout on a dead socket), and the
//! connection is marked dead so that the next request opens a new one.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use tessera_schema::{decode_response, Encoder, FrameBuffer, Request, Response, FRAME_BYTES_MAX};

use crate::error::ClientError;

/// Where the answer to one request goes.
type Slot = Sender<Result<Response, ClientError>>;

#[derive(Debug)]
struct WriteHalf {
    stream: TcpStream,
    encoder: Encoder,
    buf: Vec<u8>,
}

/// A live connection to one shard.
#[derive(Debug)]
pub(crate) struct Connection {
    addr: SocketAddr,
    writer: Mutex<WriteHalf>,
    waiting: Arc<Mutex<HashMap<u64, Slot>>>,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
    inflight_max: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Connection {
    /// Connects and starts the reader thread.
    pub(crate) fn open(
        addr: SocketAddr,
        connect_timeout: Duration,
        inflight_max: usize,
    ) -> Result<Arc<Self>, ClientError> {
        let connect_err = |e: std::io::Error| ClientError::Connect {
            addr: addr.to_string(),
            why: e.to_string(),
        };
        let stream = TcpStream::connect_timeout(&addr, connect_timeout).map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        let read_stream = stream.try_clone().map_err(connect_err)?;
        let conn = Arc::new(Self {
            addr,
            writer: Mutex::new(WriteHalf {
                stream,
                encoder: Encoder::new(),
                buf: Vec::new(),
            }),
            waiting: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
            alive: Arc::new(AtomicBool::new(true)),
            inflight_max,
        });
        let (waiting, alive) = (conn.waiting.clone(), conn.alive.clone());
        std::thread::Builder::new()
            .name(format!("tessera-client-{addr}"))
            .spawn(move || read_loop(read_stream, addr, &waiting, &alive))
            .map_err(connect_err)?;
        Ok(conn)
    }

    /// Whether the connection can still carry requests.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Sends a request; the answer arrives on the returned receiver.
    pub(crate) fn send(
        &self,
        request: &Request,
    ) -> Result<(u64, Receiver<Result<Response, ClientError>>), ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded(1);
        {
            let mut waiting = lock(&self.waiting);
            if waiting.len() >= self.inflight_max {
                return Err(ClientError::TooManyInFlight(waiting.len()));
            }
            waiting.insert(id, tx);
        }
        let mut w = lock(&self.writer);
        let WriteHalf {
            stream,
            encoder,
            buf,
        } = &mut *w;
        buf.clear();
        encoder.encode_request(id, request, buf);
        if let Err(e) = stream.write_all(buf) {
            drop(w);
            lock(&self.waiting).remove(&id);
            self.kill();
            return Err(ClientError::ConnectionLost {
                addr: self.addr.to_string(),
                why: e.to_string(),
            });
        }
        Ok((id, rx))
    }

    /// Forgets a request whose caller gave up waiting.
    pub(crate) fn abandon(&self, id: u64) {
        lock(&self.waiting).remove(&id);
    }

    fn kill(&self) {
        self.alive.store(false, Ordering::Release);
        let _ = lock(&self.writer).stream.shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Ends the reader thread, which is blocked in read.
        let _ = lock(&self.writer).stream.shutdown(std::net::Shutdown::Both);
    }
}

fn read_loop(
    mut stream: TcpStream,
    addr: SocketAddr,
    waiting: &Mutex<HashMap<u64, Slot>>,
    alive: &AtomicBool,
) {
    let mut frames = FrameBuffer::new(FRAME_BYTES_MAX);
    let why = loop {
        match frames.read_from(&mut stream) {
            Ok(0) => break "the server closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
        if let Err(why) = dispatch_frames(&mut frames, waiting) {
            break why;
        }
    };
    alive.store(false, Ordering::Release);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let lost = ClientError::ConnectionLost {
        addr: addr.to_string(),
        why,
    };
    for (_, slot) in lock(waiting).drain() {
        let _ = slot.send(Err(lost.clone()));
    }
}

/// Hands every complete frame to its waiter. An error answer with id 0 is about the connection
/// itself (the server closes it next), so it ends the loop.
fn dispatch_frames(
    frames: &mut FrameBuffer,
    waiting: &Mutex<HashMap<u64, Slot>>,
) -> Result<(), String> {
    loop {
        let body = match frames.next_frame_ref() {
            Ok(Some(body)) => body,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("bad frame from server: {e}")),
        };
        let (id, response) =
            decode_response(body).map_err(|e| format!("bad answer from server: {e}"))?;
        if id == 0 {
            let why = match response {
                Response::Error(e) => format!("the server refused the connection's input: {e}"),
                _ => "the server sent an answer with id 0".into(),
            };
            return Err(why);
        }
        if let Some(slot) = lock(waiting).remove(&id) {
            let _ = slot.send(Ok(response));
        }
    }
}
