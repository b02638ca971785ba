//! The event envelope: CloudEvents 1.0 in Kafka binary mode.
//!
//! An [`Envelope`] travels as one Kafka record, following the CloudEvents Kafka protocol
//! binding in binary content mode: each attribute is a header named `ce_<attribute>`
//! holding its UTF-8 text, except `datacontenttype`, which is the `content-type` header.
//! The record key is the partition key and the record value is the data.
//!
//! | attribute | header | required |
//! | --- | --- | --- |
//! | id | `ce_id` | yes |
//! | source | `ce_source` | yes |
//! | type | `ce_type` | yes |
//! | specversion | `ce_specversion` (`1.0`) | yes |
//! | time | `ce_time` (RFC 3339) | no |
//! | subject | `ce_subject` | no |
//! | datacontenttype | `content-type` | no |
//! | dataschema | `ce_dataschema` | no |
//! | correlationid, causationid, schemaversion | `ce_correlationid`, … | no |
//! | traceparent, tracestate | `ce_traceparent`, `ce_tracestate`, and the plain W3C `traceparent`, `tracestate` | no |
//!
//! The mapping is pure: [`Envelope::to_record`] and [`Envelope::from_record`] touch no
//! transport, so the SDK, the outbox and any tool read and write events the same way.
//!
//! Decoding is strict: a missing or empty required attribute, another spec version or a
//! malformed time is an [`EnvelopeError`] naming the header. Headers it does not know are
//! kept in [`Envelope::extensions`] and written back on encode.

use std::time::SystemTime;

use bytes::Bytes;
use thiserror::Error;

use crate::{
    client::{ConsumedRecord, OutgoingRecord},
    records::Header,
    rfc3339,
};

/// The CloudEvents version Herald speaks.
pub const SPEC_VERSION: &str = "1.0";

/// Header names of the binary-mode binding.
pub mod headers {
    /// `id` attribute.
    pub const ID: &str = "ce_id";
    /// `source` attribute.
    pub const SOURCE: &str = "ce_source";
    /// `type` attribute.
    pub const TYPE: &str = "ce_type";
    /// `specversion` attribute.
    pub const SPEC_VERSION: &str = "ce_specversion";
    /// `time` attribute.
    pub const TIME: &str = "ce_time";
    /// `subject` attribute.
    pub const SUBJECT: &str = "ce_subject";
    /// `datacontenttype` attribute (the binding maps it to the plain content type).
    pub const CONTENT_TYPE: &str = "content-type";
    /// `dataschema` attribute.
    pub const DATA_SCHEMA: &str = "ce_dataschema";
    /// `correlationid` extension.
    pub const CORRELATION_ID: &str = "ce_correlationid";
    /// `causationid` extension.
    pub const CAUSATION_ID: &str = "ce_causationid";
    /// `traceparent` extension (CloudEvents distributed tracing).
    pub const TRACEPARENT: &str = "ce_traceparent";
    /// `tracestate` extension.
    pub const TRACESTATE: &str = "ce_tracestate";
    /// `schemaversion` extension.
    pub const SCHEMA_VERSION: &str = "ce_schemaversion";
    /// Plain W3C trace context header, for tracing tools that know nothing of CloudEvents.
    pub const W3C_TRACEPARENT: &str = "traceparent";
    /// Plain W3C trace state header.
    pub const W3C_TRACESTATE: &str = "tracestate";
}

/// Why a record is not a valid binary-mode CloudEvent.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A required attribute's header is absent.
    #[error("missing required CloudEvents header {header}")]
    MissingAttribute {
        /// The header name, e.g. `ce_id`.
        header: &'static str,
    },
    /// A required attribute's header is present but empty (CloudEvents requires non-empty).
    #[error("CloudEvents header {header} is empty")]
    EmptyAttribute {
        /// The header name.
        header: &'static str,
    },
    /// An attribute header is null or not UTF-8.
    #[error("CloudEvents header {header} is null or not UTF-8")]
    NotText {
        /// The header name.
        header: &'static str,
    },
    /// The event declares a spec version other than 1.0.
    #[error("unsupported CloudEvents specversion {found:?}; Herald reads 1.0")]
    UnsupportedSpecVersion {
        /// The version found.
        found: String,
    },
    /// `ce_time` is not an RFC 3339 timestamp.
    #[error("ce_time {value:?} is not an RFC 3339 timestamp: {reason}")]
    InvalidTime {
        /// The header value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `ce_schemaversion` is not a non-negative integer.
    #[error("ce_schemaversion {value:?} is not a non-negative integer")]
    InvalidSchemaVersion {
        /// The header value.
        value: String,
    },
}

