//! Typed events: a Rust type per event type, JSON on the wire.

use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

use crate::envelope::Envelope;

/// The content type typed events are written with.
pub const JSON: &str = "application/json";

/// A typed event. `TYPE` and `VERSION` go into `ce_type` and `ce_schemaversion`;
/// [`key`](Event::key) is the partition key, so events of one entity stay in order.
///
/// ```
/// use herald_format::{Envelope, Event};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct OrderPlaced { order_id: String, total_cents: u64 }
///
/// impl Event for OrderPlaced {
///     const TYPE: &'static str = "shop.order.placed";
///     const VERSION: u32 = 1;
///     fn key(&self) -> String { self.order_id.clone() }
/// }
///
/// let placed = OrderPlaced { order_id: "o-1".into(), total_cents: 1250 };
/// let envelope = Envelope::from_event("urn:shop:orders", &placed)?;
/// assert_eq!(envelope.event_type, "shop.order.placed");
/// assert_eq!(envelope.key_str(), Some("o-1"));
/// assert_eq!(envelope.decode::<OrderPlaced>()?, placed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The CloudEvents `type`, e.g. `shop.order.placed`.
    const TYPE: &'static str;
    /// The schema version written as `ce_schemaversion`. Decoding refuses other versions.
    const VERSION: u32 = 1;
    /// The partition key, usually the id of the entity the event is about.
    fn key(&self) -> String;
}

/// Why an envelope could not become (or be made from) a typed event.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EventError {
    /// The envelope holds another event type.
    #[error("expected event type {expected:?}, got {found:?}")]
    WrongType {
        /// The type the Rust type stands for.
        expected: &'static str,
        /// The envelope's type.
        found: String,
    },
    /// The envelope's schema version is not the one the Rust type reads.
    #[error(
        "event type {event_type:?} has schema version {found}, this code reads version {expected}"
    )]
    VersionMismatch {
        /// The event type.
        event_type: &'static str,
        /// The version the Rust type reads.
        expected: u32,
        /// The envelope's version.
        found: u32,
    },
    /// The data is not JSON.
    #[error("event data has content type {found:?}; typed events are application/json")]
    UnsupportedContentType {
        /// The envelope's content type.
        found: String,
    },
    /// The data does not deserialize into the type, or the event does not serialize.
    #[error("event type {event_type:?}: {source}")]
    Json {
        /// The event type.
        event_type: &'static str,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
}

impl Envelope {
    /// Wraps a typed event: type, schema version, key and JSON data from `event`, a fresh
    /// id and the current time.
    pub fn from_event<E: Event>(source: impl Into<String>, event: &E) -> Result<Self, EventError> {
        let data = serde_json::to_vec(event).map_err(|source| EventError::Json {
            event_type: E::TYPE,
            source,
        })?;
        Ok(Envelope::new(source, E::TYPE, data)
            .with_key(event.key())
            .with_content_type(JSON)
            .with_schema_version(E::VERSION))
    }

    /// Reads the typed event back. The type must match; an envelope without
    /// `ce_schemaversion` counts as version 1 (events from producers that do not version
    /// their schemas); a content type other than JSON is refused.
    pub fn decode<E: Event>(&self) -> Result<E, EventError> {
        if self.event_type != E::TYPE {
            return Err(EventError::WrongType {
                expected: E::TYPE,
                found: self.event_type.clone(),
            });
        }
        let found = self.schema_version.unwrap_or(1);
        if found != E::VERSION {
            return Err(EventError::VersionMismatch {
                event_type: E::TYPE,
                expected: E::VERSION,
                found,
            });
        }
        if let Some(ct) = &self.data_content_type {
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if !essence.eq_ignore_ascii_case(JSON) && !essence.ends_with("+json") {
                return Err(EventError::UnsupportedContentType { found: ct.clone() });
            }
        }
        serde_json::from_slice(&self.data).map_err(|source| EventError::Json {
            event_type: E::TYPE,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Shipped {
        order: String,
    }

    impl Event for Shipped {
        const TYPE: &'static str = "shop.order.shipped";
        const VERSION: u32 = 3;
        fn key(&self) -> String {
            self.order.clone()
        }
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Other {}

    impl Event for Other {
        const TYPE: &'static str = "shop.other";
        fn key(&self) -> String {
            String::new()
        }
    }

    fn shipped() -> Envelope {
        Envelope::from_event(
            "urn:t",
            &Shipped {
                order: "o-9".into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn typed_round_trip_sets_type_version_key_and_json() {
        let e = shipped();
        assert_eq!(e.event_type, "shop.order.shipped");
        assert_eq!(e.schema_version, Some(3));
        assert_eq!(e.data_content_type.as_deref(), Some(JSON));
        assert_eq!(e.key_str(), Some("o-9"));
        assert_eq!(&e.data[..], br#"{"order":"o-9"}"#);
        assert_eq!(
            e.decode::<Shipped>().unwrap(),
            Shipped {
                order: "o-9".into()
            }
        );
    }

    #[test]
    fn version_mismatch_is_a_typed_error() {
        let e = shipped().with_schema_version(2);
        match e.decode::<Shipped>().unwrap_err() {
            EventError::VersionMismatch {
                expected, found, ..
            } => assert_eq!((expected, found), (3, 2)),
            other => panic!("unexpected {other}"),
        }
        let mut unversioned = shipped();
        unversioned.schema_version = None;
        assert!(matches!(
            unversioned.decode::<Shipped>(),
            Err(EventError::VersionMismatch { found: 1, .. })
        ));
    }

    #[test]
    fn wrong_type_content_type_and_bad_json_are_refused() {
        assert!(matches!(
            shipped().decode::<Other>(),
            Err(EventError::WrongType { .. })
        ));
        let xml = shipped().with_content_type("application/xml");
        assert!(matches!(
            xml.decode::<Shipped>(),
            Err(EventError::UnsupportedContentType { .. })
        ));
        let mut bad = shipped().with_content_type("application/cloudevents+json; charset=utf-8");
        bad.data = bytes::Bytes::from_static(b"{\"order\":");
        assert!(matches!(
            bad.decode::<Shipped>(),
            Err(EventError::Json { .. })
        ));
    }
}
