//! Deletes (soft and permanent), compatibility levels and modes.

use super::{Registry, VersionSpec, check_subject};
use crate::{
    error::RegistryError,
    store::LogRecord,
    types::{CompatibilityLevel, Mode},
};

impl Registry {
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
