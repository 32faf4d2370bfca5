//! What runs on a `SqliteContext`'s own thread: opening the database, and the methods
//! `execute`, `list`, `get`, `set` and `restart` on its connection.
//!
//! Inputs are bound as parameters, never spliced into the text; a `table` input is
//! made a temporary table first. Interrupts (from the caller's thread, through
//! [`Control`]) stop the running statement and every later one of the same call.

use super::split::{self, Piece};
use super::table::{self, cell, quote_identifier, ColumnHeads, CreateError, Table};
use crate::pointer::{self, FetchArg, InlineLimit, HOLDERS_KEPT, PREVIEW_ROWS};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode, InterruptHandle, OpenFlags};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use stencila_host::HostError;

/// Where the database lives, as the options chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    Memory,
    /// A file, with the path as the user wrote it (for messages).
    File(PathBuf),
}

/// Why a running call was stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stop {
    Interrupt,
    Timeout(Duration),
}

/// The part of a context shared between its thread and its callers: the running
/// call and the handle that interrupts it. Held only briefly, never while SQL runs.
pub(crate) struct Control {
    state: Mutex<Running>,
}

struct Running {
    handle: InterruptHandle,
    /// The call now running on the thread, if any.
    call: Option<u64>,
    stop: Option<Stop>,
}

impl Control {
    pub(crate) fn new(handle: InterruptHandle) -> Control {
        Control {
            state: Mutex::new(Running {
                handle,
                call: None,
                stop: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Running> {
        // The fields are plain values; a panic cannot leave them half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops whatever call is running (nothing when idle: an interrupt is no queue).
    pub(crate) fn interrupt(&self) {
        let mut running = self.lock();
        if running.call.is_some() {
            running.stop.get_or_insert(Stop::Interrupt);
            running.handle.interrupt();
        }
    }

    /// Stops call `call` if it is still the one running, because it ran past `limit`.
    pub(crate) fn time_out(&self, call: u64, limit: Duration) {
        let mut running = self.lock();
        if running.call == Some(call) {
            running.stop = Some(Stop::Timeout(limit));
            running.handle.interrupt();
        }
    }

    /// Marks `call` as running; `false` when its deadline passed while it waited in
    /// the queue. Checked under the lock that [`Control::time_out`] takes, so a
    /// timeout either finds the call running or the call finds its deadline passed.
    pub(crate) fn begin(&self, call: u64, deadline: Option<Instant>) -> bool {
        let mut running = self.lock();
        running.call = Some(call);
        running.stop = None;
        deadline.is_none_or(|deadline| Instant::now() < deadline)
    }

    pub(crate) fn end(&self) {
        let mut running = self.lock();
        running.call = None;
        running.stop = None;
    }

    fn stopped(&self) -> Option<Stop> {
        self.lock().stop
    }

    fn replace_handle(&self, handle: InterruptHandle) {
        self.lock().handle = handle;
    }
}

/// Opens the database at `location`. A file that cannot be opened is a
/// [`HostError::BadArgument`] saying why, naming only the path the user gave.
pub(crate) fn open(location: &Location) -> Result<Connection, HostError> {
    let path = match location {
        Location::Memory => {
            return Connection::open_in_memory().map_err(|error| {
                HostError::Internal(format!("could not open an in-memory database: {error}"))
            })
        }
        Location::File(path) => path,
    };
    let shown = path.display();
    let bad = |why: &str| HostError::BadArgument(format!("cannot open database '{shown}': {why}"));
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => return Err(bad("it is a directory")),
        // A FIFO or device could block the open forever.
        Ok(metadata) if !metadata.is_file() => return Err(bad("it is not a regular file")),
        Ok(_) => {
            if let Err(error) = std::fs::File::open(path) {
                return Err(bad(&io_reason(&error)));
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(parent) = parent {
                if !parent.is_dir() {
                    return Err(bad("its directory does not exist"));
                }
            }
        }
        Err(error) => return Err(bad(&io_reason(&error))),
    }
    // No URI filenames: the option is a path, never `file:...?mode=...`.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(|error| {
        bad(match error.sqlite_error_code() {
            Some(ErrorCode::CannotOpen) => "it cannot be created or opened (check permissions)",
            Some(ErrorCode::PermissionDenied) | Some(ErrorCode::ReadOnly) => "permission denied",
            _ => "SQLite could not open it",
        })
    })?;
    // SQLite reads the file lazily; read its schema now so a file that is not a
    // database is refused here, not at the first query.
    connection
        .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|error| {
            bad(match error.sqlite_error_code() {
                Some(ErrorCode::NotADatabase) => "it is not a SQLite database",
                Some(ErrorCode::DatabaseCorrupt) => "the database is corrupt",
                Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
                    "it is locked by another program"
                }
                _ => "SQLite could not read it",
            })
        })?;
    Ok(connection)
}

/// An I/O failure in words, without the OS's text (which may name more paths).
pub(crate) fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::NotFound => "it does not exist".into(),
        _ => "it cannot be read".into(),
    }
}

