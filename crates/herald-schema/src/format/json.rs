//! JSON Schema: validation of the schema itself (jsonschema, against its draft's
//! meta-schema, with references resolved), the identity form (canonical JSON), and
//! compatibility as set inclusion: a reader schema can read a writer's data when every
//! instance valid under the writer is valid under the reader.
//!
//! | rule | why the reader refuses some instance the writer allows |
//! | --- | --- |
//! | `TYPE_NARROWED` | a type the writer allows is not among the reader's (`integer` is inside `number`) |
//! | `SCHEMA_NARROWED` | the reader is `false` |
//! | `REQUIRED_PROPERTY_ADDED` | the reader requires a property the writer does not |
//! | `PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL` | the reader constrains a property the writer's open object allows with any value |
//! | `PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL` | the writer's property is gone from a reader with `additionalProperties: false` |
//! | `ADDITIONAL_PROPERTIES_NARROWED` | the writer allows unknown properties the reader refuses |
//! | `ENUM_NARROWED` | a writer enum value (or an unrestricted writer) is missing from the reader's `enum` |
//! | `CONST_CHANGED` | the reader's `const` differs, or the writer had none |
//! | `MAXIMUM_DECREASED`, `MAX_LENGTH_DECREASED`, `MAX_ITEMS_DECREASED`, `MAX_PROPERTIES_DECREASED` (and `MINIMUM_INCREASED`, ...) | a bound is tighter in the reader, or new |
//! | `PATTERN_CHANGED` | the reader has a `pattern` the writer does not share |
//! | `ITEMS_NARROWED` | array items: the same rules, recursively |
//! | `COMBINED_SCHEMA_BRANCH_MISSING` | a writer instance matches no branch of the reader's `oneOf`/`anyOf` |

use std::collections::HashMap;

use jsonschema::Resource;
use serde_json::{Map, Value};

use super::{Incompatibility, canonical_json};

/// The base URI relative `$ref`s resolve against, so that a reference named
/// `customer.json` is found as `json-schema:///customer.json`.
const BASE: &str = "json-schema:///";

/// A parsed JSON Schema and the schemas its references name.
#[derive(Debug, Clone)]
pub(crate) struct JsonSchema {
    pub(crate) value: Value,
    refs: HashMap<String, Value>,
    pub(crate) canonical: String,
}

/// Parses and checks `text`; `references` are (name, text) of the referenced schemas.
pub(crate) fn parse(text: &str, references: &[(&str, &str)]) -> Result<JsonSchema, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if !value.is_object() && !value.is_boolean() {
        return Err("a JSON Schema is an object or a boolean".into());
    }
    jsonschema::meta::validate(&value)
        .map_err(|e| format!("not a valid JSON Schema: {e} (at {})", e.instance_path))?;
    let mut refs = HashMap::new();
    let mut options = jsonschema::options();
    for (name, text) in references {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("referenced schema {name:?} is not JSON: {e}"))?;
        for uri in [
            name.to_string(),
            format!("{BASE}{}", name.trim_start_matches('/')),
        ] {
            let resource = Resource::from_contents(v.clone())
                .map_err(|e| format!("referenced schema {name:?}: {e}"))?;
            options = options.with_resource(uri, resource);
        }
        refs.insert(name.to_string(), v);
    }
    options
        .with_base_uri(BASE)
        .build(&value)
        .map_err(|e| format!("cannot compile the schema: {e}"))?;
    Ok(JsonSchema {
        canonical: canonical_json(&value),
        value,
        refs,
    })
}

/// Whether every instance valid under `writer` is valid under `reader`.
pub(crate) fn can_read(reader: &JsonSchema, writer: &JsonSchema) -> Vec<Incompatibility> {
    let mut c = Checker {
        out: Vec::new(),
        depth: 0,
    };
    c.check(
        Side {
            doc: writer,
            root: &writer.value,
        },
        &writer.value,
        Side {
            doc: reader,
            root: &reader.value,
        },
        &reader.value,
        "#",
    );
    c.out
}

#[derive(Clone, Copy)]
struct Side<'a> {
    doc: &'a JsonSchema,
    root: &'a Value,
}

impl<'a> Side<'a> {
    /// Follows `$ref` (local pointers and named references) until a schema without one.
    fn deref(mut self, mut v: &'a Value) -> (Side<'a>, &'a Value) {
        for _ in 0..32 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let (doc_part, pointer) = r.split_once('#').unwrap_or((r, ""));
            let root = if doc_part.is_empty() {
                self.root
            } else {
                let name = doc_part.strip_prefix(BASE).unwrap_or(doc_part);
                match self
                    .doc
                    .refs
                    .get(name)
                    .or_else(|| self.doc.refs.get(doc_part))
                {
                    Some(root) => root,
                    None => break,
                }
            };
            let Some(target) = root.pointer(pointer) else {
                break;
            };
            self = Side {
                doc: self.doc,
                root,
            };
            v = target;
        }
        (self, v)
    }
}

const ALL_TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

