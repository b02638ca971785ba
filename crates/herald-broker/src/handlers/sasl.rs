//! SASL on the Kafka listener. On a SASL listener ([`SaslConfig`]) a connection must
//! authenticate first ([`SaslSession`]): until then only ApiVersions, SaslHandshake and
//! SaslAuthenticate (or, after a SaslHandshake v0, bare tokens) are answered; anything
//! else closes it, as Kafka does. PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are checked
//! against the data directory's users (herald-security). A failure is answered
//! SASL_AUTHENTICATION_FAILED after [`FAILED_AUTHENTICATION_DELAY`], counted, logged
//! without secrets, and the connection closed.
//!
//! After authentication, and on a listener without SASL, SaslHandshake and
//! SaslAuthenticate are answered as Apache Kafka answers them there, with
//! ILLEGAL_SASL_STATE; without SASL the operator is also told once a minute per client
//! address, since a client configured for SASL otherwise only fails on its own side.

use bytes::BytesMut;
use herald_security::{
    Mechanism,
    scram::{AuthError, Exchange, Step},
};
use kafka_protocol::{
    ResponseError,
    messages::{
        ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
        SaslHandshakeRequest, SaslHandshakeResponse,
    },
    protocol::{Decodable, Encodable, StrBytes},
};

use super::Ctx;

const NOT_HERE: &str = "this Kafka listener has no SASL: connect with security.protocol=PLAINTEXT";

/// SaslHandshake v0–1 outside the authentication: ILLEGAL_SASL_STATE, no mechanisms.
pub(crate) async fn sasl_handshake(
    ctx: Ctx<'_>,
    req: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let mut resp = SaslHandshakeResponse::default();
    resp.error_code = ResponseError::IllegalSaslState.code();
    if ctx.listener.sasl.is_some() {
        // Already authenticated on a SASL listener.
        return resp;
    }
    crate::telemetry::wrong_listener(
        ctx.peer,
        "SASL",
        &format!(
            "client {:?} at {} asked for SASL ({}) on a Kafka listener without SASL: \
             configure the client with security.protocol=PLAINTEXT (or SSL), or give the \
             listener SASL_PLAINTEXT:// or SASL_SSL:// (docs/security.md)",
            ctx.client_id,
            ctx.peer,
            req.mechanism.as_str()
        ),
    );
    resp
}

/// SaslAuthenticate v0–2 outside the authentication: ILLEGAL_SASL_STATE with a message.
pub(crate) async fn sasl_authenticate(
    ctx: Ctx<'_>,
    _req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let mut resp = SaslAuthenticateResponse::default();
    resp.error_code = ResponseError::IllegalSaslState.code();
    if ctx.listener.sasl.is_some() {
        resp.error_message = Some(StrBytes::from_static_str(
            "already authenticated: re-authentication (KIP-368) is not supported",
        ));
        return resp;
    }
    crate::telemetry::wrong_listener(
        ctx.peer,
        "SASL",
        &format!(
            "client {:?} at {} sent SaslAuthenticate to the plaintext Kafka listener; \
             configure it with security.protocol=PLAINTEXT (docs/security.md)",
            ctx.client_id, ctx.peer
        ),
    );
    resp.error_message = Some(StrBytes::from_static_str(NOT_HERE));
    resp
}

/// SASL on this listener: the users and the mechanisms offered.
#[derive(Debug, Clone)]
pub struct SaslConfig {
    /// Whose credentials are checked.
    pub users: herald_security::UserStore,
    /// The mechanisms offered, in SaslHandshake's order.
    pub mechanisms: Vec<Mechanism>,
}

/// Kafka's `connection.failed.authentication.delay.ms` default: a failed authentication
/// is answered this late, then the connection closes, so that guessing is slow.
pub const FAILED_AUTHENTICATION_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Where a connection to a SASL listener is in its authentication.
#[derive(Debug)]
pub(crate) enum SaslSession {
    /// Waiting for SaslHandshake.
    Start,
    /// A mechanism was chosen; `legacy` (SaslHandshake v0) means the tokens come as bare
    /// length-prefixed frames, not in SaslAuthenticate requests.
    Exchanging { exchange: Exchange, legacy: bool },
    /// Authenticated as this user (the principal `User:<name>`).
    Authenticated(String),
}

/// What the connection does with a frame that arrived before authentication completed.
pub(crate) enum BeforeAuth {
    /// A request the normal path answers (ApiVersions).
    Serve(BytesMut),
    /// Send this response frame and read on.
    Answer(BytesMut),
    /// Send this response frame (a failed authentication), wait, then close.
    Fail(BytesMut),
    /// Close without an answer, logging why.
    Close(String),
}

impl SaslSession {
    pub(crate) fn is_authenticated(&self) -> bool {
        matches!(self, SaslSession::Authenticated(_))
    }

    /// The authenticated principal, `User:<name>`.
    pub(crate) fn principal(&self) -> Option<String> {
        match self {
            SaslSession::Authenticated(user) => Some(format!("User:{user}")),
            _ => None,
        }
    }

