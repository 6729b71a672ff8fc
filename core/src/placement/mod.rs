//! Placement: which nodes own which partitions, and which nodes hold each partition's replicas.
//!
//! This module owns the [`Ring`]: the member set (node id, rack, datacenter, weight) and the
//! claim, the owner of each of the `Q` partitions (DESIGN §3). From the ring it derives
//! preference lists (the replicas of a partition), sloppy-quorum fallbacks, and the
//! [`TransferPlan`] that says which replicas move when the ring changes.
//!
//! Invariants of a [`Ring`]:
//! - `members` is non-empty, sorted by id, ids distinct, every weight in
//!   `1..=MEMBER_WEIGHT_MAX`, at most `RING_MEMBERS_MAX` members.
//! - `owners` has exactly one entry per partition and each names a member.
//! - A ring built by [`Ring::new`] or [`Ring::with_members`] gives each member exactly its
//!   target count of partitions: its exact share `Q · weight / total weight` rounded down or up
//!   (largest remainder), so no member is off its exact share by one partition or more.
//!
//! Everything is a pure function of its inputs: every node that applies the same member
//! changes to the same ring gets the same ring, without talking to the others.
//!
//! Submodules: [`claim`] (targets and the assignment of partitions), [`preference`] (the
//! clockwise walk with rack and datacenter rules), [`replication`] ([`Replication`]) and
//! [`plan`] ([`transfer_plan`]).

mod claim;
mod plan;
mod preference;
mod replication;

pub use plan::{transfer_plan, Move, TransferPlan};
pub use replication::Replication;

use crate::constants::{LOCATION_NAME_BYTES_MAX, MEMBER_WEIGHT_MAX, RING_MEMBERS_MAX};
use crate::error::CoreError;
use crate::ids::{NodeId, PartitionId};
use crate::ring::PartitionCount;

/// One node as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node.
    pub id: NodeId,
    /// Failure domain inside the datacenter; preference lists spread across racks. Racks are
    /// told apart per datacenter: rack "r1" of "dc1" and of "dc2" are two racks.
    pub rack: String,
    /// Datacenter, for per-datacenter replication.
    pub dc: String,
    /// Relative capacity: a weight-2 node owns about twice the partitions of a weight-1 node.
    pub weight: u32,
}

impl Member {
    /// A member with the given location and weight.
    pub fn new(id: NodeId, rack: impl Into<String>, dc: impl Into<String>, weight: u32) -> Member {
        Member {
            id,
            rack: rack.into(),
            dc: dc.into(),
            weight,
        }
    }
}

/// Lookup tables derived from the member list (not independent state: equal members give
/// equal tables).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Topology {
    /// Member index to rack index; a rack is a distinct (dc, rack) pair, numbered in sorted
    /// order.
    rack_of: Vec<u32>,
    /// Member index to datacenter index, datacenters numbered in sorted name order.
    dc_of: Vec<u32>,
    /// Rack index to datacenter index.
    rack_dc: Vec<u32>,
    /// Datacenter names, sorted.
    dcs: Vec<String>,
    /// Members per rack.
    rack_sizes: Vec<u32>,
}

impl Topology {
    fn of(members: &[Member]) -> Topology {
        let mut racks: Vec<(&str, &str)> = members
            .iter()
            .map(|m| (m.dc.as_str(), m.rack.as_str()))
            .collect();
        racks.sort_unstable();
        racks.dedup();
        let mut dcs: Vec<&str> = members.iter().map(|m| m.dc.as_str()).collect();
        dcs.sort_unstable();
        dcs.dedup();
        // Both lists were built from the members, so every lookup below finds its entry.
        let dc_index = |dc: &str| dcs.binary_search(&dc).unwrap_or(0) as u32;
        let rack_of: Vec<u32> = members
            .iter()
            .map(|m| {
                racks
                    .binary_search(&(m.dc.as_str(), m.rack.as_str()))
                    .unwrap_or(0) as u32
            })
            .collect();
        let mut rack_sizes = vec![0u32; racks.len()];
        for &r in &rack_of {
            rack_sizes[r as usize] += 1;
        }
        Topology {
            dc_of: members.iter().map(|m| dc_index(&m.dc)).collect(),
            rack_dc: racks.iter().map(|(dc, _)| dc_index(dc)).collect(),
            dcs: dcs.iter().map(|s| s.to_string()).collect(),
            rack_of,
            rack_sizes,
        }
    }
}

/// The claim: the member set and the owner of every partition, with a version that grows by
/// one with every change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    partitions: PartitionCount,
    version: u64,
    /// Sorted by id.
    members: Vec<Member>,
    /// `owners[p]` is the index in `members` of partition `p`'s claimant.
    owners: Vec<u32>,
    topology: Topology,
}

impl Ring {
    /// Fresh deterministic claim, version 1.
    ///
    /// Errors: [`CoreError::InvalidMembers`] for no members, more than `RING_MEMBERS_MAX`, a
    /// duplicate id, a weight of 0 or above `MEMBER_WEIGHT_MAX`, or a rack or datacenter name
    /// longer than `LOCATION_NAME_BYTES_MAX`.
    pub fn new(partitions: PartitionCount, members: Vec<Member>) -> Result<Ring, CoreError> {
        let members = validate_members(members)?;
        let owners = claim::fresh(partitions.get(), &members);
        Ok(Ring::assemble(partitions, 1, members, owners))
    }

