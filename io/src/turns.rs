//! First come, first served turns for an action that may have to wait.
//!
//! Why: a single-threaded wake-up that frees room (a slot in a mesh channel, bytes in the
//! commit log's pending batch) lets whichever task polls first take it. A task that arrives
//! later but is polled before the woken waiter runs again takes the room ahead of it, so two
//! actions of one client (a pipelined `SET k 1`, `SET k 2`) could complete in the opposite
//! order from the one they were started in. Taking a turn before the wait orders them: only
//! the turn holder waits for room, everyone else waits for their turn.
//!
//! Users: a shard's forwards to each other shard (`shard/src/runtime/route.rs`) and the
//! commit log's [`GroupCommitLog::ready`](crate::log_writer::GroupCommitLog::ready).
//!
//! Invariants: turns are served in the order they were taken; a turn given up before it is
//! served (its future dropped) is skipped, so the queue never stalls. Taking a turn when none
//! is waiting costs no wake-up and no allocation.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// A queue of turns. Single-executor.
#[derive(Debug, Default)]
pub struct Turns {
    /// The next ticket handed out.
    next: Cell<u64>,
    /// The ticket being served.
    serving: Cell<u64>,
    /// Tasks waiting for their ticket to be served.
    waiting: RefCell<BTreeMap<u64, Waker>>,
    /// Tickets given up or finished ahead of their turn, skipped when reached.
    done_early: RefCell<BTreeSet<u64>>,
}

/// A turn, held until dropped; the next one is served then.
#[derive(Debug)]
pub struct Turn<'a> {
    turns: &'a Turns,
    ticket: u64,
}

impl Turns {
    /// Whether no turn is held or waited for: a caller that finds this may act without a
    /// turn (nobody is ahead of it), as long as it does not wait.
    pub fn is_idle(&self) -> bool {
        self.serving.get() == self.next.get()
    }

    /// Waits for a turn; every turn taken earlier is served (or given up) first.
    pub async fn take(&self) -> Turn<'_> {
        let ticket = self.next.get();
        self.next.set(ticket + 1);
        // Built before waiting, so that a future dropped while waiting gives its turn up.
        let turn = Turn {
            turns: self,
            ticket,
        };
        poll_fn(|cx| {
            if self.serving.get() == ticket {
                Poll::Ready(())
            } else {
                self.waiting.borrow_mut().insert(ticket, cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        turn
    }

    fn finish(&self, ticket: u64) {
        self.waiting.borrow_mut().remove(&ticket);
        if ticket != self.serving.get() {
            self.done_early.borrow_mut().insert(ticket);
            return;
        }
        let mut serving = ticket + 1;
        {
            let mut done_early = self.done_early.borrow_mut();
            while done_early.remove(&serving) {
                serving += 1;
            }
        }
        self.serving.set(serving);
        let next = self.waiting.borrow_mut().remove(&serving);
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.finish(self.ticket);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::rc::Rc;

    use super::*;

    #[test]
    fn turns_are_served_in_order_and_given_up_turns_are_skipped() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let turns = Rc::new(Turns::default());
                let order = Rc::new(RefCell::new(Vec::new()));
                let first = turns.take().await;
                let mut tasks = Vec::new();
                for i in 0..4 {
                    let (turns, order) = (turns.clone(), order.clone());
                    tasks.push(glommio::spawn_local(async move {
                        let _turn = turns.take().await;
                        order.borrow_mut().push(i);
                    }));
                }
                // Let every task take its ticket, then cancel the second one while it waits.
                futures_lite::future::yield_now().await;
                tasks.remove(1).cancel().await;
                drop(first);
                for task in tasks {
                    task.await;
                }
                assert_eq!(*order.borrow(), [0, 2, 3]);
                // Nothing waits any more: the next turn is served at once.
                assert!(turns.is_idle());
                let turn = turns.take().await;
                assert!(!turns.is_idle(), "a held turn is not idle");
                drop(turn);
                assert!(turns.is_idle());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
