//! [`SagaManager`]: starts sagas and runs their transitions — on a reply, on a deadline —
//! each in one database transaction with the commands it sends.
//!
//! A transition loads the instance, decides, and writes the new state (checking the
//! version it loaded: optimistic concurrency), its history entries, the commands it
//! sends (`herald_saga_commands`) and those commands into herald-sql's outbox, and
//! commits. A crash before the commit leaves nothing behind (the reply is redelivered,
//! the deadline is still due); after it, everything is there, and the relay publishes
//! the commands. Two transitions of one saga at once (a reply racing a timeout, two
//! runtimes) cannot both commit: the loser sees another version, loads again and
//! decides again, usually to ignore what it was handling.

use std::{fmt, sync::Arc};

use herald::{Envelope, correlation::TraceParent};
use sqlx::Transaction;
use tracing::Instrument;

use crate::{
    backend::{InstanceRow, SagaBackend},
    clock::{Clock, SystemClock, millis},
    definition::{Action, SagaData, SagaDefinition},
    error::{Result, SagaError},
    model::{HistoryKind, SAGA_ID_HEADER, SAGA_TYPE_HEADER, SagaStatus},
    store::SagaStore,
    telemetry,
    transition::{Decided, Phase, Transition, parse_status, write_rest},
};

/// How often a transition that lost a race to another writer is tried again.
const MAX_CONFLICTS: usize = 32;

/// What [`SagaManager::handle_reply`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The reply moved the saga on.
    Applied {
        /// The saga.
        saga_id: String,
        /// Its status after the transition.
        status: SagaStatus,
    },
    /// The event changed nothing.
    Ignored(IgnoreReason),
}

/// Why an event changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// No step of this saga type waits for events of this type.
    NotAReply,
    /// The event answers no command of this saga type (its causation id is not one,
    /// and it carries no saga id).
    Unmatched,
    /// The saga is past the step the reply answers, or final: a duplicate or a late
    /// reply.
    Stale,
    /// The step being awaited does not take replies of this type.
    Unexpected,
}

impl IgnoreReason {
    fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::NotAReply => "not_a_reply",
            IgnoreReason::Unmatched => "unmatched",
            IgnoreReason::Stale => "stale",
            IgnoreReason::Unexpected => "unexpected",
        }
    }
}

/// Starts sagas of one type and runs their transitions. Cheap to clone. Make one with
/// [`SagaStore::manager`]; [`runtime`](Self::runtime) drives it from a transport.
pub struct SagaManager<DB: SagaBackend, D> {
    store: SagaStore<DB>,
    definition: SagaDefinition<D>,
    clock: Arc<dyn Clock>,
}

