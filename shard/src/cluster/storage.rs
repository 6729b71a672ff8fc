//! Carries out a cluster node's [`StorageOp`]s on one shard's engine.
//!
//! core's [`Node`](tessera_core::node::Node) asks for storage in its own terms (keys with
//! their tokens, objects, hints); this module maps each op to the engine and answers with the
//! [`StorageResult`] the node expects. Layout in the engine:
//! - data: a cluster [`Key`]'s bytes are the engine's memtable key without its token prefix
//!   (`[keyspace length][keyspace][key]`), so `Key` order is the engine's key order and a
//!   partition is one contiguous range;
//! - hints: keyspace [`HINTS_KEYSPACE`], key = owner (8 bytes, big-endian), token (8 bytes),
//!   the data key's bytes; the object is the hint's;
//! - the ring state: keyspace [`SYSTEM_KEYSPACE`], key [`RING_KEY`], one value holding the
//!   state as a peer frame (`PeerMessage::Ring`), the format nodes already exchange.
//!
//! An empty object (no clock) is an absent key to every reader: a forgotten hint or a purged
//! key ([`StorageOp::Purge`]). A compaction with nothing older below drops it
//! ([`set_absent_key_gc`]); a tombstone with a clock stays until a reap round purges it.
//!
//! Invariant: a key whose token does not match its bytes is refused, so a peer cannot place a
//! pair where no lookup would find it.

use tessera_core::antientropy::{ListingBuilder, ListingRequest, SegmentListing};
use tessera_core::handoff::Hint;
use tessera_core::node::{lww_resolve, Key, PeerMessage, RingState, StorageOp, StorageResult};
use tessera_core::{token_of, NodeId, Object, Token};
use tessera_schema::{decode_peer, Encoder, FRAME_HEADER_BYTES};

use crate::engine::Engine;
use crate::error::ShardError;
use crate::lsm::TombstoneGc;
use crate::memtable::{mem_key, TOKEN_PREFIX_BYTES};

/// Keyspace of hints. Clients cannot name it (its first byte is not printable).
pub const HINTS_KEYSPACE: &str = "\u{1}hints";
/// Keyspace of the node's own records (the ring state). Clients cannot name it.
pub const SYSTEM_KEYSPACE: &str = "\u{1}system";
/// Key of the ring state in [`SYSTEM_KEYSPACE`].
pub const RING_KEY: &[u8] = b"ring";
/// Key of the peers' addresses in [`SYSTEM_KEYSPACE`]: one `host:port` per line.
pub const PEERS_KEY: &[u8] = b"peers";

/// The engine key of a cluster key: (keyspace, key) parsed from its bytes, checked against
/// its token.
pub fn engine_key(key: &Key) -> Result<(&str, &[u8]), ShardError> {
    let (&len, rest) = key
        .bytes
        .split_first()
        .ok_or_else(|| bad("an empty cluster key"))?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err(bad("a cluster key shorter than its keyspace"));
    }
    let (keyspace, user_key) = rest.split_at(len);
    let keyspace =
        std::str::from_utf8(keyspace).map_err(|_| bad("a keyspace name that is not UTF-8"))?;
    if token_of(keyspace, user_key) != key.token {
        return Err(bad("a cluster key whose token does not match its bytes"));
    }
    Ok((keyspace, user_key))
}

/// The cluster key of (keyspace, key): the engine's memtable key split after its token, so
/// the two layouts cannot drift apart.
pub fn cluster_key(keyspace: &str, key: &[u8]) -> Key {
    let mut bytes = mem_key(keyspace, key);
    let rest = bytes.split_off(TOKEN_PREFIX_BYTES);
    Key {
        token: token_of(keyspace, key),
        bytes: rest,
    }
}

fn bad(what: &str) -> ShardError {
    ShardError::BadRequest(format!("peer sent {what}"))
}

fn hint_key(owner: NodeId, key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + key.bytes.len());
    out.extend_from_slice(&owner.0.to_be_bytes());
    out.extend_from_slice(&key.token.0.to_be_bytes());
    out.extend_from_slice(&key.bytes);
    out
}