    /// Handles a frame of a connection that has not authenticated yet.
    pub(crate) fn before_auth(
        &mut self,
        config: &SaslConfig,
        peer: std::net::SocketAddr,
        frame: BytesMut,
    ) -> BeforeAuth {
        if let SaslSession::Exchanging { legacy: true, .. } = self {
            // A bare token: answered with a bare, length-prefixed token.
            return match self.token(config, peer, &frame) {
                Ok(reply) => {
                    let mut framed = BytesMut::with_capacity(4 + reply.len());
                    framed.extend_from_slice(&(reply.len() as i32).to_be_bytes());
                    framed.extend_from_slice(&reply);
                    BeforeAuth::Answer(framed)
                }
                // The legacy exchange has no error response: the connection closes.
                Err(_) => BeforeAuth::Fail(BytesMut::new()),
            };
        }
        if frame.len() < 8 {
            return BeforeAuth::Close(format!(
                "a frame of {} bytes before SASL authentication",
                frame.len()
            ));
        }
        let api_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let api = match ApiKey::try_from(api_key) {
            Ok(api) => api,
            Err(()) => {
                return BeforeAuth::Close(format!(
                    "unknown API key {api_key} before SASL authentication"
                ));
            }
        };
        match api {
            ApiKey::ApiVersions => BeforeAuth::Serve(frame),
            ApiKey::SaslHandshake if (0..=1).contains(&version) => {
                self.handshake(config, peer, api, version, frame)
            }
            ApiKey::SaslAuthenticate if (0..=2).contains(&version) => {
                self.authenticate(config, peer, api, version, frame)
            }
            other => BeforeAuth::Close(format!(
                "{other:?} request before SASL authentication (a client without SASL settings on a SASL listener?)"
            )),
        }
    }

    fn handshake(
        &mut self,
        config: &SaslConfig,
        peer: std::net::SocketAddr,
        api: ApiKey,
        version: i16,
        frame: BytesMut,
    ) -> BeforeAuth {
        let Ok((correlation_id, req)) = decode::<SaslHandshakeRequest>(api, version, frame) else {
            return BeforeAuth::Close("an undecodable SaslHandshake".into());
        };
        let mut resp = SaslHandshakeResponse::default();
        resp.mechanisms = config
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let chosen =
            Mechanism::parse(req.mechanism.as_str()).filter(|m| config.mechanisms.contains(m));
        match (&*self, chosen) {
            (SaslSession::Start, Some(m)) => {
                *self = SaslSession::Exchanging {
                    exchange: Exchange::new(m),
                    legacy: version == 0,
                };
            }
            (SaslSession::Start, None) => {
                tracing::info!(%peer, mechanism = %req.mechanism.as_str(), "SASL mechanism not offered");
                resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
            }
            _ => resp.error_code = ResponseError::IllegalSaslState.code(),
        }
        answer(api, version, correlation_id, &resp)
    }

    fn authenticate(
        &mut self,
        config: &SaslConfig,
        peer: std::net::SocketAddr,
        api: ApiKey,
        version: i16,
        frame: BytesMut,
    ) -> BeforeAuth {
        let Ok((correlation_id, req)) = decode::<SaslAuthenticateRequest>(api, version, frame)
        else {
            return BeforeAuth::Close("an undecodable SaslAuthenticate".into());
        };
        let mut resp = SaslAuthenticateResponse::default();
        if !matches!(self, SaslSession::Exchanging { legacy: false, .. }) {
            resp.error_code = ResponseError::IllegalSaslState.code();
            resp.error_message = Some(StrBytes::from_static_str(
                "SaslAuthenticate before a SaslHandshake v1 chose a mechanism",
            ));
            return match answer(api, version, correlation_id, &resp) {
                BeforeAuth::Answer(b) => BeforeAuth::Fail(b),
                other => other,
            };
        }
        match self.token(config, peer, &req.auth_bytes) {
            Ok(reply) => {
                resp.auth_bytes = reply.into();
                answer(api, version, correlation_id, &resp)
            }
            Err(e) => {
                resp.error_code = ResponseError::SaslAuthenticationFailed.code();
                resp.error_message = Some(StrBytes::from_string(e.to_string()));
                match answer(api, version, correlation_id, &resp) {
                    BeforeAuth::Answer(b) => BeforeAuth::Fail(b),
                    other => other,
                }
            }
        }
    }

    /// One token of the exchange: the reply, and on the last one the session is
    /// authenticated. Counted and logged (never with a secret).
    fn token(
        &mut self,
        config: &SaslConfig,
        peer: std::net::SocketAddr,
        token: &[u8],
    ) -> Result<Vec<u8>, AuthError> {
        let SaslSession::Exchanging { exchange, .. } = self else {
            unreachable!("called while exchanging");
        };
        let mechanism = exchange.mechanism().name();
        match exchange.step(token, &config.users) {
            Ok(Step::Continue(reply)) => Ok(reply),
            Ok(Step::Done { user, reply }) => {
                crate::telemetry::authentication(mechanism, true);
                *self = SaslSession::Authenticated(user);
                Ok(reply)
            }
            Err(e) => {
                crate::telemetry::authentication(mechanism, false);
                tracing::warn!(%peer, mechanism, reason = %e, "SASL authentication failed");
                *self = SaslSession::Start;
                Err(e)
            }
        }
    }
}

fn decode<R: Decodable>(api: ApiKey, version: i16, frame: BytesMut) -> Result<(i32, R), ()> {
    let mut body = frame.freeze();
    let header =
        RequestHeader::decode(&mut body, api.request_header_version(version)).map_err(|_| ())?;
    let req = R::decode(&mut body, version).map_err(|_| ())?;
    Ok((header.correlation_id, req))
}

fn answer<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, resp: &R) -> BeforeAuth {
    match super::encode_response(api, version, correlation_id, resp) {
        Ok(frame) => BeforeAuth::Answer(frame),
        Err(e) => BeforeAuth::Close(format!("cannot encode the {api:?} response: {e}")),
    }
}
