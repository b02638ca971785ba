//! Shared by the tests that start the `herald serve` binary: spawning it and reading the
//! addresses from its ready line (`herald ready kafka=… http=… registry=…`).

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// A started `herald serve` and its ready line.
pub(crate) struct Ready {
    pub(crate) child: Child,
    line: String,
}

impl Ready {
    /// The value of `name=` on the ready line (`kafka`, `http`, `registry`).
    pub(crate) fn field(&self, name: &str) -> String {
        self.line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {:?}", self.line))
            .to_string()
    }
}

/// Spawns `cmd` (a `herald serve` command line) with stdout read here and stderr written
/// to `log`, and waits up to 60 s for its ready line; on timeout kills it and panics with
/// the log.
pub(crate) fn spawn_serve(mut cmd: Command, log: &Path) -> Ready {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    let mut child = cmd.spawn().expect("herald starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("herald ready ") {
                let _ = tx.send(line);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => Ready { child, line },
        Err(_) => {
            let _ = child.kill();
            panic!(
                "herald serve printed no ready line in 60 s; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}