impl<DB: SagaBackend, D> Clone for SagaManager<DB, D> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            definition: self.definition.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<DB: SagaBackend, D> fmt::Debug for SagaManager<DB, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaManager")
            .field("definition", &self.definition)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<DB: SagaBackend, D: SagaData> SagaManager<DB, D> {
    pub(crate) fn new(store: SagaStore<DB>, definition: SagaDefinition<D>) -> Self {
        Self {
            store,
            definition,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` for deadlines instead of the system clock (tests: a
    /// [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The definition.
    pub fn definition(&self) -> &SagaDefinition<D> {
        &self.definition
    }

    /// The store (queries).
    pub fn store(&self) -> &SagaStore<DB> {
        &self.store
    }

    /// Starts saga `saga_id` with `data` in its own transaction: records it and sends
    /// the first step's command. Fails with [`SagaError::AlreadyExists`] if a saga of
    /// this type has that id.
    pub async fn start(&self, saga_id: &str, data: D) -> Result<()> {
        let mut tx = self.store.db.begin().await?;
        self.start_in(&mut tx, saga_id, data).await?;
        tx.commit()
            .await
            .map_err(SagaError::db(DB::BACKEND, "committing a saga start"))
    }

    /// Starts saga `saga_id` with `data` inside the caller's transaction: it exists, and
    /// its first command is in the outbox, if and only if the caller commits. Start
    /// sagas last in a transaction (like [`herald_sql::enqueue`]). Its commands get a
    /// fresh correlation id and trace.
    pub async fn start_in(
        &self,
        tx: &mut Transaction<'_, DB>,
        saga_id: &str,
        data: D,
    ) -> Result<()> {
        self.start_with(tx, saga_id, data, None).await
    }

    /// Like [`start_in`](Self::start_in), for a saga started because of `cause` (e.g.
    /// the `OrderPlaced` event enqueued in the same transaction): its commands carry
    /// `cause`'s correlation id (or its id) and continue its trace, and the first one
    /// names `cause` as its causation.
    pub async fn start_in_caused_by(
        &self,
        tx: &mut Transaction<'_, DB>,
        saga_id: &str,
        data: D,
        cause: &Envelope,
    ) -> Result<()> {
        self.start_with(tx, saga_id, data, Some(cause)).await
    }

    /// Like [`start`](Self::start), caused by `cause` (see
    /// [`start_in_caused_by`](Self::start_in_caused_by)).
    pub async fn start_caused_by(&self, saga_id: &str, data: D, cause: &Envelope) -> Result<()> {
        let mut tx = self.store.db.begin().await?;
        self.start_with(&mut tx, saga_id, data, Some(cause)).await?;
        tx.commit()
            .await
            .map_err(SagaError::db(DB::BACKEND, "committing a saga start"))
    }

    async fn start_with(
        &self,
        tx: &mut Transaction<'_, DB>,
        saga_id: &str,
        data: D,
        cause: Option<&Envelope>,
    ) -> Result<()> {
        if saga_id.is_empty() || saga_id.len() > 512 {
            return Err(SagaError::InvalidInput(format!(
                "a saga id must be 1 to 512 bytes, got {} bytes",
                saga_id.len()
            )));
        }
        let name = self.definition.name();
        let span = tracing::info_span!("herald_saga.start", saga = name, saga_id);
        async {
            let now = millis(self.clock.now());
            let correlation_id = cause
                .map(|c| c.correlation_id.clone().unwrap_or_else(|| c.id.clone()))
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let traceparent = cause
                .and_then(|c| c.traceparent.as_deref())
                .and_then(TraceParent::parse)
                .map(|p| p.child())
                .unwrap_or_else(TraceParent::new_root)
                .to_string();
            let row = InstanceRow {
                saga_type: name.to_owned(),
                saga_id: saga_id.to_owned(),
                status: SagaStatus::Running.as_str().to_owned(),
                step: 0,
                step_name: None,
                attempt: 1,
                command_id: None,
                deadline: None,
                data: String::new(),
                correlation_id,
                traceparent: Some(traceparent),
                error: None,
                version: 0,
                history_len: 0,
                step_started_at: now,
                created_at: now,
                updated_at: now,
            };
            let mut t = Transition::new(&self.definition, row, data, now, cause)?;
            t.record(HistoryKind::Started, None, None, cause, None);
            t.send(Phase::Step, 0, 1)?;
            let Decided {
                row,
                history,
                commands,
                effects,
            } = t.finish()?;
            if !DB::insert_instance(tx, &row).await.map_err(SagaError::db(
                DB::BACKEND,
                format!("starting saga {name}/{saga_id}"),
            ))? {
                return Err(SagaError::AlreadyExists {
                    saga_type: name.to_owned(),
                    saga_id: saga_id.to_owned(),
                });
            }
            write_rest::<DB>(tx, &row, &history, &commands).await?;
            telemetry::started(name);
            effects.emit(name);
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Hands `reply` to the saga it answers: the saga whose command is its causation id
    /// (or, failing that, whose id is in its [`SAGA_ID_HEADER`]). A success reply
    /// moves to the next step, a failure reply starts compensating; a duplicate, a late
    /// reply, or an event no step waits for changes nothing. The runtime calls this for
    /// every event on the reply topics; call it yourself to feed replies from elsewhere.
    ///
    /// A reply that does not decode into the type its step declared is an
    /// [`SagaError::Event`] (the runtime dead-letters it); other errors are transient.
    pub async fn handle_reply(&self, reply: &Envelope) -> Result<ReplyOutcome> {
        let name = self.definition.name();
        if !self.definition.reply_types().contains(&reply.event_type) {
            return Ok(self.ignored(IgnoreReason::NotAReply));
        }
        let span = tracing::info_span!(
            "herald_saga.reply",
            saga = name,
            saga_id = tracing::field::Empty,
            event_type = %reply.event_type,
            event_id = %reply.id,
        );
        async {
            for _ in 0..MAX_CONFLICTS {
                let mut tx = self.store.db.begin().await?;
                let target = self.target(&mut tx, reply).await?;
                let Some((row, step, phase)) = target else {
                    return Ok(self.ignored(IgnoreReason::Unmatched));
                };
                tracing::Span::current().record("saga_id", row.saga_id.as_str());
                let status: SagaStatus = parse_status(&row)?;
                if Phase::of(status) != Some(phase) || row.step != step {
                    return Ok(self.ignored(IgnoreReason::Stale));
                }
                let action = self.action(&row, phase)?;
                let Some(handler) = action.replies.get(&reply.event_type).cloned() else {
                    return Ok(self.ignored(IgnoreReason::Unexpected));
                };
                let expected = row.version;
                let saga_id = row.saga_id.clone();
                let data = self.data(&row)?;
                let mut t = Transition::new(&self.definition, row, data, self.now(), Some(reply))?;
                (handler.apply)(&mut t.data, reply)?;
                t.on_reply(phase, step as usize, handler.outcome, reply)?;
                if let Some(status) = self.commit(tx, t, expected).await? {
                    return Ok(ReplyOutcome::Applied { saga_id, status });
                }
            }
            Err(self.contended(reply.causation_id.as_deref().unwrap_or("?")))
        }
        .instrument(span)
        .await
    }

    /// Fires every deadline that is due: re-sends commands whose reply timed out (after
    /// their backoff), and fails steps whose attempts ran out (then compensates, or ends
    /// the saga [`Failed`](SagaStatus::Failed) if a compensation ran out). Returns how
    /// many sagas changed. The runtime calls this every
    /// [`poll_interval`](crate::SagaConfig::poll_interval).
    pub async fn fire_timeouts(&self) -> Result<usize> {
        let mut fired = 0;
        loop {
            let now = self.now();
            let batch = 100;
            let due = {
                let mut conn = self
                    .store
                    .db
                    .pool()
                    .acquire()
                    .await
                    .map_err(SagaError::db(DB::BACKEND, "acquiring a connection"))?;
                DB::due(&mut conn, self.definition.name(), now, batch)
                    .await
                    .map_err(SagaError::db(DB::BACKEND, "reading due deadlines"))?
            };
            let n = due.len();
            for saga_id in due {
                if self.fire(&saga_id, now).await? {
                    fired += 1;
                }
            }
            if (n as i64) < batch {
                return Ok(fired);
            }
        }
    }

    async fn fire(&self, saga_id: &str, now: i64) -> Result<bool> {
        let name = self.definition.name();
        let span = tracing::info_span!("herald_saga.deadline", saga = name, saga_id);
        async {
            for _ in 0..MAX_CONFLICTS {
                let mut tx = self.store.db.begin().await?;
                let Some(row) =
                    DB::load_instance(&mut tx, name, saga_id)
                        .await
                        .map_err(SagaError::db(
                            DB::BACKEND,
                            format!("loading saga {name}/{saga_id}"),
                        ))?
                else {
                    return Ok(false);
                };
                let status = parse_status(&row)?;
                let (Some(phase), Some(deadline)) = (Phase::of(status), row.deadline) else {
                    return Ok(false);
                };
                if deadline > now {
                    return Ok(false);
                }
                let expected = row.version;
                let data = self.data(&row)?;
                let mut t = Transition::new(&self.definition, row, data, now, None)?;
                t.on_deadline(phase)?;
                if self.commit(tx, t, expected).await?.is_some() {
                    return Ok(true);
                }
            }
            Err(self.contended(saga_id))
        }
        .instrument(span)
        .await
    }

    /// Finds the saga, step and phase `reply` answers, loading the saga in `tx`.
    async fn target(
        &self,
        tx: &mut Transaction<'static, DB>,
        reply: &Envelope,
    ) -> Result<Option<(InstanceRow, i64, Phase)>> {
        let name = self.definition.name();
        if let Some(causation) = reply.causation_id.as_deref() {
            let command = DB::find_command(tx, name, causation)
                .await
                .map_err(SagaError::db(DB::BACKEND, "finding the command of a reply"))?;
            if let Some(c) = command {
                let row = self.load(tx, &c.saga_id).await?;
                let phase = if c.phase == Phase::Compensation.as_str() {
                    Phase::Compensation
                } else {
                    Phase::Step
                };
                return Ok(row.map(|r| (r, c.step, phase)));
            }
        }
        let header = |key: &str| {
            reply
                .extensions
                .iter()
                .find(|h| h.key == key)
                .and_then(|h| h.value_str())
                .map(str::to_owned)
        };
        if header(SAGA_TYPE_HEADER).is_some_and(|t| t != name) {
            return Ok(None);
        }
        let Some(saga_id) = header(SAGA_ID_HEADER) else {
            return Ok(None);
        };
        let Some(row) = self.load(tx, &saga_id).await? else {
            return Ok(None);
        };
        // Without a causation id the reply answers whatever is awaited now.
        let phase = Phase::of(parse_status(&row)?).unwrap_or(Phase::Step);
        let step = row.step;
        Ok(Some((row, step, phase)))
    }

    async fn load(
        &self,
        tx: &mut Transaction<'static, DB>,
        saga_id: &str,
    ) -> Result<Option<InstanceRow>> {
        let name = self.definition.name();
        DB::load_instance(tx, name, saga_id)
            .await
            .map_err(SagaError::db(
                DB::BACKEND,
                format!("loading saga {name}/{saga_id}"),
            ))
    }

    /// Writes `t` if the saga is still at `expected`; the new status, or `None` if
    /// another writer got there first (nothing written).
    async fn commit(
        &self,
        mut tx: Transaction<'static, DB>,
        t: Transition<'_, D>,
        expected: i64,
    ) -> Result<Option<SagaStatus>> {
        let name = self.definition.name();
        let Decided {
            row,
            history,
            commands,
            effects,
        } = t.finish()?;
        let what = || format!("updating saga {name}/{}", row.saga_id);
        if !DB::update_instance(&mut tx, &row, expected)
            .await
            .map_err(SagaError::db(DB::BACKEND, what()))?
        {
            telemetry::conflict(name);
            return Ok(None);
        }
        write_rest::<DB>(&mut tx, &row, &history, &commands).await?;
        tx.commit()
            .await
            .map_err(SagaError::db(DB::BACKEND, what()))?;
        effects.emit(name);
        Ok(Some(effects.status))
    }

    fn action(&self, row: &InstanceRow, phase: Phase) -> Result<&Action<D>> {
        let step = self.definition.steps().get(row.step as usize);
        let action = match (step, phase) {
            (Some(s), Phase::Step) => Some(&s.action),
            (Some(s), Phase::Compensation) => s.compensation.as_ref(),
            (None, _) => None,
        };
        action.ok_or_else(|| SagaError::Corrupt {
            saga_type: row.saga_type.clone(),
            saga_id: row.saga_id.clone(),
            reason: format!(
                "it is at step {} ({}) which this definition does not have",
                row.step,
                phase.as_str()
            ),
        })
    }

    fn data(&self, row: &InstanceRow) -> Result<D> {
        serde_json::from_str(&row.data).map_err(|e| SagaError::Corrupt {
            saga_type: row.saga_type.clone(),
            saga_id: row.saga_id.clone(),
            reason: format!("its data does not deserialize: {e}"),
        })
    }

    fn now(&self) -> i64 {
        millis(self.clock.now())
    }

    fn ignored(&self, reason: IgnoreReason) -> ReplyOutcome {
        telemetry::ignored(self.definition.name(), reason.as_str());
        tracing::debug!(reason = reason.as_str(), "reply ignored");
        ReplyOutcome::Ignored(reason)
    }

    fn contended(&self, saga_id: &str) -> SagaError {
        SagaError::Contended {
            saga_type: self.definition.name().to_owned(),
            saga_id: saga_id.to_owned(),
        }
    }
}

impl<DB: SagaBackend> SagaStore<DB> {
    /// A manager for sagas of `definition`'s type: starts them and runs their
    /// transitions; its [`runtime`](SagaManager::runtime) consumes replies and fires
    /// timeouts.
    pub fn manager<D: SagaData>(&self, definition: SagaDefinition<D>) -> SagaManager<DB, D> {
        SagaManager::new(self.clone(), definition)
    }
}
