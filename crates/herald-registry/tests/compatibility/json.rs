//! JSON Schema cases: the reader must accept every instance the writer accepts.

use herald_registry::CompatibilityLevel::{
    self, Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive,
};

use super::{Case, breaks, ok};

const NONE: CompatibilityLevel = CompatibilityLevel::None;

const OPEN_A: &str = r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}"#;
const OPEN_AB: &str = r#"{"type":"object","properties":{"id":{"type":"string"},"cents":{"type":"integer"}},"required":["id"]}"#;
const CLOSED_A: &str = r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"],"additionalProperties":false}"#;
const CLOSED_AB: &str = r#"{"type":"object","properties":{"id":{"type":"string"},"cents":{"type":"integer"}},"required":["id"],"additionalProperties":false}"#;
const NUMBER: &str = r#"{"type":"object","properties":{"amount":{"type":"number"}}}"#;
const INTEGER: &str = r#"{"type":"object","properties":{"amount":{"type":"integer"}}}"#;
const ENUM_2: &str = r#"{"type":"string","enum":["NEW","PAID"]}"#;
const ENUM_3: &str = r#"{"type":"string","enum":["NEW","PAID","SHIPPED"]}"#;
const LEN_10: &str = r#"{"type":"string","maxLength":10}"#;
const LEN_20: &str = r#"{"type":"string","maxLength":20}"#;
const MIN_0: &str = r#"{"type":"integer","minimum":0}"#;
const MIN_1: &str = r#"{"type":"integer","minimum":1}"#;
const ITEMS_NUMBER: &str = r#"{"type":"array","items":{"type":"number"}}"#;
const ITEMS_INTEGER: &str = r#"{"type":"array","items":{"type":"integer"}}"#;
const DESCRIBED: &str = r#"{"type":"object","description":"an order","properties":{"id":{"type":"string","description":"its id"}},"required":["id"]}"#;
const ONEOF_2: &str = r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#;
const ONEOF_3: &str = r#"{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"boolean"}]}"#;
const REF_NUMBER: &str = r##"{"$defs":{"Money":{"type":"number"}},"type":"object","properties":{"total":{"$ref":"#/$defs/Money"}}}"##;
const REF_INTEGER: &str = r##"{"$defs":{"Money":{"type":"integer"}},"type":"object","properties":{"total":{"$ref":"#/$defs/Money"}}}"##;
const NUMBER_2: &str =
    r#"{"type":"object","title":"v2","properties":{"amount":{"type":"number"}}}"#;
const INTEGER_2: &str =
    r#"{"type":"object","title":"v2","properties":{"amount":{"type":"integer"}}}"#;
const DESCRIBED_2: &str =
    r#"{"type":"object","title":"Order","properties":{"id":{"type":"string"}},"required":["id"]}"#;
const STRING: &str = r#"{"type":"string"}"#;
const STRING_OR_NULL: &str = r#"{"type":["string","null"]}"#;

/// Every JSON Schema case.
pub(crate) const CASES: &[Case] = &[
    ok(
        "a property added to an old closed model",
        Backward,
        &[CLOSED_A],
        CLOSED_AB,
    ),
    breaks(
        "a constrained property added to an old open model",
        Backward,
        &[OPEN_A],
        OPEN_AB,
        "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    breaks(
        "a newly required property",
        Backward,
        &[CLOSED_A],
        r#"{"type":"object","properties":{"id":{"type":"string"},"cents":{"type":"integer"}},"required":["id","cents"],"additionalProperties":false}"#,
        "REQUIRED_PROPERTY_ADDED",
    ),
    ok(
        "a property removed from an open reader",
        Backward,
        &[OPEN_AB],
        OPEN_A,
    ),
    breaks(
        "a property removed from a closed reader",
        Backward,
        &[CLOSED_AB],
        CLOSED_A,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    ok("integer widened to number", Backward, &[INTEGER], NUMBER),
    breaks(
        "number narrowed to integer",
        Backward,
        &[NUMBER],
        INTEGER,
        "TYPE_NARROWED",
    ),
    breaks(
        "an old integer reader cannot read numbers",
        Forward,
        &[INTEGER],
        NUMBER,
        "TYPE_NARROWED",
    ),
    ok(
        "an enum value added: the new reader accepts all old values",
        Backward,
        &[ENUM_2],
        ENUM_3,
    ),
    breaks(
        "an enum value the old reader refuses",
        Forward,
        &[ENUM_2],
        ENUM_3,
        "ENUM_NARROWED",
    ),
    breaks(
        "maxLength decreased",
        Backward,
        &[LEN_20],
        LEN_10,
        "MAX_LENGTH_DECREASED",
    ),
    ok("maxLength increased", Backward, &[LEN_10], LEN_20),
    breaks(
        "minimum increased",
        Backward,
        &[MIN_0],
        MIN_1,
        "MINIMUM_INCREASED",
    ),
    breaks(
        "additionalProperties closed on an open writer",
        Backward,
        &[OPEN_A],
        CLOSED_A,
        "ADDITIONAL_PROPERTIES_NARROWED",
    ),
    breaks(
        "array items narrowed",
        Backward,
        &[ITEMS_NUMBER],
        ITEMS_INTEGER,
        "TYPE_NARROWED",
    ),
    ok("only descriptions changed", Full, &[OPEN_A], DESCRIBED),
    breaks(
        "a property added to a closed model fails the forward half of FULL",
        Full,
        &[CLOSED_A],
        CLOSED_AB,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    ok("a oneOf branch added", Backward, &[ONEOF_2], ONEOF_3),
    breaks(
        "a oneOf branch removed",
        Backward,
        &[ONEOF_3],
        ONEOF_2,
        "COMBINED_SCHEMA_BRANCH_MISSING",
    ),
    breaks(
        "a type narrowed behind a $ref",
        Backward,
        &[REF_NUMBER],
        REF_INTEGER,
        "TYPE_NARROWED",
    ),
    ok(
        "null added to a type list",
        Backward,
        &[STRING],
        STRING_OR_NULL,
    ),
    ok(
        "BACKWARD checks only the latest version",
        Backward,
        &[NUMBER, INTEGER],
        INTEGER_2,
    ),
    breaks(
        "BACKWARD_TRANSITIVE: an old version had a wider type",
        BackwardTransitive,
        &[NUMBER, INTEGER],
        INTEGER_2,
        "TYPE_NARROWED",
    ),
    ok(
        "BACKWARD_TRANSITIVE passes when every version fits",
        BackwardTransitive,
        &[INTEGER, INTEGER_2],
        NUMBER,
    ),
    ok(
        "FORWARD checks only the latest version",
        Forward,
        &[INTEGER, NUMBER],
        NUMBER_2,
    ),
    breaks(
        "FORWARD_TRANSITIVE: the first version refuses the new data",
        ForwardTransitive,
        &[INTEGER, NUMBER],
        NUMBER_2,
        "TYPE_NARROWED",
    ),
    ok(
        "FORWARD_TRANSITIVE passes when every version accepts the new data",
        ForwardTransitive,
        &[NUMBER, NUMBER_2],
        INTEGER,
    ),
    breaks(
        "FULL_TRANSITIVE checks every version both ways",
        FullTransitive,
        &[INTEGER, NUMBER],
        NUMBER_2,
        "TYPE_NARROWED",
    ),
    ok(
        "FULL_TRANSITIVE passes for identical constraints",
        FullTransitive,
        &[OPEN_A, DESCRIBED],
        DESCRIBED_2,
    ),
    ok("NONE accepts any change", NONE, &[OPEN_A], STRING),
];