/// The first `*.sqlite`, `*.sqlite3`, `*.db` or `*.db3` file in `dir`, by name (so
/// the choice is the same on every machine); `None` when there is none, which means
/// an in-memory database, as in 2018.
pub(crate) fn find_database(dir: &Path) -> Result<Option<PathBuf>, HostError> {
    let shown = dir.display();
    let bad =
        |why: String| HostError::BadArgument(format!("cannot use directory '{shown}': {why}"));
    let metadata = std::fs::metadata(dir).map_err(|error| bad(io_reason(&error)))?;
    if !metadata.is_dir() {
        return Err(bad("it is not a directory".into()));
    }
    let entries = std::fs::read_dir(dir).map_err(|error| bad(io_reason(&error)))?;
    let mut names: Vec<std::ffi::OsString> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let path = entry.path();
            let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            ["sqlite", "sqlite3", "db", "db3"].contains(&extension) && path.is_file()
        })
        .map(|entry| entry.file_name())
        .collect();
    names.sort();
    Ok(names.first().map(|name| dir.join(name)))
}

/// A connection and where it came from: what the thread owns.
pub(crate) struct Database {
    pub(crate) connection: Connection,
    location: Location,
    /// A table result larger than this is kept and answered with a pointer.
    limit: InlineLimit,
    /// Temporary tables holding results that no assignment named, oldest first.
    holders: VecDeque<String>,
    next_holder: u64,
}

/// An `execute` result carrying only an error message.
fn error_result(message: Value) -> Value {
    json!({"messages": [message], "value": null})
}

/// The message of an error at byte `offset` of `code`: `line` counts from 1 and
/// `column` from 0 in characters, as the Python context's do.
fn message_at(message: String, code: &str, offset: Option<usize>) -> Value {
    let mut value = json!({"type": "error", "message": message});
    if let Some(offset) = offset.filter(|&o| o <= code.len()) {
        let before = code.get(..offset).unwrap_or(code);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let column = before[line_start..].chars().count();
        value["line"] = json!(line);
        value["column"] = json!(column);
    }
    value
}

/// SQLite's own words for an error, without rusqlite's wrapping.
fn sqlite_message(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}

/// Scalar inputs (bound to parameters) and table inputs (made temporary tables).
struct Inputs {
    scalars: HashMap<String, SqlValue>,
    tables: Vec<(String, Table)>,
}

fn bad_input(name: &str, why: &str) -> HostError {
    HostError::BadArgument(format!("input '{name}': {why}"))
}

