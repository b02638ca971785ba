//! The group coordinator: Kafka's classic consumer-group protocol and committed offsets.
//!
//! [`GroupCoordinator`] answers FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups and DeleteGroups,
//! taking and returning `kafka_protocol` messages at the version the client negotiated
//! (the `*_VERSIONS` constants say which versions each handler supports and is tested
//! with). Herald is a single node, so it coordinates every group itself.
//!
//! - Groups follow Kafka's states (`Empty`, `PreparingRebalance`, `CompletingRebalance`,
//!   `Stable`, `Dead`): member ids `<client id>-<uuid>`, the JoinGroup v4+
//!   MEMBER_ID_REQUIRED round trip, generations, a leader that receives every member's
//!   metadata and whose SyncGroup assignment is handed to all members, session timeouts
//!   that evict silent members, rebalance timeouts that drop members that do not rejoin,
//!   and a short initial rebalance delay for an empty group
//!   ([`GroupConfig::initial_rebalance_delay`], Kafka's `group.initial.rebalance.delay.ms`).
//!   Membership lives in memory only: after a restart members get UNKNOWN_MEMBER_ID and
//!   rejoin, as after a Kafka coordinator moves without its group metadata.
//! - Static membership (`group.instance.id`, KIP-345) as Kafka does it: a restarted
//!   instance (JoinGroup with its instance id and no member id) takes its old place
//!   under a new member id, and the old id's requests get FENCED_INSTANCE_ID. In a
//!   stable group whose protocol choice does not change that needs no rebalance: the
//!   member is answered from the current generation and gets its old assignment back
//!   from SyncGroup, so the other members notice nothing (a restarted leader is told
//!   the old leader id before JoinGroup v9, and `skip_assignment` from v9, KIP-814). A
//!   static member that has not rejoined keeps its place through a rebalance until its
//!   session times out: the session timeout is the only trigger. LeaveGroup by
//!   instance id (KIP-345 batch leave) works.
//! - Committed offsets are records in a herald-log [`Log`](herald_log::Log) at
//!   `<dir>/__consumer_offsets-0` (format in `codec.rs`); an OffsetCommit is answered only
//!   once its batch is durable, and [`GroupCoordinator::open`] replays the log. Commits are
//!   accepted for any topic name (the coordinator does not know the topic list; the
//!   dispatcher may refuse unknown topics before calling it). See `offsets.rs` for how the
//!   log's growth is bounded.
//!
//! ```
//! use herald_broker::group::{CoordinatorNode, GroupConfig, GroupCoordinator};
//! use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let node = CoordinatorNode { node_id: 1, host: "127.0.0.1".into(), port: 9092 };
//! let coordinator = GroupCoordinator::open(dir.path(), GroupConfig::default(), node)?;
//! let request = FindCoordinatorRequest::default().with_key("my-group".into());
//! let response: FindCoordinatorResponse = coordinator.find_coordinator(request, 2).await;
//! assert_eq!((response.error_code, response.port), (0, 9092));
//! coordinator.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod admin;
mod codec;
mod handlers;
mod members;
mod offsets;
mod rebalance;
mod state;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak, atomic::AtomicBool},
    time::Duration,
};

use herald_log::{Durability, LogError};
use thiserror::Error;
use tokio::sync::watch;

pub use handlers::ClientInfo;
pub(crate) use handlers::join_error;
pub use state::GroupState;

use offsets::OffsetStore;
use state::{Group, now_ms};