    /// The ring for a changed member set (join, leave, weight or location change), version + 1.
    ///
    /// Only partitions of departed members and partitions of members now above their target
    /// change owner, and they go only to members below their target, so the number of moved
    /// partitions is the least the new targets allow. An unchanged member set returns an equal
    /// ring (same version): there is nothing to publish. Errors as for [`Ring::new`].
    pub fn with_members(&self, members: Vec<Member>) -> Result<Ring, CoreError> {
        let members = validate_members(members)?;
        if members == self.members {
            return Ok(self.clone());
        }
        let previous: Vec<Option<u32>> = self
            .owners
            .iter()
            .map(|&o| {
                let id = self.members[o as usize].id;
                members
                    .binary_search_by_key(&id, |m| m.id)
                    .ok()
                    .map(|i| i as u32)
            })
            .collect();
        let owners = claim::rebalance(&previous, &members);
        Ok(Ring::assemble(
            self.partitions,
            self.version.saturating_add(1),
            members,
            owners,
        ))
    }

    /// Rebuilds a ring from its published parts (a decoded topology), checking them.
    ///
    /// Errors: [`CoreError::InvalidMembers`] as for [`Ring::new`], or if `owners` does not have
    /// one entry per partition or names a node that is not a member.
    pub fn from_parts(
        partitions: PartitionCount,
        version: u64,
        members: Vec<Member>,
        owners: &[NodeId],
    ) -> Result<Ring, CoreError> {
        let members = validate_members(members)?;
        if owners.len() != partitions.get() as usize {
            return Err(CoreError::InvalidMembers {
                detail: format!(
                    "the owner table has {} entries but the ring has {} partitions",
                    owners.len(),
                    partitions.get()
                ),
            });
        }
        let owners = owners
            .iter()
            .enumerate()
            .map(|(p, id)| {
                members
                    .binary_search_by_key(id, |m| m.id)
                    .map(|i| i as u32)
                    .map_err(|_| CoreError::InvalidMembers {
                        detail: format!("partition p{p} is owned by {id}, which is not a member"),
                    })
            })
            .collect::<Result<Vec<u32>, CoreError>>()?;
        Ok(Ring::assemble(partitions, version, members, owners))
    }

    fn assemble(
        partitions: PartitionCount,
        version: u64,
        members: Vec<Member>,
        owners: Vec<u32>,
    ) -> Ring {
        debug_assert_eq!(owners.len(), partitions.get() as usize);
        debug_assert!(owners.iter().all(|&o| (o as usize) < members.len()));
        Ring {
            partitions,
            version,
            topology: Topology::of(&members),
            members,
            owners,
        }
    }

    /// Grows by one with every change of the member set; 1 for a fresh ring.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The ring's partition count `Q`.
    pub fn partitions(&self) -> PartitionCount {
        self.partitions
    }

    /// The members, sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this id, if any.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.index_of(id).map(|i| &self.members[i])
    }

    /// The claimant of partition `p`.
    ///
    /// Contract: `p < Q` (asserted in debug builds; release builds reduce it modulo `Q`).
    pub fn owner(&self, p: PartitionId) -> NodeId {
        debug_assert!(p.0 < self.partitions.get(), "{p} is outside the ring");
        self.members[self.owner_index(p.0 as usize)].id
    }

    /// The owner of every partition, in partition order: the table to publish.
    pub fn owners(&self) -> Vec<NodeId> {
        self.owners
            .iter()
            .map(|&o| self.members[o as usize].id)
            .collect()
    }

    /// The partitions `id` claims, in partition order (empty for a non-member).
    pub fn owned_partitions(&self, id: NodeId) -> Vec<PartitionId> {
        let Some(i) = self.index_of(id) else {
            return Vec::new();
        };
        self.owners
            .iter()
            .enumerate()
            .filter(|(_, &o)| o as usize == i)
            .map(|(p, _)| PartitionId(p as u32))
            .collect()
    }

    /// How many partitions each member claims, in member order.
    pub fn owned_counts(&self) -> Vec<(NodeId, usize)> {
        let mut counts = vec![0usize; self.members.len()];
        for &o in &self.owners {
            counts[o as usize] += 1;
        }
        self.members.iter().map(|m| m.id).zip(counts).collect()
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.members.binary_search_by_key(&id, |m| m.id).ok()
    }

    /// Member index of the owner of partition `p` (reduced modulo `Q`).
    fn owner_index(&self, p: usize) -> usize {
        // Q is a power of two and owners has Q entries, so the masked index is in bounds.
        self.owners[p & (self.owners.len() - 1)] as usize
    }
}

/// Sorts and checks a member list (see [`Ring::new`] for the rules).
fn validate_members(mut members: Vec<Member>) -> Result<Vec<Member>, CoreError> {
    let bad = |detail: String| Err(CoreError::InvalidMembers { detail });
    if members.is_empty() {
        return bad("there are no members".into());
    }
    if members.len() > RING_MEMBERS_MAX {
        return bad(format!(
            "{} members is more than the limit of {RING_MEMBERS_MAX}",
            members.len()
        ));
    }
    members.sort_by_key(|m| m.id);
    for pair in members.windows(2) {
        if pair[0].id == pair[1].id {
            return bad(format!("node {} is listed twice", pair[0].id));
        }
    }
    for m in &members {
        if m.weight == 0 || m.weight > MEMBER_WEIGHT_MAX {
            return bad(format!(
                "node {} has weight {}; weights run from 1 to {MEMBER_WEIGHT_MAX}",
                m.id, m.weight
            ));
        }
        if m.rack.len() > LOCATION_NAME_BYTES_MAX || m.dc.len() > LOCATION_NAME_BYTES_MAX {
            return bad(format!(
                "node {} has a rack or datacenter name longer than {LOCATION_NAME_BYTES_MAX} bytes",
                m.id
            ));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests;
