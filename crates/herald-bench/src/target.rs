//! One workload, many systems: the [`Target`] a scenario drives, and the scenario
//! drivers themselves.
//!
//! A target hands out [`Producer`]s and [`Consumer`]s on a named stream (a Kafka topic,
//! a JetStream stream, a Redis stream, a RabbitMQ queue). Both are used from one plain
//! thread each; clients that are async inside block on their own runtime. Every driver
//! here is the same code for every target: what differs between systems is only how a
//! producer keeps messages in flight and how a consumer fetches and acknowledges.
//!
//! - [`throughput`]: producers send as fast as their acknowledgements allow for a slot,
//!   then wait for every acknowledgement; the rate counts acknowledged messages only.
//! - [`latency`]: one producer on a fixed-rate schedule ([`Pacer`]), one consumer; each
//!   message carries its scheduled send time and the consumer records the difference.
//! - [`fan_out`]: one producer at full speed, one consumer per group; the rate counts
//!   deliveries to all groups until the last group has every message.
//! - [`catch_up`]: a backlog written first, then read by one consumer from the start.

use std::{
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    BenchError, Result,
    latency::{Clock, Latencies, LatencySummary, PACING_TICK, Pacer, read_stamp, write_stamp},
};

/// Messages handed to [`Producer::send`] per call by the full-speed drivers.
pub const SEND_CHUNK: usize = 64;

/// How long a consumer waits for messages still on their way after the producer is done.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How far a fixed-rate producer may fall behind its schedule before the run gives up
/// (and reports the rate as not sustained): keeps a slow system's run to seconds.
pub const BEHIND_LIMIT: Duration = Duration::from_secs(2);

/// What a producer is tuned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Batching on: as many messages per request as the client allows.
    Throughput,
    /// Send each message as soon as it is due (clients may still batch what queued up).
    Latency,
}

/// Sends messages to one stream and counts their acknowledgements.
pub trait Producer: Send {
    /// Sends every payload, keeping as many in flight as the client is configured for;
    /// may block while its window of unacknowledged messages is full.
    fn send(&mut self, payloads: &[&[u8]]) -> Result<()>;
    /// Waits until every message sent so far is acknowledged (durable as the target's
    /// mode says); returns how many have been acknowledged since the producer was made.
    fn flush(&mut self) -> Result<u64>;
}

/// Receives messages of one stream as one member of a consumer group, acknowledging
/// (committing) what it received.
pub trait Consumer: Send {
    /// Waits up to `max_wait` for messages and calls `on_message` with each payload, in
    /// order; returns how many it delivered (0 on timeout).
    fn poll(&mut self, max_wait: Duration, on_message: &mut dyn FnMut(&[u8])) -> Result<usize>;
}

/// A system under test in one mode (durability setting).
pub trait Target: Send + Sync {
    /// Short name, e.g. `herald-kafka`, `nats (sync always)`.
    fn name(&self) -> String;
    /// The settings that matter for comparing it, printed with the results.
    fn settings(&self) -> String;
    /// Whether the target acknowledges a message only after it was fsynced (the mode the
    /// throughput goal compares), as opposed to a default that syncs later or never.
    fn fsync_before_ack(&self) -> bool;
    /// Creates `stream` afresh (removing an old one of that name) with consumer groups
    /// `groups`, each positioned at the start.
    fn create_stream(&self, stream: &str, groups: &[String]) -> Result<()>;
    /// Removes `stream` and its groups.
    fn delete_stream(&self, stream: &str) -> Result<()>;
    /// A producer on `stream`.
    fn producer(&self, stream: &str, profile: Profile) -> Result<Box<dyn Producer>>;
    /// A consumer of `stream` in group `group` (one of those it was created with).
    fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn Consumer>>;
}

/// A payload of `bytes` bytes (at least the stamp) filled with `x`.
pub fn payload(bytes: usize) -> Vec<u8> {
    vec![b'x'; bytes.max(crate::latency::STAMP_BYTES)]
}

/// Acknowledged messages and the time they took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Messages counted.
    pub messages: u64,
    /// Time from the start until the last one was acknowledged (or delivered).
    pub elapsed: Duration,
}

