//! Avro cases: the reader resolves the writer's data as the Avro specification says.

use herald_registry::CompatibilityLevel::{
    self, Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive,
};

use super::{Case, breaks, ok};

const NONE: CompatibilityLevel = CompatibilityLevel::None;

const A: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
const A_B_DEFAULT: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"cents","type":"long","default":0}]}"#;
const A_B: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"cents","type":"long"}]}"#;
const A_B_INT: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"cents","type":"int"}]}"#;
const A_C: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"note","type":"string"}]}"#;
const A_B_C_DEFAULT: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"cents","type":"long","default":0},{"name":"note","type":"string","default":""}]}"#;
const ENUM_2: &str = r#"{"type":"enum","name":"Status","symbols":["NEW","PAID"]}"#;
const ENUM_3: &str = r#"{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]}"#;
const ENUM_2_DEFAULT: &str =
    r#"{"type":"enum","name":"Status","symbols":["NEW","PAID"],"default":"NEW"}"#;
const RENAMED: &str =
    r#"{"type":"record","name":"Purchase","fields":[{"name":"id","type":"string"}]}"#;
const RENAMED_ALIAS: &str = r#"{"type":"record","name":"Purchase","aliases":["Order"],"fields":[{"name":"id","type":"string"}]}"#;
const FIELD_ALIAS: &str = r#"{"type":"record","name":"Order","fields":[{"name":"order_id","aliases":["id"],"type":"string"}]}"#;
const FIXED_4: &str = r#"{"type":"fixed","name":"Hash","size":4}"#;
const FIXED_8: &str = r#"{"type":"fixed","name":"Hash","size":8}"#;
const UNION_2: &str = r#"["null","string"]"#;
const UNION_3: &str = r#"["null","string","int"]"#;
const NESTED: &str = r#"{"type":"record","name":"Order","fields":[{"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"name","type":"string"}]}}]}"#;
const NESTED_ADDED: &str = r#"{"type":"record","name":"Order","fields":[{"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"name","type":"string"},{"name":"email","type":"string"}]}}]}"#;
const MAP_INT: &str = r#"{"type":"map","values":"int"}"#;
const MAP_DOUBLE: &str = r#"{"type":"map","values":"double"}"#;
const ARRAY_LONG: &str = r#"{"type":"array","items":"long"}"#;
const ARRAY_INT: &str = r#"{"type":"array","items":"int"}"#;

/// Every Avro case.
pub(crate) const CASES: &[Case] = &[
    ok(
        "a field added with a default is read from old data",
        Backward,
        &[A],
        A_B_DEFAULT,
    ),
    breaks(
        "a field added without a default cannot be read from old data",
        Backward,
        &[A],
        A_B,
        "READER_FIELD_MISSING_DEFAULT_VALUE",
    ),
    ok(
        "a removed field is ignored by the new reader",
        Backward,
        &[A_B],
        A,
    ),
    breaks(
        "an old reader cannot fill a removed field that had no default",
        Forward,
        &[A_B],
        A,
        "READER_FIELD_MISSING_DEFAULT_VALUE",
    ),
    ok(
        "an old reader fills a removed field from its default",
        Forward,
        &[A_B_DEFAULT],
        A,
    ),
    ok("int is promoted to long", Backward, &[A_B_INT], A_B),
    breaks(
        "long is not demoted to int",
        Backward,
        &[A_B],
        A_B_INT,
        "TYPE_MISMATCH",
    ),
    breaks(
        "an old int reader cannot read the new long",
        Forward,
        &[A_B_INT],
        A_B,
        "TYPE_MISMATCH",
    ),
    ok(
        "a new enum symbol: the new reader knows all old symbols",
        Backward,
        &[ENUM_2],
        ENUM_3,
    ),
    breaks(
        "a new enum symbol is unknown to the old reader",
        Forward,
        &[ENUM_2],
        ENUM_3,
        "MISSING_ENUM_SYMBOLS",
    ),
    ok(
        "a new enum symbol is read as the old reader's enum default",
        Forward,
        &[ENUM_2_DEFAULT],
        ENUM_3,
    ),
    breaks(
        "a renamed record without an alias",
        Backward,
        &[A],
        RENAMED,
        "NAME_MISMATCH",
    ),
    ok(
        "a renamed record with the old name as alias",
        Backward,
        &[A],
        RENAMED_ALIAS,
    ),
    ok(
        "a renamed field with the old name as alias",
        Backward,
        &[A],
        FIELD_ALIAS,
    ),
    breaks(
        "a fixed of another size",
        Full,
        &[FIXED_4],
        FIXED_8,
        "FIXED_SIZE_MISMATCH",
    ),
    ok(
        "a union widened by a branch reads old data",
        Backward,
        &[UNION_2],
        UNION_3,
    ),
    breaks(
        "a union branch the old reader lacks",
        Forward,
        &[UNION_2],
        UNION_3,
        "MISSING_UNION_BRANCH",
    ),
    ok(
        "string and bytes read each other",
        Full,
        &[r#""string""#],
        r#""bytes""#,
    ),
    ok(
        "a field added with a default is compatible both ways",
        Full,
        &[A],
        A_B_DEFAULT,
    ),
    breaks(
        "a field added without a default fails FULL",
        Full,
        &[A],
        A_B,
        "READER_FIELD_MISSING_DEFAULT_VALUE",
    ),
    breaks(
        "a field nested in a record added without a default (path names it)",
        Backward,
        &[NESTED],
        NESTED_ADDED,
        "/customer/email",
    ),
    ok(
        "map values promote int to double",
        Backward,
        &[MAP_INT],
        MAP_DOUBLE,
    ),
    breaks(
        "array items do not demote long to int",
        Backward,
        &[ARRAY_LONG],
        ARRAY_INT,
        "TYPE_MISMATCH",
    ),
    ok(
        "BACKWARD checks only the latest version",
        Backward,
        &[A, A_B_DEFAULT],
        A_B,
    ),
    breaks(
        "BACKWARD_TRANSITIVE checks every version",
        BackwardTransitive,
        &[A, A_B_DEFAULT],
        A_B,
        "READER_FIELD_MISSING_DEFAULT_VALUE",
    ),
    ok(
        "BACKWARD_TRANSITIVE passes when every version is readable",
        BackwardTransitive,
        &[A, A_B_DEFAULT],
        A_B_C_DEFAULT,
    ),
    ok(
        "FORWARD checks only the latest version",
        Forward,
        &[A_B, A_B_DEFAULT],
        A,
    ),
    breaks(
        "FORWARD_TRANSITIVE: the first version cannot read the new data",
        ForwardTransitive,
        &[A_B, A_B_DEFAULT],
        A,
        "READER_FIELD_MISSING_DEFAULT_VALUE",
    ),
    ok(
        "FORWARD_TRANSITIVE passes when every version reads the new data",
        ForwardTransitive,
        &[A, A_B_DEFAULT],
        A_B_C_DEFAULT,
    ),
    ok(
        "FULL checks only the latest version",
        Full,
        &[A_B, A_B_DEFAULT],
        A,
    ),
    breaks(
        "FULL_TRANSITIVE checks every version both ways",
        FullTransitive,
        &[A_B, A_B_DEFAULT],
        A,
        "READER_FIELD_MISSING_DEFAULT_VALUE",
    ),
    ok(
        "FULL_TRANSITIVE passes with defaults everywhere",
        FullTransitive,
        &[A, A_B_DEFAULT],
        A_B_C_DEFAULT,
    ),
    ok("NONE accepts any change", NONE, &[A], r#""string""#),
    ok("NONE accepts a field without a default", NONE, &[A], A_C),
];
