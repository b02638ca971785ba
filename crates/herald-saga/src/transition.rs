//! One transition of a saga, decided in memory: the instance's new state, the history
//! entries it adds and the commands it sends. [`SagaManager`](crate::SagaManager) loads
//! the instance, asks a `Transition` what a reply or a deadline does to it, and writes
//! the result in one transaction.

use std::time::Duration;

use herald::{Envelope, correlation::TraceParent};
use sqlx::Transaction;

use crate::{
    backend::{CommandRow, HistoryRow, InstanceRow, SagaBackend},
    definition::{Outcome, SagaData, SagaDefinition},
    error::{Result, SagaError},
    model::{HistoryKind, SAGA_ID_HEADER, SAGA_STEP_HEADER, SAGA_TYPE_HEADER, SagaStatus},
    telemetry,
};

/// Whether a command moves the saga forward or undoes a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Step,
    Compensation,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Step => "step",
            Phase::Compensation => "compensation",
        }
    }

    pub(crate) fn of(status: SagaStatus) -> Option<Phase> {
        match status {
            SagaStatus::Running => Some(Phase::Step),
            SagaStatus::Compensating => Some(Phase::Compensation),
            _ => None,
        }
    }
}

pub(crate) fn parse_status(row: &InstanceRow) -> Result<SagaStatus> {
    row.status.parse().map_err(|reason| SagaError::Corrupt {
        saga_type: row.saga_type.clone(),
        saga_id: row.saga_id.clone(),
        reason,
    })
}

/// Writes a transition's history and commands, and enqueues the commands (last: the
/// outbox holds its lock until the commit).
pub(crate) async fn write_rest<DB: SagaBackend>(
    tx: &mut Transaction<'_, DB>,
    row: &InstanceRow,
    history: &[HistoryRow],
    commands: &[Outgoing],
) -> Result<()> {
    let what = || format!("recording saga {}/{}", row.saga_type, row.saga_id);
    DB::insert_history(tx, history)
        .await
        .map_err(SagaError::db(DB::BACKEND, what()))?;
    let rows: Vec<CommandRow> = commands.iter().map(|(c, _, _)| c.clone()).collect();
    DB::insert_commands(tx, &rows)
        .await
        .map_err(SagaError::db(DB::BACKEND, what()))?;
    for (_, topic, envelope) in commands {
        herald_sql::enqueue(tx, topic, envelope).await?;
    }
    Ok(())
}

/// A command to send: its row in `herald_saga_commands`, its topic and the event.
pub(crate) type Outgoing = (CommandRow, String, Envelope);

/// A decided transition, ready to be written.
pub(crate) struct Decided {
    pub(crate) row: InstanceRow,
    pub(crate) history: Vec<HistoryRow>,
    pub(crate) commands: Vec<Outgoing>,
    pub(crate) effects: Effects,
}

/// What a committed transition reports to metrics.
pub(crate) struct Effects {
    pub(crate) status: SagaStatus,
    finished: bool,
    steps: Vec<(String, &'static str, Duration)>,
    timeouts: Vec<Phase>,
}

impl Effects {
    pub(crate) fn emit(&self, saga: &str) {
        for (step, outcome, took) in &self.steps {
            telemetry::step(saga, step, outcome, *took);
        }
        for phase in &self.timeouts {
            telemetry::timeout(saga, phase.as_str());
        }
        if self.finished {
            telemetry::finished(saga, self.status);
        }
    }
}

/// One transition being decided: the instance's new state, the history it adds and the
/// commands it sends.
pub(crate) struct Transition<'a, D> {
    def: &'a SagaDefinition<D>,
    row: InstanceRow,
    status: SagaStatus,
    pub(crate) data: D,
    now: i64,
    cause: Option<&'a Envelope>,
    history: Vec<HistoryRow>,
    commands: Vec<Outgoing>,
    effects: Effects,
}

impl<'a, D: SagaData> Transition<'a, D> {
    pub(crate) fn new(
        def: &'a SagaDefinition<D>,
        row: InstanceRow,
        data: D,
        now: i64,
        cause: Option<&'a Envelope>,
    ) -> Result<Self> {
        let status = parse_status(&row)?;
        Ok(Self {
            def,
            row,
            status,
            data,
            now,
            cause,
            history: Vec::new(),
            commands: Vec::new(),
            effects: Effects {
                status,
                finished: false,
                steps: Vec::new(),
                timeouts: Vec::new(),
            },
        })
    }

    fn step_name(&self, step: usize) -> String {
        self.def.steps()[step].name.clone()
    }

