//! What a saga is: ordered steps, each a command with the replies it waits for, a
//! timeout, a retry policy and optionally a compensation.
//!
//! ```
//! # use std::time::Duration;
//! # use herald::Event;
//! # use herald_saga::{Compensation, SagaDefinition, Step, StepRetry};
//! # use serde::{Deserialize, Serialize};
//! #[derive(Serialize, Deserialize)]
//! struct Transfer { id: String, cents: u64 }
//! # macro_rules! event { ($t:ident, $name:literal) => {
//! #     #[derive(Serialize, Deserialize)] struct $t { id: String }
//! #     impl Event for $t { const TYPE: &'static str = $name; fn key(&self) -> String { self.id.clone() } }
//! # } }
//! # event!(Debit, "bank.debit"); event!(Debited, "bank.debited"); event!(Refused, "bank.refused");
//! # event!(Undo, "bank.undo"); event!(Undone, "bank.undone");
//!
//! let transfer = SagaDefinition::<Transfer>::builder("transfer")
//!     .reply_topic("bank-replies")
//!     .step(
//!         Step::new("debit")
//!             .command("bank-commands", |t: &Transfer| Debit { id: t.id.clone() })
//!             .succeeds_on::<Debited>()
//!             .fails_on::<Refused>()
//!             .timeout(Duration::from_secs(10))
//!             .retry(StepRetry::attempts(3))
//!             .compensation(
//!                 Compensation::new("bank-commands", |t: &Transfer| Undo { id: t.id.clone() })
//!                     .succeeds_on::<Undone>(),
//!             ),
//!     )
//!     .build()?;
//! assert_eq!(transfer.steps().len(), 1);
//! # Ok::<(), herald_saga::SagaError>(())
//! ```

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use herald::{Envelope, Event, EventError, transport::validate_topic_name};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Result, SagaError};

/// The data a saga carries from step to step: stored as JSON with the instance, handed
/// to command builders, updated by reply handlers.
pub trait SagaData: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> SagaData for T {}

type BuildFn<D> = Arc<dyn Fn(&D) -> Result<Envelope, EventError> + Send + Sync>;
type ApplyFn<D> = Arc<dyn Fn(&mut D, &Envelope) -> Result<(), EventError> + Send + Sync>;

/// Whether a reply means the command worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
}

pub(crate) struct Reply<D> {
    pub(crate) outcome: Outcome,
    pub(crate) apply: ApplyFn<D>,
}

impl<D> Clone for Reply<D> {
    fn clone(&self) -> Self {
        Self {
            outcome: self.outcome,
            apply: self.apply.clone(),
        }
    }
}

/// When a step is sent again after its reply timed out.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRetry {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the first re-send.
    pub initial_backoff: Duration,
    /// Largest wait before a re-send.
    pub max_backoff: Duration,
    /// Growth of the wait per re-send.
    pub multiplier: f64,
}

impl Default for StepRetry {
    /// 3 attempts, re-sent 1 s, then 2 s after a timeout.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            multiplier: 2.0,
        }
    }
}

impl StepRetry {
    /// One attempt: the first timeout fails the step.
    pub fn none() -> Self {
        Self::attempts(1)
    }

    /// `n` attempts in all (at least 1), with the default backoff.
    pub fn attempts(n: u32) -> Self {
        Self {
            max_attempts: n.max(1),
            ..Self::default()
        }
    }

    /// Sets the wait before the first re-send, the largest wait and the growth factor
    /// (at least 1). A zero wait re-sends at once.
    pub fn backoff(mut self, initial: Duration, max: Duration, multiplier: f64) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self.multiplier = multiplier.max(1.0);
        self
    }

    /// The wait before re-send number `retry` (0 for the first):
    /// `min(max_backoff, initial_backoff * multiplier^retry)`, in whole milliseconds.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(retry.min(1024) as i32);
        let ms = self.initial_backoff.as_millis() as f64 * factor;
        Duration::from_millis(ms.min(self.max_backoff.as_millis() as f64).max(0.0) as u64)
    }
}

