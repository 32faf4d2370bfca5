//! The core without HTTP: a program that builds a `stencila_host::Host` with a
//! `SqliteContext` and a `PythonContext`, makes a table in SQL, shapes it in Python
//! and prints the result; then moves a table too large to send inline by pointer,
//! which the host resolves from one context to the other.
//!
//! `cargo run -p stencila-contexts --example polyglot`

use serde_json::{json, Value};
use std::sync::Arc;
use stencila_contexts::{
    resolve_interpreter, InlineLimit, PythonConfig, PythonContextType, SqliteConfig,
    SqliteContextType,
};
use stencila_host::Host;

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("could not start a runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(run()) {
        eprintln!("polyglot: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    // A small inline limit, so the second table travels by pointer.
    let max_inline = InlineLimit {
        rows: 1_000,
        ..InlineLimit::default()
    };
    let interpreter = resolve_interpreter("python3").unwrap_or_else(|| "python3".into());
    let python = PythonContextType::new(PythonConfig {
        interpreter,
        execute_timeout: None,
        worker_memory: None,
        pool_size: 0,
        max_inline,
    });
    let mut host = Host::new();
    host.register(Arc::new(python));
    host.register(Arc::new(SqliteContextType::new(SqliteConfig {
        max_inline,
        ..SqliteConfig::default()
    })));

    let sql = host
        .create("SqliteContext", json!({}))
        .await
        .map_err(|e| e.to_string())?;
    let py = host
        .create("PythonContext", json!({}))
        .await
        .map_err(|e| e.to_string())?;

    // A table made in SQL ...
    let planets = value(
        &host,
        &sql,
        json!({"code": "CREATE TABLE planets (name TEXT, au REAL); \
                 INSERT INTO planets VALUES ('Mercury', 0.39), ('Venus', 0.72), ('Earth', 1.0), ('Mars', 1.52); \
                 SELECT * FROM planets"}),
    )
    .await?;
    println!("{sql} gave: {planets}");

    // ... is an input to Python (a DataFrame with pandas, a dict of columns without).
    let years = value(
        &host,
        &py,
        json!({
            "code": "[(n, round(a ** 1.5, 2)) for n, a in zip(planets['name'], planets['au'])]",
            "inputs": {"planets": planets},
        }),
    )
    .await?;
    println!("{py} gave (name, orbit in years): {}", years["data"]);

    // A table over the inline limit comes back as a pointer; passed on, the host
    // fetches it from the SQLite context itself.
    let pointer = value(
        &host,
        &sql,
        json!({"code": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT x FROM c"}),
    )
    .await?;
    println!(
        "{sql} gave a pointer to '{}' in {} with {} rows (preview: {} rows)",
        pointer["name"].as_str().unwrap_or_default(),
        pointer["instance"].as_str().unwrap_or_default(),
        pointer["rows"],
        pointer["preview"]["data"]["columns"][0]["values"]
            .as_array()
            .map_or(0, Vec::len)
    );
    let total = value(
        &host,
        &py,
        json!({"code": "int(sum(t['x']))", "inputs": {"t": pointer}}),
    )
    .await?;
    println!("{py} summed the 100,000 rows: {}", total["data"]);

    host.destroy_all().await;
    Ok(())
}

/// Runs `execute` and returns its value; an error message is an error.
async fn value(host: &Host, name: &str, arg: Value) -> Result<Value, String> {
    let result = host
        .call(name, "execute", arg)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(error) = result["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["type"] == "error"))
    {
        return Err(format!("{name}: {}", error["message"]));
    }
    Ok(result["value"].clone())
}