/// Reads `inputs`: an object of name to packed value.
fn read_inputs(inputs: Option<&Value>) -> Result<Inputs, HostError> {
    let mut read = Inputs {
        scalars: HashMap::new(),
        tables: Vec::new(),
    };
    let object = match inputs {
        None | Some(Value::Null) => return Ok(read),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(HostError::BadArgument(
                "`inputs` must be an object of name to packed value".into(),
            ))
        }
    };
    for (name, packed) in object {
        let kind = packed.get("type").and_then(Value::as_str).ok_or_else(|| {
            bad_input(
                name,
                "must be a packed value such as {\"type\": \"integer\", \"data\": 1}",
            )
        })?;
        let data = packed.get("data").unwrap_or(&Value::Null);
        let value = match (kind, data) {
            ("table", _) => {
                let table =
                    Table::from_value(packed).map_err(|e| bad_input(name, &e.to_string()))?;
                read.tables.push((name.clone(), table));
                continue;
            }
            ("null", _) => SqlValue::Null,
            ("boolean", Value::Bool(flag)) => SqlValue::Integer(i64::from(*flag)),
            ("integer", Value::Number(number)) => match number.as_i64() {
                Some(integer) => SqlValue::Integer(integer),
                None => match number.as_f64() {
                    Some(real) if real.fract() == 0.0 && real.abs() < 9.2e18 => {
                        // Exact: |real| < 2^63 and it has no fraction.
                        SqlValue::Integer(real as i64)
                    }
                    _ => {
                        return Err(bad_input(
                            name,
                            "an integer must be a whole number within 64 bits",
                        ))
                    }
                },
            },
            ("integer", Value::String(text)) => SqlValue::Integer(text.parse().map_err(|_| {
                bad_input(
                    name,
                    "an integer must be a number or its decimal string within 64 bits",
                )
            })?),
            ("number", Value::Number(number)) => {
                SqlValue::Real(number.as_f64().unwrap_or(f64::NAN))
            }
            // NaN and infinities travel as null.
            ("number", Value::Null) => SqlValue::Null,
            ("string", Value::String(text)) => SqlValue::Text(text.clone()),
            ("bytes", _) => SqlValue::Blob(
                packed
                    .as_object()
                    .map(table::decode_bytes)
                    .transpose()
                    .map_err(|e| bad_input(name, &e.to_string()))?
                    .unwrap_or_default(),
            ),
            ("array", Value::Array(_)) | ("object", Value::Object(_)) => {
                SqlValue::Text(data.to_string())
            }
            ("boolean" | "integer" | "number" | "string" | "array" | "object", _) => {
                return Err(bad_input(
                    name,
                    &format!("a value of type '{kind}' has data of the wrong kind"),
                ))
            }
            (other, _) => {
                return Err(bad_input(
                    name,
                    &format!("a value of type '{other}' cannot be a SQL input"),
                ))
            }
        };
        read.scalars.insert(name.clone(), value);
    }
    Ok(read)
}

/// How one statement ended.
enum Outcome {
    /// It ran; `Some` when it returns rows.
    Done(Option<Table>),
    /// It failed: the error message for the result.
    Failed(Value),
}

impl Database {
    pub(crate) fn open(location: Location, limit: InlineLimit) -> Result<Database, HostError> {
        let connection = open(&location)?;
        Ok(Database {
            connection,
            location,
            limit,
            holders: VecDeque::new(),
            next_holder: 1,
        })
    }

    /// Reopens the database (a fresh one when in memory); temporary tables are gone.
    pub(crate) fn restart(&mut self, control: &Control) -> Result<(), HostError> {
        let connection = open(&self.location).map_err(|error| match error {
            HostError::BadArgument(why) => HostError::Internal(format!("restart failed: {why}")),
            other => other,
        })?;
        control.replace_handle(connection.get_interrupt_handle());
        self.connection = connection;
        self.holders.clear();
        Ok(())
    }

    /// `execute {code, inputs?}`: the value of the last statement that returns rows.
    pub(crate) fn execute(
        &mut self,
        control: &Control,
        code: &str,
        inputs: Option<&Value>,
    ) -> Result<Value, HostError> {
        let inputs = read_inputs(inputs)?;
        for (name, table) in &inputs.tables {
            if let Err(error) = table::create_temp_table(&self.connection, name, table) {
                let message = match error {
                    CreateError::Shape(shape) => return Err(bad_input(name, &shape.to_string())),
                    CreateError::Sqlite(error) => match stop_message(control, &error) {
                        Some(message) => message,
                        None => format!(
                            "input '{name}' could not be made a table: {}",
                            sqlite_message(&error)
                        ),
                    },
                };
                return Ok(error_result(json!({"type": "error", "message": message})));
            }
        }
        let mut last = None;
        for piece in split::statements(code) {
            if let Some(stop) = control.stopped() {
                return Ok(error_result(
                    json!({"type": "error", "message": stop_text(stop)}),
                ));
            }
            match self.statement(control, code, &piece, &inputs.scalars) {
                Outcome::Done(Some(table)) => {
                    last = Some((table, split::assignment(&piece).map(|(name, _)| name)))
                }
                Outcome::Done(None) => {}
                Outcome::Failed(message) => return Ok(error_result(message)),
            }
        }
        let value = match last {
            None => Value::Null,
            Some((table, kept)) => match self.inline_or_pointer(control, table, kept) {
                Ok(value) => value,
                Err(message) => return Ok(error_result(message)),
            },
        };
        Ok(json!({"messages": [], "value": value}))
    }