/// A stored hint from its engine key and object; `None` if the key is not a hint key.
pub fn parse_hint(hint_key: &[u8], object: Object) -> Option<Hint> {
    let (owner, rest) = hint_key.split_first_chunk::<8>()?;
    let (token, key) = rest.split_first_chunk::<8>()?;
    Some(Hint {
        owner: NodeId(u64::from_be_bytes(*owner)),
        token: Token(u64::from_be_bytes(*token)),
        key: key.to_vec(),
        object,
    })
}

/// Runs `op` on `engine`, for node `me`. Never fails as a whole: a refusal or a storage error
/// becomes the [`StorageResult`] that says so.
pub async fn execute(engine: &Engine, me: NodeId, op: StorageOp, durable: bool) -> StorageResult {
    match run(engine, me, op, durable).await {
        Ok(result) => result,
        Err(ShardError::Version(e)) => StorageResult::Refused(e),
        Err(e) => StorageResult::Failed(e.to_string()),
    }
}

async fn run(
    engine: &Engine,
    me: NodeId,
    op: StorageOp,
    durable: bool,
) -> Result<StorageResult, ShardError> {
    Ok(match op {
        StorageOp::Update {
            key,
            context,
            value,
            timestamp_ms,
            dot_floor,
            lww,
        } => {
            let (keyspace, user_key) = engine_key(&key)?;
            let (before, after) = engine
                .modify(keyspace, user_key, durable, |stored| {
                    let mut object = stored.clone();
                    // Above the node's floor: the key's clock may have been reaped.
                    object.update_above(&context, me, dot_floor, timestamp_ms, value)?;
                    let after = if lww { lww_resolve(object) } else { object };
                    Ok((after.clone(), (stored, after)))
                })
                .await?;
            StorageResult::Changed { before, after }
        }
        StorageOp::Merge { key, object, lww } => {
            let (before, after) = merge(engine, &key, &object, lww, durable).await?;
            StorageResult::Changed { before, after }
        }
        StorageOp::Read { key } => StorageResult::Read(read(engine, &key).await?),
        StorageOp::ReadMany { keys } => {
            let mut objects = Vec::with_capacity(keys.len());
            for key in keys {
                let object = read(engine, &key).await?;
                objects.push((key, object));
            }
            StorageResult::Objects(objects)
        }
        StorageOp::ReadRange {
            tokens,
            after,
            max_entries,
            max_bytes,
            ..
        } => {
            let (entries, end) =
                read_range_public(engine, tokens, after, max_entries, max_bytes).await?;
            StorageResult::Range { entries, end }
        }
        StorageOp::MergeMany { entries, lww } => {
            let mut changed = Vec::with_capacity(entries.len());
            // A peer's hints and system records are its own: never merged into this node's.
            for (key, object) in entries.into_iter().filter(|(k, _)| !is_internal(k)) {
                // One sync for the whole chunk, below.
                let (before, after) = merge(engine, &key, &object, lww, false).await?;
                changed.push((key, before, after));
            }
            if durable {
                engine.sync().await?;
            }
            StorageResult::ChangedMany(changed)
        }
        StorageOp::PutHint { owner, key, object } => {
            let hint = hint_key(owner, &key);
            engine
                .modify(HINTS_KEYSPACE, &hint, durable, |_| Ok((object, ())))
                .await?;
            StorageResult::Done
        }
        StorageOp::DeleteHint { owner, key } => {
            let hint = hint_key(owner, &key);
            // An empty object is an absent key to every reader.
            engine
                .modify(HINTS_KEYSPACE, &hint, durable, |_| Ok((Object::new(), ())))
                .await?;
            StorageResult::Done
        }
        StorageOp::SaveRing(state) => {
            let mut frame = Vec::new();
            Encoder::new().encode_peer(me, &PeerMessage::Ring(state), &mut frame);
            engine
                .modify(SYSTEM_KEYSPACE, RING_KEY, durable, |stored| {
                    let mut object = Object::new();
                    object.update(stored.clock(), me, 0, Some(frame))?;
                    Ok((object, ()))
                })
                .await?;
            StorageResult::Done
        }
        StorageOp::List { request, ranges } => {
            StorageResult::Listed(list(engine, &request, ranges).await?)
        }
        StorageOp::Purge { entries } => purge(engine, entries, durable).await?,
    })
}

/// Whether a reap may drop `stored` for `tombstone`: it is exactly the tombstone (a write
/// after the delete, or one the delete never saw, stays; so does an older copy, which the
/// reaper's round makes take the tombstone first).
fn purgeable(tombstone: &Object, stored: &Object) -> bool {
    !stored.is_empty() && stored == tombstone
}