impl Rate {
    /// Messages per second.
    pub fn per_sec(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Runs `producers` (made beforehand, so connecting is not timed) at full speed for
/// `slot` with payloads of `bytes`, then flushes each; returns the acknowledged messages
/// and the time until the last producer's flush returned.
pub fn throughput(
    producers: &mut [Box<dyn Producer>],
    bytes: usize,
    slot: Duration,
) -> Result<Rate> {
    let payload = payload(bytes);
    let chunk: Vec<&[u8]> = vec![&payload; SEND_CHUNK];
    let start_line = Barrier::new(producers.len() + 1);
    let (started, results) = thread::scope(|s| {
        let handles: Vec<_> = producers
            .iter_mut()
            .map(|producer| {
                let (chunk, start_line) = (&chunk, &start_line);
                // Named, so that a profile tells the load generator from the system.
                thread::Builder::new()
                    .name("bench-producer".into())
                    .spawn_scoped(s, move || -> Result<u64> {
                        let before = producer.flush()?;
                        start_line.wait();
                        let deadline = Instant::now() + slot;
                        while Instant::now() < deadline {
                            producer.send(chunk)?;
                        }
                        Ok(producer.flush()? - before)
                    })
                    .expect("spawn a producer thread")
            })
            .collect();
        start_line.wait();
        let started = Instant::now();
        let results: Vec<_> = handles.into_iter().map(join).collect();
        (started, results)
    });
    let elapsed = started.elapsed();
    let messages = results.into_iter().sum::<Result<u64>>()?;
    Ok(Rate { messages, elapsed })
}

/// The outcome of one fixed-rate latency run.
#[derive(Debug, Clone)]
pub struct LatencyRun {
    /// Messages per second asked for.
    pub target_rate: f64,
    /// Messages sent.
    pub sent: u64,
    /// Messages the consumer received (at most `sent`).
    pub received: u64,
    /// Received messages per second, from the first scheduled send to the last receive.
    pub achieved_rate: f64,
    /// The latencies of every received message.
    pub latencies: Latencies,
    /// Messages in the schedule (more than `sent` if the producer fell
    /// [`BEHIND_LIMIT`] behind and gave up).
    pub scheduled: u64,
}

impl LatencyRun {
    /// p50, p99, p99.9, max.
    pub fn summary(&self) -> LatencySummary {
        self.latencies.summary()
    }

    /// Whether the system kept up: the whole schedule was sent, every message arrived,
    /// and at no less than 95% of the asked rate.
    pub fn sustained(&self) -> bool {
        self.sent == self.scheduled
            && self.received == self.sent
            && self.achieved_rate >= 0.95 * self.target_rate
    }
}

/// Stamp of a warm-up message: delivered like any other, never recorded.
const WARM_UP_STAMP: u64 = 0;

/// One producer sends `rate` messages per second of `bytes` bytes for `duration` while
/// `consumer` records each message's latency. A few warm-up messages go first, and the
/// schedule starts only once the consumer has received one, so that connecting and the
/// first fetch are not counted.
pub fn latency(
    producer: &mut dyn Producer,
    consumer: &mut dyn Consumer,
    bytes: usize,
    rate: f64,
    duration: Duration,
) -> Result<LatencyRun> {
    let clock = Clock::new();
    warm_up(producer, consumer, bytes)?;
    let pacer = Pacer::new(rate, duration);
    let done_sending = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    // The schedule's length until the producer is done, then what it really sent.
    let sent_count = AtomicU64::new(pacer.total());
    let (sent, consumed) = thread::scope(|s| {
        let (done_sending, received_count, sent_count) = (&done_sending, &received, &sent_count);
        let consumer_thread = s.spawn(move || -> Result<(Latencies, Instant)> {
            let mut latencies = Latencies::new();
            let mut last = Instant::now();
            let mut drain_deadline = None;
            loop {
                let target = sent_count.load(Ordering::Acquire);
                if received_count.load(Ordering::Acquire) >= target {
                    break;
                }
                let n = consumer.poll(Duration::from_millis(50), &mut |payload| {
                    if let Some(stamp) = read_stamp(payload)
                        && stamp != WARM_UP_STAMP
                    {
                        latencies.record(clock.since(stamp));
                        received_count.fetch_add(1, Ordering::AcqRel);
                    }
                })?;
                if n > 0 {
                    last = Instant::now();
                }
                if done_sending.load(Ordering::Acquire) {
                    let deadline = *drain_deadline.get_or_insert(Instant::now() + DRAIN_TIMEOUT);
                    if Instant::now() > deadline {
                        break;
                    }
                }
            }
            Ok((latencies, last))
        });
        let sent = paced_send(producer, &clock, &pacer, bytes);
        if let Ok((_, n)) = &sent {
            sent_count.store(*n, Ordering::Release);
        }
        done_sending.store(true, Ordering::Release);
        (sent, join(consumer_thread))
    });
    let (started, sent) = sent?;
    let (latencies, last) = consumed?;
    let received = received.load(Ordering::Acquire).min(sent);
    let span = last.saturating_duration_since(started).as_secs_f64();
    Ok(LatencyRun {
        target_rate: rate,
        sent,
        received,
        achieved_rate: if span > 0.0 {
            received as f64 / span
        } else {
            0.0
        },
        latencies,
        scheduled: pacer.total(),
    })
}

/// Sends warm-up messages until the consumer sees one (at most [`DRAIN_TIMEOUT`]).
fn warm_up(producer: &mut dyn Producer, consumer: &mut dyn Consumer, bytes: usize) -> Result<()> {
    let mut message = payload(bytes);
    write_stamp(&mut message, WARM_UP_STAMP);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        producer.send(&[&message])?;
        producer.flush()?;
        if consumer.poll(Duration::from_millis(200), &mut |_| {})? > 0 {
            // Take what else is queued, so the run starts from an empty pipeline.
            while consumer.poll(Duration::from_millis(20), &mut |_| {})? > 0 {}
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: "warm-up message to reach the consumer".into(),
                after: DRAIN_TIMEOUT,
            });
        }
    }
}

