//! Wire-facing handlers: a `kafka_protocol` request at its negotiated version in, the
//! response for that version out. Only fields that exist in the version are set (the
//! codec refuses to encode others).

use kafka_protocol::{
    messages::{
        BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
        HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
        LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
        OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
        find_coordinator_response::Coordinator,
        join_group_response::JoinGroupResponseMember,
        leave_group_response::MemberResponse,
        offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
        offset_fetch_response::{
            OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
            OffsetFetchResponseTopic, OffsetFetchResponseTopics,
        },
    },
    protocol::StrBytes,
};

use super::{
    FIND_COORDINATOR_VERSIONS, GroupCoordinator, HEARTBEAT_VERSIONS, JOIN_GROUP_VERSIONS,
    LEAVE_GROUP_VERSIONS, OFFSET_COMMIT_VERSIONS, OFFSET_FETCH_VERSIONS, SYNC_GROUP_VERSIONS,
    codec::OffsetValue,
    codec::{OffsetKey, OffsetOp},
    codes::*,
    now_ms,
    offsets::WriteError,
    rebalance::{JoinParams, SyncParams},
    state::{JoinOutcome, SyncOutcome},
};

/// Who sent a JoinGroup: the request header's client id and the peer address, which
/// Kafka records with the member (member ids start with the client id; DescribeGroups
/// shows both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Client id from the request header ("" if none).
    pub client_id: String,
    /// The client's host as Kafka shows it, e.g. "/127.0.0.1".
    pub client_host: String,
}

pub(crate) fn in_range(version: i16, (min, max): (i16, i16)) -> bool {
    (min..=max).contains(&version)
}

pub(crate) fn strb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A nullable string field: absent or empty both mean "none".
fn opt_string(s: Option<StrBytes>) -> Option<String> {
    s.map(|s| s.to_string()).filter(|s| !s.is_empty())
}

impl GroupCoordinator {
    /// FindCoordinator: this broker coordinates every group. Transaction coordinators
    /// (key type 1) are not available.
    pub async fn find_coordinator(
        &self,
        req: FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let key_type = if version >= 1 { req.key_type } else { 0 };
        let answer = || -> (i16, Option<&'static str>) {
            if !in_range(version, FIND_COORDINATOR_VERSIONS) {
                (
                    UNSUPPORTED_VERSION,
                    Some("FindCoordinator version not supported"),
                )
            } else if self.inner.is_closed() {
                (
                    COORDINATOR_NOT_AVAILABLE,
                    Some("the group coordinator is shut down"),
                )
            } else {
                match key_type {
                    0 => (NONE, None),
                    1 => (
                        COORDINATOR_NOT_AVAILABLE,
                        Some("transactions are not supported"),
                    ),
                    _ => (INVALID_REQUEST, Some("unknown coordinator key type")),
                }
            }
        };
        let node = &self.inner.node;
        let (node_id, host, port) = (BrokerId(node.node_id), strb(node.host.clone()), node.port);
        let mut resp = FindCoordinatorResponse::default();
        if version >= 4 {
            resp.coordinators = req
                .coordinator_keys
                .into_iter()
                .map(|key| {
                    let (code, message) = answer();
                    let mut c = Coordinator::default();
                    c.key = key;
                    c.error_code = code;
                    c.error_message = message.map(strb);
                    (c.node_id, c.host, c.port) = if code == NONE {
                        (node_id, host.clone(), port)
                    } else {
                        (BrokerId(-1), strb(""), -1)
                    };
                    c
                })
                .collect();
        } else {
            let (code, message) = answer();
            resp.error_code = code;
            if version >= 1 {
                resp.error_message = message.map(strb);
            }
            (resp.node_id, resp.host, resp.port) = if code == NONE {
                (node_id, host, port)
            } else {
                (BrokerId(-1), strb(""), -1)
            };
        }
        resp
    }

    /// JoinGroup without client details (client id and host empty); see
    /// [`join_group_from`](Self::join_group_from).
    pub async fn join_group(&self, req: JoinGroupRequest, version: i16) -> JoinGroupResponse {
        self.join_group_from(req, version, &ClientInfo::default())
            .await
    }

    /// JoinGroup from a known client: returns once the rebalance completes (or at once
    /// with an error, MEMBER_ID_REQUIRED, or the current generation when nothing changed).
    pub async fn join_group_from(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client: &ClientInfo,
    ) -> JoinGroupResponse {
        let outcome = if in_range(version, JOIN_GROUP_VERSIONS) {
            let instance_id = if version >= 5 {
                opt_string(req.group_instance_id)
            } else {
                None
            };
            let params = JoinParams {
                group_id: req.group_id.to_string(),
                member_id: req.member_id.to_string(),
                require_known_member_id: version >= 4 && instance_id.is_none(),
                supports_skip_assignment: version >= 9,
                instance_id,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: if version >= 1 {
                    req.rebalance_timeout_ms
                } else {
                    -1
                },
                protocol_type: req.protocol_type.to_string(),
                protocols: req
                    .protocols
                    .into_iter()
                    .map(|p| (p.name.to_string(), p.metadata))
                    .collect(),
                client_id: client.client_id.clone(),
                client_host: client.client_host.clone(),
            };
            self.inner.join(params).await
        } else {
            JoinOutcome::error(UNSUPPORTED_VERSION, &req.member_id)
        };
        join_response(outcome, version)
    }

