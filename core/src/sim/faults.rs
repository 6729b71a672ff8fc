//! The fault schedule of the workload phase.
//!
//! Every 500 to 2,500 ticks one fault starts: a crash (restarted 300 to 3,000 ticks later), a
//! pause, a partition isolating one node (both ways or one way), a split into two halves, or a
//! wall-clock jump. At most one crash and one partition are in place at a time. The last
//! stretch of every run isolates one node while the clients keep writing, so that every run
//! leaves replicas behind for the checking phases to repair.
//!
//! With a [`MembershipPlan`], the spare node starts (and joins) in the first third of the
//! phase, and the leaver (if any) is asked to leave at a random time before the last stretch:
//! both ring changes run under the same faults.

use super::cluster::World;
use crate::tick::Tick;

/// Ticks at the end of the workload during which one node is isolated.
const FINAL_ISOLATION_TICKS: u64 = 6_000;

/// Which nodes join and leave during the workload phase (slot indexes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipPlan {
    /// The spare node, started mid-run.
    pub joiner: usize,
    /// A first-ring member asked to leave, if any.
    pub leaver: Option<usize>,
}

/// Runs the workload phase for `ticks` with faults; returns how many faults were injected.
pub fn run_with_faults(world: &mut World, ticks: u64, changes: Option<MembershipPlan>) -> u64 {
    let nodes = world.slots.len();
    let end = world.now + ticks;
    let final_stretch = Tick(end.0.saturating_sub(FINAL_ISOLATION_TICKS));
    let span = final_stretch.since(world.now).max(1);
    let mut join_at = changes.map(|c| (c.joiner, world.now + world.below(span / 3)));
    let mut leave_at = changes
        .and_then(|c| c.leaver)
        .map(|l| (l, world.now + world.below(span)));
    let mut faults = 0;
    let mut crashed: Option<(usize, Tick)> = None;
    let mut partition_until: Option<Tick> = None;
    while world.now < final_stretch {
        let next = (world.now + 500 + world.below(2_000)).min(final_stretch);
        world.run_until(next);
        if let Some((i, at)) = crashed {
            if world.now >= at {
                world.start_node(i);
                crashed = None;
            }
        }
        if partition_until.is_some_and(|t| world.now >= t) {
            world.network.heal();
            partition_until = None;
        }
        if let Some((i, _)) = join_at.filter(|&(_, at)| world.now >= at) {
            world.start_node(i);
            join_at = None;
        }
        if let Some((i, _)) = leave_at.filter(|&(_, at)| world.now >= at) {
            world.leave(i);
            leave_at = None;
        }
        if world.now >= final_stretch {
            break;
        }
        faults += 1;
        let victim = world.below(nodes as u64) as usize;
        match world.below(6) {
            0 if crashed.is_none() && world.is_up(victim) => {
                world.crash(victim);
                let down = 300 + world.below(2_700);
                crashed = Some((victim, world.now + down));
            }
            1 => {
                let ticks = 200 + world.below(2_000);
                world.pause(victim, ticks);
            }
            2 | 3 if partition_until.is_none() => {
                let one_way = world.below(4) == 0;
                world.network.partition(&[victim], nodes, one_way);
                let lasts = 500 + world.below(3_000);
                partition_until = Some(world.now + lasts);
            }
            4 if partition_until.is_none() => {
                let half: Vec<usize> = (0..nodes).filter(|_| world.below(2) == 0).collect();
                world.network.partition(&half, nodes, false);
                let lasts = 500 + world.below(3_000);
                partition_until = Some(world.now + lasts);
            }
            _ => {
                let jump = world.below(120_000) as i64 - 60_000;
                world.jump_clock(victim, jump);
            }
        }
    }
    if let Some((i, _)) = crashed {
        world.start_node(i);
    }
    if let Some((i, _)) = join_at {
        world.start_node(i);
    }
    if let Some((i, _)) = leave_at {
        world.leave(i);
    }
    world.network.heal();
    let victim = world.below(nodes as u64) as usize;
    world.network.partition(&[victim], nodes, false);
    faults += 1;
    world.run_until(end);
    faults
}
