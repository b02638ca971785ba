//! `/api/v1/groups`: consumer groups, their members, committed offsets and lag.

use serde::{Deserialize, Serialize};

/// The position and lag of a group on one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffsetLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset the group committed (the next it will read).
    pub committed_offset: i64,
    /// `None` when the topic or partition no longer exists.
    pub high_watermark: Option<i64>,
    /// High watermark minus committed offset (Kafka's LAG column), never negative.
    pub lag_messages: Option<i64>,
    /// Seconds since the first record the group has not consumed was written; 0 when
    /// caught up.
    pub lag_seconds: Option<f64>,
    /// The metadata the consumer committed with the offset.
    pub metadata: String,
    /// When the offset was committed, in milliseconds since the Unix epoch.
    pub commit_timestamp_ms: i64,
}

/// One group in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupListEntry {
    /// The group id.
    pub group_id: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable` or `Dead`.
    pub state: String,
    /// `consumer` for Kafka consumers; empty for a group that only commits offsets.
    pub protocol_type: String,
    /// How many members it has.
    pub members: usize,
    /// Sum of the lag over the partitions the group has offsets for.
    pub lag_messages: i64,
}

/// Response of `GET /api/v1/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupList {
    /// Every group, by id.
    pub groups: Vec<GroupListEntry>,
}

/// Partitions assigned to a member, decoded from the consumer protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedTopic {
    /// The topic.
    pub topic: String,
    /// Its partitions assigned to the member.
    pub partitions: Vec<i32>,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id` when it is a static member.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The address it connects from.
    pub client_host: String,
    /// `None` when the group does not use the consumer protocol or has no assignment yet.
    pub assignment: Option<Vec<AssignedTopic>>,
}

/// Response of `GET /api/v1/groups/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDetail {
    /// The group id.
    pub group_id: String,
    /// The group's state (as in [`GroupListEntry::state`]).
    pub state: String,
    /// `consumer` for Kafka consumers.
    pub protocol_type: String,
    /// The assignor the members agreed on (`range`, `cooperative-sticky`, ...).
    pub protocol: String,
    /// The generation id.
    pub generation: i32,
    /// The member id of the leader.
    pub leader: String,
    /// The members.
    pub members: Vec<Member>,
    /// Committed offsets with their lag.
    pub offsets: Vec<OffsetLag>,
    /// Sum of the lag over `offsets`.
    pub lag_messages: i64,
}
