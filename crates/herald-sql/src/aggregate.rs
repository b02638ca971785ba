//! Aggregates: state rebuilt from a stream, commands decided against it, events appended
//! with optimistic concurrency.
//!
//! An [`Aggregate`] is a state type that applies its events and turns a command into
//! new events (or a domain error). A [`Repository`] keeps each aggregate instance in the
//! stream `{CATEGORY}-{id}`: it loads the state (latest snapshot plus the events after
//! it), decides, and appends with the version it loaded as expected version. When
//! another writer appended in between, the append is a conflict; the repository then
//! loads again and decides again, up to [`Repository::with_conflict_retries`] times.
//! [`Repository::load_at_version`] and [`Repository::load_at_time`] show the state as
//! of an earlier version or time.
//!
//! The bank account (deposits, withdrawals, no overdraft, the balance as of a past time):
//!
//! ```
//! use herald_sql::{Aggregate, HeraldDb, Repository, RepositoryError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Account { balance: u64 }
//!
//! #[derive(Serialize, Deserialize)]
//! #[serde(tag = "type")]
//! enum Event { Deposited { amount: u64 }, Withdrawn { amount: u64 } }
//!
//! enum Command { Deposit(u64), Withdraw(u64) }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("insufficient funds: balance {balance}, requested {requested}")]
//! struct InsufficientFunds { balance: u64, requested: u64 }
//!
//! impl Aggregate for Account {
//!     const CATEGORY: &'static str = "account";
//!     type Event = Event;
//!     type Command = Command;
//!     type Error = InsufficientFunds;
//!
//!     fn event_type(e: &Event) -> &'static str {
//!         match e { Event::Deposited { .. } => "bank.deposited", Event::Withdrawn { .. } => "bank.withdrawn" }
//!     }
//!     fn apply(&mut self, e: &Event) {
//!         match e {
//!             Event::Deposited { amount } => self.balance += amount,
//!             Event::Withdrawn { amount } => self.balance -= amount,
//!         }
//!     }
//!     fn handle(&self, c: &Command) -> Result<Vec<Event>, InsufficientFunds> {
//!         match *c {
//!             Command::Deposit(amount) => Ok(vec![Event::Deposited { amount }]),
//!             Command::Withdraw(amount) if amount > self.balance => {
//!                 Err(InsufficientFunds { balance: self.balance, requested: amount })
//!             }
//!             Command::Withdraw(amount) => Ok(vec![Event::Withdrawn { amount }]),
//!         }
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let db = HeraldDb::open(dir.path().join("bank.db")).await?;
//! let accounts: Repository<_, Account> =
//!     Repository::new(db.event_store(), "urn:bank").with_conflict_retries(3);
//! accounts.execute("ada", &Command::Deposit(100)).await?;
//! std::thread::sleep(std::time::Duration::from_millis(5));
//! let before_withdrawal = std::time::SystemTime::now();
//! std::thread::sleep(std::time::Duration::from_millis(5));
//! accounts.execute("ada", &Command::Withdraw(30)).await?;
//! let refused = accounts.execute("ada", &Command::Withdraw(500)).await;
//! assert!(matches!(refused, Err(RepositoryError::Domain(InsufficientFunds { balance: 70, .. }))));
//! assert_eq!(accounts.load("ada").await?.state.balance, 70);
//! assert_eq!(accounts.load_at_time("ada", before_withdrawal).await?.state.balance, 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{fmt, marker::PhantomData, time::SystemTime};

use herald::{Envelope, event::JSON};
use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

use crate::{
    backend::Backend,
    error::Error,
    store::{Direction, EventStore, ExpectedVersion, RecordedEvent},
};

/// An event-sourced state.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stream category: instance `id` lives in stream `{CATEGORY}-{id}`.
    const CATEGORY: &'static str;
    /// Version of the state's serialized shape; snapshots of another version are
    /// ignored (and replaced), so changing the state type only needs this bumped.
    const SNAPSHOT_VERSION: u32 = 1;
    /// The events (usually an enum; serialized as JSON).
    type Event: Serialize + DeserializeOwned + Send + Sync;
    /// The commands.
    type Command: Send + Sync;
    /// Why a command is refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The CloudEvents type of `event`, e.g. `bank.money_deposited`.
    fn event_type(event: &Self::Event) -> &'static str;
    /// Moves the state past `event`. Must not fail: events are facts.
    fn apply(&mut self, event: &Self::Event);
    /// Decides what `command` does: the events to append, or why not.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

/// An aggregate's state and the stream version it includes (0: no events yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// Version of the last event applied.
    pub version: u64,
}

/// What [`Repository::execute`] did.
#[derive(Debug, Clone)]
pub struct Executed<A> {
    /// The state after the new events.
    pub state: A,
    /// The stream's version after the append (unchanged if the command produced no
    /// events).
    pub version: u64,
    /// The envelopes appended, in order.
    pub events: Vec<Envelope>,
}

/// Why [`Repository::execute`] failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RepositoryError<E: std::error::Error + 'static> {
    /// The aggregate refused the command; nothing was appended.
    #[error("command refused: {0}")]
    Domain(#[source] E),
    /// The store failed, or conflicts outlasted the retries ([`Error::Conflict`]).
    #[error(transparent)]
    Store(#[from] Error),
}

/// Loads, decides and appends for aggregate `A`.
pub struct Repository<DB: Backend, A> {
    store: EventStore<DB>,
    source: String,
    snapshot_every: Option<u64>,
    conflict_retries: u32,
    _aggregate: PhantomData<fn() -> A>,
}

impl<DB: Backend, A> Clone for Repository<DB, A> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            source: self.source.clone(),
            snapshot_every: self.snapshot_every,
            conflict_retries: self.conflict_retries,
            _aggregate: PhantomData,
        }
    }
}