/// A command and the replies it waits for: what a step and a compensation have in
/// common.
pub(crate) struct Action<D> {
    pub(crate) command: Option<Command<D>>,
    pub(crate) replies: HashMap<String, Reply<D>>,
    pub(crate) duplicate_reply: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) retry: StepRetry,
}

/// Where a command goes and how it is made from the saga's data.
pub(crate) struct Command<D> {
    pub(crate) topic: String,
    pub(crate) event_type: &'static str,
    pub(crate) build: BuildFn<D>,
}

impl<D> Clone for Command<D> {
    fn clone(&self) -> Self {
        Self {
            topic: self.topic.clone(),
            event_type: self.event_type,
            build: self.build.clone(),
        }
    }
}

impl<D: SagaData> Command<D> {
    fn new<C, F>(topic: &str, build: F) -> Self
    where
        C: Event,
        F: Fn(&D) -> C + Send + Sync + 'static,
    {
        Self {
            topic: topic.to_owned(),
            event_type: C::TYPE,
            build: Arc::new(move |data: &D| Envelope::from_event("urn:herald:saga", &build(data))),
        }
    }
}

impl<D> Clone for Action<D> {
    fn clone(&self) -> Self {
        Self {
            command: self.command.clone(),
            replies: self.replies.clone(),
            duplicate_reply: self.duplicate_reply.clone(),
            timeout: self.timeout,
            retry: self.retry.clone(),
        }
    }
}

impl<D: SagaData> Action<D> {
    fn new(command: Option<Command<D>>, timeout: Duration, retry: StepRetry) -> Self {
        Self {
            command,
            replies: HashMap::new(),
            duplicate_reply: None,
            timeout,
            retry,
        }
    }

    fn reply<E: Event>(
        &mut self,
        outcome: Outcome,
        apply: impl Fn(&mut D, E) + Send + Sync + 'static,
    ) {
        let apply: ApplyFn<D> = Arc::new(move |data: &mut D, envelope: &Envelope| {
            apply(data, envelope.decode::<E>()?);
            Ok(())
        });
        if self
            .replies
            .insert(E::TYPE.to_owned(), Reply { outcome, apply })
            .is_some()
        {
            self.duplicate_reply = Some(E::TYPE.to_owned());
        }
    }

    fn check(&self, saga: &str, what: &str) -> Result<()> {
        let invalid = |reason: String| SagaError::InvalidDefinition {
            saga: saga.to_owned(),
            reason,
        };
        let Some(command) = &self.command else {
            return Err(invalid(format!("{what} has no command (call command)")));
        };
        validate_topic_name(&command.topic).map_err(|e| invalid(format!("{what}: {e}")))?;
        if let Some(t) = &self.duplicate_reply {
            return Err(invalid(format!(
                "{what}: reply type {t:?} is declared twice"
            )));
        }
        if !self.replies.values().any(|r| r.outcome == Outcome::Success) {
            return Err(invalid(format!(
                "{what}: no success reply (call succeeds_on or on_success)"
            )));
        }
        if self.timeout.is_zero() {
            return Err(invalid(format!("{what}: the timeout must be above zero")));
        }
        Ok(())
    }
}

/// Undoes a step: a command sent when a later step fails, with the replies it waits
/// for. Compensations must be idempotent and must accept being asked to undo something
/// that never happened (a step whose attempts all timed out is compensated too, since
/// its command may have taken effect late).
pub struct Compensation<D> {
    pub(crate) action: Action<D>,
}

impl<D: SagaData> Compensation<D> {
    /// A compensation sending the command `build` makes from the saga's data to `topic`.
    /// Timeout 30 s, 5 attempts.
    pub fn new<C, F>(topic: &str, build: F) -> Self
    where
        C: Event,
        F: Fn(&D) -> C + Send + Sync + 'static,
    {
        Self {
            action: Action::new(
                Some(Command::new(topic, build)),
                Duration::from_secs(30),
                StepRetry::attempts(5),
            ),
        }
    }

