//! First come, first served turns for an action that may have to wait (sending into a full
//! mesh channel).
//!
//! Why: glommio's channel lets a sender that finds room freed take it before an earlier
//! sender, woken by that room, runs again; so two forwards to one shard could leave in the
//! opposite order from the one they were made in. Forwards of one RESP connection must leave
//! in command order (a pipelined `SET k 1`, `SET k 2` must end with 2), so a shard takes a
//! turn per destination before each send.
//!
//! Invariants: turns are served in the order they were taken; a turn given up before it is
//! served (its future dropped) is skipped, so the queue never stalls. Taking a turn when none
//! is waiting costs no wake-up and no allocation.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// The queue of turns for one destination. Single-executor.
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
                drop(turns.take().await);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
