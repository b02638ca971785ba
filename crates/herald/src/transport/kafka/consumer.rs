//! A member of a Kafka consumer group.
//!
//! A background task polls librdkafka all the time, so the member takes part in
//! rebalances even while its owner is busy and not polling: records go into a bounded
//! buffer per partition (fetching pauses when it is full), and the group's assignments
//! and revocations go through [`GroupContext`], which keeps the buffer and the reported
//! assignment in step with the group. [`Consumer::poll`] takes from the buffer, so it is
//! cancel-safe; [`Consumer::commit`] commits exactly the offsets it is given.
//!
//! With the default (eager) assignors every rebalance revokes all partitions before
//! handing them out again. A partition that comes back to the same member continues
//! where its polls had got to, not at the last commit, so a rebalance redelivers only
//! what moved: the same as the cooperative assignor (which can also be chosen with
//! `partition.assignment.strategy=cooperative-sticky`) and the in-process transports.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use rdkafka::{
    ClientContext, Message, Offset, TopicPartitionList,
    config::RDKafkaLogLevel,
    consumer::{
        BaseConsumer, CommitMode, Consumer as _, ConsumerContext, RebalanceProtocol, StreamConsumer,
    },
    error::KafkaError,
    message::BorrowedMessage,
    types::RDKafkaRespErr,
};
use tokio::sync::{oneshot, watch};

use super::{
    KafkaConfig, LogContext, SecurityFailures, blocking, kafka_error, lock, log_line,
    reader::consumed,
};
use crate::transport::{
    CommitOffset, ConsumedRecord, Consumer, Result, TopicPartition, TransportError,
    validate_topic_name,
};

type GroupClient = StreamConsumer<GroupContext>;

/// A member of a Kafka consumer group, from
/// [`KafkaTransport::subscribe`](crate::transport::Subscriber::subscribe). Dropping it
/// leaves the group (without committing) in the background.
pub struct KafkaConsumer {
    group: String,
    shared: Arc<Shared>,
    /// `None` only while dropping.
    client: Option<Arc<GroupClient>>,
    changes: watch::Receiver<u64>,
    /// Dropped to stop the polling task.
    _stop: oneshot::Sender<()>,
    /// Where the next poll starts taking, so no partition starves the others.
    cursor: usize,
    request_timeout: Duration,
}

impl fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group", &self.group)
            .field("assignment", &self.assignment())
            .finish_non_exhaustive()
    }
}

/// What the polling task, the rebalance callbacks and the member's owner share.
struct Shared {
    group: Arc<str>,
    state: Mutex<State>,
    /// Bumped when records arrive in an empty buffer, the assignment changes or the
    /// member fails.
    changes: watch::Sender<u64>,
    max_buffered: usize,
}

#[derive(Default)]
struct State {
    /// The assigned partitions.
    partitions: BTreeMap<TopicPartition, Position>,
    /// Records in all buffers.
    buffered: usize,
    /// Whether fetching is paused because the buffers are full.
    paused: bool,
    /// Between an eager revocation and the next assignment: where polls had got to on
    /// the revoked partitions, in case they come back.
    retained: HashMap<TopicPartition, u64>,
    /// An eager rebalance is under way (partitions revoked, none assigned yet).
    rebalancing: bool,
    /// The first assignment has arrived.
    joined: bool,
    /// A fatal client error; polls report it once the buffers are empty.
    failed: Option<TransportError>,
}

/// One assigned partition.
#[derive(Default)]
struct Position {
    /// Fetched, not yet polled.
    buffer: VecDeque<ConsumedRecord>,
    /// One past the last record handed out by a poll.
    handed: Option<u64>,
    /// One past the last record fetched; anything below is a duplicate.
    fetched: Option<u64>,
}

impl Shared {
    fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn fail(&self, error: TransportError) {
        lock(&self.state).failed = Some(error);
        self.notify();
    }

