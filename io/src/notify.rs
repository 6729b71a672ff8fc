//! A single-threaded wake-up signal for one waiting task.
//!
//! glommio has no `Notify`; the log flusher and connection writers need exactly this: "wake
//! the one task that waits for work, or remember that work arrived if it is not waiting yet".
//! Invariant: a `notify` that arrives before `notified().await` is not lost (it is latched).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Latched wake-up for a single waiter on one executor.
#[derive(Debug, Default)]
pub struct Notify {
    latched: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    /// A signal with nothing latched.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the waiter, or latches the signal for the next wait.
    pub fn notify(&self) {
        self.latched.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Waits until `notify` has been called since the last wait returned.
    pub async fn notified(&self) {
        poll_fn(|cx| {
            if self.latched.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}
