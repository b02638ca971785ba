//! The log's two performance targets, each checked against its baseline measured
//! interleaved with it in the same process.
//!
//! The disks of shared machines change speed from one second to the next (other jobs'
//! fsyncs queue in front of ours), so each ratio is built from many short rounds, and
//! the reported ratio is the median of the per-round ratios: a slow phase hits both sides
//! of a round alike.
//!
//! 1. Group commit, 1 KiB records in 256-record batches, at least 50% of the disk's
//!    sequential write bandwidth ([`RawFile::chunks_for`]). Each round runs the baseline
//!    and the log with one and with eight writers for one slot each, in rotated order.
//!    Two context rows explain the one-writer case: the same batch written and synced one
//!    at a time (what one synchronous writer can get from this disk at best), and one
//!    writer keeping [`PIPELINE_DEPTH`] appends in flight, as a broker does for a producer
//!    that pipelines its requests.
//! 2. Fsync per append, one writer, 1-record batches, within 20% of the disk's
//!    write-then-`sync_data` rate. Here the two sides alternate operation by operation
//!    (one raw write-and-sync, one append, …), so both see the same moment of the disk.

use std::{
    fmt::Write,
    time::{Duration, Instant},
};

use herald_log::Durability;

use crate::{
    Result,
    disk::{CHUNK_BYTES, RawFile},
    stats::{median, quantile},
    workload::{AppendTarget, Scratch, Shape},
};

/// Appends one writer keeps in flight in the pipelined context case.
pub const PIPELINE_DEPTH: usize = 8;

/// How long the target check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryConfig {
    /// Time each side of a comparison runs per round.
    pub slot: Duration,
    /// Rounds; each contributes one sample per side.
    pub rounds: usize,
}

impl Default for SummaryConfig {
    /// 80 rounds of 100 ms per side: about 75 s for all targets.
    fn default() -> Self {
        Self {
            slot: Duration::from_millis(100),
            rounds: 80,
        }
    }
}

/// One comparison: herald's rate and its baseline's, round by round.
#[derive(Debug, Clone)]
pub struct TargetResult {
    /// What is compared, e.g. `group commit vs sequential write bandwidth (8w)`.
    pub target: String,
    /// The herald case.
    pub herald: String,
    /// The baseline case.
    pub baseline: String,
    /// Unit of both rates.
    pub unit: &'static str,
    /// Herald's rate in each round.
    pub herald_rates: Vec<f64>,
    /// The baseline's rate in each round.
    pub baseline_rates: Vec<f64>,
    /// Smallest acceptable herald/baseline ratio; `None` for a comparison that only
    /// explains another.
    pub goal: Option<f64>,
}

impl TargetResult {
    /// Median of herald's rates.
    pub fn herald_median(&self) -> f64 {
        median(&self.herald_rates)
    }

    /// Median of the baseline's rates.
    pub fn baseline_median(&self) -> f64 {
        median(&self.baseline_rates)
    }

    /// herald/baseline of each round.
    pub fn ratios(&self) -> Vec<f64> {
        self.herald_rates
            .iter()
            .zip(&self.baseline_rates)
            .map(|(h, b)| h / b)
            .collect()
    }

    /// Median of the per-round ratios.
    pub fn ratio(&self) -> f64 {
        median(&self.ratios())
    }

    /// Whether the median ratio meets the goal (`None` without one).
    pub fn pass(&self) -> Option<bool> {
        self.goal.map(|goal| self.ratio() >= goal)
    }
}

/// The outcome of the target check.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Each comparison, in the order run.
    pub targets: Vec<TargetResult>,
    /// The check's settings.
    pub config: SummaryConfig,
}

impl Summary {
    /// A markdown table: medians, ratio with its interquartile range, goal, PASS/FAIL.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Targets ({} interleaved rounds of {} ms per side; ratio = median of the \
             per-round ratios, p25–p75 in brackets; MB = 10^6 bytes)\n\n\
             | target | herald | baseline | herald median | baseline median | ratio (p25–p75) | goal | result |\n\
             |---|---|---|--:|--:|--:|--:|---|\n",
            self.config.rounds,
            self.config.slot.as_millis()
        );
        for t in &self.targets {
            let ratios = t.ratios();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} {unit} | {:.1} {unit} | {:.0}% ({:.0}–{:.0}%) | {} | {} |",
                t.target,
                t.herald,
                t.baseline,
                t.herald_median(),
                t.baseline_median(),
                t.ratio() * 100.0,
                quantile(&ratios, 0.25) * 100.0,
                quantile(&ratios, 0.75) * 100.0,
                t.goal
                    .map_or("—".to_string(), |g| format!("≥ {:.0}%", g * 100.0)),
                match t.pass() {
                    Some(true) => "PASS",
                    Some(false) => "FAIL",
                    None => "(context)",
                },
                unit = t.unit,
            );
        }
        out
    }

    /// The same as one line of JSON, for scripts.
    pub fn json(&self) -> String {
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|t| {
                let ratios = t.ratios();
                format!(
                    "{{\"target\":{},\"herald\":{},\"baseline\":{},\"unit\":{},\
                     \"herald_median\":{:.3},\"baseline_median\":{:.3},\"ratio\":{:.4},\
                     \"ratio_p25\":{:.4},\"ratio_p75\":{:.4},\"goal\":{},\"pass\":{},\
                     \"herald_rates\":{},\"baseline_rates\":{}}}",
                    json_str(&t.target),
                    json_str(&t.herald),
                    json_str(&t.baseline),
                    json_str(t.unit),
                    t.herald_median(),
                    t.baseline_median(),
                    t.ratio(),
                    quantile(&ratios, 0.25),
                    quantile(&ratios, 0.75),
                    t.goal.map_or("null".to_string(), |g| g.to_string()),
                    t.pass().map_or("null".to_string(), |p| p.to_string()),
                    json_list(&t.herald_rates),
                    json_list(&t.baseline_rates),
                )
            })
            .collect();
        format!(
            "{{\"bench\":\"herald-log\",\"slot_ms\":{},\"rounds\":{},\"targets\":[{}]}}",
            self.config.slot.as_millis(),
            self.config.rounds,
            targets.join(",")
        )
    }
}

