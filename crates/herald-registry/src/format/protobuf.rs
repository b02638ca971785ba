//! Protobuf: parsing (protox, from .proto text or a base64 `FileDescriptorProto` as
//! Confluent's serializers send), a normalised rendering of the descriptor as the
//! identity form, and compatibility under the wire rules of the Protobuf language guide
//! ("Updating a message type").
//!
//! | rule | why |
//! | --- | --- |
//! | `MESSAGE_REMOVED` | a message of the old schema is gone (wire-format message indexes and readers depend on it) |
//! | `PACKAGE_CHANGED` | every full name changes |
//! | `FIELD_KIND_CHANGED` | a field number's wire encoding differs (varint, zigzag, fixed32, fixed64, float, double, length-delimited) or a string/bytes field became a message |
//! | `FIELD_SCALAR_KIND_NARROWED` | a 64-bit varint or zigzag field is read as 32 bits (values truncate) |
//! | `FIELD_NAMED_TYPE_CHANGED` | a message or enum field names another type |
//! | `FIELD_CARDINALITY_CHANGED` | a field became repeated or stopped being repeated |
//! | `REQUIRED_FIELD_ADDED` | the reader requires (proto2) a field the writer may not send |
//! | `FIELD_REMOVED_WITHOUT_RESERVATION` | the new schema drops a field without reserving its number, so it could be reused with another meaning |
//! | `RESERVED_FIELD_REUSED` | the new schema uses a number or name the old one reserved |
//! | `MULTIPLE_FIELDS_MOVED_TO_ONEOF` | two or more existing fields moved into one oneof (setting one clears the others) |

use std::{collections::HashMap, fmt::Write as _};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use prost::Message as _;
use prost_reflect::{Cardinality, DescriptorPool, FileDescriptor, Kind, MessageDescriptor};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    field_descriptor_proto::{Label, Type},
};
use protox::file::{File, FileResolver, GoogleFileResolver};

use super::Incompatibility;

/// Name given to a schema registered as .proto text (its own name is not sent).
const MAIN_FILE: &str = "schema.proto";

/// A parsed Protobuf schema: its file in a pool with its imports.
#[derive(Debug, Clone)]
pub(crate) struct ProtoSchema {
    pub(crate) file: FileDescriptor,
    pub(crate) canonical: String,
}

impl ProtoSchema {
    /// The file as a serialized `FileDescriptorProto`, base64 (`?format=serialized`).
    pub(crate) fn serialized(&self) -> String {
        BASE64.encode(self.file.file_descriptor_proto().encode_to_vec())
    }

    /// Message indexes of the wire format for a message of this file (path of indexes
    /// from the top-level message list down through nested messages).
    pub(crate) fn message_indexes(&self, full_name: &str) -> Option<Vec<i32>> {
        fn walk(msgs: Vec<MessageDescriptor>, name: &str, path: &mut Vec<i32>) -> bool {
            for (i, m) in msgs.into_iter().enumerate() {
                path.push(i as i32);
                if m.full_name() == name || walk(m.child_messages().collect(), name, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        let mut path = Vec::new();
        walk(self.file.messages().collect(), full_name, &mut path).then_some(path)
    }

    /// The message at wire-format `indexes`.
    pub(crate) fn message_at(&self, indexes: &[i32]) -> Option<MessageDescriptor> {
        let mut msgs: Vec<MessageDescriptor> = self.file.messages().collect();
        let mut found = None;
        for &i in indexes {
            let m = msgs.get(usize::try_from(i).ok()?)?.clone();
            msgs = m.child_messages().collect();
            found = Some(m);
        }
        found
    }
}

/// The text of a schema as a file: .proto source, or a base64 `FileDescriptorProto`.
fn to_file(name: &str, text: &str) -> Result<File, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty()
        && !trimmed.contains(char::is_whitespace)
        && let Ok(bytes) = BASE64.decode(trimmed)
        && let Ok(mut proto) = FileDescriptorProto::decode(bytes.as_slice())
    {
        if proto.name.as_deref().unwrap_or("").is_empty() {
            proto.name = Some(name.to_string());
        }
        return Ok(File::from_file_descriptor_proto(proto));
    }
    File::from_source(name, text).map_err(|e| e.to_string())
}

struct MemoryResolver {
    files: HashMap<String, File>,
    google: GoogleFileResolver,
}

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.files.get(name) {
            Some(f) => Ok(f.clone()),
            None => self.google.open_file(name),
        }
    }
}