    pub(crate) fn record(
        &mut self,
        kind: HistoryKind,
        step: Option<usize>,
        attempt: Option<i64>,
        event: Option<&Envelope>,
        detail: Option<String>,
    ) {
        let seq = self.row.history_len + self.history.len() as i64 + 1;
        self.history.push(HistoryRow {
            saga_type: self.row.saga_type.clone(),
            saga_id: self.row.saga_id.clone(),
            seq,
            at: self.now,
            kind: kind.as_str().to_owned(),
            step: step.map(|s| s as i64),
            step_name: step.map(|s| self.step_name(s)),
            attempt,
            event_id: event.map(|e| e.id.clone()),
            event_type: event.map(|e| e.event_type.clone()),
            detail,
        });
    }

    /// Sends attempt `attempt` of step `step`'s command (or compensation) and waits for
    /// its reply until the action's timeout.
    pub(crate) fn send(&mut self, phase: Phase, step: usize, attempt: i64) -> Result<()> {
        let def = self.def;
        let s = &def.steps()[step];
        let action = match phase {
            Phase::Step => &s.action,
            Phase::Compensation => s
                .compensation
                .as_ref()
                .expect("only steps with a compensation are compensated"),
        };
        let command = action
            .command
            .as_ref()
            .expect("SagaDefinition::build checked every action has a command");
        let mut envelope = (command.build)(&self.data)?;
        envelope.source = def.source().to_owned();
        envelope.key = Some(self.row.saga_id.clone().into_bytes().into());
        envelope.correlation_id = Some(self.row.correlation_id.clone());
        envelope.causation_id = self.cause.map(|c| c.id.clone());
        let parent = self.row.traceparent.as_deref().and_then(TraceParent::parse);
        envelope.traceparent = Some(
            parent
                .map(|p| p.child())
                .unwrap_or_else(TraceParent::new_root)
                .to_string(),
        );
        envelope = envelope
            .with_extension(SAGA_ID_HEADER, self.row.saga_id.as_bytes())
            .with_extension(SAGA_TYPE_HEADER, self.row.saga_type.as_bytes())
            .with_extension(SAGA_STEP_HEADER, s.name.as_bytes());
        self.status = match phase {
            Phase::Step => SagaStatus::Running,
            Phase::Compensation => SagaStatus::Compensating,
        };
        if attempt == 1 || self.row.step != step as i64 {
            self.row.step_started_at = self.now;
        }
        self.row.step = step as i64;
        self.row.step_name = Some(s.name.clone());
        self.row.attempt = attempt;
        self.row.command_id = Some(envelope.id.clone());
        self.row.deadline = Some(self.now + action.timeout.as_millis() as i64);
        let kind = match phase {
            Phase::Step => HistoryKind::StepStarted,
            Phase::Compensation => HistoryKind::CompensationStarted,
        };
        self.record(kind, Some(step), Some(attempt), Some(&envelope), None);
        self.commands.push((
            CommandRow {
                command_id: envelope.id.clone(),
                saga_type: self.row.saga_type.clone(),
                saga_id: self.row.saga_id.clone(),
                step: step as i64,
                phase: phase.as_str().to_owned(),
                attempt,
                topic: command.topic.clone(),
                event_type: command.event_type.to_owned(),
                sent_at: self.now,
            },
            command.topic.clone(),
            envelope,
        ));
        Ok(())
    }

    fn step_took(&mut self, step: usize, outcome: &'static str) {
        let took = Duration::from_millis((self.now - self.row.step_started_at).max(0) as u64);
        self.effects
            .steps
            .push((self.step_name(step), outcome, took));
    }

    pub(crate) fn on_reply(
        &mut self,
        phase: Phase,
        step: usize,
        outcome: Outcome,
        reply: &Envelope,
    ) -> Result<()> {
        let attempt = Some(self.row.attempt);
        match (phase, outcome) {
            (Phase::Step, Outcome::Success) => {
                self.record(
                    HistoryKind::StepSucceeded,
                    Some(step),
                    attempt,
                    Some(reply),
                    None,
                );
                self.step_took(step, "succeeded");
                if step + 1 < self.def.steps().len() {
                    self.send(Phase::Step, step + 1, 1)?;
                } else {
                    self.row.step = self.def.steps().len() as i64;
                    self.row.step_name = None;
                    self.end(SagaStatus::Completed, None);
                }
            }
            (Phase::Step, Outcome::Failure) => {
                self.record(
                    HistoryKind::StepFailed,
                    Some(step),
                    attempt,
                    Some(reply),
                    None,
                );
                self.step_took(step, "failed");
                self.row.error = Some(format!(
                    "step {:?} failed: {}",
                    self.step_name(step),
                    reply.event_type
                ));
                self.compensate_from(step.checked_sub(1))?;
            }
            (Phase::Compensation, Outcome::Success) => {
                self.record(
                    HistoryKind::CompensationSucceeded,
                    Some(step),
                    attempt,
                    Some(reply),
                    None,
                );
                self.compensate_next(step.checked_sub(1))?;
            }
            (Phase::Compensation, Outcome::Failure) => {
                self.record(
                    HistoryKind::CompensationFailed,
                    Some(step),
                    attempt,
                    Some(reply),
                    None,
                );
                self.end(
                    SagaStatus::Failed,
                    Some(format!(
                        "compensation of step {:?} failed: {}",
                        self.step_name(step),
                        reply.event_type
                    )),
                );
            }
        }
        Ok(())
    }