/// One event: CloudEvents attributes, Herald's extensions, a partition key and the data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// Unique id; a UUID v7 (time-ordered) unless set otherwise. Kept across retries,
    /// dead-lettering and replays, so consumers can deduplicate on it.
    pub id: String,
    /// URI-reference of the producer, e.g. `urn:shop:orders`.
    pub source: String,
    /// Event type, e.g. `shop.order.placed`.
    pub event_type: String,
    /// When the occurrence happened.
    pub time: Option<SystemTime>,
    /// The subject of the event within the source (e.g. an order id).
    pub subject: Option<String>,
    /// Media type of `data`, e.g. `application/json`.
    pub data_content_type: Option<String>,
    /// URI of the schema `data` adheres to.
    pub data_schema: Option<String>,
    /// Id shared by every event of one business flow.
    pub correlation_id: Option<String>,
    /// Id of the event that caused this one.
    pub causation_id: Option<String>,
    /// W3C trace context `traceparent`.
    pub traceparent: Option<String>,
    /// W3C trace context `tracestate`.
    pub tracestate: Option<String>,
    /// Version of the event type's schema.
    pub schema_version: Option<u32>,
    /// Partition key: events with the same key stay in order.
    pub key: Option<Bytes>,
    /// The payload.
    pub data: Bytes,
    /// Headers that are not attributes of this envelope, kept in order.
    pub extensions: Vec<Header>,
}

impl Envelope {
    /// A new event with a fresh UUID v7 id and the current time.
    pub fn new(
        source: impl Into<String>,
        event_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            source: source.into(),
            event_type: event_type.into(),
            time: Some(SystemTime::now()),
            subject: None,
            data_content_type: None,
            data_schema: None,
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            tracestate: None,
            schema_version: None,
            key: None,
            data: data.into(),
            extensions: Vec::new(),
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the partition key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the data content type.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.data_content_type = Some(content_type.into());
        self
    }

