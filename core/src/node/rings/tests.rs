use super::*;
use crate::placement::Member;
use crate::ring::PartitionCount;

fn members(ids: &[u64]) -> Vec<Member> {
    ids.iter()
        .map(|&i| Member::new(NodeId(i), format!("rack-{}", i % 2), "dc-1", 1))
        .collect()
}

fn ring(ids: &[u64]) -> Ring {
    Ring::new(PartitionCount::new(64).unwrap(), members(ids)).unwrap()
}

#[test]
fn a_change_moves_through_pending_flipped_and_stable_with_growing_versions() {
    let stable = RingState::initial(ring(&[1, 2, 3, 4]));
    let next = stable
        .current()
        .with_members(members(&[1, 2, 3, 4, 5]))
        .unwrap();
    let pending = stable.propose(next.clone());
    let flipped = pending.flip().unwrap();
    let committed = flipped.commit().unwrap();
    let states = [&stable, &pending, &flipped, &committed];
    assert_eq!(
        states.map(RingState::phase),
        [
            RingPhase::Stable,
            RingPhase::Pending,
            RingPhase::Flipped,
            RingPhase::Stable
        ]
    );
    assert!(states.windows(2).all(|w| w[0].version() < w[1].version()));
    assert_eq!(committed.epoch(), 4);
    // Reads move to the next ring at the flip, not before.
    assert_eq!(pending.read_ring(), stable.current());
    assert_eq!(flipped.read_ring(), &next);
    assert_eq!(committed.current(), &next);
    // Only the right phase moves on.
    assert!(stable.flip().is_none() && stable.commit().is_none());
    assert!(pending.commit().is_none() && flipped.flip().is_none());
}

#[test]
fn writes_during_a_change_need_w_copies_in_both_lists() {
    let rep = Replication::uniform(3);
    let stable = RingState::initial(ring(&[1, 2, 3, 4]));
    let next = stable
        .current()
        .with_members(members(&[1, 2, 3, 4, 5]))
        .unwrap();
    let pending = stable.propose(next.clone());
    let plan = pending.plan(&rep);
    assert!(!plan.moves.is_empty());
    let mut changed = 0;
    for p in stable.current().partitions().iter() {
        let old = stable.current().preference_list(p, &rep);
        let new = next.preference_list(p, &rep);
        let (list, extra) = pending.write_list(p, &rep);
        assert_eq!(&list[..3], &old[..], "the read list comes first");
        assert!(new.iter().all(|n| list.contains(n)));
        let gained = new.iter().filter(|n| !old.contains(n)).count();
        assert_eq!(list.len(), 3 + gained);
        assert_eq!(extra, gained);
        // Any w + extra of the union hold at least w of each list (w = 2).
        let w = 2 + extra;
        for acked in subsets(&list, w) {
            assert!(old.iter().filter(|n| acked.contains(n)).count() >= 2);
            assert!(new.iter().filter(|n| acked.contains(n)).count() >= 2);
        }
        changed += usize::from(gained > 0);
        assert_eq!(stable.write_list(p, &rep), (old, 0));
    }
    assert!(changed > 0);
}

fn subsets(list: &[NodeId], k: usize) -> Vec<Vec<NodeId>> {
    (0u32..1 << list.len())
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| {
            list.iter()
                .enumerate()
                .filter(|(i, _)| m & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect()
        })
        .collect()
}

#[test]
fn each_new_replica_streams_from_the_replica_it_replaces() {
    let rep = Replication::uniform(3);
    let stable = RingState::initial(ring(&[1, 2, 3, 4, 5]));
    let next = stable
        .current()
        .with_members(members(&[1, 2, 3, 5]))
        .unwrap();
    let pending = stable.propose(next);
    let plan = pending.plan(&rep);
    assert!(!plan.moves.is_empty());
    for m in &plan.moves {
        let dropped: Vec<NodeId> = plan
            .drops
            .iter()
            .filter(|(p, _)| *p == m.partition)
            .map(|(_, n)| *n)
            .collect();
        let sources = pending.sources_of(m, &plan);
        assert_eq!(sources.len(), 1, "{m:?} streams from {sources:?}");
        assert!(
            dropped.contains(&sources[0]),
            "{m:?} streams from {sources:?}"
        );
    }
}

