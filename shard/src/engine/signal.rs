//! A wake-everyone signal for tasks on one executor: writers waiting for memtable room wait
//! for the next flush outcome.
//!
//! Invariant: a waiter that read `generation()` before a `signal()` never sleeps through it:
//! `changed(seen)` returns at once when the generation moved past `seen`.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// A generation counter with waiters.
#[derive(Debug, Default)]
pub struct Signal {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Signal {
    /// The current generation; pass it to [`Signal::changed`].
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Moves to the next generation and wakes every waiter.
    pub fn signal(&self) {
        self.generation.set(self.generation.get() + 1);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Waits until the generation is no longer `seen`.
    pub async fn changed(&self, seen: u64) {
        poll_fn(|cx| {
            if self.generation.get() != seen {
                Poll::Ready(())
            } else {
                let mut waiters = self.waiters.borrow_mut();
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    use futures::task::noop_waker;

    use super::Signal;

    #[test]
    fn a_signal_before_or_during_the_wait_ends_it() {
        let signal = Signal::default();
        let seen = signal.generation();
        signal.signal();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(pin!(signal.changed(seen)).poll(&mut cx), Poll::Ready(()));
        let seen = signal.generation();
        let mut waiting = pin!(signal.changed(seen));
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Pending);
        signal.signal();
        assert_eq!(waiting.poll(&mut cx), Poll::Ready(()));
    }
}
