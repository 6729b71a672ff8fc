//! Which nodes a request goes to.
//!
//! Strict quorum: exactly the preference list, the owners believed healthy first; an unhealthy
//! owner simply does not answer. The order matters to a write: its first owner target applies
//! it (unless the coordinator is an owner itself), and a write whose updater is down can only
//! time out, however many other owners are up.
//! Sloppy quorum (Dynamo §4.6): every healthy owner, and for each unhealthy owner the next
//! healthy fallback in ring order, which keeps the write with a hint naming that owner.
//!
//! Invariant: no node appears twice in the result, and only fallbacks carry hints.

use crate::ids::NodeId;

/// One node a request is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node.
    pub node: NodeId,
    /// For a fallback: the owner it stands in for, to whom it hands the write back.
    pub hint_for: Option<NodeId>,
}

impl Target {
    /// A preference-list owner.
    pub fn owner(node: NodeId) -> Target {
        Target {
            node,
            hint_for: None,
        }
    }
}

/// The targets of a request for a key with preference list `preference` and fallbacks
/// `fallbacks` (ring order), given which nodes are believed `alive`.
pub fn choose_targets(
    preference: &[NodeId],
    fallbacks: &[NodeId],
    sloppy: bool,
    alive: impl Fn(NodeId) -> bool,
) -> Vec<Target> {
    if !sloppy {
        let (up, down): (Vec<NodeId>, Vec<NodeId>) =
            preference.iter().copied().partition(|&owner| alive(owner));
        return up.into_iter().chain(down).map(Target::owner).collect();
    }
    let mut spare = fallbacks.iter().copied().filter(|&f| alive(f));
    let mut targets = Vec::with_capacity(preference.len());
    for &owner in preference {
        if alive(owner) {
            targets.push(Target::owner(owner));
        } else if let Some(fallback) = spare.next() {
            targets.push(Target {
                node: fallback,
                hint_for: Some(owner),
            });
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn strict_quorum_is_the_preference_list_whatever_is_down() {
        let t = choose_targets(&ids(&[1, 2, 3]), &ids(&[4, 5]), false, |n| n != NodeId(2));
        assert_eq!(
            t,
            ids(&[1, 3, 2])
                .into_iter()
                .map(Target::owner)
                .collect::<Vec<_>>()
        );
        let all_down = choose_targets(&ids(&[1, 2, 3]), &ids(&[4, 5]), false, |_| false);
        assert_eq!(
            all_down,
            ids(&[1, 2, 3])
                .into_iter()
                .map(Target::owner)
                .collect::<Vec<_>>()
        );
    }

    /// A write's updater is its first owner target (when the coordinator is not an owner): a
    /// strict write must not hand the update to an owner believed down while others are up.
    #[test]
    fn strict_quorum_puts_owners_believed_up_first() {
        let t = choose_targets(&ids(&[1, 2, 3]), &ids(&[4]), false, |n| n != NodeId(1));
        assert_eq!(t[0], Target::owner(NodeId(2)));
        assert!(t.iter().all(|t| t.hint_for.is_none()));
    }

    #[test]
    fn sloppy_quorum_replaces_each_down_owner_with_the_next_healthy_fallback() {
        let down = [NodeId(1), NodeId(3), NodeId(4)];
        let t = choose_targets(&ids(&[1, 2, 3]), &ids(&[4, 5, 6]), true, |n| {
            !down.contains(&n)
        });
        assert_eq!(
            t,
            vec![
                Target {
                    node: NodeId(5),
                    hint_for: Some(NodeId(1))
                },
                Target::owner(NodeId(2)),
                Target {
                    node: NodeId(6),
                    hint_for: Some(NodeId(3))
                },
            ]
        );
    }

    #[test]
    fn sloppy_quorum_runs_short_when_fallbacks_run_out() {
        let t = choose_targets(&ids(&[1, 2, 3]), &ids(&[4]), true, |n| n == NodeId(4));
        assert_eq!(
            t,
            vec![Target {
                node: NodeId(4),
                hint_for: Some(NodeId(1))
            }]
        );
    }
}
