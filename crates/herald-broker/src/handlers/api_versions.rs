//! ApiVersions, and the table of API versions Herald advertises.
//!
//! An advertised version is a promise: each range below is implemented field by field and
//! covered by a test (see docs/protocol.md).

use bytes::BytesMut;
use kafka_protocol::{
    ResponseError,
    messages::{
        ApiKey, ApiVersionsRequest, ApiVersionsResponse, api_versions_response::ApiVersion,
    },
};

use super::{Ctx, RequestError, encode_response};
use crate::{broker::Broker, group};

/// APIs of the broker core, with the versions advertised.
const CORE_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // Answered ILLEGAL_SASL_STATE, as Kafka does on a PLAINTEXT listener (handlers/sasl.rs).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // SECURITY_DISABLED without an authorizer, as Kafka (handlers/acls.rs).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

/// Consumer-group APIs, with the versions the group coordinator implements and tests.
const GROUP_APIS: [(ApiKey, (i16, i16)); 10] = [
    (ApiKey::FindCoordinator, group::FIND_COORDINATOR_VERSIONS),
    (ApiKey::JoinGroup, group::JOIN_GROUP_VERSIONS),
    (ApiKey::SyncGroup, group::SYNC_GROUP_VERSIONS),
    (ApiKey::Heartbeat, group::HEARTBEAT_VERSIONS),
    (ApiKey::LeaveGroup, group::LEAVE_GROUP_VERSIONS),
    (ApiKey::OffsetCommit, group::OFFSET_COMMIT_VERSIONS),
    (ApiKey::OffsetFetch, group::OFFSET_FETCH_VERSIONS),
    (ApiKey::ListGroups, group::LIST_GROUPS_VERSIONS),
    (ApiKey::DescribeGroups, group::DESCRIBE_GROUPS_VERSIONS),
    (ApiKey::DeleteGroups, group::DELETE_GROUPS_VERSIONS),
];

/// Every API this broker answers, with `(min, max)` versions, in API key order.
pub(crate) fn advertised(_broker: &Broker) -> Vec<(ApiKey, i16, i16)> {
    let mut all = CORE_APIS.to_vec();
    all.extend(GROUP_APIS.iter().map(|(k, (min, max))| (*k, *min, *max)));
    all.sort_by_key(|(k, _, _)| *k as i16);
    all
}

fn version_list(broker: &Broker) -> Vec<ApiVersion> {
    advertised(broker)
        .into_iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// ApiVersions. v3+ carries tagged fields (supported features, finalized features); the
/// encoder writes them only when they differ from their defaults, which is what Kafka does
/// and what librdkafka 2.0.x (Debian's kcat) needs to parse the response.
pub(crate) async fn handle(ctx: Ctx<'_>, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = 0;
    resp.api_keys = version_list(ctx.broker);
    resp.throttle_time_ms = 0;
    resp
}

/// The v0 answer to an ApiVersions request of a version we do not support.
pub(crate) fn unsupported_version(
    broker: &Broker,
    correlation_id: i32,
) -> Result<BytesMut, RequestError> {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = ResponseError::UnsupportedVersion.code();
    resp.api_keys = version_list(broker);
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &resp)
}
