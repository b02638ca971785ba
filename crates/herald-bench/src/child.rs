//! Peer servers started by the benchmark itself, for the modes the machine's own servers
//! are not configured for (Redis with `appendfsync always`, NATS with JetStream's
//! `sync_interval: always`): on a free loopback port, with their data in the scratch
//! directory, stopped (by their own process handle) when dropped.

use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{BenchError, Result};

/// How long a started server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A server process started by the benchmark.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

/// A loopback port that was free a moment ago. Servers that cannot bind port 0 and
/// report the port get this one; another process could take it in between, in which
/// case the server fails to start and says so.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::io("bind a probe port", "127.0.0.1:0", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| BenchError::io("bind a probe port", "127.0.0.1:0", e))?
        .port();
    Ok(port)
}

impl ChildServer {
    /// Runs `program args` with its working directory `dir` (created), its output in
    /// `dir/server.log`, and waits until `port` accepts connections.
    pub fn start(program: &Path, args: &[String], dir: &Path, port: u16) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| BenchError::io("create server dir", dir, e))?;
        let log = dir.join("server.log");
        let out = fs::File::create(&log).map_err(|e| BenchError::io("create", &log, e))?;
        let err = out
            .try_clone()
            .map_err(|e| BenchError::io("create", &log, e))?;
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| BenchError::io("start", program, e))?;
        let mut server = Self {
            child,
            port,
            dir: dir.to_path_buf(),
            log,
        };
        server.wait_ready(program)?;
        Ok(server)
    }

    fn wait_ready(&mut self, program: &Path) -> Result<()> {
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let output = fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = output.lines().rev().take(5).collect();
                return Err(BenchError::client(
                    program.display().to_string(),
                    "start",
                    format!("exited with {status}: {}", tail.join(" | ")),
                ));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(BenchError::Timeout {
                    what: format!("{} to accept connections", program.display()),
                    after: START_TIMEOUT,
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name` on `PATH`, or the path in the environment variable `var` if set.
pub fn find_program(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The first line of `program --version` (e.g. `nats-server: v2.15.1`).
pub fn version(program: &Path, flag: &str) -> Option<String> {
    let out = Command::new(program).arg(flag).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().next().map(|l| l.trim().to_string())
}
