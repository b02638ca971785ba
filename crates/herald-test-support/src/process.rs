//! Child processes of a test: a server started until it prints its ready line and killed
//! when dropped, so a failing test leaves nothing behind; and a command run to completion
//! within a time limit.

use std::{
    ffi::OsStr,
    fs::File,
    io::{BufRead, BufReader, ErrorKind, Read, Write},
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{self, RecvTimeoutError},
    },
    thread,
    time::{Duration, Instant},
};

/// How long [`ReadyProcess::start`] waits for the ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`ReadyProcess::signal`] waits for the process to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A started process that printed its ready line. Dropping it kills it (SIGKILL) and
/// reaps it.
#[derive(Debug)]
pub struct ReadyProcess {
    child: Child,
    name: String,
    line: String,
}

impl ReadyProcess {
    /// Starts `cmd` with stdin closed and stdout read here (all of it, on a thread, so the
    /// process never blocks on a full pipe), stderr written to `stderr_log` (created) or,
    /// with `None`, inherited; returns once a stdout line satisfies `is_ready`.
    ///
    /// Panics, after killing the process, when it exits first or prints no such line
    /// within [`READY_TIMEOUT`]; the message holds what it printed, stderr log included.
    pub fn start(
        mut cmd: Command,
        stderr_log: Option<&Path>,
        mut is_ready: impl FnMut(&str) -> bool,
    ) -> Self {
        let name = describe(&cmd);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        match stderr_log {
            Some(log) => cmd.stderr(
                File::create(log)
                    .unwrap_or_else(|e| panic!("{name}: cannot create {}: {e}", log.display())),
            ),
            None => cmd.stderr(Stdio::inherit()),
        };
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // After the ready line nobody listens; keep draining the pipe.
                let _ = tx.send(line);
            }
        });
        let mut process = ReadyProcess {
            child,
            name,
            line: String::new(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut printed = String::new();
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if is_ready(&line) => {
                    process.line = line;
                    return process;
                }
                Ok(line) => {
                    printed.push_str(&line);
                    printed.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => {
                    process.kill();
                    process.fail(
                        &format!("printed no ready line within {READY_TIMEOUT:?}; killed it"),
                        &printed,
                        stderr_log,
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = process.wait_until(deadline);
                    let how =
                        status.map_or("closed its stdout".to_string(), |s| format!("exited ({s})"));
                    process.fail(
                        &format!("{how} before its ready line"),
                        &printed,
                        stderr_log,
                    )
                }
            }
        }
    }

    fn fail(&self, what: &str, stdout: &str, stderr_log: Option<&Path>) -> ! {
        let log = stderr_log.map_or_else(
            || "(inherited)\n".to_string(),
            |log| std::fs::read_to_string(log).unwrap_or_default(),
        );
        panic!(
            "{} {what}\n--- stdout:\n{stdout}--- stderr:\n{log}",
            self.name
        )
    }

    /// The exit status once the process exits, or `None` (it is killed) at `deadline`.
    fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The ready line.
    pub fn ready_line(&self) -> &str {
        &self.line
    }

    /// The value of the `name=` word of the ready line ([`ready_field`]); panics naming
    /// the line when there is none.
    pub fn field(&self, name: &str) -> String {
        ready_field(&self.line, name)
            .unwrap_or_else(|| panic!("{}: no {name}= in {:?}", self.name, self.line))
            .to_string()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and reaps it; a process that already exited is left as
    /// it is.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (as `kill` takes it: `-TERM`, `-INT`) and waits up to
    /// [`STOP_TIMEOUT`] for the process to exit; returns its exit code (`None` when a
    /// signal ended it). Panics when it does not stop in time.
    pub fn signal(&mut self, signal: &str) -> Option<i32> {
        let status = Command::new("kill")
            .args([signal, &self.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill {signal}: {e}"));
        assert!(status.success(), "kill {signal} {}: {status}", self.id());
        let deadline = Instant::now() + STOP_TIMEOUT;
        match self.wait_until(deadline) {
            Some(status) => status.code(),
            None => panic!(
                "{} did not stop within {STOP_TIMEOUT:?} of kill {signal}; killed it",
                self.name
            ),
        }
    }

    /// Sends `signal` (`-HUP`) without waiting: for signals that do not stop the process.
    pub fn notify(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill {signal}: {e}"));
        assert!(status.success(), "kill {signal} {}: {status}", self.id());
    }

    /// [`signal`](Self::signal) with `-TERM`: a graceful stop.
    pub fn terminate(&mut self) -> Option<i32> {
        self.signal("-TERM")
    }
}

impl Drop for ReadyProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of the `name=` word of a ready line such as `herald ready kafka=127.0.0.1:9092
/// http=127.0.0.1:8080`.
pub fn ready_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
}

/// The program's file name and its arguments, for messages.
fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let mut words = vec![
        program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy(),
    ];
    words.extend(cmd.get_args().map(OsStr::to_string_lossy));
    words.join(" ")
}

/// Runs `cmd` to completion with `stdin` written to it (then closed) and its stdout and
/// stderr collected; past `limit` kills it and panics with what it printed.
pub fn output_within(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    let name = describe(cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.unwrap_or_default().to_vec();
    let writer = thread::spawn(move || match input.write_all(&data) {
        // A process may exit without reading its input; its output says what it did.
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    });
    let stdout = Collected::start(child.stdout.take().expect("stdout is piped"));
    let stderr = Collected::start(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            // Not joined: a grandchild may still hold the pipes open.
            panic!(
                "{name} did not finish within {limit:?}; killed it\n--- stdout:\n{}\n--- stderr:\n{}",
                String::from_utf8_lossy(&stdout.so_far()),
                String::from_utf8_lossy(&stderr.so_far()),
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    writer
        .join()
        .expect("stdin writer")
        .unwrap_or_else(|e| panic!("{name}: writing stdin: {e}"));
    Output {
        status,
        stdout: stdout.finish(),
        stderr: stderr.finish(),
    }
}

/// A pipe read to its end on a thread of its own.
struct Collected {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: thread::JoinHandle<()>,
}

impl Collected {
    fn start(mut from: impl Read + Send + 'static) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let to = bytes.clone();
        let reader = thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = from.read(&mut chunk) {
                to.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Self { bytes, reader }
    }

    /// What was read until now.
    fn so_far(&self) -> Vec<u8> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Everything, once the pipe is closed.
    fn finish(self) -> Vec<u8> {
        let Self { bytes, reader } = self;
        reader.join().expect("pipe reader");
        std::mem::take(&mut *bytes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn fields_of_a_ready_line() {
        let line = "herald ready kafka=127.0.0.1:9092 http=127.0.0.1:8080 registry=[::1]:8081";
        assert_eq!(ready_field(line, "kafka"), Some("127.0.0.1:9092"));
        assert_eq!(ready_field(line, "http"), Some("127.0.0.1:8080"));
        assert_eq!(ready_field(line, "registry"), Some("[::1]:8081"));
        assert_eq!(ready_field(line, "ready"), None);
        assert_eq!(ready_field(line, "kaf"), None, "a whole name, not a prefix");
        assert_eq!(ready_field("", "kafka"), None);
    }

    #[test]
    fn starts_until_the_ready_line_and_kills_on_drop() {
        let dir = std::env::temp_dir().join(format!("hts-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("stderr.log");
        let p = ReadyProcess::start(
            sh("echo starting; echo oops >&2; echo 'up addr=1.2.3.4:5'; exec sleep 60"),
            Some(&log),
            |line| line.starts_with("up "),
        );
        assert_eq!(p.ready_line(), "up addr=1.2.3.4:5");
        assert_eq!(p.field("addr"), "1.2.3.4:5");
        let pid = p.id();
        drop(p);
        // Reaped: no process with that id is ours any more.
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .output()
            .unwrap();
        assert!(!alive.status.success(), "{pid} still runs");
        assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "oops");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[should_panic(
        expected = "sh -c echo nope; exit 3 exited (exit status: 3) before its ready line\n--- stdout:\nnope\n"
    )]
    fn exiting_before_the_ready_line_fails_with_the_output() {
        ReadyProcess::start(sh("echo nope; exit 3"), None, |line| line == "ready");
    }

    #[test]
    fn a_signal_stops_it_and_gives_the_exit_code() {
        let mut p = ReadyProcess::start(
            sh("trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done"),
            None,
            |line| line == "ready",
        );
        assert_eq!(p.terminate(), Some(0));
    }

    #[test]
    fn output_within_collects_and_feeds_stdin() {
        let out = output_within(
            &mut sh("cat; echo err >&2; exit 4"),
            Some(b"in\n"),
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(4));
        assert_eq!(out.stdout, b"in\n");
        assert_eq!(out.stderr, b"err\n");
        // More output than a pipe holds does not stall it.
        let out = output_within(
            &mut sh("head -c 1000000 /dev/zero"),
            None,
            Duration::from_secs(30),
        );
        assert_eq!(out.stdout.len(), 1_000_000);
    }

    #[test]
    #[should_panic(
        expected = "sh -c echo started; exec sleep 30 did not finish within 200ms; \
                               killed it\n--- stdout:\nstarted\n"
    )]
    fn output_within_kills_past_the_limit() {
        output_within(
            &mut sh("echo started; exec sleep 30"),
            None,
            Duration::from_millis(200),
        );
    }
}
