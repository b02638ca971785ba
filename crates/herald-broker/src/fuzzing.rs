//! The decoding a connection applies to client bytes, without a broker, for the fuzz
//! target in `fuzz/` and the stable decode tests (`tests/decode_fuzz.rs`). Not API.
//!
//! Known issue, upstream: kafka-protocol 0.18 reserves a `Vec` of the array count it reads
//! off the wire before decoding one element (`Array` / `CompactArray` in
//! `protocol/types.rs`), so a request of a few bytes that declares 2^31 elements makes the
//! broker process abort on a failed allocation. [`decode_request_unguarded`] is exactly the
//! broker's path and aborts on such input; [`decode_request`] first decodes each body
//! through `CountGuard`, and skips the bodies that would make such a reservation, so
//! that fuzzing can look for everything else.

use std::{
    ops::Range,
    pin::pin,
    task::{Context, Poll, Waker},
};

use bytes::{Buf, Bytes, TryGetError};
use herald_format::{batch, records::decode_batch};
use kafka_protocol::{
    messages::{
        AlterConfigsRequest, AlterUserScramCredentialsRequest, ApiKey, ApiVersionsRequest,
        CreateAclsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest,
        DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeAclsRequest,
        DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
        DescribeUserScramCredentialsRequest, FetchRequest, FindCoordinatorRequest,
        HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
        LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest,
        OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, RequestHeader,
        SaslAuthenticateRequest, SaslHandshakeRequest, SyncGroupRequest,
    },
    protocol::{Decodable, buf::ByteBuf},
};

use crate::frame;

/// Largest frame the harness reads; fuzz inputs are small, and a larger declared length
/// must be refused before anything is allocated, as in the broker.
const MAX_FRAME: usize = 1 << 20;

/// What [`decode_request`] did with an input.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Requests whose header and body decoded.
    pub requests: usize,
    /// Bodies not decoded because kafka-protocol would have reserved a huge array.
    pub skipped: usize,
}

/// Feeds `input` through what a connection does with the bytes a client sends. It must
/// never panic, hang or abort.
///
/// The input is read twice: as a stream of length-prefixed frames (`frame::read_frame`,
/// the broker's framing), and as one frame payload without a prefix, so that a fuzzer
/// reaches the header and body decoders without first learning the length. Each frame
/// goes through the checks of `handlers::handle_frame`: the fixed header prefix, the API
/// key, the request header, then the request body of every API the broker dispatches, at
/// every version kafka-protocol decodes (a superset of what the broker advertises).
/// Produce records go through the broker's batch checks (`herald_format::batch::validate_all`)
/// and, when those pass, through `decode_batch`. Bodies that would trip the upstream
/// over-allocation (module docs) are counted in [`Decoded::skipped`] instead.
pub fn decode_request(input: &[u8]) -> Decoded {
    run(input, true)
}

/// [`decode_request`] without the guard: exactly the broker's decoding, which aborts the
/// process on the upstream over-allocation. Returns how many requests decoded.
pub fn decode_request_unguarded(input: &[u8]) -> usize {
    run(input, false).requests
}

fn run(input: &[u8], guarded: bool) -> Decoded {
    let mut out = Decoded::default();
    let mut stream = input;
    loop {
        let read = frame::read_frame(&mut stream, MAX_FRAME);
        // Reading from a byte slice never waits, so one poll completes it.
        let Poll::Ready(Ok(Some(payload))) =
            pin!(read).poll(&mut Context::from_waker(Waker::noop()))
        else {
            break;
        };
        decode_frame(payload.freeze(), guarded, &mut out);
    }
    decode_frame(Bytes::copy_from_slice(input), guarded, &mut out);
    out
}

