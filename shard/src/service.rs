//! Executes client requests whose keys this shard owns: validation against the configured
//! limits, then the engine. Routing to the owning shard happens before this (`runtime/`).

use tessera_core::constants::DEFAULT_KEYSPACE;
use tessera_core::{Object, VersionVector};
use tessera_schema::{
    BatchGetRequest, BatchPutRequest, DeleteRequest, Durability, GetRequest, GetResponse,
    PutRequest, Request, Response, WireError, WriteResponse,
};

use crate::constants::ANSWER_VALUE_BYTES_MAX;
use crate::engine::{Engine, Supersedes};
use crate::error::ShardError;

/// Limits and defaults applied to every request.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Largest key.
    pub key_bytes_max: usize,
    /// Largest value.
    pub value_bytes_max: usize,
    /// Whether `Durability::Default` means durable.
    pub durable_by_default: bool,
}

/// A shard's request executor.
#[derive(Debug)]
pub struct Service {
    engine: Engine,
    limits: RequestLimits,
}

impl Service {
    /// Serves requests from `engine` under `limits`.
    pub fn new(engine: Engine, limits: RequestLimits) -> Self {
        Self { engine, limits }
    }

    /// The engine behind the service.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Executes a request whose keys all belong to this shard. Never fails as a whole: errors
    /// become `Response::Error` (or per-item errors in batches).
    pub async fn execute(&self, request: Request) -> Response {
        let result = match request {
            Request::Get(r) => self.get(&r).await.map(Response::Get),
            Request::Put(r) => self.put(r).await.map(Response::Put),
            Request::Delete(r) => self.delete(r).await.map(Response::Delete),
            Request::BatchGet(r) => self.batch_get(&r).await.map(Response::BatchGet),
            Request::BatchPut(r) => self.batch_put(r).await.map(Response::BatchPut),
            Request::Ping(payload) => Ok(Response::Pong(payload)),
            Request::Topology
            | Request::ClusterStatus
            | Request::Leave
            | Request::Remove { .. } => Err(ShardError::BadRequest(
                "topology and cluster requests are answered by the connection's shard, not \
                     forwarded"
                    .into(),
            )),
        };
        result.unwrap_or_else(|e| Response::Error(e.to_wire()))
    }

    /// Reads one key: every live sibling and the causal context.
    pub async fn get(&self, r: &GetRequest) -> Result<GetResponse, ShardError> {
        self.read(&r.keyspace, &r.key, get_response).await
    }

    /// Runs `f` on the stored object of one key, after the checks a get makes, without
    /// copying it.
    pub async fn read<T>(
        &self,
        keyspace: &str,
        key: &[u8],
        f: impl FnOnce(Option<&Object>) -> T,
    ) -> Result<T, ShardError> {
        self.check_keyspace(keyspace)?;
        self.check_key(key)?;
        self.engine.read(keyspace, key, f).await
    }

    /// Like [`Service::read`], but only when the answer needs no disk read (see
    /// [`Engine::read_now`]); the RESP front door answers such a GET in place, writing the
    /// value straight into its reply.
    pub fn read_now<T>(
        &self,
        keyspace: &str,
        key: &[u8],
        f: impl FnOnce(Option<&Object>) -> T,
    ) -> Option<Result<T, ShardError>> {
        if let Err(e) = self
            .check_keyspace(keyspace)
            .and_then(|()| self.check_key(key))
        {
            return Some(Err(e));
        }
        self.engine.read_now(keyspace, key, f)
    }

    /// Writes one value superseding what its context saw (everything, with `overwrite`).
    pub async fn put(&self, r: PutRequest) -> Result<WriteResponse, ShardError> {
        self.check_keyspace(&r.keyspace)?;
        self.check_key(&r.key)?;
        self.check_value(&r.value)?;
        let context = decode_context(&r.context, r.overwrite)?;
        let durable = self.durable(r.durability);
        let clock = self
            .engine
            .write(
                &r.keyspace,
                &r.key,
                supersedes(&context),
                Some(r.value),
                durable,
            )
            .await?;
        Ok(WriteResponse {
            context: clock.to_bytes(),
        })
    }

    /// Writes a tombstone superseding what its context saw (everything, with `overwrite`).
    pub async fn delete(&self, r: DeleteRequest) -> Result<WriteResponse, ShardError> {
        self.check_keyspace(&r.keyspace)?;
        self.check_key(&r.key)?;
        let context = decode_context(&r.context, r.overwrite)?;
        let durable = self.durable(r.durability);
        let clock = self
            .engine
            .write(&r.keyspace, &r.key, supersedes(&context), None, durable)
            .await?;
        Ok(WriteResponse {
            context: clock.to_bytes(),
        })
    }

