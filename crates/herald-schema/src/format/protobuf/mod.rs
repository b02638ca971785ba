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

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use prost::Message as _;
use prost_reflect::{DescriptorPool, FileDescriptor, MessageDescriptor};
use prost_types::FileDescriptorProto;
use protox::file::{File, FileResolver, GoogleFileResolver};

mod compat;
mod render;

pub(crate) use compat::can_read;
use render::render;

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