    /// Sets the data schema URI.
    pub fn with_data_schema(mut self, schema: impl Into<String>) -> Self {
        self.data_schema = Some(schema.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Sets the W3C `traceparent`.
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Sets the schema version.
    pub fn with_schema_version(mut self, version: u32) -> Self {
        self.schema_version = Some(version);
        self
    }

    /// Sets or clears the time.
    pub fn with_time(mut self, time: Option<SystemTime>) -> Self {
        self.time = time;
        self
    }

    /// Adds a header that is not a CloudEvents attribute.
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.extensions.push(Header::new(key, value));
        self
    }

    /// The key as UTF-8 text, if it is.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The binary-mode headers: attributes first, then the extensions.
    pub fn to_headers(&self) -> Vec<Header> {
        use headers::*;
        let mut out = vec![
            Header::new(ID, self.id.as_str()),
            Header::new(SOURCE, self.source.as_str()),
            Header::new(TYPE, self.event_type.as_str()),
            Header::new(SPEC_VERSION, super::envelope::SPEC_VERSION),
        ];
        let optional = [
            (TIME, self.time.map(rfc3339::format)),
            (SUBJECT, self.subject.clone()),
            (CONTENT_TYPE, self.data_content_type.clone()),
            (DATA_SCHEMA, self.data_schema.clone()),
            (CORRELATION_ID, self.correlation_id.clone()),
            (CAUSATION_ID, self.causation_id.clone()),
            (TRACEPARENT, self.traceparent.clone()),
            (TRACESTATE, self.tracestate.clone()),
            (SCHEMA_VERSION, self.schema_version.map(|v| v.to_string())),
            (W3C_TRACEPARENT, self.traceparent.clone()),
            (W3C_TRACESTATE, self.tracestate.clone()),
        ];
        out.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| Header::new(k, v))),
        );
        out.extend(self.extensions.iter().cloned());
        out
    }

    /// The record to publish: key, data as value, binary-mode headers.
    pub fn to_record(&self) -> OutgoingRecord {
        OutgoingRecord {
            key: self.key.clone(),
            value: Some(self.data.clone()),
            headers: self.to_headers(),
            timestamp: self.time.map(system_time_ms),
            partition: None,
        }
    }

    /// Reads an envelope from a record's key, value and headers.
    pub fn from_parts(
        key: Option<Bytes>,
        value: Option<Bytes>,
        record_headers: &[Header],
    ) -> Result<Self, EnvelopeError> {
        use headers::*;
        let mut fields = Fields::default();
        let mut extensions = Vec::new();
        for h in record_headers {
            let slot = match h.key.as_str() {
                ID => &mut fields.id,
                SOURCE => &mut fields.source,
                TYPE => &mut fields.event_type,
                SPEC_VERSION => &mut fields.spec_version,
                TIME => &mut fields.time,
                SUBJECT => &mut fields.subject,
                CONTENT_TYPE => &mut fields.content_type,
                DATA_SCHEMA => &mut fields.data_schema,
                CORRELATION_ID => &mut fields.correlation_id,
                CAUSATION_ID => &mut fields.causation_id,
                TRACEPARENT => &mut fields.traceparent,
                TRACESTATE => &mut fields.tracestate,
                SCHEMA_VERSION => &mut fields.schema_version,
                W3C_TRACEPARENT => &mut fields.w3c_traceparent,
                W3C_TRACESTATE => &mut fields.w3c_tracestate,
                _ => {
                    extensions.push(h.clone());
                    continue;
                }
            };
            *slot = Some(h);
        }
        let spec_version = required(fields.spec_version, SPEC_VERSION)?;
        if spec_version != super::envelope::SPEC_VERSION {
            return Err(EnvelopeError::UnsupportedSpecVersion {
                found: spec_version,
            });
        }
        let time = match optional(fields.time, TIME)? {
            None => None,
            Some(value) => {
                Some(
                    rfc3339::parse(&value).map_err(|reason| EnvelopeError::InvalidTime {
                        value: value.clone(),
                        reason,
                    })?,
                )
            }
        };
        let schema_version = match optional(fields.schema_version, SCHEMA_VERSION)? {
            None => None,
            Some(value) => Some(
                value
                    .parse::<u32>()
                    .map_err(|_| EnvelopeError::InvalidSchemaVersion { value })?,
            ),
        };
        Ok(Envelope {
            id: required(fields.id, ID)?,
            source: required(fields.source, SOURCE)?,
            event_type: required(fields.event_type, TYPE)?,
            time,
            subject: optional(fields.subject, SUBJECT)?,
            data_content_type: optional(fields.content_type, CONTENT_TYPE)?,
            data_schema: optional(fields.data_schema, DATA_SCHEMA)?,
            correlation_id: optional(fields.correlation_id, CORRELATION_ID)?,
            causation_id: optional(fields.causation_id, CAUSATION_ID)?,
            traceparent: match optional(fields.traceparent, TRACEPARENT)? {
                Some(t) => Some(t),
                None => optional(fields.w3c_traceparent, W3C_TRACEPARENT)?,
            },
            tracestate: match optional(fields.tracestate, TRACESTATE)? {
                Some(t) => Some(t),
                None => optional(fields.w3c_tracestate, W3C_TRACESTATE)?,
            },
            schema_version,
            key,
            data: value.unwrap_or_default(),
            extensions,
        })
    }

    /// Reads an envelope from a consumed record.
    pub fn from_record(record: &ConsumedRecord) -> Result<Self, EnvelopeError> {
        Self::from_parts(record.key.clone(), record.value.clone(), &record.headers)
    }
}

/// Milliseconds since the epoch (negative before it): an envelope's time as a record
/// timestamp.
pub fn system_time_ms(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[derive(Default)]
struct Fields<'a> {
    id: Option<&'a Header>,
    source: Option<&'a Header>,
    event_type: Option<&'a Header>,
    spec_version: Option<&'a Header>,
    time: Option<&'a Header>,
    subject: Option<&'a Header>,
    content_type: Option<&'a Header>,
    data_schema: Option<&'a Header>,
    correlation_id: Option<&'a Header>,
    causation_id: Option<&'a Header>,
    traceparent: Option<&'a Header>,
    tracestate: Option<&'a Header>,
    schema_version: Option<&'a Header>,
    w3c_traceparent: Option<&'a Header>,
    w3c_tracestate: Option<&'a Header>,
}

fn optional(h: Option<&Header>, header: &'static str) -> Result<Option<String>, EnvelopeError> {
    match h {
        None => Ok(None),
        Some(h) => h
            .value_str()
            .map(|s| Some(s.to_owned()))
            .ok_or(EnvelopeError::NotText { header }),
    }
}

