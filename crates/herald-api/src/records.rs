//! REST produce and consume: JSON records in, decoded records out.
//!
//! Keys, values and header values travel as UTF-8 text (`key`, `value`) or as base64
//! (`key_base64`, `value_base64`) when they are arbitrary bytes; a JSON `value` that is
//! not a string is stored as its compact JSON text. On the way out each is given as text
//! when it is valid UTF-8 and as base64 otherwise, and as `null` when absent.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of `POST /api/v1/topics/{name}/records`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    /// The records, in order; at least one.
    pub records: Vec<RecordIn>,
}

/// One record to produce.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordIn {
    /// The key as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key as base64 (instead of `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// The value: a string is stored as its text, any other JSON as its compact text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The value as base64 (instead of `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// The headers.
    #[serde(default, skip_serializing_if = "HeadersIn::is_empty")]
    pub headers: HeadersIn,
    /// The partition; by the key's hash (as Kafka's default partitioner) when absent,
    /// round robin when there is no key either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Milliseconds since the Unix epoch; now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// Headers as an object (`{"k": "v"}`) or, to repeat keys or send bytes, a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeadersIn {
    /// `{"k": "v"}`: text values, keys once each.
    Map(BTreeMap<String, Option<String>>),
    /// `[{"key": "k", "value": "v"}]`.
    List(Vec<HeaderIn>),
}

impl HeadersIn {
    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        match self {
            HeadersIn::Map(m) => m.is_empty(),
            HeadersIn::List(l) => l.is_empty(),
        }
    }
}

impl Default for HeadersIn {
    fn default() -> Self {
        HeadersIn::List(Vec::new())
    }
}

/// One header in list form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderIn {
    /// The header's name.
    pub key: String,
    /// The value as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value as base64 (instead of `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

/// Where one produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordOffset {
    /// The partition.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// Response of a produce: one entry per record, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    /// The topic.
    pub topic: String,
    /// Where each record landed, in request order.
    pub offsets: Vec<RecordOffset>,
}

/// Query of `GET /api/v1/topics/{name}/partitions/{partition}/records`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeQuery {
    /// An offset, `earliest` (the default) or `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// At most this many bytes of batches (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
    /// Wait this long for records when there are none yet (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// Response of a consume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumeResponse {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset still kept.
    pub log_start_offset: i64,
    /// The offset the next record will get.
    pub high_watermark: i64,
    /// The offset to ask for next.
    pub next_offset: i64,
    /// The records, in offset order.
    pub records: Vec<RecordOut>,
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RecordWire", into = "RecordWire")]
pub struct RecordOut {
    /// Its offset.
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The key, `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<HeaderOut>,
    /// The value, `None` for a null value (a tombstone).
    pub value: Option<Vec<u8>>,
}

/// A consumed header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HeaderWire", into = "HeaderWire")]
pub struct HeaderOut {
    /// The header's name.
    pub key: String,
    /// Its value, `None` for a null value.
    pub value: Option<Vec<u8>>,
}

/// The wire form of bytes: `Some(Some(text))`, `Some(None)` (JSON `null`), or absent
/// with the base64 twin field set.
type Text = Option<Option<String>>;

/// Bytes as the wire gives them: text when UTF-8, else base64 in the `_base64` field.
fn to_wire(bytes: Option<Vec<u8>>) -> (Text, Option<String>) {
    match bytes {
        None => (Some(None), None),
        Some(b) => match String::from_utf8(b) {
            Ok(s) => (Some(Some(s)), None),
            Err(e) => (None, Some(BASE64.encode(e.as_bytes()))),
        },
    }
}

fn from_wire(name: &str, text: Text, base64: Option<String>) -> Result<Option<Vec<u8>>, String> {
    match (text.flatten(), base64) {
        (Some(_), Some(_)) => Err(format!("both {name} and {name}_base64 are set")),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(b)) => BASE64
            .decode(b.as_bytes())
            .map(Some)
            .map_err(|e| format!("{name}_base64 is not valid base64: {e}")),
        (None, None) => Ok(None),
    }
}

#[derive(Serialize, Deserialize)]
struct RecordWire {
    offset: i64,
    timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    #[serde(default)]
    headers: Vec<HeaderOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

impl From<RecordOut> for RecordWire {
    fn from(r: RecordOut) -> Self {
        let (key, key_base64) = to_wire(r.key);
        let (value, value_base64) = to_wire(r.value);
        RecordWire {
            offset: r.offset,
            timestamp: r.timestamp,
            key,
            key_base64,
            headers: r.headers,
            value,
            value_base64,
        }
    }
}

impl TryFrom<RecordWire> for RecordOut {
    type Error = String;

    fn try_from(w: RecordWire) -> Result<Self, String> {
        Ok(RecordOut {
            offset: w.offset,
            timestamp: w.timestamp,
            key: from_wire("key", w.key, w.key_base64)?,
            headers: w.headers,
            value: from_wire("value", w.value, w.value_base64)?,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct HeaderWire {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

impl From<HeaderOut> for HeaderWire {
    fn from(h: HeaderOut) -> Self {
        let (value, value_base64) = to_wire(h.value);
        HeaderWire {
            key: h.key,
            value,
            value_base64,
        }
    }
}

impl TryFrom<HeaderWire> for HeaderOut {
    type Error = String;

    fn try_from(w: HeaderWire) -> Result<Self, String> {
        Ok(HeaderOut {
            key: w.key,
            value: from_wire("value", w.value, w.value_base64)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> RecordOut {
        RecordOut {
            offset: 7,
            timestamp: 1000,
            key: key.map(<[u8]>::to_vec),
            headers: vec![HeaderOut {
                key: "h".into(),
                value: Some(vec![0xff]),
            }],
            value: value.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn bytes_are_text_when_utf8_base64_otherwise_and_null_when_absent() {
        let r = record(Some(b"k"), None);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"offset": 7, "timestamp": 1000, "key": "k", "value": null,
                   "headers": [{"key": "h", "value_base64": "/w=="}]})
        );
        let r = record(Some(&[0, 0xfe]), Some(b"v"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["key_base64"], "AP4=");
        assert!(v.get("key").is_none(), "{v}");
        assert_eq!(v["value"], "v");
    }

    #[test]
    fn records_read_back_as_written() {
        for r in [record(None, None), record(Some(&[0xc3]), Some(b"{}"))] {
            let text = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<RecordOut>(&text).unwrap(), r);
        }
        let bad = json!({"offset": 1, "timestamp": 1, "key": "a", "key_base64": "YQ=="});
        let e = serde_json::from_value::<RecordOut>(bad).unwrap_err();
        assert!(e.to_string().contains("both key and key_base64"), "{e}");
    }

    #[test]
    fn a_produce_body_omits_what_is_not_given() {
        let body = ProduceBody {
            records: vec![RecordIn {
                value: Some(json!("v")),
                ..RecordIn::default()
            }],
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"records": [{"value": "v"}]})
        );
    }
}
