//! Samples, medians and the table of every case.
//!
//! criterion prints its own estimates; the [`Recorder`] keeps the raw samples too, so the
//! run can end with one markdown table of medians in the units the targets use
//! (MB/s with 1 MB = 10^6 bytes, records/s) and the spread between samples.

use std::{fmt::Write, sync::Mutex, time::Duration};

/// The `q` quantile of `values` (0.0 = min, 0.5 = median, 1.0 = max), interpolating
/// linearly between neighbours; NaN if empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The median of `values` (the mean of the middle two for an even count); NaN if empty.
pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

/// What one operation of a case moves: an append of one batch, one chunk of the write
/// baseline, one scan of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerOp {
    /// Bytes per operation.
    pub bytes: u64,
    /// Records per operation.
    pub records: u64,
}

/// One case's identity and samples.
#[derive(Debug, Clone)]
pub struct Case {
    /// criterion group, e.g. `append_group_commit`.
    pub group: String,
    /// Case within the group, e.g. `1KiB_x256/8w`.
    pub name: String,
    /// What one operation moves.
    pub per_op: PerOp,
    /// `(operations, elapsed)` of every timed run, warm-up included, oldest first.
    pub samples: Vec<(u64, Duration)>,
}

impl Case {
    /// Operations per second of each of the last `last` samples.
    pub fn rates(&self, last: usize) -> Vec<f64> {
        let skip = self.samples.len().saturating_sub(last);
        self.samples[skip..]
            .iter()
            .filter(|(ops, _)| *ops > 0)
            .map(|(ops, elapsed)| *ops as f64 / elapsed.as_secs_f64())
            .collect()
    }
}

/// Collects the samples of every case, in the order the cases first ran.
#[derive(Debug, Default)]
pub struct Recorder {
    cases: Mutex<Vec<Case>>,
}

impl Recorder {
    /// Records one timed run of `ops` operations of the case `group`/`name`.
    pub fn record(&self, group: &str, name: &str, per_op: PerOp, ops: u64, elapsed: Duration) {
        let mut cases = self.cases.lock().unwrap_or_else(|p| p.into_inner());
        let case = match cases
            .iter()
            .position(|c| c.group == group && c.name == name)
        {
            Some(i) => &mut cases[i],
            None => {
                cases.push(Case {
                    group: group.to_string(),
                    name: name.to_string(),
                    per_op,
                    samples: Vec::new(),
                });
                cases.last_mut().expect("just pushed")
            }
        };
        case.samples.push((ops, elapsed));
    }

    /// A copy of the cases recorded so far.
    pub fn cases(&self) -> Vec<Case> {
        self.cases.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A markdown table with one row per case: medians over each case's last `last`
    /// samples (criterion's measured samples; earlier ones are its warm-up), and the
    /// slowest and fastest sample.
    pub fn markdown(&self, last: usize) -> String {
        let mut out = String::new();
        out.push_str(
            "| group | case | bytes/op | median MB/s | median records/s | median ops/s | \
             MB/s min–max | samples |\n|---|---|--:|--:|--:|--:|--:|--:|\n",
        );
        for case in self.cases() {
            let rates = case.rates(last);
            let ops = median(&rates);
            let mb = |r: f64| r * case.per_op.bytes as f64 / 1e6;
            let (lo, hi) = rates.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| {
                (lo.min(*r), hi.max(*r))
            });
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {:.0} | {:.1} | {:.1}–{:.1} | {} |",
                case.group,
                case.name,
                case.per_op.bytes,
                mb(ops),
                ops * case.per_op.records as f64,
                ops,
                mb(lo),
                mb(hi),
                rates.len(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn quartiles_interpolate_between_neighbours() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&v, 0.75), 4.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.25), 1.25);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
    }

    #[test]
    fn table_uses_only_the_measured_samples() {
        let rec = Recorder::default();
        let per_op = PerOp {
            bytes: 1_000_000,
            records: 10,
        };
        // A slow warm-up sample, then three measured ones at 1, 2 and 4 ops/s.
        rec.record("g", "c", per_op, 1, Duration::from_secs(100));
        for secs in [1.0, 0.5, 0.25] {
            rec.record("g", "c", per_op, 1, Duration::from_secs_f64(secs));
        }
        let table = rec.markdown(3);
        assert!(
            table.contains("| g | c | 1000000 | 2.0 | 20 | 2.0 | 1.0–4.0 | 3 |"),
            "{table}"
        );
    }
}
