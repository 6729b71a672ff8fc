//! Connections between nodes: outgoing links pooled per peer, and the inbound side.
//!
//! Outgoing: one link per peer, opened on the first send and re-opened after any failure with
//! exponential backoff ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]). Frames wait in the
//! link's queue while it is down, until the driver drops them for a peer held down
//! ([`PeerPool::drop_queued`]); beyond [`LINK_QUEUE_BYTES_MAX`] a send is refused, never
//! buffered (every peer protocol tolerates loss: gossip repeats, hints and transfers retry,
//! anti-entropy repairs). A frame written to a socket that then fails is lost with it, for the
//! same reason.
//!
//! Inbound: [`serve_peers`] reads frames from each accepted connection, decodes them and hands
//! `(from, message)` to the node. A frame addressed to another node id is dropped, and so is an
//! unaddressed one that is not gossip: a node that came back with a wiped disk has a new id at
//! its old address, and must not answer reads and writes meant for its old self. A connection that sends a frame over the limit or one that
//! does not decode is closed (its sender reconnects), and nothing else is disturbed.
//!
//! Invariant: a link's queue (whole frames, back to back) never exceeds
//! [`LINK_QUEUE_BYTES_MAX`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use tessera_core::node::PeerMessage;
use tessera_core::NodeId;
use tessera_io::{FrameReader, Notify};
use tessera_schema::{decode_peer_addressed, Encoder, PEER_FRAME_BYTES_MAX};

/// First wait before reconnecting to a peer.
pub const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// Longest wait between reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Most bytes of frames waiting for one peer.
pub const LINK_QUEUE_BYTES_MAX: usize = 64 << 20;

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No address is known for the peer.
    #[error("no address is known for node {0}")]
    UnknownPeer(NodeId),
    /// The peer's queue is full (it is down or slow).
    #[error("the queue to node {0} is full")]
    QueueFull(NodeId),
}

#[derive(Debug)]
struct Link {
    addr: Cell<SocketAddr>,
    /// Frames waiting to be written, back to back.
    queue: RefCell<Vec<u8>>,
    work: Notify,
}

/// The outgoing links of one shard.
#[derive(Debug)]
pub struct PeerPool {
    me: NodeId,
    encoder: RefCell<Encoder>,
    links: RefCell<HashMap<NodeId, Rc<Link>>>,
}

impl PeerPool {
    /// A pool sending as node `me`.
    pub fn new(me: NodeId) -> Rc<PeerPool> {
        Rc::new(PeerPool {
            me,
            encoder: RefCell::new(Encoder::new()),
            links: RefCell::new(HashMap::new()),
        })
    }

    /// Sets (or changes) where `peer` listens; its link starts on first use.
    pub fn set_addr(&self, peer: NodeId, addr: SocketAddr) {
        let mut links = self.links.borrow_mut();
        match links.get(&peer) {
            Some(link) => link.addr.set(addr),
            None => {
                let link = Rc::new(Link {
                    addr: Cell::new(addr),
                    queue: RefCell::new(Vec::new()),
                    work: Notify::new(),
                });
                glommio::spawn_local(drive(link.clone())).detach();
                links.insert(peer, link);
            }
        }
    }

    /// Queues `message` for `to`; returns its encoded size.
    pub fn send(&self, to: NodeId, message: &PeerMessage) -> Result<usize, SendError> {
        let link = self
            .links
            .borrow()
            .get(&to)
            .cloned()
            .ok_or(SendError::UnknownPeer(to))?;
        let mut queue = link.queue.borrow_mut();
        let before = queue.len();
        self.encoder
            .borrow_mut()
            .encode_peer_to(self.me, to, message, &mut queue);
        if queue.len() > LINK_QUEUE_BYTES_MAX {
            queue.truncate(before);
            return Err(SendError::QueueFull(to));
        }
        let bytes = queue.len() - before;
        link.work.notify();
        Ok(bytes)
    }

    /// Drops every frame waiting for `peer` (one the failure detector holds down); returns
    /// the bytes dropped. Frames already taken by the link's writer go or fail with it.
    pub fn drop_queued(&self, peer: NodeId) -> usize {
        self.links.borrow().get(&peer).map_or(0, |l| {
            let mut queue = l.queue.borrow_mut();
            let bytes = queue.len();
            queue.clear();
            bytes
        })
    }

    /// Bytes waiting for `peer`.
    pub fn queued_bytes(&self, peer: NodeId) -> usize {
        self.links
            .borrow()
            .get(&peer)
            .map_or(0, |l| l.queue.borrow().len())
    }
}

/// A link's writer: connects, writes what is queued, reconnects after failures.
async fn drive(link: Rc<Link>) {
    let mut stream: Option<TcpStream> = None;
    let mut backoff = BACKOFF_MIN;
    loop {
        if link.queue.borrow().is_empty() {
            link.work.notified().await;
            continue;
        }
        let mut connected = match stream.take() {
            Some(s) => s,
            None => match TcpStream::connect(link.addr.get()).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    backoff = BACKOFF_MIN;
                    s
                }
                Err(e) => {
                    tracing::debug!(addr = %link.addr.get(), error = %e, "peer unreachable");
                    glommio::timer::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        // Everything queued goes out in one write; sends meanwhile fill a fresh buffer.
        let batch = std::mem::take(&mut *link.queue.borrow_mut());
        let written = match connected.write_all(&batch).await {
            Ok(()) => connected.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = &written {
            tracing::debug!(addr = %link.addr.get(), error = %e, "peer link failed");
        }
        if written.is_ok() {
            stream = Some(connected);
        } else {
            // A peer that accepts and then drops every connection is not retried in a loop.
            glommio::timer::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// Accepts peer connections on `listener` until it fails, handing every decoded message for
/// node `me` to `deliver`.
pub async fn serve_peers(
    listener: TcpListener,
    me: NodeId,
    deliver: Rc<dyn Fn(NodeId, PeerMessage)>,
) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let deliver = deliver.clone();
                glommio::spawn_local(read_peer(stream, me, deliver)).detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "peer listener stopped");
                return;
            }
        }
    }
}

/// Whether a frame for `to` is for node `me`: addressed to it, or unaddressed gossip (an
/// introduction to an address whose node the sender does not know yet).
fn is_for(me: NodeId, to: Option<NodeId>, message: &PeerMessage) -> bool {
    match to {
        Some(to) => to == me,
        None => matches!(message, PeerMessage::Gossip(_)),
    }
}

async fn read_peer(stream: TcpStream, me: NodeId, deliver: Rc<dyn Fn(NodeId, PeerMessage)>) {
    let mut frames = FrameReader::new(stream, PEER_FRAME_BYTES_MAX);
    loop {
        match frames.next_frame().await {
            Ok(Some(body)) => match decode_peer_addressed(body) {
                Ok((from, to, message)) if is_for(me, to, &message) => deliver(from, message),
                Ok((from, to, _)) => {
                    tracing::debug!(%from, ?to, "dropping a peer frame meant for another node id");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "closing a peer connection that sent a bad frame");
                    return;
                }
            },
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "peer connection ended");
                return;
            }
        }
    }
}
