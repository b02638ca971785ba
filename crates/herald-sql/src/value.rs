//! Statement arguments and result rows that are the same on every database: what lets
//! code that picks its database at run time ([`Database`](crate::Database),
//! [`DatabaseTransaction`](crate::DatabaseTransaction),
//! [`UnitOfWork`](crate::UnitOfWork)) run SQL without sqlx's per-database bounds.

use crate::error::{Error, Result};

/// A statement argument, or a column of a result [`Row`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL` (an argument from `None`).
    Null,
    /// `TEXT`.
    Text(String),
    /// `BIGINT` (and smaller integer columns).
    Int(i64),
    /// `DOUBLE PRECISION` / `REAL`.
    Float(f64),
    /// `BOOLEAN`.
    Bool(bool),
    /// `BYTEA` / `BLOB`.
    Bytes(Vec<u8>),
}

impl Value {
    /// The value's kind, for errors.
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::Text(_) => "text",
            Self::Int(_) => "an integer",
            Self::Float(_) => "a float",
            Self::Bool(_) => "a boolean",
            Self::Bytes(_) => "bytes",
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A result row: its columns in `SELECT` order, read with [`get`](Self::get).
///
/// A column comes back as the database stores it: integers (SQLite's `INTEGER`,
/// PostgreSQL's `SMALLINT`, `INTEGER`, `BIGINT`) as [`Value::Int`], text as
/// [`Value::Text`], and so on. PostgreSQL's `NUMERIC` (what `SUM` of integers returns)
/// has no [`Value`]: `CAST(... AS BIGINT)` it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    columns: Vec<Value>,
}

impl Row {
    /// A row of `columns`.
    pub fn new(columns: Vec<Value>) -> Self {
        Self { columns }
    }

    /// Column `index` (from 0) as `T`: `i64`, `f64`, `bool`, `String`, `Vec<u8>`, or an
    /// `Option` of one for a column that may be `NULL`. A missing column or another type
    /// is [`Error::InvalidInput`] naming both.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = self.columns.get(index).ok_or_else(|| {
            Error::InvalidInput(format!(
                "column {index} of a row with {} columns",
                self.columns.len()
            ))
        })?;
        T::from_value(value).ok_or_else(|| {
            Error::InvalidInput(format!(
                "column {index} is {}, not {}",
                value.kind(),
                T::EXPECTED
            ))
        })
    }

    /// The columns.
    pub fn columns(&self) -> &[Value] {
        &self.columns
    }

    /// How many columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// A Rust type a [`Row`] column converts to.
pub trait FromValue: Sized {
    /// What the column must be, for errors.
    const EXPECTED: &'static str;
    /// The column as `Self`; `None` when it is another type.
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl FromValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Float(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "a boolean (or 0/1)";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(v) => Some(*v),
            // SQLite has no booleans: 0 and 1.
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "text";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    const EXPECTED: &'static str = "bytes";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Bytes(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_convert_to_their_types_and_refuse_others() {
        let row = Row::new(vec![
            Value::Int(7),
            Value::Text("a".into()),
            Value::Null,
            Value::Int(1),
        ]);
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert_eq!(row.get::<f64>(0).unwrap(), 7.0);
        assert_eq!(row.get::<String>(1).unwrap(), "a");
        assert_eq!(row.get::<Option<String>>(2).unwrap(), None);
        assert_eq!(row.get::<Option<String>>(1).unwrap().as_deref(), Some("a"));
        assert!(row.get::<bool>(3).unwrap());
        let err = row.get::<i64>(1).unwrap_err().to_string();
        assert!(err.contains("column 1 is text, not an integer"), "{err}");
        let err = row.get::<i64>(2).unwrap_err().to_string();
        assert!(err.contains("NULL"), "{err}");
        let err = row.get::<i64>(4).unwrap_err().to_string();
        assert!(err.contains("column 4 of a row with 4 columns"), "{err}");
    }

    #[test]
    fn none_is_null() {
        assert_eq!(Value::from(None::<String>), Value::Null);
        assert_eq!(Value::from(Some(3_i64)), Value::Int(3));
    }
}
