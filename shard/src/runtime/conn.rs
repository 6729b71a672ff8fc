//! One client connection: read frames, execute requests (many in flight, answered as they
//! finish), write answers in batches.
//!
//! Invariants:
//! - At most `inflight_max` requests of one connection run at once, and the reader stops
//!   reading while `CONNECTION_OUTPUT_BYTES_MAX` of answers wait for the client: TCP flow
//!   control then pushes back on the client instead of a queue growing. A client that stops
//!   reading altogether is dropped when a write to it times out.
//! - Answers are encoded into one output buffer that a single writer task drains, so many
//!   answers share one system call. Memory per connection is bounded by about two output
//!   caps (one queued, one being written) plus the answers of in-flight requests.
//! - No answer larger than a frame may go out: it is replaced by a `TooLarge` error.
//! - Bad input (oversized prefix, undecodable frame) gets one typed error answer with request
//!   id 0, then the connection is closed; other connections never notice.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tessera_io::net::FrameReadError;
use tessera_io::{FrameReader, Notify};
use tessera_schema::{
    decode_request, Encoder, ErrorCode, Request, Response, WireError, FRAME_BYTES_MAX,
    FRAME_HEADER_BYTES,
};

use crate::constants::CONNECTION_OUTPUT_BYTES_MAX;

use super::route::ShardCtx;

/// Per-connection state shared by the reader loop, request tasks and the writer task.
#[derive(Debug)]
struct Conn {
    out: RefCell<Vec<u8>>,
    encoder: RefCell<Encoder>,
    out_ready: Notify,
    inflight: Cell<usize>,
    /// Signalled when a request finishes or queued output is handed to the socket.
    room: Notify,
    reading_done: Cell<bool>,
    broken: Cell<bool>,
}

impl Conn {
    fn reply(&self, id: u64, response: &Response) {
        if self.broken.get() {
            return;
        }
        let mut out = self.out.borrow_mut();
        let start = out.len();
        self.encoder
            .borrow_mut()
            .encode_response(id, response, &mut out);
        if out.len() - start > FRAME_HEADER_BYTES + FRAME_BYTES_MAX {
            // The client would refuse this frame and drop the connection; answer instead.
            out.truncate(start);
            let error = WireError::too_large(format!(
                "the answer exceeds {FRAME_BYTES_MAX} bytes; ask for less per request"
            ));
            self.encoder
                .borrow_mut()
                .encode_response(id, &Response::Error(error), &mut out);
        }
        drop(out);
        self.out_ready.notify();
    }

    fn finish_request(&self) {
        self.inflight.set(self.inflight.get() - 1);
        self.room.notify();
        self.out_ready.notify();
    }

    /// Whether the reader may take another request: few enough in flight, and not too many
    /// answers queued for a client that may not be reading them.
    fn has_room(&self, inflight_max: usize) -> bool {
        self.inflight.get() < inflight_max && self.out.borrow().len() < CONNECTION_OUTPUT_BYTES_MAX
    }
}

/// Limits of one connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Largest frame body accepted.
    pub frame_bytes_max: usize,
    /// Requests in flight at once.
    pub inflight_max: usize,
}

/// Serves a connection until the client closes it or sends bad input.
pub async fn serve<S>(stream: S, ctx: Rc<ShardCtx>, limits: ConnLimits)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (reader, writer) = futures_lite::io::split(stream);
    let conn = Rc::new(Conn {
        out: RefCell::new(Vec::new()),
        encoder: RefCell::new(Encoder::new()),
        out_ready: Notify::new(),
        inflight: Cell::new(0),
        room: Notify::new(),
        reading_done: Cell::new(false),
        broken: Cell::new(false),
    });
    let writer = glommio::spawn_local(write_loop(writer, conn.clone())).detach();
    read_loop(reader, &conn, &ctx, limits).await;
    conn.reading_done.set(true);
    conn.out_ready.notify();
    writer.await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    reader: R,
    conn: &Rc<Conn>,
    ctx: &Rc<ShardCtx>,
    limits: ConnLimits,
) {
    let mut frames = FrameReader::new(reader, limits.frame_bytes_max);
    loop {
        while !conn.has_room(limits.inflight_max) && !conn.broken.get() {
            conn.room.notified().await;
        }
        if conn.broken.get() {
            return;
        }
        let body = match frames.next_frame().await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => return refuse_frame(conn, &e),
        };
        match decode_request(body) {
            Ok((id, request)) => dispatch(conn, ctx, id, request),
            Err(e) => {
                // Typed by what is wrong (a batch over its limit is TooLarge, the rest
                // BadRequest); the stream cannot be trusted after it, so the connection closes.
                let mut error = e.to_wire_error();
                error.message.push_str("; closing the connection");
                conn.reply(0, &Response::Error(error));
                return;
            }
        }
    }
}

fn refuse_frame(conn: &Conn, e: &FrameReadError) {
    let error = match e {
        FrameReadError::TooLarge { .. } => {
            WireError::new(ErrorCode::TooLarge, format!("{e}; closing the connection"))
        }
        FrameReadError::Empty => WireError::bad_request(format!("{e}; closing the connection")),
        // The peer is gone or broke the stream: nobody to answer.
        _ => return,
    };
    conn.reply(0, &Response::Error(error));
}

fn dispatch(conn: &Rc<Conn>, ctx: &Rc<ShardCtx>, id: u64, request: Request) {
    if let Some(response) = ctx.execute_now(&request) {
        conn.reply(id, &response);
        return;
    }
    conn.inflight.set(conn.inflight.get() + 1);
    let (conn, ctx) = (conn.clone(), ctx.clone());
    glommio::spawn_local(async move {
        let response = ctx.execute(request).await;
        conn.reply(id, &response);
        conn.finish_request();
    })
    .detach();
}

async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, conn: Rc<Conn>) {
    let mut spare = Vec::new();
    loop {
        if conn.out.borrow().is_empty() {
            if conn.reading_done.get() && conn.inflight.get() == 0 {
                break;
            }
            conn.out_ready.notified().await;
            continue;
        }
        let batch = std::mem::replace(&mut *conn.out.borrow_mut(), spare);
        conn.room.notify();
        match write_batch(&mut writer, batch).await {
            Some(emptied) => spare = emptied,
            None => {
                conn.broken.set(true);
                conn.room.notify();
                break;
            }
        }
    }
    let _ = writer.close().await;
}

/// Writes one batch of output and returns its buffer emptied for reuse (a new one if it grew
/// past [`CONNECTION_WRITE_BYTES_MAX`](crate::constants::CONNECTION_WRITE_BYTES_MAX)), or
/// `None` when the connection is broken. The socket's write timeout (set at accept) ends a
/// write to a client that stopped reading.
pub(crate) async fn write_batch<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut batch: Vec<u8>,
) -> Option<Vec<u8>> {
    if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
        return None;
    }
    batch.clear();
    if batch.capacity() > crate::constants::CONNECTION_WRITE_BYTES_MAX {
        batch = Vec::new();
    }
    Some(batch)
}
