//! Waking relays and projections when events are written.
// why: `Waker` is named by the sealed `Dialect` trait, so it is `pub` in a private module.
#![allow(unreachable_pub)]

use std::time::Duration;

use sqlx::{PgPool, postgres::PgListener};

/// Waits for the next sign of new events: a PostgreSQL notification for this schema, or
/// the poll interval (always the fallback, so a lost notification costs one interval).
pub struct Waker {
    poll: Duration,
    listener: Option<(PgListener, String)>,
}

/// The channel `herald_events`' insert trigger notifies, with the table's schema as
/// payload.
const CHANNEL: &str = "herald_events";

impl Waker {
    /// Polling only.
    pub(crate) fn poll(poll: Duration) -> Self {
        Self {
            poll,
            listener: None,
        }
    }

    /// LISTEN on a connection of its own, for notifications from the pool's schema.
    pub(crate) async fn listen(pool: &PgPool, poll: Duration) -> Result<Self, sqlx::Error> {
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(pool)
            .await?;
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Self {
            poll,
            listener: Some((listener, schema)),
        })
    }

    /// Returns at the next notification for this schema or after the poll interval.
    pub(crate) async fn wait(&mut self) {
        let Some((listener, schema)) = &mut self.listener else {
            tokio::time::sleep(self.poll).await;
            return;
        };
        let notified = async {
            loop {
                match listener.recv().await {
                    Ok(n) if n.payload() == schema => return,
                    Ok(_) => {}
                    Err(e) => {
                        // The listener reconnects on its next recv; until then, poll.
                        tracing::warn!(error = %e, "LISTEN herald_events failed; polling");
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(self.poll, notified).await;
    }
}
