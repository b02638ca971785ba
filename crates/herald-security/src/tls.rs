//! TLS for Herald's listeners, with rustls (ring): a certificate chain and key from PEM
//! files, re-read on demand ([`TlsServer::reload`], on SIGHUP in `herald serve`) without
//! dropping a connection, and client certificates checked against a CA when one is given.
//!
//! Connections take the certificate that is current when their handshake starts: a
//! reload changes what new connections see, never an open one.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// A server-side TLS connection. The TCP stream is read through a 64 KiB buffer: rustls
/// reads at most a few KiB per call, so without it a large request (a 1 MiB produce)
/// costs hundreds of `read` calls.
pub type TlsConnection = TlsStream<tokio::io::BufReader<TcpStream>>;

/// Read buffer of a [`TlsConnection`].
const READ_BUFFER: usize = 64 * 1024;

/// Where a listener's certificate, key and (optionally) client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates, PEM: when set, every client must present a certificate they
    /// signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Why TLS could not be set up; the message names the file and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("TLS {what} {}: {reason}", path.display())]
    File {
        /// Which file: "certificate", "private key", "client CA".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, ...).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The certificate and key currently served, swapped by [`TlsServer::reload`].
struct Current(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Current(..)")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// A listener's TLS: the rustls configuration and the files it was loaded from.
#[derive(Debug, Clone)]
pub struct TlsServer {
    files: TlsFiles,
    current: Arc<Current>,
    config: Arc<ServerConfig>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_key(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = read_certs("certificate", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        what: "private key",
        path: files.key.clone(),
        reason: format!("{e} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)"),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::File {
            what: "private key",
            path: files.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        TlsError::Config(format!(
            "the private key {} does not belong to the certificate {}: {e}",
            files.key.display(),
            files.cert.display()
        ))
    })?;
    Ok(Arc::new(certified))
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

impl TlsServer {
    /// Reads the files and builds the configuration (TLS 1.2 and 1.3).
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let current = Arc::new(Current(RwLock::new(load_key(&files)?)));
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs("client CA", ca)? {
                    roots.add(cert).map_err(|e| TlsError::File {
                        what: "client CA",
                        path: ca.clone(),
                        reason: e.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_cert_resolver(current.clone());
        Ok(Self {
            files,
            current,
            config: Arc::new(config),
        })
    }

    /// Re-reads the certificate and key. On an error the current ones stay in use. The
    /// client CA is read at start only.
    pub fn reload(&self) -> Result<(), TlsError> {
        let next = load_key(&self.files)?;
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The files this configuration comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certificates(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The rustls configuration (shared; it follows reloads).
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// An acceptor for TCP connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

/// Longest TLS handshake a listener waits for before it drops the connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a peer sent first: a TLS record (`true`), or something else, such as a
/// plaintext Kafka or HTTP request (`false`). Reads nothing: the bytes stay for the
/// handshake.
pub async fn starts_with_tls(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok(n == 1 && first[0] == 0x16)
}

/// Accepts a TCP connection's TLS handshake within [`HANDSHAKE_TIMEOUT`]. A peer that
/// speaks something else is told apart (`Err` says so) so the caller can log it for the
/// operator.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> Result<TlsConnection, HandshakeError> {
    let attempt = async {
        if !starts_with_tls(&stream).await.map_err(HandshakeError::Io)? {
            return Err(HandshakeError::NotTls);
        }
        acceptor
            .accept(tokio::io::BufReader::with_capacity(READ_BUFFER, stream))
            .await
            .map_err(HandshakeError::Io)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt)
        .await
        .unwrap_or(Err(HandshakeError::TimedOut))
}

/// The principal of a connection's client certificate, as Kafka's default principal
/// builder makes it: `User:` and the certificate's subject in RFC 2253 form (most
/// specific first: `User:CN=alice,OU=payments,O=Acme`). `None` without a client
/// certificate.
pub fn client_principal(stream: &TlsConnection) -> Option<String> {
    let (_, connection) = stream.get_ref();
    let der = connection.peer_certificates()?.first()?;
    certificate_principal(der.as_ref())
}

/// [`client_principal`] of one DER certificate.
pub fn certificate_principal(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject: Vec<_> = cert.subject().iter().collect();
    let rdns: Vec<String> = subject
        .into_iter()
        .rev()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    let key = match oid.as_str() {
                        "2.5.4.3" => "CN",
                        "2.5.4.6" => "C",
                        "2.5.4.7" => "L",
                        "2.5.4.8" => "ST",
                        "2.5.4.9" => "STREET",
                        "2.5.4.10" => "O",
                        "2.5.4.11" => "OU",
                        "0.9.2342.19200300.100.1.25" => "DC",
                        "0.9.2342.19200300.100.1.1" => "UID",
                        other => other,
                    };
                    let value = atv.as_str().map_or_else(
                        |_| {
                            let hex: String = atv
                                .attr_value()
                                .data
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect();
                            format!("#{hex}")
                        },
                        escape_rfc2253,
                    );
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    (!rdns.is_empty()).then(|| format!("User:{}", rdns.join(",")))
}

/// RFC 2253 section 2.4: `,+"\<>;` escaped, and a leading `#` or space and a trailing
/// space.
fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == '#' || c == ' ')) || (i == last && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's first bytes are not a TLS record: a plaintext client.
    #[error("the client does not speak TLS (plaintext on a TLS listener)")]
    NotTls,
    /// No handshake within [`HANDSHAKE_TIMEOUT`].
    #[error("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")]
    TimedOut,
    /// The handshake failed (no common version or cipher, a bad client certificate, ...).
    #[error("TLS handshake failed: {0}")]
    Io(std::io::Error),
}

/// A TLS listener for axum's `serve`: handshakes run in their own tasks, so a slow or
/// silent client delays no one else; connections that fail it are logged and dropped.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsConnection, SocketAddr)>,
    task: JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS on `tcp`; `what` names the listener in log lines ("HTTP API").
    pub fn new(tcp: TcpListener, tls: &TlsServer, what: &'static str) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = tls.acceptor();
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(listener = what, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match handshake(&acceptor, stream).await {
                        Ok(tls) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Err(HandshakeError::NotTls) => tracing::info!(listener = what, %peer,
                            "a client spoke plaintext to the TLS listener; use https://"),
                        Err(e) => tracing::info!(listener = what, %peer, error = %e,
                            "TLS connection dropped"),
                    }
                });
            }
        });
        Ok(Self { local, ready, task })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task ended (only when dropped): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves `app` on `tcp` until `stop` resolves (then gracefully: requests in flight
/// finish), over TLS when `tls` is given: the one serving loop of both HTTP servers.
/// `what` names the server in log lines.
pub fn spawn_http(
    tcp: TcpListener,
    app: axum::Router,
    tls: Option<&TlsServer>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    what: &'static str,
) -> std::io::Result<JoinHandle<()>> {
    Ok(match tls {
        None => tokio::spawn(async move {
            if let Err(e) = axum::serve(tcp, app).with_graceful_shutdown(stop).await {
                tracing::error!(server = what, error = %e, "HTTP server failed");
            }
        }),
        Some(tls) => {
            let listener = TlsListener::new(tcp, tls, what)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(server = what, error = %e, "HTTPS server failed");
                }
            })
        }
    })
}