/// FindCoordinator versions handled (v4+ is the batched `coordinator_keys` form).
pub const FIND_COORDINATOR_VERSIONS: (i16, i16) = (0, 4);
/// JoinGroup versions handled (v4+ has the MEMBER_ID_REQUIRED round trip).
pub const JOIN_GROUP_VERSIONS: (i16, i16) = (0, 9);
/// SyncGroup versions handled.
pub const SYNC_GROUP_VERSIONS: (i16, i16) = (0, 5);
/// Heartbeat versions handled.
pub const HEARTBEAT_VERSIONS: (i16, i16) = (0, 4);
/// LeaveGroup versions handled (v3+ leaves several members at once).
pub const LEAVE_GROUP_VERSIONS: (i16, i16) = (0, 5);
/// OffsetCommit versions handled (the codec's oldest is v2).
pub const OFFSET_COMMIT_VERSIONS: (i16, i16) = (2, 9);
/// OffsetFetch versions handled (v8+ is the batched `groups` form; the codec's oldest is v1).
pub const OFFSET_FETCH_VERSIONS: (i16, i16) = (1, 9);
/// ListGroups versions handled (v4 adds the states filter, v5 the types filter).
pub const LIST_GROUPS_VERSIONS: (i16, i16) = (0, 5);
/// DescribeGroups versions handled.
pub const DESCRIBE_GROUPS_VERSIONS: (i16, i16) = (0, 5);
/// DeleteGroups versions handled.
pub const DELETE_GROUPS_VERSIONS: (i16, i16) = (0, 2);

/// Settings of the group coordinator. Defaults are Kafka's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// Smallest session timeout a member may ask for (`group.min.session.timeout.ms`, 6 s).
    pub min_session_timeout: Duration,
    /// Largest session timeout a member may ask for (`group.max.session.timeout.ms`, 30 min).
    pub max_session_timeout: Duration,
    /// How long the first rebalance of an empty group waits for more members, extended
    /// by the same amount while members keep arriving, up to the rebalance timeout
    /// (`group.initial.rebalance.delay.ms`, 3 s).
    pub initial_rebalance_delay: Duration,
    /// Offsets of a group without members are deleted this long after the later of their
    /// commit and the group becoming empty (`offsets.retention.minutes`, 7 days).
    pub offsets_retention: Duration,
    /// How often expired offsets are deleted, empty groups without offsets forgotten and
    /// the offsets log compacted (`offsets.retention.check.interval.ms`, 10 min).
    pub maintenance_interval: Duration,
    /// Longest commit metadata accepted (`offset.metadata.max.bytes`, 4096).
    pub max_metadata_bytes: usize,
    /// When an offset commit counts as durable (default: group commit, no added delay).
    pub offsets_durability: Durability,
    /// Segment size of the offsets log; old segments are deleted after a snapshot.
    pub offsets_segment_bytes: u64,
    /// Largest batch (one OffsetCommit request) the offsets log accepts.
    pub offsets_max_batch_bytes: u32,
    /// The offsets log is rewritten as a snapshot once it holds at least this many
    /// records and more than twice as many as there are live offsets.
    pub offsets_compaction_min_records: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(30 * 60),
            initial_rebalance_delay: Duration::from_secs(3),
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            maintenance_interval: Duration::from_secs(600),
            max_metadata_bytes: 4096,
            offsets_durability: Durability::group_commit(),
            offsets_segment_bytes: 16 << 20,
            offsets_max_batch_bytes: 8 << 20,
            offsets_compaction_min_records: 100_000,
        }
    }
}

impl GroupConfig {
    /// Checks the settings, saying what is wrong in words a user can act on.
    pub fn validate(&self) -> Result<(), GroupError> {
        let bad = |m: String| Err(GroupError::InvalidConfig(m));
        if self.min_session_timeout > self.max_session_timeout {
            return bad(format!(
                "min_session_timeout ({:?}) exceeds max_session_timeout ({:?})",
                self.min_session_timeout, self.max_session_timeout
            ));
        }
        if self.maintenance_interval.is_zero() {
            return bad("maintenance_interval must be above zero".into());
        }
        if u64::from(self.offsets_max_batch_bytes) > self.offsets_segment_bytes {
            return bad(format!(
                "offsets_max_batch_bytes ({}) exceeds offsets_segment_bytes ({})",
                self.offsets_max_batch_bytes, self.offsets_segment_bytes
            ));
        }
        Ok(())
    }
}

