//! A RESP connection's replies on their way out, in command order.
//!
//! Invariants: bytes enter `out` strictly in command order; `queue[i]` holds the reply of
//! command `head + i` (`None` while it runs), and its front is always a running command,
//! because a finished front moves to `out` at once. Reply buffers are pooled, so a command
//! answered out of turn does not allocate one.

use std::collections::VecDeque;

use crate::constants::{RESP_REPLY_POOL_MAX, RESP_REPLY_RETAINED_BYTES_MAX};

/// Replies not yet handed to the socket.
#[derive(Debug, Default)]
pub struct Replies {
    /// Bytes for the socket, in command order; the writer task drains it.
    pub out: Vec<u8>,
    /// Replies that cannot go into `out` yet, from command `head` on.
    queue: VecDeque<Option<Vec<u8>>>,
    /// Sequence number of `queue[0]`.
    head: u64,
    /// Bytes of the finished replies in `queue`.
    queued_bytes: usize,
    /// Buffers for reuse.
    pool: Vec<Vec<u8>>,
}

impl Replies {
    /// Appends the reply `write` produces for the next command, which is answered now.
    pub fn now(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.queue.is_empty() {
            write(&mut self.out);
        } else {
            let mut buf = self.buffer();
            write(&mut buf);
            self.queued_bytes += buf.len();
            self.queue.push_back(Some(buf));
        }
    }

    /// Like [`Replies::now`] for a `write` that may decline (returning false, having written
    /// nothing): then no reply is added and the command is answered some other way.
    pub fn try_now(&mut self, write: impl FnOnce(&mut Vec<u8>) -> bool) -> bool {
        if self.queue.is_empty() {
            write(&mut self.out)
        } else {
            let mut buf = self.buffer();
            if !write(&mut buf) {
                return false;
            }
            self.queued_bytes += buf.len();
            self.queue.push_back(Some(buf));
            true
        }
    }

    /// Reserves the place of the next command's reply, answered later with
    /// [`Replies::fill`]; returns its sequence number and a buffer to write the reply into.
    pub fn reserve(&mut self) -> (u64, Vec<u8>) {
        self.queue.push_back(None);
        let seq = self.head + self.queue.len() as u64 - 1;
        (seq, self.buffer())
    }

    /// Stores the reply of command `seq` and moves every reply now in order to `out`.
    pub fn fill(&mut self, seq: u64, reply: Vec<u8>) {
        let at = usize::try_from(seq.wrapping_sub(self.head)).unwrap_or(usize::MAX);
        let Some(slot) = self.queue.get_mut(at) else {
            debug_assert!(false, "reply of command {seq} is not awaited");
            return;
        };
        self.queued_bytes += reply.len();
        *slot = Some(reply);
        while let Some(Some(_)) = self.queue.front() {
            if let Some(Some(reply)) = self.queue.pop_front() {
                self.head += 1;
                self.queued_bytes -= reply.len();
                self.out.extend_from_slice(&reply);
                self.recycle(reply);
            }
        }
    }

    /// Commands whose replies are not in `out` yet (running, or finished out of turn).
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Reply bytes held for the client: in `out` and finished out of turn.
    pub fn held_bytes(&self) -> usize {
        self.out.len() + self.queued_bytes
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_default()
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= RESP_REPLY_RETAINED_BYTES_MAX && self.pool.len() < RESP_REPLY_POOL_MAX
        {
            buf.clear();
            self.pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_leave_in_command_order() {
        let mut replies = Replies::default();
        replies.now(|out| out.extend_from_slice(b"0"));
        let (one, mut one_buf) = replies.reserve();
        replies.now(|out| out.extend_from_slice(b"2"));
        let (three, mut three_buf) = replies.reserve();
        assert_eq!(replies.out, b"0");
        three_buf.extend_from_slice(b"3");
        replies.fill(three, three_buf);
        assert_eq!(replies.out, b"0", "3 waits for 1");
        assert_eq!(replies.pending(), 3);
        one_buf.extend_from_slice(b"1");
        replies.fill(one, one_buf);
        assert_eq!(replies.out, b"0123");
        assert_eq!(replies.pending(), 0);
        assert_eq!(replies.held_bytes(), 4);
        replies.now(|out| out.extend_from_slice(b"4"));
        assert_eq!(replies.out, b"01234");
    }
}
