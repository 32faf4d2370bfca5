//! Bench rows for the other context types and for values between contexts:
//! `SqliteContext` and `NodeContext` (create; execute `SELECT 6*7` / `6*7`), and a
//! 100,000-row table moved from SQL to Python by pointer (the host fetches it from one
//! instance and hands it to the other; the client sends only the pointer).

use crate::client::Connection;
use crate::{row, Host, Plan, Row};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Rows in the table moved by pointer.
const MOVED_ROWS: u64 = 100_000;

/// `POST /<type_name>`; the new instance's name, or `None` with the host's reason when
/// the type is unavailable here (503).
fn create(host: &Host, connection: &mut Connection, type_name: &str) -> Result<Option<String>> {
    let request = connection.build("POST", &format!("/{type_name}"), Some(&host.token), "");
    let response = connection.send(&request)?;
    match response.status {
        200 => {
            let name: Value = serde_json::from_slice(&response.body)?;
            Ok(Some(name.as_str().context("a name")?.to_string()))
        }
        503 => {
            println!("skipped {type_name} rows: {}", response.text());
            Ok(None)
        }
        status => bail!("create {type_name} failed: {status} {}", response.text()),
    }
}

fn execute(host: &Host, connection: &mut Connection, name: &str, body: &Value) -> Result<Value> {
    let request = connection.build(
        "PUT",
        &format!("/{name}!execute"),
        Some(&host.token),
        &body.to_string(),
    );
    let response = connection.send(&request)?;
    if response.status != 200 {
        bail!(
            "execute on {name} failed: {} {}",
            response.status,
            response.text()
        );
    }
    let result: Value = serde_json::from_slice(&response.body)?;
    if result["messages"] != json!([]) {
        bail!("execute on {name} reported: {}", result["messages"]);
    }
    Ok(result["value"].clone())
}

/// The first value of a result's first column (a SQL result is a table).
fn first_cell(value: &Value) -> &Value {
    &value["data"]["columns"][0]["values"][0]
}

/// `execute` of `code` on a new `type_name` instance, `plan.sequential` times after a
/// warm-up; every answer must be 42.
fn sequential(host: &Host, plan: &Plan, type_name: &str, code: &str) -> Result<Option<Row>> {
    let mut connection = host.connection()?;
    let Some(name) = create(host, &mut connection, type_name)? else {
        return Ok(None);
    };
    let body = json!({ "code": code });
    let check = |value: &Value| -> Result<()> {
        let answer = if value["type"] == "table" {
            first_cell(value)
        } else {
            &value["data"]
        };
        if *answer != json!(42) {
            bail!("{type_name}: {code} gave {value}");
        }
        Ok(())
    };
    for _ in 0..plan.warmup {
        check(&execute(host, &mut connection, &name, &body)?)?;
    }
    let mut latencies = Vec::with_capacity(plan.sequential);
    let started = Instant::now();
    for _ in 0..plan.sequential {
        let t = Instant::now();
        let value = execute(host, &mut connection, &name, &body)?;
        latencies.push(t.elapsed());
        check(&value)?;
    }
    let elapsed = started.elapsed();
    host.delete(&mut connection, &name)?;
    Ok(Some(row(
        &format!("execute {code}, {type_name}"),
        latencies,
        elapsed,
        "keep-alive".into(),
    )))
}

/// Creates of `type_name` until an execute can start, each then deleted.
fn creates(host: &Host, plan: &Plan, type_name: &str) -> Result<Option<Row>> {
    let mut connection = host.connection()?;
    let mut latencies = Vec::with_capacity(plan.creates);
    let started = Instant::now();
    for _ in 0..plan.creates {
        let t = Instant::now();
        let Some(name) = create(host, &mut connection, type_name)? else {
            return Ok(None);
        };
        latencies.push(t.elapsed());
        host.delete(&mut connection, &name)?;
    }
    let elapsed = started.elapsed();
    Ok(Some(row(
        &format!("create {type_name}"),
        latencies,
        elapsed,
        "POST; no pool".into(),
    )))
}

/// A 100,000-row SQL result (a pointer) passed as an input to Python: the latency of
/// that execute, which includes the host paging the table out of SQLite.
fn moved_by_pointer(host: &Host, plan: &Plan) -> Result<Row> {
    let mut connection = host.connection()?;
    let sql = create(host, &mut connection, "SqliteContext")?.context("SQLite is built in")?;
    let python = create(host, &mut connection, "PythonContext")?.context("Python is needed")?;
    let code = format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {MOVED_ROWS}) SELECT x, x * 2 AS y FROM c"
    );
    let pointer = execute(host, &mut connection, &sql, &json!({ "code": code }))?;
    if pointer["type"] != "pointer" || pointer["rows"] != json!(MOVED_ROWS) {
        bail!(
            "expected a pointer to {MOVED_ROWS} rows, got {}",
            pointer["type"]
        );
    }
    let body = json!({"code": "int(sum(t['x']))", "inputs": {"t": pointer}});
    let want = json!(MOVED_ROWS * (MOVED_ROWS + 1) / 2);
    // Unmeasured: the first pays for Python importing pandas.
    execute(host, &mut connection, &python, &body)?;
    let times = (plan.creates / 2).max(3);
    let mut latencies = Vec::with_capacity(times);
    let started = Instant::now();
    for _ in 0..times {
        let t = Instant::now();
        let value = execute(host, &mut connection, &python, &body)?;
        latencies.push(t.elapsed());
        if value["data"] != want {
            bail!("the moved table summed to {value}, not {want}");
        }
    }
    let elapsed = started.elapsed();
    host.delete(&mut connection, &python)?;
    host.delete(&mut connection, &sql)?;
    Ok(row(
        "100,000-row table SQL -> Python by pointer",
        latencies,
        elapsed,
        format!(
            "request carries the pointer ({} bytes)",
            body.to_string().len()
        ),
    ))
}

/// Every row this module adds; types missing here are skipped with a note.
pub(crate) fn rows(host: &Host, plan: &Plan) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    rows.extend(sequential(host, plan, "SqliteContext", "SELECT 6*7")?);
    rows.extend(sequential(host, plan, "NodeContext", "6*7")?);
    rows.extend(creates(host, plan, "SqliteContext")?);
    rows.extend(creates(host, plan, "NodeContext")?);
    rows.push(moved_by_pointer(host, plan)?);
    // Lets the deleted workers end before the next measurements.
    std::thread::sleep(Duration::from_millis(200));
    Ok(rows)
}