/// Where clients find the coordinator: this broker, as FindCoordinator reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorNode {
    /// Broker node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised Kafka port.
    pub port: i32,
}

/// Why the coordinator could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GroupError {
    /// A setting is out of range.
    #[error("invalid group coordinator configuration: {0}")]
    InvalidConfig(String),
    /// The offsets log could not be opened or read.
    #[error("cannot open the committed-offsets log {path}: {source}")]
    OpenLog {
        /// The log directory.
        path: PathBuf,
        /// What the log reported.
        #[source]
        source: LogError,
    },
    /// A record of the offsets log cannot be decoded; nothing is guessed.
    #[error("corrupt committed-offsets record in {path} at offset {offset}: {reason}")]
    CorruptOffsets {
        /// The log directory.
        path: PathBuf,
        /// Log offset of the batch holding the bad record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Rewriting the offsets snapshot on open failed.
    #[error("cannot write the committed-offsets snapshot in {path}: {source}")]
    Snapshot {
        /// The log directory.
        path: PathBuf,
        /// What the log reported.
        #[source]
        source: LogError,
    },
    /// The coordinator was shut down while opening.
    #[error("the group coordinator is shut down")]
    Closed,
}

/// One committed offset, for lag metrics and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommittedOffset {
    /// Group id.
    pub group: String,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The committed offset: the next record the group will read.
    pub offset: i64,
    /// Leader epoch the client sent with the commit, or -1.
    pub leader_epoch: i32,
    /// Client metadata sent with the commit ("" if none).
    pub metadata: String,
    /// When the commit was made, ms since the Unix epoch.
    pub commit_timestamp_ms: i64,
}

/// A member of a group, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberSummary {
    /// Member id.
    pub member_id: String,
    /// Static membership instance id, if any.
    pub group_instance_id: Option<String>,
    /// Client id from the request header of its JoinGroup.
    pub client_id: String,
    /// Client host as the dispatcher reported it.
    pub client_host: String,
    /// The member's assignment from the leader (empty until SyncGroup completes).
    pub assignment: Vec<u8>,
}

/// A group, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupSummary {
    /// Group id.
    pub group_id: String,
    /// Current state.
    pub state: GroupState,
    /// Protocol type ("consumer" for consumers; "" for a group that only has offsets).
    pub protocol_type: String,
    /// Selected protocol (assignor) of the current generation, "" if none.
    pub protocol_name: String,
    /// Current generation.
    pub generation: i32,
    /// Leader member id, "" if none.
    pub leader: String,
    /// Members in join order.
    pub members: Vec<MemberSummary>,
}

/// Kafka's classic group coordinator for one broker. Cheap to share behind an `Arc`;
/// every method takes `&self`.
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

/// State shared with timer tasks (which hold it weakly, so dropping the coordinator
/// releases the offsets log).
pub(crate) struct Inner {
    pub(crate) config: GroupConfig,
    pub(crate) node: CoordinatorNode,
    pub(crate) groups: Mutex<HashMap<String, Group>>,
    pub(crate) offsets: OffsetStore,
    pub(crate) closed: AtomicBool,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) me: Weak<Inner>,
}

