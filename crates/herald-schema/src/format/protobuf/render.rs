//! The normalised .proto rendering of a file descriptor: the identity form of a Protobuf
//! schema, and its text when it was registered as a serialized descriptor.

use std::fmt::Write as _;

use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    field_descriptor_proto::{Label, Type},
};

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
