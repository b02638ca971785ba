//! Projections, on SQLite and PostgreSQL: a read model of account balances maintained
//! live equals the one rebuilt from zero; the read model and the checkpoint commit
//! together (a failing event rolls back both, and the runner retries it); lag in events
//! and seconds.

mod bank;
mod common;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use bank::*;
use common::*;
use herald_sql::{
    BoxError, HeraldDb, Projection, ProjectionConfig, ProjectionRunner, RecordedEvent, Repository,
};
use sqlx::Transaction;

/// Balances per account, and how often each event was applied.
struct Balances {
    name: String,
    /// Fails on the next `money_withdrawn` while set.
    fail_withdrawals: AtomicBool,
}

impl Balances {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            fail_withdrawals: AtomicBool::new(false),
        }
    }
}

impl<DB: TestSql> Projection<DB> for Balances {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, DB>,
        event: &RecordedEvent,
    ) -> Result<(), BoxError> {
        let e: AccountEvent = serde_json::from_slice(&event.envelope.data)?;
        let delta: i64 = match e {
            AccountEvent::Opened { .. } => 0,
            AccountEvent::MoneyDeposited { amount_cents } => amount_cents as i64,
            AccountEvent::MoneyWithdrawn { amount_cents } => {
                if self.fail_withdrawals.load(Ordering::SeqCst) {
                    return Err("withdrawals are failing".into());
                }
                -(amount_cents as i64)
            }
        };
        let table = &self.name;
        DB::exec_in(
            tx,
            &format!(
                "INSERT INTO {table} (account, cents) VALUES ($1, {delta})
                 ON CONFLICT (account) DO UPDATE SET cents = {table}.cents + {delta}"
            ),
            &event.stream_id,
        )
        .await?;
        DB::exec_in(
            tx,
            &format!(
                "INSERT INTO {table}_applied (event_id, n) VALUES ($1, 1)
                 ON CONFLICT (event_id) DO UPDATE SET n = {table}_applied.n + 1"
            ),
            &event.envelope.id,
        )
        .await?;
        Ok(())
    }

    async fn reset(&self, tx: &mut Transaction<'static, DB>) -> Result<(), BoxError> {
        let table = &self.name;
        DB::exec_in(tx, &format!("DELETE FROM {table} WHERE account <> $1"), "").await?;
        DB::exec_in(
            tx,
            &format!("DELETE FROM {table}_applied WHERE event_id <> $1"),
            "",
        )
        .await?;
        Ok(())
    }
}

async fn create_tables<DB: TestSql>(db: &HeraldDb<DB>, name: &str) {
    DB::exec(
        db.pool(),
        &format!("CREATE TABLE {name} (account TEXT PRIMARY KEY, cents BIGINT NOT NULL)"),
    )
    .await;
    DB::exec(
        db.pool(),
        &format!("CREATE TABLE {name}_applied (event_id TEXT PRIMARY KEY, n BIGINT NOT NULL)"),
    )
    .await;
}

async fn balances<DB: TestSql>(db: &HeraldDb<DB>, name: &str) -> Vec<(String, i64)> {
    DB::pairs(
        db.pool(),
        &format!("SELECT account, cents FROM {name} ORDER BY account"),
    )
    .await
}

fn fast() -> ProjectionConfig {
    ProjectionConfig {
        batch_size: 16,
        poll_interval: Duration::from_millis(20),
        retry: ProjectionConfig::default().retry.with_delays(
            Duration::from_millis(5),
            Duration::from_millis(50),
            2.0,
        ),
    }
}

