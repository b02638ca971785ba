//! The registry core: subjects, versions, ids, configuration and modes in memory,
//! every change written to the [`Store`] before it is applied. Writes are serialised by
//! one lock (so concurrent registrations of one schema get one id); reads take a read
//! lock and never wait for a write's fsync.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::Path,
    sync::{Arc, RwLock},
};

use crate::{
    error::RegistryError,
    format::{ParsedSchema, ResolvedReference},
    store::{LogRecord, Store},
    types::{
        CompatibilityLevel, Mode, SchemaReference, SchemaRequest, SchemaType, SubjectAndVersion,
        SubjectVersion,
    },
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

/// A schema stored under an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    /// The global id.
    pub id: u32,
    /// The format.
    pub schema_type: SchemaType,
    /// The text as first registered.
    pub schema: String,
    /// Its references.
    pub references: Vec<SchemaReference>,
    key: String,
}

#[derive(Debug, Clone, Copy)]
struct VersionEntry {
    id: u32,
    deleted: bool,
}

#[derive(Debug, Default)]
struct State {
    subjects: BTreeMap<String, BTreeMap<i32, VersionEntry>>,
    schemas: BTreeMap<u32, Arc<StoredSchema>>,
    by_key: HashMap<String, u32>,
    parsed: HashMap<u32, Arc<ParsedSchema>>,
    global_level: Option<CompatibilityLevel>,
    subject_level: BTreeMap<String, CompatibilityLevel>,
    global_mode: Option<Mode>,
    subject_mode: BTreeMap<String, Mode>,
    next_id: u32,
}

impl State {
    fn apply(&mut self, r: LogRecord) {
        match r {
            LogRecord::Schema {
                id,
                schema_type,
                schema,
                references,
                key,
            } => {
                self.by_key.insert(key.clone(), id);
                self.schemas.insert(
                    id,
                    Arc::new(StoredSchema {
                        id,
                        schema_type,
                        schema,
                        references,
                        key,
                    }),
                );
                self.next_id = self.next_id.max(id + 1);
            }
            LogRecord::Version {
                subject,
                version,
                id,
            } => {
                self.subjects
                    .entry(subject)
                    .or_default()
                    .insert(version, VersionEntry { id, deleted: false });
            }
            LogRecord::SoftDelete { subject, version } => {
                if let Some(v) = self
                    .subjects
                    .get_mut(&subject)
                    .and_then(|s| s.get_mut(&version))
                {
                    v.deleted = true;
                }
            }
            LogRecord::HardDelete { subject, version } => {
                if let Some(s) = self.subjects.get_mut(&subject) {
                    s.remove(&version);
                    if s.is_empty() {
                        self.subjects.remove(&subject);
                    }
                }
            }
            LogRecord::Config {
                subject: None,
                level,
            } => self.global_level = level,
            LogRecord::Config {
                subject: Some(s),
                level: Some(l),
            } => {
                self.subject_level.insert(s, l);
            }
            LogRecord::Config {
                subject: Some(s),
                level: None,
            } => {
                self.subject_level.remove(&s);
            }
            LogRecord::Mode {
                subject: None,
                mode,
            } => self.global_mode = mode,
            LogRecord::Mode {
                subject: Some(s),
                mode: Some(m),
            } => {
                self.subject_mode.insert(s, m);
            }
            LogRecord::Mode {
                subject: Some(s),
                mode: None,
            } => {
                self.subject_mode.remove(&s);
            }
        }
    }

