//! `herald serve` as the tests start it: a clean environment, every listener on a free
//! port of 127.0.0.1, and the bound addresses read from its ready line
//! (`herald ready kafka=… http=… registry=…`).

use std::{ffi::OsStr, path::Path, process::Command};

use crate::process::ReadyProcess;

/// The flags that put `herald serve`'s Kafka, HTTP and registry listeners on port 0 of
/// 127.0.0.1.
pub const PORT_0: [&str; 6] = [
    "--kafka-listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
    "--registry-listen",
    "127.0.0.1:0",
];

/// How `herald serve`'s ready line starts; the words after it are `name=address`.
pub const READY_PREFIX: &str = "herald ready ";

/// A command for the herald binary at `bin` with every `HERALD_*` variable of this
/// process's environment removed, so that neither a developer's shell nor
/// `scripts/test-env.sh` configures the binary under test. Variables the test sets on the
/// command afterwards apply.
pub fn herald_command(bin: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(bin);
    for (var, _) in std::env::vars_os() {
        if var.to_str().is_some_and(|v| v.starts_with("HERALD_")) {
            cmd.env_remove(var);
        }
    }
    cmd
}

/// `bin users add NAME --password-stdin --data-dir DATA` and `extra` flags (such as
/// `--mechanism SCRAM-SHA-512`), the password on standard input as users give it; panics
/// with its error output when it fails.
pub fn add_user(bin: impl AsRef<OsStr>, data: &Path, name: &str, password: &str, extra: &[&str]) {
    let mut cmd = herald_command(bin);
    cmd.args(["users", "add", name, "--password-stdin"])
        .args(extra)
        .arg("--data-dir")
        .arg(data);
    let out = crate::output_within(
        &mut cmd,
        Some(password.as_bytes()),
        std::time::Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "herald users add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `bin serve --data-dir DATA` with a `SASL_SSL://` Kafka listener on port 0 (the
/// certificate from `ca`), HTTP and the registry on port 0, and `super_user` a super user
/// (authorization is on with SASL); its stderr goes to `log`.
pub fn sasl_ssl_serve(
    bin: impl AsRef<OsStr>,
    data: &Path,
    ca: &crate::TestCa,
    super_user: &str,
    log: &Path,
) -> HeraldServe {
    let server = ca.server("server");
    let mut cmd = herald_command(bin);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--kafka-listen", "SASL_SSL://127.0.0.1:0"])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--registry-listen",
            "127.0.0.1:0",
        ])
        .args(["--super-users", super_user])
        .arg("--tls-cert")
        .arg(&server.cert)
        .arg("--tls-key")
        .arg(&server.key);
    HeraldServe::spawn(cmd, log)
}

/// `bin serve --data-dir DATA` on port 0 with HTTP Basic authentication of the HTTP API
/// and the registry (`HERALD_HTTP_AUTH=basic`) and `super_user` a super user
/// (authentication turns authorization on); its stderr goes to `log`.
pub fn basic_auth_serve(
    bin: impl AsRef<OsStr>,
    data: &Path,
    super_user: &str,
    log: &Path,
) -> HeraldServe {
    let mut cmd = herald_command(bin);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(PORT_0)
        .args(["--super-users", super_user])
        .env("HERALD_HTTP_AUTH", "basic");
    HeraldServe::spawn(cmd, log)
}

/// A running `herald serve` that printed its ready line; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct HeraldServe {
    process: ReadyProcess,
    /// The Kafka listener, `host:port` (for `bootstrap.servers`).
    pub kafka: String,
    /// The HTTP API, `http://host:port`.
    pub http: String,
    /// The schema registry, `http://host:port`.
    pub registry: String,
}

impl HeraldServe {
    /// `bin serve --data-dir DATA` with [`PORT_0`], from [`herald_command`], its stderr
    /// written to `log`.
    ///
    /// ```no_run
    /// let dir = std::path::Path::new("/tmp/t");
    /// # const HERALD: &str = "herald"; // a test: env!("CARGO_BIN_EXE_herald")
    /// let serve = herald_test_support::HeraldServe::start(
    ///     HERALD,
    ///     &dir.join("data"),
    ///     &dir.join("serve.log"),
    /// );
    /// println!("bootstrap.servers={}", serve.kafka);
    /// ```
    pub fn start(bin: impl AsRef<OsStr>, data: &Path, log: &Path) -> Self {
        let mut cmd = herald_command(bin);
        cmd.arg("serve").arg("--data-dir").arg(data).args(PORT_0);
        Self::spawn(cmd, log)
    }

    /// Starts `cmd`, a whole `herald serve` command line (flags, configuration file,
    /// environment), with stderr written to `log`, and waits for the ready line
    /// ([`ReadyProcess::start`]). The line must name all three listeners.
    pub fn spawn(cmd: Command, log: &Path) -> Self {
        let process = ReadyProcess::start(cmd, Some(log), |line| line.starts_with(READY_PREFIX));
        Self {
            kafka: process.field("kafka"),
            http: format!("http://{}", process.field("http")),
            registry: format!("http://{}", process.field("registry")),
            process,
        }
    }

    /// A field of the ready line (`kafka_more`: the Kafka listeners after the first).
    pub fn field(&self, name: &str) -> String {
        self.process.field(name)
    }

    /// Kills it (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Sends `signal` (`-TERM`, `-INT`) and returns the exit code ([`ReadyProcess::signal`]).
    pub fn signal(&mut self, signal: &str) -> Option<i32> {
        self.process.signal(signal)
    }

    /// Sends `signal` (`-HUP`) and returns at once ([`ReadyProcess::notify`]).
    pub fn notify(&self, signal: &str) {
        self.process.notify(signal);
    }

    /// A graceful stop (SIGTERM); returns the exit code, `Some(0)` for a clean one.
    pub fn terminate(&mut self) -> Option<i32> {
        self.process.terminate()
    }
}
