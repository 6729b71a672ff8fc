//! The RESP commands that touch data, as native requests on the default keyspace, and their
//! answers as RESP replies.
//!
//! Every request goes through [`ShardCtx::execute`], so it reaches the owning shard as a
//! native request entering the main port would. Writes use `overwrite` (Redis's SET replaces
//! the value) and the node's default durability. A key with several concurrent versions is
//! never collapsed to one silently: GET and MGET report it as an error that says how to
//! resolve it.

use std::rc::Rc;

use futures::future::join_all;
use tessera_schema::resp::{
    write_array_header, write_bulk, write_error, write_integer, write_null_bulk, write_simple,
};
use tessera_schema::{
    BatchGetRequest, BatchPutRequest, Consistency, DeleteRequest, Durability, GetResponse, PutItem,
    PutRequest, Request, Response, WireError, BATCH_ITEMS_MAX, DEFAULT_KEYSPACE,
};

use super::command::{Arg, Command};
use crate::constants::ANSWER_VALUE_BYTES_MAX;
use crate::runtime::route::ShardCtx;

/// Answers a GET of a key this shard owns without waiting if the answer is in memory,
/// writing the value straight from the memtable or cached block into `out` (no copy of it in
/// between). False, with nothing written, if the answer needs a disk read.
pub fn get_local(ctx: &ShardCtx, key: &[u8], out: &mut Vec<u8>) -> bool {
    let written = ctx.service.read_now(DEFAULT_KEYSPACE, key, |object| {
        write_value(out, object.into_iter().flat_map(|o| o.live_values()));
    });
    match written {
        None => false,
        Some(Ok(())) => true,
        Some(Err(e)) => {
            write_wire_error(out, &e.to_wire());
            true
        }
    }
}

/// Runs a command that touches data ([`Command::touches_store`]) and appends its reply.
pub async fn run(ctx: &Rc<ShardCtx>, command: Command, out: &mut Vec<u8>) {
    match command {
        Command::Get(key) => get(ctx, key, out).await,
        Command::Set { key, value } => set(ctx, key, value, out).await,
        Command::Del(keys) => del(ctx, keys, out).await,
        Command::Exists(keys) => exists(ctx, keys, out).await,
        Command::MGet(keys) => mget(ctx, keys, out).await,
        Command::MSet(pairs) => mset(ctx, pairs, out).await,
        other => write_error(
            out,
            &format!("ERR internal: {other:?} is not a data command"),
        ),
    }
}

async fn get(ctx: &Rc<ShardCtx>, key: Arg, out: &mut Vec<u8>) {
    let request = Request::Get(tessera_schema::GetRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        key,
        consistency: Consistency::default(),
    });
    match ctx.execute(request).await {
        Response::Get(got) => write_value(out, got.values.iter().map(Vec::as_slice)),
        other => write_unexpected(out, &other),
    }
}

async fn set(ctx: &Rc<ShardCtx>, key: Arg, value: Arg, out: &mut Vec<u8>) {
    let request = Request::Put(PutRequest {
        keyspace: DEFAULT_KEYSPACE.into(),
        key,
        value,
        context: Vec::new(),
        durability: Durability::Default,
        overwrite: true,
        consistency: Consistency::default(),
    });
    match ctx.execute(request).await {
        Response::Put(_) => write_simple(out, b"OK"),
        other => write_unexpected(out, &other),
    }
}

/// Replies with the number of keys that existed and were deleted.
///
/// Not atomic, unlike Redis's DEL: the keys are read first, then each one found is deleted
/// with `overwrite`. A write that lands between the two steps is deleted too if its key was
/// found, and left alone (and not counted) if it was not; the count says what was found.
async fn del(ctx: &Rc<ShardCtx>, mut keys: Vec<Arg>, out: &mut Vec<u8>) {
    // `DEL k k` deletes and counts `k` once, as in Redis.
    keys.sort_unstable();
    keys.dedup();
    let mut found = Vec::with_capacity(keys.len());
    let mut item_error = None;
    let read = read_keys(ctx, keys.clone(), |item| match item {
        Ok(got) => found.push(!got.values.is_empty()),
        Err(e) => {
            found.push(false);
            item_error.get_or_insert(e);
        }
    })
    .await;
    // A key that cannot be read (empty, too long) is refused before anything is deleted.
    if let Some(e) = read.err().or(item_error) {
        return write_wire_error(out, &e);
    }
    let deletes = keys
        .into_iter()
        .zip(found)
        .filter_map(|(key, found)| found.then_some(key))
        .map(|key| {
            ctx.execute(Request::Delete(DeleteRequest {
                keyspace: DEFAULT_KEYSPACE.into(),
                key,
                context: Vec::new(),
                durability: Durability::Default,
                overwrite: true,
                consistency: Consistency::default(),
            }))
        });
    let mut deleted = 0i64;
    for answer in join_all(deletes).await {
        match answer {
            Response::Delete(_) => deleted += 1,
            // Earlier keys may be deleted already; the error says why this one was not.
            other => return write_unexpected(out, &other),
        }
    }
    write_integer(out, deleted);
}