    /// A reply of type `E` means the compensation is done.
    pub fn succeeds_on<E: Event>(self) -> Self {
        self.on_success(|_, _: E| {})
    }

    /// A reply of type `E` means the compensation is done; `apply` records what it says
    /// in the saga's data.
    pub fn on_success<E: Event>(
        mut self,
        apply: impl Fn(&mut D, E) + Send + Sync + 'static,
    ) -> Self {
        self.action.reply(Outcome::Success, apply);
        self
    }

    /// A reply of type `E` means the compensation cannot be done: the saga ends
    /// [`Failed`](crate::SagaStatus::Failed).
    pub fn fails_on<E: Event>(mut self) -> Self {
        self.action.reply(Outcome::Failure, |_, _: E| {});
        self
    }

    /// How long to wait for a reply before sending the command again.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.action.timeout = timeout;
        self
    }

    /// How often to send the command again after timeouts; when attempts run out the
    /// saga ends [`Failed`](crate::SagaStatus::Failed).
    pub fn retry(mut self, retry: StepRetry) -> Self {
        self.action.retry = retry;
        self
    }
}

/// One step of a saga: a command, the replies that mean success or failure, a timeout,
/// a retry policy, and optionally a [`Compensation`].
pub struct Step<D> {
    pub(crate) name: String,
    pub(crate) action: Action<D>,
    pub(crate) compensation: Option<Action<D>>,
}

impl<D: SagaData> Step<D> {
    /// A step called `name` (unique in its saga; shown in the history). Give it a
    /// [`command`](Self::command).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            action: Action::new(None, Duration::from_secs(30), StepRetry::default()),
            compensation: None,
        }
    }

    /// The command: `build` makes it from the saga's data, and it is sent to `topic`,
    /// keyed by the saga id. Timeout 30 s and [`StepRetry::default`] unless set.
    pub fn command<C, F>(mut self, topic: &str, build: F) -> Self
    where
        C: Event,
        F: Fn(&D) -> C + Send + Sync + 'static,
    {
        self.action_mut().command = Some(Command::new(topic, build));
        self
    }

    /// A reply of type `E` means the step succeeded.
    pub fn succeeds_on<E: Event>(self) -> Self {
        self.on_success(|_, _: E| {})
    }

    /// A reply of type `E` means the step succeeded; `apply` records what it says in
    /// the saga's data (e.g. a payment id the refund will need).
    pub fn on_success<E: Event>(
        mut self,
        apply: impl Fn(&mut D, E) + Send + Sync + 'static,
    ) -> Self {
        self.action_mut().reply(Outcome::Success, apply);
        self
    }

    /// A reply of type `E` means the step failed: the compensations of the steps before
    /// it run, last first.
    pub fn fails_on<E: Event>(self) -> Self {
        self.on_failure(|_, _: E| {})
    }

    /// A reply of type `E` means the step failed; `apply` records what it says (e.g.
    /// the decline reason) in the saga's data first.
    pub fn on_failure<E: Event>(
        mut self,
        apply: impl Fn(&mut D, E) + Send + Sync + 'static,
    ) -> Self {
        self.action_mut().reply(Outcome::Failure, apply);
        self
    }

    /// How long to wait for a reply before the attempt counts as timed out.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.action_mut().timeout = timeout;
        self
    }

    /// How often to send the command again after timeouts. When attempts run out the
    /// step fails like on a failure reply, except that its own compensation runs too.
    pub fn retry(mut self, retry: StepRetry) -> Self {
        self.action_mut().retry = retry;
        self
    }

    /// How to undo the step when a later step fails.
    pub fn compensation(mut self, compensation: Compensation<D>) -> Self {
        self.compensation = Some(compensation.action);
        self
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the step has a compensation.
    pub fn has_compensation(&self) -> bool {
        self.compensation.is_some()
    }

    fn action_mut(&mut self) -> &mut Action<D> {
        &mut self.action
    }
}

