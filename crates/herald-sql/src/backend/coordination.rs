//! The statements that coordinate readers: projection checkpoints, and the relay's
//! slot leases, fetches and retention. Written once, like those of `Ops`, and
//! instantiated per database.
// why: part of the sealed `Backend` trait, so `pub` in a private module.
#![allow(unreachable_pub)]

use std::future::Future;

use sqlx::{Postgres, Sqlite};

use super::{COLUMNS, Dialect, Row, const_format, to_row};

/// Checkpoints and relay coordination.
pub trait Coordination: Dialect {
    /// Creates the checkpoint if missing, locks it (where there are row locks) and
    /// returns its position.
    fn lock_checkpoint(
        conn: &mut Self::Connection,
        name: &str,
        now: i64,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;
    fn save_checkpoint(
        conn: &mut Self::Connection,
        name: &str,
        position: i64,
        now: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    fn read_checkpoint(
        conn: &mut Self::Connection,
        name: &str,
    ) -> impl Future<Output = Result<Option<i64>, sqlx::Error>> + Send;
    /// Registers a live relay; returns how many are live.
    fn relay_heartbeat(
        conn: &mut Self::Connection,
        owner: &str,
        until: i64,
        now: i64,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;
    /// Extends the leases `owner` still holds; returns them as `(slot, checkpoint)`.
    fn relay_renew(
        conn: &mut Self::Connection,
        owner: &str,
        until: i64,
        now: i64,
    ) -> impl Future<Output = Result<Vec<(i64, i64)>, sqlx::Error>> + Send;
    /// Takes up to `max` free or expired slots.
    fn relay_claim(
        conn: &mut Self::Connection,
        owner: &str,
        until: i64,
        now: i64,
        max: i64,
    ) -> impl Future<Output = Result<Vec<(i64, i64)>, sqlx::Error>> + Send;
    /// Gives up one slot (`Some`) or every slot and the membership (`None`).
    fn relay_release(
        conn: &mut Self::Connection,
        owner: &str,
        slot: Option<i64>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    fn relay_fetch(
        conn: &mut Self::Connection,
        slot: i64,
        after: i64,
        max: i64,
    ) -> impl Future<Output = Result<Vec<Row>, sqlx::Error>> + Send;
    /// Moves a slot's checkpoint if `owner` still holds its lease; whether it did.
    fn relay_advance(
        conn: &mut Self::Connection,
        owner: &str,
        slot: i64,
        checkpoint: i64,
        until: i64,
        now: i64,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
    /// Deletes up to `limit` sent outbox messages recorded before `before`.
    fn purge(
        conn: &mut Self::Connection,
        before: i64,
        limit: i64,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;
    /// Unsent rows with a topic: how many, and when the oldest was recorded.
    fn backlog(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(i64, Option<i64>), sqlx::Error>> + Send;
}

macro_rules! impl_coordination {
    ($db:ty) => {
        impl Coordination for $db {
            async fn lock_checkpoint(conn: &mut Self::Connection, name: &str, now: i64) -> Result<i64, sqlx::Error> {
                sqlx::query("INSERT INTO herald_checkpoints (name, position, updated_at) VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query_scalar(<$db as Dialect>::LOCK_CHECKPOINT).bind(name).fetch_one(conn).await
            }

            async fn save_checkpoint(conn: &mut Self::Connection, name: &str, position: i64, now: i64) -> Result<(), sqlx::Error> {
                sqlx::query("UPDATE herald_checkpoints SET position = $2, updated_at = $3 WHERE name = $1")
                    .bind(name)
                    .bind(position)
                    .bind(now)
                    .execute(conn)
                    .await
                    .map(drop)
            }

            async fn read_checkpoint(conn: &mut Self::Connection, name: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::query_scalar("SELECT position FROM herald_checkpoints WHERE name = $1")
                    .bind(name)
                    .fetch_optional(conn)
                    .await
            }

            async fn relay_heartbeat(conn: &mut Self::Connection, owner: &str, until: i64, now: i64) -> Result<i64, sqlx::Error> {
                sqlx::query(
                    "INSERT INTO herald_relay_members (owner, lease_until) VALUES ($1, $2)
                     ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until",
                )
                .bind(owner)
                .bind(until)
                .execute(&mut *conn)
                .await?;
                sqlx::query("DELETE FROM herald_relay_members WHERE lease_until < $1")
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query_scalar("SELECT count(*) FROM herald_relay_members").fetch_one(conn).await
            }

            async fn relay_renew(conn: &mut Self::Connection, owner: &str, until: i64, now: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
                sqlx::query_as(
                    "UPDATE herald_relay_slots SET lease_until = $2
                     WHERE owner = $1 AND lease_until >= $3
                     RETURNING slot, checkpoint",
                )
                .bind(owner)
                .bind(until)
                .bind(now)
                .fetch_all(conn)
                .await
            }

            async fn relay_claim(conn: &mut Self::Connection, owner: &str, until: i64, now: i64, max: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
                sqlx::query_as(
                    "UPDATE herald_relay_slots SET owner = $1, lease_until = $2
                     WHERE slot IN (SELECT slot FROM herald_relay_slots
                                    WHERE owner IS NULL OR lease_until < $3
                                    ORDER BY slot LIMIT $4)
                       AND (owner IS NULL OR lease_until < $3)
                     RETURNING slot, checkpoint",
                )
                .bind(owner)
                .bind(until)
                .bind(now)
                .bind(max)
                .fetch_all(conn)
                .await
            }

            async fn relay_release(conn: &mut Self::Connection, owner: &str, slot: Option<i64>) -> Result<(), sqlx::Error> {
                match slot {
                    Some(slot) => {
                        sqlx::query("UPDATE herald_relay_slots SET owner = NULL, lease_until = 0 WHERE owner = $1 AND slot = $2")
                            .bind(owner)
                            .bind(slot)
                            .execute(conn)
                            .await?;
                    }
                    None => {
                        sqlx::query("UPDATE herald_relay_slots SET owner = NULL, lease_until = 0 WHERE owner = $1")
                            .bind(owner)
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("DELETE FROM herald_relay_members WHERE owner = $1")
                            .bind(owner)
                            .execute(conn)
                            .await?;
                    }
                }
                Ok(())
            }

            async fn relay_fetch(conn: &mut Self::Connection, slot: i64, after: i64, max: i64) -> Result<Vec<Row>, sqlx::Error> {
                let rows = sqlx::query(const_format!("SELECT {COLUMNS} FROM herald_events WHERE slot = $1 AND position > $2 ORDER BY position LIMIT $3"))
                    .bind(slot)
                    .bind(after)
                    .bind(max)
                    .fetch_all(conn)
                    .await?;
                rows.iter().map(to_row).collect()
            }

            async fn relay_advance(conn: &mut Self::Connection, owner: &str, slot: i64, checkpoint: i64, until: i64, now: i64) -> Result<bool, sqlx::Error> {
                let done = sqlx::query(
                    "UPDATE herald_relay_slots SET checkpoint = $3, lease_until = $5
                     WHERE slot = $2 AND owner = $1 AND lease_until >= $4 AND checkpoint < $3",
                )
                .bind(owner)
                .bind(slot)
                .bind(checkpoint)
                .bind(now)
                .bind(until)
                .execute(conn)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn purge(conn: &mut Self::Connection, before: i64, limit: i64) -> Result<u64, sqlx::Error> {
                let done = sqlx::query(
                    "DELETE FROM herald_events WHERE position IN (
                        SELECT e.position FROM herald_events e JOIN herald_relay_slots s ON s.slot = e.slot
                        WHERE e.stream_id IS NULL AND e.recorded_at < $1 AND e.position <= s.checkpoint
                        LIMIT $2)",
                )
                .bind(before)
                .bind(limit)
                .execute(conn)
                .await?;
                Ok(done.rows_affected())
            }

            async fn backlog(conn: &mut Self::Connection) -> Result<(i64, Option<i64>), sqlx::Error> {
                sqlx::query_as(
                    "SELECT count(*), min(e.recorded_at) FROM herald_events e JOIN herald_relay_slots s ON s.slot = e.slot
                     WHERE e.position > s.checkpoint AND e.topic IS NOT NULL",
                )
                .fetch_one(conn)
                .await
            }
        }
    };
}

impl_coordination!(Sqlite);
impl_coordination!(Postgres);
