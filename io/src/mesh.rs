//! The cross-shard mesh: one bounded channel from every shard to every other shard.
//!
//! Shards never share memory; a request for a partition owned by another shard crosses by
//! message (DESIGN §7). The mesh is built on the main thread before the executors start, and
//! each executor connects its own endpoint. Channel `i → j` is bounded by
//! [`MESH_CHANNEL_CAPACITY`](crate::constants::MESH_CHANNEL_CAPACITY), so a slow shard pushes
//! back on its senders instead of queueing without limit.

use std::cell::RefCell;
use std::time::Duration;

use futures::future::join_all;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

/// How often a connecting executor wakes to re-poll its pending connects.
const CONNECT_TICK: Duration = Duration::from_millis(1);

/// Builds meshes.
#[derive(Debug)]
pub struct Mesh;

impl Mesh {
    /// One endpoint per shard, to be moved into the shard's executor and connected there.
    pub fn build<T: Send + 'static>(shards: usize, capacity: usize) -> Vec<MeshEndpoint<T>> {
        let mut senders: Vec<Vec<Option<SharedSender<T>>>> = (0..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        let mut receivers: Vec<Vec<Option<SharedReceiver<T>>>> = (0..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        for from in 0..shards {
            for to in 0..shards {
                if from != to {
                    let (tx, rx) = shared_channel::new_bounded(capacity);
                    senders[from][to] = Some(tx);
                    receivers[to][from] = Some(rx);
                }
            }
        }
        senders
            .into_iter()
            .zip(receivers)
            .map(|(senders, receivers)| MeshEndpoint { senders, receivers })
            .collect()
    }
}

/// One shard's unconnected ends of the mesh; `Send`, so it can move into the executor.
#[derive(Debug)]
pub struct MeshEndpoint<T: Send + 'static> {
    senders: Vec<Option<SharedSender<T>>>,
    receivers: Vec<Option<SharedReceiver<T>>>,
}

impl<T: Send + 'static> MeshEndpoint<T> {
    /// Connects every end inside the calling executor. Every shard must connect its endpoint
    /// concurrently: a connect completes only when its peer connects too.
    ///
    /// glommio 0.9 re-polls a pending connect only when its executor loop runs; the peer's
    /// connect does not wake an executor that went to sleep. Two idle executors connecting to
    /// each other can therefore both sleep forever (seen at start-up on a loaded machine). A
    /// 1 ms ticker keeps this executor's loop running until every end is connected.
    pub async fn connect(self) -> ConnectedMesh<T> {
        let senders = join_all(
            self.senders
                .into_iter()
                .map(|s| async move { Some(s?.connect().await) }),
        );
        let receivers = join_all(
            self.receivers
                .into_iter()
                .map(|r| async move { Some(r?.connect().await) }),
        );
        let connect = async { futures::join!(senders, receivers) };
        let keep_awake = async {
            loop {
                glommio::timer::sleep(CONNECT_TICK).await;
            }
        };
        futures::pin_mut!(connect, keep_awake);
        let (senders, receivers) = match futures::future::select(connect, keep_awake).await {
            futures::future::Either::Left((connected, _)) => connected,
            futures::future::Either::Right((never, _)) => never,
        };
        ConnectedMesh {
            senders,
            receivers: RefCell::new(
                receivers
                    .into_iter()
                    .enumerate()
                    .filter_map(|(from, r)| Some((from, r?)))
                    .collect(),
            ),
        }
    }
}

/// The destination shard cannot take messages (stopped, or not a peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard {shard} is not reachable through the mesh (stopping?)")]
pub struct MeshClosed {
    /// The destination.
    pub shard: usize,
}

/// A shard's connected ends of the mesh.
#[derive(Debug)]
pub struct ConnectedMesh<T: Send + 'static> {
    senders: Vec<Option<ConnectedSender<T>>>,
    receivers: RefCell<Vec<(usize, ConnectedReceiver<T>)>>,
}

impl<T: Send + 'static> ConnectedMesh<T> {
    /// Sends `msg` to shard `to`, waiting while its channel is full. Fails if `to` is this
    /// shard, out of range, or has stopped.
    pub async fn send_to(&self, to: usize, msg: T) -> Result<(), MeshClosed> {
        match self.senders.get(to).and_then(Option::as_ref) {
            Some(sender) => sender.send(msg).await.map_err(|_| MeshClosed { shard: to }),
            None => Err(MeshClosed { shard: to }),
        }
    }

    /// Takes the receiving ends, one per peer shard, tagged with the sender's index. The
    /// second call gets nothing: each end has one reader.
    pub fn take_receivers(&self) -> Vec<(usize, ConnectedReceiver<T>)> {
        std::mem::take(&mut *self.receivers.borrow_mut())
    }
}