fn json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn json_list(values: &[f64]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
    format!("[{}]", items.join(","))
}

/// One side of a comparison: one slot's run, returning a rate.
type Contestant<'a> = Box<dyn FnMut() -> Result<f64> + 'a>;

/// Runs every contestant once per round, rotating the order each round; returns each
/// contestant's rates.
fn interleave(rounds: usize, contestants: &mut [Contestant<'_>]) -> Result<Vec<Vec<f64>>> {
    let n = contestants.len();
    let mut rates = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            rates[i].push(contestants[i]()?);
        }
    }
    Ok(rates)
}

/// Runs the target check in `scratch`.
pub fn run(scratch: &Scratch, config: &SummaryConfig) -> Result<Summary> {
    let mut targets = group_commit_vs_bandwidth(scratch, config)?;
    for value_bytes in [100, 1024] {
        targets.push(fsync_per_append_vs_fsync_rate(
            scratch,
            config,
            Shape::new(value_bytes, 1),
        )?);
    }
    Ok(Summary {
        targets,
        config: *config,
    })
}

/// Target 1, with one and with eight writers, and the one-writer context.
fn group_commit_vs_bandwidth(
    scratch: &Scratch,
    config: &SummaryConfig,
) -> Result<Vec<TargetResult>> {
    let shape = Shape::new(1024, 256);
    let batch = shape.build();
    let slot = config.slot;
    let mut chunked = RawFile::create(&scratch.case_dir("summary-raw-write")?)?;
    let mut synced_each = RawFile::create(&scratch.case_dir("summary-raw-write-each")?)?;
    let one = AppendTarget::open(
        &scratch.case_dir("summary-gc-1w")?,
        Durability::group_commit(),
        shape,
    )?;
    let eight = AppendTarget::open(
        &scratch.case_dir("summary-gc-8w")?,
        Durability::group_commit(),
        shape,
    )?;
    let pipelined = AppendTarget::open(
        &scratch.case_dir("summary-gc-pipelined")?,
        Durability::group_commit(),
        shape,
    )?;
    let mb_per_s = |bytes: u64, elapsed: Duration| bytes as f64 / elapsed.as_secs_f64() / 1e6;
    let herald = |target: &AppendTarget, writers: usize| -> Result<f64> {
        let (appends, elapsed) = target.appends_for(writers, slot)?;
        target.trim()?;
        Ok(mb_per_s(appends * target.batch_bytes(), elapsed))
    };
    let mut contestants: Vec<Contestant<'_>> = vec![
        Box::new(|| {
            let (bytes, elapsed) = chunked.chunks_for(&batch, slot)?;
            chunked.roll_if_full()?;
            Ok(mb_per_s(bytes, elapsed))
        }),
        Box::new(|| {
            let (n, elapsed) = synced_each.fsyncs_for(&batch, slot)?;
            synced_each.roll_if_full()?;
            Ok(mb_per_s(n * batch.len() as u64, elapsed))
        }),
        Box::new(|| herald(&one, 1)),
        Box::new(|| herald(&eight, 8)),
        Box::new(|| {
            let (appends, elapsed) = pipelined.pipelined_appends_for(PIPELINE_DEPTH, slot)?;
            pipelined.trim()?;
            Ok(mb_per_s(appends * pipelined.batch_bytes(), elapsed))
        }),
    ];
    let rates = interleave(config.rounds, &mut contestants)?;
    drop(contestants);
    let [
        chunked_rates,
        each_rates,
        one_rates,
        eight_rates,
        pipelined_rates,
    ] = <[Vec<f64>; 5]>::try_from(rates).expect("five contestants");
    one.destroy()?;
    eight.destroy()?;
    pipelined.destroy()?;
    chunked.destroy()?;
    synced_each.destroy()?;
    let label = shape.label();
    let chunked_rates_label = format!(
        "write_all of the same batch, sync_data every {} MiB",
        CHUNK_BYTES >> 20
    );
    let bandwidth = |writers: usize, herald_rates: Vec<f64>| TargetResult {
        target: format!("group commit ≥ 50% of sequential write bandwidth ({writers}w)"),
        herald: format!("group_commit {label} {writers}w"),
        baseline: chunked_rates_label.clone(),
        unit: "MB/s",
        herald_rates,
        baseline_rates: chunked_rates.clone(),
        goal: Some(0.5),
    };
    Ok(vec![
        bandwidth(8, eight_rates),
        bandwidth(1, one_rates.clone()),
        TargetResult {
            target: "one writer: group commit vs one sync_data per batch".into(),
            herald: format!("group_commit {label} 1w"),
            baseline: "write_all of the same batch + sync_data, one at a time".into(),
            unit: "MB/s",
            herald_rates: one_rates,
            baseline_rates: each_rates,
            goal: None,
        },
        TargetResult {
            target: format!(
                "one writer, {PIPELINE_DEPTH} appends in flight: group commit vs bandwidth"
            ),
            herald: format!("group_commit {label} 1w, append_deferred ×{PIPELINE_DEPTH}"),
            baseline: chunked_rates_label,
            unit: "MB/s",
            herald_rates: pipelined_rates,
            baseline_rates: chunked_rates,
            goal: None,
        },
    ])
}

