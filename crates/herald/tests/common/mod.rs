//! Shared test fixtures: a typed event, transport harnesses, and waiting helpers.
#![allow(dead_code, unreachable_pub)] // why: each test binary uses a different subset

use std::time::Duration;

use herald::{
    EmbeddedTransport, Envelope, Event, MemoryTransport,
    transport::{Transport, embedded::EmbeddedConfig},
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The event every test publishes: step `seq` of entity `key`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub key: String,
    pub seq: u32,
}

impl Event for Step {
    const TYPE: &'static str = "test.step";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}

pub fn step(key: &str, seq: u32) -> Envelope {
    Envelope::from_event(
        "urn:test",
        &Step {
            key: key.to_owned(),
            seq,
        },
    )
    .expect("serializes")
}

/// Receives `n` messages, failing loudly if they do not come within a generous bound.
/// The bound is a hang guard, never a speed assertion.
pub async fn recv_n<T>(rx: &mut mpsc::UnboundedReceiver<T>, n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(v)) => out.push(v),
            Ok(None) => panic!("channel closed after {} of {n} messages", out.len()),
            Err(_) => panic!("timed out after {} of {n} messages", out.len()),
        }
    }
    out
}

/// Opens a transport and "restarts" it: the embedded one is closed and reopened from its
/// directory; the memory one keeps its state, like a broker that outlives its clients.
pub trait Harness: Send + 'static {
    type T: Transport;
    fn transport(&self) -> Self::T;
    fn restart(&mut self) -> impl std::future::Future<Output = ()>;
    /// The name a test uses for its topic or group `base`: `base` itself, unless the
    /// transport is shared with other runs (an external Kafka cluster).
    fn name(&self, base: &str) -> String {
        base.to_owned()
    }
}

pub struct MemoryHarness(MemoryTransport);

impl MemoryHarness {
    pub fn new() -> Self {
        Self(MemoryTransport::new())
    }
}

impl Harness for MemoryHarness {
    type T = MemoryTransport;
    fn transport(&self) -> MemoryTransport {
        self.0.clone()
    }
    async fn restart(&mut self) {}
}

pub struct EmbeddedHarness {
    dir: tempfile::TempDir,
    current: Option<EmbeddedTransport>,
}

impl EmbeddedHarness {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let current = Some(Self::open(dir.path()));
        Self { dir, current }
    }

    fn open(path: &std::path::Path) -> EmbeddedTransport {
        EmbeddedTransport::open_with(path, EmbeddedConfig::default()).expect("open embedded")
    }

    /// Drops the harness's handle, releasing the logs once no clone is left.
    pub fn close(&mut self) {
        self.current = None;
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Harness for EmbeddedHarness {
    type T = EmbeddedTransport;
    fn transport(&self) -> EmbeddedTransport {
        self.current.clone().expect("open")
    }
    /// Every clone of the transport (consumers, routers) must be dropped: the partition
    /// logs stay locked while open. Tasks aborted a moment ago may still be releasing
    /// theirs, so a locked directory is retried for a while.
    async fn restart(&mut self) {
        self.current = None;
        for _ in 0..500 {
            match EmbeddedTransport::open_with(self.dir.path(), EmbeddedConfig::default()) {
                Ok(t) => {
                    self.current = Some(t);
                    return;
                }
                Err(e) if e.to_string().contains("locked") => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
        panic!("the data directory stayed locked");
    }
}