/// [`StorageOp::Purge`]: drops each key whose stored copy is exactly its tombstone, leaving an
/// empty object (an absent key); answers every data key's copy before and after, in order.
///
/// Every key is checked before anything changes, so a bad key refuses the whole purge. A key
/// that does not qualify on a first read is not written; one that qualifies is checked again
/// under the key's turn ([`Engine::modify`]), since a write may land in between. Should
/// storage fail part-way, the answer still names the keys purged so far (the node's Merkle
/// tree must follow them) and stops there: the rest keep their tombstones.
async fn purge(
    engine: &Engine,
    entries: Vec<(Key, Object)>,
    durable: bool,
) -> Result<StorageResult, ShardError> {
    // A peer's hints and system records are its own: never purged here.
    let entries: Vec<(Key, Object)> = entries
        .into_iter()
        .filter(|(k, _)| !is_internal(k))
        .collect();
    for (key, _) in &entries {
        engine_key(key)?;
    }
    let mut changed = Vec::with_capacity(entries.len());
    let mut written = false;
    for (key, tombstone) in entries {
        match purge_one(engine, &key, &tombstone).await {
            Ok((before, after, wrote)) => {
                written |= wrote;
                changed.push((key, before, after));
            }
            Err(e) => {
                tracing::warn!(error = %e, "a purge stopped part-way");
                return Ok(StorageResult::ChangedMany(changed));
            }
        }
    }
    // One sync for the whole purge; a failed one leaves the purges in the log unsynced,
    // which is all a purge needs (one lost in a crash leaves the tombstone).
    if durable && written {
        if let Err(e) = engine.sync().await {
            tracing::warn!(error = %e, "a purge's sync failed");
        }
    }
    Ok(StorageResult::ChangedMany(changed))
}

/// One key of a purge: its copy before and after, and whether it was written.
async fn purge_one(
    engine: &Engine,
    key: &Key,
    tombstone: &Object,
) -> Result<(Object, Object, bool), ShardError> {
    let (keyspace, user_key) = engine_key(key)?;
    // `None`: the copy qualifies (and is not cloned); else the copy, kept as it is.
    let stored = engine
        .read(keyspace, user_key, |o| match o {
            Some(o) if purgeable(tombstone, o) => None,
            Some(o) => Some(o.clone()),
            None => Some(Object::new()),
        })
        .await?;
    if let Some(stored) = stored {
        return Ok((stored.clone(), stored, false));
    }
    let (before, after) = engine
        .modify(keyspace, user_key, false, |stored| {
            if purgeable(tombstone, &stored) {
                Ok((Object::new(), (stored, Object::new())))
            } else {
                // A write landed since the read: keep it (written back unchanged).
                Ok((stored.clone(), (stored.clone(), stored)))
            }
        })
        .await?;
    Ok((before, after, true))
}

/// Sets `engine`'s compaction hook for a cluster node: a compaction with nothing older below
/// drops empty objects (purged keys, forgotten hints), which every reader takes for an absent
/// key anyway; a tombstone with a clock is kept (only a reap round may take it).
pub fn set_absent_key_gc(engine: &Engine) {
    let gc: TombstoneGc = std::rc::Rc::new(Object::is_empty);
    engine.set_tombstone_gc(Some(gc));
}

/// One page of an anti-entropy segment listing: the data keys of `ranges` in `(token, key)`
/// order with their version hashes, as the node's Merkle tree counts them (hints and system
/// records are not data; an empty object is an absent key).
async fn list(
    engine: &Engine,
    request: &ListingRequest,
    ranges: Vec<(u64, u64)>,
) -> Result<SegmentListing, ShardError> {
    let mut builder = ListingBuilder::new(request);
    let after = request.after.as_ref().map(|c| {
        Key {
            token: c.token,
            bytes: c.key.clone(),
        }
        .to_entry_bytes()
    });
    for (first, last) in ranges {
        // A segment is a small slice of a partition: read whole.
        let (entries, _) = engine
            .read_range((first, last), after.as_deref(), usize::MAX, usize::MAX)
            .await?;
        for (key, object) in data_entries(entries) {
            if object.is_empty() {
                continue;
            }
            if !builder.push_object(key.token, &key.bytes, &object) {
                return Ok(builder.finish());
            }
        }
    }
    Ok(builder.finish())
}

