//! The transactional handler: a consumer's unit of work in one transaction of its
//! database — the inbox mark, the handler's own writes and its replies in the outbox
//! commit together, or none of them does.
//!
//! [`Database::handle`] runs a [`TransactionalHandler`] (or
//! [`Database::handle_with`] a closure) on whichever database the service was started
//! with:
//!
//! 1. begins a writing transaction ([`Database::begin`]);
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
//! The handler's SQL: [`UnitOfWork::execute`], [`fetch_all`](UnitOfWork::fetch_all),
//! [`fetch_optional`](UnitOfWork::fetch_optional) and the one-value
//! [`fetch_i64`](UnitOfWork::fetch_i64) and [`fetch_text`](UnitOfWork::fetch_text)
//! take [`Value`] arguments and compile once for both databases (write `$1`
//! placeholders, `BIGINT`, `TEXT`, `ON CONFLICT`, which both understand). For anything
//! else, [`tx`](UnitOfWork::tx) gives the [`DatabaseTransaction`], whose variants hold
//! the typed `sqlx::Transaction`.

use std::{future::Future, pin::Pin};

use herald::{Envelope, HandlerContext, HandlerError};

use crate::{
    database::Database,
    transaction::DatabaseTransaction,
    value::{Row, Value},
};

/// A consumer's effect in its database, run by [`Database::handle`] inside one
/// transaction with the inbox mark and the outbox replies.
///
/// ```
/// use herald::HandlerError;
/// use herald_sql::{TransactionalHandler, UnitOfWork};
///
/// struct Bill;
///
/// impl TransactionalHandler for Bill {
///     async fn handle(&self, uow: &mut UnitOfWork<'_>) -> Result<(), HandlerError> {
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
    fn handle(
        &self,
        uow: &mut UnitOfWork<'_>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// The future a [`Database::handle_with`] closure returns.
pub type UnitOfWorkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// A handler's open transaction, the event it handles, and the replies it publishes.
#[derive(Debug)]
pub struct UnitOfWork<'c> {
    tx: DatabaseTransaction,
    ctx: &'c HandlerContext,
    replies: Vec<(String, Envelope)>,
}

impl UnitOfWork<'_> {
    /// The handled event.
    pub fn event(&self) -> &Envelope {
        self.ctx.envelope()
    }

    /// The router's context of the handled event (group, topic, attempt, ...).
    pub fn context(&self) -> &HandlerContext {
        self.ctx
    }

    /// The open transaction, for statements of its own or typed sqlx code (match on the
    /// variant).
    pub fn tx(&mut self) -> &mut DatabaseTransaction {
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
        self.tx
            .execute(sql, args)
            .await
            .map_err(HandlerError::transient)
    }

    /// Every row of `sql` with `args`.
    pub async fn fetch_all(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, HandlerError> {
        self.tx
            .fetch_all(sql, args)
            .await
            .map_err(HandlerError::transient)
    }

    /// The first row of `sql` with `args`, if any.
    pub async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<Row>, HandlerError> {
        self.tx
            .fetch_optional(sql, args)
            .await
            .map_err(HandlerError::transient)
    }

    /// The first row of `sql` with `args`; no row is an error.
    pub async fn fetch_one(&mut self, sql: &str, args: &[Value]) -> Result<Row, HandlerError> {
        self.tx
            .fetch_one(sql, args)
            .await
            .map_err(HandlerError::transient)
    }

    /// The first column of the first row of `sql` as an integer; `None` without rows.
    pub async fn fetch_i64(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<i64>, HandlerError> {
        self.first_column(sql, args).await
    }

    /// The first column of the first row of `sql` as text; `None` without rows.
    pub async fn fetch_text(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<String>, HandlerError> {
        self.first_column(sql, args).await
    }

    async fn first_column<T: crate::value::FromValue>(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<T>, HandlerError> {
        match self.fetch_optional(sql, args).await? {
            Some(row) => row.get(0).map(Some).map_err(HandlerError::permanent),
            None => Ok(None),
        }
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
        let Some(mut uow) = self.begin_unit(ctx).await? else {
            return Ok(());
        };
        handler.handle(&mut uow).await?;
        uow.finish().await
    }

    /// [`handle`](Self::handle) with a closure for the handler's work; it may move what
    /// it captured into its future:
    ///
    /// ```ignore
    /// db.handle_with(&ctx, move |uow| Box::pin(async move {
    ///     uow.execute("INSERT INTO invoices (order_id) VALUES ($1)", &[order_id.into()]).await?;
    ///     Ok(())
    /// }))
    /// .await
    /// ```
    pub async fn handle_with<F>(&self, ctx: &HandlerContext, work: F) -> Result<(), HandlerError>
    where
        F: for<'a, 'c> FnOnce(&'a mut UnitOfWork<'c>) -> UnitOfWorkFuture<'a> + Send,
    {
        let Some(mut uow) = self.begin_unit(ctx).await? else {
            return Ok(());
        };
        work(&mut uow).await?;
        uow.finish().await
    }

    /// Begins the unit of `ctx`'s event: the transaction with the inbox mark in it, or
    /// `None` for a duplicate (a copy already committed; the transaction rolls back).
    async fn begin_unit<'c>(
        &self,
        ctx: &'c HandlerContext,
    ) -> Result<Option<UnitOfWork<'c>>, HandlerError> {
        let mut tx = self.begin().await.map_err(HandlerError::transient)?;
        if !self
            .mark_in(&mut tx, ctx.inbox_key())
            .await
            .map_err(HandlerError::transient)?
        {
            return Ok(None);
        }
        Ok(Some(UnitOfWork {
            tx,
            ctx,
            replies: Vec::new(),
        }))
    }
}

impl UnitOfWork<'_> {
    /// Enqueues the replies (last) and commits; tells the router the inbox was recorded.
    async fn finish(self) -> Result<(), HandlerError> {
        let Self {
            mut tx,
            ctx,
            replies,
        } = self;
        for (topic, envelope) in &replies {
            tx.enqueue(topic, envelope)
                .await
                .map_err(HandlerError::transient)?;
        }
        tx.commit().await.map_err(HandlerError::transient)?;
        ctx.mark_inbox_recorded();
        Ok(())
    }
}
