//! Protobuf cases: the wire rules of the language guide's "Updating a message type".

use herald_registry::CompatibilityLevel::{
    self, Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive,
};

use super::{Case, breaks, ok};

const NONE: CompatibilityLevel = CompatibilityLevel::None;

const BASE: &str =
    "syntax = \"proto3\"; package shop; message Order { string id = 1; int32 qty = 2; }";
const ADDED: &str = "syntax = \"proto3\"; package shop; message Order { string id = 1; int32 qty = 2; string note = 3; }";
const ADDED_2: &str = "syntax = \"proto3\"; package shop; message Order { string id = 1; int32 qty = 2; string note = 3; string memo = 5; }";
const REMOVED_RESERVED: &str = "syntax = \"proto3\"; package shop; message Order { reserved 2; reserved \"qty\"; string id = 1; }";
const REMOVED: &str = "syntax = \"proto3\"; package shop; message Order { string id = 1; }";
const QTY_STRING: &str =
    "syntax = \"proto3\"; package shop; message Order { string id = 1; string qty = 2; }";
const QTY_INT64: &str =
    "syntax = \"proto3\"; package shop; message Order { string id = 1; int64 qty = 2; }";
const QTY_SINT32: &str =
    "syntax = \"proto3\"; package shop; message Order { string id = 1; sint32 qty = 2; }";
const ID_BYTES: &str =
    "syntax = \"proto3\"; package shop; message Order { bytes id = 1; int32 qty = 2; }";
const RENAMED_FIELD: &str =
    "syntax = \"proto3\"; package shop; message Order { string order_id = 1; int32 qty = 2; }";
const QTY_REPEATED: &str =
    "syntax = \"proto3\"; package shop; message Order { string id = 1; repeated int32 qty = 2; }";
const WITH_A: &str = "syntax = \"proto3\"; package shop; message A { int32 x = 1; } message B { int32 x = 1; } message Order { A part = 1; }";
const WITH_B: &str = "syntax = \"proto3\"; package shop; message A { int32 x = 1; } message B { int32 x = 1; } message Order { B part = 1; }";
const TWO_MESSAGES: &str = "syntax = \"proto3\"; package shop; message Order { string id = 1; int32 qty = 2; } message Refund { string id = 1; }";
const OTHER_PACKAGE: &str =
    "syntax = \"proto3\"; package store; message Order { string id = 1; int32 qty = 2; }";
const RESERVED_3: &str = "syntax = \"proto3\"; package shop; message Order { reserved 3; string id = 1; int32 qty = 2; }";
const REUSES_3: &str = "syntax = \"proto3\"; package shop; message Order { string id = 1; int32 qty = 2; string note = 3; }";
const P2: &str = "syntax = \"proto2\"; package shop; message Order { required string id = 1; }";
const P2_REQUIRED_ADDED: &str = "syntax = \"proto2\"; package shop; message Order { required string id = 1; required int32 qty = 2; }";
const P2_OPTIONAL_ADDED: &str = "syntax = \"proto2\"; package shop; message Order { required string id = 1; optional int32 qty = 2; }";
const INTO_ONEOF_BOTH: &str = "syntax = \"proto3\"; package shop; message Order { oneof what { string id = 1; int32 qty = 2; } }";
const INTO_ONEOF_ONE: &str = "syntax = \"proto3\"; package shop; message Order { oneof what { string id = 1; } int32 qty = 2; }";
const NESTED_ADDED: &str = "syntax = \"proto3\"; package shop; message Order { string id = 1; int32 qty = 2; Line line = 4; message Line { string sku = 1; } enum Kind { KIND_UNSPECIFIED = 0; } }";
// Version history for the transitive cases: `qty` was a string, then dropped (without a
// reservation, so the second version was registered with NONE), then reintroduced.
const V1_QTY_STRING: &str = QTY_STRING;
const V2_NO_QTY: &str = REMOVED;
const V3_QTY_INT: &str = BASE;

