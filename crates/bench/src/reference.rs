//! The 2018 hosts, side by side (issue 9). The 2018 Python host (`stencila/py`) is not on
//! PyPI (the `stencila` there is 2.x only), so the Python rows have no 2018 column. The
//! 2018 Node host is npm's `stencila-node@0.28.15`: `cargo xtask bench` installs it
//! under `target/bench-2018` and passes `--reference-2018 <dir>`; its NodeContext is
//! compared with this host's on the same work (a small expression, big values out and
//! in, creating a context). Without it, or when it cannot start, the rows run without
//! the column and the bench says why, once.

use crate::client::Connection;
use crate::values::short;
use crate::{row, Host, Plan, Row};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the Python rows' 2018 column says.
pub(crate) const PYTHON_2018: &str = "2018 Python host: not installable from PyPI (PyPI `stencila` has only 2.0.0a14..2.0.0b2; stencila/py 0.x was never published there)";

/// The npm package and version of the 2018 Node host.
pub(crate) const NODE_PACKAGE: &str = "stencila-node@0.28.15";

/// The launcher, written beside the package each run.
const LAUNCHER: &str = include_str!("launch_2018.js");

/// How long the 2018 host may take to print its startup line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running 2018 Node host, stopped on drop.
pub(crate) struct Reference {
    child: Child,
    port: u16,
    authorization: String,
    /// Context types switched off because their native add-on is not built.
    pub(crate) disabled: Vec<String>,
}

