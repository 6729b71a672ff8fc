//! The client library against a real server: many threads sharing one client (the
//! leader/follower read hands answers to the right callers), pipelining from one thread with
//! answers awaited out of order, timeouts while the server is paused, and recovery after it.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tessera_client::{Client, ClientConfig, ClientError};

#[test]
fn many_threads_share_one_client() {
    let dir = common::data_dir();
    let server = common::Server::start(dir.path(), "127.0.0.7:17700".parse().unwrap(), 2);
    let client = Arc::new(server.client());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..300 {
                    let key = format!("t{t}-k{i}");
                    let value = format!("v{t}-{i}");
                    client.put(key.as_bytes(), value.as_bytes(), None).unwrap();
                    let read = client.get(key.as_bytes()).unwrap();
                    assert_eq!(read.values, vec![value.into_bytes()], "{key}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn pipelined_answers_can_be_awaited_in_any_order() {
    let dir = common::data_dir();
    let server = common::Server::start(dir.path(), "127.0.0.7:17710".parse().unwrap(), 2);
    let client = server.client();
    let keys: Vec<String> = (0..1000).map(|i| format!("p{i}")).collect();
    let puts: Vec<_> = keys
        .iter()
        .map(|k| client.put_async(k.as_bytes(), k.as_bytes(), None).unwrap())
        .collect();
    // Waiting for the last first makes its waiter read (and hand out) every earlier answer.
    for pending in puts.into_iter().rev() {
        assert!(matches!(
            pending.wait().unwrap(),
            tessera_schema::Response::Put(_)
        ));
    }
    let gets: Vec<_> = keys
        .iter()
        .map(|k| (k, client.get_async(k.as_bytes()).unwrap()))
        .collect();
    for (i, (key, pending)) in gets
        .into_iter()
        .enumerate()
        .rev()
        .filter(|(i, _)| i % 3 != 1)
    {
        match pending.wait().unwrap() {
            tessera_schema::Response::Get(g) => {
                assert_eq!(g.values, vec![key.as_bytes().to_vec()], "#{i}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Pendings dropped without waiting (every third) leave the connection usable.
    assert_eq!(client.get(b"p1").unwrap().values, vec![b"p1".to_vec()]);
}

#[test]
fn requests_time_out_while_the_server_is_paused_and_work_after() {
    let dir = common::data_dir();
    let server = common::Server::start(dir.path(), "127.0.0.7:17720".parse().unwrap(), 1);
    let config = ClientConfig {
        request_timeout: Duration::from_millis(300),
        ..common::quick_config()
    };
    let client = Client::connect(server.addr, config).unwrap();
    client.put(b"k", b"v", None).unwrap();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(server.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    wait_until_stopped(server.pid());
    let err = client.get(b"k").unwrap_err();
    signal("-CONT");
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    assert!(err.is_retryable());
    // The late answer to the abandoned request is dropped; new requests get their own.
    for _ in 0..20 {
        assert_eq!(client.get(b"k").unwrap().values, vec![b"v".to_vec()]);
    }
}

/// SIGSTOP is delivered asynchronously: wait until every thread of `pid` shows state T.
fn wait_until_stopped(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        let all_stopped = tasks.filter_map(Result::ok).all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the parenthesised command name.
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('T'))
        });
        if all_stopped {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_unawaited_request_never_stalls_the_others() {
    let dir = common::data_dir();
    let server = common::Server::start(dir.path(), "127.0.0.7:17730".parse().unwrap(), 1);
    // A get takes well under a millisecond here; a caller left without a reader would wait
    // out the whole timeout and fail.
    let config = ClientConfig {
        request_timeout: Duration::from_secs(1),
        ..common::quick_config()
    };
    let client = Arc::new(Client::connect(server.addr, config).unwrap());
    client.put(b"k", b"v", None).unwrap();
    // Sent, never awaited while the others run: it must not be handed the reading turn.
    let held = client.put_async(b"held", b"x", None).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                for _ in 0..400 {
                    assert_eq!(client.get(b"k").unwrap().values, vec![b"v".to_vec()]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(matches!(
        held.wait().unwrap(),
        tessera_schema::Response::Put(_)
    ));
}

#[test]
fn large_batches_from_one_thread_stream_without_stalling() {
    let dir = common::data_dir();
    let server = common::Server::start(dir.path(), "127.0.0.7:17740".parse().unwrap(), 2);
    let client = server.client();
    // 3,000 pairs of 4 KiB: 12 MiB of writes, then 15,000 reads (60 MiB of answers) from a
    // single thread that only reads answers when its window of batches is full.
    let keys: Vec<Vec<u8>> = (0..3000).map(|i| format!("big-{i}").into_bytes()).collect();
    let value = vec![0x5Au8; 4096];
    let items: Vec<(&[u8], &[u8], Option<&tessera_client::Context>)> = keys
        .iter()
        .map(|k| (k.as_slice(), value.as_slice(), None))
        .collect();
    for result in client.put_many(&items).unwrap() {
        result.unwrap();
    }
    let reads: Vec<&[u8]> = keys
        .iter()
        .cycle()
        .take(15_000)
        .map(Vec::as_slice)
        .collect();
    let answers = client.get_many(&reads).unwrap();
    assert_eq!(answers.len(), reads.len());
    for answer in answers {
        assert_eq!(answer.unwrap().values, vec![value.clone()]);
    }
}
