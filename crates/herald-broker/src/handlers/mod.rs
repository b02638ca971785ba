//! Request dispatch: parse the request header, check the API and version against what
//! Herald advertises, decode the body with the negotiated version, run the handler and
//! encode its response with the same version.

mod acls;
mod admin;
mod api_versions;
mod authz;
mod configs;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;
pub(crate) mod sasl;

use std::{net::SocketAddr, pin::Pin};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::{
    messages::{ApiKey, ProduceRequest, RequestHeader, ResponseHeader},
    protocol::{Decodable, Encodable},
};
use thiserror::Error;

use crate::{broker::Broker, listener::Listener};

pub(crate) use api_versions::advertised;

/// A request that cannot be answered; the connection is closed after logging it.
#[derive(Debug, Error)]
pub(crate) enum RequestError {
    /// Fewer bytes than the fixed part of a request header.
    #[error("request of {0} bytes is shorter than a request header")]
    TooShort(usize),
    /// An API key Kafka does not define.
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey {
        /// The key sent.
        api_key: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// An API Herald does not implement, or a version outside the advertised range.
    #[error(
        "unsupported {api:?} version {version} (correlation id {correlation_id}); see ApiVersions"
    )]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The version sent.
        version: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// The header or body does not decode.
    #[error("cannot decode {api:?} v{version} request: {reason}")]
    Decode {
        /// The API.
        api: ApiKey,
        /// The version sent.
        version: i16,
        /// What the decoder said.
        reason: String,
    },
    /// The response does not encode (a bug: a field set that the version lacks).
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        /// The API.
        api: ApiKey,
        /// The negotiated version.
        version: i16,
        /// What the encoder said.
        reason: String,
    },
}

/// Frames a response: length, response header (v0 or v1 by API and version), body.
pub(crate) fn encode_response<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> Result<BytesMut, RequestError> {
    let err = |e: &dyn std::fmt::Display| RequestError::Encode {
        api,
        version,
        reason: e.to_string(),
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut buf, api.response_header_version(version))
        .map_err(|e| err(&format_args!("header: {e:#}")))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| err(&format_args!("{e:#}")))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// The answer to a request: ready now, or (a produce) written and waiting for durability.
pub(crate) enum Handled {
    /// The response frame; `None` when no response is due (acks=0 Produce).
    Ready(Option<BytesMut>),
    /// A produce whose batches are written in request order; the future waits as acks
    /// says and yields the response frame. It owns everything it needs, so the
    /// connection can run it while it starts the next request.
    Pending(Pin<Box<dyn Future<Output = Result<Option<BytesMut>, RequestError>> + Send>>),
}

