//! The event store: streams with versions, a global order, snapshots and tombstones.
//!
//! Each stream's events are numbered from 1 (its version is the number of the last);
//! every event also has a global position, shared with the outbox and commit-ordered
//! (`docs/adr/0008-commit-ordered-positions.md`). An append states the version it
//! expects ([`ExpectedVersion`]); if another writer got there first it fails with
//! [`Error::Conflict`] and writes nothing. Appends to several streams commit together
//! ([`EventStore::append_many`]), and [`EventStore::append_in`] joins the caller's
//! transaction. The store is also an outbox: with [`EventStore::with_topic`], the
//! [`Relay`](crate::Relay) publishes appended events to that topic, keyed by stream.

use std::{fmt, sync::Arc, time::SystemTime};

use herald::{Envelope, Event, EventError};
use sqlx::{Pool, Transaction};

pub use crate::version::ExpectedVersion;
use crate::{
    backend::{Backend, Row},
    codec::{self, from_millis, millis, now_ms},
    error::{Conflict, Error, Result},
    outbox::{new_row, write_rows},
    upcast::Upcasters,
};

/// An event as stored: where it is, and the envelope (upcast to the current shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position, commit-ordered across every stream and the outbox.
    pub position: u64,
    /// The stream it belongs to.
    pub stream_id: String,
    /// Its number in the stream, from 1.
    pub version: u64,
    /// When the store recorded it (the appending transaction's clock).
    pub recorded_at: SystemTime,
    /// The event.
    pub envelope: Envelope,
}

impl RecordedEvent {
    /// The event as a typed event (see [`Envelope::decode`]).
    pub fn decode<E: Event>(&self) -> Result<E, EventError> {
        self.envelope.decode()
    }
}

/// Where an append left its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Version of the first appended event.
    pub first_version: u64,
    /// The stream's version now (that of the last appended event).
    pub version: u64,
    /// Global position of the first appended event.
    pub first_position: u64,
    /// Global position of the last appended event.
    pub last_position: u64,
}

/// One stream's part of an [`EventStore::append_many`].
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// The stream.
    pub stream: String,
    /// The version it must be at.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<Envelope>,
}

impl StreamAppend {
    /// `events` for `stream`, expecting `expected`.
    pub fn new(
        stream: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<Envelope>,
    ) -> Self {
        Self {
            stream: stream.into(),
            expected,
            events,
        }
    }
}

/// Which way [`EventStore::read_stream`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the given version up.
    Forward,
    /// From the given version down (`u64::MAX`: from the last event).
    Backward,
}

/// A saved aggregate state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream version the state includes.
    pub version: u64,
    /// The state's schema version, chosen by the writer; readers ignore snapshots of
    /// another schema.
    pub schema_version: u32,
    /// The state.
    pub state: Vec<u8>,
}

/// The event store. Cheap to clone.
pub struct EventStore<DB: Backend> {
    pool: Pool<DB>,
    topic: Option<Arc<str>>,
    upcasters: Arc<Upcasters>,
}

impl<DB: Backend> Clone for EventStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            topic: self.topic.clone(),
            upcasters: self.upcasters.clone(),
        }
    }
}