#[test]
fn a_growing_list_streams_from_the_first_old_replica() {
    let rep = Replication::uniform(3);
    let stable = RingState::initial(ring(&[1, 2]));
    let next = stable.current().with_members(members(&[1, 2, 3])).unwrap();
    let pending = stable.propose(next);
    let plan = pending.plan(&rep);
    assert_eq!(
        plan.moves.len(),
        64,
        "node 3 gains a replica of every partition"
    );
    assert!(plan.drops.is_empty());
    for m in &plan.moves {
        assert_eq!(pending.sources_of(m, &plan), m.sources[..1]);
    }
    // Two old replicas, one new: writes need w + 1 of three.
    let (list, extra) = pending.write_list(plan.moves[0].partition, &rep);
    assert_eq!((list.len(), extra), (3, 1));
}

#[test]
fn conflicting_states_of_one_epoch_are_ordered_and_equal_states_agree() {
    let stable = RingState::initial(ring(&[1, 2, 3, 4]));
    let propose =
        |ids: &[u64]| stable.propose(stable.current().with_members(members(ids)).unwrap());
    let a = propose(&[1, 2, 3, 4, 5]);
    let b = propose(&[1, 2, 3, 4, 6]);
    assert_eq!(a.epoch(), b.epoch());
    assert_ne!(a.version(), b.version());
    let a2 = propose(&[1, 2, 3, 4, 5]);
    assert_eq!(a.version(), a2.version());
    assert!(a.version() > stable.version() && b.version() > stable.version());
}

#[test]
fn parts_with_different_partition_counts_are_refused() {
    let small = ring(&[1, 2, 3]);
    let big = Ring::new(PartitionCount::new(128).unwrap(), members(&[1, 2, 3])).unwrap();
    assert!(RingState::from_parts(2, small.clone(), Some((big, false))).is_none());
    let state = RingState::from_parts(2, small.clone(), Some((small.clone(), true))).unwrap();
    assert_eq!(state.phase(), RingPhase::Flipped);
    assert!(state.has_member(NodeId(3)) && !state.has_member(NodeId(4)));
    assert_eq!(state.all_members(), vec![NodeId(1), NodeId(2), NodeId(3)]);
}

#[test]
fn a_joiners_placeholder_is_older_than_any_published_state() {
    let placeholder = RingState::unknown(ring(&[9]));
    assert!(!placeholder.is_known());
    let cluster = RingState::initial(ring(&[1, 2, 3]));
    assert!(cluster.is_known());
    assert!(cluster.version() > placeholder.version());
    // Even a placeholder whose digest is larger loses to epoch 1.
    let big = RingState::unknown(ring(&[u64::MAX - 1]));
    assert!(cluster.version() > big.version());
}

#[test]
fn removed_members_are_not_waited_for_and_stream_nothing() {
    let rep = Replication::uniform(3);
    let stable = RingState::initial(ring(&[1, 2, 3, 4]));
    assert!(
        stable.clone().with_removed(vec![NodeId(2)]).is_none(),
        "stable"
    );
    let next = stable
        .current()
        .with_members(members(&[1, 3, 4, 5]))
        .unwrap();
    let pending = stable.propose(next);
    assert!(
        pending.clone().with_removed(vec![NodeId(9)]).is_none(),
        "stranger"
    );
    let removing = pending.clone().with_removed(vec![NodeId(2)]).unwrap();
    assert_ne!(removing.version(), pending.version());
    assert_eq!(removing.removed(), &[NodeId(2)]);
    assert_eq!(
        removing.barrier_members(),
        vec![NodeId(1), NodeId(3), NodeId(4), NodeId(5)]
    );
    let plan = removing.plan(&rep);
    let mut replaced = 0;
    for m in &plan.moves {
        let sources = removing.sources_of(m, &plan);
        assert!(
            !sources.contains(&NodeId(2)),
            "a removed node streams {m:?}"
        );
        if pending.sources_of(m, &plan) == [NodeId(2)] {
            // Node 2's replacement gets every surviving old replica's copy.
            let survivors: Vec<NodeId> = m
                .sources
                .iter()
                .copied()
                .filter(|&n| n != NodeId(2))
                .collect();
            assert_eq!(sources, survivors);
            replaced += 1;
        } else {
            assert_eq!(sources, pending.sources_of(m, &plan));
        }
    }
    assert!(replaced > 0, "node 2 sourced nothing to begin with");
    // Flipping keeps the removals; committing ends them with the change.
    let flipped = removing.flip().unwrap();
    assert_eq!(flipped.removed(), &[NodeId(2)]);
    assert!(flipped.commit().unwrap().removed().is_empty());
}

