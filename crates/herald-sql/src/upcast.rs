//! Upcasters: old event versions turned into the current shape on read.
//!
//! An event's shape is named by its type and schema version (`ce_type`,
//! `ce_schemaversion`; no version counts as 1). Register one function per
//! `(type, version)`; reading an event runs the chain `v1 → v2 → … ` until no function
//! is registered for its version, each step setting the version to the next. Stored
//! rows never change: the conversion happens on every read (stream reads, `read_all`,
//! aggregates, projections). The relay publishes events as they were written.
//!
//! ```
//! use herald::Envelope;
//! use herald_sql::Upcasters;
//! use serde_json::json;
//!
//! // v1 stored an amount in whole euros; v2 stores cents.
//! let upcasters = Upcasters::new().json("bank.deposited", 1, |mut data| {
//!     let euros = data["amount"].as_u64().ok_or("amount is not a number")?;
//!     data["amount_cents"] = json!(euros * 100);
//!     data.as_object_mut().unwrap().remove("amount");
//!     Ok(data)
//! });
//! let old = Envelope::new("urn:bank", "bank.deposited", r#"{"amount":5}"#);
//! let new = upcasters.upcast(old)?;
//! assert_eq!(new.schema_version, Some(2));
//! assert_eq!(&new.data[..], br#"{"amount_cents":500}"#);
//! # Ok::<(), herald_sql::Error>(())
//! ```

use std::{collections::HashMap, fmt, sync::Arc};

use herald::Envelope;

use crate::error::{BoxError, Error, Result};

type Step = Arc<dyn Fn(Envelope) -> Result<Envelope, BoxError> + Send + Sync>;

/// The registered conversions, by event type and the version each converts from.
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Step>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.steps.keys().collect();
        keys.sort();
        f.debug_struct("Upcasters").field("steps", &keys).finish()
    }
}

impl Upcasters {
    /// No conversions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `step` for events of `event_type` at schema version `from_version`. It
    /// gets the whole envelope and returns it converted; its schema version is then set
    /// to `from_version + 1` (whatever the step left there). A second registration for
    /// the same pair replaces the first.
    pub fn register<F>(mut self, event_type: &str, from_version: u32, step: F) -> Self
    where
        F: Fn(Envelope) -> Result<Envelope, BoxError> + Send + Sync + 'static,
    {
        self.steps
            .insert((event_type.to_owned(), from_version), Arc::new(step));
        self
    }

    /// Registers a step that converts the JSON data only.
    pub fn json<F>(self, event_type: &str, from_version: u32, step: F) -> Self
    where
        F: Fn(serde_json::Value) -> Result<serde_json::Value, BoxError> + Send + Sync + 'static,
    {
        self.register(event_type, from_version, move |mut envelope| {
            let value: serde_json::Value = serde_json::from_slice(&envelope.data)?;
            envelope.data = serde_json::to_vec(&step(value)?)?.into();
            Ok(envelope)
        })
    }

    /// Whether any step is registered.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the chain of steps for `envelope`'s type from its version on.
    pub fn upcast(&self, mut envelope: Envelope) -> Result<Envelope> {
        if self.steps.is_empty() {
            return Ok(envelope);
        }
        loop {
            let version = envelope.schema_version.unwrap_or(1);
            let key = (envelope.event_type.clone(), version);
            let Some(step) = self.steps.get(&key) else {
                return Ok(envelope);
            };
            envelope = step(envelope).map_err(|source| Error::Upcast {
                event_type: key.0,
                from_version: version,
                source,
            })?;
            envelope.schema_version = Some(version + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(version: Option<u32>) -> Envelope {
        let mut e = Envelope::new("s", "t.renamed", r#"{"n":1}"#);
        e.schema_version = version;
        e
    }

    #[test]
    fn chains_run_in_order_from_the_stored_version() {
        let up = Upcasters::new()
            .json("t.renamed", 1, |mut v| {
                v["n"] = serde_json::json!(v["n"].as_i64().unwrap() * 10);
                Ok(v)
            })
            .json("t.renamed", 2, |mut v| {
                v["m"] = v["n"].take();
                v.as_object_mut().unwrap().remove("n");
                Ok(v)
            });
        let from_v1 = up.upcast(event(None)).unwrap();
        assert_eq!(from_v1.schema_version, Some(3));
        assert_eq!(&from_v1.data[..], br#"{"m":10}"#);
        let from_v2 = up.upcast(event(Some(2))).unwrap();
        assert_eq!(&from_v2.data[..], br#"{"m":1}"#);
        let current = event(Some(3));
        assert_eq!(up.upcast(current.clone()).unwrap(), current);
    }

    #[test]
    fn other_types_pass_through_and_failures_name_the_step() {
        let up = Upcasters::new().json("t.renamed", 1, |_| Err("no way".into()));
        let other = Envelope::new("s", "t.other", "{}");
        assert_eq!(up.upcast(other.clone()).unwrap(), other);
        let err = up.upcast(event(None)).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Upcast {
                    from_version: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("t.renamed"));
        let bad_json = Envelope::new("s", "t.renamed", "not json");
        assert!(up.upcast(bad_json).is_err());
    }
}
