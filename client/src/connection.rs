//! One TCP connection to one shard, shared by any number of threads.
//!
//! Reading is leader/follower, with no reader thread: a caller waiting for an answer takes the
//! read half if nobody holds it (it becomes the *leader*) and reads frames, handing each
//! answer to the caller that waits for its request id, until its own answer arrives. Callers
//! that find the read half taken (*followers*) wait on their own slot. A leader that leaves
//! passes the turn to one caller still waiting, so someone always reads while anyone waits.
//! A single caller thus reads its own answer straight from the socket: no thread hand-off.
//!
//! Invariants:
//! - `waiting` holds exactly the requests sent and not yet answered or abandoned; the turn
//!   is passed only to callers inside `wait`.
//! - A leader releases the read half *before* it looks for a successor, and a caller
//!   registers in `waiting` *before* it tries to take the read half, so a caller that failed
//!   to take it is always seen by the leader that blocked it.
//! - When the connection breaks, every waiting caller is told at once, and the connection is
//!   marked dead so that the next request opens a new one.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use tessera_schema::{decode_response, Encoder, FrameBuffer, Request, Response, FRAME_BYTES_MAX};

use crate::error::ClientError;

/// What a waiting caller is told.
#[derive(Debug)]
pub(crate) enum Wake {
    /// Its answer (or why there will be none).
    Answer(Result<Response, ClientError>),
    /// The reader left: try to become the reader.
    YourTurn,
}

/// Where a caller waits. The channel is unbounded so that turns passed to a caller can never
/// crowd out its answer (a slot holds one answer and one turn per leader that left meanwhile).
#[derive(Debug)]
struct Slot {
    tx: Sender<Wake>,
    /// The caller is inside [`Connection::wait`]: only such callers are handed the turn (a
    /// request whose caller has not started waiting would sit on it).
    in_wait: bool,
}