/// Replies with how many of the keys hold a value (a key named twice counts twice, as in
/// Redis).
async fn exists(ctx: &Rc<ShardCtx>, keys: Vec<Arg>, out: &mut Vec<u8>) {
    let mut count = 0i64;
    let mut item_error = None;
    let read = read_keys(ctx, keys, |item| match item {
        Ok(got) => count += i64::from(!got.values.is_empty()),
        Err(e) => {
            item_error.get_or_insert(e);
        }
    })
    .await;
    match read.err().or(item_error) {
        Some(e) => write_wire_error(out, &e),
        None => write_integer(out, count),
    }
}

/// Replies with one element per key: its value, nil, or an error (siblings, a failed read).
async fn mget(ctx: &Rc<ShardCtx>, keys: Vec<Arg>, out: &mut Vec<u8>) {
    let start = out.len();
    write_array_header(out, keys.len());
    let mut value_bytes = 0usize;
    let read = read_keys(ctx, keys, |item| match item {
        Ok(got) => {
            value_bytes += got.values.iter().map(Vec::len).sum::<usize>();
            if value_bytes <= ANSWER_VALUE_BYTES_MAX {
                write_value(out, got.values.iter().map(Vec::as_slice));
            }
        }
        Err(e) => write_wire_error(out, &e),
    })
    .await;
    if value_bytes > ANSWER_VALUE_BYTES_MAX {
        out.truncate(start);
        let text = format!(
            "ERR too large: the values of this MGET exceed {ANSWER_VALUE_BYTES_MAX} bytes; ask for fewer keys"
        );
        return write_error(out, &text);
    }
    if let Err(e) = read {
        out.truncate(start);
        write_wire_error(out, &e);
    }
}

/// Writes every pair with `overwrite`, in batches of at most [`BATCH_ITEMS_MAX`] run at once.
/// Not atomic, unlike Redis's MSET: if some pairs fail, others may be written; the reply is
/// then the first error.
async fn mset(ctx: &Rc<ShardCtx>, args: Vec<Arg>, out: &mut Vec<u8>) {
    let mut batches: Vec<Vec<PutItem>> = Vec::new();
    let mut args = args.into_iter();
    while let (Some(key), Some(value)) = (args.next(), args.next()) {
        if batches.last().is_none_or(|b| b.len() == BATCH_ITEMS_MAX) {
            batches.push(Vec::with_capacity(BATCH_ITEMS_MAX.min(args.len() / 2 + 1)));
        }
        if let Some(batch) = batches.last_mut() {
            batch.push(PutItem {
                key,
                value,
                context: Vec::new(),
            });
        }
    }
    let requests = batches.into_iter().map(|items| {
        ctx.execute(Request::BatchPut(BatchPutRequest {
            keyspace: DEFAULT_KEYSPACE.into(),
            items,
            durability: Durability::Default,
            overwrite: true,
            consistency: Consistency::default(),
        }))
    });
    for answer in join_all(requests).await {
        match answer {
            Response::BatchPut(items) => {
                if let Some(Err(e)) = items.into_iter().find(Result::is_err) {
                    return write_wire_error(out, &e);
                }
            }
            other => return write_unexpected(out, &other),
        }
    }
    write_simple(out, b"OK");
}

/// Reads `keys` in batches of at most [`BATCH_ITEMS_MAX`], one batch after the other (so at
/// most one batch's values are held at once), and hands each key's outcome to `each`, in
/// order. A batch refused as a whole stops the reading with its error.
async fn read_keys(
    ctx: &Rc<ShardCtx>,
    mut keys: Vec<Arg>,
    mut each: impl FnMut(Result<GetResponse, WireError>),
) -> Result<(), WireError> {
    while !keys.is_empty() {
        let rest = keys.split_off(keys.len().min(BATCH_ITEMS_MAX));
        let request = Request::BatchGet(BatchGetRequest {
            keyspace: DEFAULT_KEYSPACE.into(),
            keys,
            consistency: Consistency::default(),
        });
        match ctx.execute(request).await {
            Response::BatchGet(items) => items.into_iter().for_each(&mut each),
            Response::Error(e) => return Err(e),
            other => return Err(unexpected(&other)),
        }
        keys = rest;
    }
    Ok(())
}

/// A key's reply: nil without a live value, the value if there is one, and an error naming
/// the way out if there are several concurrent versions.
fn write_value<'a>(out: &mut Vec<u8>, mut values: impl Iterator<Item = &'a [u8]>) {
    match (values.next(), values.next()) {
        (None, _) => write_null_bulk(out),
        (Some(value), None) => write_bulk(out, value),
        (Some(_), Some(_)) => {
            let versions = 2 + values.count();
            write_error(out, &siblings_error(versions));
        }
    }
}

/// The reply to reading a key with `versions` siblings.
pub fn siblings_error(versions: usize) -> String {
    format!(
        "ERR key has {versions} concurrent versions (siblings); read them with the native \
         client (tessera get KEY) and write the merged value, or SET the key to overwrite"
    )
}

fn write_wire_error(out: &mut Vec<u8>, error: &WireError) {
    write_error(out, &format!("ERR {error}"));
}

/// The reply to an error answer, or to an answer of the wrong kind (a bug).
fn write_unexpected(out: &mut Vec<u8>, response: &Response) {
    write_wire_error(out, &unexpected(response));
}

fn unexpected(response: &Response) -> WireError {
    match response {
        Response::Error(e) => e.clone(),
        _ => WireError::internal("a shard answered with the wrong message"),
    }
}