impl Reference {
    /// Starts the 2018 host installed under `dir` (by `npm install --prefix dir`).
    pub(crate) fn start(dir: &Path) -> Result<Reference> {
        // Absolute: node's `require` takes a relative path without `./` as a package name.
        let dir = &std::fs::canonicalize(dir)
            .with_context(|| format!("{NODE_PACKAGE} is not installed in {}", dir.display()))?;
        let package = dir.join("node_modules/stencila-node");
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(package.join("package.json"))
                .with_context(|| format!("{NODE_PACKAGE} is not installed in {}", dir.display()))?,
        )?;
        let want = NODE_PACKAGE.rsplit('@').next().unwrap_or_default();
        if manifest["version"] != want {
            bail!(
                "{} has stencila-node {}, not {want}",
                dir.display(),
                manifest["version"]
            );
        }
        // Its own HOME and TMPDIR: it registers itself under them and looks for peers there.
        let run = dir.join("run");
        for sub in ["home", "tmp"] {
            std::fs::create_dir_all(run.join(sub))?;
        }
        let launcher = dir.join("launch_2018.js");
        std::fs::write(&launcher, LAUNCHER)?;
        let port = free_port()?;
        let mut child = Command::new("node")
            .arg(&launcher)
            .arg(&package)
            .arg(port.to_string())
            .env("HOME", run.join("home"))
            .env("TMPDIR", run.join("tmp"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting node")?;
        let stdout = child.stdout.take().context("a stdout pipe")?;
        let stderr = child.stderr.take().context("a stderr pipe")?;
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = send.send(line);
        });
        let line = receive.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let started: Option<Value> = serde_json::from_str(&line).ok();
        let Some(started) = started else {
            let _ = child.kill();
            let _ = child.wait();
            let mut why = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut why);
            bail!(
                "it did not start within {START_TIMEOUT:?}: {}",
                short(
                    why.lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("no message")
                )
            );
        };
        // Keeps its stderr drained so it can never block on a full pipe.
        std::thread::spawn(move || {
            std::io::copy(&mut BufReader::new(stderr), &mut std::io::sink())
        });
        let port = started["port"].as_u64().context("a port")? as u16;
        let token = started["token"].as_str().context("a token")?;
        let disabled = started["disabled"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Reference {
            child,
            port,
            authorization: format!("Authorization: Bearer {token}\r\n"),
            disabled,
        })
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        // Closing stdin stops it; it is killed if it has not stopped after 5 s.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on now (the 2018 host cannot be given port 0).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// One host the NodeContext rows run on: this one, or the 2018 one.
#[derive(Clone, Copy)]
enum Target<'a> {
    Ours(&'a Host),
    Y2018(&'a Reference),
}

impl Target<'_> {
    fn connection(&self) -> Result<Connection> {
        match self {
            Target::Ours(host) => host.connection(),
            Target::Y2018(reference) => Connection::open(reference.port),
        }
    }

    fn build(&self, connection: &Connection, method: &str, path: &str, body: &str) -> Vec<u8> {
        match self {
            Target::Ours(host) => connection.build(method, path, Some(&host.token), body),
            Target::Y2018(reference) => {
                connection.build_with(method, path, &reference.authorization, body)
            }
        }
    }

    /// `POST /NodeContext`; `None` when this host has no node (503).
    fn create(&self, connection: &mut Connection) -> Result<Option<String>> {
        let request = self.build(connection, "POST", "/NodeContext", "");
        let response = connection.send(&request)?;
        match response.status {
            200 => {
                let name: Value = serde_json::from_slice(&response.body)?;
                Ok(Some(name.as_str().context("a name")?.to_string()))
            }
            503 if matches!(self, Target::Ours(_)) => Ok(None),
            status => bail!("create NodeContext: {status} {}", short(&response.text())),
        }
    }

    fn delete(&self, connection: &mut Connection, name: &str) -> Result<()> {
        let request = self.build(connection, "DELETE", &format!("/{name}"), "");
        let response = connection.send(&request)?;
        if response.status != 200 {
            bail!("delete {name}: {}", response.status);
        }
        Ok(())
    }

    /// An execute of `code`, with `x` set to `input` where given. The 2018 host takes a
    /// cell: `{"source": {"type": "string", "data": code}, "inputs": [{"name", "value"}]}`.
    fn execute(
        &self,
        connection: &Connection,
        name: &str,
        code: &str,
        input: Option<&Value>,
    ) -> Vec<u8> {
        let body = match (self, input) {
            (Target::Ours(_), None) => json!({ "code": code }),
            (Target::Ours(_), Some(x)) => json!({ "code": code, "inputs": { "x": x } }),
            (Target::Y2018(_), None) => json!({ "source": { "type": "string", "data": code } }),
            (Target::Y2018(_), Some(x)) => json!({
                "source": { "type": "string", "data": code },
                "inputs": [{ "name": "x", "value": x }],
            }),
        };
        self.build(
            connection,
            "PUT",
            &format!("/{name}!execute"),
            &body.to_string(),
        )
    }

    /// The value an execute answered: `value` here, `outputs[0].value` in 2018.
    fn value(&self, body: &[u8]) -> Result<Value> {
        answer(body, matches!(self, Target::Y2018(_)))
    }
}

/// The value in an execute's answer (`value`; in 2018 the cell's `outputs[0].value`),
/// or an error when it carries messages or no value.
fn answer(body: &[u8], year_2018: bool) -> Result<Value> {
    let mut result: Value = serde_json::from_slice(body)?;
    if result["messages"] != json!([]) {
        bail!("messages: {}", short(&result["messages"].to_string()));
    }
    let value = if year_2018 {
        result["outputs"][0]["value"].take()
    } else {
        result["value"].take()
    };
    if value.is_null() {
        bail!("no value in {}", short(&result.to_string()));
    }
    Ok(value)
}

/// One piece of NodeContext work: code, an optional input `x`, and a check of the
/// answer's `data`.
struct Work {
    label: &'static str,
    code: &'static str,
    input: Option<Value>,
    check: fn(&Value) -> Result<()>,
    big: bool,
}

const BIG: usize = 1_000_000;
const LONG: usize = 10_000_000;

fn check_42(data: &Value) -> Result<()> {
    if *data != json!(42) {
        bail!("6*7 gave {data}");
    }
    Ok(())
}

fn check_range(data: &Value) -> Result<()> {
    let items = data.as_array().context("not an array")?;
    if items.len() != BIG || items[BIG - 1] != json!(BIG - 1) {
        bail!("expected 0..{BIG}, got {} items", items.len());
    }
    Ok(())
}