/// Target 2 for one batch shape: raw write-and-sync and appends alternate one by one.
fn fsync_per_append_vs_fsync_rate(
    scratch: &Scratch,
    config: &SummaryConfig,
    shape: Shape,
) -> Result<TargetResult> {
    let batch = shape.build();
    let label = shape.label();
    let mut raw = RawFile::create(&scratch.case_dir(&format!("summary-raw-fsync-{label}"))?)?;
    let log = AppendTarget::open(
        &scratch.case_dir(&format!("summary-ea-{label}"))?,
        Durability::EveryAppend,
        shape,
    )?;
    let mut writer = log.writer();
    let mut herald_rates = Vec::with_capacity(config.rounds);
    let mut baseline_rates = Vec::with_capacity(config.rounds);
    for round in 0..config.rounds {
        let (mut raw_time, mut log_time) = (Duration::ZERO, Duration::ZERO);
        let mut pairs = 0_u64;
        let started = Instant::now();
        while started.elapsed() < 2 * config.slot {
            // Who goes first alternates too: the second of a pair may find the journal
            // commit of the first still settling.
            let raw_first = (round as u64 + pairs).is_multiple_of(2);
            if raw_first {
                raw_time += raw.timed_fsyncs(&batch, 1)?;
            }
            log_time += writer.timed_append()?;
            if !raw_first {
                raw_time += raw.timed_fsyncs(&batch, 1)?;
            }
            pairs += 1;
        }
        raw.roll_if_full()?;
        log.trim()?;
        baseline_rates.push(pairs as f64 / raw_time.as_secs_f64());
        herald_rates.push(pairs as f64 / log_time.as_secs_f64());
    }
    drop(writer);
    log.destroy()?;
    raw.destroy()?;
    Ok(TargetResult {
        target: format!("fsync per append within 20% of the fsync rate ({label})"),
        herald: format!("every_append {label} 1w"),
        baseline: format!("write_all of the same {} B batch + sync_data", batch.len()),
        unit: "appends/s",
        herald_rates,
        baseline_rates,
        goal: Some(0.8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_rotates_the_order_each_round() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut contestants: Vec<Contestant<'_>> = vec![
            Box::new(|| {
                order.borrow_mut().push('a');
                Ok(1.0)
            }),
            Box::new(|| {
                order.borrow_mut().push('b');
                Ok(2.0)
            }),
        ];
        let rates = interleave(3, &mut contestants).unwrap();
        drop(contestants);
        assert_eq!(rates, vec![vec![1.0; 3], vec![2.0; 3]]);
        assert_eq!(order.into_inner(), vec!['a', 'b', 'b', 'a', 'a', 'b']);
    }

    #[test]
    fn a_target_passes_on_the_median_of_round_ratios() {
        let t = TargetResult {
            target: "t".into(),
            herald: "h".into(),
            baseline: "b".into(),
            unit: "MB/s",
            herald_rates: vec![40.0, 60.0, 10.0],
            baseline_rates: vec![100.0, 100.0, 100.0],
            goal: Some(0.4),
        };
        assert_eq!(t.ratio(), 0.4);
        assert_eq!(t.pass(), Some(true));
        let context = TargetResult {
            goal: None,
            ..t.clone()
        };
        let summary = Summary {
            targets: vec![t, context],
            config: SummaryConfig::default(),
        };
        let table = summary.markdown();
        assert!(table.contains("| 40% (25–50%) | ≥ 40% | PASS |"), "{table}");
        assert!(
            table.contains("| 40% (25–50%) | — | (context) |"),
            "{table}"
        );
        let json = summary.json();
        assert!(json.contains("\"ratio\":0.4000,"), "{json}");
        assert!(json.contains("\"goal\":0.4,\"pass\":true,"), "{json}");
        assert!(json.contains("\"goal\":null,\"pass\":null,"), "{json}");
    }
}
