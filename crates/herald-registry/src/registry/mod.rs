//! The registry core: subjects, versions, ids, configuration and modes in memory,
//! every change written to the `Store` before it is applied. Writes are serialised by
//! one lock (so concurrent registrations of one schema get one id); reads take a read
//! lock and never wait for a write's fsync.
//!
//! Registration and compatibility are here; reads are in `queries`, deletes, levels and
//! modes in `admin`, the state itself in `state`.

mod admin;
mod queries;
mod state;

pub use state::StoredSchema;
use state::{State, VersionEntry};

use std::{
    path::Path,
    sync::{Arc, RwLock},
};

use crate::{
    error::RegistryError,
    format::ParsedSchema,
    store::{LogRecord, Store},
    types::{CompatibilityLevel, Mode, SchemaReference, SchemaRequest, SchemaType, SubjectVersion},
};

/// Settings of a [`Registry`].
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Compatibility level of subjects without their own (Confluent's default: BACKWARD).
    pub default_compatibility: CompatibilityLevel,
    /// Largest schema text accepted, in bytes.
    pub max_schema_bytes: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            default_compatibility: CompatibilityLevel::Backward,
            max_schema_bytes: 8 << 20,
        }
    }
}

/// Which version a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// `latest` or `-1`.
    Latest,
    /// A version number.
    Number(i32),
}

impl std::str::FromStr for VersionSpec {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("latest") || s == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match s.parse::<i32>() {
            Ok(v) if v >= 1 => Ok(VersionSpec::Number(v)),
            _ => Err(RegistryError::InvalidVersion(s.to_string())),
        }
    }
}

/// What a compatibility test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityResult {
    /// Whether the schema passes.
    pub is_compatible: bool,
    /// One line per violation.
    pub messages: Vec<String>,
}

/// The schema registry. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RegistryConfig,
    state: RwLock<State>,
    write: tokio::sync::Mutex<Option<Store>>,
}

/// Subject names: 1 to 255 characters, no control characters.
fn check_subject(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty() || subject.chars().count() > 255 || subject.chars().any(char::is_control)
    {
        return Err(RegistryError::InvalidSubject(subject.to_string()));
    }
    Ok(())
}

fn identity_key(
    schema_type: SchemaType,
    parsed: &ParsedSchema,
    refs: &[SchemaReference],
) -> String {
    let refs = serde_json::to_string(refs).unwrap_or_default();
    format!("{schema_type}\n{refs}\n{}", parsed.canonical())
}

impl Registry {
    /// Opens the registry kept in `<data_dir>/registry/`, replaying its log.
    pub fn open(data_dir: &Path, config: RegistryConfig) -> Result<Registry, RegistryError> {
        let (store, records) =
            Store::open(data_dir, (config.max_schema_bytes * 2 + (1 << 20)) as u32)?;
        let mut state = State {
            next_id: 1,
            ..State::default()
        };
        let count = records.len();
        for r in records {
            state.apply(r);
        }
        tracing::info!(
            records = count,
            schemas = state.schemas.len(),
            subjects = state.subjects.len(),
            "schema registry loaded"
        );
        Ok(Registry {
            inner: Arc::new(Inner {
                config,
                state: RwLock::new(state),
                write: tokio::sync::Mutex::new(Some(store)),
            }),
        })
    }

