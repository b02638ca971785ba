//! SASL mechanisms on the server side: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802,
//! RFC 7677) and PLAIN (RFC 4616), checked against salted, iterated SCRAM credentials:
//! no password is ever stored, and PLAIN proves the password by deriving the stored key
//! from it. Every comparison of secret-derived bytes is constant-time.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use subtle::ConstantTimeEq;

/// Iterations of a new credential: Kafka's `kafka-configs` default is 4096, the RFC 7677
/// minimum; more costs every login, fewer weakens a stolen credential file.
pub const DEFAULT_ITERATIONS: u32 = 8192;
/// Fewest iterations accepted (Kafka's and RFC 7677's minimum).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most iterations accepted (Kafka's maximum: more makes every login slow).
pub const MAX_ITERATIONS: u32 = 16384;

/// A SCRAM hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    /// Both, in Kafka's order.
    pub const ALL: [ScramHash; 2] = [ScramHash::Sha256, ScramHash::Sha512];

    /// The mechanism name: `SCRAM-SHA-256`.
    pub fn mechanism(self) -> &'static str {
        match self {
            ScramHash::Sha256 => "SCRAM-SHA-256",
            ScramHash::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's numeric mechanism (DescribeUserScramCredentials): 1 and 2.
    pub fn kafka_code(self) -> i8 {
        match self {
            ScramHash::Sha256 => 1,
            ScramHash::Sha512 => 2,
        }
    }

    /// The hash of Kafka's numeric mechanism.
    pub fn from_kafka_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(ScramHash::Sha256),
            2 => Some(ScramHash::Sha512),
            _ => None,
        }
    }

    /// Length of the hash's output, which is also a salted password's length.
    pub fn output_len(self) -> usize {
        self.len()
    }

    /// The hash of a mechanism name.
    pub fn from_mechanism(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(ScramHash::Sha256),
            "SCRAM-SHA-512" => Some(ScramHash::Sha512),
            _ => None,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramHash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramHash::Sha256 => hmac::HMAC_SHA256,
            ScramHash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramHash::Sha256 => &digest::SHA256,
            ScramHash::Sha512 => &digest::SHA512,
        }
    }

    fn len(self) -> usize {
        self.digest().output_len()
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }
}

/// A SASL mechanism the Kafka listener can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// PLAIN: user name and password in the clear (use it over TLS only).
    Plain,
    /// SCRAM with SHA-256 or SHA-512.
    Scram(ScramHash),
}

impl Mechanism {
    /// Every mechanism, as `--sasl-mechanisms` defaults.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::Scram(ScramHash::Sha256),
        Mechanism::Scram(ScramHash::Sha512),
    ];

    /// The name clients send in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(h) => h.mechanism(),
        }
    }

    /// The mechanism named `name` (as clients spell it, upper case).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            other => ScramHash::from_mechanism(other).map(Mechanism::Scram),
        }
    }
}

