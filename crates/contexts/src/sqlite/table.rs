//! The `table` value (PROTOCOL.md section 6) in memory, and its conversions to and
//! from SQLite: rows of a statement become a [`Table`]; a [`Table`] becomes a table.
//!
//! A table is a list of columns, each with a name, a type and its values, all JSON:
//! `{"type": "table", "data": {"columns": [{"name": "a", "type": "integer", "values": [1, 2]}]}}`.
//! The same shape the Python context produces, so a table from any context is an
//! input to any other.

use base64::Engine;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Statement;
use serde_json::{json, Map, Value};

/// The largest integer a JSON number carries exactly in most clients (2^53 − 1);
/// beyond it integers travel as decimal strings, as in the Python context.
pub(crate) const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// One column of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub struct TableColumn {
    /// The column's name.
    pub name: String,
    /// Its value type: `integer`, `number`, `string`, `boolean`, `bytes`, `null`, or
    /// whatever the producing context says (e.g. `object`).
    pub column_type: String,
    /// One JSON value per row.
    pub values: Vec<Value>,
}

/// A `table` value: columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// The columns, in order.
    pub columns: Vec<TableColumn>,
}

/// Why a JSON value is not a `table` value; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TableError(String);

impl Table {
    /// Reads a packed `table` value, checking its shape (every column has a string
    /// `name` and a `values` array, all of one length; `type` is optional).
    pub fn from_value(value: &Value) -> Result<Table, TableError> {
        if value.get("type").and_then(Value::as_str) != Some("table") {
            return Err(TableError(
                "a table value needs \"type\": \"table\"".to_string(),
            ));
        }
        let shape = || {
            TableError(
                "a table value needs data {\"columns\": [{\"name\": ..., \"type\": ..., \"values\": [...]}, ...]}"
                    .to_string(),
            )
        };
        let columns = value
            .get("data")
            .and_then(|data| data.get("columns"))
            .and_then(Value::as_array)
            .ok_or_else(shape)?;
        let mut table = Table::default();
        for column in columns {
            let name = column
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(shape)?;
            let values = column
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(shape)?;
            let column_type = match column.get("type") {
                None | Some(Value::Null) => infer_type(values),
                Some(Value::String(kind)) => kind.clone(),
                Some(_) => return Err(shape()),
            };
            table.columns.push(TableColumn {
                name: name.to_string(),
                column_type,
                values: values.clone(),
            });
        }
        if let Some(first) = table.columns.first() {
            let rows = first.values.len();
            if let Some(other) = table.columns.iter().find(|c| c.values.len() != rows) {
                return Err(TableError(format!(
                    "the columns of a table must have the same length: '{}' has {rows} values, '{}' has {}",
                    first.name,
                    other.name,
                    other.values.len()
                )));
            }
        }
        Ok(table)
    }

    /// The packed value: `{"type": "table", "data": {"columns": [...]}}`.
    pub fn to_value(&self) -> Value {
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|column| {
                json!({"name": column.name, "type": column.column_type, "values": column.values})
            })
            .collect();
        json!({"type": "table", "data": {"columns": columns}})
    }

    /// How many rows the table has.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |column| column.values.len())
    }

    /// The rows from `offset`, at most `limit` of them, as a table of the same columns
    /// (for previews and paging).
    pub fn slice(&self, offset: usize, limit: usize) -> Table {
        let columns = self
            .columns
            .iter()
            .map(|column| TableColumn {
                name: column.name.clone(),
                column_type: column.column_type.clone(),
                values: column
                    .values
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .cloned()
                    .collect(),
            })
            .collect();
        Table { columns }
    }
}

/// The type of a column without a declared one: its first non-null value's.
fn infer_type(values: &[Value]) -> String {
    let first = values.iter().find(|value| !value.is_null());
    match first {
        None | Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => "integer",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Object(object)) if object.get("type") == Some(&json!("bytes")) => "bytes",
        Some(Value::Object(_)) => "object",
        Some(Value::Array(_)) => "array",
    }
    .to_string()
}

/// The JSON form of one SQLite value inside a table column. Integers beyond
/// ±(2^53 − 1) are decimal strings; NaN and infinities are null; text that is not
/// UTF-8 is decoded lossily; a BLOB is `{"type": "bytes", "data": "<base64>",
/// "encoding": "base64"}` (the Python context's packed bytes), so it is never
/// mistaken for text in a column that mixes types.
pub(crate) fn cell(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(integer) => integer_value(integer),
        ValueRef::Real(real) => {
            serde_json::Number::from_f64(real).map_or(Value::Null, Value::Number)
        }
        ValueRef::Text(text) => Value::String(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(blob) => bytes_value(blob),
    }
}

/// An integer as JSON: a number within ±(2^53 − 1), else its decimal string.
pub(crate) fn integer_value(integer: i64) -> Value {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&integer) {
        json!(integer)
    } else {
        Value::String(integer.to_string())
    }
}

/// Packed bytes, as the Python context packs them.
pub(crate) fn bytes_value(bytes: &[u8]) -> Value {
    json!({
        "type": "bytes",
        "data": base64::engine::general_purpose::STANDARD.encode(bytes),
        "encoding": "base64"
    })
}

/// The column type SQLite's affinity rules give a declared type
/// (<https://sqlite.org/datatype3.html#determination_of_column_affinity>); `None`
/// for no declared type and for NUMERIC affinity, which holds integers or reals.
fn declared_type(declared: &str) -> Option<&'static str> {
    let declared = declared.to_ascii_uppercase();
    if declared.contains("INT") {
        Some("integer")
    } else if ["CHAR", "CLOB", "TEXT"]
        .iter()
        .any(|t| declared.contains(t))
    {
        Some("string")
    } else if declared.contains("BLOB") {
        Some("bytes")
    } else if ["REAL", "FLOA", "DOUB"]
        .iter()
        .any(|t| declared.contains(t))
    {
        Some("number")
    } else {
        None
    }
}