impl<DB: Backend, A> fmt::Debug for Repository<DB, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("source", &self.source)
            .field("snapshot_every", &self.snapshot_every)
            .field("conflict_retries", &self.conflict_retries)
            .finish_non_exhaustive()
    }
}

/// Events read per query while loading.
const PAGE: usize = 1000;

impl<DB: Backend, A: Aggregate> Repository<DB, A> {
    /// A repository over `store`; new events get `source` as their CloudEvents source.
    /// No snapshots, no retries on conflict.
    pub fn new(store: EventStore<DB>, source: impl Into<String>) -> Self {
        Self {
            store,
            source: source.into(),
            snapshot_every: None,
            conflict_retries: 0,
            _aggregate: PhantomData,
        }
    }

    /// Saves a snapshot whenever an append crosses a multiple of `every` versions.
    pub fn with_snapshots_every(mut self, every: u64) -> Self {
        self.snapshot_every = (every > 0).then_some(every);
        self
    }

    /// On a conflict, loads and decides again up to `retries` times.
    pub fn with_conflict_retries(mut self, retries: u32) -> Self {
        self.conflict_retries = retries;
        self
    }

    /// The stream of instance `id`.
    pub fn stream_id(id: &str) -> String {
        format!("{}-{id}", A::CATEGORY)
    }

    /// The current state: the latest snapshot of this state version, then the events
    /// after it.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, Error> {
        let stream = Self::stream_id(id);
        let mut loaded = Loaded {
            state: A::default(),
            version: 0,
        };
        if self.snapshot_every.is_some()
            && let Some(snap) = self.store.load_snapshot(&stream).await?
            && snap.schema_version == A::SNAPSHOT_VERSION
        {
            loaded.state = serde_json::from_slice(&snap.state).map_err(|source| Error::Json {
                context: format!("snapshot of {stream} at version {}", snap.version),
                source,
            })?;
            loaded.version = snap.version;
        }
        self.replay(&stream, loaded, u64::MAX, None).await
    }

    /// The state as of version `version` (events after it are left out).
    pub async fn load_at_version(&self, id: &str, version: u64) -> Result<Loaded<A>, Error> {
        let start = Loaded {
            state: A::default(),
            version: 0,
        };
        self.replay(&Self::stream_id(id), start, version, None)
            .await
    }

    /// The state as of `time`: only events the store had recorded by then.
    pub async fn load_at_time(&self, id: &str, time: SystemTime) -> Result<Loaded<A>, Error> {
        let start = Loaded {
            state: A::default(),
            version: 0,
        };
        self.replay(&Self::stream_id(id), start, u64::MAX, Some(time))
            .await
    }

    async fn replay(
        &self,
        stream: &str,
        mut loaded: Loaded<A>,
        up_to: u64,
        until: Option<SystemTime>,
    ) -> Result<Loaded<A>, Error> {
        while loaded.version < up_to {
            let page = self
                .store
                .read_stream_until(stream, loaded.version + 1, Direction::Forward, PAGE, until)
                .await?;
            for event in page.iter().take_while(|e| e.version <= up_to) {
                loaded.state.apply(&decode::<A>(event)?);
                loaded.version = event.version;
            }
            if page.len() < PAGE {
                break;
            }
        }
        Ok(loaded)
    }

    /// Loads instance `id`, hands `command` to it, and appends the resulting events
    /// expecting the version it loaded. Retries on conflict as configured.
    pub async fn execute(
        &self,
        id: &str,
        command: &A::Command,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let stream = Self::stream_id(id);
        let mut attempt = 0;
        loop {
            let Loaded { mut state, version } = self.load(id).await?;
            let events = state.handle(command).map_err(RepositoryError::Domain)?;
            if events.is_empty() {
                return Ok(Executed {
                    state,
                    version,
                    events: Vec::new(),
                });
            }
            let envelopes = events
                .iter()
                .map(|e| self.envelope(id, &stream, e))
                .collect::<Result<Vec<_>, Error>>()?;
            let expected = match version {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            };
            match self
                .store
                .append(&stream, expected, envelopes.clone())
                .await
            {
                Ok(done) => {
                    for e in &events {
                        state.apply(e);
                    }
                    if let Some(every) = self.snapshot_every
                        && done.version / every > version / every
                    {
                        let bytes = serde_json::to_vec(&state).map_err(|source| Error::Json {
                            context: format!("snapshot of {stream}"),
                            source,
                        })?;
                        self.store
                            .save_snapshot(&stream, done.version, A::SNAPSHOT_VERSION, &bytes)
                            .await?;
                    }
                    return Ok(Executed {
                        state,
                        version: done.version,
                        events: envelopes,
                    });
                }
                Err(e) if e.is_conflict() && attempt < self.conflict_retries => {
                    attempt += 1;
                    tracing::debug!(stream, attempt, "conflict; deciding again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn envelope(&self, id: &str, stream: &str, event: &A::Event) -> Result<Envelope, Error> {
        let data = serde_json::to_vec(event).map_err(|source| Error::Json {
            context: format!("an event of {stream}"),
            source,
        })?;
        Ok(
            Envelope::new(self.source.clone(), A::event_type(event), data)
                .with_key(stream.to_owned())
                .with_subject(id.to_owned())
                .with_content_type(JSON),
        )
    }
}

fn decode<A: Aggregate>(event: &RecordedEvent) -> Result<A::Event, Error> {
    serde_json::from_slice(&event.envelope.data).map_err(|source| Error::Json {
        context: format!(
            "event {} of {} (version {})",
            event.envelope.event_type, event.stream_id, event.version
        ),
        source,
    })
}