    /// The table as a value, or, when it is over the inline limit, a pointer to it:
    /// to the temporary table `kept` (an assignment's), else to a new hidden holder.
    fn inline_or_pointer(
        &mut self,
        control: &Control,
        table: Table,
        kept: Option<String>,
    ) -> Result<Value, Value> {
        let rows = table.rows();
        if rows <= self.limit.rows {
            let value = table.to_value();
            if !self.limit.exceeded(rows, pointer::json_size(&value)) {
                return Ok(value);
            }
        }
        let name = match kept {
            Some(name) => name,
            None => self.hold(control, &table)?,
        };
        Ok(pointer::pointer(
            &name,
            rows,
            table.slice(0, PREVIEW_ROWS).to_value(),
        ))
    }

    /// Keeps `table` as a new hidden temporary table and returns its name; the oldest
    /// holder beyond [`HOLDERS_KEPT`] is dropped.
    fn hold(&mut self, control: &Control, table: &Table) -> Result<String, Value> {
        let name = format!("_stencila_value{}", self.next_holder);
        self.next_holder += 1;
        if let Err(error) = table::create_temp_table(&self.connection, &name, table) {
            let message = match error {
                CreateError::Shape(shape) => shape.to_string(),
                CreateError::Sqlite(error) => {
                    stop_message(control, &error).unwrap_or_else(|| sqlite_message(&error))
                }
            };
            return Err(
                json!({"type": "error", "message": format!("the result is too large to send and could not be kept: {message}")}),
            );
        }
        self.holders.push_back(name.clone());
        while self.holders.len() > HOLDERS_KEPT {
            if let Some(old) = self.holders.pop_front() {
                let sql = format!("DROP TABLE IF EXISTS temp.{}", quote_identifier(&old));
                if let Err(error) = self.connection.execute_batch(&sql) {
                    log::warn!("could not drop {old}: {error}");
                }
            }
        }
        Ok(name)
    }

    /// Runs one statement (an assignment keeps its rows as a temporary table).
    fn statement(
        &self,
        control: &Control,
        code: &str,
        piece: &Piece<'_>,
        scalars: &HashMap<String, SqlValue>,
    ) -> Outcome {
        let Some((name, query_start)) = split::assignment(piece) else {
            return match self.query(control, piece.text, scalars) {
                Ok(table) => Outcome::Done(table),
                Err((message, offset)) => {
                    Outcome::Failed(message_at(message, code, offset.map(|o| piece.start + o)))
                }
            };
        };
        let query = &piece.text[query_start..];
        let header = "CREATE TEMP TABLE stencila_assignment AS ";
        let sql = format!("{header}{query}");
        let quoted = quote_identifier(&name);
        let steps = || -> Result<Option<Table>, (String, Option<usize>)> {
            self.connection
                .execute_batch("DROP TABLE IF EXISTS temp.stencila_assignment")
                .map_err(|e| (sqlite_message(&e), None))?;
            self.query(control, &sql, scalars)
                .map_err(|(message, offset)| {
                    // An offset in the query maps back to the user's text; one in the
                    // header we added points at the assignment's name.
                    let offset = offset.map(|o| {
                        o.checked_sub(header.len())
                            .map_or(piece.first_token, |o| query_start + o)
                    });
                    (message, offset)
                })?;
            let rename = format!(
                "DROP TABLE IF EXISTS temp.{quoted}; ALTER TABLE temp.stencila_assignment RENAME TO {quoted}"
            );
            self.connection
                .execute_batch(&rename)
                .map_err(|e| (sqlite_message(&e), Some(piece.first_token)))?;
            self.query(
                control,
                &format!("SELECT * FROM temp.{quoted}"),
                &HashMap::new(),
            )
            .map_err(|(message, _)| (message, None))
        };
        match steps() {
            Ok(table) => Outcome::Done(table),
            Err((message, offset)) => {
                Outcome::Failed(message_at(message, code, offset.map(|o| piece.start + o)))
            }
        }
    }