    /// Reads many keys; each item answers on its own.
    pub async fn batch_get(
        &self,
        r: &BatchGetRequest,
    ) -> Result<Vec<Result<GetResponse, WireError>>, ShardError> {
        self.check_keyspace(&r.keyspace)?;
        // One key at a time: keys answered from memory cost no `.await`, and a batch's disk
        // reads are few next to the shard's other work.
        let mut items: Vec<Result<GetResponse, WireError>> = Vec::with_capacity(r.keys.len());
        for key in &r.keys {
            let item = self.read(&r.keyspace, key, get_response).await;
            items.push(item.map_err(|e| e.to_wire()));
        }
        check_answer_size(answer_value_bytes(&items))?;
        Ok(items)
    }

    /// Writes many keys; all items share one wait for durability.
    pub async fn batch_put(
        &self,
        r: BatchPutRequest,
    ) -> Result<Vec<Result<WriteResponse, WireError>>, ShardError> {
        self.check_keyspace(&r.keyspace)?;
        let durable = self.durable(r.durability);
        let mut results = Vec::with_capacity(r.items.len());
        for item in r.items {
            let outcome = async {
                self.check_key(&item.key)?;
                self.check_value(&item.value)?;
                let context = decode_context(&item.context, r.overwrite)?;
                // Not durable per item: one sync below covers the whole batch.
                self.engine
                    .write(
                        &r.keyspace,
                        &item.key,
                        supersedes(&context),
                        Some(item.value),
                        false,
                    )
                    .await
            }
            .await;
            results.push(outcome);
        }
        if durable && results.iter().any(Result::is_ok) {
            if let Err(e) = self.engine.sync().await {
                let wire = e.to_wire();
                return Ok(results.into_iter().map(|_| Err(wire.clone())).collect());
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.map(|clock| WriteResponse {
                    context: clock.to_bytes(),
                })
                .map_err(|e| e.to_wire())
            })
            .collect())
    }

    /// Whether a request's durability means synced before acknowledged.
    pub fn durable(&self, d: Durability) -> bool {
        match d {
            Durability::Durable => true,
            Durability::Relaxed => false,
            Durability::Default => self.limits.durable_by_default,
        }
    }

    /// Refuses a keyspace this node does not serve.
    pub fn check_keyspace(&self, keyspace: &str) -> Result<(), ShardError> {
        if keyspace == DEFAULT_KEYSPACE {
            Ok(())
        } else {
            Err(ShardError::NoSuchKeyspace(keyspace.into()))
        }
    }

    /// Refuses an empty or oversized key.
    pub fn check_key(&self, key: &[u8]) -> Result<(), ShardError> {
        if key.is_empty() {
            return Err(ShardError::BadRequest("the key is empty".into()));
        }
        if key.len() > self.limits.key_bytes_max {
            return Err(ShardError::TooLarge {
                what: "key",
                len: key.len(),
                max: self.limits.key_bytes_max,
            });
        }
        Ok(())
    }

    /// Refuses an oversized value.
    pub fn check_value(&self, value: &[u8]) -> Result<(), ShardError> {
        if value.len() > self.limits.value_bytes_max {
            return Err(ShardError::TooLarge {
                what: "value",
                len: value.len(),
                max: self.limits.value_bytes_max,
            });
        }
        Ok(())
    }
}

/// A get's answer for a stored object (or none).
pub fn get_response(object: Option<&Object>) -> GetResponse {
    match object {
        Some(o) => GetResponse {
            values: o.live_values().map(<[u8]>::to_vec).collect(),
            context: o.clock().to_bytes(),
        },
        None => GetResponse {
            values: Vec::new(),
            context: Vec::new(),
        },
    }
}

/// Bytes of values in a batch get's answer.
pub fn answer_value_bytes(items: &[Result<GetResponse, WireError>]) -> usize {
    items
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .flat_map(|g| g.values.iter().map(Vec::len))
        .sum()
}

/// Refuses an answer a client could not take in one frame.
pub fn check_answer_size(len: usize) -> Result<(), ShardError> {
    if len > ANSWER_VALUE_BYTES_MAX {
        return Err(ShardError::TooLarge {
            what: "the batch's answer (ask for fewer keys per batch)",
            len,
            max: ANSWER_VALUE_BYTES_MAX,
        });
    }
    Ok(())
}

/// The write's causal context, or `None` for an overwrite, which ignores it (so a stale or
/// garbage context cannot fail a write that does not use it).
fn decode_context(bytes: &[u8], overwrite: bool) -> Result<Option<VersionVector>, ShardError> {
    if overwrite {
        return Ok(None);
    }
    VersionVector::decode(bytes).map(Some).map_err(|e| {
        ShardError::BadRequest(format!(
            "the causal context is not one this store issued ({e}); pass back the context a get returned"
        ))
    })
}

/// What a write with the decoded context supersedes: an overwrite (no context) supersedes
/// everything the engine holds when it applies the write.
fn supersedes(context: &Option<VersionVector>) -> Supersedes<'_> {
    context
        .as_ref()
        .map_or(Supersedes::Everything, Supersedes::Context)
}