    /// SyncGroup: the leader's request carries the assignment; every member's response
    /// carries its own part of it.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let outcome = if in_range(version, SYNC_GROUP_VERSIONS) {
            let params = SyncParams {
                group_id: req.group_id.to_string(),
                generation: req.generation_id,
                member_id: req.member_id.to_string(),
                instance_id: if version >= 3 {
                    opt_string(req.group_instance_id)
                } else {
                    None
                },
                protocol_type: if version >= 5 {
                    opt_string(req.protocol_type)
                } else {
                    None
                },
                protocol_name: if version >= 5 {
                    opt_string(req.protocol_name)
                } else {
                    None
                },
                assignments: req
                    .assignments
                    .into_iter()
                    .map(|a| (a.member_id.to_string(), a.assignment))
                    .collect(),
            };
            self.inner.sync(params).await
        } else {
            SyncOutcome::error(UNSUPPORTED_VERSION)
        };
        let mut resp = SyncGroupResponse::default();
        resp.error_code = outcome.error;
        resp.assignment = outcome.assignment;
        if version >= 5 && outcome.error == NONE {
            resp.protocol_type = outcome.protocol_type.map(strb);
            resp.protocol_name = outcome.protocol_name.map(strb);
        }
        resp
    }

    /// Heartbeat: NONE, REBALANCE_IN_PROGRESS (rejoin), or why the member is not valid.
    pub async fn heartbeat(&self, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
        let code = if in_range(version, HEARTBEAT_VERSIONS) {
            let instance_id = if version >= 3 {
                opt_string(req.group_instance_id)
            } else {
                None
            };
            self.inner.heartbeat(
                &req.group_id,
                req.generation_id,
                &req.member_id,
                instance_id.as_deref(),
            )
        } else {
            UNSUPPORTED_VERSION
        };
        let mut resp = HeartbeatResponse::default();
        resp.error_code = code;
        resp
    }

    /// LeaveGroup: one member (v0-2) or several (v3+, by member id or instance id).
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let mut resp = LeaveGroupResponse::default();
        if !in_range(version, LEAVE_GROUP_VERSIONS) {
            resp.error_code = UNSUPPORTED_VERSION;
            return resp;
        }
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        opt_string(m.group_instance_id.clone()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let (top, results) = self.inner.leave(&req.group_id, &leaving);
        if version >= 3 {
            resp.error_code = top;
            resp.members = req
                .members
                .into_iter()
                .zip(results)
                .map(|(m, code)| {
                    let mut r = MemberResponse::default();
                    r.member_id = m.member_id;
                    r.group_instance_id = m.group_instance_id;
                    r.error_code = code;
                    r
                })
                .collect();
        } else {
            resp.error_code = if top != NONE {
                top
            } else {
                results.first().copied().unwrap_or(NONE)
            };
        }
        resp
    }

    /// OffsetCommit: answered once the commit is durable. Members of a group must send
    /// their current generation; a negative generation commits for an empty group
    /// ("standalone" consumers that assign partitions themselves).
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let check = if in_range(version, OFFSET_COMMIT_VERSIONS) {
            let instance_id = if version >= 7 {
                opt_string(req.group_instance_id.clone())
            } else {
                None
            };
            self.inner.check_commit(
                &req.group_id,
                req.generation_id_or_member_epoch,
                &req.member_id,
                instance_id.as_deref(),
            )
        } else {
            Err(UNSUPPORTED_VERSION)
        };
        let now = now_ms();
        let group = req.group_id.to_string();
        let max_metadata = self.inner.config.max_metadata_bytes;
        let mut ops = Vec::new();
        let mut resp = OffsetCommitResponse::default();
        for topic in req.topics {
            let mut out = OffsetCommitResponseTopic::default();
            for p in topic.partitions {
                let metadata = p
                    .committed_metadata
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let code = match check {
                    Err(code) => code,
                    Ok(()) if metadata.len() > max_metadata => OFFSET_METADATA_TOO_LARGE,
                    Ok(()) => {
                        ops.push(OffsetOp {
                            key: OffsetKey {
                                group: group.clone(),
                                topic: topic.name.to_string(),
                                partition: p.partition_index,
                            },
                            value: Some(OffsetValue {
                                offset: p.committed_offset,
                                leader_epoch: if version >= 6 {
                                    p.committed_leader_epoch
                                } else {
                                    -1
                                },
                                metadata,
                                commit_timestamp_ms: now,
                            }),
                        });
                        NONE
                    }
                };
                let mut r = OffsetCommitResponsePartition::default();
                r.partition_index = p.partition_index;
                r.error_code = code;
                out.partitions.push(r);
            }
            out.name = topic.name;
            resp.topics.push(out);
        }
        if let Err(e) = self.inner.offsets.write(ops, now).await {
            let code = match e {
                WriteError::TooLarge => INVALID_COMMIT_OFFSET_SIZE,
                WriteError::Closed => COORDINATOR_NOT_AVAILABLE,
                WriteError::Log(e) => {
                    tracing::error!(group = %group, error = %e, "offset commit not written");
                    NOT_COORDINATOR
                }
            };
            for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                if p.error_code == NONE {
                    p.error_code = code;
                }
            }
        }
        resp
    }

    /// OffsetFetch: committed offsets, -1 and "" for partitions without one. v8+ asks for
    /// several groups at once.
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let mut resp = OffsetFetchResponse::default();
        let group_error = if !in_range(version, OFFSET_FETCH_VERSIONS) {
            UNSUPPORTED_VERSION
        } else if self.inner.is_closed() {
            COORDINATOR_NOT_AVAILABLE
        } else {
            NONE
        };
        if version >= 8 {
            for g in req.groups {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let mut out = OffsetFetchResponseGroup::default();
                out.error_code = group_error;
                if group_error == NONE {
                    for (name, partitions) in self.fetch(&g.group_id, wanted) {
                        let mut t = OffsetFetchResponseTopics::default();
                        t.name = name;
                        t.partitions = partitions
                            .into_iter()
                            .map(|(index, value)| {
                                let mut p = OffsetFetchResponsePartitions::default();
                                p.partition_index = index;
                                (p.committed_offset, p.committed_leader_epoch, p.metadata) =
                                    fetched(value);
                                p
                            })
                            .collect();
                        out.topics.push(t);
                    }
                }
                out.group_id = g.group_id;
                resp.groups.push(out);
            }
            return resp;
        }
        let wanted = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        });
        let answer = if group_error == NONE || version < 2 {
            self.fetch(&req.group_id, wanted)
        } else {
            Vec::new()
        };
        for (name, partitions) in answer {
            let mut t = OffsetFetchResponseTopic::default();
            t.name = name;
            t.partitions = partitions
                .into_iter()
                .map(|(index, value)| {
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = index;
                    let (offset, epoch, metadata) = fetched(value);
                    p.committed_offset = offset;
                    p.metadata = metadata;
                    if version >= 5 {
                        p.committed_leader_epoch = epoch;
                    }
                    if version < 2 {
                        p.error_code = group_error;
                    }
                    p
                })
                .collect();
            resp.topics.push(t);
        }
        if version >= 2 {
            resp.error_code = group_error;
        }
        resp
    }

    /// The committed offsets asked for: every topic and partition listed, or (`None`) all
    /// the group has.
    #[allow(clippy::type_complexity)] // why: (topic, [(partition, value)]) is the shape both wire forms need
    fn fetch(
        &self,
        group: &str,
        wanted: Option<Vec<(TopicName, Vec<i32>)>>,
    ) -> Vec<(TopicName, Vec<(i32, Option<OffsetValue>)>)> {
        let offsets = &self.inner.offsets;
        match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(name, partitions)| {
                    let values = partitions
                        .into_iter()
                        .map(|p| (p, offsets.get(group, &name, p)))
                        .collect();
                    (name, values)
                })
                .collect(),
            None => {
                let mut out: Vec<(TopicName, Vec<(i32, Option<OffsetValue>)>)> = Vec::new();
                for ((topic, partition), value) in offsets.group_offsets(group) {
                    match out.last_mut() {
                        Some((name, values)) if name.as_str() == topic => {
                            values.push((partition, Some(value)));
                        }
                        _ => out.push((TopicName(strb(topic)), vec![(partition, Some(value))])),
                    }
                }
                out
            }
        }
    }
}

