//! TLS from PEM files: handshakes, reloads without dropping connections, client
//! certificates, and errors that name the file.

use std::sync::Arc;

use herald_security::{TlsFiles, TlsListener, TlsServer, tls};
use herald_test_support::TestCa;
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsConnector;

fn client(ca: &std::path::Path, identity: Option<&herald_test_support::CertFiles>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(files) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&files.cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(&files.key).unwrap(),
            )
            .unwrap(),
    };
    TlsConnector::from(Arc::new(config))
}

/// An echo server on a TLS listener: answers each connection's first line.
async fn echo_server(tls: &TlsServer) -> std::net::SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let acceptor = tls.acceptor();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tcp.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = tls::handshake(&acceptor, stream).await {
                    let mut buf = [0u8; 5];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(&buf).await;
                        let _ = s.shutdown().await;
                    }
                }
            });
        }
    });
    addr
}

/// Connects, says hello, returns the server certificate's DER and the echo.
async fn hello(
    addr: std::net::SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let tcp = TcpStream::connect(addr).await?;
    let mut s = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let cert = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    s.write_all(b"hello").await?;
    let mut echo = Vec::new();
    s.read_to_end(&mut echo).await?;
    Ok((cert, echo))
}

fn der(path: &std::path::Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let first = ca.server("server");
    let tls = TlsServer::load(TlsFiles {
        cert: first.cert.clone(),
        key: first.key.clone(),
        client_ca: None,
    })
    .unwrap();
    let first_der = der(&first.cert);
    let addr = echo_server(&tls).await;
    let connector = client(&ca.ca, None);
    let (cert, echo) = hello(addr, &connector).await.unwrap();
    assert_eq!((cert, echo), (first_der.clone(), b"hello".to_vec()));

    // A connection open across the reload keeps working.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut open = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();

    // Rotate: new files at the same paths, then reload.
    let rotated = ca.server("server");
    let rotated_der = der(&rotated.cert);
    assert_ne!(rotated_der, first_der);
    tls.reload().unwrap();
    // A fresh client (a resumed TLS 1.3 session would not show the certificate again).
    let (cert, _) = hello(addr, &client(&ca.ca, None)).await.unwrap();
    assert_eq!(cert, rotated_der, "new connections get the new certificate");
    open.write_all(b"still").await.unwrap();
    let mut echo = Vec::new();
    open.read_to_end(&mut echo).await.unwrap();
    assert_eq!(echo, b"still");

    // A broken file on reload keeps the current certificate.
    std::fs::write(&rotated.key, "not a key").unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains("server-key.pem"), "{err}");
    let (cert, _) = hello(addr, &client(&ca.ca, None)).await.unwrap();
    assert_eq!(cert, rotated_der);
}

#[tokio::test]
async fn client_certificates_are_required_with_a_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let server = ca.server("server");
    let tls = TlsServer::load(TlsFiles {
        cert: server.cert,
        key: server.key,
        client_ca: Some(ca.ca.clone()),
    })
    .unwrap();
    assert!(tls.requires_client_certificates());
    let addr = echo_server(&tls).await;
    assert!(
        hello(addr, &client(&ca.ca, None)).await.is_err(),
        "no client certificate"
    );
    let alice = ca.client("alice", "alice");
    let (_, echo) = hello(addr, &client(&ca.ca, Some(&alice))).await.unwrap();
    assert_eq!(echo, b"hello");
    // A certificate from another CA is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let stranger = TestCa::new(other_dir.path()).client("mallory", "mallory");
    assert!(hello(addr, &client(&ca.ca, Some(&stranger))).await.is_err());
}

#[tokio::test]
async fn bad_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let a = ca.server("a");
    let b = ca.server("b");
    let load = |cert: &std::path::Path, key: &std::path::Path| {
        TlsServer::load(TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_ca: None,
        })
        .unwrap_err()
        .to_string()
    };
    let missing = dir.path().join("missing.pem");
    assert!(load(&missing, &a.key).contains("missing.pem"));
    assert!(load(&a.cert, &missing).contains("missing.pem"));
    let err = load(&a.cert, &b.key);
    assert!(err.contains("does not belong"), "{err}");
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let err = load(&dir.path().join("empty.pem"), &a.key);
    assert!(err.contains("no PEM certificate"), "{err}");
}

#[tokio::test]
async fn the_axum_listener_serves_https_and_drops_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let server = ca.server("server");
    let tls = TlsServer::load(TlsFiles {
        cert: server.cert,
        key: server.key,
        client_ca: None,
    })
    .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = TlsListener::new(tcp, &tls, "test").unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "over tls" }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A plaintext client that never sends: the others are not held up by it.
    let _silent = TcpStream::connect(addr).await.unwrap();
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(answer.is_empty(), "plaintext gets nothing");

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = client(&ca.ca, None)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("over tls"), "{answer}");
}

#[test]
fn a_client_certificate_subject_is_kafkas_principal() {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Acme, Inc.");
    dn.push(DnType::OrganizationalUnitName, "payments");
    dn.push(DnType::CommonName, "alice");
    params.distinguished_name = dn;
    let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
    // RFC 2253: most specific first, commas in values escaped (Kafka's default builder).
    assert_eq!(
        tls::certificate_principal(cert.der()).as_deref(),
        Some("User:CN=alice,OU=payments,O=Acme\\, Inc.")
    );
    assert_eq!(tls::certificate_principal(b"not a certificate"), None);
}