    pub(crate) fn on_deadline(&mut self, phase: Phase) -> Result<()> {
        let step = self.row.step as usize;
        let s = &self.def.steps()[step];
        let action = match phase {
            Phase::Step => &s.action,
            Phase::Compensation => s
                .compensation
                .as_ref()
                .expect("only steps with a compensation are compensated"),
        };
        let (timeout, retry) = (action.timeout, action.retry.clone());
        let attempt = self.row.attempt;
        if self.row.command_id.is_none() {
            // The backoff before a re-send is over.
            return self.send(phase, step, attempt);
        }
        let kind = match phase {
            Phase::Step => HistoryKind::StepTimedOut,
            Phase::Compensation => HistoryKind::CompensationTimedOut,
        };
        self.record(
            kind,
            Some(step),
            Some(attempt),
            None,
            Some(format!("no reply within {} ms", timeout.as_millis())),
        );
        self.effects.timeouts.push(phase);
        if attempt < i64::from(retry.max_attempts) {
            let delay = retry.delay((attempt - 1) as u32);
            if delay.is_zero() {
                return self.send(phase, step, attempt + 1);
            }
            self.row.attempt = attempt + 1;
            self.row.command_id = None;
            self.row.deadline = Some(self.now + delay.as_millis() as i64);
            return Ok(());
        }
        let name = self.step_name(step);
        match phase {
            Phase::Step => {
                self.step_took(step, "timed_out");
                self.row.error = Some(format!("step {name:?} timed out after {attempt} attempts"));
                // The command may still take effect late: undo this step too.
                self.compensate_from(Some(step))
            }
            Phase::Compensation => {
                self.end(
                    SagaStatus::Failed,
                    Some(format!(
                        "compensation of step {name:?} timed out after {attempt} attempts"
                    )),
                );
                Ok(())
            }
        }
    }

    /// Turns to compensating, starting with step `from` (inclusive) going down.
    fn compensate_from(&mut self, from: Option<usize>) -> Result<()> {
        let error = self.row.error.clone();
        self.record(HistoryKind::Compensating, from, None, None, error);
        self.status = SagaStatus::Compensating;
        self.compensate_next(from)
    }

    /// Sends the compensation of the highest step at or below `from` that has one, or
    /// ends compensated.
    fn compensate_next(&mut self, from: Option<usize>) -> Result<()> {
        let next = from.and_then(|from| {
            (0..=from)
                .rev()
                .find(|&i| self.def.steps()[i].compensation.is_some())
        });
        match next {
            Some(i) => self.send(Phase::Compensation, i, 1),
            None => {
                self.row.step_name = None;
                self.end(SagaStatus::Compensated, None);
                Ok(())
            }
        }
    }

    fn end(&mut self, status: SagaStatus, error: Option<String>) {
        if error.is_some() {
            self.row.error = error;
        }
        self.status = status;
        self.row.command_id = None;
        self.row.deadline = None;
        let kind = match status {
            SagaStatus::Completed => HistoryKind::Completed,
            SagaStatus::Compensated => HistoryKind::Compensated,
            _ => HistoryKind::Failed,
        };
        let detail = (status == SagaStatus::Failed)
            .then(|| self.row.error.clone())
            .flatten();
        self.record(kind, None, None, None, detail);
        self.effects.finished = true;
    }

    pub(crate) fn finish(mut self) -> Result<Decided> {
        self.row.data = serde_json::to_string(&self.data).map_err(SagaError::json(format!(
            "serializing the data of saga {}/{}",
            self.row.saga_type, self.row.saga_id
        )))?;
        self.row.status = self.status.as_str().to_owned();
        self.row.version += 1;
        self.row.history_len += self.history.len() as i64;
        self.row.updated_at = self.now;
        self.effects.status = self.status;
        Ok(Decided {
            row: self.row,
            history: self.history,
            commands: self.commands,
            effects: self.effects,
        })
    }
}
