//! Counting answers against what a request needs: `r` (or `w`) from any of its targets, from
//! the coordinator's datacenter only, or from each datacenter that holds replicas of the key
//! (Cassandra's QUORUM, LOCAL_QUORUM and EACH_QUORUM).
//!
//! A [`Tally`] sorts targets into groups (one group for [`AckScope::Any`], the datacenters for
//! the others) and is met when every group has its count. A target outside every group (a
//! remote datacenter under [`AckScope::LocalDc`]) is still asked and still repaired; its
//! answer just does not count.
//!
//! Invariants: a node counts at most once; a group's need never exceeds its targets at the
//! start (else the request fails at once, as `Unavailable`).

use crate::ids::NodeId;
use crate::quorum::{QuorumError, Target};

/// Where the answers a request counts must come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckScope {
    /// `r` (or `w`) answers from any replicas.
    #[default]
    Any,
    /// `r` (or `w`) answers from replicas in the coordinator's datacenter; with no count
    /// asked, a majority of the key's replicas there.
    LocalDc,
    /// `r` (or `w`) answers from each datacenter holding replicas of the key; with no count
    /// asked, a majority of the key's replicas in each.
    EachDc,
}

/// What a request needs, in one group or per datacenter, and what it has so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Each target and the group its answer counts for (`None`: it does not count).
    group_of: Vec<(NodeId, Option<usize>)>,
    needed: Vec<usize>,
    got: Vec<usize>,
    counted: Vec<NodeId>,
}

/// Where a key's replicas and the coordinator are, for a scoped tally.
#[derive(Clone, Copy, Debug)]
pub struct Placement<'r, 'd, F> {
    /// The key's replicas (its preference list, or both rings' during a change).
    pub replicas: &'r [NodeId],
    /// The coordinator's datacenter.
    pub local_dc: &'d str,
    /// Each node's datacenter.
    pub dc_of: F,
}

impl Tally {
    /// `asked` answers (below 1 counts as 1: an answer always means someone has it) from any
    /// of `targets`, for a key with `n` replicas.
    ///
    /// Errors: `TooManyAsked` if `asked` is more than `n`.
    pub fn any(targets: &[Target], asked: usize, n: usize) -> Result<Tally, QuorumError> {
        let asked = asked.max(1);
        if asked > n.max(1) {
            return Err(QuorumError::TooManyAsked { asked, n });
        }
        Self::grouped(targets, |_| Some(0), vec![asked])
    }

    /// The tally of a request for `asked` answers (0: a majority of each group's replicas)
    /// at `scope`, plus `extra` per group during a ring change (capped at the group's
    /// replicas). A target counts for its own datacenter, fallbacks included.
    ///
    /// Errors: `TooManyAsked` if a group has fewer replicas than asked (`n` is that group's);
    /// `NoReplicasInDc` if the scope names no datacenter holding replicas of the key.
    pub fn scoped<'d, F>(
        targets: &[Target],
        asked: usize,
        extra: usize,
        scope: AckScope,
        at: Placement<'_, 'd, F>,
    ) -> Result<Tally, QuorumError>
    where
        F: Fn(NodeId) -> Option<&'d str>,
    {
        let mut dcs: Vec<&str> = Vec::new();
        let mut n: Vec<usize> = Vec::new();
        for &replica in at.replicas {
            let dc = (at.dc_of)(replica).unwrap_or("");
            let wanted = match scope {
                AckScope::LocalDc => dc == at.local_dc,
                AckScope::Any | AckScope::EachDc => true,
            };
            if !wanted {
                continue;
            }
            match dcs.iter().position(|&d| d == dc) {
                Some(g) => n[g] += 1,
                None => {
                    dcs.push(dc);
                    n.push(1);
                }
            }
        }
        if scope == AckScope::Any {
            let total: usize = n.iter().sum();
            return Self::grouped(targets, |_| Some(0), vec![need(asked, total, extra)?]);
        }
        if dcs.is_empty() {
            return Err(QuorumError::NoReplicasInDc {
                dc: at.local_dc.to_string(),
            });
        }
        let needed = n
            .iter()
            .map(|&n_dc| need(asked, n_dc, extra))
            .collect::<Result<Vec<_>, _>>()?;
        Self::grouped(
            targets,
            |node| {
                let dc = (at.dc_of)(node).unwrap_or("");
                dcs.iter().position(|&d| d == dc)
            },
            needed,
        )
    }

    fn grouped(
        targets: &[Target],
        group: impl Fn(NodeId) -> Option<usize>,
        needed: Vec<usize>,
    ) -> Result<Tally, QuorumError> {
        let got = vec![0; needed.len()];
        Ok(Tally {
            group_of: targets.iter().map(|t| (t.node, group(t.node))).collect(),
            needed,
            got,
            counted: Vec::new(),
        })
    }

    /// Whether the targets could meet every group's need if they all answered.
    pub fn reachable(&self) -> bool {
        self.usable() == self.needed()
    }

    /// Answers the targets could give toward the need, each group's capped at its need: the
    /// reachable figure of an `Unavailable` error.
    pub fn usable(&self) -> usize {
        let in_group = |g| {
            self.group_of
                .iter()
                .filter(|(_, of)| *of == Some(g))
                .count()
        };
        let groups = self.needed.iter().enumerate();
        groups.map(|(g, &need)| in_group(g).min(need)).sum()
    }

    /// Counts `node`'s answer (once; a node that is no target, or counts for no group, is
    /// ignored). Returns whether the tally is met now.
    pub fn count(&mut self, node: NodeId) -> bool {
        if !self.counted.contains(&node) {
            if let Some(&(_, Some(g))) = self.group_of.iter().find(|(n, _)| *n == node) {
                self.counted.push(node);
                self.got[g] += 1;
            }
        }
        self.is_met()
    }

    /// Whether every group has its count.
    pub fn is_met(&self) -> bool {
        self.got
            .iter()
            .zip(&self.needed)
            .all(|(got, need)| got >= need)
    }

    /// Answers counted so far, all groups together.
    pub fn answered(&self) -> usize {
        self.counted.len()
    }

    /// Answers needed, all groups together.
    pub fn needed(&self) -> usize {
        self.needed.iter().sum()
    }
}