    /// Prepares and runs one statement with its parameters bound; its rows as a
    /// table when it returns rows. An error is its message and, where SQLite says,
    /// the byte offset in `sql`.
    fn query(
        &self,
        control: &Control,
        sql: &str,
        scalars: &HashMap<String, SqlValue>,
    ) -> Result<Option<Table>, (String, Option<usize>)> {
        let failed = |error: rusqlite::Error| {
            if let Some(message) = stop_message(control, &error) {
                return (message, None);
            }
            let offset = match &error {
                rusqlite::Error::SqlInputError {
                    offset, sql: input, ..
                } => {
                    // rusqlite reports the offset in the text it prepared, which is
                    // the statement we gave it.
                    usize::try_from(*offset)
                        .ok()
                        .map(|o| o + sql.len() - input.len().min(sql.len()))
                }
                _ => None,
            };
            (sqlite_message(&error), offset)
        };
        let mut statement = self.connection.prepare(sql).map_err(failed)?;
        for index in 1..=statement.parameter_count() {
            let Some(parameter) = statement.parameter_name(index).map(str::to_string) else {
                return Err((
                    "positional parameters (`?`) have no input; name them, e.g. `:x`, and pass `inputs`".into(),
                    None,
                ));
            };
            let name = parameter.get(1..).unwrap_or_default();
            let Some(value) = scalars.get(name) else {
                return Err((
                    format!("no input named '{name}' for the parameter {parameter}"),
                    None,
                ));
            };
            statement.raw_bind_parameter(index, value).map_err(failed)?;
        }
        let heads = ColumnHeads::of(&statement);
        let mut columns: Vec<Vec<Value>> = vec![Vec::new(); heads.len()];
        let mut first: Vec<Option<&'static str>> = vec![None; heads.len()];
        let mut rows = statement.raw_query();
        loop {
            match rows.next() {
                Ok(Some(row)) => {
                    for (index, (column, first)) in columns.iter_mut().zip(&mut first).enumerate() {
                        let value = row.get_ref(index).unwrap_or(ValueRef::Null);
                        if first.is_none() {
                            *first = table::value_type(value);
                        }
                        column.push(cell(value));
                    }
                }
                Ok(None) => break,
                Err(error) => return Err(failed(error)),
            }
        }
        Ok((heads.len() > 0).then(|| heads.table(columns, first)))
    }

    /// `list`: the tables and views, temporary ones included, with their kind.
    pub(crate) fn list(&self, control: &Control) -> Result<Value, HostError> {
        let sql = "SELECT name, type, 0 FROM main.sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' \
                   UNION ALL SELECT name, type, 1 FROM temp.sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' \
                   ORDER BY 3, 1";
        let mut statement = self
            .connection
            .prepare(sql)
            .map_err(|e| internal(control, &e))?;
        let entries = statement
            .query_map([], |row| {
                Ok(json!({
                    "name": row.get::<_, String>(0)?,
                    "type": "table",
                    "kind": row.get::<_, String>(1)?,
                    "temporary": row.get::<_, i64>(2)? == 1,
                }))
            })
            .and_then(|rows| rows.collect::<Result<Vec<Value>, _>>())
            .map_err(|e| internal(control, &e))?;
        Ok(Value::Array(entries))
    }

