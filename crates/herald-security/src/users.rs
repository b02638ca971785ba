//! The users of a Herald data directory: SCRAM credentials (salt, iterations, stored key,
//! server key; never a password) in `<data-dir>/security/users.json`, replaced
//! atomically (temporary file, fsync, rename, fsync of the directory) on every change.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};

use crate::scram::{CredentialLookup, MIN_ITERATIONS, ScramCredential, ScramHash};

/// Why the user store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The file could not be read, parsed or written.
    #[error("users file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A user name Kafka would not accept.
    #[error("invalid user name {0:?}: use 1 to 255 characters, no control characters")]
    InvalidName(String),
    /// Too few iterations.
    #[error("{0} iterations are too few: at least {MIN_ITERATIONS}")]
    TooFewIterations(u32),
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    users: BTreeMap<String, BTreeMap<String, StoredCredential>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredCredential {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

/// A user and the SCRAM mechanisms it has credentials for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// The user name (the principal is `User:<name>`).
    pub name: String,
    /// Its mechanisms, with iterations.
    pub mechanisms: Vec<(ScramHash, u32)>,
}

/// The users of one data directory. Cheap to clone; every clone sees every change.
#[derive(Debug, Clone)]
pub struct UserStore {
    path: PathBuf,
    users: Arc<RwLock<BTreeMap<String, BTreeMap<ScramHash, ScramCredential>>>>,
    /// Bumped on every change, so that caches of checked passwords know to forget them.
    generation: Arc<AtomicU64>,
}

