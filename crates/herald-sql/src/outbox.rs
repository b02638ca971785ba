//! The transactional outbox: events written in the caller's own transaction.
//!
//! [`enqueue`] inserts an event into `herald_events` inside the transaction that changes
//! the service's data, so both commit or neither does: a rolled-back transaction
//! publishes nothing, and a committed one cannot lose its events. The [`Relay`]
//! publishes them afterwards, at least once, in commit order per key.
//!
//! Enqueueing takes the next global positions from the `herald_log_head` row, which
//! stays locked until the transaction ends: concurrent writers commit their events in
//! position order, so readers never see a later position before an earlier one
//! (`docs/adr/0008-commit-ordered-positions.md`). Enqueue as the last step of a
//! transaction, so the lock is held only for its commit.
//!
//! [`Relay`]: crate::Relay

use herald::{Envelope, Event, transport::validate_topic_name};
use sqlx::Transaction;

use crate::{
    backend::{Backend, NewRow},
    codec::{encode_headers, now_ms, slot_of},
    error::{Error, Result},
};

/// Adds `envelope` to the outbox in the caller's transaction, for publication to `topic`
/// once the transaction commits. Returns its global position.
///
/// The envelope is published as it is: id, key, attributes, correlation and trace
/// context unchanged. An invalid topic name is refused before anything is written.
pub async fn enqueue<DB: Backend>(
    tx: &mut Transaction<'_, DB>,
    topic: &str,
    envelope: &Envelope,
) -> Result<u64> {
    Ok(enqueue_all(tx, topic, std::slice::from_ref(envelope))
        .await?
        .start()
        .to_owned())
}

/// Adds several envelopes to the outbox in the caller's transaction, in order; returns
/// their global positions (consecutive).
pub async fn enqueue_all<DB: Backend>(
    tx: &mut Transaction<'_, DB>,
    topic: &str,
    envelopes: &[Envelope],
) -> Result<std::ops::RangeInclusive<u64>> {
    validate_topic_name(topic).map_err(|e| Error::InvalidInput(e.to_string()))?;
    if envelopes.is_empty() {
        return Err(Error::InvalidInput("no events to enqueue".into()));
    }
    let now = now_ms();
    let rows: Vec<NewRow> = envelopes
        .iter()
        .map(|e| new_row(e, Some(topic), None, now))
        .collect();
    let first = write_rows::<DB>(&mut **tx, &rows, "enqueueing to the outbox").await?;
    Ok(first..=first + rows.len() as u64 - 1)
}

/// Wraps a typed event ([`Envelope::from_event`]) and enqueues it.
pub async fn enqueue_event<DB: Backend, E: Event>(
    tx: &mut Transaction<'_, DB>,
    topic: &str,
    source: &str,
    event: &E,
) -> Result<u64> {
    let envelope = Envelope::from_event(source, event)?;
    enqueue(tx, topic, &envelope).await
}

/// A row for `envelope`; `stream` is `(stream id, version)` for event-store events.
pub(crate) fn new_row(
    envelope: &Envelope,
    topic: Option<&str>,
    stream: Option<(&str, u64)>,
    now: i64,
) -> NewRow {
    NewRow {
        slot: i64::from(slot_of(envelope)),
        topic: topic.map(str::to_owned),
        stream_id: stream.map(|(s, _)| s.to_owned()),
        version: stream.map(|(_, v)| v as i64),
        event_id: envelope.id.clone(),
        event_type: envelope.event_type.clone(),
        key: envelope.key.as_ref().map(|k| k.to_vec()),
        headers: encode_headers(&envelope.to_headers()),
        data: envelope.data.to_vec(),
        recorded_at: now,
    }
}

/// Takes positions for `rows` and inserts them; returns the first position.
pub(crate) async fn write_rows<DB: Backend>(
    conn: &mut DB::Connection,
    rows: &[NewRow],
    operation: &str,
) -> Result<u64> {
    let last = DB::allocate(conn, rows.len() as i64)
        .await
        .map_err(Error::db(DB::BACKEND, operation))?;
    let first = last - rows.len() as i64 + 1;
    DB::insert_rows(conn, first, rows)
        .await
        .map_err(Error::db(DB::BACKEND, operation))?;
    Ok(first as u64)
}