/// A saga type: its name, where replies arrive, and its steps. Build one with
/// [`SagaDefinition::builder`]; share it (it is cheap to clone).
pub struct SagaDefinition<D> {
    inner: Arc<Inner<D>>,
}

struct Inner<D> {
    name: String,
    source: String,
    reply_topics: Vec<String>,
    steps: Vec<Step<D>>,
}

impl<D> Clone for SagaDefinition<D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<D> fmt::Debug for SagaDefinition<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaDefinition")
            .field("name", &self.inner.name)
            .field("reply_topics", &self.inner.reply_topics)
            .field(
                "steps",
                &self.inner.steps.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<D: SagaData> SagaDefinition<D> {
    /// A builder for the saga type `name` (e.g. `order`): the instances' type in the
    /// database, the runtime's consumer group (`saga-{name}`) and a metric label.
    pub fn builder(name: impl Into<String>) -> SagaDefinitionBuilder<D> {
        let name = name.into();
        SagaDefinitionBuilder {
            source: format!("urn:herald:saga:{name}"),
            name,
            reply_topics: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// The saga type.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `ce_source` of the commands.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The topics replies are read from.
    pub fn reply_topics(&self) -> &[String] {
        &self.inner.reply_topics
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step<D>] {
        &self.inner.steps
    }

    /// Every event type some step or compensation waits for.
    pub fn reply_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .inner
            .steps
            .iter()
            .flat_map(|s| std::iter::once(&s.action).chain(s.compensation.iter()))
            .flat_map(|a| a.replies.keys().cloned())
            .collect();
        types.sort();
        types.dedup();
        types
    }
}

/// Builds a [`SagaDefinition`].
pub struct SagaDefinitionBuilder<D> {
    name: String,
    source: String,
    reply_topics: Vec<String>,
    steps: Vec<Step<D>>,
}

impl<D: SagaData> SagaDefinitionBuilder<D> {
    /// Reads replies from `topic` (call once per topic services reply on).
    pub fn reply_topic(mut self, topic: impl Into<String>) -> Self {
        self.reply_topics.push(topic.into());
        self
    }

    /// Sets `ce_source` of the commands (default `urn:herald:saga:{name}`).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Appends a step.
    pub fn step(mut self, step: Step<D>) -> Self {
        self.steps.push(step);
        self
    }

    /// Checks the definition: a valid name, at least one reply topic and one step,
    /// unique step names, every step and compensation with a command, a valid topic, at
    /// least one success reply, no reply type declared twice, a timeout above zero.
    pub fn build(self) -> Result<SagaDefinition<D>> {
        let invalid = |reason: String| SagaError::InvalidDefinition {
            saga: self.name.clone(),
            reason,
        };
        if self.name.is_empty()
            || self.name.len() > 200
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "the name must be 1 to 200 characters of [A-Za-z0-9._-]".into(),
            ));
        }
        if self.reply_topics.is_empty() {
            return Err(invalid("no reply topic (call reply_topic)".into()));
        }
        for topic in &self.reply_topics {
            validate_topic_name(topic).map_err(|e| invalid(format!("reply topic: {e}")))?;
        }
        if self.steps.is_empty() {
            return Err(invalid("a saga needs at least one step".into()));
        }
        let mut names = std::collections::HashSet::new();
        for step in &self.steps {
            if step.name.is_empty() {
                return Err(invalid("a step has an empty name".into()));
            }
            if !names.insert(step.name.as_str()) {
                return Err(invalid(format!("two steps are called {:?}", step.name)));
            }
            let what = format!("step {:?}", step.name);
            step.action.check(&self.name, &what)?;
            if let Some(c) = &step.compensation {
                c.check(&self.name, &format!("compensation of {what}"))?;
            }
        }
        Ok(SagaDefinition {
            inner: Arc::new(Inner {
                name: self.name,
                source: self.source,
                reply_topics: self.reply_topics,
                steps: self.steps,
            }),
        })
    }
}
