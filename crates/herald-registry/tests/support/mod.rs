//! A registry served on 127.0.0.1:0 from a temporary directory, and a small client.
#![allow(dead_code)] // why: each test binary uses a different part of the harness

use std::path::PathBuf;

use herald_registry::{
    http::{RegistryHttpConfig, RegistryServer},
    registry::{Registry, RegistryConfig},
};
use serde_json::Value;
use tempfile::TempDir;

pub(crate) struct TestRegistry {
    pub(crate) dir: TempDir,
    pub(crate) registry: Registry,
    pub(crate) server: Option<RegistryServer>,
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
}

pub(crate) const CT: &str = "application/vnd.schemaregistry.v1+json";

impl TestRegistry {
    pub(crate) async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), 1 << 20).await
    }

    pub(crate) async fn start_in(dir: TempDir, max_body: usize) -> Self {
        let registry = Registry::open(dir.path(), RegistryConfig::default()).unwrap();
        let mut config = RegistryHttpConfig::new("127.0.0.1:0".parse().unwrap());
        config.max_body_bytes = max_body;
        let server = RegistryServer::bind(config, registry.clone())
            .await
            .unwrap();
        let url = format!("http://{}", server.local_addr());
        Self {
            dir,
            registry,
            server: Some(server),
            url,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Stops the server, closes the registry and opens a new one on the same directory.
    pub(crate) async fn restart(self) -> Self {
        let TestRegistry {
            dir,
            registry,
            server,
            ..
        } = self;
        server.unwrap().shutdown().await;
        registry.close().await.unwrap();
        drop(registry);
        Self::start_in(dir, 1 << 20).await
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.header("content-type", CT).body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Registers and returns the id, failing the test on an error.
    pub(crate) async fn register(&self, subject: &str, body: Value) -> u64 {
        let (status, v) = self
            .post(&format!("/subjects/{subject}/versions"), body)
            .await;
        assert_eq!(status, 200, "register {subject}: {v}");
        v["id"].as_u64().unwrap()
    }
}

/// Asserts a Confluent-style error answer.
pub(crate) fn assert_error(got: (u16, Value), status: u16, code: u64) -> String {
    assert_eq!(got.0, status, "status of {}", got.1);
    assert_eq!(
        got.1["error_code"].as_u64(),
        Some(code),
        "error_code of {}",
        got.1
    );
    let message = got.1["message"].as_str().expect("message").to_string();
    assert!(!message.is_empty());
    message
}