both!(rebuilt_projection_equals_live_one, rebuild_case);
async fn rebuild_case<DB: TestSql>(db: HeraldDb<DB>) {
    create_tables(&db, "balances").await;
    let store = db.event_store();
    let live = ProjectionRunner::new(store.clone(), Balances::new("balances"))
        .with_config(fast())
        .start();
    let repo: Repository<DB, Account> =
        Repository::new(store.clone(), "urn:bank").with_conflict_retries(100);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let repo = repo.clone();
            tokio::spawn(async move {
                let id = format!("acc-{w}");
                repo.execute(&id, &AccountCommand::Open { owner: id.clone() })
                    .await
                    .unwrap();
                for i in 1..=20u64 {
                    repo.execute(
                        &id,
                        &AccountCommand::Deposit {
                            amount_cents: i * 10,
                        },
                    )
                    .await
                    .unwrap();
                    if i % 3 == 0 {
                        repo.execute(&id, &AccountCommand::Withdraw { amount_cents: 5 })
                            .await
                            .unwrap();
                    }
                    // A shared account, written by everyone.
                    repo.execute(
                        "shared",
                        &AccountCommand::Open {
                            owner: "all".into(),
                        },
                    )
                    .await
                    .ok();
                    repo.execute("shared", &AccountCommand::Deposit { amount_cents: 1 })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let last = store.last_position().await.unwrap();
    let runner =
        ProjectionRunner::new(store.clone(), Balances::new("balances")).with_config(fast());
    eventually("the live projection to catch up", || async {
        runner.checkpoint().await.unwrap() == last
    })
    .await;
    live.shutdown().await.unwrap();
    let lag = runner.lag().await.unwrap();
    assert_eq!((lag.events, lag.seconds), (0, 0.0));

    let live_model = balances(&db, "balances").await;
    assert_eq!(live_model.len(), 5);
    let expected_each = (1..=20).map(|i| i * 10).sum::<i64>() - 6 * 5;
    for (account, cents) in &live_model {
        let want = if account == "account-shared" {
            80
        } else {
            expected_each
        };
        assert_eq!(*cents, want, "{account}");
    }
    let applied = DB::pairs(db.pool(), "SELECT event_id, n FROM balances_applied").await;
    assert_eq!(applied.len() as u64, last, "every event applied");
    assert!(applied.iter().all(|(_, n)| *n == 1), "none applied twice");

    let replayed = runner.rebuild().await.unwrap();
    assert_eq!(replayed, last);
    assert_eq!(
        balances(&db, "balances").await,
        live_model,
        "rebuilt equals live"
    );
    assert_eq!(runner.checkpoint().await.unwrap(), last);
}

both!(
    read_model_and_checkpoint_commit_together,
    atomic_checkpoint_case
);
async fn atomic_checkpoint_case<DB: TestSql>(db: HeraldDb<DB>) {
    create_tables(&db, "bal").await;
    let store = db.event_store();
    let repo: Repository<DB, Account> = Repository::new(store.clone(), "urn:bank");
    repo.execute("a", &AccountCommand::Open { owner: "a".into() })
        .await
        .unwrap();
    repo.execute("a", &AccountCommand::Deposit { amount_cents: 100 })
        .await
        .unwrap();
    repo.execute("a", &AccountCommand::Withdraw { amount_cents: 30 })
        .await
        .unwrap();
    let runner = ProjectionRunner::new(store.clone(), Balances::new("bal")).with_config(fast());
    let lag = runner.lag().await.unwrap();
    assert_eq!(lag.events, 3);
    assert!(lag.seconds >= 0.0);

    runner
        .projection()
        .fail_withdrawals
        .store(true, Ordering::SeqCst);
    let err = runner.run_batch().await.unwrap_err();
    assert!(
        matches!(err, herald_sql::Error::Projection { position: 3, .. }),
        "{err}"
    );
    // The deposit before it in the batch was rolled back with it.
    assert_eq!(runner.checkpoint().await.unwrap(), 0);
    assert!(balances(&db, "bal").await.is_empty());

    // Live: the runner retries the batch until the projection recovers.
    let handle = ProjectionRunner::new(store.clone(), Balances::new("bal")).with_config(fast());
    handle
        .projection()
        .fail_withdrawals
        .store(false, Ordering::SeqCst);
    let handle = handle.start();
    eventually("the projection", || async {
        runner.checkpoint().await.unwrap() == 3
    })
    .await;
    handle.shutdown().await.unwrap();
    assert_eq!(balances(&db, "bal").await, [("account-a".to_owned(), 70)]);
    assert_eq!(runner.run_batch().await.unwrap(), 0);
}