fn required(h: Option<&Header>, header: &'static str) -> Result<String, EnvelopeError> {
    match optional(h, header)? {
        None => Err(EnvelopeError::MissingAttribute { header }),
        Some(s) if s.is_empty() => Err(EnvelopeError::EmptyAttribute { header }),
        Some(s) => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample() -> Envelope {
        Envelope::new(
            "urn:shop:orders",
            "shop.order.placed",
            &b"{\"total\":3}"[..],
        )
        .with_key("order-1")
        .with_subject("order-1")
        .with_content_type("application/json")
        .with_data_schema("https://example.invalid/order.json")
        .with_correlation_id("corr-1")
        .with_causation_id("cause-1")
        .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .with_schema_version(2)
        .with_time(Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)))
        .with_extension("x-tenant", "acme")
    }

    #[test]
    fn new_envelopes_get_uuid_v7_ids() {
        let e = Envelope::new("s", "t", Bytes::new());
        let id = uuid::Uuid::parse_str(&e.id).unwrap();
        assert_eq!(id.get_version_num(), 7);
        assert_ne!(e.id, Envelope::new("s", "t", Bytes::new()).id);
    }

    #[test]
    fn encodes_binary_mode_headers() {
        let e = sample();
        let record = e.to_record();
        assert_eq!(record.key.as_deref(), Some(&b"order-1"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"{\"total\":3}"[..]));
        assert_eq!(record.timestamp, Some(1_700_000_000_123));
        let get = |k| crate::records::header_str(&record.headers, k);
        assert_eq!(get("ce_id"), Some(e.id.as_str()));
        assert_eq!(get("ce_source"), Some("urn:shop:orders"));
        assert_eq!(get("ce_type"), Some("shop.order.placed"));
        assert_eq!(get("ce_specversion"), Some("1.0"));
        assert_eq!(get("ce_time"), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(get("content-type"), Some("application/json"));
        assert_eq!(get("ce_schemaversion"), Some("2"));
        assert_eq!(get("ce_correlationid"), Some("corr-1"));
        assert_eq!(get("ce_causationid"), Some("cause-1"));
        assert_eq!(get("ce_traceparent"), get("traceparent"));
        assert!(get("traceparent").is_some());
        assert_eq!(get("x-tenant"), Some("acme"));
        assert_eq!(get("ce_datacontenttype"), None);
    }

    #[test]
    fn round_trips_through_a_record() {
        let e = sample();
        let r = e.to_record();
        let back = Envelope::from_parts(r.key, r.value, &r.headers).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn missing_required_attributes_are_named() {
        let headers = sample().to_headers();
        for name in ["ce_id", "ce_source", "ce_type", "ce_specversion"] {
            let without: Vec<_> = headers.iter().filter(|h| h.key != name).cloned().collect();
            let err = Envelope::from_parts(None, None, &without).unwrap_err();
            assert!(
                matches!(err, EnvelopeError::MissingAttribute { header } if header == name),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn rejects_empty_ids_other_versions_and_bad_times() {
        let replace = |key: &str, value: &str| {
            let mut headers = sample().to_headers();
            headers.retain(|h| h.key != key);
            headers.push(Header::new(key, value));
            Envelope::from_parts(None, None, &headers).unwrap_err()
        };
        assert_eq!(
            replace("ce_id", ""),
            EnvelopeError::EmptyAttribute { header: "ce_id" }
        );
        assert!(matches!(
            replace("ce_specversion", "0.3"),
            EnvelopeError::UnsupportedSpecVersion { .. }
        ));
        assert!(matches!(
            replace("ce_time", "yesterday"),
            EnvelopeError::InvalidTime { .. }
        ));
        assert!(matches!(
            replace("ce_schemaversion", "-1"),
            EnvelopeError::InvalidSchemaVersion { .. }
        ));
        let mut headers = sample().to_headers();
        headers.retain(|h| h.key != "ce_source");
        headers.push(Header {
            key: "ce_source".into(),
            value: Some(vec![0xff, 0xfe]),
        });
        assert_eq!(
            Envelope::from_parts(None, None, &headers).unwrap_err(),
            EnvelopeError::NotText {
                header: "ce_source"
            }
        );
    }

    #[test]
    fn keeps_unknown_headers_and_reads_plain_w3c_trace_headers() {
        let headers = vec![
            Header::new("ce_id", "1"),
            Header::new("ce_source", "s"),
            Header::new("ce_type", "t"),
            Header::new("ce_specversion", "1.0"),
            Header::new(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            Header::new("ce_futureattr", "x"),
            Header {
                key: "null-header".into(),
                value: None,
            },
        ];
        let e = Envelope::from_parts(None, None, &headers).unwrap();
        assert_eq!(
            e.traceparent.as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(e.extensions, headers[5..].to_vec());
        assert_eq!(e.time, None);
        assert!(e.data.is_empty());
        let again = Envelope::from_parts(None, None, &e.to_headers()).unwrap();
        assert_eq!(again, e);
    }
}
