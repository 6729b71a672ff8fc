//! Tests of the gossip protocol: [`single`] drives one [`Gossip`] by hand; [`cluster`] runs a
//! tiny in-test cluster that delivers messages between several with seeded delays, jitter, loss
//! and partitions.

use super::*;
use crate::constants::GOSSIP_INTERVAL_TICKS_DEFAULT;
use crate::ids::NodeId;

mod cluster;
mod single;

const INTERVAL: u64 = GOSSIP_INTERVAL_TICKS_DEFAULT;

fn record(id: u64, generation: u64) -> MemberRecord {
    MemberRecord {
        id: NodeId(id),
        addr: format!("10.0.0.{id}:7000"),
        client_addr: String::new(),
        rack: format!("r{}", id % 3),
        dc: "dc1".into(),
        weight: 1,
        status: Status::Up,
        generation,
        heartbeat: 0,
        ring_version: 0,
    }
}