/// Sends the schedule of `pacer`, each message stamped with its scheduled time; returns
/// the start and the messages sent.
fn paced_send(
    producer: &mut dyn Producer,
    clock: &Clock,
    pacer: &Pacer,
    bytes: usize,
) -> Result<(Instant, u64)> {
    let mut buffers: Vec<Vec<u8>> = Vec::new();
    let started = Instant::now();
    let mut sent = 0;
    while sent < pacer.total() {
        let elapsed = started.elapsed();
        if elapsed > pacer.due_at(sent) + BEHIND_LIMIT {
            break;
        }
        // At most SEND_CHUNK per call, so a system that blocks the producer is noticed
        // falling behind within one chunk.
        let due = pacer.due_by(elapsed).min(sent + SEND_CHUNK as u64);
        if due > sent {
            let n = (due - sent) as usize;
            if buffers.len() < n {
                buffers.resize_with(n, || payload(bytes));
            }
            for (k, buf) in buffers[..n].iter_mut().enumerate() {
                let at = started + pacer.due_at(sent + k as u64);
                write_stamp(buf, clock.nanos_at(at).max(WARM_UP_STAMP + 1));
            }
            let batch: Vec<&[u8]> = buffers[..n].iter().map(Vec::as_slice).collect();
            producer.send(&batch)?;
            sent = due;
        }
        let next = started + pacer.due_at(sent);
        let now = Instant::now();
        if next > now {
            thread::sleep((next - now).min(PACING_TICK));
        }
    }
    producer.flush()?;
    Ok((started, sent))
}

/// Outcome of a fan-out run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanOut {
    /// Messages the producer had acknowledged.
    pub produced: u64,
    /// Deliveries to all groups together, until the last group had every message.
    pub delivered: Rate,
    /// Whether every group received every message within the drain timeout.
    pub complete: bool,
}

