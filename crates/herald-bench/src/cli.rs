//! The command line of the comparison suite, shared by the `herald-bench` binary and
//! The `herald-bench` binary: parse options, run [`suite::run`], print the report, write the files.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    suite::{self, PeerUrls, SuiteConfig},
    workload::Scratch,
};

/// Usage text.
pub const USAGE: &str =
    "usage: herald-bench [--quick] [--only NAME]... [--out DIR] [--rounds N] [--slot-secs S]
  --quick        short run (~2 min): 1 round, 0.5 s slots, 2 s latency runs, 200k backlog
  --only NAME    only targets whose name contains NAME (repeatable), e.g. herald, nats, redis
  --out DIR      write report.md, report.json and latency.svg there
                 (default: herald-bench-report/ in cargo's target directory)
  --rounds N     interleaved throughput rounds (default 3)
  --slot-secs S  seconds per throughput sample (default 1)
Peers: HERALD_TEST_NATS_URL, HERALD_TEST_REDIS_URL, HERALD_TEST_AMQP_URL (default: local
ports); HERALD_BENCH_NATS_SERVER / HERALD_BENCH_REDIS_SERVER pick the server binaries the
fsync modes start (default: on PATH). HERALD_BENCH_DIR: scratch directory (default: tmp/
beside the report directory).";

/// Parsed options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The suite's settings.
    pub config: SuiteConfig,
    /// Where the report files go (`None`: the default).
    pub out: Option<PathBuf>,
}

/// Parses the options (without the program name).
pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut config = SuiteConfig::default();
    let mut out = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                config.rounds = 1;
                config.slot = Duration::from_millis(500);
                config.latency_duration = Duration::from_secs(2);
                config.fan_out_slot = Duration::from_secs(1);
                config.backlog = 200_000;
                config.backlog_bound = Duration::from_secs(5);
            }
            "--only" => config.only.push(value()?),
            // Absolute from here on, whatever directory later steps run in.
            "--out" => {
                let dir = value()?;
                out = Some(std::path::absolute(&dir).map_err(|e| format!("--out {dir}: {e}"))?);
            }
            "--rounds" => {
                config.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?;
                if config.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--slot-secs" => {
                let s: f64 = value()?.parse().map_err(|e| format!("--slot-secs: {e}"))?;
                config.slot =
                    Duration::try_from_secs_f64(s).map_err(|e| format!("--slot-secs: {e}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Options { config, out })
}

/// Runs the suite with `args`; returns the process exit code (0 ran, 1 failed, 2 usage).
/// `default_root` is where scratch data and the report go unless told otherwise.
pub fn main(args: impl Iterator<Item = String>, default_root: &Path) -> i32 {
    let options = match parse(args) {
        Ok(o) => o,
        // An empty message is a request for help.
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return 0;
        }
        Err(message) => {
            eprintln!("herald-bench: {message}");
            eprintln!("{USAGE}");
            return 2;
        }
    };
    let root = std::env::var_os("HERALD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| default_root.join("tmp"));
    let scratch = match Scratch::new(&root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("herald-bench: {e}");
            return 1;
        }
    };
    if let Some((device, fstype)) = scratch.filesystem() {
        eprintln!(
            "scratch: {} on {device} ({fstype})",
            scratch.path().display()
        );
    }
    let started = std::time::Instant::now();
    let report = suite::run(
        &scratch,
        &options.config,
        &PeerUrls::from_env(),
        &mut |line| eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64()),
    );
    drop(scratch);
    let markdown = report.markdown();
    println!("{markdown}");
    let out = options
        .out
        .unwrap_or_else(|| default_root.join("herald-bench-report"));
    let files = [
        ("report.md", markdown),
        (
            "report.json",
            serde_json::to_string_pretty(&report.json()).unwrap_or_default(),
        ),
        ("latency.svg", report.latency_svg()),
    ];
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("herald-bench: create {}: {e}", out.display());
        return 1;
    }
    for (name, text) in files {
        let path = out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("herald-bench: write {}: {e}", path.display());
            return 1;
        }
    }
    eprintln!("report written to {}", out.display());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn options_parse() {
        let o = parse(args("--quick --only herald --only nats --out /tmp/x")).unwrap();
        assert_eq!(o.config.rounds, 1);
        assert_eq!(o.config.only, vec!["herald", "nats"]);
        assert_eq!(o.out, Some(PathBuf::from("/tmp/x")));
        assert_eq!(parse(args("")).unwrap().config, SuiteConfig::default());
        assert!(parse(args("--rounds 0")).is_err());
        assert!(parse(args("--bogus")).is_err());
        assert!(parse(args("--only")).is_err());
    }

    #[test]
    fn relative_out_and_scratch_root_give_absolute_peer_paths() {
        let o = parse(args("--out rel/report")).unwrap();
        let out = o.out.unwrap();
        assert!(out.is_absolute(), "{}", out.display());
        assert!(out.ends_with("rel/report"));
        // The scratch root beside a relative report directory, as a herald-bench run
        // from the current directory gets it: every peer's case directory is absolute.
        let root = format!("target/tmp-relative-{}", std::process::id());
        let scratch = Scratch::new(&root).unwrap();
        assert!(scratch.path().is_absolute(), "{}", scratch.path().display());
        for case in ["suite-nats", "suite-redis", "suite-herald-kafka"] {
            let dir = scratch.case_dir(case).unwrap();
            assert!(dir.is_absolute(), "{}", dir.display());
        }
        drop(scratch);
        let _ = std::fs::remove_dir_all(&root);
    }
}
