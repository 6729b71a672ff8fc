//! What the driver and an exchange hand each other: the inputs, the actions, the tunables, and
//! the outcome (stats or the reason for failing).

use crate::constants::{AE_REPAIR_KEYS_PER_EXCHANGE_MAX_DEFAULT, AE_REPLY_TIMEOUT_TICKS_DEFAULT};

use crate::antientropy::message::{AeMessage, ListingRequest, RefuseReason, SegmentListing};
use crate::antientropy::tree::TreeShape;
use crate::ids::Token;

#[cfg(doc)]
use super::Exchange;

/// Tunables of one exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeConfig {
    /// Ticks to wait for each reply before failing with [`ExchangeFailure::Timeout`].
    pub reply_timeout_ticks: u64,
    /// Keys (pushed plus pulled) after which the exchange stops, incomplete.
    pub repair_keys_max: usize,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            reply_timeout_ticks: AE_REPLY_TIMEOUT_TICKS_DEFAULT,
            repair_keys_max: AE_REPAIR_KEYS_PER_EXCHANGE_MAX_DEFAULT,
        }
    }
}

/// What the driver feeds an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExchangeInput {
    /// A message from the exchange's peer.
    Message(AeMessage),
    /// The local listing asked for by the last [`ExchangeAction::ListLocalSegments`].
    LocalSegments(SegmentListing),
    /// A timer firing; the driver fires it at or after [`Exchange::deadline`].
    Timeout,
}

/// What an exchange asks of its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExchangeAction {
    /// Send to the exchange's peer.
    Send(AeMessage),
    /// List these keys from local storage and feed them back as
    /// [`ExchangeInput::LocalSegments`].
    ListLocalSegments(ListingRequest),
    /// Send the local objects of `push` to the peer and fetch the peer's objects of `pull`;
    /// each side merges what it receives with `Object::merge`.
    Repair {
        /// Keys to send.
        push: Vec<(Token, Vec<u8>)>,
        /// Keys to fetch.
        pull: Vec<(Token, Vec<u8>)>,
    },
    /// The exchange finished; no more actions follow.
    Done(ExchangeStats),
    /// The exchange gave up; no more actions follow. [`Exchange::stats`] says how far it got.
    Failed(ExchangeFailure),
}

/// Why an exchange gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeFailure {
    /// The peer did not reply in time: it is down, partitioned or overloaded.
    Timeout,
    /// The peer refused.
    Refused(RefuseReason),
    /// The peer's tree has another shape; the cluster's configuration disagrees.
    ShapeMismatch {
        /// The local shape.
        local: TreeShape,
        /// The peer's.
        remote: TreeShape,
    },
    /// The peer's reply broke the protocol.
    BadReply(&'static str),
    /// The driver's local listing broke its contract (a driver bug).
    BadLocalListing(&'static str),
    /// The driver passed the tree of another partition (a driver bug).
    WrongTree,
}

/// What an exchange cost and found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeStats {
    /// Messages sent to the peer.
    pub messages_sent: u64,
    /// Messages accepted from the peer.
    pub messages_received: u64,
    /// [`AeMessage::wire_bytes`] of the messages sent.
    pub bytes_sent: u64,
    /// [`AeMessage::wire_bytes`] of the messages accepted.
    pub bytes_received: u64,
    /// Keys named in `push` of the repairs.
    pub keys_pushed: u64,
    /// Keys named in `pull` of the repairs.
    pub keys_pulled: u64,
    /// Differing segments whose listings were compared.
    pub segments_compared: u64,
    /// False if the exchange stopped at its repair budget before comparing every segment.
    pub complete: bool,
}