/// One producer at full speed for `slot`, one consumer per group reading concurrently.
pub fn fan_out(
    producer: &mut dyn Producer,
    consumers: &mut [Box<dyn Consumer>],
    bytes: usize,
    slot: Duration,
) -> Result<FanOut> {
    let produced_total = AtomicU64::new(u64::MAX);
    let started = Instant::now();
    let (produced, per_group) = thread::scope(|s| {
        let produced_total = &produced_total;
        let handles: Vec<_> = consumers
            .iter_mut()
            .map(|consumer| {
                s.spawn(move || -> Result<(u64, Instant)> {
                    let mut got = 0_u64;
                    let mut last = Instant::now();
                    let mut deadline = None;
                    loop {
                        let total = produced_total.load(Ordering::Acquire);
                        if got >= total {
                            return Ok((got, last));
                        }
                        if total != u64::MAX {
                            let d = *deadline.get_or_insert(Instant::now() + DRAIN_TIMEOUT);
                            if Instant::now() > d {
                                return Ok((got, last));
                            }
                        }
                        let n = consumer.poll(Duration::from_millis(50), &mut |_| {})?;
                        if n > 0 {
                            got += n as u64;
                            last = Instant::now();
                        }
                    }
                })
            })
            .collect();
        let produced = (|| -> Result<u64> {
            let before = producer.flush()?;
            let payload = payload(bytes);
            let chunk: Vec<&[u8]> = vec![&payload; SEND_CHUNK];
            while started.elapsed() < slot {
                producer.send(&chunk)?;
            }
            Ok(producer.flush()? - before)
        })();
        // On a producer error, let the consumers stop at once.
        produced_total.store(*produced.as_ref().unwrap_or(&0), Ordering::Release);
        let per_group: Vec<_> = handles.into_iter().map(join).collect();
        (produced, per_group)
    });
    let produced = produced?;
    let per_group = per_group.into_iter().collect::<Result<Vec<_>>>()?;
    let complete = per_group.iter().all(|(got, _)| *got >= produced);
    let last = per_group
        .iter()
        .map(|(_, last)| *last)
        .max()
        .unwrap_or(started);
    Ok(FanOut {
        produced,
        delivered: Rate {
            messages: per_group.iter().map(|(got, _)| (*got).min(produced)).sum(),
            elapsed: last.saturating_duration_since(started),
        },
        complete,
    })
}

/// Outcome of a catch-up run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatchUp {
    /// Messages written before the read (the target backlog, or fewer if writing it hit
    /// the time bound).
    pub backlog: u64,
    /// How fast the backlog was written.
    pub fill: Rate,
    /// How fast one consumer read it back.
    pub read: Rate,
}

