//! Avro: parsing (apache-avro), the identity form, and schema resolution as the Avro
//! specification defines it ("Schema Resolution"), checked without data.
//!
//! apache-avro's own `schema_compatibility` module is not used: it ignores enum defaults
//! (a reader enum with a default reads unknown symbols), follows named references only
//! by pointer, and reports no path. The rules here are the specification's, each with a
//! name that appears in the incompatibility message:
//!
//! | rule | the reader cannot read the writer's data because |
//! | --- | --- |
//! | `TYPE_MISMATCH` | the types differ and no promotion applies (int→long/float/double, long→float/double, float→double, string↔bytes) |
//! | `NAME_MISMATCH` | a record, enum or fixed has another full name and no alias of the reader matches |
//! | `READER_FIELD_MISSING_DEFAULT_VALUE` | a reader field is absent from the writer and has no default |
//! | `MISSING_ENUM_SYMBOLS` | a writer symbol is absent from the reader enum, which has no default |
//! | `FIXED_SIZE_MISMATCH` | fixed sizes differ |
//! | `MISSING_UNION_BRANCH` | a writer union branch (or a non-union writer) matches no reader branch |

use std::collections::{HashMap, HashSet};

use apache_avro::{
    Schema,
    schema::{Name, RecordSchema},
};

use super::{Incompatibility, canonical_json};

/// A parsed Avro schema with the named types it can reach (its own and its references').
#[derive(Debug, Clone)]
pub(crate) struct AvroSchema {
    pub(crate) schema: Schema,
    /// The referenced schemas, for encoding and decoding with named references.
    pub(crate) schemata: Vec<Schema>,
    names: HashMap<String, Schema>,
    pub(crate) canonical: String,
}

/// Parses `text` with `references` (the referenced schemas' texts, dependencies first).
pub(crate) fn parse(text: &str, references: &[&str]) -> Result<AvroSchema, String> {
    let (schema, schemata) = if references.is_empty() {
        (
            Schema::parse_str(text).map_err(|e| e.to_string())?,
            Vec::new(),
        )
    } else {
        Schema::parse_str_with_list(text, references).map_err(|e| e.to_string())?
    };
    let mut names = HashMap::new();
    for s in schemata.iter().chain([&schema]) {
        collect_names(s, &mut names);
    }
    let value = serde_json::to_value(&schema).map_err(|e| e.to_string())?;
    Ok(AvroSchema {
        canonical: canonical_json(&value),
        schema,
        schemata,
        names,
    })
}

fn collect_names(schema: &Schema, names: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(r)
            if names
                .insert(r.name.fullname(None), schema.clone())
                .is_none() =>
        {
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

/// Whether data written with `writer` can be read with `reader`.
pub(crate) fn can_read(reader: &AvroSchema, writer: &AvroSchema) -> Vec<Incompatibility> {
    let mut c = Checker {
        reader,
        writer,
        seen: HashSet::new(),
        out: Vec::new(),
    };
    c.check(&writer.schema, &reader.schema, "");
    c.out
}

struct Checker<'a> {
    reader: &'a AvroSchema,
    writer: &'a AvroSchema,
    seen: HashSet<(String, String)>,
    out: Vec<Incompatibility>,
}

/// The underlying (non-logical) kind of a schema, for resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array,
    Map,
    Union,
    Record,
    Enum,
    Fixed,
}

fn kind(s: &Schema) -> Kind {
    match s {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Kind::Long,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::Bytes | Schema::BigDecimal => Kind::Bytes,
        Schema::Decimal(d) => kind(&d.inner),
        Schema::String | Schema::Uuid => Kind::String,
        Schema::Array(_) => Kind::Array,
        Schema::Map(_) => Kind::Map,
        Schema::Union(_) => Kind::Union,
        Schema::Record(_) => Kind::Record,
        Schema::Enum(_) => Kind::Enum,
        Schema::Fixed(_) | Schema::Duration => Kind::Fixed,
        // Resolved before kind() is asked.
        Schema::Ref { .. } => Kind::Record,
    }
}

fn type_name(s: &Schema) -> String {
    match s {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        Schema::Ref { name } => name.fullname(None),
        other => format!("{:?}", kind(other)).to_lowercase(),
    }
}

fn promotes(writer: Kind, reader: Kind) -> bool {
    use Kind::*;
    writer == reader
        || matches!(
            (writer, reader),
            (Int, Long | Float | Double)
                | (Long, Float | Double)
                | (Float, Double)
                | (String, Bytes)
                | (Bytes, String)
        )
}