    /// `get {name}`: a table or view as a `table` value, or a pointer to it when it
    /// is over the inline limit.
    pub(crate) fn get(&self, control: &Control, name: &str) -> Result<Value, HostError> {
        self.check_exists(control, name)?;
        let quoted = quote_identifier(name);
        let count: i64 = self
            .connection
            .query_row(&format!("SELECT count(*) FROM {quoted}"), [], |row| {
                row.get(0)
            })
            .map_err(|e| internal(control, &e))?;
        let rows = usize::try_from(count).unwrap_or(0);
        let read = |sql: &str| match self.query(control, sql, &HashMap::new()) {
            Ok(table) => Ok(table.unwrap_or_default()),
            Err((message, _)) => Err(HostError::Internal(format!(
                "get '{name}' failed: {message}"
            ))),
        };
        if rows > self.limit.rows {
            let preview = read(&format!("SELECT * FROM {quoted} LIMIT {PREVIEW_ROWS}"))?;
            return Ok(pointer::pointer(name, rows, preview.to_value()));
        }
        let table = read(&format!("SELECT * FROM {quoted}"))?;
        let value = table.to_value();
        if self
            .limit
            .exceeded(table.rows(), pointer::json_size(&value))
        {
            let preview = table.slice(0, PREVIEW_ROWS).to_value();
            return Ok(pointer::pointer(name, table.rows(), preview));
        }
        Ok(value)
    }

    /// `fetch {name, offset?, limit?}`: rows of a table or view (a pointer's), as a
    /// `table` value.
    pub(crate) fn fetch(&self, control: &Control, arg: &FetchArg) -> Result<Value, HostError> {
        self.check_exists(control, &arg.name)?;
        // Both are whole numbers, so they are safe in the text; SQLite takes i64.
        let limit = i64::try_from(arg.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(arg.offset).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT * FROM {} LIMIT {limit} OFFSET {offset}",
            quote_identifier(&arg.name)
        );
        match self.query(control, &sql, &HashMap::new()) {
            Ok(table) => Ok(table.unwrap_or_default().to_value()),
            Err((message, _)) => Err(HostError::Internal(format!(
                "fetch '{}' failed: {message}",
                arg.name
            ))),
        }
    }

    /// A [`HostError::BadArgument`] unless `name` is a table or view.
    fn check_exists(&self, control: &Control, name: &str) -> Result<(), HostError> {
        let exists: bool = self
            .connection
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM main.sqlite_schema WHERE name = ?1 AND type IN ('table', 'view') \
                 UNION ALL SELECT 1 FROM temp.sqlite_schema WHERE name = ?1 AND type IN ('table', 'view'))",
                [name],
                |row| row.get(0),
            )
            .map_err(|e| internal(control, &e))?;
        if !exists {
            return Err(HostError::BadArgument(format!(
                "no table or view named '{name}'"
            )));
        }
        Ok(())
    }

    /// `set {name, value}`: makes the temporary table `name` from a `table` value.
    pub(crate) fn set(
        &self,
        control: &Control,
        name: &str,
        value: &Value,
    ) -> Result<Value, HostError> {
        let table =
            Table::from_value(value).map_err(|e| HostError::BadArgument(format!("set: {e}")))?;
        match table::create_temp_table(&self.connection, name, &table) {
            Ok(()) => Ok(Value::Null),
            Err(CreateError::Shape(error)) => Err(HostError::BadArgument(format!("set: {error}"))),
            Err(CreateError::Sqlite(error)) => match stop_message(control, &error) {
                Some(message) => Err(HostError::Internal(message)),
                None => Err(HostError::BadArgument(format!(
                    "set: {}",
                    sqlite_message(&error)
                ))),
            },
        }
    }
}

/// A failure of the host's own SQL (`list`, `get`): internal, unless it was stopped.
fn internal(control: &Control, error: &rusqlite::Error) -> HostError {
    HostError::Internal(stop_message(control, error).unwrap_or_else(|| sqlite_message(error)))
}

/// The message for an error that is SQLite's "interrupted", saying why it was.
fn stop_message(control: &Control, error: &rusqlite::Error) -> Option<String> {
    (error.sqlite_error_code() == Some(ErrorCode::OperationInterrupted))
        .then(|| stop_text(control.stopped().unwrap_or(Stop::Interrupt)))
}

/// The message of a call whose time ran out while it waited behind another.
pub(crate) fn expired_text(limit: Duration) -> String {
    format!(
        "TimeoutError: execution exceeded {} s while waiting behind another call, so it did not run",
        limit.as_secs_f64()
    )
}

fn stop_text(stop: Stop) -> String {
    match stop {
        Stop::Interrupt => "Interrupted: the query was interrupted".into(),
        Stop::Timeout(limit) => format!(
            "TimeoutError: execution exceeded {} s and was interrupted",
            limit.as_secs_f64()
        ),
    }
}
