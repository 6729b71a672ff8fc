//! Crash safety of the real server: concurrent writers, SIGKILL at a random moment, restart,
//! and every acknowledged write must be readable with its value.
//!
//! Each cycle: start the server on the same data directory, run writer threads (unique keys
//! per write, plus one key per writer overwritten with its read context), kill -9 after a
//! random delay, then check every write acknowledged in any cycle so far. A write in flight at
//! the kill may or may not survive; an acknowledged one must. Bounded: `CYCLES` cycles, each
//! with at most `RUN_MAX` of writing.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tessera_client::{Client, ClientError};

const CYCLES: usize = 20;
const WRITERS: usize = 4;
const RUN_MAX: Duration = Duration::from_millis(400);

/// What the writers were told was durable, and what was in flight when the server died.
#[derive(Default)]
struct Acked {
    /// Unique keys: key → value, acknowledged.
    unique: HashMap<String, String>,
    /// Per writer: (last acknowledged value, every value attempted since then). A write that
    /// was in flight at a kill may have reached the log without its acknowledgement, and it
    /// stays the stored value if the next cycle's overwrite of it is cut short too; so every
    /// unacknowledged attempt since the last acknowledged one is a value the key may hold.
    counters: HashMap<String, (Option<String>, Vec<String>)>,
}

fn writer(
    client: Client,
    cycle: usize,
    id: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    let counter_key = format!("counter-{id}");
    for seq in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let key = format!("c{cycle}-w{id}-{seq}");
        let value = format!("value-{cycle}-{id}-{seq}");
        if client.put(key.as_bytes(), value.as_bytes(), None).is_err() {
            return;
        }
        acked.lock().unwrap().unique.insert(key, value);
        // Overwrite the writer's counter with the context of a read: exactly one value after.
        let attempt = format!("{cycle}-{seq}");
        let Ok(read) = client.get(counter_key.as_bytes()) else {
            return;
        };
        acked
            .lock()
            .unwrap()
            .counters
            .entry(counter_key.clone())
            .or_default()
            .1
            .push(attempt.clone());
        match client.put(
            counter_key.as_bytes(),
            attempt.as_bytes(),
            Some(&read.context),
        ) {
            Ok(_) => {
                let mut a = acked.lock().unwrap();
                let entry = a.counters.get_mut(&counter_key).unwrap();
                *entry = (Some(attempt), Vec::new());
            }
            Err(_) => return,
        }
    }
}

fn verify(client: &Client, acked: &Acked) -> usize {
    let keys: Vec<&String> = acked.unique.keys().collect();
    for chunk in keys.chunks(1000) {
        let raw: Vec<&[u8]> = chunk.iter().map(|k| k.as_bytes()).collect();
        let answers = client.get_many(&raw).unwrap();
        for (key, answer) in chunk.iter().zip(answers) {
            let versions = answer.unwrap();
            assert_eq!(
                versions.values,
                vec![acked.unique[*key].as_bytes().to_vec()],
                "acknowledged write of {key} lost or wrong"
            );
        }
    }
    for (key, (last, attempts)) in &acked.counters {
        let versions = client.get(key.as_bytes()).unwrap();
        let allowed: Vec<&String> = last.iter().chain(attempts.iter()).collect();
        match versions.values.as_slice() {
            [] => assert!(last.is_none(), "{key}: acknowledged value {last:?} lost"),
            [one] => assert!(
                allowed.iter().any(|v| v.as_bytes() == one.as_slice()),
                "{key}: found {:?}, expected one of {allowed:?}",
                String::from_utf8_lossy(one)
            ),
            many => panic!("{key}: {} siblings after context writes", many.len()),
        }
    }
    acked.unique.len()
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = common::data_dir();
    let addr = "127.0.0.2:17100".parse().unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e55e7a);
    let started = Instant::now();
    for cycle in 0..CYCLES {
        let mut server = common::Server::start(dir.path(), addr, 2);
        let checked = verify(&server.client(), &acked.lock().unwrap());
        if cycle > 0 {
            assert!(checked > 0, "earlier cycles acknowledged nothing");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                let (client, stop, acked) = (server.client(), stop.clone(), acked.clone());
                std::thread::spawn(move || writer(client, cycle, id, stop, acked))
            })
            .collect();
        // The kill lands at a random moment while the writers are busy.
        std::thread::sleep(Duration::from_millis(
            rng.gen_range(20..RUN_MAX.as_millis() as u64),
        ));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
    }
    let server = common::Server::start(dir.path(), addr, 2);
    let total = verify(&server.client(), &acked.lock().unwrap());
    assert!(
        total >= CYCLES,
        "too few writes acknowledged to mean anything: {total}"
    );
    eprintln!(
        "{CYCLES} kill -9 cycles, {total} acknowledged writes verified in {:?}",
        started.elapsed()
    );
}

#[test]
fn client_errors_are_typed_when_the_server_dies_and_it_reconnects() {
    let dir = common::data_dir();
    let addr = "127.0.0.2:17200".parse().unwrap();
    let mut server = common::Server::start(dir.path(), addr, 1);
    let client = server.client();
    client.put(b"k", b"v", None).unwrap();
    server.kill9();
    let err = client.put(b"k2", b"v", None).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ConnectionLost { .. } | ClientError::Connect { .. }
        ),
        "unexpected error {err:?}"
    );
    assert!(err.is_retryable());
    // The same client reconnects by itself once the node is back.
    let mut server = common::Server::start(dir.path(), addr, 1);
    assert_eq!(client.get(b"k").unwrap().values, vec![b"v".to_vec()]);
    client.put(b"k2", b"v2", None).unwrap();
    assert_eq!(client.get(b"k2").unwrap().values, vec![b"v2".to_vec()]);
    // A restart between two requests: the idle connection the server closed is noticed
    // before use, so even a write (which the client never retries) goes through.
    server.stop();
    let _server = common::Server::start(dir.path(), addr, 1);
    client.put(b"k3", b"v3", None).unwrap();
    assert_eq!(client.get(b"k3").unwrap().values, vec![b"v3".to_vec()]);
}