    /// Buffers a fetched record, pausing all fetching when the buffers are full.
    fn receive(&self, client: &GroupClient, m: &BorrowedMessage<'_>) {
        let offset = m.offset() as u64;
        let mut state = lock(&self.state);
        let Some(position) = state
            .partitions
            .iter_mut()
            .find(|(tp, _)| tp.partition == m.partition() as u32 && tp.topic == m.topic())
            .map(|(_, p)| p)
        else {
            return; // fetched before a revocation took effect
        };
        if position.fetched.is_some_and(|next| offset < next) {
            return;
        }
        position.fetched = Some(offset + 1);
        position.buffer.push_back(consumed(m));
        state.buffered += 1;
        let wake = state.buffered == 1;
        if state.buffered >= self.max_buffered && !state.paused {
            state.paused = true;
            let all = partition_list(state.partitions.keys());
            if let Err(e) = client.pause(&all) {
                tracing::warn!(group = %self.group, error = %e, "pausing fetches failed");
            }
        }
        drop(state);
        if wake {
            self.notify();
        }
    }
}

impl KafkaConsumer {
    /// Creates the member, subscribes, and waits for the group's first assignment.
    pub(super) async fn join(
        config: &KafkaConfig,
        failures: &Arc<SecurityFailures>,
        group: &str,
        topics: &[&str],
    ) -> Result<Self> {
        if group.is_empty() {
            return Err(TransportError::Kafka {
                operation: "joining a consumer group".into(),
                message: "the group name is empty".into(),
            });
        }
        for topic in topics {
            validate_topic_name(topic)?;
        }
        let (changes, receiver) = watch::channel(0);
        let shared = Arc::new(Shared {
            group: group.into(),
            state: Mutex::default(),
            changes,
            max_buffered: config.max_buffered_records.max(1),
        });
        let operation = || format!("joining consumer group {group}");
        let client: GroupClient = config
            .group_member(group)
            .create_with_context(GroupContext {
                shared: shared.clone(),
                failures: failures.clone(),
            })
            .map_err(|e| kafka_error(operation(), &e))?;
        let client = Arc::new(client);
        if !topics.is_empty() {
            client
                .subscribe(topics)
                .map_err(|e| kafka_error(operation(), &e))?;
        }
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(drive(client.clone(), shared.clone(), stopped));
        let mut consumer = Self {
            group: group.to_owned(),
            shared,
            client: Some(client),
            changes: receiver,
            _stop: stop,
            cursor: 0,
            request_timeout: config.request_timeout,
        };
        if topics.is_empty() {
            return Ok(consumer);
        }
        let deadline = tokio::time::Instant::now() + config.join_timeout;
        let joined = async {
            loop {
                consumer.changes.borrow_and_update();
                let (joined, failed) = {
                    let state = lock(&consumer.shared.state);
                    (state.joined, state.failed.clone())
                };
                if let Some(e) = failed {
                    return Err(e);
                }
                if joined {
                    return Ok(());
                }
                if tokio::time::timeout_at(deadline, consumer.changes.changed())
                    .await
                    .is_err()
                {
                    return Err(TransportError::Kafka {
                        operation: operation().into(),
                        message: format!(
                            "no partition assignment within {:?} (is the cluster reachable at \
                             {}?)",
                            config.join_timeout, config.bootstrap_servers
                        )
                        .into(),
                    });
                }
            }
        };
        failures.guard(operation(), joined).await?;
        Ok(consumer)
    }

    fn client(&self) -> &Arc<GroupClient> {
        self.client
            .as_ref()
            .expect("the client lives as long as the consumer")
    }

    /// Takes up to `max` buffered records, a partition at a time from a rotating start.
    fn take(&mut self, max: usize) -> Result<Vec<ConsumedRecord>> {
        let mut state = lock(&self.shared.state);
        if state.buffered == 0 {
            return match &state.failed {
                Some(e) => Err(e.clone()),
                None => Ok(Vec::new()),
            };
        }
        let ready: Vec<TopicPartition> = state
            .partitions
            .iter()
            .filter(|(_, p)| !p.buffer.is_empty())
            .map(|(tp, _)| tp.clone())
            .collect();
        let start = self.cursor % ready.len();
        self.cursor = self.cursor.wrapping_add(1);
        let mut out = Vec::new();
        for i in 0..ready.len() {
            let position = state
                .partitions
                .get_mut(&ready[(start + i) % ready.len()])
                .expect("listed above");
            while out.len() < max {
                let Some(record) = position.buffer.pop_front() else {
                    break;
                };
                position.handed = Some(record.offset + 1);
                out.push(record);
            }
        }
        state.buffered -= out.len();
        if state.paused && state.buffered <= self.shared.max_buffered / 2 {
            state.paused = false;
            let all = partition_list(state.partitions.keys());
            if let Err(e) = self.client().resume(&all) {
                tracing::warn!(group = %self.group, error = %e, "resuming fetches failed");
            }
        }
        Ok(out)
    }
}

impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max_records: usize) -> Result<Vec<ConsumedRecord>> {
        let max_records = max_records.max(1);
        loop {
            // Mark the current version seen before looking, so that a change landing
            // while we look wakes the wait below.
            self.changes.borrow_and_update();
            let records = self.take(max_records)?;
            if !records.is_empty() {
                return Ok(records);
            }
            self.changes
                .changed()
                .await
                .map_err(|_| TransportError::Closed)?;
        }
    }

    async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<()> {
        let mut owned = TopicPartitionList::new();
        let mut waiting = 0;
        {
            let state = lock(&self.shared.state);
            for c in offsets {
                let tp = &c.partition;
                if state.partitions.contains_key(tp) {
                    owned
                        .add_partition_offset(
                            &tp.topic,
                            tp.partition as i32,
                            Offset::Offset(c.offset as i64),
                        )
                        .map_err(|e| kafka_error("committing offsets", &e))?;
                } else if state.rebalancing && state.retained.contains_key(tp) {
                    waiting += 1;
                } else {
                    tracing::debug!(group = %self.group, partition = %tp, offset = c.offset, "commit for a partition this member does not own; dropped");
                }
            }
        }
        let operation = || format!("committing offsets of group {}", self.group);
        if owned.count() > 0 {
            let client = self.client().clone();
            let commit = blocking("committing offsets", move || {
                client.commit(&owned, CommitMode::Sync)
            });
            match tokio::time::timeout(self.request_timeout, commit).await {
                Err(_) => {
                    return Err(TransportError::Kafka {
                        operation: operation().into(),
                        message: format!("no answer within {:?}", self.request_timeout).into(),
                    });
                }
                Ok(done) => done?.map_err(|e| kafka_error(operation(), &e))?,
            }
        }
        if waiting > 0 {
            return Err(TransportError::Kafka {
                operation: operation().into(),
                message: format!(
                    "a rebalance is under way and {waiting} of the partitions may come back \
                     to this member; commit again once it completes"
                )
                .into(),
            });
        }
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        lock(&self.shared.state)
            .partitions
            .keys()
            .cloned()
            .collect()
    }

    fn group(&self) -> &str {
        &self.group
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // The polling task sees `_stop` go and closes the client (leaving the group);
        // this handle's reference must not be the one that blocks an async worker.
        if let Some(client) = self.client.take() {
            close_in_background(client);
        }
    }
}

/// Drops a group client where blocking is allowed: the last reference closes it, which
/// waits for librdkafka to leave the group.
fn close_in_background(client: Arc<GroupClient>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(client));
        }
        Err(_) => drop(client),
    }
}

/// The member's polling task: fetched records into the buffers, rebalances through the
/// context, until the member is dropped or the client fails for good.
async fn drive(client: Arc<GroupClient>, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            received = client.recv() => match received {
                Ok(m) => shared.receive(&client, &m),
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e @ KafkaError::MessageConsumptionFatal(_)) => {
                    tracing::error!(group = %shared.group, error = %e, "consumer failed");
                    shared.fail(kafka_error(format!("consuming for group {}", shared.group), &e));
                    break;
                }
                Err(e) => {
                    tracing::warn!(group = %shared.group, error = %e, "consumer error (librdkafka retries)");
                }
            },
        }
    }
    close_in_background(client);
}