fn check_long(data: &Value) -> Result<()> {
    let text = data.as_str().context("not a string")?;
    if text.len() != LONG || !text.bytes().all(|b| b == b'x') {
        bail!("expected {LONG} x, got {} characters", text.len());
    }
    Ok(())
}

fn check_length(data: &Value) -> Result<()> {
    if *data != json!(BIG) {
        bail!("x.length gave {data}, not {BIG}");
    }
    Ok(())
}

/// The 2018 host reads at most 1 MB of request body (its `body` module's default), so
/// this smaller input is the one it can take.
fn check_length_tenth(data: &Value) -> Result<()> {
    if *data != json!(BIG / 10) {
        bail!("x.length gave {data}, not {}", BIG / 10);
    }
    Ok(())
}

fn work() -> Vec<Work> {
    let range: Vec<usize> = (0..BIG).collect();
    vec![
        Work {
            label: "NodeContext: execute 6*7",
            code: "6*7",
            input: None,
            check: check_42,
            big: false,
        },
        Work {
            label: "NodeContext out: array of 10^6",
            code: "Array.from({length: 1000000}, (_, i) => i)",
            input: None,
            check: check_range,
            big: true,
        },
        Work {
            label: "NodeContext out: 'x'.repeat(10^7)",
            code: "'x'.repeat(10000000)",
            input: None,
            check: check_long,
            big: true,
        },
        Work {
            label: "NodeContext in: array of 10^5",
            code: "x.length",
            input: Some(json!({ "type": "array", "data": range[..BIG / 10] })),
            check: check_length_tenth,
            big: true,
        },
        Work {
            label: "NodeContext in: array of 10^6",
            code: "x.length",
            input: Some(json!({ "type": "array", "data": range })),
            check: check_length,
            big: true,
        },
    ]
}

/// Runs `work` on `target` after one unmeasured run: latencies, time taken, bytes of the
/// last response.
fn run(
    target: Target,
    plan: &Plan,
    work: &Work,
) -> Result<Option<(Vec<Duration>, Duration, usize)>> {
    let mut connection = target.connection()?;
    let Some(name) = target.create(&mut connection)? else {
        return Ok(None);
    };
    let request = target.execute(&connection, &name, work.code, work.input.as_ref());
    let times = if work.big {
        plan.big_repeats
    } else {
        plan.sequential
    };
    let mut latencies = Vec::with_capacity(times);
    let mut bytes = 0;
    let started = Instant::now();
    for i in 0..=times {
        let t = Instant::now();
        let response = connection.send(&request)?;
        let elapsed = t.elapsed();
        if response.status != 200 {
            bail!("status {}: {}", response.status, short(&response.text()));
        }
        (work.check)(&target.value(&response.body)?["data"])?;
        // What crosses: the value out, or the input in (the request, headers and all).
        bytes = if work.input.is_some() {
            request.len()
        } else {
            response.body.len()
        };
        if i > 0 {
            latencies.push(elapsed);
        }
    }
    let elapsed = started.elapsed();
    target.delete(&mut connection, &name)?;
    Ok(Some((latencies, elapsed, bytes)))
}

/// `plan.creates` creates of a NodeContext, each then deleted.
fn creates(target: Target, plan: &Plan) -> Result<Option<(Vec<Duration>, Duration)>> {
    let mut connection = target.connection()?;
    let mut latencies = Vec::with_capacity(plan.creates);
    let started = Instant::now();
    for _ in 0..plan.creates {
        let t = Instant::now();
        let Some(name) = target.create(&mut connection)? else {
            return Ok(None);
        };
        latencies.push(t.elapsed());
        let request = target.execute(&connection, &name, "6*7", None);
        let response = connection.send(&request)?;
        check_42(&target.value(&response.body)?["data"])?;
        target.delete(&mut connection, &name)?;
        std::thread::sleep(Duration::from_millis(60));
    }
    Ok(Some((latencies, started.elapsed())))
}