    /// Syncs and closes the log; later writes fail.
    pub async fn close(&self) -> Result<(), RegistryError> {
        match self.inner.write.lock().await.take() {
            Some(store) => store.close(),
            None => Ok(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `records` durably, then applies them. Call with the write lock held.
    async fn commit(
        &self,
        store: &Option<Store>,
        records: Vec<LogRecord>,
    ) -> Result<(), RegistryError> {
        let store = store
            .as_ref()
            .ok_or_else(|| RegistryError::Store("the registry is closed".into()))?;
        store.append(&records).await?;
        let mut state = self.state_mut();
        for r in records {
            state.apply(r);
        }
        Ok(())
    }

    fn check_writable(state: &State, subject: Option<&str>) -> Result<(), RegistryError> {
        match state.mode(subject) {
            Mode::Readonly | Mode::ReadonlyOverride => {
                Err(RegistryError::OperationNotPermitted(match subject {
                    Some(s) => format!("Subject {s} is in read-only mode"),
                    None => "The registry is in read-only mode".into(),
                }))
            }
            _ => Ok(()),
        }
    }

    fn parse_request(
        &self,
        state: &State,
        req: &SchemaRequest,
    ) -> Result<(SchemaType, ParsedSchema, String), RegistryError> {
        if req.schema.len() > self.inner.config.max_schema_bytes {
            return Err(RegistryError::InvalidSchema(format!(
                "the schema is {} bytes; the limit is {}",
                req.schema.len(),
                self.inner.config.max_schema_bytes
            )));
        }
        let schema_type = req.parsed_type()?;
        let parsed = state.parse(schema_type, &req.schema, &req.references)?;
        let key = identity_key(schema_type, &parsed, &req.references);
        Ok((schema_type, parsed, key))
    }

    /// Registers `req` under `subject` (or finds it there) and returns its id.
    pub async fn register(&self, subject: &str, req: SchemaRequest) -> Result<u32, RegistryError> {
        check_subject(subject)?;
        let store = self.inner.write.lock().await;
        let (records, id) = {
            let mut state = self.state_mut();
            Self::check_writable(&state, Some(subject))?;
            let import = state.mode(Some(subject)) == Mode::Import;
            if !import && (req.id.is_some() || req.version.is_some()) {
                return Err(RegistryError::OperationNotPermitted(format!(
                    "Subject {subject} is not in import mode: a registration may name an id or version only in IMPORT mode"
                )));
            }
            let (schema_type, parsed, key) = self.parse_request(&state, &req)?;
            let versions = state.versions(subject, false);
            if let Some((_, e)) = versions
                .iter()
                .rev()
                .find(|(_, e)| state.schemas.get(&e.id).is_some_and(|s| s.key == key))
                && req.id.is_none_or(|id| id == i64::from(e.id))
            {
                return Ok(e.id);
            }
            if !import {
                let level = self.level(&state, subject);
                let result = Self::check_compatibility(&mut state, &parsed, &versions, level)?;
                if !result.is_compatible {
                    return Err(RegistryError::Incompatible {
                        subject: subject.to_string(),
                        messages: result.messages,
                    });
                }
            }
            let existing = state.by_key.get(&key).copied();
            let id = match req.id {
                Some(id) => {
                    let id = u32::try_from(id).ok().filter(|i| *i >= 1).ok_or_else(|| {
                        RegistryError::unprocessable(format!(
                            "id {id} is not a positive 32-bit integer"
                        ))
                    })?;
                    if let Some(s) = state.schemas.get(&id)
                        && s.key != key
                    {
                        return Err(RegistryError::IdDoesNotMatch(format!(
                            "Schema already registered with id {id} is a different schema"
                        )));
                    }
                    id
                }
                None => existing.unwrap_or(state.next_id),
            };
            let all = state.versions(subject, true);
            let version = match req.version {
                Some(v) => {
                    let v = i32::try_from(v)
                        .ok()
                        .filter(|v| *v >= 1)
                        .ok_or_else(|| RegistryError::InvalidVersion(v.to_string()))?;
                    if all.iter().any(|(n, _)| *n == v) {
                        return Err(RegistryError::OperationNotPermitted(format!(
                            "Subject {subject} already has a version {v}"
                        )));
                    }
                    v
                }
                None => all.last().map_or(1, |(v, _)| v + 1),
            };
            let mut records = Vec::new();
            if !state.schemas.contains_key(&id) {
                records.push(LogRecord::Schema {
                    id,
                    schema_type,
                    schema: req.schema.clone(),
                    references: req.references.clone(),
                    key,
                });
                state.parsed.insert(id, Arc::new(parsed));
            }
            records.push(LogRecord::Version {
                subject: subject.to_string(),
                version,
                id,
            });
            (records, id)
        };
        self.commit(&store, records).await?;
        Ok(id)
    }

    fn level(&self, state: &State, subject: &str) -> CompatibilityLevel {
        state
            .subject_level
            .get(subject)
            .copied()
            .or(state.global_level)
            .unwrap_or(self.inner.config.default_compatibility)
    }

    fn check_compatibility(
        state: &mut State,
        new: &ParsedSchema,
        versions: &[(i32, VersionEntry)],
        level: CompatibilityLevel,
    ) -> Result<CompatibilityResult, RegistryError> {
        let targets: Vec<(i32, VersionEntry)> = match level {
            CompatibilityLevel::None => Vec::new(),
            l if l.transitive() => versions.iter().rev().copied().collect(),
            _ => versions.last().copied().into_iter().collect(),
        };
        let mut messages = Vec::new();
        for (v, e) in targets {
            let old = state.parsed(e.id)?;
            if level.backward() {
                for i in ParsedSchema::can_read(new, &old, true) {
                    messages.push(format!(
                        "{i} (the new schema cannot read data written with version {v}; {level})"
                    ));
                }
            }
            if level.forward() {
                for i in ParsedSchema::can_read(&old, new, false) {
                    messages.push(format!(
                        "{i} (version {v} cannot read data written with the new schema; {level})"
                    ));
                }
            }
        }
        Ok(CompatibilityResult {
            is_compatible: messages.is_empty(),
            messages,
        })
    }

    /// Tests `req` against one version of `subject` (`None`: as registration would).
    pub fn test_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        req: &SchemaRequest,
    ) -> Result<CompatibilityResult, RegistryError> {
        check_subject(subject)?;
        let mut state = self.state_mut();
        let (_, parsed, _) = self.parse_request(&state, req)?;
        let level = self.level(&state, subject);
        let live = state.versions(subject, false);
        let targets = match version {
            None => live,
            Some(spec) => {
                if live.is_empty() && state.versions(subject, true).is_empty() {
                    return match spec {
                        VersionSpec::Latest => Ok(CompatibilityResult {
                            is_compatible: true,
                            messages: Vec::new(),
                        }),
                        VersionSpec::Number(_) => {
                            Err(RegistryError::SubjectNotFound(subject.to_string()))
                        }
                    };
                }
                let (v, e) = Self::pick(&live, spec, subject)?;
                vec![(v, e)]
            }
        };
        let level = match (version, level) {
            // Against one named version the level's direction applies to that version.
            (Some(_), CompatibilityLevel::BackwardTransitive) => CompatibilityLevel::Backward,
            (Some(_), CompatibilityLevel::ForwardTransitive) => CompatibilityLevel::Forward,
            (Some(_), CompatibilityLevel::FullTransitive) => CompatibilityLevel::Full,
            (_, l) => l,
        };
        Self::check_compatibility(&mut state, &parsed, &targets, level)
    }

    fn pick(
        versions: &[(i32, VersionEntry)],
        spec: VersionSpec,
        subject: &str,
    ) -> Result<(i32, VersionEntry), RegistryError> {
        match spec {
            VersionSpec::Latest => versions.last().copied(),
            VersionSpec::Number(n) => versions.iter().find(|(v, _)| *v == n).copied(),
        }
        .ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.to_string(),
            version: match spec {
                VersionSpec::Latest => "latest".into(),
                VersionSpec::Number(n) => n.to_string(),
            },
        })
    }

    fn subject_version(
        state: &State,
        subject: &str,
        version: i32,
        id: u32,
    ) -> Result<SubjectVersion, RegistryError> {
        let s = state
            .schemas
            .get(&id)
            .ok_or_else(|| RegistryError::Store(format!("schema {id} missing")))?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version,
            id,
            schema_type: (s.schema_type != SchemaType::Avro).then_some(s.schema_type),
            references: s.references.clone(),
            schema: s.schema.clone(),
        })
    }
}

/// Where a schema id stands for a subject: the answer broker-side validation needs
/// ([`Registry::id_status`]). The binary adapts it to the broker's own check trait, so
/// the registry knows nothing of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdStatus {
    /// The id is a live (not deleted) version of the subject.
    Registered,
    /// The id exists but is not a live version of the subject.
    NotInSubject,
    /// No schema has that id.
    UnknownId,
}