/// One frame payload, as `handle_frame` decodes it.
fn decode_frame(frame: Bytes, guarded: bool, out: &mut Decoded) {
    if frame.len() < 8 {
        return;
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(api_key) else {
        return;
    };
    let range = api.valid_versions();
    if version < range.min || version > range.max {
        return;
    }
    let mut body = frame;
    // The header has no arrays: its tagged fields go to a map, its strings are checked.
    if RequestHeader::decode(&mut body, api.request_header_version(version)).is_err() {
        return;
    }
    match decode_body(api, version, body, guarded) {
        Body::Decoded => out.requests += 1,
        Body::Skipped => out.skipped += 1,
        Body::Invalid => {}
    }
}

enum Body {
    Decoded,
    Invalid,
    Skipped,
}

/// Decodes `body` as an `R`, through the guard first when `guarded`.
fn decode<R: Decodable>(body: Bytes, version: i16, guarded: bool) -> Result<R, Body> {
    if guarded {
        let mut guard = CountGuard::new(body.clone());
        let shadow = R::decode(&mut guard, version);
        if guard.suspicious {
            return Err(Body::Skipped);
        }
        if shadow.is_err() {
            return Err(Body::Invalid);
        }
    }
    let mut body = body;
    R::decode(&mut body, version).map_err(|_| Body::Invalid)
}

fn decode_body(api: ApiKey, version: i16, body: Bytes, guarded: bool) -> Body {
    macro_rules! body {
        ($t:ty) => {
            match decode::<$t>(body, version, guarded) {
                Ok(_) => Body::Decoded,
                Err(outcome) => outcome,
            }
        };
    }
    match api {
        ApiKey::Produce => match decode::<ProduceRequest>(body, version, guarded) {
            Ok(req) => {
                for topic in &req.topic_data {
                    for p in &topic.partition_data {
                        check_records(p.records.as_deref().unwrap_or_default());
                    }
                }
                Body::Decoded
            }
            Err(outcome) => outcome,
        },
        ApiKey::Fetch => body!(FetchRequest),
        ApiKey::ListOffsets => body!(ListOffsetsRequest),
        ApiKey::Metadata => body!(MetadataRequest),
        ApiKey::ApiVersions => body!(ApiVersionsRequest),
        ApiKey::CreateTopics => body!(CreateTopicsRequest),
        ApiKey::DeleteTopics => body!(DeleteTopicsRequest),
        ApiKey::CreatePartitions => body!(CreatePartitionsRequest),
        ApiKey::DeleteRecords => body!(DeleteRecordsRequest),
        ApiKey::DescribeConfigs => body!(DescribeConfigsRequest),
        ApiKey::IncrementalAlterConfigs => body!(IncrementalAlterConfigsRequest),
        ApiKey::AlterConfigs => body!(AlterConfigsRequest),
        ApiKey::InitProducerId => body!(InitProducerIdRequest),
        ApiKey::FindCoordinator => body!(FindCoordinatorRequest),
        ApiKey::JoinGroup => body!(JoinGroupRequest),
        ApiKey::SyncGroup => body!(SyncGroupRequest),
        ApiKey::Heartbeat => body!(HeartbeatRequest),
        ApiKey::LeaveGroup => body!(LeaveGroupRequest),
        ApiKey::OffsetCommit => body!(OffsetCommitRequest),
        ApiKey::OffsetFetch => body!(OffsetFetchRequest),
        ApiKey::ListGroups => body!(ListGroupsRequest),
        ApiKey::DescribeGroups => body!(DescribeGroupsRequest),
        ApiKey::DeleteGroups => body!(DeleteGroupsRequest),
        ApiKey::DescribeCluster => body!(DescribeClusterRequest),
        ApiKey::SaslHandshake => body!(SaslHandshakeRequest),
        ApiKey::SaslAuthenticate => body!(SaslAuthenticateRequest),
        ApiKey::CreateAcls => body!(CreateAclsRequest),
        ApiKey::DescribeAcls => body!(DescribeAclsRequest),
        ApiKey::DeleteAcls => body!(DeleteAclsRequest),
        ApiKey::DescribeUserScramCredentials => body!(DescribeUserScramCredentialsRequest),
        ApiKey::AlterUserScramCredentials => body!(AlterUserScramCredentialsRequest),
        // Not dispatched: the broker closes the connection after the header.
        _ => Body::Invalid,
    }
}

/// The broker's checks of one partition's produced records (`Partition::append`).
fn check_records(records: &[u8]) {
    if let Ok(batches) = batch::validate_all(records) {
        for (at, header) in batches {
            let _ = decode_batch(&records[at..at + header.total_len()]);
        }
    }
}

/// Above this, an `i32` that may be an array count is treated as one kafka-protocol would
/// reserve: 4 Mi elements of at most a few hundred bytes stay a lazily mapped allocation.
const COUNT_LIMIT: i64 = 1 << 22;

/// A body buffer that notices the reads kafka-protocol 0.18 may use as an array count
/// for an unchecked reservation: an `i32` above `max(bytes left, COUNT_LIMIT)`, or a
/// varint with three continuation bytes (2^21 or more). It then sets `suspicious` and
/// returns a small value instead, so the shadow decode itself never reserves much.
/// Without a suspicious read, every value it returned was the real one: the real decode
/// reads the same values and its reservations are bounded too.
struct CountGuard {
    inner: Bytes,
    /// Consecutive `try_get_u8` reads with the continuation bit set (a varint so far).
    run: u8,
    suspicious: bool,
}

impl CountGuard {
    fn new(inner: Bytes) -> Self {
        Self {
            inner,
            run: 0,
            suspicious: false,
        }
    }
}

impl Buf for CountGuard {
    fn remaining(&self) -> usize {
        self.inner.remaining()
    }

    fn chunk(&self) -> &[u8] {
        self.inner.chunk()
    }

    fn advance(&mut self, cnt: usize) {
        self.run = 0;
        self.inner.advance(cnt);
    }

    fn try_get_i32(&mut self) -> Result<i32, TryGetError> {
        self.run = 0;
        let v = self.inner.try_get_i32()?;
        let left = self.inner.remaining() as i64;
        if i64::from(v) > left.max(COUNT_LIMIT) {
            self.suspicious = true;
            return Ok(i32::try_from(left + 1).unwrap_or(i32::MAX));
        }
        Ok(v)
    }

    fn try_get_u8(&mut self) -> Result<u8, TryGetError> {
        let b = self.inner.try_get_u8()?;
        self.run = if b >= 0x80 { self.run + 1 } else { 0 };
        if self.run >= 3 {
            self.suspicious = true;
            self.run = 0;
            return Ok(b & 0x7f);
        }
        Ok(b)
    }
}

impl ByteBuf for CountGuard {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        self.inner.peek_bytes(r)
    }

    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.run = 0;
        self.inner.get_bytes(size)
    }
}
