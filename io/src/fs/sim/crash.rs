//! The crash itself: turning a [`SimFs`]'s live and durable views into one state a power cut
//! could leave, as the crash model in the parent module's doc describes. Only `seed` chooses
//! among the possible states, and every map is walked in order, so a seed always picks the
//! same one.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{apply_write, FileId, PendingOp, SimFs, SimInode, State};

/// The durable content plus a seeded choice of the pending writes and truncates (see the
/// module doc).
fn crashed_content(file: &SimInode, rng: &mut StdRng) -> Vec<u8> {
    let kept: Vec<&PendingOp> = file.pending.iter().filter(|_| rng.gen_bool(0.5)).collect();
    // Only a write can tear; a truncate is one metadata change.
    let torn_len = match kept.last() {
        Some(PendingOp::Write { bytes, .. }) if rng.gen_bool(0.5) => {
            Some(rng.gen_range(0..bytes.len().max(1)))
        }
        _ => None,
    };
    let mut content = file.durable.clone();
    for (i, op) in kept.iter().enumerate() {
        match (op, torn_len) {
            (PendingOp::Write { offset, bytes }, Some(len)) if i + 1 == kept.len() => {
                apply_write(&mut content, *offset, &bytes[..len.min(bytes.len())]);
            }
            _ => op.apply(&mut content),
        }
    }
    content
}

impl SimFs {
    /// A state a power cut now could leave, chosen by `seed`, without cutting the power here:
    /// a test can look at many seeds' outcomes of one run, then carry on with the run. The
    /// returned file system keeps this one's capacity, has no crash armed, and everything in
    /// it is durable.
    pub fn crash_image(&self, seed: u64) -> SimFs {
        let old = self.state.borrow();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut names = old.durable_names.clone();
        for ops in old.pending_dir_ops.values() {
            let kept = rng.gen_range(0..=ops.len());
            for op in &ops[..kept] {
                op.apply(&mut names);
            }
        }
        let ids: BTreeSet<FileId> = names.values().copied().collect();
        let mut files = BTreeMap::new();
        for id in ids {
            let content = old
                .files
                .get(&id)
                .map(|f| crashed_content(f, &mut rng))
                .unwrap_or_default();
            let file = SimInode {
                live: content.clone(),
                durable: content,
                pending: Vec::new(),
            };
            files.insert(id, file);
        }
        let state = State {
            files,
            next_id: old.next_id,
            live_names: names.clone(),
            durable_names: names,
            capacity_bytes: old.capacity_bytes,
            ..State::default()
        };
        SimFs {
            state: Rc::new(RefCell::new(state)),
        }
    }
}
