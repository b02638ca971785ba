//! SaslHandshake and SaslAuthenticate on a listener without SASL: answered as Apache
//! Kafka answers them on a PLAINTEXT listener, with ILLEGAL_SASL_STATE, and told to the
//! operator once a minute per client address, since a client configured for SASL against
//! this listener otherwise only fails on its own side.

use kafka_protocol::{
    ResponseError,
    messages::{
        SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
        SaslHandshakeResponse,
    },
    protocol::StrBytes,
};

use super::Ctx;

const NOT_HERE: &str = "this Kafka listener has no SASL: connect with security.protocol=PLAINTEXT";

/// SaslHandshake v0–1: ILLEGAL_SASL_STATE, no mechanisms.
pub(crate) async fn sasl_handshake(
    ctx: Ctx<'_>,
    req: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    crate::telemetry::wrong_listener(
        ctx.peer,
        "SASL",
        &format!(
            "client {:?} at {} asked for SASL ({}) on the plaintext Kafka listener; Herald \
             has no SASL listener yet: configure the client with security.protocol=PLAINTEXT \
             (docs/security.md)",
            ctx.client_id,
            ctx.peer,
            req.mechanism.as_str()
        ),
    );
    let mut resp = SaslHandshakeResponse::default();
    resp.error_code = ResponseError::IllegalSaslState.code();
    resp
}

/// SaslAuthenticate v0–2: ILLEGAL_SASL_STATE with a message.
pub(crate) async fn sasl_authenticate(
    ctx: Ctx<'_>,
    _req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    crate::telemetry::wrong_listener(
        ctx.peer,
        "SASL",
        &format!(
            "client {:?} at {} sent SaslAuthenticate to the plaintext Kafka listener; \
             configure it with security.protocol=PLAINTEXT (docs/security.md)",
            ctx.client_id, ctx.peer
        ),
    );
    let mut resp = SaslAuthenticateResponse::default();
    resp.error_code = ResponseError::IllegalSaslState.code();
    resp.error_message = Some(StrBytes::from_static_str(NOT_HERE));
    resp
}
