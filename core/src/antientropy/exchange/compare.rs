//! Comparing one page of the local listing with one page of the peer's.
//!
//! Both pages are in `(token, key)` order and each is complete up to its own last entry (to
//! the end if it claims no more), so both are complete up to the smaller of the two bounds:
//! everything up to it is compared, and the next round starts strictly after it.

use crate::antientropy::message::{SegmentEntry, SegmentListing};
use crate::ids::Token;

/// How far a page is complete: up to its last entry if more follow, else to the end.
/// Ordered so that `min` picks the position both pages are complete up to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Bound {
    At(Token, Vec<u8>),
    End,
}

pub(super) fn page_bound(page: &SegmentListing) -> Bound {
    match page.entries.last() {
        Some(last) if page.more => Bound::At(last.token, last.key.clone()),
        _ => Bound::End,
    }
}

pub(super) struct PageDiff {
    pub(super) push: Vec<(Token, Vec<u8>)>,
    pub(super) pull: Vec<(Token, Vec<u8>)>,
    pub(super) out_of_budget: bool,
}

/// The keys that differ between two sorted pages, up to `bound` inclusive: only local goes to
/// `push`, only remote to `pull`. A key both sides hold in different versions goes one way
/// only: pushed if the local copy weighs more (it likely supersedes the remote one), else
/// pulled. The node that merges a repair sends the merge back when it holds more than it
/// received (see the node's repair handling), so one object crosses the wire where one side
/// is stale, two only where both hold something the other lacks (or the guess was wrong).
/// Stops once `budget` keys are named.
pub(super) fn diff_pages(
    local: &SegmentListing,
    remote: &SegmentListing,
    bound: &Bound,
    budget: usize,
) -> PageDiff {
    let within = |e: &&SegmentEntry| match bound {
        Bound::End => true,
        Bound::At(token, key) => e.position() <= (*token, key.as_slice()),
    };
    let mut ours = local.entries.iter().filter(within).peekable();
    let mut theirs = remote.entries.iter().filter(within).peekable();
    let mut diff = PageDiff {
        push: Vec::new(),
        pull: Vec::new(),
        out_of_budget: false,
    };
    loop {
        let (a, b) = match (ours.peek(), theirs.peek()) {
            (None, None) => break,
            (Some(a), Some(b)) if a.position() == b.position() => {
                let (a, b) = (ours.next(), theirs.next());
                match (a, b) {
                    (Some(x), Some(y)) if x.version == y.version => continue,
                    // The heavier copy likely supersedes the other: its holder sends it.
                    (Some(x), Some(y)) if x.weight > y.weight => (a, None),
                    _ => (None, b),
                }
            }
            (Some(a), Some(b)) if a.position() < b.position() => (ours.next(), None),
            (Some(_), None) => (ours.next(), None),
            _ => (None, theirs.next()),
        };
        // Checked per difference, so equal keys after the budget is spent cost nothing.
        if diff.push.len() + diff.pull.len() >= budget {
            diff.out_of_budget = true;
            break;
        }
        if let Some(a) = a {
            diff.push.push((a.token, a.key.clone()));
        }
        if let Some(b) = b {
            diff.pull.push((b.token, b.key.clone()));
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(entries: &[(u64, &str, u64)], more: bool) -> SegmentListing {
        SegmentListing {
            entries: entries
                .iter()
                .map(|(t, k, v)| SegmentEntry {
                    token: Token(*t),
                    key: k.as_bytes().to_vec(),
                    version: *v,
                    // A later version here supersedes an earlier one.
                    weight: *v,
                })
                .collect(),
            more,
        }
    }

    fn names(found: &[(Token, Vec<u8>)]) -> Vec<Vec<u8>> {
        found.iter().map(|(_, k)| k.clone()).collect()
    }

    fn keys(ks: &[&str]) -> Vec<Vec<u8>> {
        ks.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    #[test]
    fn compares_only_up_to_the_shorter_page() {
        let local = page(&[(1, "a", 1), (2, "b", 1), (5, "e", 1)], true);
        let remote = page(&[(1, "a", 2), (3, "c", 1), (4, "d", 1), (6, "f", 1)], false);
        let bound = page_bound(&local).min(page_bound(&remote));
        assert_eq!(bound, Bound::At(Token(5), b"e".to_vec()));
        let diff = diff_pages(&local, &remote, &bound, usize::MAX);
        // "f" lies past the bound: the next round compares it against the next local page.
        // "a" differs: only pulled (the puller sends its merge back if it holds more).
        assert_eq!(names(&diff.push), keys(&["b", "e"]));
        assert_eq!(names(&diff.pull), keys(&["a", "c", "d"]));
        assert!(!diff.out_of_budget);
    }

    #[test]
    fn equal_pages_differ_nowhere_and_the_budget_cuts_short() {
        let same = page(&[(1, "a", 1), (2, "b", 1)], false);
        let diff = diff_pages(&same, &same.clone(), &Bound::End, 0);
        assert!(diff.push.is_empty() && diff.pull.is_empty() && !diff.out_of_budget);
        let remote = page(&[(1, "a", 2), (2, "b", 2)], false);
        let diff = diff_pages(&same, &remote, &Bound::End, 1);
        assert_eq!((diff.push.len(), diff.pull.len()), (0, 1));
        assert!(diff.out_of_budget);
    }
}