impl UserStore {
    /// The store of data directory `data_dir` (empty when the file does not exist yet).
    pub fn open(data_dir: &Path) -> Result<Self, UserError> {
        let path = data_dir.join("security").join("users.json");
        let bad = |reason: String| UserError::File {
            path: path.clone(),
            reason,
        };
        let file: File = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut users = BTreeMap::new();
        for (name, creds) in file.users {
            let mut map = BTreeMap::new();
            for (mechanism, c) in creds {
                let hash = ScramHash::from_mechanism(&mechanism).ok_or_else(|| {
                    bad(format!("user {name:?}: unknown mechanism {mechanism:?}"))
                })?;
                let decode = |field: &str, v: &str| {
                    B64.decode(v)
                        .map_err(|_| bad(format!("user {name:?}: {field} is not base64")))
                };
                map.insert(
                    hash,
                    ScramCredential {
                        hash,
                        salt: decode("salt", &c.salt)?,
                        iterations: c.iterations,
                        stored_key: decode("stored_key", &c.stored_key)?,
                        server_key: decode("server_key", &c.server_key)?,
                    },
                );
            }
            users.insert(name, map);
        }
        Ok(Self {
            path,
            users: Arc::new(RwLock::new(users)),
            generation: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A number that changes whenever a user or credential changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether `user` exists.
    pub fn contains(&self, user: &str) -> bool {
        self.read().contains_key(user)
    }

    /// Where the users are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether any user exists.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Every user, by name.
    pub fn list(&self) -> Vec<UserSummary> {
        self.read()
            .iter()
            .map(|(name, creds)| UserSummary {
                name: name.clone(),
                mechanisms: creds.values().map(|c| (c.hash, c.iterations)).collect(),
            })
            .collect()
    }

    /// Sets `user`'s credentials for `hashes` from `password` (a new salt each), keeping
    /// its other mechanisms; creates the user if needed. Durable when it returns.
    pub fn set_password(
        &self,
        user: &str,
        password: &[u8],
        hashes: &[ScramHash],
        iterations: u32,
    ) -> Result<(), UserError> {
        let credentials = hashes
            .iter()
            .map(|h| ScramCredential::new(*h, password, iterations))
            .collect();
        self.set_credentials(user, credentials)
    }

    /// Stores ready-made credentials of `user` (Kafka's AlterUserScramCredentials sends
    /// salted passwords), keeping its other mechanisms.
    pub fn set_credentials(
        &self,
        user: &str,
        credentials: Vec<ScramCredential>,
    ) -> Result<(), UserError> {
        check_name(user)?;
        if let Some(c) = credentials.iter().find(|c| c.iterations < MIN_ITERATIONS) {
            return Err(UserError::TooFewIterations(c.iterations));
        }
        let mut users = self.write();
        let mut next = users.clone();
        let entry = next.entry(user.to_owned()).or_default();
        for c in credentials {
            entry.insert(c.hash, c);
        }
        self.persist(&next)?;
        *users = next;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Removes `user`'s credential for `hash` (all of them for `None`); a user without
    /// credentials is gone. `false` when there was nothing to remove.
    pub fn remove(&self, user: &str, hash: Option<ScramHash>) -> Result<bool, UserError> {
        let mut users = self.write();
        let mut next = users.clone();
        let removed = match (next.get_mut(user), hash) {
            (None, _) => false,
            (Some(_), None) => next.remove(user).is_some(),
            (Some(creds), Some(h)) => {
                let removed = creds.remove(&h).is_some();
                if creds.is_empty() {
                    next.remove(user);
                }
                removed
            }
        };
        if removed {
            self.persist(&next)?;
            *users = next;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(removed)
    }

    fn read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, BTreeMap<ScramHash, ScramCredential>>>
    {
        self.users.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, BTreeMap<ScramHash, ScramCredential>>>
    {
        self.users.write().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(
        &self,
        users: &BTreeMap<String, BTreeMap<ScramHash, ScramCredential>>,
    ) -> Result<(), UserError> {
        let file = File {
            version: 1,
            users: users
                .iter()
                .map(|(name, creds)| {
                    let creds = creds
                        .values()
                        .map(|c| {
                            (
                                c.hash.mechanism().to_owned(),
                                StoredCredential {
                                    salt: B64.encode(&c.salt),
                                    iterations: c.iterations,
                                    stored_key: B64.encode(&c.stored_key),
                                    server_key: B64.encode(&c.server_key),
                                },
                            )
                        })
                        .collect();
                    (name.clone(), creds)
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("users serialize");
        write_atomically(&self.path, &bytes).map_err(|e| UserError::File {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

impl CredentialLookup for UserStore {
    fn credential(&self, user: &str, hash: ScramHash) -> Option<ScramCredential> {
        self.read().get(user).and_then(|c| c.get(&hash)).cloned()
    }
}

fn check_name(name: &str) -> Result<(), UserError> {
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(UserError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Temporary file, fsync, rename over `path`, fsync of the directory; the file is
/// readable by its owner only.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("the users file has a directory");
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_survive_a_reopen_without_their_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(dir.path()).unwrap();
        assert!(store.is_empty());
        store
            .set_password("alice", b"wonderland", &ScramHash::ALL, MIN_ITERATIONS)
            .unwrap();
        store
            .set_password("bob", b"builder", &[ScramHash::Sha512], MIN_ITERATIONS)
            .unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains("wonderland") && !text.contains("builder"));

        let again = UserStore::open(dir.path()).unwrap();
        let alice = again.credential("alice", ScramHash::Sha256).unwrap();
        assert!(alice.verify_password(b"wonderland"));
        assert!(again.credential("bob", ScramHash::Sha256).is_none());
        assert_eq!(
            again.list(),
            vec![
                UserSummary {
                    name: "alice".into(),
                    mechanisms: vec![
                        (ScramHash::Sha256, MIN_ITERATIONS),
                        (ScramHash::Sha512, MIN_ITERATIONS)
                    ]
                },
                UserSummary {
                    name: "bob".into(),
                    mechanisms: vec![(ScramHash::Sha512, MIN_ITERATIONS)]
                },
            ]
        );
        assert!(again.remove("alice", Some(ScramHash::Sha256)).unwrap());
        assert!(again.remove("bob", None).unwrap());
        assert!(!again.remove("bob", None).unwrap());
        let last = UserStore::open(dir.path()).unwrap();
        assert_eq!(last.list().len(), 1);
        assert!(last.credential("alice", ScramHash::Sha512).is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(last.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
        }
    }

    #[test]
    fn bad_names_iterations_and_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(dir.path()).unwrap();
        for name in ["", "a\nb", &"x".repeat(256)] {
            assert!(matches!(
                store.set_password(name, b"p", &[ScramHash::Sha256], MIN_ITERATIONS),
                Err(UserError::InvalidName(_))
            ));
        }
        assert!(matches!(
            store.set_password("a", b"p", &[ScramHash::Sha256], 100),
            Err(UserError::TooFewIterations(100))
        ));
        assert!(store.is_empty(), "nothing was stored");
        fs::create_dir_all(dir.path().join("security")).unwrap();
        fs::write(store.path(), "{not json").unwrap();
        let err = UserStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("users.json"), "{err}");
    }
}
