//! [`Replication`]: how many replicas a partition has, in total or per datacenter.

use crate::constants::{LOCATION_NAME_BYTES_MAX, REPLICATION_N_MAX};
use crate::error::CoreError;

/// How many replicas each partition has: `n` anywhere (datacenters ignored), or a count per
/// named datacenter like Cassandra's NetworkTopologyStrategy.
///
/// Invariant: the total is in `1..=REPLICATION_N_MAX`; per-datacenter entries are sorted by
/// name with no name twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replication {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Uniform(usize),
    PerDc(Vec<(String, usize)>),
}

impl Replication {
    /// `n` replicas on distinct nodes, wherever they are. `n` is clamped to
    /// `1..=REPLICATION_N_MAX` (zero replicas would store nothing).
    pub fn uniform(n: usize) -> Replication {
        Replication {
            kind: Kind::Uniform(n.clamp(1, REPLICATION_N_MAX)),
        }
    }

    /// `n` replicas in each named datacenter. A datacenter with no members gets none; a
    /// member in an unnamed datacenter holds replicas only as a fallback.
    ///
    /// Errors: [`CoreError::InvalidReplication`] if the total is 0 or above
    /// `REPLICATION_N_MAX`, a datacenter is named twice, more than `REPLICATION_N_MAX`
    /// datacenters are named, or a name is longer than `LOCATION_NAME_BYTES_MAX`.
    pub fn per_dc(n: Vec<(String, usize)>) -> Result<Replication, CoreError> {
        let bad = |detail: String| Err(CoreError::InvalidReplication { detail });
        if n.len() > REPLICATION_N_MAX {
            return bad(format!(
                "{} datacenters named; the limit is {REPLICATION_N_MAX}",
                n.len()
            ));
        }
        let mut n = n;
        n.sort();
        let mut total = 0usize;
        for (i, (dc, count)) in n.iter().enumerate() {
            if dc.len() > LOCATION_NAME_BYTES_MAX {
                return bad(format!(
                    "datacenter name of {} bytes is longer than {LOCATION_NAME_BYTES_MAX}",
                    dc.len()
                ));
            }
            if i > 0 && n[i - 1].0 == *dc {
                return bad(format!("datacenter {dc:?} is named twice"));
            }
            total = total.saturating_add(*count);
        }
        if total == 0 || total > REPLICATION_N_MAX {
            return bad(format!(
                "{total} replicas in all; choose between 1 and {REPLICATION_N_MAX}"
            ));
        }
        Ok(Replication {
            kind: Kind::PerDc(n),
        })
    }

    /// Replicas per partition, all datacenters together.
    pub fn total(&self) -> usize {
        match &self.kind {
            Kind::Uniform(n) => *n,
            Kind::PerDc(n) => n.iter().map(|(_, c)| c).sum(),
        }
    }

    /// The per-datacenter counts, sorted by name; `None` for uniform replication.
    pub fn per_dc_counts(&self) -> Option<&[(String, usize)]> {
        match &self.kind {
            Kind::Uniform(_) => None,
            Kind::PerDc(n) => Some(n),
        }
    }

    /// Replicas wanted in datacenter `dc`; `None` for uniform replication.
    pub(super) fn in_dc(&self, dc: &str) -> Option<usize> {
        match &self.kind {
            Kind::Uniform(_) => None,
            Kind::PerDc(n) => Some(
                n.binary_search_by(|(name, _)| name.as_str().cmp(dc))
                    .map_or(0, |i| n[i].1),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_clamps() {
        assert_eq!(Replication::uniform(3).total(), 3);
        assert_eq!(Replication::uniform(0).total(), 1);
        assert_eq!(Replication::uniform(usize::MAX).total(), REPLICATION_N_MAX);
        assert_eq!(Replication::uniform(3).in_dc("x"), None);
    }

    #[test]
    fn per_dc_validates_and_sorts() {
        let r = Replication::per_dc(vec![("west".into(), 2), ("east".into(), 3)]).unwrap();
        assert_eq!(r.total(), 5);
        assert_eq!(
            r.per_dc_counts().unwrap(),
            &[("east".to_string(), 3), ("west".to_string(), 2)]
        );
        assert_eq!(r.in_dc("west"), Some(2));
        assert_eq!(r.in_dc("north"), Some(0));

        for bad in [
            vec![],
            vec![("a".to_string(), 0)],
            vec![("a".to_string(), 1), ("a".to_string(), 2)],
            vec![("a".to_string(), REPLICATION_N_MAX + 1)],
            vec![("a".to_string(), usize::MAX), ("b".to_string(), usize::MAX)],
            vec![("x".repeat(LOCATION_NAME_BYTES_MAX + 1), 1)],
        ] {
            assert!(
                matches!(
                    Replication::per_dc(bad.clone()),
                    Err(CoreError::InvalidReplication { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }
}