impl Inner {
    pub(crate) fn lock_groups(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl GroupCoordinator {
    /// Opens the coordinator whose committed offsets live under `dir` (created if
    /// missing), replaying the offsets log; blocks on that disk I/O, so call it at
    /// startup. Groups that have offsets reappear as `Empty` groups. When called inside
    /// a tokio runtime it starts the periodic maintenance task (offset expiry, snapshot).
    pub fn open(
        dir: &Path,
        config: GroupConfig,
        node: CoordinatorNode,
    ) -> Result<Self, GroupError> {
        config.validate()?;
        let offsets = OffsetStore::open(dir, &config)?;
        let mut groups = HashMap::new();
        for id in offsets.group_ids() {
            let mut group = Group::new(&id);
            group.state_since_ms = None;
            groups.insert(id, group);
        }
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new_cyclic(|me| Inner {
            config,
            node,
            groups: Mutex::new(groups),
            offsets,
            closed: AtomicBool::new(false),
            shutdown,
            me: me.clone(),
        });
        admin::start_maintenance(&inner);
        Ok(GroupCoordinator { inner })
    }

    /// Every committed offset (group, topic, partition, offset, metadata, commit time).
    pub fn committed_offsets(&self) -> Vec<CommittedOffset> {
        self.inner
            .offsets
            .all()
            .into_iter()
            .map(|(key, value)| CommittedOffset {
                group: key.group,
                topic: key.topic,
                partition: key.partition,
                offset: value.offset,
                leader_epoch: value.leader_epoch,
                metadata: value.metadata,
                commit_timestamp_ms: value.commit_timestamp_ms,
            })
            .collect()
    }

    /// Every group that is not dead, ordered by id.
    pub fn groups(&self) -> Vec<GroupSummary> {
        let groups = self.inner.lock_groups();
        let mut out: Vec<GroupSummary> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| GroupSummary {
                group_id: g.id.clone(),
                state: g.state,
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                protocol_name: g.protocol_name.clone().unwrap_or_default(),
                generation: g.generation,
                leader: g.leader.clone().unwrap_or_default(),
                members: g
                    .members
                    .iter()
                    .map(|m| MemberSummary {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        assignment: m.assignment.to_vec(),
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Stops the timers, answers every waiting JoinGroup/SyncGroup with NOT_COORDINATOR
    /// and closes the offsets log cleanly. Later requests get COORDINATOR_NOT_AVAILABLE.
    pub async fn shutdown(&self) {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.inner.shutdown.send_replace(true);
        self.inner.fail_all_waiters();
        self.inner.offsets.close().await;
    }
}

/// Kafka error codes used by the coordinator.
mod codes {
    use kafka_protocol::error::ResponseError as E;

    pub(crate) const NONE: i16 = 0;
    pub(crate) const COORDINATOR_NOT_AVAILABLE: i16 = E::CoordinatorNotAvailable.code();
    pub(crate) const NOT_COORDINATOR: i16 = E::NotCoordinator.code();
    pub(crate) const ILLEGAL_GENERATION: i16 = E::IllegalGeneration.code();
    pub(crate) const INCONSISTENT_GROUP_PROTOCOL: i16 = E::InconsistentGroupProtocol.code();
    pub(crate) const INVALID_GROUP_ID: i16 = E::InvalidGroupId.code();
    pub(crate) const UNKNOWN_MEMBER_ID: i16 = E::UnknownMemberId.code();
    pub(crate) const INVALID_SESSION_TIMEOUT: i16 = E::InvalidSessionTimeout.code();
    pub(crate) const REBALANCE_IN_PROGRESS: i16 = E::RebalanceInProgress.code();
    pub(crate) const INVALID_COMMIT_OFFSET_SIZE: i16 = E::InvalidCommitOffsetSize.code();
    pub(crate) const OFFSET_METADATA_TOO_LARGE: i16 = E::OffsetMetadataTooLarge.code();
    pub(crate) const UNSUPPORTED_VERSION: i16 = E::UnsupportedVersion.code();
    pub(crate) const INVALID_REQUEST: i16 = E::InvalidRequest.code();
    pub(crate) const NON_EMPTY_GROUP: i16 = E::NonEmptyGroup.code();
    pub(crate) const GROUP_ID_NOT_FOUND: i16 = E::GroupIdNotFound.code();
    pub(crate) const MEMBER_ID_REQUIRED: i16 = E::MemberIdRequired.code();
    pub(crate) const FENCED_INSTANCE_ID: i16 = E::FencedInstanceId.code();
}
