//! JupyterContext rows, beside PythonContext's, so the cost of the Jupyter bridge is
//! visible: creating a context (a kernel start, cold and from `--pool-kernel`) and
//! `execute` of `6*7` on ipykernel. They need the test virtualenv that `cargo xtask
//! test` makes (`target/test-venv`, beside the release directory); without it they
//! are skipped, saying so.

use super::{row, Host, Plan, Row};
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// At most this many kernel starts per create row: each takes about a second.
const MAX_CREATES: usize = 10;

/// The test virtualenv's Jupyter data directory, if it has ipykernel's kernelspec.
fn jupyter_path(binary: &Path) -> Option<PathBuf> {
    // <target>/release/stencila -> <target>/test-venv/share/jupyter
    let path = binary.parent()?.parent()?.join("test-venv/share/jupyter");
    path.join("kernels/python3/kernel.json")
        .is_file()
        .then_some(path)
}

fn start(binary: &PathBuf, jupyter: &Path, extra: &[&str]) -> Result<Host> {
    Host::start_with_env(binary, extra, &[("JUPYTER_PATH", jupyter.as_os_str())])
}

const KERNEL: &str = r#"{"kernel": "python3"}"#;

/// Checks an ipykernel result of `code` whose repr is `want`.
fn check_text(body: &[u8], want: &str) -> Result<()> {
    let result: Value = serde_json::from_slice(body)?;
    if result["value"] != json!({"type": "string", "data": want}) || result["messages"] != json!([])
    {
        bail!("wrong result: {result}");
    }
    Ok(())
}

fn creates(host: &Host, count: usize, pause: Duration, label: &str) -> Result<Row> {
    let mut connection = host.connection()?;
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let name = host.create_type(&mut connection, "JupyterContext", KERNEL)?;
        latencies.push(t.elapsed());
        let request = connection.build(
            "PUT",
            &format!("/{name}!execute"),
            Some(&host.token),
            &super::execute_body("1"),
        );
        check_text(&connection.send(&request)?.body, "1")?;
        host.delete(&mut connection, &name)?;
        std::thread::sleep(pause);
    }
    Ok(row(
        label,
        latencies,
        started.elapsed(),
        "POST until an execute can start".into(),
    ))
}

fn execute(host: &Host, plan: &Plan) -> Result<Row> {
    let mut connection = host.connection()?;
    let name = host.create_type(&mut connection, "JupyterContext", KERNEL)?;
    let request = connection.build(
        "PUT",
        &format!("/{name}!execute"),
        Some(&host.token),
        &super::execute_body("6*7"),
    );
    for _ in 0..plan.warmup.min(50) {
        check_text(&connection.send(&request)?.body, "42")?;
    }
    // ipykernel caches each result and warns (a stderr message) past 1000 of them.
    let count = plan.sequential.min(900);
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let response = connection.send(&request)?;
        latencies.push(t.elapsed());
        check_text(&response.body, "42")?;
    }
    let elapsed = started.elapsed();
    host.delete(&mut connection, &name)?;
    Ok(row(
        "execute 6*7, JupyterContext python3",
        latencies,
        elapsed,
        "ipykernel; keep-alive".into(),
    ))
}

/// The JupyterContext rows, or none (with a note on stderr) without the virtualenv.
pub(super) fn rows(binary: &PathBuf, plan: &Plan) -> Result<Vec<Row>> {
    let Some(jupyter) = jupyter_path(binary) else {
        eprintln!(
            "JupyterContext rows skipped: no test virtualenv with ipykernel beside {} (cargo xtask test makes it)",
            binary.display()
        );
        return Ok(Vec::new());
    };
    let count = plan.creates.min(MAX_CREATES);
    let mut rows = Vec::new();
    let host = start(binary, &jupyter, &[])?;
    rows.push(execute(&host, plan)?);
    rows.push(creates(
        &host,
        count,
        Duration::from_millis(60),
        "create JupyterContext python3, cold",
    )?);
    drop(host);
    let pooled = start(binary, &jupyter, &["--pool-kernel", "python3"])?;
    // The pool refills in the background: give each start time to finish.
    std::thread::sleep(Duration::from_secs(3));
    rows.push(creates(
        &pooled,
        count,
        Duration::from_secs(3),
        "create JupyterContext python3, pooled",
    )?);
    Ok(rows)
}
