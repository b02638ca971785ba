//! `herald sagas list|show` against a service's database (SQLite, and PostgreSQL when
//! `HERALD_TEST_POSTGRES_URL` is set) and against a service's HTTP API on port 0: what
//! a user sees, in tables and JSON, and the errors that say what to do next.

use std::process::Output;

use herald::{Envelope, Event, correlation::caused_by};
use herald_saga::{SagaBackend, SagaDefinition, SagaStore, Step};
use herald_test_support::herald_command;
use serde::{Deserialize, Serialize};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

fn herald<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    herald_command(HERALD)
        .arg("sagas")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[derive(Serialize, Deserialize, Clone)]
struct Order {
    order_id: String,
}

#[derive(Serialize, Deserialize)]
struct Reserve {
    order_id: String,
}

impl Event for Reserve {
    const TYPE: &'static str = "inventory.reserve";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

#[derive(Serialize, Deserialize)]
struct Reserved {
    order_id: String,
}

impl Event for Reserved {
    const TYPE: &'static str = "inventory.reserved";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Two order sagas: o-1 completed, o-2 running.
async fn seed<DB: SagaBackend>(store: &SagaStore<DB>) {
    let saga = SagaDefinition::builder("order")
        .reply_topic("inventory-events")
        .step(
            Step::new("reserve")
                .command("inventory-commands", |o: &Order| Reserve {
                    order_id: o.order_id.clone(),
                })
                .succeeds_on::<Reserved>(),
        )
        .build()
        .unwrap();
    let manager = store.manager(saga);
    for id in ["o-1", "o-2"] {
        let data = Order {
            order_id: id.into(),
        };
        manager.start(id, data).await.unwrap();
    }
    let command = &store.commands("order", "o-1").await.unwrap()[0];
    let reserve = Envelope::new("urn:t", Reserve::TYPE, "{}").with_id(command.command_id.clone());
    let reply = caused_by(
        Envelope::from_event(
            "urn:t",
            &Reserved {
                order_id: "o-1".into(),
            },
        )
        .unwrap(),
        &reserve,
    );
    manager.handle_reply(&reply).await.unwrap();
}

/// What every source must show the same way.
fn check_list_and_show(source: &[&str]) {
    let args = |more: &[&'static str]| -> Vec<String> {
        source.iter().chain(more).map(|s| s.to_string()).collect()
    };
    let out = herald(&args(&["list"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ID"), "{text}");
    let o1 = text.lines().find(|l| l.starts_with("o-1")).unwrap();
    assert!(o1.contains("order") && o1.contains("completed"), "{o1}");
    let o2 = text.lines().find(|l| l.starts_with("o-2")).unwrap();
    assert!(o2.contains("running") && o2.contains("reserve"), "{o2}");

    let out = herald(&args(&["list", "--status", "running", "-o", "json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"], 1);
    assert_eq!(json["sagas"][0]["saga_id"], "o-2");

    let out = herald(&args(&["list", "--limit", "1"]));
    assert!(
        stdout(&out).contains("(1 of 2; --offset and --limit page"),
        "{}",
        stdout(&out)
    );

    let out = herald(&args(&["show", "o-1"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("status:      completed"), "{text}");
    assert!(
        text.contains(r#"data:        {"order_id":"o-1"}"#),
        "{text}"
    );
    for kind in ["started", "step_started", "step_succeeded", "completed"] {
        assert!(text.contains(kind), "{kind} missing from {text}");
    }
    assert!(text.contains("inventory.reserved"), "{text}");

    let out = herald(&args(&["show", "o-2", "--type", "order", "-o", "json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "running");
    assert_eq!(json["history"].as_array().unwrap().len(), 2);

    let out = herald(&args(&["show", "o-9"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("o-9") && stderr(&out).contains("herald sagas list"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let db = herald_sql::HeraldDb::open(&path).await.unwrap();
    seed(&SagaStore::new(db).await.unwrap()).await;
    let arg = format!("sqlite:{}", path.display());
    tokio::task::spawn_blocking(move || {
        check_list_and_show(&["--database", &arg]);
        // A bare path works too.
        let bare = arg.trim_start_matches("sqlite:").to_owned();
        assert!(herald(&["list", "--database", &bare]).status.success());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_service_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = herald_sql::HeraldDb::open(dir.path().join("shop.db"))
        .await
        .unwrap();
    let store = SagaStore::new(db).await.unwrap();
    seed(&store).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, herald_saga::http::routes(store))
            .await
            .unwrap()
    });
    tokio::task::spawn_blocking(move || {
        check_list_and_show(&["--url", &url]);
        let out = herald(&["list", "--url", &format!("{url}/nothing-here")]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("404"), "{}", stderr(&out));
    })
    .await
    .unwrap();
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_postgres_schema() {
    let Some(url) = herald_test_support::postgres_url() else {
        return;
    };
    let schema = format!("hcli_sagas_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options=-csearch_path%3D{schema}");
    let db = herald_sql::HeraldDb::connect(&scoped).await.unwrap();
    seed(&SagaStore::new(db.clone()).await.unwrap()).await;
    db.pool().close().await;
    let empty = format!("{url}{sep}options=-csearch_path%3D{schema}_none");
    tokio::task::spawn_blocking(move || {
        check_list_and_show(&["--database", &scoped]);
        // A schema without sagas: said so, nothing created.
        let out = herald(&["list", "--database", &empty]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("no herald-saga tables"),
            "{}",
            stderr(&out)
        );
    })
    .await
    .unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}

#[test]
fn errors_say_what_to_do() {
    let out = herald(&["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--database sqlite:PATH"),
        "{}",
        stderr(&out)
    );

    let out = herald(&["list", "--database", "/nonexistent/shop.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.db");
    std::fs::write(&plain, b"").unwrap();
    let out = herald(&["list", "--database", plain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no herald-saga tables"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::metadata(&plain).unwrap().len(),
        0,
        "nothing created"
    );

    for (args, message) in [
        (
            vec!["list", "--status", "done", "--database", "x.db"],
            "--status",
        ),
        (
            vec!["list", "--limit", "0", "--database", "x.db"],
            "--limit",
        ),
        (
            vec!["list", "--database", "mysql://h/db"],
            "expected sqlite:PATH",
        ),
        (vec!["list", "--url", "ftp://h"], "http://"),
        (
            vec!["list", "--url", "x", "--database", "y"],
            "cannot be used with",
        ),
    ] {
        let out = herald(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }

    let out = herald(&["list", "--url", "http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is the service running"),
        "{}",
        stderr(&out)
    );
}
