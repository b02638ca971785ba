//! The one migration runner, on SQLite and PostgreSQL: a component's schema is applied
//! once however often it is asked for, a later build adds only its new versions, and a
//! database migrated by a newer build is refused with an error naming the component.

mod common;

use common::*;
use herald_sql::{
    Backend, Error, HeraldDb,
    migrate::{Migration, Schema},
};

const V1: Migration = Migration {
    version: 1,
    description: "widgets",
    statements: &["CREATE TABLE test_widgets (id TEXT PRIMARY KEY)"],
};
const V2: Migration = Migration {
    version: 2,
    description: "widget colour",
    statements: &["ALTER TABLE test_widgets ADD COLUMN colour TEXT"],
};

const fn widgets(migrations: &'static [Migration]) -> Schema {
    Schema {
        component: "widgets",
        version_table: "test_widget_migrations",
        sqlite: migrations,
        postgres: migrations,
    }
}

async fn versions<DB: Backend + TestSql>(db: &HeraldDb<DB>) -> Vec<i64> {
    DB::pairs(
        db.pool(),
        "SELECT description, version FROM test_widget_migrations ORDER BY version",
    )
    .await
    .into_iter()
    .map(|(_, v)| v)
    .collect()
}

async fn applies_once_then_only_new_versions<DB: Backend + TestSql>(db: HeraldDb<DB>) {
    db.migrate(&widgets(&[V1])).await.unwrap();
    db.migrate(&widgets(&[V1]))
        .await
        .expect("a second run is a no-op");
    assert_eq!(versions(&db).await, [1]);

    db.migrate(&widgets(&[V1, V2])).await.unwrap();
    assert_eq!(versions(&db).await, [1, 2]);
    DB::exec(
        db.pool(),
        "INSERT INTO test_widgets (id, colour) VALUES ('w', 'red')",
    )
    .await;

    // Concurrent starts of one service: the lock lets each version apply once.
    let runs = (0..4).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { db.migrate(&widgets(&[V1, V2])).await })
    });
    for run in runs {
        run.await.unwrap().unwrap();
    }
    assert_eq!(versions(&db).await, [1, 2]);
}
both!(applies_once, applies_once_then_only_new_versions);

async fn a_newer_schema_is_refused<DB: Backend + TestSql>(db: HeraldDb<DB>) {
    db.migrate(&widgets(&[V1, V2])).await.unwrap();
    let e = db.migrate(&widgets(&[V1])).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::SchemaTooNew {
                component: "widgets",
                found: 2,
                supported: 1
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("upgrade widgets"), "{e}");
    assert_eq!(versions(&db).await, [1, 2], "nothing changed");
}
both!(newer_schema, a_newer_schema_is_refused);

/// `Database::connect` opens SQLite from a `sqlite:` URL or a plain path, with the inbox
/// table, and refuses a URL of another database.
#[tokio::test]
async fn a_database_url_picks_the_backend() {
    use herald::InboxKey;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url.db");
    for url in [
        format!("sqlite:{}", path.display()),
        format!("sqlite://{}", path.display()),
        path.display().to_string(),
    ] {
        let db = herald_sql::Database::connect(&url).await.unwrap();
        assert_eq!(db.backend(), "sqlite");
        let key = InboxKey {
            group: "g",
            event_id: &url,
        };
        assert!(db.inbox().mark_processed(key).await.unwrap());
        db.close().await;
    }
    let err = herald_sql::Database::connect("mysql://localhost/shop")
        .await
        .unwrap_err();
    assert!(matches!(err, herald_sql::Error::InvalidInput(_)), "{err}");
}