    fn versions(&self, subject: &str, deleted: bool) -> Vec<(i32, VersionEntry)> {
        self.subjects
            .get(subject)
            .map(|s| {
                s.iter()
                    .filter(|(_, e)| deleted || !e.deleted)
                    .map(|(v, e)| (*v, *e))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn mode(&self, subject: Option<&str>) -> Mode {
        let global = self.global_mode.unwrap_or(Mode::Readwrite);
        if global == Mode::ReadonlyOverride {
            return global;
        }
        subject
            .and_then(|s| self.subject_mode.get(s).copied())
            .unwrap_or(global)
    }

    /// Every schema `refs` reach, dependencies first, each once.
    fn resolve(
        &self,
        refs: &[SchemaReference],
        out: &mut Vec<ResolvedReference>,
        depth: usize,
    ) -> Result<(), RegistryError> {
        if depth > 32 {
            return Err(RegistryError::InvalidSchema(
                "references nest more than 32 levels deep (a cycle?)".into(),
            ));
        }
        for r in refs {
            let entry = self
                .subjects
                .get(&r.subject)
                .and_then(|s| s.get(&r.version))
                .ok_or_else(|| {
                    RegistryError::InvalidSchema(format!(
                        "reference {:?} names subject {:?} version {}, which does not exist",
                        r.name, r.subject, r.version
                    ))
                })?;
            let schema = self
                .schemas
                .get(&entry.id)
                .ok_or_else(|| RegistryError::Store(format!("schema {} missing", entry.id)))?;
            self.resolve(&schema.references, out, depth + 1)?;
            if !out.iter().any(|o| o.name == r.name) {
                out.push(ResolvedReference {
                    name: r.name.clone(),
                    schema_type: schema.schema_type,
                    text: schema.schema.clone(),
                });
            }
        }
        Ok(())
    }

    fn parse(
        &self,
        schema_type: SchemaType,
        text: &str,
        refs: &[SchemaReference],
    ) -> Result<ParsedSchema, RegistryError> {
        let mut resolved = Vec::new();
        self.resolve(refs, &mut resolved, 0)?;
        ParsedSchema::parse(schema_type, text, &resolved).map_err(RegistryError::InvalidSchema)
    }

    fn parsed(&mut self, id: u32) -> Result<Arc<ParsedSchema>, RegistryError> {
        if let Some(p) = self.parsed.get(&id) {
            return Ok(p.clone());
        }
        let s = self
            .schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| RegistryError::schema_id_not_found(id))?;
        let parsed = Arc::new(
            self.parse(s.schema_type, &s.schema, &s.references)
                .map_err(|e| {
                    RegistryError::Store(format!("stored schema {id} no longer parses: {e}"))
                })?,
        );
        self.parsed.insert(id, parsed.clone());
        Ok(parsed)
    }

    fn referenced_by(&self, subject: &str, version: i32) -> Vec<u32> {
        let mut ids: BTreeSet<u32> = BTreeSet::new();
        for versions in self.subjects.values() {
            for e in versions.values().filter(|e| !e.deleted) {
                if let Some(s) = self.schemas.get(&e.id)
                    && s.references
                        .iter()
                        .any(|r| r.subject == subject && r.version == version)
                {
                    ids.insert(e.id);
                }
            }
        }
        ids.into_iter().collect()
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

    /// Looks `req` up under `subject` (`POST /subjects/{subject}`).
    pub fn lookup(
        &self,
        subject: &str,
        req: &SchemaRequest,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.read();
        let all = state.versions(subject, true);
        if all.is_empty() || (!deleted && all.iter().all(|(_, e)| e.deleted)) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let (_, _, key) = self.parse_request(&state, req)?;
        state
            .versions(subject, deleted)
            .into_iter()
            .rev()
            .find(|(_, e)| state.schemas.get(&e.id).is_some_and(|s| s.key == key))
            .map(|(v, e)| Self::subject_version(&state, subject, v, e.id))
            .unwrap_or_else(|| Err(RegistryError::SchemaNotFound("Schema not found".into())))
    }

    /// Subjects with a live version (or any version when `deleted`), optionally by prefix.
    pub fn subjects(&self, prefix: Option<&str>, deleted: bool) -> Vec<String> {
        let state = self.read();
        state
            .subjects
            .iter()
            .filter(|(name, vs)| {
                prefix.is_none_or(|p| name.starts_with(p))
                    && vs.values().any(|e| deleted || !e.deleted)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Version numbers of a subject.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, RegistryError> {
        let versions = self.read().versions(subject, deleted);
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(versions.into_iter().map(|(v, _)| v).collect())
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.read();
        let versions = state.versions(subject, deleted);
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let (v, e) = Self::pick(&versions, spec, subject)?;
        Self::subject_version(&state, subject, v, e.id)
    }

    /// Ids of live schemas that reference a version.
    pub fn referenced_by(
        &self,
        subject: &str,
        spec: VersionSpec,
    ) -> Result<Vec<u32>, RegistryError> {
        let state = self.read();
        let versions = state.versions(subject, false);
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let (v, _) = Self::pick(&versions, spec, subject)?;
        Ok(state.referenced_by(subject, v))
    }

    /// A schema by id. A schema stays readable while any version (live or soft-deleted)
    /// holds it.
    pub fn schema(&self, id: u32) -> Result<Arc<StoredSchema>, RegistryError> {
        let state = self.read();
        let held = state
            .subjects
            .values()
            .any(|vs| vs.values().any(|e| e.id == id));
        state
            .schemas
            .get(&id)
            .filter(|_| held)
            .cloned()
            .ok_or_else(|| RegistryError::schema_id_not_found(id))
    }

    /// The parsed form of a schema by id.
    pub fn parsed(&self, id: u32) -> Result<Arc<ParsedSchema>, RegistryError> {
        self.schema(id)?;
        if let Some(p) = self.read().parsed.get(&id) {
            return Ok(p.clone());
        }
        self.state_mut().parsed(id)
    }

    /// The largest id ever given.
    pub fn max_id(&self) -> u32 {
        self.read().next_id.saturating_sub(1)
    }

    /// Every version holding schema `id`.
    pub fn id_versions(
        &self,
        id: u32,
        deleted: bool,
    ) -> Result<Vec<SubjectAndVersion>, RegistryError> {
        let state = self.read();
        if !state.schemas.contains_key(&id) {
            return Err(RegistryError::schema_id_not_found(id));
        }
        let out: Vec<SubjectAndVersion> = state
            .subjects
            .iter()
            .flat_map(|(s, vs)| {
                vs.iter()
                    .filter(|(_, e)| e.id == id && (deleted || !e.deleted))
                    .map(|(v, _)| SubjectAndVersion {
                        subject: s.clone(),
                        version: *v,
                    })
            })
            .collect();
        if out.is_empty()
            && !state
                .subjects
                .values()
                .any(|vs| vs.values().any(|e| e.id == id))
        {
            return Err(RegistryError::schema_id_not_found(id));
        }
        Ok(out)
    }

    /// Latest versions (or all) of every subject, for `GET /schemas`.
    pub fn all_versions(
        &self,
        prefix: Option<&str>,
        deleted: bool,
        latest_only: bool,
    ) -> Vec<SubjectVersion> {
        let state = self.read();
        let mut out = Vec::new();
        for subject in state
            .subjects
            .keys()
            .filter(|s| prefix.is_none_or(|p| s.starts_with(p)))
        {
            let versions = state.versions(subject, deleted);
            let chosen: Vec<_> = if latest_only {
                versions.last().copied().into_iter().collect()
            } else {
                versions
            };
            for (v, e) in chosen {
                if let Ok(sv) = Self::subject_version(&state, subject, v, e.id) {
                    out.push(sv);
                }
            }
        }
        out
    }

    /// Whether `id` is a live version of `subject` (broker-side validation).
    pub fn id_status(&self, subject: &str, id: u32) -> herald_broker::validation::SchemaIdStatus {
        use herald_broker::validation::SchemaIdStatus;
        let state = self.read();
        if state
            .versions(subject, false)
            .iter()
            .any(|(_, e)| e.id == id)
        {
            SchemaIdStatus::Registered
        } else if state.schemas.contains_key(&id) {
            SchemaIdStatus::NotInSubject
        } else {
            SchemaIdStatus::UnknownId
        }
    }

    /// Deletes a subject: soft (versions hidden) or, after a soft delete, permanent.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let store = self.inner.write.lock().await;
        let records = {
            let state = self.read();
            Self::check_writable(&state, Some(subject))?;
            let all = state.versions(subject, true);
            if all.is_empty() {
                return Err(RegistryError::SubjectNotFound(subject.to_string()));
            }
            let live: Vec<i32> = all
                .iter()
                .filter(|(_, e)| !e.deleted)
                .map(|(v, _)| *v)
                .collect();
            for v in &live {
                let refs = state.referenced_by(subject, *v);
                if !refs.is_empty() {
                    return Err(RegistryError::ReferenceExists {
                        subject: subject.to_string(),
                        version: *v,
                        ids: refs,
                    });
                }
            }
            if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
                }
                let mut r: Vec<LogRecord> = all
                    .iter()
                    .map(|(v, _)| LogRecord::HardDelete {
                        subject: subject.to_string(),
                        version: *v,
                    })
                    .collect();
                if state.subject_level.contains_key(subject) {
                    r.push(LogRecord::Config {
                        subject: Some(subject.to_string()),
                        level: None,
                    });
                }
                if state.subject_mode.contains_key(subject) {
                    r.push(LogRecord::Mode {
                        subject: Some(subject.to_string()),
                        mode: None,
                    });
                }
                (r, all.iter().map(|(v, _)| *v).collect::<Vec<_>>())
            } else {
                if live.is_empty() {
                    return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
                }
                (
                    live.iter()
                        .map(|v| LogRecord::SoftDelete {
                            subject: subject.to_string(),
                            version: *v,
                        })
                        .collect(),
                    live,
                )
            }
        };
        let (records, versions) = records;
        self.commit(&store, records).await?;
        Ok(versions)
    }

    /// Deletes one version: soft, or (after a soft delete) permanent.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let store = self.inner.write.lock().await;
        let (record, version) = {
            let state = self.read();
            Self::check_writable(&state, Some(subject))?;
            let all = state.versions(subject, true);
            if all.is_empty() {
                return Err(RegistryError::SubjectNotFound(subject.to_string()));
            }
            let (v, e) = match spec {
                VersionSpec::Latest => {
                    Self::pick(&state.versions(subject, permanent), spec, subject)?
                }
                VersionSpec::Number(_) => Self::pick(&all, spec, subject)?,
            };
            let refs = state.referenced_by(subject, v);
            if !refs.is_empty() {
                return Err(RegistryError::ReferenceExists {
                    subject: subject.to_string(),
                    version: v,
                    ids: refs,
                });
            }
            match (permanent, e.deleted) {
                (false, true) => {
                    return Err(RegistryError::VersionSoftDeleted {
                        subject: subject.to_string(),
                        version: v,
                    });
                }
                (true, false) => {
                    return Err(RegistryError::VersionNotSoftDeleted {
                        subject: subject.to_string(),
                        version: v,
                    });
                }
                (false, false) => (
                    LogRecord::SoftDelete {
                        subject: subject.to_string(),
                        version: v,
                    },
                    v,
                ),
                (true, true) => (
                    LogRecord::HardDelete {
                        subject: subject.to_string(),
                        version: v,
                    },
                    v,
                ),
            }
        };
        self.commit(&store, vec![record]).await?;
        Ok(version)
    }

    /// The compatibility level of a subject (`None`: global). A subject without its own
    /// level is 40408 unless `default_to_global`.
    pub fn config(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<CompatibilityLevel, RegistryError> {
        let state = self.read();
        let global = state
            .global_level
            .unwrap_or(self.inner.config.default_compatibility);
        match subject {
            None => Ok(global),
            Some(s) => match state.subject_level.get(s) {
                Some(l) => Ok(*l),
                None if default_to_global => Ok(global),
                None => Err(RegistryError::SubjectCompatibilityNotConfigured(
                    s.to_string(),
                )),
            },
        }
    }

    /// Sets the compatibility level of a subject (`None`: global).
    pub async fn set_config(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<(), RegistryError> {
        if let Some(s) = subject {
            check_subject(s)?;
        }
        let store = self.inner.write.lock().await;
        Self::check_writable(&self.read(), subject)?;
        self.commit(
            &store,
            vec![LogRecord::Config {
                subject: subject.map(str::to_string),
                level: Some(level),
            }],
        )
        .await
    }

    /// Removes a subject's level (`None`: resets the global one); returns the old one.
    pub async fn delete_config(
        &self,
        subject: Option<&str>,
    ) -> Result<CompatibilityLevel, RegistryError> {
        let store = self.inner.write.lock().await;
        let previous = self.config(subject, false)?;
        Self::check_writable(&self.read(), subject)?;
        self.commit(
            &store,
            vec![LogRecord::Config {
                subject: subject.map(str::to_string),
                level: None,
            }],
        )
        .await?;
        Ok(previous)
    }

    /// The mode of a subject (`None`: global). A subject without its own mode is 40409
    /// unless `default_to_global`.
    pub fn mode(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Mode, RegistryError> {
        let state = self.read();
        match subject {
            None => Ok(state.global_mode.unwrap_or(Mode::Readwrite)),
            Some(s) => match state.subject_mode.get(s) {
                Some(m) => Ok(*m),
                None if default_to_global => Ok(state.mode(Some(s))),
                None => Err(RegistryError::SubjectModeNotConfigured(s.to_string())),
            },
        }
    }

    /// Sets a mode. IMPORT needs an empty registry (or subject) unless `force`.
    pub async fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<(), RegistryError> {
        if let Some(s) = subject {
            check_subject(s)?;
        }
        let store = self.inner.write.lock().await;
        {
            let state = self.read();
            if mode == Mode::Import && !force {
                let has_schemas = match subject {
                    None => !state.subjects.is_empty(),
                    Some(s) => !state.versions(s, true).is_empty(),
                };
                if has_schemas {
                    return Err(RegistryError::OperationNotPermitted(
                        "Cannot import since found existing subjects: pass force=true to switch to IMPORT anyway".into(),
                    ));
                }
            }
        }
        self.commit(
            &store,
            vec![LogRecord::Mode {
                subject: subject.map(str::to_string),
                mode: Some(mode),
            }],
        )
        .await
    }

    /// Removes a subject's mode; returns the old one.
    pub async fn delete_mode(&self, subject: &str) -> Result<Mode, RegistryError> {
        let store = self.inner.write.lock().await;
        let previous = self.mode(Some(subject), false)?;
        self.commit(
            &store,
            vec![LogRecord::Mode {
                subject: Some(subject.to_string()),
                mode: None,
            }],
        )
        .await?;
        Ok(previous)
    }
}

impl herald_broker::validation::SchemaIdCheck for Registry {
    fn check(&self, subject: &str, id: u32) -> herald_broker::validation::SchemaIdStatus {
        self.id_status(subject, id)
    }
}
