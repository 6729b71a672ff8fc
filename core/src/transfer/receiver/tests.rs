//! Unit tests of the receiver.

use super::*;

const ID: TransferId = TransferId(5);
const P: PartitionId = PartitionId(1);
const FROM: NodeId = NodeId(1);

fn chunk(seq: u64, last: bool) -> ReceiverInput {
    ReceiverInput::Message(TransferMessage::Chunk {
        id: ID,
        partition: P,
        seq,
        entries: vec![(vec![seq as u8], crate::Object::new())],
        last,
    })
}

fn acks(out: &[ReceiverAction]) -> Vec<u64> {
    out.iter()
        .filter_map(|a| match a {
            ReceiverAction::Send(TransferMessage::Ack { seq, .. }) => Some(*seq),
            _ => None,
        })
        .collect()
}

fn stores(out: &[ReceiverAction]) -> Vec<u64> {
    out.iter()
        .filter_map(|a| match a {
            ReceiverAction::Store { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

fn accepted() -> Receiver {
    let mut out = vec![];
    let r = Receiver::accept(ID, P, FROM, TransferConfig::default(), Tick(0), &mut out);
    assert_eq!(acks(&out), vec![0]);
    r
}

#[test]
fn acks_only_after_stored_and_completes_after_all_chunks() {
    let mut r = accepted();
    let mut out = vec![];
    // Out of order: the last chunk first, then a duplicate, then the first.
    r.step(Tick(1), chunk(2, true), &mut out);
    r.step(Tick(1), chunk(2, true), &mut out);
    r.step(Tick(1), chunk(1, false), &mut out);
    assert_eq!(stores(&out), vec![2, 1], "each chunk stored once");
    assert!(acks(&out).is_empty(), "nothing durable yet");
    out.clear();
    r.step(Tick(2), ReceiverInput::Stored { seq: 2 }, &mut out);
    assert_eq!(acks(&out), vec![2]);
    assert!(!r.is_completed(), "chunk 1 is not durable yet");
    out.clear();
    r.step(Tick(3), ReceiverInput::Stored { seq: 1 }, &mut out);
    assert_eq!(
        out,
        vec![
            ReceiverAction::Send(TransferMessage::Ack { id: ID, seq: 1 }),
            ReceiverAction::Completed {
                partition: P,
                from: FROM
            },
        ]
    );
    assert_eq!(r.progress().chunks_stored, 2);
    assert_eq!(r.progress().entries_stored, 2);
    // A resent chunk after completion is acknowledged again, not stored again.
    out.clear();
    r.step(Tick(4), chunk(2, true), &mut out);
    assert_eq!((acks(&out), stores(&out)), (vec![2], vec![]));
    assert!(!r.is_expired(Tick(5)));
    let idle = TransferConfig::default().receiver_idle_ticks();
    assert!(r.is_expired(Tick(4 + idle)));
}

#[test]
fn bad_chunks_are_ignored() {
    let mut r = accepted();
    let mut out = vec![];
    r.step(Tick(1), chunk(0, false), &mut out);
    r.step(
        Tick(1),
        chunk(1 + TRANSFER_WINDOW_CHUNKS_MAX as u64, false),
        &mut out,
    );
    let other = TransferMessage::Chunk {
        id: ID,
        partition: PartitionId(2),
        seq: 1,
        entries: vec![],
        last: true,
    };
    r.step(Tick(1), ReceiverInput::Message(other), &mut out);
    let huge = TransferMessage::Chunk {
        id: ID,
        partition: P,
        seq: 1,
        entries: vec![(vec![], crate::Object::new()); TRANSFER_CHUNK_ENTRIES_MAX + 1],
        last: true,
    };
    r.step(Tick(1), ReceiverInput::Message(huge), &mut out);
    r.step(Tick(1), ReceiverInput::Stored { seq: 1 }, &mut out);
    assert!(out.is_empty());
    // Once the end is known, chunks contradicting it are dropped.
    r.step(Tick(1), chunk(2, true), &mut out);
    out.clear();
    r.step(Tick(1), chunk(3, false), &mut out);
    r.step(Tick(1), chunk(1, true), &mut out);
    assert!(out.is_empty());
}

#[test]
fn silent_sender_times_out_and_abort_fails() {
    let idle = TransferConfig::default().receiver_idle_ticks();
    let mut r = accepted();
    let mut out = vec![];
    r.step(Tick(idle - 1), ReceiverInput::Tick, &mut out);
    assert!(out.is_empty());
    r.step(Tick(idle), ReceiverInput::Tick, &mut out);
    assert!(r.is_failed());
    assert!(matches!(
        out.last(),
        Some(ReceiverAction::Failed {
            reason: AbortReason::TimedOut,
            ..
        })
    ));

    let mut r = accepted();
    out.clear();
    let abort = TransferMessage::Abort {
        id: ID,
        reason: AbortReason::Cancelled,
    };
    r.step(Tick(1), ReceiverInput::Message(abort), &mut out);
    assert_eq!(
        out,
        vec![ReceiverAction::Failed {
            partition: P,
            from: FROM,
            reason: AbortReason::Cancelled
        }]
    );
    out.clear();
    r.step(Tick(2), chunk(1, true), &mut out);
    assert!(out.is_empty(), "a failed receiver stays silent");
}
