//! The registry's in-memory state, rebuilt by replaying the log: subjects and their
//! versions, schemas by id and by identity key, levels and modes.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use crate::{
    error::RegistryError,
    format::{ParsedSchema, ResolvedReference},
    store::LogRecord,
    types::{CompatibilityLevel, Mode, SchemaReference, SchemaType},
};

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
    pub(super) key: String,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct VersionEntry {
    pub(super) id: u32,
    pub(super) deleted: bool,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) subjects: BTreeMap<String, BTreeMap<i32, VersionEntry>>,
    pub(super) schemas: BTreeMap<u32, Arc<StoredSchema>>,
    pub(super) by_key: HashMap<String, u32>,
    pub(super) parsed: HashMap<u32, Arc<ParsedSchema>>,
    pub(super) global_level: Option<CompatibilityLevel>,
    pub(super) subject_level: BTreeMap<String, CompatibilityLevel>,
    pub(super) global_mode: Option<Mode>,
    pub(super) subject_mode: BTreeMap<String, Mode>,
    pub(super) next_id: u32,
}

impl State {
    pub(super) fn apply(&mut self, r: LogRecord) {
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

    pub(super) fn versions(&self, subject: &str, deleted: bool) -> Vec<(i32, VersionEntry)> {
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

    pub(super) fn mode(&self, subject: Option<&str>) -> Mode {
        let global = self.global_mode.unwrap_or(Mode::Readwrite);
        if global == Mode::ReadonlyOverride {
            return global;
        }
        subject
            .and_then(|s| self.subject_mode.get(s).copied())
            .unwrap_or(global)
    }

    /// Every schema `refs` reach, dependencies first, each once.
    pub(super) fn resolve(
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

    pub(super) fn parse(
        &self,
        schema_type: SchemaType,
        text: &str,
        refs: &[SchemaReference],
    ) -> Result<ParsedSchema, RegistryError> {
        let mut resolved = Vec::new();
        self.resolve(refs, &mut resolved, 0)?;
        ParsedSchema::parse(schema_type, text, &resolved).map_err(RegistryError::InvalidSchema)
    }

    pub(super) fn parsed(&mut self, id: u32) -> Result<Arc<ParsedSchema>, RegistryError> {
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

    pub(super) fn referenced_by(&self, subject: &str, version: i32) -> Vec<u32> {
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
