//! herald-log direct: herald-log driven straight from this process, no broker and no
//! network (one log per stream, real Kafka v2 batches, consumers woken by the log's
//! high-watermark listener). A bench-only client over the log, not the SDK's
//! `EmbeddedTransport` (no envelope, no inbox, no router); earlier reports called it
//! `herald-embedded`.
//!
//! A producer batches like a Kafka client: [`Profile::Throughput`] collects messages
//! until a batch holds [`BATCH_BYTES`] (or the producer is flushed),
//! [`Profile::Latency`] appends what each [`Producer::send`] call brings at once. It
//! keeps up to [`APPENDS_IN_FLIGHT`] appends outstanding (`Log::append_deferred`), the
//! way the broker pipelines produce requests; an append is acknowledged once the log's
//! durability policy is met. A consumer reads from its group's position and
//! "commits" by advancing it (in memory: this measures the log, not an offsets file).

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, RwLock},
    time::{Duration, Instant},
};

use herald_format::{
    batch::BatchHeader,
    records::{BatchBuilder, Compression, decode_batch},
};
use herald_log::{Durability, Log, PendingAppend};

use crate::{
    BenchError, Result,
    target::{Consumer, Producer, Profile, Target},
    workload::log_config,
};

/// Appends a producer keeps outstanding.
pub const APPENDS_IN_FLIGHT: usize = 8;
/// Value bytes per batch at most (librdkafka's `batch.size` in the Kafka target; under
/// the log's 1 MiB batch limit with room for the record framing).
pub const BATCH_BYTES: usize = 900 << 10;
/// Bytes one consumer read asks for.
const READ_BYTES: usize = 1 << 20;

/// The high watermark of one log, and a condition variable to wait for it to move.
#[derive(Default)]
struct Watermark {
    value: Mutex<u64>,
    moved: Condvar,
}

struct Stream {
    log: Log,
    watermark: Arc<Watermark>,
    groups: Mutex<HashMap<String, u64>>,
}

/// herald-log in process, in one durability mode.
pub struct LogDirect {
    dir: PathBuf,
    durability: (&'static str, Durability),
    streams: RwLock<HashMap<String, Arc<Stream>>>,
}

impl LogDirect {
    /// Logs under `dir` (which it owns), with `durability`.
    pub fn new(dir: &Path, durability: (&'static str, Durability)) -> Self {
        Self {
            dir: dir.to_path_buf(),
            durability,
            streams: RwLock::new(HashMap::new()),
        }
    }

    fn stream(&self, name: &str) -> Result<Arc<Stream>> {
        self.streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| {
                BenchError::client("herald-log-direct", "open", format!("no stream {name}"))
            })
    }
}

impl Target for LogDirect {
    fn name(&self) -> String {
        format!(
            "herald-log-direct ({})",
            self.durability.0.replace('_', " ")
        )
    }

    fn settings(&self) -> String {
        format!(
            "herald-log in process, {}, one log per stream, 256 MiB segments; batches up to \
             {} KiB (throughput) or one per send (latency), {APPENDS_IN_FLIGHT} appends in \
             flight per producer; consumers woken by the high-watermark listener, positions \
             in memory",
            self.durability.0,
            BATCH_BYTES >> 10,
        )
    }

    fn fsync_before_ack(&self) -> bool {
        !matches!(self.durability.1, Durability::Never)
    }

    fn create_stream(&self, stream: &str, groups: &[String]) -> Result<()> {
        self.delete_stream(stream)?;
        let dir = self.dir.join(stream);
        let log = Log::open(&dir, log_config(self.durability.1))?;
        let watermark = Arc::new(Watermark::default());
        let w = watermark.clone();
        log.set_high_watermark_listener(move |hw| {
            *w.value.lock().unwrap_or_else(|p| p.into_inner()) = hw;
            w.moved.notify_all();
        });
        let groups = groups.iter().map(|g| (g.clone(), 0)).collect();
        self.streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                stream.to_string(),
                Arc::new(Stream {
                    log,
                    watermark,
                    groups: Mutex::new(groups),
                }),
            );
        Ok(())
    }