/// Writes a backlog of up to `messages` with `producers` (stopping early after
/// `fill_bound`), then makes a consumer with `consumer` and reads the backlog from the
/// start, for at most `read_bound` (connecting counts as part of the read).
pub fn catch_up(
    producers: &mut [Box<dyn Producer>],
    consumer: impl FnOnce() -> Result<Box<dyn Consumer>>,
    bytes: usize,
    messages: u64,
    fill_bound: Duration,
    read_bound: Duration,
) -> Result<CatchUp> {
    let payload = payload(bytes);
    let chunk: Vec<&[u8]> = vec![&payload; SEND_CHUNK];
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let results: Vec<Result<u64>> = thread::scope(|s| {
        let handles: Vec<_> = producers
            .iter_mut()
            .map(|producer| {
                let (chunk, claimed) = (&chunk, claimed.clone());
                s.spawn(move || -> Result<u64> {
                    let before = producer.flush()?;
                    loop {
                        let at = claimed.fetch_add(SEND_CHUNK as u64, Ordering::AcqRel);
                        if at >= messages || started.elapsed() > fill_bound {
                            break;
                        }
                        let n = ((messages - at) as usize).min(SEND_CHUNK);
                        producer.send(&chunk[..n])?;
                    }
                    Ok(producer.flush()? - before)
                })
            })
            .collect();
        handles.into_iter().map(join).collect()
    });
    let backlog = results.into_iter().sum::<Result<u64>>()?;
    let fill = Rate {
        messages: backlog,
        elapsed: started.elapsed(),
    };
    let read_started = Instant::now();
    let mut consumer = consumer()?;
    let mut read = 0_u64;
    while read < backlog && read_started.elapsed() < read_bound {
        read += consumer.poll(Duration::from_millis(200), &mut |_| {})? as u64;
    }
    Ok(CatchUp {
        backlog,
        fill,
        read: Rate {
            messages: read.min(backlog),
            elapsed: read_started.elapsed(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, sync::Mutex};

    use super::*;

    /// An in-memory queue behind both traits: what the drivers count must be what went
    /// through it.
    #[derive(Clone, Default)]
    struct Pipe {
        queue: Arc<Mutex<VecDeque<Vec<u8>>>>,
        acked: Arc<AtomicU64>,
    }

    impl Producer for Pipe {
        fn send(&mut self, payloads: &[&[u8]]) -> Result<()> {
            let mut q = self.queue.lock().unwrap();
            q.extend(payloads.iter().map(|p| p.to_vec()));
            self.acked
                .fetch_add(payloads.len() as u64, Ordering::AcqRel);
            Ok(())
        }
        fn flush(&mut self) -> Result<u64> {
            Ok(self.acked.load(Ordering::Acquire))
        }
    }

    impl Consumer for Pipe {
        fn poll(&mut self, max_wait: Duration, on_message: &mut dyn FnMut(&[u8])) -> Result<usize> {
            let batch: Vec<_> = self.queue.lock().unwrap().drain(..).collect();
            if batch.is_empty() {
                thread::sleep(max_wait.min(Duration::from_millis(1)));
            }
            batch.iter().for_each(|p| on_message(p));
            Ok(batch.len())
        }
    }

    #[test]
    fn latency_counts_every_scheduled_message_and_skips_the_warm_up() {
        let pipe = Pipe::default();
        let (mut producer, mut consumer) = (pipe.clone(), pipe);
        let run = latency(
            &mut producer,
            &mut consumer,
            100,
            2000.0,
            Duration::from_millis(200),
        )
        .unwrap();
        assert_eq!(run.sent, 400);
        assert_eq!(run.received, 400);
        assert_eq!(run.latencies.count(), 400);
        assert!(run.sustained(), "{run:?}");
        assert!(run.summary().p50 < Duration::from_millis(50), "{run:?}");
    }

    #[test]
    fn throughput_counts_acknowledged_messages_of_all_producers() {
        let mut producers: Vec<Box<dyn Producer>> =
            vec![Box::new(Pipe::default()), Box::new(Pipe::default())];
        let rate = throughput(&mut producers, 100, Duration::from_millis(20)).unwrap();
        assert!(rate.messages >= 2 * SEND_CHUNK as u64);
        assert_eq!(rate.messages % SEND_CHUNK as u64, 0);
        // The clock starts as the producers do (a barrier apart), and they run 20 ms.
        assert!(rate.elapsed >= Duration::from_millis(15), "{rate:?}");
    }

    #[test]
    fn catch_up_writes_exactly_the_backlog_and_reads_it_back() {
        let pipe = Pipe::default();
        // Two producers on one queue, each counting its own acknowledgements.
        let producer = || Pipe {
            queue: pipe.queue.clone(),
            acked: Arc::default(),
        };
        let mut producers: Vec<Box<dyn Producer>> =
            vec![Box::new(producer()), Box::new(producer())];
        let consumer = pipe.clone();
        let c = catch_up(
            &mut producers,
            || Ok(Box::new(consumer)),
            10,
            1000,
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(c.backlog, 1000);
        assert_eq!(c.read.messages, 1000);
        assert!(pipe.queue.lock().unwrap().is_empty());
    }

    #[test]
    fn rate_per_second() {
        let r = Rate {
            messages: 500,
            elapsed: Duration::from_millis(250),
        };
        assert_eq!(r.per_sec(), 2000.0);
        assert_eq!(
            Rate {
                messages: 1,
                elapsed: Duration::ZERO
            }
            .per_sec(),
            0.0
        );
    }
}
