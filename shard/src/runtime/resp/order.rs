//! The order of one connection's commands.
//!
//! Redis runs a connection's commands one after the other, so a pipelined `SET k v` then
//! `GET k` reads `v`. Here the commands of a pipeline run concurrently, and these rules keep
//! every order a client can observe:
//! - Commands start in command order: tasks run first in, first out, and requests reach
//!   their owning shard in the order they were started (`route.rs`), where writes apply in
//!   arrival order. So writes of one key apply in command order, and a write never overtakes
//!   an earlier read.
//! - A command that reads a key (GET, MGET, EXISTS, DEL) waits until no earlier write of that
//!   key runs on the connection, so it sees the write even while that write waits for room
//!   in the commit log (reads never wait for the log, so they could overtake it).
//! - A *barrier* ([`Command::is_barrier`]: DEL, reads of more keys than one batch) works in
//!   rounds a later command could overtake, so nothing after it starts until it has finished.
//!
//! Cost: a pipeline that reads what it has just written waits for that write's reply (its
//! fsync, with durable writes), as a client without pipelining would. Pipelines of writes, of
//! reads, or of reads and writes of different keys run fully concurrently.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::Hasher;

use super::command::Command;

/// What the connection's running commands hold.
#[derive(Debug, Default)]
pub struct Order {
    /// Hashes of the keys of running writes, each with the number of writes holding it. A
    /// hash collision only makes a read wait longer than it had to.
    write_keys: HashMap<u64, u32>,
    /// Running barrier commands.
    barriers: usize,
}

/// What a running command holds; given back with [`Order::release`] when it finishes.
#[derive(Debug)]
pub enum Held {
    /// Nothing (a read, or a command that touches no keys).
    Nothing,
    /// The key of a single write.
    Key(u64),
    /// The keys of a multi-key write.
    Keys(Vec<u64>),
    /// A barrier's place.
    Barrier,
}

impl Order {
    /// Whether `command` must wait before it starts.
    pub fn must_wait(&self, command: &Command) -> bool {
        if self.barriers > 0 {
            return true;
        }
        !self.write_keys.is_empty()
            && command
                .read_keys()
                .iter()
                .any(|key| self.write_keys.contains_key(&key_hash(key)))
    }

    /// Records that `command` starts.
    pub fn hold(&mut self, command: &Command) -> Held {
        if command.is_barrier() {
            self.barriers += 1;
            return Held::Barrier;
        }
        let mut keys = command.written_keys().map(|key| key_hash(key));
        let held = match (keys.next(), keys.next()) {
            (None, _) => Held::Nothing,
            (Some(key), None) => Held::Key(key),
            (Some(first), Some(second)) => {
                Held::Keys([first, second].into_iter().chain(keys).collect())
            }
        };
        match &held {
            Held::Key(key) => self.add(*key),
            Held::Keys(keys) => keys.iter().for_each(|&key| self.add(key)),
            Held::Nothing | Held::Barrier => {}
        }
        held
    }

    /// Records that a command holding `held` has finished.
    pub fn release(&mut self, held: Held) {
        match held {
            Held::Nothing => {}
            Held::Key(key) => self.remove(key),
            Held::Keys(keys) => keys.into_iter().for_each(|key| self.remove(key)),
            Held::Barrier => self.barriers -= 1,
        }
    }

    fn add(&mut self, key: u64) {
        *self.write_keys.entry(key).or_insert(0) += 1;
    }

    fn remove(&mut self, key: u64) {
        if let Some(count) = self.write_keys.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.write_keys.remove(&key);
            }
        }
    }
}

/// A key's hash for [`Order`]: std's SipHash with fixed keys. A peer that provokes collisions
/// only slows its own connection.
fn key_hash(key: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(key);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str) -> Command {
        Command::Set {
            key: key.into(),
            value: b"v".to_vec(),
        }
    }

    #[test]
    fn reads_wait_for_writes_of_their_keys_and_barriers_for_everything() {
        let mut order = Order::default();
        let get_a = Command::Get(b"a".to_vec());
        let get_b = Command::Get(b"b".to_vec());
        assert!(!order.must_wait(&get_a));
        let first = order.hold(&set("a"));
        let second = order.hold(&set("a"));
        assert!(
            order.must_wait(&get_a),
            "a read waits for a running write of its key"
        );
        assert!(!order.must_wait(&get_b), "other keys do not wait");
        assert!(!order.must_wait(&set("a")), "writes never wait for writes");
        order.release(first);
        assert!(order.must_wait(&get_a), "one write of `a` still runs");
        order.release(second);
        assert!(!order.must_wait(&get_a));

        let mset = Command::MSet(vec![
            b"x".to_vec(),
            b"a".to_vec(),
            b"y".to_vec(),
            b"b".to_vec(),
        ]);
        let held = order.hold(&mset);
        assert!(order.must_wait(&Command::MGet(vec![b"q".to_vec(), b"y".to_vec()])));
        assert!(!order.must_wait(&get_a), "MSET values are not keys");
        order.release(held);

        let del = order.hold(&Command::Del(vec![b"z".to_vec()]));
        assert!(
            order.must_wait(&Command::Ping(None)),
            "nothing passes a barrier"
        );
        order.release(del);
        assert!(!order.must_wait(&Command::Ping(None)));
    }
}
