//! Reads: lookups, listings, schemas by id, and the broker's schema-id check.

use std::sync::Arc;

use super::{IdStatus, Registry, StoredSchema, VersionSpec};
use crate::{
    error::RegistryError,
    format::ParsedSchema,
    types::{SchemaRequest, SubjectAndVersion, SubjectVersion},
};

impl Registry {
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
    pub fn id_status(&self, subject: &str, id: u32) -> IdStatus {
        let state = self.read();
        // Called for every record of a validated topic: no allocation here.
        let live = state
            .subjects
            .get(subject)
            .is_some_and(|vs| vs.values().any(|e| e.id == id && !e.deleted));
        if live {
            IdStatus::Registered
        } else if state.schemas.contains_key(&id) {
            IdStatus::NotInSubject
        } else {
            IdStatus::UnknownId
        }
    }
}
