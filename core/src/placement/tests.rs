//! Unit tests of placement: the properties the claim and the walks promise.

use super::*;
use crate::constants::{LOCATION_NAME_BYTES_MAX, MEMBER_WEIGHT_MAX, RING_MEMBERS_MAX};

fn q(n: u32) -> PartitionCount {
    PartitionCount::new(n).unwrap()
}

fn node(id: u64) -> Member {
    Member::new(NodeId(id), "r0", "dc0", 1)
}

fn nodes(ids: std::ops::RangeInclusive<u64>) -> Vec<Member> {
    ids.map(node).collect()
}

fn counts(ring: &Ring) -> Vec<usize> {
    ring.owned_counts().into_iter().map(|(_, c)| c).collect()
}

fn owner_changes(a: &Ring, b: &Ring) -> usize {
    a.owners()
        .iter()
        .zip(b.owners())
        .filter(|(x, y)| **x != *y)
        .count()
}

#[test]
fn ring_balance_ten_equal_nodes() {
    let ring = Ring::new(q(1024), nodes(1..=10)).unwrap();
    let c = counts(&ring);
    let max = *c.iter().max().unwrap() as f64;
    let mean = 1024.0 / 10.0;
    assert!(max / mean <= 1.10, "max {max} over mean {mean}");
    // Stronger: each owns its share rounded down or up.
    assert!(c.iter().all(|&n| n == 102 || n == 103), "{c:?}");
    assert_eq!(c.iter().sum::<usize>(), 1024);
    assert_eq!(ring.version(), 1);
}

#[test]
fn movement_on_join_is_near_ideal() {
    let rep = Replication::uniform(3);
    let old = Ring::new(q(1024), nodes(1..=10)).unwrap();
    let new = old.with_members(nodes(1..=11)).unwrap();
    assert_eq!(new.version(), 2);
    let ideal = 1024.0 / 11.0;
    let moved = owner_changes(&old, &new);
    assert!(moved as f64 <= 1.2 * ideal, "{moved} primaries moved");
    // Every primary that moved went to the new node.
    for p in new.partitions().iter() {
        if old.owner(p) != new.owner(p) {
            assert_eq!(new.owner(p), NodeId(11));
        }
    }
    let plan = transfer_plan(&old, &new, &rep);
    let ideal_replicas = 3.0 * ideal;
    assert!(
        plan.moves.len() as f64 <= 1.5 * ideal_replicas,
        "{} replica moves, ideal {ideal_replicas:.1}",
        plan.moves.len()
    );
    assert!(plan.moves.iter().all(|m| m.to == NodeId(11)));
    assert_eq!(plan.moves.len(), plan.drops.len());
    // The new node holds exactly the replicas the plan builds for it.
    assert_eq!(
        new.replica_partitions(NodeId(11), &rep).len(),
        plan.moves.len()
    );
}

#[test]
fn weight_two_owns_about_twice() {
    let mut members = nodes(1..=9);
    members.push(Member::new(NodeId(10), "r0", "dc0", 2));
    let ring = Ring::new(q(1024), members).unwrap();
    let c = counts(&ring);
    let light = c[..9].iter().sum::<usize>() as f64 / 9.0;
    let ratio = c[9] as f64 / light;
    assert!((1.9..=2.1).contains(&ratio), "ratio {ratio}, counts {c:?}");
    // Exact shares 186.18 and 93.09: the one partition left over goes to the larger remainder.
    assert_eq!(c[9], 187);
}

#[test]
fn preference_lists_are_distinct_and_start_at_the_owner() {
    let ring = Ring::new(q(256), nodes(1..=7)).unwrap();
    for n in 1..=9 {
        let rep = Replication::uniform(n);
        for p in ring.partitions().iter() {
            let list = ring.preference_list(p, &rep);
            assert_eq!(list.len(), n.min(7));
            assert_eq!(list[0], ring.owner(p));
            let mut sorted = list.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len(), "{p}: {list:?}");
        }
    }
}

#[test]
fn fresh_lists_are_the_next_owners_clockwise() {
    // The claim's spread makes the n=3 list the owners of p, p+1, p+2.
    let ring = Ring::new(q(1024), nodes(1..=10)).unwrap();
    let rep = Replication::uniform(3);
    for p in ring.partitions().iter() {
        let expected: Vec<NodeId> = (0..3)
            .map(|d| ring.owner(PartitionId((p.0 + d) % 1024)))
            .collect();
        assert_eq!(ring.preference_list(p, &rep), expected);
    }
}