/// Parses `text`; `references` are (import path, text) of the referenced schemas.
pub(crate) fn parse(text: &str, references: &[(&str, &str)]) -> Result<ProtoSchema, String> {
    let mut files = HashMap::new();
    for (name, ref_text) in references {
        let file = to_file(name, ref_text).map_err(|e| format!("reference {name:?}: {e}"))?;
        files.insert(name.to_string(), file);
    }
    let main = to_file(MAIN_FILE, text)?;
    let main_name = main.name().to_string();
    if files.contains_key(&main_name) {
        files.remove(&main_name);
    }
    files.insert(main_name.clone(), main);
    let mut compiler = protox::Compiler::with_file_resolver(MemoryResolver {
        files,
        google: GoogleFileResolver::new(),
    });
    compiler.include_imports(true);
    compiler.open_file(&main_name).map_err(|e| e.to_string())?;
    let pool: DescriptorPool = compiler.descriptor_pool();
    let file = pool
        .get_file_by_name(&main_name)
        .ok_or_else(|| format!("{main_name} missing after compiling"))?;
    let canonical = render(file.file_descriptor_proto());
    Ok(ProtoSchema { file, canonical })
}

// ---------------------------------------------------------------- rendering

/// The normalised .proto text of a file: declarations in a fixed order (imports sorted,
/// fields by number, nested types and enums by name), full type names, comments and
/// formatting dropped.
pub(crate) fn render(file: &FileDescriptorProto) -> String {
    let mut out = String::new();
    let syntax = match file.syntax() {
        "" => "proto2",
        s => s,
    };
    let _ = writeln!(out, "syntax = \"{syntax}\";");
    if let Some(p) = file.package.as_deref().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "package {p};");
    }
    let mut imports: Vec<&String> = file.dependency.iter().collect();
    imports.sort();
    for i in imports {
        let _ = writeln!(out, "import \"{i}\";");
    }
    if let Some(o) = &file.options {
        let mut opts = Vec::new();
        if let Some(v) = &o.java_package {
            opts.push(format!("option java_package = {v:?};"));
        }
        if let Some(v) = &o.java_outer_classname {
            opts.push(format!("option java_outer_classname = {v:?};"));
        }
        if let Some(v) = o.java_multiple_files {
            opts.push(format!("option java_multiple_files = {v};"));
        }
        if let Some(v) = &o.go_package {
            opts.push(format!("option go_package = {v:?};"));
        }
        if let Some(v) = &o.csharp_namespace {
            opts.push(format!("option csharp_namespace = {v:?};"));
        }
        opts.sort();
        for o in opts {
            let _ = writeln!(out, "{o}");
        }
    }
    let proto3 = syntax == "proto3";
    for m in &file.message_type {
        render_message(&mut out, m, 0, proto3);
    }
    let mut enums: Vec<&EnumDescriptorProto> = file.enum_type.iter().collect();
    enums.sort_by_key(|e| e.name().to_string());
    for e in enums {
        render_enum(&mut out, e, 0);
    }
    let mut services: Vec<_> = file.service.iter().collect();
    services.sort_by_key(|s| s.name().to_string());
    for s in services {
        let _ = writeln!(out, "service {} {{", s.name());
        let mut methods: Vec<_> = s.method.iter().collect();
        methods.sort_by_key(|m| m.name().to_string());
        for m in methods {
            let _ = writeln!(
                out,
                "  rpc {}({}{}) returns ({}{});",
                m.name(),
                if m.client_streaming() { "stream " } else { "" },
                m.input_type(),
                if m.server_streaming() { "stream " } else { "" },
                m.output_type()
            );
        }
        let _ = writeln!(out, "}}");
    }
    out
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

fn scalar_name(t: Type) -> &'static str {
    match t {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Group => "group",
        Type::Message => "message",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Enum => "enum",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
    }
}

fn field_type(f: &FieldDescriptorProto) -> String {
    match f.r#type() {
        Type::Message | Type::Enum | Type::Group => f.type_name().to_string(),
        t => scalar_name(t).to_string(),
    }
}

