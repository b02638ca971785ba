//! Metrics, through the `metrics` facade; every one is labelled `saga` (the saga type).
//! They are emitted after the transition commits, so a rolled-back transition counts
//! nothing.

use std::time::Duration;

use crate::model::SagaStatus;

/// Sagas started (counter).
pub const STARTED: &str = "herald_saga_started_total";
/// Sagas that completed every step (counter).
pub const COMPLETED: &str = "herald_saga_completed_total";
/// Sagas that compensated after a failure (counter).
pub const COMPENSATED: &str = "herald_saga_compensated_total";
/// Sagas that ended failed: a compensation could not complete (counter).
pub const FAILED: &str = "herald_saga_failed_total";
/// Time from a step's first command to its outcome, labelled `step` and `outcome`
/// (`succeeded`, `failed`, `timed_out`) (histogram, seconds).
pub const STEP_DURATION: &str = "herald_saga_step_duration_seconds";
/// Replies that did not arrive in time, labelled `phase` (`step`, `compensation`)
/// (counter).
pub const TIMEOUTS: &str = "herald_saga_timeouts_total";
/// Events on reply topics that changed nothing, labelled `reason` (`not_a_reply`,
/// `unmatched`, `stale`, `unexpected`) (counter).
pub const IGNORED: &str = "herald_saga_replies_ignored_total";
/// Transitions that lost a race to another writer and were decided again (counter).
pub const CONFLICTS: &str = "herald_saga_conflicts_total";

pub(crate) fn started(saga: &str) {
    metrics::counter!(STARTED, "saga" => saga.to_owned()).increment(1);
}

pub(crate) fn finished(saga: &str, status: SagaStatus) {
    let name = match status {
        SagaStatus::Completed => COMPLETED,
        SagaStatus::Compensated => COMPENSATED,
        SagaStatus::Failed => FAILED,
        SagaStatus::Running | SagaStatus::Compensating => return,
    };
    metrics::counter!(name, "saga" => saga.to_owned()).increment(1);
    match status {
        SagaStatus::Failed => {
            tracing::warn!(saga, "saga failed: a compensation could not complete")
        }
        _ => tracing::debug!(saga, status = status.as_str(), "saga ended"),
    }
}

pub(crate) fn step(saga: &str, step: &str, outcome: &'static str, took: Duration) {
    metrics::histogram!(
        STEP_DURATION,
        "saga" => saga.to_owned(),
        "step" => step.to_owned(),
        "outcome" => outcome,
    )
    .record(took.as_secs_f64());
}

pub(crate) fn timeout(saga: &str, phase: &'static str) {
    metrics::counter!(TIMEOUTS, "saga" => saga.to_owned(), "phase" => phase).increment(1);
}

pub(crate) fn ignored(saga: &str, reason: &'static str) {
    metrics::counter!(IGNORED, "saga" => saga.to_owned(), "reason" => reason).increment(1);
}

pub(crate) fn conflict(saga: &str) {
    metrics::counter!(CONFLICTS, "saga" => saga.to_owned()).increment(1);
}
