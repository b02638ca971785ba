//! What the SQL inbox stores share: the statements with the table spliced in, the lookup,
//! the mark (in the store's pool or the handler's transaction) and the purge. Each backend
//! ([`SqliteInbox`](super::SqliteInbox), [`PostgresInbox`](super::PostgresInbox)) supplies
//! only its [`Dialect`]: its SQL, how it stores a time, and how it creates its table.

use std::{fmt, marker::PhantomData, sync::Arc, time::SystemTime};

use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use herald::inbox::{InboxError, InboxKey};

use super::store_error;

/// The statements of one inbox table.
#[derive(Debug)]
pub(super) struct Statements {
    /// `SELECT` of one key; binds group and event id.
    pub(super) exists: String,
    /// Insert of one key that does nothing on conflict; binds group, event id and the
    /// time as [`Dialect::stamp`] gives it.
    pub(super) insert: String,
    /// Delete of the rows before a time; binds the time as [`Dialect::stamp`] gives it.
    pub(super) purge: String,
}

/// A SQL backend of the inbox.
pub(super) trait Dialect: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;
    /// How `processed_at` is bound.
    type Stamp: for<'q> Encode<'q, Self::Db> + Type<Self::Db> + Send + 'static;
    /// The store's name in error messages.
    const NAME: &'static str;
    /// A time as `processed_at` stores it.
    fn stamp(at: SystemTime) -> Self::Stamp;
    /// The statements for `table` (already checked).
    fn statements(table: &str) -> Statements;
    /// Rows an `INSERT` or `DELETE` changed.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;
}

/// An inbox table over a pool of `D`'s database.
pub(super) struct SqlInbox<D: Dialect> {
    pool: Pool<D::Db>,
    sql: Arc<Statements>,
    dialect: PhantomData<D>,
}

impl<D: Dialect> Clone for SqlInbox<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            sql: self.sql.clone(),
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlInbox<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlInbox")
            .field("store", &D::NAME)
            .field("pool", &self.pool)
            .field("sql", &self.sql)
            .finish()
    }
}

impl<D: Dialect> SqlInbox<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
{
    /// The inbox of `table` (checked and created by the backend) in `pool`.
    pub(super) fn new(pool: Pool<D::Db>, table: &str) -> Self {
        Self {
            pool,
            sql: Arc::new(D::statements(table)),
            dialect: PhantomData,
        }
    }

    pub(super) fn pool(&self) -> &Pool<D::Db> {
        &self.pool
    }

    /// Records `key` on `conn` (a pooled connection or the handler's transaction);
    /// `true` if it was not recorded before.
    pub(super) async fn insert(
        &self,
        conn: &mut <D::Db as Database>::Connection,
        key: InboxKey<'_>,
    ) -> Result<bool, InboxError> {
        let done = sqlx::query(&self.sql.insert)
            .bind(key.group)
            .bind(key.event_id)
            .bind(D::stamp(SystemTime::now()))
            .execute(conn)
            .await
            .map_err(|e| store_error(D::NAME, "recording an event", e))?;
        Ok(D::rows_affected(&done) == 1)
    }

    pub(super) async fn is_processed(&self, key: InboxKey<'_>) -> Result<bool, InboxError> {
        let mut conn = self.connection().await?;
        let row = sqlx::query(&self.sql.exists)
            .bind(key.group)
            .bind(key.event_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| store_error(D::NAME, "looking up an event", e))?;
        Ok(row.is_some())
    }

    pub(super) async fn mark_processed(&self, key: InboxKey<'_>) -> Result<bool, InboxError> {
        let mut conn = self.connection().await?;
        self.insert(&mut conn, key).await
    }

    pub(super) async fn purge_before(&self, cutoff: SystemTime) -> Result<u64, InboxError> {
        let mut conn = self.connection().await?;
        let done = sqlx::query(&self.sql.purge)
            .bind(D::stamp(cutoff))
            .execute(&mut *conn)
            .await
            .map_err(|e| store_error(D::NAME, "purging", e))?;
        Ok(D::rows_affected(&done))
    }

    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<D::Db>, InboxError> {
        self.pool
            .acquire()
            .await
            .map_err(|e| store_error(D::NAME, "connecting", e))
    }
}

/// Implements [`herald::Inbox`] for a backend's public type, a newtype of
/// [`SqlInbox`].
macro_rules! impl_inbox {
    ($ty:ty) => {
        impl herald::Inbox for $ty {
            fn is_processed<'a>(
                &'a self,
                key: herald::InboxKey<'a>,
            ) -> herald::transport::BoxFuture<'a, Result<bool, herald::inbox::InboxError>> {
                Box::pin(self.0.is_processed(key))
            }

            fn mark_processed<'a>(
                &'a self,
                key: herald::InboxKey<'a>,
            ) -> herald::transport::BoxFuture<'a, Result<bool, herald::inbox::InboxError>> {
                Box::pin(self.0.mark_processed(key))
            }

            fn purge_before(
                &self,
                cutoff: std::time::SystemTime,
            ) -> herald::transport::BoxFuture<'_, Result<u64, herald::inbox::InboxError>> {
                Box::pin(self.0.purge_before(cutoff))
            }
        }
    };
}
pub(super) use impl_inbox;