fn render_field(
    out: &mut String,
    f: &FieldDescriptorProto,
    msg: &DescriptorProto,
    depth: usize,
    proto3: bool,
    in_oneof: bool,
) {
    let pad = indent(depth);
    // A map field is a repeated field of a nested map-entry message.
    if f.label() == Label::Repeated && f.r#type() == Type::Message {
        let entry_name = f.type_name().rsplit('.').next().unwrap_or_default();
        if let Some(entry) = msg
            .nested_type
            .iter()
            .find(|n| n.name() == entry_name && n.options.as_ref().is_some_and(|o| o.map_entry()))
        {
            let k = entry
                .field
                .iter()
                .find(|x| x.number() == 1)
                .map(field_type)
                .unwrap_or_default();
            let v = entry
                .field
                .iter()
                .find(|x| x.number() == 2)
                .map(field_type)
                .unwrap_or_default();
            let _ = writeln!(out, "{pad}map<{k}, {v}> {} = {};", f.name(), f.number());
            return;
        }
    }
    let label = match f.label() {
        Label::Repeated => "repeated ",
        Label::Required => "required ",
        Label::Optional if in_oneof => "",
        Label::Optional if proto3 && !f.proto3_optional() => "",
        Label::Optional => "optional ",
    };
    let mut opts = Vec::new();
    if let Some(o) = &f.options {
        if let Some(p) = o.packed {
            opts.push(format!("packed = {p}"));
        }
        if o.deprecated() {
            opts.push("deprecated = true".to_string());
        }
    }
    if let Some(d) = f.default_value.as_deref() {
        let quoted = matches!(f.r#type(), Type::String | Type::Bytes);
        opts.push(if quoted {
            format!("default = {d:?}")
        } else {
            format!("default = {d}")
        });
    }
    let opts = if opts.is_empty() {
        String::new()
    } else {
        format!(" [{}]", opts.join(", "))
    };
    let _ = writeln!(
        out,
        "{pad}{label}{} {} = {}{opts};",
        field_type(f),
        f.name(),
        f.number()
    );
}

fn render_message(out: &mut String, m: &DescriptorProto, depth: usize, proto3: bool) {
    let pad = indent(depth);
    let _ = writeln!(out, "{pad}message {} {{", m.name());
    let inner = indent(depth + 1);
    let mut ranges: Vec<(i32, i32)> = m
        .reserved_range
        .iter()
        .map(|r| (r.start(), r.end() - 1))
        .collect();
    ranges.sort();
    if !ranges.is_empty() {
        let parts: Vec<String> = ranges
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else if b >= 536_870_911 {
                    format!("{a} to max")
                } else {
                    format!("{a} to {b}")
                }
            })
            .collect();
        let _ = writeln!(out, "{inner}reserved {};", parts.join(", "));
    }
    let mut names: Vec<&String> = m.reserved_name.iter().collect();
    names.sort();
    if !names.is_empty() {
        let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        let _ = writeln!(out, "{inner}reserved {};", quoted.join(", "));
    }
    let mut fields: Vec<&FieldDescriptorProto> = m.field.iter().collect();
    fields.sort_by_key(|f| f.number());
    let mut oneofs_done = vec![false; m.oneof_decl.len()];
    for f in &fields {
        match f.oneof_index {
            // proto3 `optional` is a synthetic oneof: render as a plain optional field.
            Some(i) if !f.proto3_optional() => {
                let i = i as usize;
                if oneofs_done.get(i).copied().unwrap_or(true) {
                    continue;
                }
                oneofs_done[i] = true;
                let _ = writeln!(out, "{inner}oneof {} {{", m.oneof_decl[i].name());
                for of in fields
                    .iter()
                    .filter(|x| x.oneof_index == Some(i as i32) && !x.proto3_optional())
                {
                    render_field(out, of, m, depth + 2, proto3, true);
                }
                let _ = writeln!(out, "{inner}}}");
            }
            _ => render_field(out, f, m, depth + 1, proto3, false),
        }
    }
    let mut nested: Vec<&DescriptorProto> = m
        .nested_type
        .iter()
        .filter(|n| !n.options.as_ref().is_some_and(|o| o.map_entry()))
        .collect();
    nested.sort_by_key(|n| n.name().to_string());
    for n in nested {
        render_message(out, n, depth + 1, proto3);
    }
    let mut enums: Vec<&EnumDescriptorProto> = m.enum_type.iter().collect();
    enums.sort_by_key(|e| e.name().to_string());
    for e in enums {
        render_enum(out, e, depth + 1);
    }
    let _ = writeln!(out, "{pad}}}");
}