#[test]
fn a_pending_change_can_be_aborted_and_a_flipped_one_can_remove_more() {
    let stable = RingState::initial(ring(&[1, 2, 3, 4]));
    let next = stable
        .current()
        .with_members(members(&[1, 2, 3, 4, 5]))
        .unwrap();
    let pending = stable.propose(next);
    let aborted = pending.abort().unwrap();
    assert_eq!(aborted.phase(), RingPhase::Stable);
    assert_eq!(aborted.current(), stable.current());
    assert!(aborted.version() > pending.version());
    let flipped = pending.flip().unwrap();
    assert!(flipped.abort().is_none(), "reads left the current ring");
    let more = flipped.removing(&[NodeId(5)]).unwrap();
    assert_eq!(more.phase(), RingPhase::Flipped);
    assert_eq!(more.removed(), &[NodeId(5)]);
    assert!(more.version() > flipped.version());
    assert!(!more.barrier_members().contains(&NodeId(5)));
    assert!(stable.removing(&[NodeId(1)]).is_none());
}

#[test]
fn a_leaver_nobody_can_replace_streams_to_the_replicas_that_stay() {
    // Two replicas in dc-1 and one in dc-2; dc-1 has nodes 1 and 3 only. Without node 1 each
    // list keeps one dc-1 replica: node 1 is dropped with nobody paired, and what it alone
    // acknowledged must reach the replicas that stay.
    let rep = Replication::per_dc(vec![("dc-1".into(), 2), ("dc-2".into(), 1)]).unwrap();
    let member = |i: u64| {
        Member::new(
            NodeId(i),
            format!("rack-{i}"),
            format!("dc-{}", 2 - i % 2),
            1,
        )
    };
    let all: Vec<Member> = [1, 2, 3, 4].map(member).to_vec();
    let stable = RingState::initial(Ring::new(PartitionCount::new(16).unwrap(), all).unwrap());
    let next = stable
        .current()
        .with_members([2, 3, 4].map(member).to_vec())
        .unwrap();
    let pending = stable.propose(next.clone());
    let plan = pending.plan(&rep);
    assert!(plan.drops.len() > plan.moves.len(), "no list shrinks");
    let shrink = pending.shrink_moves(&plan, &rep);
    assert!(!shrink.is_empty());
    for p in stable.current().partitions().iter() {
        let gains = plan.moves.iter().filter(|m| m.partition == p).count();
        let drops: Vec<NodeId> = plan
            .drops
            .iter()
            .filter(|d| d.0 == p)
            .map(|d| d.1)
            .collect();
        let new_list = next.preference_list(p, &rep);
        let mut expected: Vec<((PartitionId, NodeId), Vec<NodeId>)> = Vec::new();
        if drops.len() > gains {
            // Every replica of the new list, those the plan adds included (a list may lose
            // all its old replicas and get fewer new ones).
            let unpaired = drops[gains..].to_vec();
            expected = new_list
                .iter()
                .map(|&k| ((p, k), unpaired.clone()))
                .collect();
        }
        let got: Vec<_> = shrink
            .iter()
            .filter(|((q, _), _)| *q == p)
            .cloned()
            .collect();
        assert_eq!(got, expected, "partition {p:?}");
    }
    // A removed node streams nothing: the moves are planned without it.
    let removing = pending.clone().with_removed(vec![NodeId(1)]).unwrap();
    let shrink = removing.shrink_moves(&removing.plan(&rep), &rep);
    assert!(shrink
        .iter()
        .all(|(_, sources)| !sources.contains(&NodeId(1))));
}