    fn delete_stream(&self, stream: &str) -> Result<()> {
        let removed = self
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(stream);
        let dir = self.dir.join(stream);
        if let Some(s) = removed {
            match Arc::try_unwrap(s) {
                Ok(s) => s.log.destroy()?,
                // A producer or consumer still holds it: its files go with the last one.
                Err(_) => return Ok(()),
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| BenchError::io("remove", &dir, e))?;
        }
        Ok(())
    }

    fn producer(&self, stream: &str, profile: Profile) -> Result<Box<dyn Producer>> {
        Ok(Box::new(LogDirectProducer {
            stream: self.stream(stream)?,
            linger: profile == Profile::Throughput,
            builder: BatchBuilder::new(Compression::None),
            pending_bytes: 0,
            in_flight: VecDeque::new(),
            acked: 0,
        }))
    }

    fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn Consumer>> {
        let s = self.stream(stream)?;
        let position = *s
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .ok_or_else(|| {
                BenchError::client("herald-log-direct", "consume", format!("no group {group}"))
            })?;
        Ok(Box::new(LogDirectConsumer {
            stream: s,
            group: group.to_string(),
            position,
        }))
    }
}

struct LogDirectProducer {
    stream: Arc<Stream>,
    /// Whether to collect messages until a batch is full.
    linger: bool,
    builder: BatchBuilder,
    pending_bytes: usize,
    in_flight: VecDeque<(PendingAppend, u64)>,
    acked: u64,
}

impl LogDirectProducer {
    fn settle_oldest(&mut self) -> Result<()> {
        if let Some((pending, records)) = self.in_flight.pop_front() {
            pending.wait()?;
            self.acked += records;
        }
        Ok(())
    }

    /// Appends the batch collected so far, if any.
    fn append_batch(&mut self) -> Result<()> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let records = self.builder.len() as u64;
        let mut batch = self
            .builder
            .build()
            .map_err(|e| BenchError::client("herald-log-direct", "build batch", e))?;
        self.builder = BatchBuilder::new(Compression::None);
        self.pending_bytes = 0;
        while self.in_flight.len() >= APPENDS_IN_FLIGHT {
            self.settle_oldest()?;
        }
        let pending = self.stream.log.append_deferred(&mut batch)?;
        self.in_flight.push_back((pending, records));
        Ok(())
    }
}

impl Producer for LogDirectProducer {
    fn send(&mut self, payloads: &[&[u8]]) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for payload in payloads {
            if self.pending_bytes + payload.len() > BATCH_BYTES {
                self.append_batch()?;
            }
            self.builder.push(now, None, Some(payload), &[]);
            self.pending_bytes += payload.len();
        }
        if !self.linger {
            self.append_batch()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<u64> {
        self.append_batch()?;
        while !self.in_flight.is_empty() {
            self.settle_oldest()?;
        }
        Ok(self.acked)
    }
}

struct LogDirectConsumer {
    stream: Arc<Stream>,
    group: String,
    position: u64,
}

impl Consumer for LogDirectConsumer {
    fn poll(&mut self, max_wait: Duration, on_message: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let deadline = Instant::now() + max_wait;
        {
            let w = &self.stream.watermark;
            let mut hw = w.value.lock().unwrap_or_else(|p| p.into_inner());
            *hw = (*hw).max(self.stream.log.high_watermark());
            while *hw <= self.position {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(0);
                }
                hw = w
                    .moved
                    .wait_timeout(hw, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let read = self.stream.log.read(self.position, READ_BYTES)?;
        let mut rest = read.bytes.as_slice();
        let mut n = 0;
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest)
                .map_err(|e| BenchError::client("herald-log-direct", "read", e))?;
            let (batch, tail) = rest.split_at(header.total_len());
            rest = tail;
            let decoded = decode_batch(batch)
                .map_err(|e| BenchError::client("herald-log-direct", "decode", e))?;
            for record in decoded.records {
                if (record.offset as u64) < self.position {
                    continue;
                }
                on_message(record.value.as_deref().unwrap_or_default());
                n += 1;
            }
            self.position = header.last_offset() as u64 + 1;
        }
        self.stream
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.group.clone(), self.position);
        Ok(n)
    }
}