#[test]
fn two_racks_never_hold_all_replicas() {
    // Uneven racks: 7 nodes in one, 3 in the other.
    let members: Vec<Member> = (1..=10)
        .map(|i| Member::new(NodeId(i), if i <= 7 { "a" } else { "b" }, "dc0", 1))
        .collect();
    let ring = Ring::new(q(1024), members.clone()).unwrap();
    for n in [2, 3, 4] {
        let rep = Replication::uniform(n);
        for p in ring.partitions().iter() {
            let list = ring.preference_list(p, &rep);
            let in_a = list.iter().filter(|id| id.0 <= 7).count();
            assert!(in_a > 0 && in_a < list.len(), "{p} n={n}: {list:?}");
            // Racks alternate as long as both have nodes: a rack is reused only when no
            // other rack remains.
            assert!(in_a.abs_diff(list.len() - in_a) <= 1, "{p}: {list:?}");
        }
    }
}

#[test]
fn per_dc_counts_are_honoured() {
    let members: Vec<Member> = (1..=10)
        .map(|i| {
            let dc = if i % 2 == 0 { "east" } else { "west" };
            Member::new(NodeId(i), format!("r{}", i % 3), dc, 1)
        })
        .collect();
    let ring = Ring::new(q(512), members).unwrap();
    let dc_of = |id: NodeId| ring.member(id).unwrap().dc.clone();
    let rep = Replication::per_dc(vec![("east".into(), 3), ("west".into(), 2)]).unwrap();
    for p in ring.partitions().iter() {
        let list = ring.preference_list(p, &rep);
        assert_eq!(list.len(), 5);
        assert_eq!(list.iter().filter(|&&id| dc_of(id) == "east").count(), 3);
        assert_eq!(list.iter().filter(|&&id| dc_of(id) == "west").count(), 2);
        let mut sorted = list.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        // Fallbacks are everyone else.
        let fallbacks = ring.fallbacks(p, &rep);
        assert_eq!(fallbacks.len(), 5);
        assert!(fallbacks.iter().all(|f| !list.contains(f)));
    }
    // A datacenter with fewer nodes than asked gives what it has; an unnamed one gives none.
    let rep = Replication::per_dc(vec![("east".into(), 9), ("north".into(), 2)]).unwrap();
    let list = ring.preference_list(PartitionId(0), &rep);
    assert_eq!(list.len(), 5);
    assert!(list.iter().all(|&id| dc_of(id) == "east"));
    let rep = Replication::per_dc(vec![("north".into(), 2)]).unwrap();
    assert!(ring.preference_list(PartitionId(0), &rep).is_empty());
    assert_eq!(ring.fallbacks(PartitionId(0), &rep).len(), 10);
}

#[test]
fn claim_is_deterministic() {
    let mut members = nodes(1..=10);
    members[3].weight = 3;
    let a = Ring::new(q(1024), members.clone()).unwrap();
    members.reverse();
    let b = Ring::new(q(1024), members.clone()).unwrap();
    assert_eq!(a, b);
    let mut joined = members.clone();
    joined.push(Member::new(NodeId(77), "r1", "dc0", 2));
    let a2 = a.with_members(joined.clone()).unwrap();
    joined.reverse();
    let b2 = b.with_members(joined).unwrap();
    assert_eq!(a2, b2);
}

#[test]
fn leave_moves_only_the_leavers_partitions() {
    let rep = Replication::uniform(3);
    let old = Ring::new(q(1024), nodes(1..=10)).unwrap();
    let remaining: Vec<Member> = nodes(1..=10).into_iter().filter(|m| m.id.0 != 4).collect();
    let new = old.with_members(remaining).unwrap();
    for p in old.partitions().iter() {
        if old.owner(p) != NodeId(4) {
            assert_eq!(old.owner(p), new.owner(p), "{p} moved");
        }
    }
    assert_eq!(owner_changes(&old, &new), 103);
    assert!(new.member(NodeId(4)).is_none());
    let c = counts(&new);
    assert!(c.iter().all(|&n| n == 113 || n == 114), "{c:?}");
    // The plan drops every replica the leaver held, and builds as many elsewhere.
    let plan = transfer_plan(&old, &new, &rep);
    let held = old.replica_partitions(NodeId(4), &rep);
    let dropped: Vec<PartitionId> = plan
        .drops
        .iter()
        .filter(|d| d.1 == NodeId(4))
        .map(|d| d.0)
        .collect();
    assert_eq!(dropped, held);
    assert_eq!(plan.moves.len(), plan.drops.len());
    for m in &plan.moves {
        assert_eq!(m.sources, old.preference_list(m.partition, &rep));
    }
}

#[test]
fn unchanged_members_change_nothing() {
    let ring = Ring::new(q(1024), nodes(1..=10)).unwrap();
    let mut same = nodes(1..=10);
    same.reverse();
    assert_eq!(ring.with_members(same).unwrap(), ring);
    assert!(transfer_plan(&ring, &ring, &Replication::uniform(3)).is_empty());
}

