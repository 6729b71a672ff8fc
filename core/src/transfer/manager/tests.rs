//! Direct checks of the manager's bookkeeping, without a network.

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::constants::TRANSFERS_QUEUED_MAX;

fn sends(out: &[TransfersAction]) -> Vec<(NodeId, TransferMessage)> {
    out.iter()
        .filter_map(|a| match a {
            TransfersAction::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn start_is_idempotent_queues_and_refuses_past_the_bound() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut t = Transfers::new(TransferConfig::default());
    let mut out = vec![];
    let to = NodeId(2);
    let first = t
        .start(Tick(0), PartitionId(0), to, &mut rng, &mut out)
        .unwrap();
    assert_eq!(sends(&out).len(), 1, "the offer goes out at once");
    assert_eq!(
        t.start(Tick(0), PartitionId(0), to, &mut rng, &mut out),
        Ok(first)
    );
    let total = TRANSFERS_CONCURRENT_MAX + TRANSFERS_QUEUED_MAX;
    for p in 1..total as u32 {
        t.start(Tick(0), PartitionId(p), to, &mut rng, &mut out)
            .unwrap();
    }
    assert_eq!(sends(&out).len(), TRANSFERS_CONCURRENT_MAX);
    assert_eq!(t.outgoing_queued(), TRANSFERS_QUEUED_MAX);
    assert_eq!(
        t.start(Tick(0), PartitionId(total as u32), to, &mut rng, &mut out),
        Err(CoreError::TransferQueueFull {
            queued: TRANSFERS_QUEUED_MAX,
            max: TRANSFERS_QUEUED_MAX
        })
    );
    // Cancelling a running transfer starts the next queued one.
    out.clear();
    assert!(t.cancel(Tick(1), first, &mut out));
    assert!(!t.cancel(Tick(1), first, &mut out));
    assert!(matches!(
        out[1],
        TransfersAction::SendFailed {
            reason: AbortReason::Cancelled,
            ..
        }
    ));
    assert!(
        matches!(sends(&out)[..], [(_, TransferMessage::Abort { .. }), (_, TransferMessage::Offer { partition, .. })] if partition == PartitionId(TRANSFERS_CONCURRENT_MAX as u32))
    );
    assert_eq!(t.outgoing_running(), TRANSFERS_CONCURRENT_MAX);
    let states = t.progress();
    assert_eq!(states.len(), total - 1);
    assert_eq!(
        states
            .iter()
            .filter(|s| s.state == TransferState::Queued)
            .count(),
        TRANSFERS_QUEUED_MAX - 1
    );
    assert_eq!(t.totals().sent_failed, 1);
}

#[test]
fn offers_past_the_bound_are_refused_and_unknown_chunks_aborted() {
    let mut t = Transfers::new(TransferConfig::default());
    let mut out = vec![];
    let offer = |id| TransfersInput::Message {
        from: NodeId(1),
        message: TransferMessage::Offer {
            id: TransferId(id),
            partition: PartitionId(id as u32),
        },
    };
    for id in 0..=TRANSFERS_CONCURRENT_MAX as u64 {
        t.step(Tick(0), offer(id), &mut out);
    }
    // A duplicate offer of a running transfer is acknowledged again, not refused.
    t.step(Tick(0), offer(0), &mut out);
    let mut want: Vec<_> = (0..TRANSFERS_CONCURRENT_MAX as u64)
        .map(|id| {
            (
                NodeId(1),
                TransferMessage::Ack {
                    id: TransferId(id),
                    seq: 0,
                },
            )
        })
        .collect();
    let last = TransferId(TRANSFERS_CONCURRENT_MAX as u64);
    want.push((
        NodeId(1),
        TransferMessage::Abort {
            id: last,
            reason: AbortReason::ReceiverBusy,
        },
    ));
    want.push((
        NodeId(1),
        TransferMessage::Ack {
            id: TransferId(0),
            seq: 0,
        },
    ));
    assert_eq!(sends(&out), want);
    assert_eq!(t.incoming_running(), TRANSFERS_CONCURRENT_MAX);
    // The same id from another node is another transfer, and the node is full.
    out.clear();
    let chunk = TransferMessage::Chunk {
        id: TransferId(0),
        partition: PartitionId(0),
        seq: 1,
        entries: vec![],
        last: true,
    };
    t.step(
        Tick(1),
        TransfersInput::Message {
            from: NodeId(3),
            message: chunk.clone(),
        },
        &mut out,
    );
    assert_eq!(
        sends(&out),
        vec![(
            NodeId(3),
            TransferMessage::Abort {
                id: TransferId(0),
                reason: AbortReason::UnknownTransfer
            }
        )]
    );
    // From its real sender the chunk is stored, acked once durable, and the slot freed.
    out.clear();
    t.step(
        Tick(1),
        TransfersInput::Message {
            from: NodeId(1),
            message: chunk.clone(),
        },
        &mut out,
    );
    assert!(matches!(out[..], [TransfersAction::Store { seq: 1, .. }]));
    out.clear();
    t.step(
        Tick(2),
        TransfersInput::Stored {
            from: NodeId(1),
            id: TransferId(0),
            seq: 1,
        },
        &mut out,
    );
    assert!(matches!(out[1], TransfersAction::ReceiveCompleted { .. }));
    assert_eq!(t.incoming_running(), TRANSFERS_CONCURRENT_MAX - 1);
    // The finished receiver still answers a resent last chunk, until it expires.
    out.clear();
    t.step(
        Tick(3),
        TransfersInput::Message {
            from: NodeId(1),
            message: chunk.clone(),
        },
        &mut out,
    );
    assert_eq!(
        sends(&out),
        vec![(
            NodeId(1),
            TransferMessage::Ack {
                id: TransferId(0),
                seq: 1
            }
        )]
    );
    let expiry = Tick(3) + TransferConfig::default().receiver_idle_ticks();
    t.step(expiry, TransfersInput::Tick, &mut out);
    assert_eq!(
        t.progress()
            .iter()
            .filter(|p| p.state == TransferState::Completed)
            .count(),
        0
    );
}
