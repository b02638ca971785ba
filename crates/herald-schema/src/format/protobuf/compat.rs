//! Protobuf compatibility under the wire rules (the table in the parent module).

use std::collections::HashMap;

use prost_reflect::{Cardinality, FileDescriptor, Kind, MessageDescriptor};

use super::ProtoSchema;
use crate::format::Incompatibility;

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
