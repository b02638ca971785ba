//! The HTTP client of the commands that talk to a running broker.

use std::time::Duration;

use clap::{Args, ValueEnum};
use herald_api::ErrorBody;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::CliError;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON (one object per line for `tail`).
    Json,
}

/// Options shared by every command that talks to a broker.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// URL of a running herald's HTTP API
    #[arg(
        long,
        env = "HERALD_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub(crate) server: String,
    /// CA certificate (PEM) to trust for an https:// server, beside the system's roots
    #[arg(long, env = "HERALD_CA_FILE", value_name = "FILE")]
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// User for a server with HTTP Basic authentication; the password comes from the
    /// HERALD_PASSWORD environment variable, never from the command line
    #[arg(long, env = "HERALD_USER", value_name = "NAME")]
    pub(crate) user: Option<String>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
}

/// `--user` with the password of `HERALD_PASSWORD`.
pub(crate) fn credentials(user: Option<&str>) -> Result<Option<(String, String)>, CliError> {
    let Some(user) = user else { return Ok(None) };
    match std::env::var("HERALD_PASSWORD") {
        Ok(password) if !password.is_empty() => Ok(Some((user.to_owned(), password))),
        _ => Err(CliError::usage(format!(
            "--user {user:?} needs its password in the HERALD_PASSWORD environment variable \
             (a password is never taken from the command line)"
        ))),
    }
}

/// The CA certificate of `--ca-file`.
fn read_ca(path: &std::path::Path) -> Result<reqwest::Certificate, CliError> {
    let pem = std::fs::read(path).map_err(|e| {
        CliError::usage(format!("--ca-file {}: cannot read it: {e}", path.display()))
    })?;
    reqwest::Certificate::from_pem(&pem).map_err(|e| {
        CliError::usage(format!(
            "--ca-file {}: not a PEM certificate: {e}",
            path.display()
        ))
    })
}

/// A client of one broker's HTTP API.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    base: Url,
    http: reqwest::Client,
    /// User and password for HTTP Basic authentication.
    credentials: Option<(String, String)>,
}

impl Client {
    pub(crate) fn new(args: &ClientArgs) -> Result<Self, CliError> {
        let base = Url::parse(&args.server).map_err(|e| {
            CliError::usage(format!(
                "--server {:?} is not a URL ({e}); use e.g. http://127.0.0.1:8080",
                args.server
            ))
        })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(CliError::usage(format!(
                "--server {:?} must be an http:// or https:// URL",
                args.server
            )));
        }
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(path) = &args.ca_file {
            builder = builder.add_root_certificate(read_ca(path)?);
        }
        let http = builder
            .build()
            .map_err(|e| CliError::runtime(format!("cannot build the HTTP client: {e}")))?;
        let credentials = credentials(args.user.as_deref())?;
        Ok(Self {
            base,
            http,
            credentials,
        })
    }

    /// `/api/v1/<segments...>`, each segment percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("checked in new");
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    /// Sends a request; a 2xx answer's JSON as `T` (an empty answer reads as JSON
    /// `null`, which `()` accepts) or an error that says what the broker said.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<T, CliError> {
        let mut req = self.http.request(method, url).timeout(timeout);
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some((user, password)) = &self.credentials {
            req = req.basic_auth(user, Some(password));
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            let json = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| self.unexpected(&e))?
            };
            return T::deserialize(json).map_err(|e| self.unexpected(&e));
        }
        let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
        let message = body
            .as_ref()
            .map_or_else(|| text.trim().to_string(), |b| b.message.clone());
        let error_code = body.map(|b| b.error_code);
        let code = error_code.map_or(String::new(), |c| format!(", error_code {c}"));
        let hint = if error_code == Some(herald_api::codes::UNKNOWN_TOPIC) {
            ": list topics with `herald topics list`, create one with `herald topics create NAME`"
        } else {
            ""
        };
        Err(match status {
            StatusCode::SERVICE_UNAVAILABLE => CliError::runtime(format!(
                "{message} (HTTP 503 from {}): retry in a moment",
                self.base
            )),
            _ => CliError::runtime(format!("{message} (HTTP {}{code}){hint}", status.as_u16())),
        })
    }

    /// `GET /api/v1/<segments...>` as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, CliError> {
        self.send(
            Method::GET,
            self.url(segments),
            None,
            Duration::from_secs(30),
        )
        .await
    }

    /// An answer that is not the API's JSON: another program on that port, or a broker
    /// of another version.
    fn unexpected(&self, e: &dyn std::fmt::Display) -> CliError {
        CliError::runtime(format!(
            "unexpected answer from {} ({e}): is --server a herald of this version?",
            self.base
        ))
    }

    fn unreachable(&self, e: reqwest::Error) -> CliError {
        if e.is_connect() {
            CliError::runtime(format!(
                "no herald at {}: start one with `herald serve`, or point --server (or \
                 HERALD_SERVER) at a running one",
                self.base
            ))
        } else if e.is_timeout() {
            CliError::runtime(format!("herald at {} did not answer in time", self.base))
        } else {
            CliError::runtime(format!("request to {} failed: {e}", self.base))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        let args = ClientArgs {
            server: "http://127.0.0.1:1/".into(),
            ca_file: None,
            user: None,
            output: Output::Table,
        };
        let c = Client::new(&args).unwrap();
        assert_eq!(
            c.url(&["topics", "a/b"]).as_str(),
            "http://127.0.0.1:1/api/v1/topics/a%2Fb"
        );
        let bad = ClientArgs {
            server: "127.0.0.1:8080".into(),
            ca_file: None,
            user: None,
            output: Output::Table,
        };
        assert!(matches!(Client::new(&bad), Err(CliError::Usage(_))));
    }
}
