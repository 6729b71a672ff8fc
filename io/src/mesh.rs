//! The cross-shard mesh: one bounded channel from every shard to every other shard.
//!
//! Shards never share memory; a request for a partition owned by another shard crosses by
//! message (DESIGN §7). The mesh is built on the main thread before the executors start, and
//! each executor connects its own endpoint. Channel `i → j` is bounded by
//! [`MESH_CHANNEL_CAPACITY`](crate::constants::MESH_CHANNEL_CAPACITY), so a slow shard pushes
//! back on its senders instead of queueing without limit.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures::future::join_all;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

/// How long a connecting executor's thread naps between polls of its pending connects.
const CONNECT_NAP: Duration = Duration::from_micros(200);

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
    /// concurrently: a connect completes only when its peer connects too. Gives up (with
    /// [`MeshAbandoned`]) once `abandon` is set, which the node does when another shard failed
    /// to start and so will never connect.
    ///
    /// glommio 0.9 re-polls a pending connect only when its executor loop runs; the peer's
    /// connect does not wake an executor that went to sleep. Two idle executors connecting to
    /// each other can therefore both sleep forever. A glommio timer does not cure that
    /// reliably: a 1 ms ticker was tried, and a shard still hung once at start-up with its
    /// peers connected (glommio's short sleeps are known to hang on some virtual machines,
    /// DataDog/glommio#326). So the loop never lets the executor sleep: it yields, which makes
    /// the executor poll its reactor (and so its connect wakers) without parking, and naps
    /// the thread briefly between polls so that waiting for a slow peer (one still replaying
    /// its log) costs little CPU. This runs once, before the shard serves anything.
    pub async fn connect(self, abandon: &AtomicBool) -> Result<ConnectedMesh<T>, MeshAbandoned> {
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
        futures::pin_mut!(connect);
        let (senders, receivers) = loop {
            if let Poll::Ready(connected) = futures::poll!(connect.as_mut()) {
                break connected;
            }
            if abandon.load(Ordering::Acquire) {
                return Err(MeshAbandoned);
            }
            std::thread::sleep(CONNECT_NAP);
            futures_lite::future::yield_now().await;
        };
        Ok(ConnectedMesh {
            senders,
            receivers: RefCell::new(
                receivers
                    .into_iter()
                    .enumerate()
                    .filter_map(|(from, r)| Some((from, r?)))
                    .collect(),
            ),
        })
    }
}

/// The node gave up on start-up before every shard connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("start-up was abandoned before every shard joined the mesh (another shard failed)")]
pub struct MeshAbandoned;

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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Mesh, MeshAbandoned};
    use crate::executor::{spawn_executor, ExecutorConfig, ShardPlacement};

    fn config() -> ExecutorConfig {
        ExecutorConfig {
            name: "mesh-test".into(),
            placement: ShardPlacement::Unbound,
            preempt_timer: Duration::from_millis(2),
        }
    }

    /// Every shard connects, then each sends its index to every other shard and receives
    /// one message from each peer, tagged with the right sender. Repeated, because the hang
    /// this guards against was a start-up race.
    #[test]
    fn shards_connect_and_exchange_one_message_with_every_peer() {
        const SHARDS: usize = 4;
        for _round in 0..20 {
            let never = Arc::new(AtomicBool::new(false));
            let handles: Vec<_> = Mesh::build::<usize>(SHARDS, 4)
                .into_iter()
                .enumerate()
                .map(|(me, endpoint)| {
                    let never = never.clone();
                    let shard = u16::try_from(me).expect("few shards");
                    spawn_executor(shard, &config(), move || async move {
                        let mesh = endpoint.connect(&never).await.expect("not abandoned");
                        for to in (0..SHARDS).filter(|&to| to != me) {
                            mesh.send_to(to, me).await.expect("peer is connected");
                        }
                        let mut got = Vec::new();
                        for (from, receiver) in mesh.take_receivers() {
                            got.push((from, receiver.recv().await));
                        }
                        assert!(mesh.take_receivers().is_empty(), "one reader per end");
                        got
                    })
                    .expect("executor starts")
                })
                .collect();
            for (me, handle) in handles.into_iter().enumerate() {
                let got = handle.join().expect("joins").expect("runs");
                let want: Vec<_> = (0..SHARDS)
                    .filter(|&from| from != me)
                    .map(|from| (from, Some(from)))
                    .collect();
                assert_eq!(got, want, "shard {me}");
            }
        }
    }

    /// A shard whose peer never connects gives up once the node abandons start-up, instead of
    /// waiting forever.
    #[test]
    fn a_connect_whose_peer_never_comes_gives_up_when_abandoned() {
        let abandon = Arc::new(AtomicBool::new(false));
        let mut endpoints = Mesh::build::<u8>(2, 1).into_iter();
        let lonely = endpoints.next().expect("two endpoints");
        let flag = abandon.clone();
        let handle = spawn_executor(0, &config(), move || async move {
            lonely.connect(&flag).await.map(|_| ())
        })
        .expect("executor starts");
        abandon.store(true, Ordering::Release);
        assert_eq!(
            handle.join().expect("joins").expect("runs"),
            Err(MeshAbandoned)
        );
    }

    /// Sending to oneself or past the last shard is refused, not a panic.
    #[test]
    fn sending_to_no_peer_is_refused() {
        let never = Arc::new(AtomicBool::new(false));
        let endpoint = Mesh::build::<u8>(1, 1).into_iter().next().expect("one");
        let handle = spawn_executor(0, &config(), move || async move {
            let mesh = endpoint
                .connect(&never)
                .await
                .expect("no peers to wait for");
            (mesh.send_to(0, 1).await, mesh.send_to(7, 1).await)
        })
        .expect("executor starts");
        let (own, past) = handle.join().expect("joins").expect("runs");
        assert_eq!(own, Err(super::MeshClosed { shard: 0 }));
        assert_eq!(past, Err(super::MeshClosed { shard: 7 }));
    }
}