fn types(v: &Value) -> Option<Vec<&str>> {
    match v.get("type")? {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(a) => Some(a.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// A schema that accepts every instance.
fn is_open(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| {
            matches!(
                k.as_str(),
                "$schema"
                    | "$id"
                    | "title"
                    | "description"
                    | "$comment"
                    | "default"
                    | "examples"
                    | "$defs"
                    | "definitions"
            )
        }),
        _ => false,
    }
}

fn object(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

/// `additionalProperties` of an object schema: `None` is open.
fn additional(v: &Value) -> Option<&Value> {
    v.get("additionalProperties").filter(|a| !is_open(a))
}

struct Checker {
    out: Vec<Incompatibility>,
    depth: usize,
}

const BOUNDS: [(&str, bool, &str); 10] = [
    ("maximum", true, "MAXIMUM_DECREASED"),
    ("exclusiveMaximum", true, "EXCLUSIVE_MAXIMUM_DECREASED"),
    ("maxLength", true, "MAX_LENGTH_DECREASED"),
    ("maxItems", true, "MAX_ITEMS_DECREASED"),
    ("maxProperties", true, "MAX_PROPERTIES_DECREASED"),
    ("minimum", false, "MINIMUM_INCREASED"),
    ("exclusiveMinimum", false, "EXCLUSIVE_MINIMUM_INCREASED"),
    ("minLength", false, "MIN_LENGTH_INCREASED"),
    ("minItems", false, "MIN_ITEMS_INCREASED"),
    ("minProperties", false, "MIN_PROPERTIES_INCREASED"),
];

impl Checker {
    fn fail(&mut self, rule: &'static str, path: &str, message: String) {
        self.out
            .push(Incompatibility::new(rule, path.to_string(), message));
    }

    fn matches(&self, ws: Side<'_>, w: &Value, rs: Side<'_>, r: &Value, path: &str) -> bool {
        let mut probe = Checker {
            out: Vec::new(),
            depth: self.depth,
        };
        probe.check(ws, w, rs, r, path);
        probe.out.is_empty()
    }

    fn check(&mut self, ws: Side<'_>, w: &Value, rs: Side<'_>, r: &Value, path: &str) {
        if self.depth > 64 {
            return; // recursive schemas: deeper levels repeat what was checked
        }
        self.depth += 1;
        let (ws, w) = ws.deref(w);
        let (rs, r) = rs.deref(r);
        self.check_resolved(ws, w, rs, r, path);
        self.depth -= 1;
    }

    fn check_resolved(&mut self, ws: Side<'_>, w: &Value, rs: Side<'_>, r: &Value, path: &str) {
        if is_open(r) || w == &Value::Bool(false) {
            return;
        }
        if r == &Value::Bool(false) {
            return self.fail(
                "SCHEMA_NARROWED",
                path,
                "the reader accepts nothing (false)".into(),
            );
        }
        // Combined schemas of the reader: each writer alternative must fit some branch.
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = r.get(key).and_then(Value::as_array) {
                let writer_alts: Vec<&Value> = match w
                    .get("oneOf")
                    .or_else(|| w.get("anyOf"))
                    .and_then(Value::as_array)
                {
                    Some(alts) => alts.iter().collect(),
                    None => vec![w],
                };
                for (i, alt) in writer_alts.into_iter().enumerate() {
                    if !branches.iter().any(|b| self.matches(ws, alt, rs, b, path)) {
                        self.fail(
                            "COMBINED_SCHEMA_BRANCH_MISSING",
                            path,
                            format!("the writer's alternative {i} matches no branch of the reader's {key}"),
                        );
                    }
                }
            }
        }
        if let Some(all) = r.get("allOf").and_then(Value::as_array) {
            for (i, b) in all.iter().enumerate() {
                self.check(ws, w, rs, b, &format!("{path}/allOf/{i}"));
            }
        }
        if w.get("oneOf").or_else(|| w.get("anyOf")).is_some()
            && r.get("oneOf").or_else(|| r.get("anyOf")).is_none()
        {
            // A combined writer against a plain reader: every writer branch must fit.
            if let Some(alts) = w
                .get("oneOf")
                .or_else(|| w.get("anyOf"))
                .and_then(Value::as_array)
            {
                for alt in alts {
                    let mut merged = alt.clone();
                    if let (Some(m), Some(wm)) = (merged.as_object_mut(), object(w)) {
                        for (k, v) in wm {
                            if k != "oneOf" && k != "anyOf" {
                                m.entry(k.clone()).or_insert(v.clone());
                            }
                        }
                    }
                    self.check(ws, &merged, rs, r, path);
                }
                return;
            }
        }
        self.check_types(w, r, path);
        self.check_values(w, r, path);
        self.check_bounds(w, r, path);
        self.check_object(ws, w, rs, r, path);
        self.check_array(ws, w, rs, r, path);
    }

    fn check_types(&mut self, w: &Value, r: &Value, path: &str) {
        let Some(rt) = types(r) else { return };
        let wt = types(w).unwrap_or_else(|| ALL_TYPES.to_vec());
        let lost: Vec<&str> = wt
            .into_iter()
            .filter(|t| !(rt.contains(t) || (*t == "integer" && rt.contains(&"number"))))
            .collect();
        if !lost.is_empty() {
            self.fail(
                "TYPE_NARROWED",
                path,
                format!("the writer allows type {lost:?}, which the reader's type {rt:?} refuses"),
            );
        }
    }

    fn check_values(&mut self, w: &Value, r: &Value, path: &str) {
        if let Some(re) = r.get("enum").and_then(Value::as_array) {
            match w.get("enum").and_then(Value::as_array) {
                Some(we) => {
                    let missing: Vec<&Value> = we.iter().filter(|v| !re.contains(v)).collect();
                    if !missing.is_empty() {
                        self.fail(
                            "ENUM_NARROWED",
                            path,
                            format!(
                                "the writer's enum values {} are not in the reader's enum",
                                Value::from(missing.into_iter().cloned().collect::<Vec<_>>())
                            ),
                        );
                    }
                }
                None if w.get("const").is_some_and(|c| re.contains(c)) => {}
                None => self.fail(
                    "ENUM_NARROWED",
                    path,
                    "the reader adds an enum the writer did not have".into(),
                ),
            }
        }
        if let Some(rc) = r.get("const")
            && w.get("const") != Some(rc)
        {
            self.fail(
                "CONST_CHANGED",
                path,
                format!("the reader requires the constant {rc}"),
            );
        }
        if let Some(rp) = r.get("pattern")
            && w.get("pattern") != Some(rp)
        {
            self.fail(
                "PATTERN_CHANGED",
                path,
                format!("the reader requires the pattern {rp}, the writer does not"),
            );
        }
    }

    fn check_bounds(&mut self, w: &Value, r: &Value, path: &str) {
        for (key, is_max, rule) in BOUNDS {
            let Some(rv) = r.get(key).and_then(Value::as_f64) else {
                continue;
            };
            match w.get(key).and_then(Value::as_f64) {
                Some(wv) if (is_max && wv <= rv) || (!is_max && wv >= rv) => {}
                Some(wv) => self.fail(
                    rule,
                    path,
                    format!("{key} is {wv} in the writer and {rv} in the reader"),
                ),
                None => self.fail(rule, path, format!("the reader adds {key} = {rv}")),
            }
        }
    }

    fn check_object(&mut self, ws: Side<'_>, w: &Value, rs: Side<'_>, r: &Value, path: &str) {
        let empty = Map::new();
        let wp = w
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let rp = r
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let w_required: Vec<&str> = w
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(req) = r.get("required").and_then(Value::as_array) {
            for name in req.iter().filter_map(Value::as_str) {
                if !w_required.contains(&name) {
                    self.fail(
                        "REQUIRED_PROPERTY_ADDED",
                        &format!("{path}/properties/{name}"),
                        format!("the reader requires property '{name}', which the writer does not"),
                    );
                }
            }
        }
        let w_add = additional(w);
        let r_add = additional(r);
        for (name, rschema) in rp {
            let p = format!("{path}/properties/{name}");
            match wp.get(name) {
                Some(wschema) => self.check(ws, wschema, rs, rschema, &p),
                None => match w_add {
                    Some(Value::Bool(false)) => {}
                    Some(wa) => self.check(ws, wa, rs, rschema, &p),
                    None if is_open(rschema) => {}
                    None => self.fail(
                        "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                        &p,
                        format!(
                            "the reader constrains property '{name}', which the writer's open object allows with any value (close the writer with additionalProperties: false)"
                        ),
                    ),
                },
            }
        }
        for (name, wschema) in wp {
            if rp.contains_key(name) {
                continue;
            }
            let p = format!("{path}/properties/{name}");
            match r_add {
                None => {}
                Some(Value::Bool(false)) => self.fail(
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    &p,
                    format!("the writer's property '{name}' is gone from the reader, which refuses additional properties"),
                ),
                Some(ra) => self.check(ws, wschema, rs, ra, &p),
            }
        }
        match (w_add, r_add) {
            (_, None) | (Some(Value::Bool(false)), _) => {}
            (None, Some(_)) => self.fail(
                "ADDITIONAL_PROPERTIES_NARROWED",
                path,
                "the writer allows additional properties, the reader restricts them".into(),
            ),
            (Some(wa), Some(ra)) => {
                self.check(ws, wa, rs, ra, &format!("{path}/additionalProperties"))
            }
        }
    }

    fn check_array(&mut self, ws: Side<'_>, w: &Value, rs: Side<'_>, r: &Value, path: &str) {
        let Some(ri) = r.get("items") else { return };
        let open = Value::Bool(true);
        let wi = w.get("items").unwrap_or(&open);
        let before = self.out.len();
        self.check(ws, wi, rs, ri, &format!("{path}/items"));
        if self.out.len() > before && w.get("items").is_none() {
            self.out.truncate(before);
            self.fail(
                "ITEMS_NARROWED",
                path,
                "the reader restricts array items the writer left open".into(),
            );
        }
    }
}
