//! Certificates made at test time: a CA, a server certificate for `localhost` and
//! `127.0.0.1`, client certificates, written as PEM files into a directory the test owns.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
};

/// A test CA and the files it signed.
pub struct TestCa {
    dir: PathBuf,
    cert: Certificate,
    key: KeyPair,
    /// The CA certificate, PEM file: what clients trust (`ssl.ca.location`).
    pub ca: PathBuf,
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA ("Herald test CA") with its certificate in `dir/ca.pem`.
    pub fn new(dir: &Path) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = name("Herald test CA");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("write ca.pem");
        Self {
            dir: dir.to_path_buf(),
            cert,
            key,
            ca,
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1`, as `dir/<stem>.pem` and
    /// `dir/<stem>-key.pem`.
    pub fn server(&self, stem: &str) -> CertFiles {
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
        self.sign(stem, params)
    }

    /// A client certificate whose subject is `CN=<common_name>`.
    pub fn client(&self, stem: &str, common_name: &str) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name = name(common_name);
        self.sign(stem, params)
    }

    fn sign(&self, stem: &str, params: CertificateParams) -> CertFiles {
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("certificate");
        let files = CertFiles {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}