/// Every Protobuf case.
pub(crate) const CASES: &[Case] = &[
    ok("a field added", Backward, &[BASE], ADDED),
    ok(
        "a field removed with its number and name reserved",
        Backward,
        &[BASE],
        REMOVED_RESERVED,
    ),
    breaks(
        "a field removed without a reservation",
        Backward,
        &[BASE],
        REMOVED,
        "FIELD_REMOVED_WITHOUT_RESERVATION",
    ),
    breaks(
        "int32 became string: another wire type",
        Backward,
        &[BASE],
        QTY_STRING,
        "FIELD_KIND_CHANGED",
    ),
    ok(
        "int32 widened to int64 for the new reader",
        Backward,
        &[BASE],
        QTY_INT64,
    ),
    breaks(
        "an old int32 reader truncates int64 values",
        Forward,
        &[BASE],
        QTY_INT64,
        "FIELD_SCALAR_KIND_NARROWED",
    ),
    breaks(
        "int32 became sint32: zigzag is another encoding",
        Backward,
        &[BASE],
        QTY_SINT32,
        "FIELD_KIND_CHANGED",
    ),
    ok(
        "string and bytes share the wire type",
        Full,
        &[BASE],
        ID_BYTES,
    ),
    ok("a field renamed, number kept", Full, &[BASE], RENAMED_FIELD),
    breaks(
        "a message field names another message",
        Backward,
        &[WITH_A],
        WITH_B,
        "FIELD_NAMED_TYPE_CHANGED",
    ),
    breaks(
        "a singular field became repeated",
        Backward,
        &[BASE],
        QTY_REPEATED,
        "FIELD_CARDINALITY_CHANGED",
    ),
    breaks(
        "a message removed",
        Backward,
        &[TWO_MESSAGES],
        BASE,
        "MESSAGE_REMOVED",
    ),
    breaks(
        "the package changed",
        Backward,
        &[BASE],
        OTHER_PACKAGE,
        "PACKAGE_CHANGED",
    ),
    breaks(
        "a reserved number reused",
        Backward,
        &[RESERVED_3],
        REUSES_3,
        "RESERVED_FIELD_REUSED",
    ),
    breaks(
        "a proto2 required field added",
        Backward,
        &[P2],
        P2_REQUIRED_ADDED,
        "REQUIRED_FIELD_ADDED",
    ),
    ok(
        "a proto2 optional field added",
        Full,
        &[P2],
        P2_OPTIONAL_ADDED,
    ),
    breaks(
        "two existing fields moved into one oneof",
        Backward,
        &[BASE],
        INTO_ONEOF_BOTH,
        "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
    ),
    ok(
        "one existing field moved into a new oneof",
        Backward,
        &[BASE],
        INTO_ONEOF_ONE,
    ),
    ok(
        "a nested message and an enum added",
        Full,
        &[BASE],
        NESTED_ADDED,
    ),
    ok(
        "a field added is compatible both ways",
        Full,
        &[BASE],
        ADDED,
    ),
    ok(
        "BACKWARD checks only the latest version",
        Backward,
        &[V1_QTY_STRING, V2_NO_QTY],
        V3_QTY_INT,
    ),
    breaks(
        "BACKWARD_TRANSITIVE: version 1 wrote qty as a string",
        BackwardTransitive,
        &[V1_QTY_STRING, V2_NO_QTY],
        V3_QTY_INT,
        "FIELD_KIND_CHANGED",
    ),
    ok(
        "BACKWARD_TRANSITIVE passes when every version fits",
        BackwardTransitive,
        &[BASE, ADDED],
        ADDED_2,
    ),
    ok(
        "FORWARD checks only the latest version",
        Forward,
        &[V1_QTY_STRING, V2_NO_QTY],
        V3_QTY_INT,
    ),
    breaks(
        "FORWARD_TRANSITIVE: version 1 reads qty as a string",
        ForwardTransitive,
        &[V1_QTY_STRING, V2_NO_QTY],
        V3_QTY_INT,
        "FIELD_KIND_CHANGED",
    ),
    ok(
        "FORWARD_TRANSITIVE passes when every version reads the new data",
        ForwardTransitive,
        &[BASE, ADDED],
        ADDED_2,
    ),
    breaks(
        "FULL_TRANSITIVE checks every version both ways",
        FullTransitive,
        &[V1_QTY_STRING, V2_NO_QTY],
        V3_QTY_INT,
        "FIELD_KIND_CHANGED",
    ),
    ok(
        "FULL_TRANSITIVE passes for added fields",
        FullTransitive,
        &[BASE, ADDED],
        ADDED_2,
    ),
    ok("NONE accepts any change", NONE, &[BASE], QTY_STRING),
];