/// The column type of a SQLite value; `None` for NULL.
pub(crate) fn value_type(value: ValueRef<'_>) -> Option<&'static str> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(_) => Some("integer"),
        ValueRef::Real(_) => Some("number"),
        ValueRef::Text(_) => Some("string"),
        ValueRef::Blob(_) => Some("bytes"),
    }
}

/// The type of a SQLite column: from its declared type's affinity where it has one,
/// else its first non-null value's (as SQLite stored it); `null` when every value is.
fn column_type(declared: Option<&str>, first: Option<&'static str>) -> String {
    declared
        .and_then(declared_type)
        .or(first)
        .unwrap_or("null")
        .to_string()
}

/// What a statement's columns are, read before it runs.
pub(crate) struct ColumnHeads {
    names: Vec<String>,
    declared: Vec<Option<String>>,
}

impl ColumnHeads {
    pub(crate) fn of(statement: &Statement<'_>) -> ColumnHeads {
        let columns = statement.columns();
        ColumnHeads {
            names: columns.iter().map(|c| c.name().to_string()).collect(),
            declared: columns
                .iter()
                .map(|c| c.decl_type().map(str::to_string))
                .collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The table of these columns, the values read for them (one vector per column)
    /// and the type of each column's first non-null value.
    pub(crate) fn table(self, values: Vec<Vec<Value>>, first: Vec<Option<&'static str>>) -> Table {
        let columns = self
            .names
            .into_iter()
            .zip(self.declared)
            .zip(values.into_iter().zip(first))
            .map(|((name, declared), (values, first))| TableColumn {
                column_type: column_type(declared.as_deref(), first),
                name,
                values,
            })
            .collect();
        Table { columns }
    }
}

/// The declared SQL type for a column of a table value, so SQLite gives it the
/// matching affinity; an empty string (no affinity) for other types.
fn sql_type(column_type: &str) -> &'static str {
    match column_type {
        "integer" | "boolean" => "INTEGER",
        "number" => "REAL",
        "string" => "TEXT",
        "bytes" => "BLOB",
        _ => "",
    }
}

/// A JSON cell as a SQLite value: booleans are 0/1; integers as decimal strings
/// (how large ones travel) become integers in an `integer` column; packed bytes
/// become a BLOB; arrays and other objects their JSON text (for SQLite's JSON
/// functions).
pub(crate) fn sql_value(value: &Value, column_type: &str) -> Result<SqlValue, TableError> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Bool(flag) => SqlValue::Integer(i64::from(*flag)),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => SqlValue::Integer(integer),
            None => SqlValue::Real(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => match (column_type, text.parse::<i64>()) {
            ("integer", Ok(integer)) => SqlValue::Integer(integer),
            _ => SqlValue::Text(text.clone()),
        },
        Value::Object(object) if object.get("type") == Some(&json!("bytes")) => {
            SqlValue::Blob(decode_bytes(object)?)
        }
        Value::Object(_) | Value::Array(_) => SqlValue::Text(value.to_string()),
    })
}

/// The bytes of a packed `bytes` value.
pub(crate) fn decode_bytes(object: &Map<String, Value>) -> Result<Vec<u8>, TableError> {
    object
        .get("data")
        .and_then(Value::as_str)
        .and_then(|data| base64::engine::general_purpose::STANDARD.decode(data).ok())
        .ok_or_else(|| TableError("a bytes value needs base64 text as its data".to_string()))
}

/// An SQL identifier, quoted so that any name is data, never SQL.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates (or replaces) the temporary table `name` holding `table`'s rows, in one
/// savepoint: on an error nothing is left half-made.
pub(crate) fn create_temp_table(
    connection: &rusqlite::Connection,
    name: &str,
    table: &Table,
) -> Result<(), CreateError> {
    if table.columns.is_empty() {
        return Err(CreateError::Shape(TableError(format!(
            "table '{name}' has no columns; SQLite tables need at least one"
        ))));
    }
    let quoted = quote_identifier(name);
    let definitions: Vec<String> = table
        .columns
        .iter()
        .map(|column| {
            format!(
                "{} {}",
                quote_identifier(&column.name),
                sql_type(&column.column_type)
            )
        })
        .collect();
    let placeholders = vec!["?"; table.columns.len()].join(", ");
    connection.execute_batch("SAVEPOINT stencila_table")?;
    let result = (|| -> Result<(), CreateError> {
        connection.execute(&format!("DROP TABLE IF EXISTS temp.{quoted}"), [])?;
        connection.execute(
            &format!("CREATE TEMP TABLE {quoted} ({})", definitions.join(", ")),
            [],
        )?;
        let mut insert = connection.prepare(&format!(
            "INSERT INTO temp.{quoted} VALUES ({placeholders})"
        ))?;
        for row in 0..table.rows() {
            let mut values = Vec::with_capacity(table.columns.len());
            for column in &table.columns {
                let value = column.values.get(row).unwrap_or(&Value::Null);
                values.push(sql_value(value, &column.column_type)?);
            }
            insert.execute(rusqlite::params_from_iter(values))?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => connection.execute_batch("RELEASE stencila_table")?,
        Err(_) => {
            // Undo whatever part was made; the original error is what the caller sees.
            let _ = connection.execute_batch("ROLLBACK TO stencila_table; RELEASE stencila_table");
        }
    }
    result
}

/// Why a table could not be made: its value's shape, or SQLite (e.g. two columns of
/// one name).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateError {
    #[error("{0}")]
    Shape(#[from] TableError),
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
}