/// (offset, leader epoch, metadata) as OffsetFetch reports them; -1, -1, "" if none.
fn fetched(value: Option<OffsetValue>) -> (i64, i32, Option<StrBytes>) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, Some(strb(v.metadata))),
        None => (-1, -1, Some(strb(""))),
    }
}

/// A JoinGroup answered with `code` only (the broker's refusals, such as
/// GROUP_AUTHORIZATION_FAILED).
pub(crate) fn join_error(code: i16, member_id: &str, version: i16) -> JoinGroupResponse {
    join_response(JoinOutcome::error(code, member_id), version)
}

fn join_response(o: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default();
    resp.error_code = o.error;
    resp.generation_id = o.generation;
    if version >= 7 {
        resp.protocol_type = o.protocol_type.map(strb);
        resp.protocol_name = o.protocol_name.map(strb);
    } else {
        resp.protocol_name = Some(strb(o.protocol_name.unwrap_or_default()));
    }
    resp.leader = strb(o.leader);
    resp.member_id = strb(o.member_id);
    if version >= 9 {
        resp.skip_assignment = o.skip_assignment;
    }
    resp.members = o
        .members
        .into_iter()
        .map(|(id, instance_id, metadata)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = strb(id);
            if version >= 5 {
                m.group_instance_id = instance_id.map(strb);
            }
            m.metadata = metadata;
            m
        })
        .collect();
    resp
}
