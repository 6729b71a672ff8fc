//! Scenarios run on the simulated network: property tests over seeds, loss and sizes, vanished
//! peers, several nodes under the concurrency bound, determinism.

use proptest::prelude::*;

use super::*;

/// Copies one partition of `size` entries from node 0 to node 1 and returns the simulation.
fn copy_one(seed: u64, size: usize, loss: f64, dup: f64, retries_max: u32) -> Sim {
    let mut sim = Sim::new(seed, 2, small_config(retries_max), loss, dup);
    let p = PartitionId(5);
    sim.fill(0, 1, p, size);
    sim.fill(0, 1, PartitionId(6), 3); // a neighbour that must not travel
    sim.snapshot();
    sim.start(0, 1, p);
    let limit = 200_000;
    while !sim.idle() && sim.now.0 < limit {
        sim.tick();
    }
    assert!(sim.idle(), "transfer still running after {limit} ticks");
    let untouched: Store = sim.initial[1]
        .iter()
        .filter(|((p, _), _)| *p == PartitionId(6))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        sim.partition_of(1, PartitionId(6)),
        untouched,
        "another partition was copied"
    );
    sim
}

fn size_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), Just(1), 2..4usize, 20..120usize]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With enough retries the copy always completes, and the receiver then holds exactly its
    /// own data merged with the sender's, whatever is lost, duplicated or reordered.
    #[test]
    fn copy_completes_with_exact_data(seed in any::<u64>(), size in size_strategy(), loss in 0.0..0.3f64, dup in 0.0..0.3f64) {
        let sim = copy_one(seed, size, loss, dup, 30);
        let outcomes = sim.send_outcomes();
        prop_assert_eq!(outcomes.len(), 1);
        prop_assert!(matches!(outcomes[0].1, TransfersAction::SendCompleted { .. }), "{:?}", outcomes);
        prop_assert_eq!(sim.partition_of(1, PartitionId(5)), sim.expected(0, 1, PartitionId(5)));
        prop_assert_eq!(sim.nodes[1].transfers.totals().received_completed, 1);
    }

    /// Under heavy loss with few retries a copy may fail, but it always ends, a completion is
    /// exact, and a failure leaves each key either untouched or fully merged.
    #[test]
    fn lossy_copy_ends_and_partial_data_is_consistent(seed in any::<u64>(), size in size_strategy(), loss in 0.2..0.7f64) {
        let sim = copy_one(seed, size, loss, 0.1, 2);
        let outcomes = sim.send_outcomes();
        prop_assert_eq!(outcomes.len(), 1);
        let want = sim.expected(0, 1, PartitionId(5));
        let initial = &sim.initial[1];
        for (key, have) in sim.partition_of(1, PartitionId(5)) {
            prop_assert!(initial.get(&key) == Some(&have) || want.get(&key) == Some(&have), "{:?} half merged", key);
        }
        if matches!(outcomes[0].1, TransfersAction::SendCompleted { .. }) {
            prop_assert_eq!(sim.partition_of(1, PartitionId(5)), want);
        }
    }
}

#[test]
fn vanished_receiver_fails_within_bound() {
    let config = small_config(4);
    for seed in 0..40 {
        let mut sim = Sim::new(seed, 2, config, 0.05, 0.05);
        sim.fill(0, 1, PartitionId(1), 60);
        sim.snapshot();
        let vanish_at = sim.below(300);
        sim.start(0, 1, PartitionId(1));
        while sim.send_outcomes().is_empty() && sim.now.0 < 100_000 {
            if sim.now.0 == vanish_at {
                sim.nodes[1].alive = false;
            }
            sim.tick();
        }
        let outcomes = sim.send_outcomes();
        let (at, outcome) = outcomes[0];
        if !sim.nodes[1].alive {
            assert!(
                matches!(
                    outcome,
                    TransfersAction::SendFailed {
                        reason: AbortReason::TimedOut,
                        ..
                    }
                ),
                "seed {seed}: {outcome:?}"
            );
            // The last chunk can be sent a network and a read delay after the vanishing.
            let bound =
                vanish_at + NET_DELAY_MAX + IO_DELAY_MAX + config.give_up_ticks() + TICK_EVERY;
            assert!(at.0 <= bound, "seed {seed}: failed at {at}, bound {bound}");
        }
    }
}

