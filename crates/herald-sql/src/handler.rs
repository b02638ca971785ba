//! The transactional handler: a consumer's unit of work in one transaction of its
//! database — the inbox mark, the handler's own writes and its replies in the outbox
//! commit together, or none of them does.
//!
//! A [`TransactionalHandler`] is written once, generic over [`Backend`], and
//! [`Database::handle`] runs it on whichever database the service was started with:
//!
//! 1. begins a writing transaction ([`HeraldDb::begin`]);
//! 2. records the event in the inbox in it; a duplicate (a copy already committed) rolls
//!    back and returns `Ok` without calling the handler;
//! 3. calls the handler with a [`UnitOfWork`]: the transaction, the handled event, and
//!    [`publish`](UnitOfWork::publish) for replies;
//! 4. enqueues the replies into the outbox, as caused by the handled event
//!    (correlation id, causation id, trace context), last — writers serialise from their
//!    first enqueue to their commit (`docs/sql.md`, the ordering guarantee);
//! 5. commits, and tells the router the inbox was recorded
//!    ([`HandlerContext::mark_inbox_recorded`]).
//!
//! A handler error, a failed commit or a future dropped before the commit (a crash, a
//! timeout) rolls all of it back: there is no inbox mark, so the redelivered event runs
//! the handler again.
//!
//! The handler's SQL: [`UnitOfWork::execute`], [`fetch_i64`](UnitOfWork::fetch_i64) and
//! [`fetch_text`](UnitOfWork::fetch_text) take [`Value`] arguments and compile for both
//! databases with no sqlx bounds (write `$1` placeholders, `BIGINT`, `TEXT`,
//! `ON CONFLICT`, which both understand). For anything else,
//! [`tx`](UnitOfWork::tx) gives the typed `sqlx::Transaction`, usable with sqlx in code
//! for one database.

use std::future::Future;

use herald::{Envelope, HandlerContext, HandlerError, InboxKey, inbox::InboxError};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::{
    backend::Backend,
    database::Database,
    db::HeraldDb,
    inbox::{PostgresInbox, SqliteInbox},
    outbox::enqueue,
};

/// A consumer's effect in its database, run by [`Database::handle`] inside one
/// transaction with the inbox mark and the outbox replies.
///
/// ```
/// use herald::HandlerError;
/// use herald_sql::{Backend, TransactionalHandler, UnitOfWork};
///
/// struct Bill;
///
/// impl TransactionalHandler for Bill {
///     async fn handle<B: Backend>(&self, uow: &mut UnitOfWork<'_, B>) -> Result<(), HandlerError> {
///         let order = uow.event().key_str().unwrap_or_default().to_owned();
///         uow.execute("INSERT INTO invoices (order_id) VALUES ($1)", &[order.as_str().into()])
///             .await?;
///         let billed = herald::Envelope::new("urn:billing", "billing.invoiced", "{}").with_key(order);
///         uow.publish("billing", billed);
///         Ok(())
///     }
/// }
/// ```
pub trait TransactionalHandler: Send + Sync {
    /// Makes the effect of `uow`'s event in `uow`'s transaction; replies go through
    /// [`UnitOfWork::publish`]. An error rolls everything back.
    fn handle<B: Backend>(
        &self,
        uow: &mut UnitOfWork<'_, B>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A handler's open transaction, the event it handles, and the replies it publishes.
#[derive(Debug)]
pub struct UnitOfWork<'c, B: Backend> {
    tx: Transaction<'static, B>,
    ctx: &'c HandlerContext,
    replies: Vec<(String, Envelope)>,
}

/// An argument of [`UnitOfWork`]'s statements.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `TEXT`.
    Text(String),
    /// `BIGINT` (and smaller integer columns).
    Int(i64),
    /// `DOUBLE PRECISION` / `REAL`.
    Float(f64),
    /// `BOOLEAN`.
    Bool(bool),
    /// `BYTEA` / `BLOB`.
    Bytes(Vec<u8>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(v.to_vec())
    }
}

