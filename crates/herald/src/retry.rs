//! Retries: exponential backoff with full jitter, bounded by attempts and elapsed time.
//!
//! Delays are slept with `tokio::time`, so tests run them on paused time
//! (`#[tokio::test(start_paused = true)]`) and observe exact, instant delays; jitter comes
//! from a seedable generator ([`RetryPolicy::seed`]) so a test can compute the very delays
//! the router will use with [`RetryPolicy::backoff`].

use std::{error::Error as StdError, fmt, time::Duration};

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// May succeed later (a timeout, a lock conflict, a service restarting): retried.
    Transient,
    /// Will fail again (invalid data, a broken invariant): dead-lettered at once.
    Permanent,
}

/// A handler's failure. `?` converts any error into a transient one; use
/// [`HandlerError::permanent`] for failures that retrying cannot fix.
pub struct HandlerError {
    kind: ErrorKind,
    source: Box<dyn StdError + Send + Sync>,
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn transient(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            source: source.into(),
        }
    }

    /// A failure retries cannot fix: the event goes to the dead-letter topic at once.
    pub fn permanent(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            source: source.into(),
        }
    }

    /// Transient or permanent.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying is pointless.
    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }

    /// The error and its sources, outermost first.
    pub fn chain(&self) -> Vec<String> {
        let mut out = vec![self.source.to_string()];
        let mut next = self.source.source();
        while let Some(e) = next {
            out.push(e.to_string());
            next = e.source();
        }
        out
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        Self::transient(e)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.kind)
            .field("chain", &self.chain())
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
        };
        write!(f, "{kind} failure: {}", self.chain().join(": "))
    }
}

/// How delays are randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Each delay is uniform in `[0, cap]` ("full jitter"): retries of many consumers
    /// spread out instead of arriving together.
    Full,
    /// Each delay is exactly the cap.
    None,
}

/// When and how often a failed handler is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 means no retries.
    pub max_attempts: u32,
    /// Cap of the delay before the first retry.
    pub initial_delay: Duration,
    /// Largest cap of any delay.
    pub max_delay: Duration,
    /// Growth of the cap per retry.
    pub multiplier: f64,
    /// No retry starts later than this after the first attempt started.
    pub max_elapsed: Option<Duration>,
    /// Randomisation of each delay.
    pub jitter: Jitter,
    /// Seed of the jitter generator; `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl Default for RetryPolicy {
    /// 5 attempts, delays capped at 100 ms, 200 ms, 400 ms, 800 ms, full jitter, at most
    /// 30 s in all.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            max_elapsed: Some(Duration::from_secs(30)),
            jitter: Jitter::Full,
            seed: None,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets the attempt limit (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the initial delay cap, the largest cap and the multiplier.
    pub fn with_delays(mut self, initial: Duration, max: Duration, multiplier: f64) -> Self {
        self.initial_delay = initial;
        self.max_delay = max;
        self.multiplier = multiplier.max(1.0);
        self
    }

    /// Sets the elapsed-time limit.
    pub fn with_max_elapsed(mut self, limit: Option<Duration>) -> Self {
        self.max_elapsed = limit;
        self
    }

    /// Sets the jitter.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Seeds the jitter generator, making delays reproducible.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The cap of the delay before retry number `retry` (0 for the first retry):
    /// `min(max_delay, initial_delay * multiplier^retry)`, in whole milliseconds (the
    /// resolution of Tokio's timer, so a delay is slept exactly as computed).
    pub fn cap(&self, retry: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(retry.min(1024) as i32);
        let ms = self.initial_delay.as_millis() as f64 * factor;
        let max = self.max_delay.as_millis() as f64;
        Duration::from_millis(ms.min(max).max(0.0) as u64)
    }

    /// The sequence of delays for one event.
    pub fn backoff(&self) -> Backoff {
        let rng = match self.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Backoff {
            policy: self.clone(),
            rng,
            retry: 0,
        }
    }
}

/// Delays between the attempts at one event.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    rng: StdRng,
    retry: u32,
}