#[derive(Debug)]
struct WriteHalf {
    stream: TcpStream,
    encoder: Encoder,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct ReadHalf {
    stream: TcpStream,
    frames: FrameBuffer,
}

/// A live connection to one shard.
#[derive(Debug)]
pub(crate) struct Connection {
    addr: SocketAddr,
    writer: Mutex<WriteHalf>,
    reader: Mutex<ReadHalf>,
    /// A third handle on the socket, to shut it down without waiting for either half's lock.
    closer: TcpStream,
    waiting: Mutex<HashMap<u64, Slot>>,
    next_id: AtomicU64,
    /// When the connection was opened; `last_send_us` counts from it.
    opened: Instant,
    /// Microseconds after `opened` of the last request sent.
    last_send_us: AtomicU64,
    alive: AtomicBool,
    inflight_max: usize,
}

/// The answer waiting in `rx`, if any, skipping turns queued before it (a turn is only a hint
/// to try for the read half, which a caller holding it has no use for).
fn take_answer(rx: &Receiver<Wake>) -> Option<Result<Response, ClientError>> {
    loop {
        match rx.try_recv() {
            Ok(Wake::Answer(answer)) => return Some(answer),
            Ok(Wake::YourTurn) => continue,
            Err(_) => return None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Connection {
    /// Connects.
    pub(crate) fn open(
        addr: SocketAddr,
        connect_timeout: Duration,
        write_timeout: Duration,
        inflight_max: usize,
    ) -> Result<Arc<Self>, ClientError> {
        let connect_err = |e: std::io::Error| ClientError::Connect {
            addr: addr.to_string(),
            why: e.to_string(),
        };
        let stream = TcpStream::connect_timeout(&addr, connect_timeout).map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        // A server that stops reading must not block a sender (and the writer lock) forever.
        stream
            .set_write_timeout(Some(write_timeout))
            .map_err(connect_err)?;
        let read_stream = stream.try_clone().map_err(connect_err)?;
        let closer = stream.try_clone().map_err(connect_err)?;
        Ok(Arc::new(Self {
            addr,
            writer: Mutex::new(WriteHalf {
                stream,
                encoder: Encoder::new(),
                buf: Vec::new(),
            }),
            reader: Mutex::new(ReadHalf {
                stream: read_stream,
                frames: FrameBuffer::new(FRAME_BYTES_MAX),
            }),
            closer,
            waiting: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            opened: Instant::now(),
            last_send_us: AtomicU64::new(0),
            alive: AtomicBool::new(true),
            inflight_max,
        }))
    }

    /// Whether the connection can still carry requests.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Whether the server closed this connection while nobody was reading it (a restarted
    /// server): a non-blocking peek sees the end of the stream. Checked before an idle
    /// connection is reused, so that the next request goes out on a fresh one instead of
    /// failing with `ConnectionLost`. Answers still pending count as alive.
    pub(crate) fn peer_closed(&self) -> bool {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
        match socket2::SockRef::from(&self.closer).recv_with_flags(&mut byte, flags) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }

    /// Whether no request is in flight and none was sent for at least `quiet`: only then is a
    /// peek for a closed peer worth its system call.
    pub(crate) fn is_idle_for(&self, quiet: Duration) -> bool {
        let last = Duration::from_micros(self.last_send_us.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last) >= quiet && lock(&self.waiting).is_empty()
    }

    /// Sends a request; wait for the answer with [`Connection::wait`].
    pub(crate) fn send(&self, request: &Request) -> Result<(u64, Receiver<Wake>), ClientError> {
        if !self.is_alive() {
            return Err(self.lost("the connection is closed".into()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now_us = u64::try_from(self.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_send_us.store(now_us, Ordering::Relaxed);
        let (tx, rx) = unbounded();
        {
            let mut waiting = lock(&self.waiting);
            if waiting.len() >= self.inflight_max {
                return Err(ClientError::TooManyInFlight(waiting.len()));
            }
            waiting.insert(id, Slot { tx, in_wait: false });
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
            self.fail_all(&e.to_string());
            return Err(self.lost(e.to_string()));
        }
        Ok((id, rx))
    }

    /// Waits for the answer to request `id` until `deadline`.
    pub(crate) fn wait(
        &self,
        id: u64,
        rx: &Receiver<Wake>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        if let Some(slot) = lock(&self.waiting).get_mut(&id) {
            // Before trying for the read half (see the module's invariants).
            slot.in_wait = true;
        }
        loop {
            match rx.try_recv() {
                Ok(Wake::Answer(answer)) => return answer,
                Ok(Wake::YourTurn) | Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    return Err(self.lost("answer slot dropped".into()))
                }
            }
            let reader = match self.reader.try_lock() {
                Ok(reader) => Some(reader),
                // A leader panicked: the buffer may hold a partial frame, so the stream is
                // out of step; the leader that takes over fails the connection cleanly.
                Err(TryLockError::Poisoned(poisoned)) => {
                    self.fail_all("a reader panicked");
                    Some(poisoned.into_inner())
                }
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut reader) = reader {
                let outcome = self.lead(&mut reader, rx, deadline);
                drop(reader);
                if outcome.is_none() {
                    // Before passing the turn, so that it cannot be passed to this caller.
                    self.abandon(id);
                }
                self.pass_turn();
                return outcome.unwrap_or_else(|| self.answer_or_timeout(rx, timeout));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Wake::Answer(answer)) => return answer,
                Ok(Wake::YourTurn) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.abandon(id);
                    // A turn may have been passed to this caller just now; pass it on.
                    self.pass_turn();
                    return self.answer_or_timeout(rx, timeout);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.lost("answer slot dropped".into()))
                }
            }
        }
    }

    /// After giving up: the answer if it arrived at the last moment, else a timeout.
    fn answer_or_timeout(
        &self,
        rx: &Receiver<Wake>,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        take_answer(rx).unwrap_or(Err(ClientError::Timeout(timeout)))
    }

    /// Reads as the leader until this caller's answer is in `rx`; `None` at the deadline.
    fn lead(
        &self,
        reader: &mut ReadHalf,
        rx: &Receiver<Wake>,
        deadline: Instant,
    ) -> Option<Result<Response, ClientError>> {
        loop {
            if let Some(answer) = take_answer(rx) {
                return Some(answer);
            }
            if let Err(why) = self.dispatch_frames(&mut reader.frames) {
                self.fail_all(&why);
                continue;
            }
            if let Some(answer) = take_answer(rx) {
                return Some(answer);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = reader.stream.set_read_timeout(Some(left));
            match reader.frames.read_from(&mut reader.stream) {
                Ok(0) => self.fail_all("the server closed the connection"),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => self.fail_all(&e.to_string()),
            }
        }
    }

    /// Hands every complete frame to its waiter. An error answer with id 0 is about the
    /// connection itself (the server closes it next).
    fn dispatch_frames(&self, frames: &mut FrameBuffer) -> Result<(), String> {
        loop {
            let body = match frames.next_frame_ref() {
                Ok(Some(body)) => body,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("bad frame from server: {e}")),
            };
            let (id, response) =
                decode_response(body).map_err(|e| format!("bad answer from server: {e}"))?;
            if id == 0 {
                return Err(match response {
                    Response::Error(e) => format!("the server refused the connection's input: {e}"),
                    _ => "the server sent an answer with id 0".into(),
                });
            }
            if let Some(slot) = lock(&self.waiting).remove(&id) {
                let _ = slot.tx.send(Wake::Answer(Ok(response)));
            }
        }
    }

    /// Wakes one caller still waiting so that it takes over reading. A slot whose caller is
    /// gone refuses the turn, and the next one gets it.
    fn pass_turn(&self) {
        for slot in lock(&self.waiting).values().filter(|s| s.in_wait) {
            if slot.tx.send(Wake::YourTurn).is_ok() {
                return;
            }
        }
    }

    /// Forgets a request whose caller gave up waiting (or never waited).
    pub(crate) fn abandon(&self, id: u64) {
        lock(&self.waiting).remove(&id);
    }

    /// Marks the connection dead and tells every waiting caller.
    fn fail_all(&self, why: &str) {
        self.alive.store(false, Ordering::Release);
        let _ = self.closer.shutdown(std::net::Shutdown::Both);
        for (_, slot) in lock(&self.waiting).drain() {
            let _ = slot.tx.send(Wake::Answer(Err(self.lost(why.to_string()))));
        }
    }

    fn lost(&self, why: String) -> ClientError {
        ClientError::ConnectionLost {
            addr: self.addr.to_string(),
            why,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.closer.shutdown(std::net::Shutdown::Both);
    }
}
