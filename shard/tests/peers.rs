//! Peer links on loopback (127.0.0.13): messages arrive in order; messages sent while the
//! peer is down wait in the queue and arrive once it listens (reconnection with backoff); a
//! connection that sends garbage is closed while others keep delivering; frames meant for
//! another node id (a node that came back at the address under a new id) are dropped.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use tessera_core::node::PeerMessage;
use tessera_core::quorum::RequestId;
use tessera_core::NodeId;
use tessera_schema::Encoder;
use tessera_shard::cluster::peers::{serve_peers, PeerPool};

use common::run;

const DEADLINE: Duration = Duration::from_secs(20);

type Inbox = Rc<RefCell<Vec<(NodeId, PeerMessage)>>>;

fn listen(addr: SocketAddr) -> Inbox {
    let inbox: Inbox = Rc::default();
    let listener = TcpListener::bind(addr).unwrap();
    let sink = inbox.clone();
    glommio::spawn_local(serve_peers(
        listener,
        NodeId(2),
        Rc::new(move |from, m| sink.borrow_mut().push((from, m))),
    ))
    .detach();
    inbox
}

fn ack(i: u64) -> PeerMessage {
    PeerMessage::ReplicateAck { op: RequestId(i) }
}

async fn wait_for(inbox: &Inbox, count: usize) {
    let start = Instant::now();
    while inbox.borrow().len() < count {
        assert!(
            start.elapsed() < DEADLINE,
            "{} of {count} messages arrived",
            inbox.borrow().len()
        );
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn messages_arrive_in_order_even_when_sent_before_the_peer_listens() {
    run(|| async {
        let addr: SocketAddr = "127.0.0.13:19100".parse().unwrap();
        let pool = PeerPool::new(NodeId(1));
        pool.set_addr(NodeId(2), addr);
        // Nobody listens yet: these wait in the queue while the link retries.
        for i in 0..50 {
            pool.send(NodeId(2), &ack(i)).unwrap();
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
        assert!(pool.queued_bytes(NodeId(2)) > 0);
        let inbox = listen(addr);
        for i in 50..100 {
            pool.send(NodeId(2), &ack(i)).unwrap();
        }
        wait_for(&inbox, 100).await;
        let got = inbox.borrow();
        assert!(got.iter().all(|(from, _)| *from == NodeId(1)));
        let expected: Vec<PeerMessage> = (0..100).map(ack).collect();
        let messages: Vec<PeerMessage> = got.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(messages, expected);
        assert_eq!(pool.queued_bytes(NodeId(2)), 0);
    });
}

#[test]
fn a_connection_sending_garbage_is_closed_and_others_keep_delivering() {
    run(|| async {
        let addr: SocketAddr = "127.0.0.13:19101".parse().unwrap();
        let inbox = listen(addr);
        // A hostile client: a valid length prefix and a body that is no peer frame.
        let hostile = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(&8u32.to_le_bytes()).unwrap();
            s.write_all(b"garbage!").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 1];
            // The server closes the connection: read sees end of stream or a reset, not the
            // timeout.
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            }
        });
        let pool = PeerPool::new(NodeId(3));
        pool.set_addr(NodeId(2), addr);
        for i in 0..10 {
            pool.send(NodeId(2), &ack(i)).unwrap();
        }
        wait_for(&inbox, 10).await;
        // The executor must keep running while the hostile thread waits for the close.
        let start = Instant::now();
        while !hostile.is_finished() {
            assert!(
                start.elapsed() < DEADLINE,
                "the hostile client never finished"
            );
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            hostile.join().unwrap(),
            "the garbage connection stayed open"
        );
        assert_eq!(inbox.borrow().len(), 10);
    });
}

#[test]
fn frames_for_another_node_id_at_the_same_address_are_dropped() {
    run(|| async {
        let addr: SocketAddr = "127.0.0.13:19102".parse().unwrap();
        let inbox = listen(addr);
        // Node 5 used to live at this address; node 2 lives there now. On one connection,
        // frames for node 5, then one for node 2: once node 2's has arrived, node 5's have
        // been read (a connection's frames are handled in order), so none may be in the inbox.
        let mut wire = Vec::new();
        let mut encoder = Encoder::new();
        for i in 0..20 {
            encoder.encode_peer_to(NodeId(1), NodeId(5), &ack(i), &mut wire);
        }
        // Unaddressed frames are only for gossip introductions: a data message is dropped.
        encoder.encode_peer(NodeId(1), &ack(50), &mut wire);
        encoder.encode_peer_to(NodeId(1), NodeId(2), &ack(100), &mut wire);
        let writer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(&wire).unwrap();
            s
        });
        wait_for(&inbox, 1).await;
        let messages: Vec<PeerMessage> = inbox.borrow().iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(messages, vec![ack(100)]);
        drop(writer.join().unwrap());
    });
}

#[test]
fn sending_to_an_unknown_peer_is_a_typed_error() {
    run(|| async {
        let pool = PeerPool::new(NodeId(1));
        assert_eq!(
            pool.send(NodeId(9), &ack(1)),
            Err(tessera_shard::cluster::peers::SendError::UnknownPeer(
                NodeId(9)
            ))
        );
    });
}