/// A user's SCRAM credential for one hash: what the server keeps instead of a password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The hash it is for.
    pub hash: ScramHash,
    /// Random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("hash", &self.hash)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// A credential for `password` with a fresh random salt.
    pub fn new(hash: ScramHash, password: &[u8], iterations: u32) -> Self {
        let mut salt = vec![0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .expect("the system's random source works");
        Self::with_salt(hash, password, salt, iterations)
    }

    /// A credential for `password` with a given salt (Kafka's AlterUserScramCredentials
    /// sends salted passwords; tests use fixed salts).
    pub fn with_salt(hash: ScramHash, password: &[u8], salt: Vec<u8>, iterations: u32) -> Self {
        let salted = salted_password(hash, password, &salt, iterations);
        Self::from_salted_password(hash, &salted, salt, iterations)
    }

    /// A credential from a salted password (RFC 5802's SaltedPassword).
    pub fn from_salted_password(
        hash: ScramHash,
        salted: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Self {
        let client_key = hash.mac(salted, b"Client Key");
        Self {
            hash,
            salt,
            iterations,
            stored_key: hash.hash(&client_key),
            server_key: hash.mac(salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one this credential was made from (constant-time).
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let salted = salted_password(self.hash, password, &self.salt, self.iterations);
        let client_key = self.hash.mac(&salted, b"Client Key");
        bool::from(self.hash.hash(&client_key).ct_eq(&self.stored_key))
    }
}

fn salted_password(hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; hash.len()];
    let rounds = std::num::NonZeroU32::new(iterations.max(1)).expect("at least 1");
    pbkdf2::derive(hash.pbkdf2(), rounds, salt, password, &mut out);
    out
}

/// Why an authentication failed. The message a client gets never says which part was
/// wrong (user or password), as Kafka's does not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown user or wrong password.
    #[error("Authentication failed: invalid credentials with SASL mechanism {0}")]
    InvalidCredentials(&'static str),
    /// The client's message is not what the mechanism expects.
    #[error("Authentication failed: malformed {mechanism} message: {reason}")]
    Malformed {
        /// The mechanism.
        mechanism: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// One step of an exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this to the client and wait for its next message.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `reply` (empty for PLAIN).
    Done {
        /// The authenticated user name.
        user: String,
        /// The last server message.
        reply: Vec<u8>,
    },
}

/// What the server side of a mechanism needs: a user's credential.
pub trait CredentialLookup {
    /// The credential of `user` for `hash`, if the user has one.
    fn credential(&self, user: &str, hash: ScramHash) -> Option<ScramCredential>;
}

/// The server side of one authentication exchange.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    state: State,
    /// The server's part of the nonce; random unless a test fixes it.
    server_nonce: String,
}

#[derive(Debug)]
enum State {
    Start,
    SentFirst {
        user: String,
        credential: Option<ScramCredential>,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        /// The client's part of `nonce`, which it comes first in.
        client_nonce_len: usize,
    },
    Finished,
}

impl Exchange {
    /// A new exchange for `mechanism`.
    pub fn new(mechanism: Mechanism) -> Self {
        let mut bytes = [0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's random source works");
        Self::with_server_nonce(mechanism, B64.encode(bytes))
    }

    /// A new exchange with a fixed server nonce (RFC test vectors).
    pub fn with_server_nonce(mechanism: Mechanism, server_nonce: String) -> Self {
        Self {
            mechanism,
            state: State::Start,
            server_nonce,
        }
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Takes the client's next message.
    pub fn step(&mut self, input: &[u8], users: &dyn CredentialLookup) -> Result<Step, AuthError> {
        match (
            self.mechanism,
            std::mem::replace(&mut self.state, State::Finished),
        ) {
            (Mechanism::Plain, State::Start) => plain(input, users),
            (Mechanism::Scram(hash), State::Start) => self.client_first(hash, input, users),
            (
                Mechanism::Scram(hash),
                State::SentFirst {
                    user,
                    credential,
                    client_first_bare,
                    server_first,
                    nonce,
                    client_nonce_len,
                },
            ) => client_final(
                hash,
                input,
                &user,
                credential,
                &client_first_bare,
                &server_first,
                (&nonce, client_nonce_len),
            ),
            (m, _) => Err(malformed(m.name(), "the exchange is already finished")),
        }
    }

    fn client_first(
        &mut self,
        hash: ScramHash,
        input: &[u8],
        users: &dyn CredentialLookup,
    ) -> Result<Step, AuthError> {
        let m = hash.mechanism();
        let text = std::str::from_utf8(input).map_err(|_| malformed(m, "not UTF-8"))?;
        // gs2-header: no channel binding ("n") or client supports it but we do not ("y");
        // an authzid, if any, must be the user itself (checked below).
        let (cbind, rest) = text
            .split_once(',')
            .ok_or_else(|| malformed(m, "no GS2 header"))?;
        if !matches!(cbind, "n" | "y") {
            return Err(malformed(m, "channel binding is not supported"));
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed(m, "no GS2 header"))?;
        let mut user = None;
        let mut client_nonce = None;
        for attr in bare.split(',') {
            match attr.split_once('=') {
                Some(("n", v)) => {
                    user = Some(unescape(v).ok_or_else(|| malformed(m, "bad user name"))?)
                }
                Some(("r", v)) if !v.is_empty() => client_nonce = Some(v.to_owned()),
                Some(("m", _)) => {
                    return Err(malformed(m, "mandatory extensions are not supported"));
                }
                // Extensions (Kafka's tokenauth) are ignored.
                Some(_) => {}
                None => return Err(malformed(m, "an attribute without '='")),
            }
        }
        let user = user.ok_or_else(|| malformed(m, "no user name"))?;
        let client_nonce = client_nonce.ok_or_else(|| malformed(m, "no nonce"))?;
        if let Some(a) = authzid.strip_prefix("a=")
            && unescape(a).as_deref() != Some(user.as_str())
        {
            return Err(malformed(m, "an authorization id other than the user"));
        }
        let credential = users.credential(&user, hash);
        // An unknown user still gets a server-first message (with a salt derived from
        // its name), so a client cannot tell unknown users from wrong passwords.
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                hash.hash(user.as_bytes())[..16].to_vec(),
                DEFAULT_ITERATIONS,
            ),
        };
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
        self.state = State::SentFirst {
            user,
            credential,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            client_nonce_len: client_nonce.len(),
            nonce,
        };
        Ok(Step::Continue(server_first.into_bytes()))
    }
}

fn malformed(mechanism: &'static str, reason: &str) -> AuthError {
    AuthError::Malformed {
        mechanism,
        reason: reason.to_owned(),
    }
}

/// RFC 5802 saslname: `=2C` is ',', `=3D` is '='; any other '=' is an error.
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

fn client_final(
    hash: ScramHash,
    input: &[u8],
    user: &str,
    credential: Option<ScramCredential>,
    client_first_bare: &str,
    server_first: &str,
    (nonce, client_nonce_len): (&str, usize),
) -> Result<Step, AuthError> {
    let m = hash.mechanism();
    let text = std::str::from_utf8(input).map_err(|_| malformed(m, "not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or_else(|| malformed(m, "no proof"))?;
    let mut cbind = None;
    let mut r = None;
    for attr in without_proof.split(',') {
        match attr.split_once('=') {
            Some(("c", v)) => cbind = Some(v),
            Some(("r", v)) => r = Some(v),
            Some(_) => {}
            None => return Err(malformed(m, "an attribute without '='")),
        }
    }
    // "biws" is base64 of "n,,", "eSws" of "y,,": the GS2 header without an authzid.
    let cbind = cbind.ok_or_else(|| malformed(m, "no channel binding attribute"))?;
    let header = B64
        .decode(cbind)
        .map_err(|_| malformed(m, "channel binding is not base64"))?;
    if !(header.starts_with(b"n,") || header.starts_with(b"y,")) {
        return Err(malformed(m, "channel binding is not supported"));
    }
    // librdkafka before 2.6.1 (Debian's kcat, Ubuntu's librdkafka) sends its own nonce
    // once more in front of the whole nonce (librdkafka#4895); Kafka 3.8.1 to 3.9
    // accept that, and so does Herald: the server's nonce is still there, so a replayed
    // exchange still fails, and the proof covers the message as sent.
    let legacy = format!("{}{nonce}", &nonce[..client_nonce_len]);
    if r != Some(nonce) && r != Some(legacy.as_str()) {
        return Err(malformed(m, "the nonce does not match"));
    }
    let proof = B64
        .decode(proof)
        .map_err(|_| malformed(m, "the proof is not base64"))?;
    let Some(credential) = credential else {
        return Err(AuthError::InvalidCredentials(m));
    };
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let client_signature = hash.mac(&credential.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(AuthError::InvalidCredentials(m));
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    if !bool::from(hash.hash(&client_key).ct_eq(&credential.stored_key)) {
        return Err(AuthError::InvalidCredentials(m));
    }
    let server_signature = hash.mac(&credential.server_key, auth_message.as_bytes());
    Ok(Step::Done {
        user: user.to_owned(),
        reply: format!("v={}", B64.encode(server_signature)).into_bytes(),
    })
}

/// PLAIN: `authzid NUL authcid NUL password`, checked against the user's SCRAM-SHA-512
/// or SCRAM-SHA-256 credential.
fn plain(input: &[u8], users: &dyn CredentialLookup) -> Result<Step, AuthError> {
    let m = "PLAIN";
    let mut parts = input.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(m, "expected authzid NUL user NUL password"));
    };
    let user = std::str::from_utf8(user)
        .ok()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| malformed(m, "no user name"))?;
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(malformed(m, "an authorization id other than the user"));
    }
    let credential = ScramHash::ALL
        .iter()
        .rev()
        .find_map(|h| users.credential(user, *h));
    match credential {
        Some(c) if c.verify_password(password) => Ok(Step::Done {
            user: user.to_owned(),
            reply: Vec::new(),
        }),
        Some(_) => Err(AuthError::InvalidCredentials(m)),
        None => {
            // The same work for an unknown user as for a wrong password.
            let _ = ScramCredential::with_salt(
                ScramHash::Sha512,
                password,
                vec![0; 16],
                DEFAULT_ITERATIONS,
            );
            Err(AuthError::InvalidCredentials(m))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Users(HashMap<(String, ScramHash), ScramCredential>);

    impl CredentialLookup for Users {
        fn credential(&self, user: &str, hash: ScramHash) -> Option<ScramCredential> {
            self.0.get(&(user.to_owned(), hash)).cloned()
        }
    }

    /// RFC 7677, section 3: user "user", password "pencil".
    #[test]
    fn rfc_7677_scram_sha_256_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::with_salt(ScramHash::Sha256, b"pencil", salt, 4096);
        let users = Users(HashMap::from([(("user".into(), ScramHash::Sha256), cred)]));
        let mut x = Exchange::with_server_nonce(
            Mechanism::Scram(ScramHash::Sha256),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
        );
        let first = x.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &users).unwrap();
        assert_eq!(
            first,
            Step::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        let last = x
            .step(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                &users,
            )
            .unwrap();
        assert_eq!(
            last,
            Step::Done {
                user: "user".into(),
                reply: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            }
        );
        assert!(x.step(b"again", &users).is_err(), "finished");
    }

    #[test]
    fn a_wrong_proof_or_an_unknown_user_fail_alike() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::with_salt(ScramHash::Sha256, b"pencil", salt, 4096);
        let users = Users(HashMap::from([(("user".into(), ScramHash::Sha256), cred)]));
        let run = |first: &[u8], last: &[u8]| {
            let mut x = Exchange::with_server_nonce(
                Mechanism::Scram(ScramHash::Sha256),
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            );
            x.step(first, &users).unwrap();
            x.step(last, &users).unwrap_err()
        };
        let wrong = run(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAAZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        let unknown = run(
            b"n,,n=nobody,r=rOprNGfwEbeRWgbNEkqO",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert_eq!(wrong, unknown);
        assert_eq!(wrong, AuthError::InvalidCredentials("SCRAM-SHA-256"));
        let bad_nonce = run(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            b"c=biws,r=other,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert!(matches!(bad_nonce, AuthError::Malformed { .. }));
    }

    /// The client-final message of a client that follows the exchange, with the nonce
    /// `r` it chooses to send.
    fn client_final_with(
        hash: ScramHash,
        password: &[u8],
        first_bare: &str,
        server_first: &str,
        r: &str,
    ) -> String {
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(k))
                .unwrap()
                .to_owned()
        };
        let salt = B64.decode(attr("s=")).unwrap();
        let iterations: u32 = attr("i=").parse().unwrap();
        let salted = salted_password(hash, password, &salt, iterations);
        let client_key = hash.mac(&salted, b"Client Key");
        let stored_key = hash.hash(&client_key);
        let without_proof = format!("c=biws,r={r}");
        let auth = format!("{first_bare},{server_first},{without_proof}");
        let signature = hash.mac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn librdkafka_before_2_6_1_with_its_nonce_twice_is_accepted_and_nothing_else() {
        let hash = ScramHash::Sha512;
        let cred = ScramCredential::new(hash, b"pw", MIN_ITERATIONS);
        let users = Users(HashMap::from([(("svc".into(), hash), cred)]));
        let first_bare = "n=svc,r=client-nonce";
        let start = || {
            let mut x = Exchange::new(Mechanism::Scram(hash));
            let Step::Continue(server_first) = x
                .step(format!("n,,{first_bare}").as_bytes(), &users)
                .unwrap()
            else {
                panic!("a server-first message")
            };
            let server_first = String::from_utf8(server_first).unwrap();
            (x, server_first)
        };
        let nonce_of = |server_first: &str| server_first.split(',').next().unwrap()[2..].to_owned();
        // RFC 5802, and librdkafka#4895's doubled client nonce: both authenticate.
        for doubled in [false, true] {
            let (mut x, server_first) = start();
            let nonce = nonce_of(&server_first);
            let r = if doubled {
                format!("client-nonce{nonce}")
            } else {
                nonce
            };
            let last = client_final_with(hash, b"pw", first_bare, &server_first, &r);
            assert!(
                matches!(x.step(last.as_bytes(), &users), Ok(Step::Done { .. })),
                "doubled: {doubled}"
            );
        }
        // Without the server's nonce (a replay) it fails.
        let (mut x, server_first) = start();
        let last = client_final_with(
            hash,
            b"pw",
            first_bare,
            &server_first,
            "client-nonceclient-nonce",
        );
        assert!(matches!(
            x.step(last.as_bytes(), &users),
            Err(AuthError::Malformed { .. })
        ));
    }

    #[test]
    fn malformed_first_messages_are_refused() {
        let users = Users(HashMap::new());
        for bad in [
            &b"p=tls-unique,,n=user,r=abc"[..],
            b"n,,r=abc",
            b"n,,n=user",
            b"n,,n=us=er,r=abc",
            b"n,a=other,n=user,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"\xff",
        ] {
            let mut x = Exchange::new(Mechanism::Scram(ScramHash::Sha512));
            assert!(
                matches!(x.step(bad, &users), Err(AuthError::Malformed { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(unescape("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
    }

    #[test]
    fn plain_checks_the_password_against_the_scram_credential() {
        let cred = ScramCredential::new(ScramHash::Sha512, b"s3cret", MIN_ITERATIONS);
        let users = Users(HashMap::from([(("alice".into(), ScramHash::Sha512), cred)]));
        let plain = |msg: &[u8]| Exchange::new(Mechanism::Plain).step(msg, &users);
        assert_eq!(
            plain(b"\0alice\0s3cret").unwrap(),
            Step::Done {
                user: "alice".into(),
                reply: vec![]
            }
        );
        assert!(plain(b"alice\0alice\0s3cret").is_ok(), "authzid = user");
        assert_eq!(
            plain(b"\0alice\0wrong").unwrap_err(),
            AuthError::InvalidCredentials("PLAIN")
        );
        assert_eq!(
            plain(b"\0bob\0s3cret").unwrap_err(),
            AuthError::InvalidCredentials("PLAIN")
        );
        assert!(matches!(
            plain(b"bob\0alice\0s3cret"),
            Err(AuthError::Malformed { .. })
        ));
        assert!(matches!(
            plain(b"alice:s3cret"),
            Err(AuthError::Malformed { .. })
        ));
    }

    #[test]
    fn credentials_hide_the_password_and_check_it() {
        let c = ScramCredential::new(ScramHash::Sha256, b"pw", MIN_ITERATIONS);
        assert!(c.verify_password(b"pw"));
        assert!(!c.verify_password(b"pW"));
        assert!(!format!("{c:?}").contains("stored_key"));
        let d = ScramCredential::new(ScramHash::Sha256, b"pw", MIN_ITERATIONS);
        assert_ne!(c.salt, d.salt, "fresh salts");
    }
}
