//! Redis Streams: `XADD` to one stream key per benchmark stream, one consumer group per
//! group (`XGROUP CREATE ... 0 MKSTREAM`), `XREADGROUP` with `BLOCK`, `XACK` per poll.
//!
//! Producers pipeline [`PIPELINE`]-sized chunks of `XADD`s and keep up to
//! [`PIPELINES_IN_FLIGHT`] of them outstanding on one multiplexed connection; a reply
//! to an `XADD` is the acknowledgement. Each consumer has its own connection (a blocking
//! `XREADGROUP` holds it).
//!
//! Durability: the machine's Redis runs with its defaults (here: no AOF, no snapshots);
//! the matched mode is a `redis-server` started by the benchmark with `appendonly yes`,
//! `appendfsync always`, which writes and fsyncs the AOF before it sends the replies of
//! an event-loop iteration.

use std::{collections::VecDeque, path::Path, time::Duration};

use redis::{
    AsyncCommands, AsyncConnectionConfig, Client, Value,
    aio::MultiplexedConnection,
    streams::{StreamReadOptions, StreamReadReply},
};
use tokio::{runtime::Runtime, task::JoinHandle};

use crate::{
    BenchError, Result,
    child::{ChildServer, find_program, free_port, version},
    peers::runtime,
    target::{Consumer, Producer, Profile, Target},
};

/// `XADD`s per pipeline.
pub const PIPELINE: usize = 64;
/// Pipelines a producer keeps outstanding.
pub const PIPELINES_IN_FLIGHT: usize = 16;
/// Entries one `XREADGROUP` returns at most.
const READ_COUNT: usize = 1000;
/// Field name of the payload in each entry.
const FIELD: &str = "d";

fn redis_error(op: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::client("redis", op, e)
}

/// Redis on one server, in one durability mode.
pub struct Redis {
    runtime: Runtime,
    client: Client,
    admin: MultiplexedConnection,
    label: String,
    fsync: bool,
    _child: Option<ChildServer>,
}

impl Redis {
    /// Connects to the server at `url`, as configured there.
    pub fn connect(url: &str) -> Result<Self> {
        Self::open(url, None)
    }

    /// Starts `redis-server` (`$HERALD_BENCH_REDIS_SERVER` or on `PATH`) with its AOF in
    /// `dir`, `appendfsync always`, and connects to it.
    pub fn start_fsync_always(dir: &Path) -> Result<Self> {
        let program = find_program("HERALD_BENCH_REDIS_SERVER", "redis-server")
            .ok_or_else(|| redis_error("start", "no redis-server on PATH"))?;
        let port = free_port()?;
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--dir",
            &dir.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let child = ChildServer::start(&program, &args, dir, port)?;
        Self::open(&format!("redis://127.0.0.1:{port}"), Some(child))
    }

    fn open(url: &str, child: Option<ChildServer>) -> Result<Self> {
        let runtime = runtime("redis")?;
        let client = Client::open(url).map_err(|e| redis_error(&format!("open {url}"), e))?;
        let mut admin = runtime
            .block_on(connect(&client))
            .map_err(|e| redis_error(&format!("connect {url}"), e))?;
        let (label, fsync) = runtime.block_on(async {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut admin)
                .await
                .map_err(|e| redis_error("INFO", e))?;
            let version = info
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or("?")
                .trim()
                .to_string();
            let get = |name: &'static str| {
                let mut admin = admin.clone();
                async move {
                    let v: Vec<String> = redis::cmd("CONFIG")
                        .arg("GET")
                        .arg(name)
                        .query_async(&mut admin)
                        .await
                        .map_err(|e| redis_error("CONFIG GET", e))?;
                    Ok::<_, BenchError>(v.get(1).cloned().unwrap_or_default())
                }
            };
            let (aof, fsync, save) = (
                get("appendonly").await?,
                get("appendfsync").await?,
                get("save").await?,
            );
            Ok::<_, BenchError>((
                format!("redis {version}, appendonly {aof}, appendfsync {fsync}, save \"{save}\""),
                aof == "yes" && fsync == "always",
            ))
        })?;
        Ok(Self {
            runtime,
            client,
            admin,
            label,
            fsync,
            _child: child,
        })
    }
}