#[test]
fn vanished_sender_is_dropped_by_the_receiver() {
    let config = small_config(4);
    let mut sim = Sim::new(3, 2, config, 0.0, 0.0);
    sim.fill(0, 1, PartitionId(1), 60);
    sim.snapshot();
    sim.start(0, 1, PartitionId(1));
    while sim.nodes[1].transfers.incoming_running() == 0 {
        sim.tick();
    }
    sim.nodes[0].alive = false;
    let died = sim.now;
    while sim.nodes[1].transfers.incoming_running() > 0 {
        sim.tick();
        assert!(sim.now.0 <= died.0 + config.receiver_idle_ticks() + TICK_EVERY + NET_DELAY_MAX);
    }
    assert!(matches!(
        sim.ends.last(),
        Some((
            1,
            _,
            TransfersAction::ReceiveFailed {
                reason: AbortReason::TimedOut,
                ..
            }
        ))
    ));
}

/// Several nodes copying many partitions: the bound holds at every step (checked in
/// `handle`), busy receivers refuse, the test restarts failures as the node code would, and
/// every partition ends exact on its receiver.
#[test]
fn manager_bounds_and_restarts() {
    for seed in 0..8 {
        let mut sim = Sim::new(seed, 3, small_config(6), 0.05, 0.05);
        let mut plan = vec![];
        for p in 0..24u32 {
            let (from, to) = if p < 16 {
                (0, 1 + p as usize % 2)
            } else {
                (1, 2)
            };
            let size = sim.below(30) as usize;
            sim.fill(from, to, PartitionId(p), size);
            plan.push((from, to, PartitionId(p)));
        }
        sim.snapshot();
        for &(from, to, p) in &plan {
            sim.start(from, to, p);
        }
        assert_eq!(
            sim.nodes[0].transfers.outgoing_running(),
            TRANSFERS_CONCURRENT_MAX
        );
        assert_eq!(
            sim.nodes[0].transfers.outgoing_queued(),
            16 - TRANSFERS_CONCURRENT_MAX
        );
        let (mut seen, mut busy) = (0, 0);
        let mut done = std::collections::BTreeSet::new();
        while done.len() < plan.len() {
            assert!(sim.now.0 < 500_000, "seed {seed}: stuck");
            sim.tick();
            let new: Vec<_> = sim.ends[seen..]
                .iter()
                .map(|(n, _, a)| (*n, a.clone()))
                .collect();
            seen = sim.ends.len();
            for (node, action) in new {
                match action {
                    TransfersAction::SendCompleted { partition, .. } => {
                        done.insert(partition);
                    }
                    TransfersAction::SendFailed {
                        partition,
                        to,
                        reason,
                        ..
                    } => {
                        busy += usize::from(reason == AbortReason::ReceiverBusy);
                        sim.start(node, to.0 as usize, partition);
                    }
                    _ => {}
                }
            }
        }
        assert!(
            busy > 0,
            "seed {seed}: node 2 had 8 senders and never refused one"
        );
        for &(from, to, p) in &plan {
            assert_eq!(sim.partition_of(to, p), sim.expected(from, to, p));
        }
    }
}

#[test]
fn same_seed_same_run() {
    let a = copy_one(11, 80, 0.2, 0.2, 30);
    let b = copy_one(11, 80, 0.2, 0.2, 30);
    assert_eq!((a.now, a.wire_bytes), (b.now, b.wire_bytes));
    let c = copy_one(12, 80, 0.2, 0.2, 30);
    assert_ne!((a.now, a.wire_bytes), (c.now, c.wire_bytes));
}

/// Figures, not a check: `cargo test -p tessera-core --lib transfer::sim::report -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn report_overhead() {
    for loss in [0.0, 0.1, 0.3] {
        let (mut ticks, mut wire, mut payload) = (0, 0, 0);
        for seed in 0..20 {
            let sim = copy_one(seed, 100, loss, 0.05, 30);
            ticks += sim.now.0;
            wire += sim.wire_bytes;
            payload += sim.nodes[0]
                .store
                .iter()
                .filter(|((p, _), _)| *p == PartitionId(5))
                .map(|(k, v)| entry_wire_bytes(&(k.1.clone(), v.clone())) as u64)
                .sum::<u64>();
        }
        println!(
            "loss {loss:.1}: 100 entries in {} ticks on average, wire bytes / payload bytes {:.2}",
            ticks / 20,
            wire as f64 / payload as f64
        );
    }
}