/// The rebalance-aware context of a group member: keeps the reported assignment and the
/// buffers in step with the group.
struct GroupContext {
    shared: Arc<Shared>,
    /// The transport's: a refused login fails the join at once.
    failures: Arc<SecurityFailures>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_line(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", group = %self.shared.group, %error, reason, "kafka client error");
        self.failures.record(&error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let listed = partitions_of(tpl);
        let group = &self.shared.group;
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let paused = self.assign(&listed, tpl, cooperative);
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned {
                    tracing::error!(%group, error = %e, "taking the assigned partitions failed");
                }
                // librdkafka keeps a partition's pause across reassignments: make the
                // newly assigned ones match the buffers.
                let aligned = if paused {
                    consumer.pause(tpl)
                } else {
                    consumer.resume(tpl)
                };
                if let Err(e) = aligned {
                    tracing::warn!(%group, error = %e, "pausing or resuming assigned partitions failed");
                }
                tracing::info!(%group, partitions = ?listed, "partitions assigned");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(&listed, cooperative, consumer.assignment_lost());
                let revoked = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = revoked {
                    tracing::error!(%group, error = %e, "giving up the revoked partitions failed");
                }
                tracing::info!(%group, partitions = ?listed, "partitions revoked");
            }
            other => {
                tracing::error!(%group, error = ?other, "rebalance failed; giving up all partitions");
                let all: Vec<TopicPartition> = lock(&self.shared.state)
                    .partitions
                    .keys()
                    .cloned()
                    .collect();
                self.revoke(&all, cooperative, true);
                let revoked = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = revoked {
                    tracing::error!(%group, error = %e, "giving up the partitions failed");
                }
            }
        }
        self.shared.notify();
    }
}

impl GroupContext {
    /// Records an assignment; partitions an eager rebalance gives back continue where
    /// the polls had got to (their offset is set in `tpl`). Returns whether fetching is
    /// paused.
    fn assign(
        &self,
        listed: &[TopicPartition],
        tpl: &mut TopicPartitionList,
        cooperative: bool,
    ) -> bool {
        let mut state = lock(&self.shared.state);
        if !cooperative {
            state.partitions.clear();
            state.buffered = 0;
            state.paused = false;
        }
        for tp in listed {
            let mut position = Position::default();
            if let Some(&at) = state.retained.get(tp) {
                if let Err(e) = tpl.set_partition_offset(
                    &tp.topic,
                    tp.partition as i32,
                    Offset::Offset(at as i64),
                ) {
                    tracing::warn!(group = %self.shared.group, partition = %tp, error = %e, "cannot keep the position; reading from the commit");
                } else {
                    position.handed = Some(at);
                    position.fetched = Some(at);
                }
            }
            state.partitions.entry(tp.clone()).or_insert(position);
        }
        state.retained.clear();
        state.rebalancing = false;
        state.joined = true;
        state.paused
    }

    /// Forgets revoked partitions and their buffered records (the next owner reads them
    /// again). Under the eager protocol, unless the assignment was lost, remembers where
    /// polls had got to in case the partitions come back.
    fn revoke(&self, listed: &[TopicPartition], cooperative: bool, lost: bool) {
        let mut state = lock(&self.shared.state);
        for tp in listed {
            if let Some(position) = state.partitions.remove(tp) {
                state.buffered -= position.buffer.len();
                if !cooperative
                    && !lost
                    && let Some(handed) = position.handed
                {
                    state.retained.insert(tp.clone(), handed);
                }
            }
        }
        if !cooperative {
            state.rebalancing = true;
            state.paused = false;
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition() as u32))
        .collect()
}

fn partition_list<'a>(partitions: impl Iterator<Item = &'a TopicPartition>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for tp in partitions {
        tpl.add_partition(&tp.topic, tp.partition as i32);
    }
    tpl
}

/// The committed offset of `group` for `tp`, read without joining the group.
pub(super) fn committed_offset(
    config: &KafkaConfig,
    context: LogContext,
    group: &str,
    tp: &TopicPartition,
) -> Result<Option<u64>> {
    let operation = || format!("reading the committed offset of group {group} for {tp}");
    let client: BaseConsumer<LogContext> = config
        .group_member(group)
        .create_with_context(context)
        .map_err(|e| kafka_error(operation(), &e))?;
    let tpl = partition_list(std::iter::once(tp));
    let found = client
        .committed_offsets(tpl, config.request_timeout)
        .map_err(|e| kafka_error(operation(), &e))?;
    let offset = found
        .find_partition(&tp.topic, tp.partition as i32)
        .map(|e| e.offset());
    Ok(match offset {
        Some(Offset::Offset(n)) if n >= 0 => Some(n as u64),
        _ => None,
    })
}