#[test]
fn weight_change_moves_only_to_and_from_the_changed_node() {
    let old = Ring::new(q(1024), nodes(1..=10)).unwrap();
    let mut up = nodes(1..=10);
    up[0].weight = 3;
    let new = old.with_members(up).unwrap();
    for p in old.partitions().iter() {
        if old.owner(p) != new.owner(p) {
            assert_eq!(new.owner(p), NodeId(1));
        }
    }
    let c = counts(&new);
    // 1024 * 3 / 12 = 256 exactly.
    assert_eq!(c[0], 256);
    assert_eq!(owner_changes(&old, &new), 256 - 103);
    let back = new.with_members(nodes(1..=10)).unwrap();
    for p in old.partitions().iter() {
        if new.owner(p) != back.owner(p) {
            assert_eq!(new.owner(p), NodeId(1));
        }
    }
    assert_eq!(back.version(), 3);
}

#[test]
fn bad_members_are_rejected() {
    let bad = |members: Vec<Member>| {
        matches!(
            Ring::new(q(64), members),
            Err(CoreError::InvalidMembers { .. })
        )
    };
    assert!(bad(vec![]));
    assert!(bad(vec![node(1), node(2), node(1)]));
    assert!(bad(vec![node(1), Member::new(NodeId(2), "", "", 0)]));
    assert!(bad(vec![Member::new(
        NodeId(2),
        "",
        "",
        MEMBER_WEIGHT_MAX + 1
    )]));
    assert!(bad(vec![Member::new(
        NodeId(2),
        "x".repeat(LOCATION_NAME_BYTES_MAX + 1),
        "",
        1
    )]));
    assert!(bad((0..=RING_MEMBERS_MAX as u64).map(node).collect()));
    let ring = Ring::new(q(64), nodes(1..=3)).unwrap();
    assert!(ring.with_members(vec![]).is_err());
}

#[test]
fn from_parts_round_trips_and_checks() {
    let ring = Ring::new(q(64), nodes(1..=5)).unwrap();
    let rebuilt = Ring::from_parts(
        ring.partitions(),
        ring.version(),
        ring.members().to_vec(),
        &ring.owners(),
    )
    .unwrap();
    assert_eq!(rebuilt, ring);
    let mut stranger = ring.owners();
    stranger[5] = NodeId(99);
    assert!(Ring::from_parts(q(64), 1, nodes(1..=5), &stranger).is_err());
    assert!(Ring::from_parts(q(64), 1, nodes(1..=5), &ring.owners()[1..]).is_err());
}

#[test]
fn more_members_than_partitions() {
    // Four partitions, six nodes: two own nothing, yet lists still reach every node.
    let ring = Ring::new(q(4), nodes(1..=6)).unwrap();
    assert_eq!(ring.owned_partitions(NodeId(5)), vec![]);
    let rep = Replication::uniform(6);
    for p in ring.partitions().iter() {
        let list = ring.preference_list(p, &rep);
        assert_eq!(list.len(), 6);
        assert_eq!(&list[4..], &[NodeId(5), NodeId(6)]);
        assert!(ring.fallbacks(p, &rep).is_empty());
    }
    let one = Ring::new(q(1), nodes(1..=3)).unwrap();
    assert_eq!(one.preference_list(PartitionId(0), &rep).len(), 3);
}

#[test]
fn fallbacks_continue_the_walk() {
    let ring = Ring::new(q(64), nodes(1..=6)).unwrap();
    let rep = Replication::uniform(2);
    for p in ring.partitions().iter() {
        let mut all = ring.preference_list(p, &rep);
        all.extend(ring.fallbacks(p, &rep));
        // Every member owns partitions here, so the walk is the distinct owners clockwise.
        let mut expected: Vec<NodeId> = Vec::new();
        for d in 0..64 {
            let o = ring.owner(PartitionId((p.0 + d) % 64));
            if !expected.contains(&o) {
                expected.push(o);
            }
        }
        assert_eq!(all, expected);
    }
}

#[test]
fn replica_partitions_match_preference_lists() {
    let mut members = nodes(1..=8);
    members[2].rack = "other".into();
    let ring = Ring::new(q(256), members).unwrap();
    let rep = Replication::uniform(3);
    let mut total = 0;
    for m in ring.members() {
        let mine = ring.replica_partitions(m.id, &rep);
        for p in ring.partitions().iter() {
            let listed = ring.preference_list(p, &rep).contains(&m.id);
            assert_eq!(listed, mine.contains(&p), "{} {p}", m.id);
        }
        total += mine.len();
    }
    assert_eq!(total, 3 * 256);
    assert!(ring.replica_partitions(NodeId(99), &rep).is_empty());
}
