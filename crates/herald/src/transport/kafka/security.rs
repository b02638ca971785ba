//! Refused logins and failed TLS handshakes, reported by any client of a transport, turn
//! into errors of the operations waiting on that cluster at once.
//!
//! librdkafka treats a SASL authentication failure or a certificate it cannot verify as
//! a connection error and retries it forever: without this, a wrong password shows up
//! only as a timeout (30 s for metadata, `message.timeout.ms`, 5 min by default, for a
//! publish). Like the Java client's `AuthenticationException`, the operation fails with
//! the broker's reason instead.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::watch;

use crate::transport::{Result, TransportError};

/// How long a reported failure fails new operations at once. librdkafka reports an
/// identical connection error again only after 30 s, so within that time a new
/// operation would otherwise wait for its timeout; after it, an operation tries again.
const FAILURE_WINDOW: Duration = Duration::from_secs(30);

/// The latest authentication or TLS failure of a transport's clients.
#[derive(Debug)]
pub(crate) struct SecurityFailures {
    latest: watch::Sender<Option<(Instant, Arc<str>)>>,
}

impl Default for SecurityFailures {
    fn default() -> Self {
        Self {
            latest: watch::channel(None).0,
        }
    }
}

/// What to check after librdkafka's error event, if it is a refused login or a failed
/// TLS handshake.
fn hint(error: &KafkaError, reason: &str) -> Option<&'static str> {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
            Some(
                "check sasl.username and sasl.password, and that sasl.mechanism is one the \
                 broker offers",
            )
        }
        // Read and write errors of an established TLS connection are ordinary
        // disconnects; only the handshake says the certificate or the CA is wrong.
        Some(RDKafkaErrorCode::SSL) if reason.contains("handshake") => Some(
            "check ssl.ca.location (the CA that signed the broker's certificate) and that \
             the bootstrap host name is one the certificate names",
        ),
        _ => None,
    }
}

impl SecurityFailures {
    /// Records librdkafka's error event if it is a security failure.
    pub(crate) fn record(&self, error: &KafkaError, reason: &str) {
        if let Some(hint) = hint(error, reason) {
            let message = format!("the broker refused the connection: {reason}; {hint}");
            self.latest
                .send_replace(Some((Instant::now(), Arc::from(message))));
        }
    }

    /// The failure reported less than [`FAILURE_WINDOW`] ago, as an error message.
    fn recent(&self) -> Option<Arc<str>> {
        self.latest
            .borrow()
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FAILURE_WINDOW)
            .map(|(_, reason)| reason.clone())
    }

    /// Runs `work`, failing it with the security failure reported before it finishes
    /// (or shortly before it started) instead of letting it wait for its timeout.
    pub(crate) async fn guard<T>(
        &self,
        operation: impl Into<Arc<str>>,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let operation = operation.into();
        let mut changes = self.latest.subscribe();
        if let Some(reason) = self.recent() {
            return Err(security_error(operation, &reason));
        }
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                changed = changes.changed() => {
                    if changed.is_err() {
                        // The transport is going away; the work ends by itself.
                        return work.await;
                    }
                    if let Some(reason) = self.recent() {
                        return Err(security_error(operation, &reason));
                    }
                }
            }
        }
    }
}

/// The error of an operation whose connection the broker refused.
fn security_error(operation: Arc<str>, message: &Arc<str>) -> TransportError {
    TransportError::Kafka {
        operation,
        message: message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reported_failure_ends_waiting_work_and_fails_new_work() {
        let failures = Arc::new(SecurityFailures::default());
        let waiting = {
            let failures = failures.clone();
            tokio::spawn(async move {
                failures
                    .guard("publishing to t", std::future::pending::<Result<()>>())
                    .await
            })
        };
        tokio::task::yield_now().await;
        // Not a security failure: nothing happens.
        failures.record(
            &KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "Connection refused",
        );
        failures.record(
            &KafkaError::Global(RDKafkaErrorCode::SSL),
            "SSL transport error: Connection reset",
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        failures.record(
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error: Authentication failed",
        );
        let err = waiting.await.unwrap().unwrap_err().to_string();
        assert!(
            err.starts_with("publishing to t: the broker refused"),
            "{err}"
        );
        assert!(err.contains("Authentication failed"), "{err}");
        assert!(err.contains("sasl.password"), "{err}");
        let err = failures
            .guard("reading", async { Ok(()) })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Authentication failed"), "{err}");
    }

    #[tokio::test]
    async fn finished_work_is_not_failed() {
        let failures = SecurityFailures::default();
        assert_eq!(failures.guard("x", async { Ok(7) }).await.unwrap(), 7);
        failures.record(
            &KafkaError::Global(RDKafkaErrorCode::SSL),
            "SSL handshake failed: certificate verify failed",
        );
        let err = failures.guard("x", async { Ok(7) }).await.unwrap_err();
        assert!(err.to_string().contains("ssl.ca.location"), "{err}");
    }
}