/// Handles one request frame up to the point where only waiting is left: a produce
/// comes back [`Handled::Pending`] once its batches are written, anything else
/// [`Handled::Ready`].
pub(crate) async fn start_frame(
    broker: &Broker,
    listener: &Listener,
    peer: SocketAddr,
    principal: &str,
    frame: BytesMut,
) -> Result<Handled, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::TooShort(frame.len()));
    }
    let api_key = be_i16(&frame, 0);
    let version = be_i16(&frame, 2);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(api_key).map_err(|()| RequestError::UnknownApiKey {
        api_key,
        correlation_id,
    })?;
    let supported = advertised(broker)
        .into_iter()
        .find(|(k, _, _)| *k == api)
        .is_some_and(|(_, min, max)| (min..=max).contains(&version));
    if !supported {
        if api == ApiKey::ApiVersions {
            // The one request a client may send in a version we do not know: answer in
            // v0 format with UNSUPPORTED_VERSION and our list, so it can retry lower.
            return api_versions::unsupported_version(broker, correlation_id)
                .map(|r| Handled::Ready(Some(r)));
        }
        return Err(RequestError::UnsupportedVersion {
            api,
            version,
            correlation_id,
        });
    }
    if api == ApiKey::Produce {
        let who = (listener, peer, principal);
        return start_produce(broker, api, version, who, frame.freeze()).await;
    }
    let mut body = frame.freeze();
    let decode_err = |reason: String| RequestError::Decode {
        api,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|e| decode_err(format!("header: {e:#}")))?;
    let client_id = header.client_id.as_deref().unwrap_or_default();
    let ctx = Ctx {
        broker,
        api,
        version,
        correlation_id: header.correlation_id,
        client_id,
        peer,
        principal,
        listener,
    };
    let response = match api {
        ApiKey::ApiVersions => ctx.run(body, api_versions::handle).await,
        ApiKey::Metadata => ctx.run(body, metadata::handle).await,
        ApiKey::DescribeCluster => ctx.run(body, metadata::describe_cluster).await,
        ApiKey::Fetch => ctx.run(body, fetch::handle).await,
        ApiKey::ListOffsets => ctx.run(body, list_offsets::handle).await,
        ApiKey::CreateTopics => ctx.run(body, admin::create_topics).await,
        ApiKey::DeleteTopics => ctx.run(body, admin::delete_topics).await,
        ApiKey::CreatePartitions => ctx.run(body, admin::create_partitions).await,
        ApiKey::DeleteRecords => ctx.run(body, admin::delete_records).await,
        ApiKey::DescribeConfigs => ctx.run(body, configs::describe_configs).await,
        ApiKey::IncrementalAlterConfigs => ctx.run(body, configs::incremental_alter_configs).await,
        ApiKey::AlterConfigs => ctx.run(body, configs::alter_configs).await,
        ApiKey::InitProducerId => ctx.run(body, producer_id::init_producer_id).await,
        ApiKey::FindCoordinator => ctx.run(body, groups::find_coordinator).await,
        ApiKey::JoinGroup => ctx.run(body, groups::join_group).await,
        ApiKey::SyncGroup => ctx.run(body, groups::sync_group).await,
        ApiKey::Heartbeat => ctx.run(body, groups::heartbeat).await,
        ApiKey::LeaveGroup => ctx.run(body, groups::leave_group).await,
        ApiKey::OffsetCommit => ctx.run(body, groups::offset_commit).await,
        ApiKey::OffsetFetch => ctx.run(body, groups::offset_fetch).await,
        ApiKey::ListGroups => ctx.run(body, groups::list_groups).await,
        ApiKey::DescribeGroups => ctx.run(body, groups::describe_groups).await,
        ApiKey::DeleteGroups => ctx.run(body, groups::delete_groups).await,
        ApiKey::SaslHandshake => ctx.run(body, sasl::sasl_handshake).await,
        ApiKey::SaslAuthenticate => ctx.run(body, sasl::sasl_authenticate).await,
        ApiKey::CreateAcls => ctx.run(body, acls::create_acls).await,
        ApiKey::DescribeAcls => ctx.run(body, acls::describe_acls).await,
        ApiKey::DeleteAcls => ctx.run(body, acls::delete_acls).await,
        ApiKey::DescribeUserScramCredentials => {
            ctx.run(body, acls::describe_user_scram_credentials).await
        }
        ApiKey::AlterUserScramCredentials => {
            ctx.run(body, acls::alter_user_scram_credentials).await
        }
        _ => Err(RequestError::UnsupportedVersion {
            api,
            version,
            correlation_id,
        }),
    };
    response.map(Handled::Ready)
}

/// Produce: decodes the request, writes its batches (see [`produce`]) and returns the
/// wait for durability as [`Handled::Pending`].
async fn start_produce(
    broker: &Broker,
    api: ApiKey,
    version: i16,
    (listener, peer, principal): (&Listener, SocketAddr, &str),
    frame: Bytes,
) -> Result<Handled, RequestError> {
    let decode_err = |reason: String| RequestError::Decode {
        api,
        version,
        reason,
    };
    let mut body = frame.clone();
    // The header (its client id is a slice of the frame) is dropped right away, so that
    // only the decoded request still shares the frame.
    let correlation_id = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|e| decode_err(format!("header: {e:#}")))?
        .correlation_id;
    let req =
        ProduceRequest::decode(&mut body, version).map_err(|e| decode_err(format!("{e:#}")))?;
    drop(body);
    let ctx = Ctx {
        broker,
        api,
        version,
        correlation_id,
        client_id: "",
        peer,
        principal,
        listener,
    };
    let in_flight = produce::start(ctx, req, frame).await;
    Ok(Handled::Pending(Box::pin(async move {
        match in_flight.finish().await {
            Some(resp) => encode_response(api, version, correlation_id, &resp).map(Some),
            None => Ok(None),
        }
    })))
}

/// What a handler needs besides its request.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) broker: &'a Broker,
    pub(crate) api: ApiKey,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
    /// The request header's client id ("" when null).
    pub(crate) client_id: &'a str,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Who is asking: `User:NAME` after SASL, the certificate subject after mutual TLS,
    /// `User:ANONYMOUS` otherwise.
    pub(crate) principal: &'a str,
    /// The listener the request came in on (its security, its advertised address).
    pub(crate) listener: &'a Listener,
}

impl<'a> Ctx<'a> {
    fn decode<Req: Decodable>(&self, mut body: Bytes) -> Result<Req, RequestError> {
        Req::decode(&mut body, self.version).map_err(|e| RequestError::Decode {
            api: self.api,
            version: self.version,
            reason: format!("{e:#}"),
        })
    }

    async fn run<Req, Resp, F, Fut>(
        self,
        body: Bytes,
        f: F,
    ) -> Result<Option<BytesMut>, RequestError>
    where
        Req: Decodable,
        Resp: Encodable,
        F: FnOnce(Ctx<'a>, Req) -> Fut,
        Fut: Future<Output = Resp>,
    {
        let req = self.decode(body)?;
        let resp = f(self, req).await;
        encode_response(self.api, self.version, self.correlation_id, &resp).map(Some)
    }
}
