//! Aggregates and the repository, on SQLite and PostgreSQL, with the reference's bank
//! account: deposits, withdrawals, insufficient funds refused (nothing appended), the
//! balance as of a past time and version, conflicts retried or reported, snapshots
//! plus tail equal to a full replay.

mod bank;
mod common;

use std::{sync::Arc, time::Duration};

use bank::*;
use common::*;
use herald_sql::{Direction, HeraldDb, Repository, RepositoryError};
use tokio::sync::Barrier;

fn open(owner: &str) -> AccountCommand {
    AccountCommand::Open {
        owner: owner.into(),
    }
}
fn deposit(amount_cents: u64) -> AccountCommand {
    AccountCommand::Deposit { amount_cents }
}
fn withdraw(amount_cents: u64) -> AccountCommand {
    AccountCommand::Withdraw { amount_cents }
}

both!(
    bank_account_deposits_withdraws_and_refuses_overdrafts,
    bank_case
);
async fn bank_case<DB: TestSql>(db: HeraldDb<DB>) {
    let repo: Repository<DB, Account> = Repository::new(db.event_store(), "urn:bank");
    let refused = repo.execute("acc-1", &deposit(100)).await.unwrap_err();
    assert!(
        matches!(refused, RepositoryError::Domain(BankError::NotOpen)),
        "{refused}"
    );
    repo.execute("acc-1", &open("ada")).await.unwrap();
    repo.execute("acc-1", &deposit(100_000)).await.unwrap();
    let done = repo.execute("acc-1", &withdraw(20_000)).await.unwrap();
    assert_eq!(done.version, 3);
    assert_eq!(done.state.balance_cents, 80_000);
    assert_eq!(done.events[0].event_type, "bank.money_withdrawn");
    assert_eq!(done.events[0].key_str(), Some("account-acc-1"));
    assert_eq!(done.events[0].subject.as_deref(), Some("acc-1"));
    let err = repo.execute("acc-1", &withdraw(80_001)).await.unwrap_err();
    match err {
        RepositoryError::Domain(BankError::InsufficientFunds {
            balance_cents,
            requested_cents,
        }) => assert_eq!((balance_cents, requested_cents), (80_000, 80_001)),
        other => panic!("expected insufficient funds, got {other}"),
    }
    let err = repo.execute("acc-1", &deposit(0)).await.unwrap_err();
    assert!(matches!(
        err,
        RepositoryError::Domain(BankError::NotPositive)
    ));
    // Refused commands appended nothing.
    let loaded = repo.load("acc-1").await.unwrap();
    assert_eq!((loaded.version, loaded.state.balance_cents), (3, 80_000));
    repo.execute("acc-1", &withdraw(80_000)).await.unwrap();
    assert_eq!(repo.load("acc-1").await.unwrap().state.balance_cents, 0);
    let stored = db
        .event_store()
        .read_stream("account-acc-1", 1, Direction::Forward, 10)
        .await
        .unwrap();
    let types: Vec<&str> = stored
        .iter()
        .map(|e| e.envelope.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "bank.account_opened",
            "bank.money_deposited",
            "bank.money_withdrawn",
            "bank.money_withdrawn"
        ]
    );
}

both!(balance_as_of_a_past_time_and_version, as_of_case);
async fn as_of_case<DB: TestSql>(db: HeraldDb<DB>) {
    let repo: Repository<DB, Account> = Repository::new(db.event_store(), "urn:bank");
    let before_open = std::time::SystemTime::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    repo.execute("acc-2", &open("bob")).await.unwrap();
    repo.execute("acc-2", &deposit(1_000)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let march_15 = std::time::SystemTime::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    repo.execute("acc-2", &withdraw(250)).await.unwrap();
    repo.execute("acc-2", &deposit(50)).await.unwrap();

    assert_eq!(repo.load("acc-2").await.unwrap().state.balance_cents, 800);
    let then = repo.load_at_time("acc-2", march_15).await.unwrap();
    assert_eq!((then.version, then.state.balance_cents), (2, 1_000));
    let before = repo.load_at_time("acc-2", before_open).await.unwrap();
    assert_eq!((before.version, before.state), (0, Account::default()));
    let v3 = repo.load_at_version("acc-2", 3).await.unwrap();
    assert_eq!((v3.version, v3.state.balance_cents), (3, 750));
}

both!(concurrent_commands_retry_on_conflict, retry_case);
async fn retry_case<DB: TestSql>(db: HeraldDb<DB>) {
    let repo: Repository<DB, Account> =
        Repository::new(db.event_store(), "urn:bank").with_conflict_retries(50);
    repo.execute("acc-3", &open("cy")).await.unwrap();
    let writers = 6;
    let barrier = Arc::new(Barrier::new(writers));
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (repo, barrier) = (repo.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                repo.execute("acc-3", &deposit(10)).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let loaded = repo.load("acc-3").await.unwrap();
    assert_eq!(
        (loaded.version, loaded.state.balance_cents),
        (7, 60),
        "no lost update"
    );

    // Without retries the conflict reaches the caller, typed.
    let strict: Repository<DB, Account> = Repository::new(db.event_store(), "urn:bank");
    let barrier = Arc::new(Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (repo, barrier) = (strict.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                repo.execute("acc-3", &withdraw(10)).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let conflicts = outcomes
        .iter()
        .filter(|r| matches!(r, Err(RepositoryError::Store(e)) if e.is_conflict()))
        .count();
    let wins = outcomes.iter().filter(|r| r.is_ok()).count();
    // Both may win if one loaded after the other committed; never both on one version.
    assert!(wins + conflicts == 2 && wins >= 1, "{outcomes:?}");
    let balance = strict.load("acc-3").await.unwrap().state.balance_cents;
    assert_eq!(balance, 60 - 10 * wins as u64);
}

both!(snapshot_plus_tail_equals_full_replay, snapshot_case);
async fn snapshot_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store();
    let repo: Repository<DB, Account> =
        Repository::new(store.clone(), "urn:bank").with_snapshots_every(3);
    repo.execute("acc-4", &open("di")).await.unwrap();
    for i in 1..=7 {
        repo.execute("acc-4", &deposit(i)).await.unwrap();
    }
    let snap = store.load_snapshot("account-acc-4").await.unwrap().unwrap();
    assert_eq!(snap.version, 6);
    let with_snapshot = repo.load("acc-4").await.unwrap();
    let replayed = repo.load_at_version("acc-4", u64::MAX).await.unwrap();
    assert_eq!(with_snapshot, replayed);
    assert_eq!((replayed.version, replayed.state.balance_cents), (8, 28));
    // A snapshot is only a cache: a damaged one is an error, not a wrong balance.
    store
        .save_snapshot("account-acc-4", 8, 1, b"not json")
        .await
        .unwrap();
    assert!(repo.load("acc-4").await.is_err());
    // A state schema this code does not read is ignored.
    store
        .save_snapshot("account-acc-4", 8, 99, b"not json")
        .await
        .unwrap();
    assert_eq!(repo.load("acc-4").await.unwrap(), replayed);
}