impl<B: Backend> UnitOfWork<'_, B> {
    /// The handled event.
    pub fn event(&self) -> &Envelope {
        self.ctx.envelope()
    }

    /// The router's context of the handled event (group, topic, attempt, ...).
    pub fn context(&self) -> &HandlerContext {
        self.ctx
    }

    /// The open transaction, for the handler's own sqlx statements.
    pub fn tx(&mut self) -> &mut Transaction<'static, B> {
        &mut self.tx
    }

    /// Publishes `envelope` to `topic` through the outbox, as caused by the handled
    /// event ([`HandlerContext::caused`]). It is enqueued when the handler returns `Ok`,
    /// in the same transaction, and the relay publishes it after the commit.
    pub fn publish(&mut self, topic: impl Into<String>, envelope: Envelope) {
        self.replies.push((topic.into(), self.ctx.caused(envelope)));
    }

    /// Runs `sql` (`$1`, `$2`, ... placeholders) with `args` in the transaction; rows
    /// affected. A failure is a transient [`HandlerError`].
    pub async fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, HandlerError> {
        B::execute_values(&mut self.tx, sql, args)
            .await
            .map_err(HandlerError::transient)
    }

    /// The first column of the first row of `sql` as an integer; `None` without rows.
    pub async fn fetch_i64(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<i64>, HandlerError> {
        B::fetch_i64(&mut self.tx, sql, args)
            .await
            .map_err(HandlerError::transient)
    }

    /// The first column of the first row of `sql` as text; `None` without rows.
    pub async fn fetch_text(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<String>, HandlerError> {
        B::fetch_text(&mut self.tx, sql, args)
            .await
            .map_err(HandlerError::transient)
    }
}

/// An inbox that records a key in a transaction of database `B`.
trait MarkIn<B: Backend>: Sync {
    fn mark_in<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, B>,
        key: InboxKey<'a>,
    ) -> impl Future<Output = Result<bool, InboxError>> + Send + 'a;
}

impl MarkIn<Sqlite> for SqliteInbox {
    fn mark_in<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Sqlite>,
        key: InboxKey<'a>,
    ) -> impl Future<Output = Result<bool, InboxError>> + Send + 'a {
        self.mark_processed_in(tx, key)
    }
}

impl MarkIn<Postgres> for PostgresInbox {
    fn mark_in<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        key: InboxKey<'a>,
    ) -> impl Future<Output = Result<bool, InboxError>> + Send + 'a {
        self.mark_processed_in(tx, key)
    }
}

impl Database {
    /// Runs `handler` for `ctx`'s event in one transaction with the inbox mark and the
    /// outbox replies (see [the module](crate::handler)); a duplicate returns `Ok`
    /// without calling it. Call it from a router handler:
    /// `move |_e, ctx| async move { db.handle(&MyHandler, &ctx).await }`, with the
    /// router's inbox set to [`Database::inbox`].
    pub async fn handle<H: TransactionalHandler>(
        &self,
        handler: &H,
        ctx: &HandlerContext,
    ) -> Result<(), HandlerError> {
        match self {
            Self::Sqlite { db, inbox } => run(db, inbox, handler, ctx).await,
            Self::Postgres { db, inbox } => run(db, inbox, handler, ctx).await,
        }
    }
}

async fn run<B: Backend, I: MarkIn<B>, H: TransactionalHandler>(
    db: &HeraldDb<B>,
    inbox: &I,
    handler: &H,
    ctx: &HandlerContext,
) -> Result<(), HandlerError> {
    let mut tx = db.begin().await.map_err(HandlerError::transient)?;
    if !inbox
        .mark_in(&mut tx, ctx.inbox_key())
        .await
        .map_err(HandlerError::transient)?
    {
        return Ok(()); // a copy already committed; dropping `tx` rolls back
    }
    let mut uow = UnitOfWork {
        tx,
        ctx,
        replies: Vec::new(),
    };
    handler.handle(&mut uow).await?;
    let UnitOfWork {
        mut tx, replies, ..
    } = uow;
    for (topic, envelope) in &replies {
        enqueue(&mut tx, topic, envelope)
            .await
            .map_err(HandlerError::transient)?;
    }
    tx.commit().await.map_err(HandlerError::transient)?;
    ctx.mark_inbox_recorded();
    Ok(())
}