/// One page of a partition stream: like [`Engine::read_range`], without the internal keys
/// (hints, system records), which belong to this node only. A page of internal keys alone is
/// skipped, so that the stream's cursor (the last key sent) always advances.
async fn read_range_public(
    engine: &Engine,
    tokens: (u64, u64),
    after: Option<Key>,
    max_entries: usize,
    max_bytes: usize,
) -> Result<(Vec<(Key, Object)>, bool), ShardError> {
    let mut after = after.map(|k| k.to_entry_bytes());
    loop {
        let (page, end) = engine
            .read_range(tokens, after.as_deref(), max_entries, max_bytes)
            .await?;
        after = page.last().map(|(k, _)| k.clone());
        let entries: Vec<(Key, Object)> = data_entries(page).collect();
        if !entries.is_empty() || end || after.is_none() {
            return Ok((entries, end));
        }
    }
}

/// An engine page's entries as cluster keys, without the internal ones (hints and system
/// records belong to this node only: they are neither listed nor streamed).
fn data_entries(page: Vec<(Vec<u8>, Object)>) -> impl Iterator<Item = (Key, Object)> {
    page.into_iter()
        .filter_map(|(mem_key, object)| Some((Key::from_entry_bytes(&mem_key)?, object)))
        .filter(|(key, _)| !is_internal(key))
}

/// Whether a key belongs to a keyspace clients cannot name (hints, system records).
pub fn is_internal(key: &Key) -> bool {
    key.bytes.get(1) == Some(&1)
}

/// Remembers where the cluster's other nodes listen, so that a restarted node can introduce
/// itself to them even without seeds (peers learn a restarted node only from it).
pub async fn save_peers(
    engine: &Engine,
    me: NodeId,
    peers: &[std::net::SocketAddr],
) -> Result<(), ShardError> {
    let text: String = peers.iter().map(|a| format!("{a}\n")).collect();
    engine
        .modify(SYSTEM_KEYSPACE, PEERS_KEY, true, |stored| {
            let mut object = Object::new();
            object.update(stored.clock(), me, 0, Some(text.into_bytes()))?;
            Ok((object, ()))
        })
        .await
}

/// The peers' addresses saved by [`save_peers`]; lines that do not parse are skipped.
pub async fn load_peers(engine: &Engine) -> Result<Vec<std::net::SocketAddr>, ShardError> {
    let text = engine
        .read(SYSTEM_KEYSPACE, PEERS_KEY, |o| {
            o.and_then(|o| o.siblings().first().and_then(|s| s.value.clone()))
        })
        .await?
        .unwrap_or_default();
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect())
}

/// The ring state saved by [`StorageOp::SaveRing`], if any.
pub async fn load_ring(engine: &Engine) -> Result<Option<RingState>, ShardError> {
    let frame = engine
        .read(SYSTEM_KEYSPACE, RING_KEY, |o| {
            o.and_then(|o| o.siblings().first().and_then(|s| s.value.clone()))
        })
        .await?;
    let Some(frame) = frame else { return Ok(None) };
    let body = frame
        .get(FRAME_HEADER_BYTES..)
        .ok_or_else(|| ShardError::Storage("the saved ring state is truncated".into()))?;
    match decode_peer(body) {
        Ok((_, PeerMessage::Ring(state))) => Ok(Some(*state)),
        Ok(_) => Err(ShardError::Storage(
            "the saved ring state is not a ring".into(),
        )),
        Err(e) => Err(ShardError::Storage(format!("the saved ring state: {e}"))),
    }
}

async fn merge(
    engine: &Engine,
    key: &Key,
    object: &Object,
    lww: bool,
    durable: bool,
) -> Result<(Object, Object), ShardError> {
    let (keyspace, user_key) = engine_key(key)?;
    engine
        .modify(keyspace, user_key, durable, |stored| {
            let mut merged = stored.clone();
            merged.merge(object);
            let after = if lww { lww_resolve(merged) } else { merged };
            Ok((after.clone(), (stored, after)))
        })
        .await
}

async fn read(engine: &Engine, key: &Key) -> Result<Object, ShardError> {
    let (keyspace, user_key) = engine_key(key)?;
    engine
        .read(keyspace, user_key, |o| o.cloned().unwrap_or_default())
        .await
}