impl Backoff {
    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.policy.cap(self.retry);
        self.retry += 1;
        match self.policy.jitter {
            Jitter::None => cap,
            Jitter::Full => {
                Duration::from_millis(self.rng.random_range(0..=cap.as_millis() as u64))
            }
        }
    }

    /// Retries handed out so far.
    pub fn retries(&self) -> u32 {
        self.retry
    }
}

/// What the retry loop decides after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Sleep this long, then try again.
    RetryAfter(Duration),
    /// Stop: the outcome is a dead letter for this reason.
    GiveUp(&'static str),
}

impl Backoff {
    /// Decides after attempt number `attempt` (from 1) failed with `kind`, `elapsed`
    /// after the first attempt started.
    pub(crate) fn decide(&mut self, attempt: u32, kind: ErrorKind, elapsed: Duration) -> Decision {
        if kind == ErrorKind::Permanent {
            return Decision::GiveUp("permanent failure");
        }
        if attempt >= self.policy.max_attempts {
            return Decision::GiveUp("retries exhausted");
        }
        let delay = self.next_delay();
        if self
            .policy
            .max_elapsed
            .is_some_and(|limit| elapsed + delay > limit)
        {
            return Decision::GiveUp("retry time exhausted");
        }
        Decision::RetryAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn caps_grow_exponentially_up_to_the_maximum() {
        let p = RetryPolicy::default().with_delays(ms(100), ms(1000), 3.0);
        let caps: Vec<_> = (0..5).map(|r| p.cap(r)).collect();
        assert_eq!(caps, [ms(100), ms(300), ms(900), ms(1000), ms(1000)]);
    }

    #[test]
    fn full_jitter_stays_within_the_cap_and_is_reproducible_with_a_seed() {
        let p = RetryPolicy::default()
            .with_delays(ms(100), ms(400), 2.0)
            .with_seed(7);
        let mut a = p.backoff();
        let mut b = p.backoff();
        let mut distinct = std::collections::HashSet::new();
        for retry in 0..50 {
            let d = a.next_delay();
            assert!(d <= p.cap(retry), "retry {retry}: {d:?}");
            assert_eq!(d, b.next_delay());
            distinct.insert(d);
        }
        assert!(distinct.len() > 10, "delays are not random: {distinct:?}");
    }

    #[test]
    fn no_jitter_gives_the_caps() {
        let p = RetryPolicy::default()
            .with_delays(ms(10), ms(25), 2.0)
            .with_jitter(Jitter::None);
        let mut b = p.backoff();
        let delays: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [ms(10), ms(20), ms(25), ms(25)]);
    }

    #[test]
    fn permanent_errors_skip_retries_and_limits_stop_them() {
        let p = RetryPolicy::default()
            .with_max_attempts(3)
            .with_jitter(Jitter::None)
            .with_delays(ms(100), ms(100), 1.0)
            .with_max_elapsed(Some(ms(250)));
        let mut b = p.backoff();
        assert_eq!(
            b.decide(1, ErrorKind::Permanent, Duration::ZERO),
            Decision::GiveUp("permanent failure")
        );
        assert_eq!(
            b.decide(1, ErrorKind::Transient, Duration::ZERO),
            Decision::RetryAfter(ms(100))
        );
        assert_eq!(
            b.decide(3, ErrorKind::Transient, ms(200)),
            Decision::GiveUp("retries exhausted")
        );
        assert_eq!(
            b.decide(2, ErrorKind::Transient, ms(200)),
            Decision::GiveUp("retry time exhausted")
        );
    }

    #[test]
    fn handler_errors_keep_their_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e: HandlerError = Outer(std::io::Error::other("disk on fire")).into();
        assert!(!e.is_permanent());
        assert_eq!(e.chain(), ["outer", "disk on fire"]);
        assert_eq!(e.to_string(), "transient failure: outer: disk on fire");
        let p = HandlerError::permanent("bad amount");
        assert!(p.is_permanent());
        assert_eq!(p.chain(), ["bad amount"]);
    }
}