fn render_enum(out: &mut String, e: &EnumDescriptorProto, depth: usize) {
    let pad = indent(depth);
    let _ = writeln!(out, "{pad}enum {} {{", e.name());
    if e.options.as_ref().is_some_and(|o| o.allow_alias()) {
        let _ = writeln!(out, "{pad}  option allow_alias = true;");
    }
    let mut values: Vec<_> = e.value.iter().collect();
    values.sort_by_key(|v| (v.number(), v.name().to_string()));
    for v in values {
        let _ = writeln!(out, "{pad}  {} = {};", v.name(), v.number());
    }
    let _ = writeln!(out, "{pad}}}");
}

// ---------------------------------------------------------------- compatibility

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Varint,
    ZigZag,
    Fixed32,
    Fixed64,
    Float,
    Double,
    Text,
    Message,
}

fn wire(k: &Kind) -> (Wire, bool) {
    match k {
        Kind::Int32 | Kind::Uint32 | Kind::Bool | Kind::Enum(_) => (Wire::Varint, false),
        Kind::Int64 | Kind::Uint64 => (Wire::Varint, true),
        Kind::Sint32 => (Wire::ZigZag, false),
        Kind::Sint64 => (Wire::ZigZag, true),
        Kind::Fixed32 | Kind::Sfixed32 => (Wire::Fixed32, false),
        Kind::Fixed64 | Kind::Sfixed64 => (Wire::Fixed64, true),
        Kind::Float => (Wire::Float, false),
        Kind::Double => (Wire::Double, true),
        Kind::String | Kind::Bytes => (Wire::Text, false),
        Kind::Message(_) => (Wire::Message, false),
    }
}