fn names_match(
    writer: &Name,
    reader: &Name,
    reader_aliases: Option<&Vec<apache_avro::schema::Alias>>,
) -> bool {
    let w = writer.fullname(None);
    if reader.fullname(None) == w || reader.name == writer.name {
        return true;
    }
    reader_aliases.is_some_and(|aliases| {
        aliases
            .iter()
            .any(|a| a.fullname(reader.namespace.clone()) == w || a.name() == writer.name)
    })
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

impl Checker<'_> {
    fn resolve<'s>(&'s self, s: &'s Schema, writer_side: bool) -> &'s Schema {
        match s {
            Schema::Ref { name } => {
                let names = if writer_side {
                    &self.writer.names
                } else {
                    &self.reader.names
                };
                names.get(&name.fullname(None)).unwrap_or(s)
            }
            _ => s,
        }
    }

    fn fail(&mut self, rule: &'static str, path: &str, message: String) {
        self.out.push(Incompatibility::new(rule, at(path), message));
    }

    /// Whether `writer` resolves to `reader` without recording anything.
    fn matches(&self, writer: &Schema, reader: &Schema, path: &str) -> bool {
        let mut probe = Checker {
            reader: self.reader,
            writer: self.writer,
            seen: self.seen.clone(),
            out: Vec::new(),
        };
        probe.check(writer, reader, path);
        probe.out.is_empty()
    }

    fn check(&mut self, writer: &Schema, reader: &Schema, path: &str) {
        let writer = self.resolve(writer, true).clone();
        let reader = self.resolve(reader, false).clone();
        match (&writer, &reader) {
            (Schema::Union(w), _) => {
                for (i, branch) in w.variants().iter().enumerate() {
                    let readable = match &reader {
                        Schema::Union(r) => {
                            r.variants().iter().any(|rb| self.matches(branch, rb, path))
                        }
                        _ => self.matches(branch, &reader, path),
                    };
                    if !readable {
                        if let Schema::Union(_) = reader {
                            self.fail(
                                "MISSING_UNION_BRANCH",
                                path,
                                format!(
                                    "the writer's union branch {i} ({}) matches no branch of the reader's union",
                                    type_name(branch)
                                ),
                            );
                        } else if w.variants().len() == 1 {
                            self.check(branch, &reader, path);
                        } else {
                            self.fail(
                                "MISSING_UNION_BRANCH",
                                path,
                                format!(
                                    "the writer's union branch {i} ({}) cannot be read as the reader's {}",
                                    type_name(branch),
                                    type_name(&reader)
                                ),
                            );
                        }
                    }
                }
            }
            (_, Schema::Union(r)) => {
                if !r
                    .variants()
                    .iter()
                    .any(|rb| self.matches(&writer, rb, path))
                {
                    self.fail(
                        "MISSING_UNION_BRANCH",
                        path,
                        format!(
                            "the writer's {} matches no branch of the reader's union",
                            type_name(&writer)
                        ),
                    );
                }
            }
            (Schema::Record(w), Schema::Record(r)) => self.records(w, r, path),
            (Schema::Enum(w), Schema::Enum(r)) => {
                if !names_match(&w.name, &r.name, r.aliases.as_ref()) {
                    return self.name_mismatch(&writer, &reader, path);
                }
                let missing: Vec<&String> = w
                    .symbols
                    .iter()
                    .filter(|s| !r.symbols.contains(s))
                    .collect();
                if !missing.is_empty() && r.default.is_none() {
                    self.fail(
                        "MISSING_ENUM_SYMBOLS",
                        path,
                        format!(
                            "the reader's enum {} lacks the writer's symbols {missing:?} and has no default",
                            r.name.fullname(None)
                        ),
                    );
                }
            }
            (Schema::Fixed(w), Schema::Fixed(r)) => {
                if !names_match(&w.name, &r.name, r.aliases.as_ref()) {
                    return self.name_mismatch(&writer, &reader, path);
                }
                if w.size != r.size {
                    self.fail(
                        "FIXED_SIZE_MISMATCH",
                        path,
                        format!(
                            "fixed {} is {} bytes in the writer and {} in the reader",
                            r.name.fullname(None),
                            w.size,
                            r.size
                        ),
                    );
                }
            }
            (Schema::Array(w), Schema::Array(r)) => {
                let p = format!("{path}/items");
                self.check(&w.items, &r.items, &p)
            }
            (Schema::Map(w), Schema::Map(r)) => {
                let p = format!("{path}/values");
                self.check(&w.types, &r.types, &p)
            }
            _ => {
                let (wk, rk) = (kind(&writer), kind(&reader));
                let complex = |k| {
                    matches!(
                        k,
                        Kind::Record | Kind::Enum | Kind::Fixed | Kind::Array | Kind::Map
                    )
                };
                if complex(wk) || complex(rk) || !promotes(wk, rk) {
                    self.fail(
                        "TYPE_MISMATCH",
                        path,
                        format!(
                            "the writer's {} cannot be read as the reader's {}",
                            type_name(&writer),
                            type_name(&reader)
                        ),
                    );
                }
            }
        }
    }

    fn name_mismatch(&mut self, writer: &Schema, reader: &Schema, path: &str) {
        self.fail(
            "NAME_MISMATCH",
            path,
            format!(
                "the writer's {} and the reader's {} have different names and no alias matches",
                type_name(writer),
                type_name(reader)
            ),
        );
    }

    fn records(&mut self, w: &RecordSchema, r: &RecordSchema, path: &str) {
        if !names_match(&w.name, &r.name, r.aliases.as_ref()) {
            return self.name_mismatch(
                &Schema::Record(w.clone()),
                &Schema::Record(r.clone()),
                path,
            );
        }
        if !self
            .seen
            .insert((w.name.fullname(None), r.name.fullname(None)))
        {
            return; // a recursive type already being checked
        }
        for field in &r.fields {
            let candidates = std::iter::once(&field.name).chain(field.aliases.iter().flatten());
            let written = candidates
                .filter_map(|n| w.fields.iter().find(|wf| &wf.name == n))
                .next();
            let p = format!("{path}/{}", field.name);
            match written {
                Some(wf) => self.check(&wf.schema, &field.schema, &p),
                None if field.default.is_none() => self.fail(
                    "READER_FIELD_MISSING_DEFAULT_VALUE",
                    &p,
                    format!(
                        "the reader's field '{}' of record {} is not in the writer's schema and has no default",
                        field.name,
                        r.name.fullname(None)
                    ),
                ),
                None => {}
            }
        }
    }
}
