//! Unit tests of the sender.

use super::*;
use crate::version::{Object, VersionVector};

const ID: TransferId = TransferId(9);
const P: PartitionId = PartitionId(3);
const TO: NodeId = NodeId(2);

fn config() -> TransferConfig {
    TransferConfig {
        window_chunks: 2,
        chunk_entries: 2,
        chunk_bytes: 1 << 20,
        retransmit_ticks: 10,
        retries_max: 2,
    }
}

fn entry(k: u8) -> Entry {
    let mut o = Object::new();
    o.update(&VersionVector::new(), NodeId(1), 0, Some(vec![k]))
        .unwrap();
    (vec![k], o)
}

fn ack(seq: u64) -> SenderInput {
    SenderInput::Message(TransferMessage::Ack { id: ID, seq })
}

fn accepted() -> (Sender, Vec<SenderAction>) {
    let mut out = vec![];
    let mut s = Sender::start(ID, P, TO, config(), Tick(0), &mut out);
    assert_eq!(
        out,
        vec![SenderAction::Send(TransferMessage::Offer {
            id: ID,
            partition: P
        })]
    );
    out.clear();
    s.step(Tick(1), ack(0), &mut out);
    assert!(s.is_streaming());
    (s, out)
}

fn sent_seqs(out: &[SenderAction]) -> Vec<(u64, bool)> {
    out.iter()
        .filter_map(|a| match a {
            SenderAction::Send(TransferMessage::Chunk { seq, last, .. }) => Some((*seq, *last)),
            _ => None,
        })
        .collect()
}

#[test]
fn window_bounds_reads_and_completion_waits_for_every_ack() {
    let (mut s, mut out) = accepted();
    assert!(matches!(
        out[..],
        [SenderAction::ReadRange {
            after: None,
            max_entries: 2,
            ..
        }]
    ));
    out.clear();
    let read = |es: Vec<Entry>, end| SenderInput::Read { entries: es, end };
    s.step(Tick(2), read(vec![entry(1), entry(2)], false), &mut out);
    assert_eq!(sent_seqs(&out), vec![(1, false)]);
    assert!(matches!(&out[1], SenderAction::ReadRange { after: Some(k), .. } if k == &vec![2]));
    out.clear();
    s.step(Tick(3), read(vec![entry(3)], true), &mut out);
    // The window (2) is full and the partition ended: no further read.
    assert_eq!(sent_seqs(&out), vec![(2, true)]);
    assert_eq!(out.len(), 1);
    assert_eq!(s.unacked(), 2);
    out.clear();
    s.step(Tick(4), ack(2), &mut out);
    s.step(Tick(4), ack(2), &mut out);
    assert!(
        out.is_empty() && s.outcome().is_none(),
        "last chunk acked, first not"
    );
    s.step(Tick(5), ack(1), &mut out);
    assert_eq!(
        out,
        vec![SenderAction::Completed {
            partition: P,
            to: TO
        }]
    );
    assert_eq!(s.outcome(), Some(Ok(())));
    assert_eq!(s.progress().entries_sent, 3);
    assert_eq!(s.progress().chunks_acked, 2);
    // Finished: later input does nothing.
    out.clear();
    s.step(Tick(100), SenderInput::Tick, &mut out);
    assert!(out.is_empty());
}

#[test]
fn empty_partition_sends_one_empty_last_chunk() {
    let (mut s, mut out) = accepted();
    out.clear();
    s.step(
        Tick(2),
        SenderInput::Read {
            entries: vec![],
            end: true,
        },
        &mut out,
    );
    assert_eq!(sent_seqs(&out), vec![(1, true)]);
    out.clear();
    s.step(Tick(3), ack(1), &mut out);
    assert_eq!(
        out,
        vec![SenderAction::Completed {
            partition: P,
            to: TO
        }]
    );
}

#[test]
fn resends_on_timeout_then_gives_up() {
    let mut out = vec![];
    let mut s = Sender::start(ID, P, TO, config(), Tick(0), &mut out);
    out.clear();
    s.step(Tick(9), SenderInput::Tick, &mut out);
    assert!(out.is_empty(), "not yet due");
    for t in [10, 20] {
        s.step(Tick(t), SenderInput::Tick, &mut out);
        assert_eq!(out.len(), 1, "offer resent at {t}");
        out.clear();
    }
    s.step(Tick(30), SenderInput::Tick, &mut out);
    assert_eq!(
        out,
        vec![
            SenderAction::Send(TransferMessage::Abort {
                id: ID,
                reason: AbortReason::TimedOut
            }),
            SenderAction::Failed {
                partition: P,
                to: TO,
                reason: AbortReason::TimedOut
            },
        ]
    );
    assert_eq!(s.progress().resends, 2);
    assert!(30 <= config().give_up_ticks());
}

#[test]
fn abort_from_receiver_fails_and_foreign_messages_are_ignored() {
    let (mut s, mut out) = accepted();
    out.clear();
    s.step(
        Tick(2),
        SenderInput::Message(TransferMessage::Ack {
            id: TransferId(1),
            seq: 0,
        }),
        &mut out,
    );
    s.step(Tick(2), ack(77), &mut out);
    s.step(
        Tick(2),
        SenderInput::Message(TransferMessage::Offer {
            id: ID,
            partition: P,
        }),
        &mut out,
    );
    assert!(out.is_empty() && s.outcome().is_none());
    let abort = TransferMessage::Abort {
        id: ID,
        reason: AbortReason::ReceiverBusy,
    };
    s.step(Tick(3), SenderInput::Message(abort), &mut out);
    assert_eq!(
        out,
        vec![SenderAction::Failed {
            partition: P,
            to: TO,
            reason: AbortReason::ReceiverBusy
        }]
    );
    // A read finishing after the failure is dropped.
    out.clear();
    s.step(
        Tick(4),
        SenderInput::Read {
            entries: vec![entry(1)],
            end: true,
        },
        &mut out,
    );
    assert!(out.is_empty());
}

#[test]
fn cancel_tells_the_receiver() {
    let (mut s, mut out) = accepted();
    out.clear();
    s.cancel(&mut out);
    assert_eq!(s.outcome(), Some(Err(AbortReason::Cancelled)));
    assert!(matches!(
        out[0],
        SenderAction::Send(TransferMessage::Abort { .. })
    ));
    out.clear();
    s.cancel(&mut out);
    assert!(out.is_empty(), "cancelling twice reports once");
}