fn kind_name(k: &Kind) -> String {
    match k {
        Kind::Message(m) => m.full_name().to_string(),
        Kind::Enum(e) => e.full_name().to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn reserves(m: &MessageDescriptor, number: u32) -> bool {
    m.reserved_ranges().any(|r| r.contains(&number))
}

/// Whether data written with `writer` reads correctly with `reader`; `reader_is_new`
/// says which of the two is the newer schema (for the rules about evolution).
pub(crate) fn can_read(
    reader: &ProtoSchema,
    writer: &ProtoSchema,
    reader_is_new: bool,
) -> Vec<Incompatibility> {
    let mut out = Vec::new();
    let (old, new) = if reader_is_new {
        (writer, reader)
    } else {
        (reader, writer)
    };
    if old.file.package_name() != new.file.package_name() {
        out.push(Incompatibility::new(
            "PACKAGE_CHANGED",
            "/".into(),
            format!(
                "the package changed from {:?} to {:?}",
                old.file.package_name(),
                new.file.package_name()
            ),
        ));
    }
    let new_pool = new.file.parent_pool();
    for old_msg in file_messages(&old.file) {
        let Some(new_msg) = new_pool
            .get_message_by_name(old_msg.full_name())
            .filter(|m| m.parent_file() == new.file)
        else {
            out.push(Incompatibility::new(
                "MESSAGE_REMOVED",
                format!("/{}", old_msg.full_name()),
                format!("message {} of the old schema is gone", old_msg.full_name()),
            ));
            continue;
        };
        let (r, w) = if reader_is_new {
            (&new_msg, &old_msg)
        } else {
            (&old_msg, &new_msg)
        };
        check_message(r, w, &old_msg, &new_msg, &mut out);
    }
    out
}

fn file_messages(file: &FileDescriptor) -> Vec<MessageDescriptor> {
    fn walk(m: MessageDescriptor, out: &mut Vec<MessageDescriptor>) {
        for c in m.child_messages() {
            if !c.is_map_entry() {
                walk(c, out);
            }
        }
        out.push(m);
    }
    let mut out = Vec::new();
    for m in file.messages() {
        walk(m, &mut out);
    }
    out
}

fn check_message(
    reader: &MessageDescriptor,
    writer: &MessageDescriptor,
    old: &MessageDescriptor,
    new: &MessageDescriptor,
    out: &mut Vec<Incompatibility>,
) {
    let name = reader.full_name();
    let path = |f: &str| format!("/{name}/{f}");
    for wf in writer.fields() {
        let Some(rf) = reader.get_field(wf.number()) else {
            continue;
        };
        let p = path(rf.name());
        let (wk, rk) = (wf.kind(), rf.kind());
        let ((ww, w64), (rw, r64)) = (wire(&wk), wire(&rk));
        let kinds_ok =
            ww == rw || (ww == Wire::Message && rw == Wire::Text && matches!(rk, Kind::Bytes));
        if !kinds_ok {
            out.push(Incompatibility::new(
                "FIELD_KIND_CHANGED",
                p.clone(),
                format!("field {} ({}) is {} in the writer and {} in the reader: different wire encodings", wf.number(), rf.name(), kind_name(&wk), kind_name(&rk)),
            ));
            continue;
        }
        if w64 && !r64 && matches!(rw, Wire::Varint | Wire::ZigZag) {
            out.push(Incompatibility::new(
                "FIELD_SCALAR_KIND_NARROWED",
                p.clone(),
                format!(
                    "field {} ({}) is {} in the writer and {} in the reader: values truncate",
                    wf.number(),
                    rf.name(),
                    kind_name(&wk),
                    kind_name(&rk)
                ),
            ));
        }
        let named = |k: &Kind| match k {
            Kind::Message(m) => Some(m.full_name().to_string()),
            Kind::Enum(e) => Some(e.full_name().to_string()),
            _ => None,
        };
        if let (Some(a), Some(b)) = (named(&wk), named(&rk))
            && a != b
            && !(wf.is_map() && rf.is_map())
        {
            out.push(Incompatibility::new(
                "FIELD_NAMED_TYPE_CHANGED",
                p.clone(),
                format!(
                    "field {} ({}) is of type {a} in the writer and {b} in the reader",
                    wf.number(),
                    rf.name()
                ),
            ));
        }
        if (wf.cardinality() == Cardinality::Repeated)
            != (rf.cardinality() == Cardinality::Repeated)
        {
            out.push(Incompatibility::new(
                "FIELD_CARDINALITY_CHANGED",
                p.clone(),
                format!(
                    "field {} ({}) is repeated in only one of the schemas",
                    wf.number(),
                    rf.name()
                ),
            ));
        }
    }
    for rf in reader.fields() {
        if rf.cardinality() == Cardinality::Required
            && writer
                .get_field(rf.number())
                .is_none_or(|wf| wf.cardinality() != Cardinality::Required)
        {
            out.push(Incompatibility::new(
                "REQUIRED_FIELD_ADDED",
                path(rf.name()),
                format!(
                    "the reader requires field {} ({}), which the writer does not always send",
                    rf.number(),
                    rf.name()
                ),
            ));
        }
    }
    // Evolution rules, old -> new.
    for of in old.fields() {
        if new.get_field(of.number()).is_none() && !reserves(new, of.number()) {
            out.push(Incompatibility::new(
                "FIELD_REMOVED_WITHOUT_RESERVATION",
                format!("/{}/{}", old.full_name(), of.name()),
                format!("field {} ({}) was removed without `reserved {};`, so its number could be reused with another meaning", of.number(), of.name(), of.number()),
            ));
        }
    }
    for nf in new.fields() {
        let reused_number = reserves(old, nf.number());
        let reused_name = old.reserved_names().any(|n| n == nf.name());
        if reused_number || reused_name {
            out.push(Incompatibility::new(
                "RESERVED_FIELD_REUSED",
                format!("/{}/{}", new.full_name(), nf.name()),
                format!(
                    "field {} ({}) uses a {} the old schema reserved",
                    nf.number(),
                    nf.name(),
                    if reused_number { "number" } else { "name" }
                ),
            ));
        }
    }
    // Existing fields moved into one new oneof.
    let mut moved: HashMap<String, Vec<String>> = HashMap::new();
    for nf in new.fields() {
        if let (Some(oneof), Some(of)) = (nf.containing_oneof(), old.get_field(nf.number()))
            && !oneof.is_synthetic()
            && of.containing_oneof().is_none_or(|o| o.is_synthetic())
        {
            moved
                .entry(oneof.name().to_string())
                .or_default()
                .push(nf.name().to_string());
        }
    }
    let mut moved: Vec<_> = moved.into_iter().filter(|(_, f)| f.len() > 1).collect();
    moved.sort();
    for (oneof, fields) in moved {
        out.push(Incompatibility::new(
            "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
            format!("/{}/{oneof}", new.full_name()),
            format!(
                "fields {fields:?} moved into oneof {oneof}: setting one now clears the others"
            ),
        ));
    }
}
