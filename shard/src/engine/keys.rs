//! First come, first served turns per key: the writes of one key run their read-modify-write
//! one at a time, in the order they arrived, while writes of other keys run concurrently.
//!
//! Why: a write reads the key's stored object (possibly from disk, an `.await`), builds the
//! new object on it and appends that. Two writes of one key overlapping that read would both
//! build on the same old object and the second would drop the first's version; and a
//! client's pipelined writes of one key (`SET k 1`, `SET k 2`) must apply in the order they
//! were issued, which a disk read finishing out of order would not give. A turn taken when
//! the write arrives, before any `.await`, gives both.
//!
//! Invariant: a key has an entry in the map exactly while some write holds or waits for its
//! turn; the last one out removes it, so the map holds only keys being written.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use tessera_io::turns::Turns;

/// Turns per key. Single-executor.
#[derive(Debug, Default)]
pub struct KeyTurns {
    queues: RefCell<HashMap<Vec<u8>, Rc<Turns>>>,
}

/// A place in one key's queue; take the turn with [`KeyQueue::turns`]`.take()`. Dropping it
/// (after the turn) removes the key's queue if nobody else is in it.
#[derive(Debug)]
pub struct KeyQueue<'a> {
    owner: &'a KeyTurns,
    key: Vec<u8>,
    turns: Rc<Turns>,
}

impl KeyTurns {
    /// Joins `key`'s queue.
    pub fn queue(&self, key: &[u8]) -> KeyQueue<'_> {
        let turns = self
            .queues
            .borrow_mut()
            .entry(key.to_vec())
            .or_default()
            .clone();
        KeyQueue {
            owner: self,
            key: key.to_vec(),
            turns,
        }
    }

    /// Keys with a write in progress.
    pub fn len(&self) -> usize {
        self.queues.borrow().len()
    }

    /// Whether no write is in progress.
    pub fn is_empty(&self) -> bool {
        self.queues.borrow().is_empty()
    }
}

impl KeyQueue<'_> {
    /// The key's turns.
    pub fn turns(&self) -> &Turns {
        &self.turns
    }
}

impl Drop for KeyQueue<'_> {
    fn drop(&mut self) {
        // The map's reference and ours: nobody else holds or waits for this key.
        if Rc::strong_count(&self.turns) == 2 {
            self.owner.queues.borrow_mut().remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::KeyTurns;

    #[test]
    fn writes_of_one_key_run_in_arrival_order_and_the_map_empties() {
        let order = glommio::LocalExecutorBuilder::default()
            .spawn(|| async move {
                let order = Rc::new(RefCell::new(Vec::new()));
                let turns = Rc::new(KeyTurns::default());
                let tasks: Vec<_> = (0..6u32)
                    .map(|i| {
                        let (order, turns) = (order.clone(), turns.clone());
                        glommio::spawn_local(async move {
                            let key = if i % 2 == 0 { b"a".as_slice() } else { b"b" };
                            let queue = turns.queue(key);
                            let _turn = queue.turns().take().await;
                            order.borrow_mut().push((key[0], i, "start"));
                            // Later arrivals run while this one waits: only this key waits.
                            let pause = std::time::Duration::from_millis(u64::from(6 - i));
                            glommio::timer::sleep(pause).await;
                            order.borrow_mut().push((key[0], i, "end"));
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
                assert!(turns.is_empty(), "every queue was removed");
                let order = order.borrow().clone();
                order
            })
            .expect("executor")
            .join()
            .expect("joins");
        for key in [b'a', b'b'] {
            let of_key: Vec<_> = order.iter().filter(|e| e.0 == key).collect();
            // Never two writes of one key at once, and in arrival order.
            for pair in of_key.chunks(2) {
                assert_eq!(pair[0].1, pair[1].1);
                assert_eq!((pair[0].2, pair[1].2), ("start", "end"));
            }
            let ids: Vec<u32> = of_key.iter().step_by(2).map(|e| e.1).collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            assert_eq!(ids, sorted);
        }
        // The two keys overlapped: b's first write started before a's first ended.
        let a_end = order.iter().position(|e| *e == (b'a', 0, "end"));
        let b_start = order.iter().position(|e| *e == (b'b', 1, "start"));
        assert!(b_start < a_end);
    }
}