async fn connect(client: &Client) -> redis::RedisResult<MultiplexedConnection> {
    // No response timeout: an fsync-per-write server may take longer than the default.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

impl Target for Redis {
    fn name(&self) -> String {
        if self.fsync {
            "redis-streams (appendfsync always)".into()
        } else {
            "redis-streams (default)".into()
        }
    }

    fn settings(&self) -> String {
        format!(
            "{}; redis-rs, pipelines of {PIPELINE} XADD, {PIPELINES_IN_FLIGHT} in flight per \
             producer; XREADGROUP COUNT {READ_COUNT} BLOCK, XACK per read",
            self.label
        )
    }

    fn fsync_before_ack(&self) -> bool {
        self.fsync
    }

    fn create_stream(&self, stream: &str, groups: &[String]) -> Result<()> {
        let mut admin = self.admin.clone();
        self.runtime.block_on(async {
            let _: () = admin.del(stream).await.map_err(|e| redis_error("DEL", e))?;
            for group in groups {
                let _: () = admin
                    .xgroup_create_mkstream(stream, group, "0")
                    .await
                    .map_err(|e| redis_error("XGROUP CREATE", e))?;
            }
            Ok(())
        })
    }

    fn delete_stream(&self, stream: &str) -> Result<()> {
        let mut admin = self.admin.clone();
        self.runtime.block_on(async {
            let _: () = admin.del(stream).await.map_err(|e| redis_error("DEL", e))?;
            Ok(())
        })
    }

    fn producer(&self, stream: &str, _profile: Profile) -> Result<Box<dyn Producer>> {
        let connection = self
            .runtime
            .block_on(connect(&self.client))
            .map_err(|e| redis_error("connect", e))?;
        Ok(Box::new(RedisProducer {
            runtime: self.runtime.handle().clone(),
            connection,
            stream: stream.to_string(),
            in_flight: VecDeque::new(),
            acked: 0,
        }))
    }

    fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn Consumer>> {
        let connection = self
            .runtime
            .block_on(connect(&self.client))
            .map_err(|e| redis_error("connect", e))?;
        Ok(Box::new(RedisConsumer {
            runtime: self.runtime.handle().clone(),
            connection,
            stream: stream.to_string(),
            group: group.to_string(),
        }))
    }
}

type Pending = JoinHandle<redis::RedisResult<u64>>;

struct RedisProducer {
    runtime: tokio::runtime::Handle,
    connection: MultiplexedConnection,
    stream: String,
    in_flight: VecDeque<Pending>,
    acked: u64,
}

impl RedisProducer {
    async fn settle_oldest(&mut self) -> Result<()> {
        if let Some(pending) = self.in_flight.pop_front() {
            let n = pending
                .await
                .map_err(|e| redis_error("pipeline task", e))?
                .map_err(|e| redis_error("XADD", e))?;
            self.acked += n;
        }
        Ok(())
    }
}

impl Producer for RedisProducer {
    fn send(&mut self, payloads: &[&[u8]]) -> Result<()> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            for chunk in payloads.chunks(PIPELINE) {
                while self.in_flight.len() >= PIPELINES_IN_FLIGHT {
                    self.settle_oldest().await?;
                }
                let mut pipe = redis::pipe();
                for payload in chunk {
                    pipe.xadd(&self.stream, "*", &[(FIELD, *payload)]).ignore();
                }
                let mut connection = self.connection.clone();
                let n = chunk.len() as u64;
                self.in_flight.push_back(tokio::spawn(async move {
                    pipe.query_async::<()>(&mut connection).await.map(|()| n)
                }));
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> Result<u64> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            while !self.in_flight.is_empty() {
                self.settle_oldest().await?;
            }
            Ok(self.acked)
        })
    }
}

struct RedisConsumer {
    runtime: tokio::runtime::Handle,
    connection: MultiplexedConnection,
    stream: String,
    group: String,
}

impl Consumer for RedisConsumer {
    fn poll(&mut self, max_wait: Duration, on_message: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            // BLOCK 0 would wait forever.
            let block = max_wait.as_millis().max(1) as usize;
            let options = StreamReadOptions::default()
                .group(&self.group, "c")
                .count(READ_COUNT)
                .block(block);
            let reply: Option<StreamReadReply> = self
                .connection
                .xread_options(&[&self.stream], &[">"], &options)
                .await
                .map_err(|e| redis_error("XREADGROUP", e))?;
            let Some(reply) = reply else { return Ok(0) };
            let mut ids = Vec::new();
            for key in &reply.keys {
                for entry in &key.ids {
                    if let Some(Value::BulkString(payload)) = entry.map.get(FIELD) {
                        on_message(payload);
                    }
                    ids.push(entry.id.as_str());
                }
            }
            if !ids.is_empty() {
                let _: u64 = self
                    .connection
                    .xack(&self.stream, &self.group, &ids)
                    .await
                    .map_err(|e| redis_error("XACK", e))?;
            }
            Ok(ids.len())
        })
    }
}

/// The `redis-server` version line, for the report.
pub fn server_version() -> Option<String> {
    version(
        &find_program("HERALD_BENCH_REDIS_SERVER", "redis-server")?,
        "--version",
    )
}