impl<DB: Backend> fmt::Debug for EventStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStore")
            .field("backend", &DB::BACKEND)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl<DB: Backend> EventStore<DB> {
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        Self {
            pool,
            topic: None,
            upcasters: Arc::new(Upcasters::new()),
        }
    }

    /// Publishes appended events to `topic` through the relay. Without a topic, events
    /// are stored and read but not published.
    pub fn with_topic(mut self, topic: &str) -> Result<Self> {
        herald::transport::validate_topic_name(topic)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        self.topic = Some(topic.into());
        Ok(self)
    }

    /// Converts old event versions on every read ([`Upcasters`]).
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// The pool.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Appends `events` to `stream` in a transaction of its own.
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Envelope>,
    ) -> Result<AppendResult> {
        let mut results = self
            .append_many(vec![StreamAppend::new(stream, expected, events)])
            .await?;
        Ok(results.remove(0))
    }

    /// Appends `events` to `stream` in the caller's transaction: they commit (and are
    /// published) with it, or not at all.
    pub async fn append_in(
        &self,
        tx: &mut Transaction<'_, DB>,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Envelope>,
    ) -> Result<AppendResult> {
        let mut results = self
            .append_many_in(tx, vec![StreamAppend::new(stream, expected, events)])
            .await?;
        Ok(results.remove(0))
    }

    /// Appends to several streams atomically: every expected version must hold, or
    /// nothing is written. Results are in the order of `appends`.
    pub async fn append_many(&self, appends: Vec<StreamAppend>) -> Result<Vec<AppendResult>> {
        let mut tx = DB::begin_write(&self.pool)
            .await
            .map_err(Error::db(DB::BACKEND, "beginning an append"))?;
        let results = self.append_many_in(&mut tx, appends).await?;
        tx.commit()
            .await
            .map_err(Error::db(DB::BACKEND, "committing an append"))?;
        Ok(results)
    }

    /// [`append_many`](Self::append_many) in the caller's transaction. On an error the
    /// caller must roll back: part of the append may have been written.
    pub async fn append_many_in(
        &self,
        tx: &mut Transaction<'_, DB>,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>> {
        validate(&appends)?;
        // Streams are locked in id order, so concurrent multi-stream appends cannot
        // deadlock on each other; the log head is locked last.
        let mut order: Vec<usize> = (0..appends.len()).collect();
        order.sort_by(|&a, &b| appends[a].stream.cmp(&appends[b].stream));
        let now = now_ms();
        let mut first_versions = vec![0u64; appends.len()];
        for &i in &order {
            let a = &appends[i];
            let n = a.events.len() as i64;
            let bumped = DB::bump_stream(&mut **tx, &a.stream, a.expected, n, now)
                .await
                .map_err(Error::db(DB::BACKEND, format!("appending to {}", a.stream)))?;
            match bumped {
                Some(version) => first_versions[i] = (version - n + 1) as u64,
                None => return Err(self.refusal(tx, &a.stream, a.expected).await),
            }
        }
        let mut rows = Vec::new();
        for (i, a) in appends.iter().enumerate() {
            for (j, event) in a.events.iter().enumerate() {
                let keyed;
                let event = if event.key.is_none() {
                    keyed = event.clone().with_key(a.stream.clone());
                    &keyed
                } else {
                    event
                };
                let version = first_versions[i] + j as u64;
                rows.push(new_row(
                    event,
                    self.topic.as_deref(),
                    Some((&a.stream, version)),
                    now,
                ));
            }
        }
        let first = write_rows::<DB>(&mut **tx, &rows, "appending events").await?;
        let mut position = first;
        Ok(appends
            .iter()
            .zip(first_versions)
            .map(|(a, first_version)| {
                let n = a.events.len() as u64;
                let result = AppendResult {
                    first_version,
                    version: first_version + n - 1,
                    first_position: position,
                    last_position: position + n - 1,
                };
                position += n;
                result
            })
            .collect())
    }

    /// Why a stream refused an append or delete: deleted, or at another version.
    async fn refusal(
        &self,
        conn: &mut DB::Connection,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Error {
        match DB::stream_state(conn, stream).await {
            Ok(Some((_, true))) => Error::StreamDeleted {
                stream: stream.to_owned(),
            },
            Ok(state) => Error::Conflict(Conflict {
                stream: stream.to_owned(),
                expected,
                actual: state.map(|(v, _)| v as u64).filter(|&v| v > 0),
            }),
            Err(e) => Error::db(DB::BACKEND, format!("reading the version of {stream}"))(e),
        }
    }

    /// The stream's version: `None` if it has no events. A deleted stream is
    /// [`Error::StreamDeleted`].
    pub async fn stream_version(&self, stream: &str) -> Result<Option<u64>> {
        let mut conn = self.acquire().await?;
        match DB::stream_state(&mut conn, stream)
            .await
            .map_err(Error::db(
                DB::BACKEND,
                format!("reading the version of {stream}"),
            ))? {
            Some((_, true)) => Err(Error::StreamDeleted {
                stream: stream.to_owned(),
            }),
            Some((v, false)) if v > 0 => Ok(Some(v as u64)),
            _ => Ok(None),
        }
    }

    /// Tombstones `stream` if `expected` holds: later reads and appends get
    /// [`Error::StreamDeleted`]. Its events stay in the global order ([`read_all`]), so
    /// projections keep what they built from them.
    ///
    /// [`read_all`]: Self::read_all
    pub async fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<()> {
        check_stream(stream)?;
        let mut tx = DB::begin_write(&self.pool)
            .await
            .map_err(Error::db(DB::BACKEND, "beginning a delete"))?;
        let done = DB::tombstone(&mut tx, stream, expected, now_ms())
            .await
            .map_err(Error::db(DB::BACKEND, format!("deleting {stream}")))?;
        if !done {
            return Err(self.refusal(&mut tx, stream, expected).await);
        }
        tx.commit()
            .await
            .map_err(Error::db(DB::BACKEND, format!("deleting {stream}")))
    }

    /// Up to `max` events of `stream` from version `from` (inclusive) in `direction`.
    /// A stream with no events reads empty; a deleted one is [`Error::StreamDeleted`].
    pub async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.read_stream_until(stream, from, direction, max, None)
            .await
    }

    /// Like [`read_stream`](Self::read_stream), only events recorded at or before
    /// `until` (when given).
    pub async fn read_stream_until(
        &self,
        stream: &str,
        from: u64,
        direction: Direction,
        max: usize,
        until: Option<SystemTime>,
    ) -> Result<Vec<RecordedEvent>> {
        let mut conn = self.acquire().await?;
        let context = || format!("reading {stream}");
        if let Some((_, true)) = DB::stream_state(&mut conn, stream)
            .await
            .map_err(Error::db(DB::BACKEND, context()))?
        {
            return Err(Error::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        let from = from.min(i64::MAX as u64) as i64;
        let until = until.map_or(i64::MAX, millis);
        let rows = DB::read_stream(
            &mut conn,
            stream,
            from,
            direction == Direction::Backward,
            until,
            clamp(max),
        )
        .await
        .map_err(Error::db(DB::BACKEND, context()))?;
        rows.into_iter().map(|r| self.recorded(r)).collect()
    }

    /// Up to `max` events of every stream after global position `after` (0: from the
    /// start), in position order. Positions are commit-ordered: a reader that moves its
    /// position forward never skips an event that commits later.
    pub async fn read_all(&self, after: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        let mut conn = self.acquire().await?;
        self.read_all_on(&mut conn, after, max).await
    }

    pub(crate) async fn read_all_on(
        &self,
        conn: &mut DB::Connection,
        after: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let rows = DB::read_all(conn, after as i64, clamp(max))
            .await
            .map_err(Error::db(DB::BACKEND, "reading all events"))?;
        rows.into_iter().map(|r| self.recorded(r)).collect()
    }

    /// Position of the last event in the store (0 if empty).
    pub async fn last_position(&self) -> Result<u64> {
        let mut conn = self.acquire().await?;
        let last = DB::last_event(&mut conn)
            .await
            .map_err(Error::db(DB::BACKEND, "reading the last position"))?;
        Ok(last.map_or(0, |(p, _)| p as u64))
    }

    /// Saves `state` as the snapshot of `stream` at `version`, replacing an older one.
    pub async fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        schema_version: u32,
        state: &[u8],
    ) -> Result<()> {
        check_stream(stream)?;
        let mut conn = self.acquire().await?;
        DB::save_snapshot(
            &mut conn,
            stream,
            version as i64,
            i64::from(schema_version),
            state,
            now_ms(),
        )
        .await
        .map_err(Error::db(
            DB::BACKEND,
            format!("saving a snapshot of {stream}"),
        ))
    }

    /// The latest snapshot of `stream`.
    pub async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        let mut conn = self.acquire().await?;
        let found = DB::load_snapshot(&mut conn, stream)
            .await
            .map_err(Error::db(
                DB::BACKEND,
                format!("loading the snapshot of {stream}"),
            ))?;
        Ok(found.map(|(version, schema, state)| Snapshot {
            version: version as u64,
            schema_version: schema as u32,
            state,
        }))
    }

    async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<DB>> {
        self.pool
            .acquire()
            .await
            .map_err(Error::db(DB::BACKEND, "connecting"))
    }

    /// A stored row as an event of the store, upcast.
    fn recorded(&self, row: Row) -> Result<RecordedEvent> {
        let position = row.position as u64;
        let envelope = codec::envelope(position, row.key, &row.headers, row.data)?;
        let (Some(stream_id), Some(version)) = (row.stream_id, row.version) else {
            return Err(Error::Corrupt {
                position,
                reason: "an event-store row without stream".into(),
            });
        };
        Ok(RecordedEvent {
            position,
            stream_id,
            version: version as u64,
            recorded_at: from_millis(row.recorded_at),
            envelope: self.upcasters.upcast(envelope)?,
        })
    }
}

fn clamp(max: usize) -> i64 {
    max.min(i64::MAX as usize) as i64
}

/// Stream ids are 1 to 512 bytes of text without control characters.
pub(crate) fn check_stream(stream: &str) -> Result<()> {
    if stream.is_empty() || stream.len() > 512 || stream.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "stream id {stream:?}: 1 to 512 bytes without control characters"
        )));
    }
    Ok(())
}

fn validate(appends: &[StreamAppend]) -> Result<()> {
    if appends.is_empty() {
        return Err(Error::InvalidInput("no streams to append to".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for a in appends {
        check_stream(&a.stream)?;
        if a.events.is_empty() {
            return Err(Error::InvalidInput(format!(
                "no events to append to {}",
                a.stream
            )));
        }
        if !seen.insert(a.stream.as_str()) {
            return Err(Error::InvalidInput(format!(
                "stream {} appears twice in one append",
                a.stream
            )));
        }
    }
    Ok(())
}
