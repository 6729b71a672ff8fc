//! One RESP connection: read commands, run them (many at once), write the replies in command
//! order, many per system call.
//!
//! Invariants:
//! - Replies leave in command order (`replies.rs`), and commands never overtake an earlier
//!   command they depend on (`order.rs`).
//! - A command answerable at once (a GET of a key this shard owns, PING, INFO…) is answered
//!   inline, straight into the output buffer when nothing is queued before it; the others
//!   run as tasks of their own.
//! - At most `inflight_max` commands of one connection are queued or running, and the reader
//!   stops reading while `CONNECTION_OUTPUT_BYTES_MAX` of replies wait for the client: TCP
//!   flow control then pushes back on the client. A client that stops reading altogether is
//!   dropped when a write to it times out (the socket's write timeout, set at accept).
//! - The input holds at most `command_bytes_max` plus one read (`input.rs`); a command that
//!   does not fit is a protocol error.
//! - After a protocol error or QUIT nothing more is read: the replies of earlier commands
//!   still go out, then the connection closes. Other connections never notice.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tessera_io::Notify;
use tessera_schema::resp::{parse_command, write_error, write_simple};
use tessera_schema::DEFAULT_KEYSPACE;

use super::command::{self, Arg, Command};
use super::input::Input;
use super::order::Order;
use super::replies::Replies;
use super::{admin, store, RespShared};
use crate::constants::CONNECTION_OUTPUT_BYTES_MAX;
use crate::runtime::conn::write_batch;
use crate::runtime::route::ShardCtx;

/// Per-connection state shared by the reader loop, command tasks and the writer task.
#[derive(Debug, Default)]
struct Conn {
    replies: RefCell<Replies>,
    order: RefCell<Order>,
    out_ready: Notify,
    /// Signalled when a command finishes or queued output is handed to the socket.
    room: Notify,
    reading_done: Cell<bool>,
    broken: Cell<bool>,
}

impl Conn {
    fn reply_now(&self, write: impl FnOnce(&mut Vec<u8>)) {
        if !self.broken.get() {
            self.replies.borrow_mut().now(write);
            self.out_ready.notify();
        }
    }

    /// Like [`Conn::reply_now`] for a `write` that may decline (see [`Replies::try_now`]).
    fn try_reply_now(&self, write: impl FnOnce(&mut Vec<u8>) -> bool) -> bool {
        if self.broken.get() {
            return true;
        }
        let answered = self.replies.borrow_mut().try_now(write);
        if answered {
            self.out_ready.notify();
        }
        answered
    }

    /// Waits until `command` may start: room for it, and no earlier command it depends on
    /// still running. False if the connection broke meanwhile.
    async fn wait_turn(&self, command: &Command, inflight_max: usize) -> bool {
        while !self.broken.get() && !self.may_start(command, inflight_max) {
            self.room.notified().await;
        }
        !self.broken.get()
    }

    /// Room for one more command: few enough queued or running, and not too many reply
    /// bytes waiting for a client that may not be reading them.
    fn may_start(&self, command: &Command, inflight_max: usize) -> bool {
        let replies = self.replies.borrow();
        replies.pending() < inflight_max
            && replies.held_bytes() < CONNECTION_OUTPUT_BYTES_MAX
            && !self.order.borrow().must_wait(command)
    }
}

/// Serves a RESP connection until the client closes it, sends QUIT or breaks the protocol.
pub async fn serve<S>(stream: S, ctx: Rc<ShardCtx>, shared: Rc<RespShared>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (reader, writer) = futures_lite::io::split(stream);
    let conn = Rc::new(Conn::default());
    let writer = glommio::spawn_local(write_loop(writer, conn.clone())).detach();
    read_loop(reader, &conn, &ctx, &shared).await;
    conn.reading_done.set(true);
    conn.out_ready.notify();
    writer.await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    reader: R,
    conn: &Rc<Conn>,
    ctx: &Rc<ShardCtx>,
    shared: &Rc<RespShared>,
) {
    let limits = shared.limits;
    let mut input = Input::new(reader);
    loop {
        // Every whole command already buffered starts before the next read.
        loop {
            let args = match parse_command(input.buffered(), &limits.codec) {
                Ok(Some((args, used))) => {
                    input.consume(used);
                    args
                }
                Ok(None) => break,
                Err(e) => return conn.reply_now(|out| write_error(out, &e.reply_text())),
            };
            // An empty command is a blank line, which Redis skips too.
            if args.is_empty() {
                continue;
            }
            if start(conn, ctx, shared, args).await == Flow::Close {
                return;
            }
        }
        if input.buffered().len() >= limits.command_bytes_max {
            let text = format!(
                "ERR Protocol error: command longer than {} bytes",
                limits.command_bytes_max
            );
            return conn.reply_now(|out| write_error(out, &text));
        }
        // End of stream or a broken socket: a partial command is dropped, as Redis does.
        if !matches!(input.fill(limits.command_bytes_max).await, Ok(true)) {
            return;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// Starts one command once it may: answered now if it can be, else in a task of its own.
async fn start(conn: &Rc<Conn>, ctx: &Rc<ShardCtx>, shared: &RespShared, args: Vec<Arg>) -> Flow {
    let command = match command::parse(args) {
        Ok(command) => command,
        Err(e) => {
            tracing::debug!(shard = ctx.shard, error = %e, "RESP command refused");
            // Waits for room like any command, so refusals cannot queue without bound.
            if !conn
                .wait_turn(&Command::Ok, shared.limits.inflight_max)
                .await
            {
                return Flow::Close;
            }
            conn.reply_now(|out| write_error(out, &e.to_string()));
            return Flow::Continue;
        }
    };
    if !conn.wait_turn(&command, shared.limits.inflight_max).await {
        return Flow::Close;
    }
    match command {
        Command::Quit => {
            conn.reply_now(|out| write_simple(out, b"OK"));
            return Flow::Close;
        }
        // Nothing it depends on runs (`wait_turn`), so memory holds what it must see; a GET
        // that needs a disk read runs in a task like any data command.
        Command::Get(ref key)
            if ctx.owns(DEFAULT_KEYSPACE, key)
                && conn.try_reply_now(|out| store::get_local(ctx, key, out)) => {}
        command if command.touches_store() => spawn(conn, ctx, command),
        command => conn.reply_now(|out| admin::answer(command, ctx, shared, out)),
    }
    Flow::Continue
}

/// Runs a data command in its own task; its reply takes its place in the queue.
fn spawn(conn: &Rc<Conn>, ctx: &Rc<ShardCtx>, command: Command) {
    let held = conn.order.borrow_mut().hold(&command);
    let (seq, mut reply) = conn.replies.borrow_mut().reserve();
    let (conn, ctx) = (conn.clone(), ctx.clone());
    glommio::spawn_local(async move {
        store::run(&ctx, command, &mut reply).await;
        conn.order.borrow_mut().release(held);
        conn.replies.borrow_mut().fill(seq, reply);
        conn.room.notify();
        conn.out_ready.notify();
    })
    .detach();
}

async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, conn: Rc<Conn>) {
    let mut spare = Vec::new();
    loop {
        let (nothing_ready, nothing_pending) = {
            let replies = conn.replies.borrow();
            (replies.out.is_empty(), replies.pending() == 0)
        };
        if nothing_ready {
            if conn.reading_done.get() && nothing_pending {
                break;
            }
            conn.out_ready.notified().await;
            continue;
        }
        // Every reply ready so far goes out in one write.
        let batch = std::mem::replace(&mut conn.replies.borrow_mut().out, spare);
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