fn p50(latencies: &[Duration]) -> Option<Duration> {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

/// "2018/this x.xx" for a note, or why the 2018 side has no figure.
fn compare(row: &mut Row, reference: Option<Result<Option<Vec<Duration>>>>) {
    match reference {
        None => {}
        Some(Ok(Some(latencies))) => {
            row.reference_p50 = p50(&latencies);
            if let (Some(ours), Some(theirs)) = (row.percentile(0.5), row.reference_p50) {
                row.note.push_str(&format!(
                    "; 2018/this {:.2}",
                    theirs.as_secs_f64() * 1e6 / ours.max(1e-9)
                ));
            }
        }
        Some(Ok(None)) => row.note.push_str("; 2018: no NodeContext"),
        Some(Err(e)) => {
            let why = format!("{e:#}");
            let first = why.lines().next().unwrap_or_default();
            row.note
                .push_str(&format!("; 2018 failed: {}", short(first)));
        }
    }
}

/// The NodeContext rows with the 2018 column. Rows of this host that fail go to
/// `errors`; a failure of the 2018 host is said in the row's note.
pub(crate) fn rows(
    host: &Host,
    reference: Option<&Reference>,
    plan: &Plan,
    errors: &mut Vec<String>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for work in work() {
        let ours = match run(Target::Ours(host), plan, &work) {
            Ok(Some(ours)) => ours,
            Ok(None) => {
                println!("skipped the NodeContext rows: this host has no node");
                return rows;
            }
            Err(e) => {
                errors.push(format!("{}: {e:#}", work.label));
                continue;
            }
        };
        let (latencies, elapsed, bytes) = ours;
        let note = if work.input.is_some() {
            "keep-alive; bytes are the request's (the 2018 answer echoes the input back)"
        } else {
            "keep-alive"
        };
        let mut r = row(work.label, latencies, elapsed, note.into());
        r.bytes = Some(bytes as u64);
        let theirs = reference.map(|reference| {
            run(Target::Y2018(reference), plan, &work).map(|result| result.map(|(l, _, _)| l))
        });
        compare(&mut r, theirs);
        rows.push(r);
    }
    match creates(Target::Ours(host), plan) {
        Ok(Some((latencies, elapsed))) => {
            let mut r = row(
                "create NodeContext",
                latencies,
                elapsed,
                "POST; a node process here, an object in the 2018 host's own process".into(),
            );
            let theirs = reference.map(|reference| {
                creates(Target::Y2018(reference), plan).map(|r| r.map(|(l, _)| l))
            });
            compare(&mut r, theirs);
            rows.push(r);
        }
        Ok(None) => {}
        Err(e) => errors.push(format!("create NodeContext: {e:#}")),
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2018_answer_is_the_cells_first_output() {
        let body = br#"{"source":{"type":"string","data":"6*7"},"expr":false,"inputs":[],"outputs":[{"value":{"type":"number","data":42}}],"messages":[]}"#;
        assert_eq!(answer(body, true).expect("a value")["data"], json!(42));
        assert!(
            answer(body, false).is_err(),
            "this host's answer has `value`"
        );
    }

    #[test]
    fn an_answer_with_messages_is_an_error() {
        let body = br#"{"messages":[{"type":"error","message":"boom"}],"value":null}"#;
        let error = answer(body, false).expect_err("messages");
        assert!(error.to_string().contains("boom"), "{error}");
    }

    #[test]
    fn the_checks_refuse_a_wrong_answer() {
        assert!(check_42(&json!(42)).is_ok());
        assert!(check_42(&json!("42")).is_err());
        let range: Vec<usize> = (0..BIG).collect();
        assert!(check_range(&json!(range)).is_ok());
        assert!(check_range(&json!(range[..BIG - 1])).is_err());
        assert!(check_long(&json!("x".repeat(LONG))).is_ok());
        assert!(check_long(&json!("x".repeat(LONG - 1) + "y")).is_err());
    }
}
