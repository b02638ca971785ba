//! End-to-end latency: send timestamps carried in the payload, HDR histograms of the
//! delays, and the pacing of fixed-rate producers.
//!
//! Producer and consumer run in one process, so both read one monotonic [`Clock`]. A
//! message carries the time it was *scheduled* to be sent, not the time the producer got
//! round to sending it: a producer that falls behind (a stalled broker, a full queue)
//! then shows up as latency instead of silently sending later, which is the usual
//! "coordinated omission" correction.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Bytes at the front of a payload that hold its timestamp.
pub const STAMP_BYTES: usize = 8;

/// Largest latency a histogram records; longer ones are clamped to it.
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

/// A monotonic clock shared by the producers and consumers of one run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock that starts now.
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    /// Nanoseconds since the clock started.
    pub fn nanos(&self) -> u64 {
        self.nanos_at(Instant::now())
    }

    /// Nanoseconds from the clock's start to `at` (0 before it).
    pub fn nanos_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Time since `stamp` (nanoseconds on this clock); zero for a stamp in the future.
    pub fn since(&self, stamp: u64) -> Duration {
        Duration::from_nanos(self.nanos().saturating_sub(stamp))
    }
}

/// Writes `stamp` into the first [`STAMP_BYTES`] of `payload`.
///
/// # Panics
/// If the payload is shorter than [`STAMP_BYTES`].
pub fn write_stamp(payload: &mut [u8], stamp: u64) {
    payload[..STAMP_BYTES].copy_from_slice(&stamp.to_le_bytes());
}

/// The stamp at the front of `payload`, if it is long enough to hold one.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let bytes = payload.get(..STAMP_BYTES)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Percentiles of one latency run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Latencies recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest.
    pub max: Duration,
}

/// An HDR histogram of latencies with microsecond resolution (3 significant digits,
/// 1 µs to [`MAX_LATENCY`]).
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Self {
        let max = MAX_LATENCY.as_micros() as u64;
        Self {
            hist: Histogram::new_with_bounds(1, max, 3).expect("valid histogram bounds"),
        }
    }

    /// Records one latency (clamped to 1 µs ..= [`MAX_LATENCY`]).
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, self.hist.high());
        self.hist.saturating_record(micros);
    }

    /// Adds every latency recorded in `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at percentile `p` (0–100); zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.hist.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.hist.value_at_percentile(p.clamp(0.0, 100.0)))
    }

    /// p50, p99, p99.9 and max.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count(),
            p50: self.percentile(50.0),
            p99: self.percentile(99.0),
            p999: self.percentile(99.9),
            max: if self.hist.is_empty() {
                Duration::ZERO
            } else {
                Duration::from_micros(self.hist.max())
            },
        }
    }
}

/// The schedule of a fixed-rate producer: message `i` (from 0) is due `i / rate` seconds
/// after the start, for `total` messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    rate: f64,
    total: u64,
}

impl Pacer {
    /// `rate` messages per second for `duration` (at least one message).
    pub fn new(rate: f64, duration: Duration) -> Self {
        let rate = rate.max(f64::MIN_POSITIVE);
        let total = ((rate * duration.as_secs_f64()).round() as u64).max(1);
        Self { rate, total }
    }

    /// Messages in the schedule.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// When message `i` is due, from the start.
    pub fn due_at(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many messages are due `elapsed` after the start (message `i` is due once
    /// `elapsed >= due_at(i)`), at most [`total`](Self::total).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        // The epsilon absorbs the rounding of `due_at` to whole nanoseconds.
        let due = (elapsed.as_secs_f64() * self.rate + 1e-6).floor() as u64 + 1;
        due.min(self.total)
    }
}

/// How long a pacing loop sleeps between checks of its schedule: sending every message
/// on its own wake-up costs more than the messages at 50k/s, so due messages go out
/// together, each still carrying its own scheduled time.
pub const PACING_TICK: Duration = Duration::from_micros(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut l = Latencies::new();
        for us in 1..=10_000 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.count, 10_000);
        // Three significant digits: within 0.1% of the exact value.
        let near = |d: Duration, us: f64| (d.as_micros() as f64 - us).abs() <= us * 0.001 + 1.0;
        assert!(near(s.p50, 5_000.0), "{s:?}");
        assert!(near(s.p99, 9_900.0), "{s:?}");
        assert!(near(s.p999, 9_990.0), "{s:?}");
        assert!(near(s.max, 10_000.0), "{s:?}");
    }

    #[test]
    fn a_rare_outlier_shows_in_p999_but_not_p99() {
        let mut l = Latencies::new();
        // 0.2% of the messages take 500 ms: above p99, below p99.9.
        for _ in 0..9_980 {
            l.record(Duration::from_millis(1));
        }
        for _ in 0..20 {
            l.record(Duration::from_millis(500));
        }
        let s = l.summary();
        assert_eq!(s.p50.as_millis(), 1, "{s:?}");
        assert_eq!(s.p99.as_millis(), 1, "{s:?}");
        assert!(s.p999.as_millis() >= 499, "{s:?}");
        assert!(s.max.as_millis() >= 499, "{s:?}");
    }

    #[test]
    fn empty_and_clamped_values() {
        let mut l = Latencies::new();
        assert_eq!(l.summary().p99, Duration::ZERO);
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(3600));
        assert_eq!(l.count(), 2);
        assert!(l.summary().max >= Duration::from_secs(59));
        let mut m = Latencies::new();
        m.merge(&l);
        assert_eq!(m.count(), 2);
    }

    #[test]
    fn stamps_round_trip_through_a_payload() {
        let mut payload = vec![b'x'; 100];
        write_stamp(&mut payload, 123_456_789);
        assert_eq!(read_stamp(&payload), Some(123_456_789));
        assert_eq!(read_stamp(&payload[..4]), None);
        let clock = Clock::new();
        assert_eq!(clock.since(u64::MAX), Duration::ZERO);
    }

    #[test]
    fn pacer_spreads_messages_evenly() {
        let p = Pacer::new(1000.0, Duration::from_secs(2));
        assert_eq!(p.total(), 2000);
        assert_eq!(p.due_at(0), Duration::ZERO);
        assert_eq!(p.due_at(500), Duration::from_millis(500));
        // Message 0 is due at once; message 10 at exactly 10 ms.
        assert_eq!(p.due_by(Duration::ZERO), 1);
        assert_eq!(p.due_by(Duration::from_micros(9_999)), 10);
        assert_eq!(p.due_by(Duration::from_millis(10)), 11);
        assert_eq!(p.due_by(Duration::from_secs(60)), 2000);
        for i in [1, 7, 999, 1999] {
            assert_eq!(p.due_by(p.due_at(i)), i + 1, "message {i}");
        }
    }
}