/// A group's need: `asked` (0: a majority of its `n` replicas), plus `extra` up to `n`.
fn need(asked: usize, n: usize, extra: usize) -> Result<usize, QuorumError> {
    if asked > n {
        return Err(QuorumError::TooManyAsked { asked, n });
    }
    let base = if asked == 0 { n / 2 + 1 } else { asked };
    Ok(base.saturating_add(extra).min(n.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ids: &[u64]) -> Vec<Target> {
        ids.iter().map(|&i| Target::owner(NodeId(i))).collect()
    }

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().copied().map(NodeId).collect()
    }

    /// Nodes 1-3 in "east", 4-5 in "west", 9 nowhere known.
    fn dc_of(node: NodeId) -> Option<&'static str> {
        match node.0 {
            1..=3 => Some("east"),
            4 | 5 => Some("west"),
            _ => None,
        }
    }

    fn scoped(
        targets: &[u64],
        asked: usize,
        scope: AckScope,
        local: &'static str,
    ) -> Result<Tally, QuorumError> {
        let replicas = ids(&[1, 2, 3, 4, 5]);
        let at = Placement {
            replicas: &replicas,
            local_dc: local,
            dc_of,
        };
        Tally::scoped(&owners(targets), asked, 0, scope, at)
    }

    #[test]
    fn any_counts_each_target_once_and_ignores_strangers() {
        let mut t = Tally::any(&owners(&[1, 2, 3]), 2, 3).unwrap();
        assert!(!t.count(NodeId(1)));
        assert!(!t.count(NodeId(1)), "a node counts once");
        assert!(!t.count(NodeId(7)), "not a target");
        assert!(t.count(NodeId(3)));
        assert_eq!((t.answered(), t.needed()), (2, 2));
    }

    #[test]
    fn local_dc_counts_only_the_coordinators_datacenter() {
        let mut t = scoped(&[1, 2, 3, 4, 5], 2, AckScope::LocalDc, "west").unwrap();
        assert_eq!(t.needed(), 2);
        for remote in [1, 2, 3] {
            assert!(!t.count(NodeId(remote)), "east does not count for west");
        }
        assert!(!t.count(NodeId(4)));
        assert!(t.count(NodeId(5)));
        // No count asked: a majority of the local replicas (3 in east: 2).
        let majority = scoped(&[1, 2, 3, 4, 5], 0, AckScope::LocalDc, "east").unwrap();
        assert_eq!(majority.needed(), 2);
    }

    #[test]
    fn each_dc_needs_every_datacenter() {
        let mut t = scoped(&[1, 2, 3, 4, 5], 0, AckScope::EachDc, "east").unwrap();
        assert_eq!(t.needed(), 2 + 2, "majority of 3 in east, of 2 in west");
        for node in [1, 2, 3, 4] {
            assert!(!t.count(NodeId(node)), "west has one of two after {node}");
        }
        assert!(t.count(NodeId(5)));
    }

    #[test]
    fn impossible_scopes_fail_with_typed_errors() {
        assert_eq!(
            scoped(&[1, 2, 3, 4, 5], 3, AckScope::EachDc, "east"),
            Err(QuorumError::TooManyAsked { asked: 3, n: 2 })
        );
        assert_eq!(
            scoped(&[1, 2, 3], 1, AckScope::LocalDc, "north"),
            Err(QuorumError::NoReplicasInDc { dc: "north".into() })
        );
        // West's replicas are down (not targets): reachable says so before anything is sent.
        let t = scoped(&[1, 2, 3], 1, AckScope::EachDc, "east").unwrap();
        assert!(!t.reachable());
        assert_eq!(
            (t.usable(), t.needed()),
            (1, 2),
            "east can give its 1, west nothing"
        );
        assert!(scoped(&[1, 2, 3], 1, AckScope::LocalDc, "east")
            .unwrap()
            .reachable());
    }

    #[test]
    fn a_fallback_counts_for_its_own_datacenter_and_extra_is_capped() {
        let targets = vec![
            Target::owner(NodeId(4)),
            Target {
                node: NodeId(2),
                hint_for: Some(NodeId(5)),
            },
        ];
        let replicas = ids(&[4, 5]);
        let at = Placement {
            replicas: &replicas,
            local_dc: "west",
            dc_of,
        };
        let mut t = Tally::scoped(&targets, 1, 5, AckScope::LocalDc, at).unwrap();
        assert_eq!(
            t.needed(),
            2,
            "1 + extra 5, capped at the 2 replicas in west"
        );
        assert!(
            !t.count(NodeId(2)),
            "an east fallback does not count for west"
        );
        assert!(!t.reachable());
        assert!(!t.count(NodeId(4)));
    }
}
