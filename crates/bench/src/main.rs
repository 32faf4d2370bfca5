//! `stencila-bench`: starts a `stencila` binary on a free loopback port, drives it with
//! keep-alive connections from this second process, checks every response, and prints
//! one table (p50/p90/p99 latency, throughput, memory, bytes, the 2018 host's p50) plus
//! the same as JSON. Sections: the execute round trip (bare worker, HTTP alone, HTTP
//! execute, their ratio), the other context types (`polyglot.rs`), many live contexts
//! and their memory (`memory.rs`), big values out and in (`values.rs`), NodeContext
//! beside the 2018 Node host (`reference.rs`), creates without a pool (`cold.rs`) and
//! Jupyter (`jupyter.rs`). A row that fails is named with its reason; the other rows
//! still run, and the bench then exits non-zero. Timings are reported, never asserted.
//!
//! Options: `--binary <stencila>` (required), `--out <json>`, `--quick`, `--python
//! <interpreter with pandas>`, `--reference-2018 <dir of npm stencila-node>`,
//! `--host-arg <arg>` (repeatable, for the main host). Run through `cargo xtask bench
//! [--quick]`, which builds both in release mode and passes the last two where it can.
//! With `--soak <seconds>` it runs the soak test instead (`soak.rs`, `cargo xtask soak`).

mod client;
mod cold;
mod jupyter;
mod memory;
mod polyglot;
mod reference;
mod soak;
mod values;

use anyhow::{bail, Context, Result};
use client::Connection;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sizes of the runs: the full bench, or `--quick` for CI.
struct Plan {
    sequential: usize,
    warmup: usize,
    parallel_for: Duration,
    creates: usize,
    manifest_for: Duration,
    many_contexts: usize,
    /// Measured runs of each big value (five times as many for the smallest).
    big_repeats: usize,
    /// Creates per no-pool variant (half for those that import pandas).
    cold_creates: usize,
    /// Whether to run 500 live contexts.
    capacity: bool,
}

const FULL: Plan = Plan {
    sequential: 5000,
    warmup: 300,
    parallel_for: Duration::from_secs(3),
    creates: 60,
    manifest_for: Duration::from_secs(3),
    many_contexts: 200,
    big_repeats: 10,
    cold_creates: 40,
    capacity: true,
};

const QUICK: Plan = Plan {
    sequential: 500,
    warmup: 50,
    parallel_for: Duration::from_millis(700),
    creates: 10,
    manifest_for: Duration::from_millis(700),
    many_contexts: 200,
    big_repeats: 3,
    cold_creates: 10,
    capacity: false,
};

/// One line of the table.
struct Row {
    scenario: String,
    count: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// Memory in KiB: the host's RSS, or a worker's USS/PSS where the scenario says so.
    rss_kib: Option<u64>,
    /// Bytes of the response (or, for an input, the request) body the row moves.
    bytes: Option<u64>,
    /// p50 of the same work on the 2018 host, where it ran.
    reference_p50: Option<Duration>,
    note: String,
}

impl Row {
    fn percentile(&self, p: f64) -> Option<f64> {
        if self.latencies.is_empty() {
            return None;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        Some(self.latencies[index].as_secs_f64() * 1e6)
    }

    fn throughput(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "count": self.count,
            "p50_us": self.percentile(0.5),
            "p90_us": self.percentile(0.9),
            "p99_us": self.percentile(0.99),
            "per_second": self.throughput(),
            "rss_kib": self.rss_kib,
            "bytes": self.bytes,
            "reference_p50_us": self.reference_p50.map(|d| d.as_secs_f64() * 1e6),
            "note": self.note,
        })
    }
}

fn row(scenario: &str, mut latencies: Vec<Duration>, elapsed: Duration, note: String) -> Row {
    latencies.sort();
    Row {
        scenario: scenario.to_string(),
        count: latencies.len(),
        latencies,
        elapsed,
        rss_kib: None,
        bytes: None,
        reference_p50: None,
        note,
    }
}

/// Resident set size of a process, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A host under test, killed on drop.
struct Host {
    child: Child,
    port: u16,
    token: String,
}

impl Host {
    fn start(binary: &PathBuf, extra: &[&str]) -> Result<Host> {
        Self::start_with_env(binary, extra, &[])
    }

    fn start_with_env(
        binary: &PathBuf,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Host> {
        // Room for every run's contexts, unless the caller sets its own limit.
        let limit: &[&str] = if extra.contains(&"--max-instances") {
            &[]
        } else {
            &["--max-instances", "1000"]
        };
        let mut child = Command::new(binary)
            .args(["serve", "--port", "0"])
            .args(limit)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("a stdout pipe")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let (port, token) = client::log_in(&line)?;
        Ok(Host { child, port, token })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn connection(&self) -> Result<Connection> {
        Connection::open(self.port)
    }

    fn create(&self, connection: &mut Connection) -> Result<String> {
        self.create_type(connection, "PythonContext", "")
    }

    fn create_type(&self, connection: &mut Connection, kind: &str, body: &str) -> Result<String> {
        let request = connection.build("POST", &format!("/{kind}"), Some(&self.token), body);
        let response = connection.send(&request)?;
        if response.status != 200 {
            bail!("create failed: {} {}", response.status, response.text());
        }
        let name: Value = serde_json::from_slice(&response.body)?;
        name.as_str().map(str::to_string).context("a name")
    }

    fn delete(&self, connection: &mut Connection, name: &str) -> Result<()> {
        let request = connection.build("DELETE", &format!("/{name}"), Some(&self.token), "");
        let response = connection.send(&request)?;
        if response.status != 200 {
            bail!("delete failed: {}", response.status);
        }
        Ok(())
    }

    fn worker_pid(&self, connection: &mut Connection, name: &str) -> Result<u32> {
        let request = connection.build("GET", &format!("/{name}"), Some(&self.token), "");
        let state: Value = serde_json::from_slice(&connection.send(&request)?.body)?;
        state["pid"]
            .as_u64()
            .map(|p| p as u32)
            .context("a worker pid")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
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

/// Checks an execute result is `{"messages": [], "value": {"type": "integer", "data": want}}`.
fn check_integer(body: &[u8], want: i64) -> Result<()> {
    let result: Value = serde_json::from_slice(body)?;
    if result["value"]["data"] != json!(want) || result["messages"] != json!([]) {
        bail!("wrong result: {result}");
    }
    Ok(())
}

fn execute_body(code: &str) -> String {
    json!({ "code": code }).to_string()
}

/// `execute` of `6*7` straight to a worker, in this process: the floor HTTP adds to.
fn bare_worker(plan: &Plan) -> Result<Row> {
    use stencila_host::InstanceType;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let interpreter =
            stencila_contexts::resolve_interpreter("python3").unwrap_or_else(|| "python3".into());
        let python = stencila_contexts::PythonContextType::new(stencila_contexts::PythonConfig {
            interpreter,
            execute_timeout: None,
            worker_memory: None,
            pool_size: 0,
            max_inline: stencila_contexts::InlineLimit::default(),
        });
        let context = python
            .create(json!({}))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut latencies = Vec::with_capacity(plan.sequential);
        let started = Instant::now();
        for i in 0..plan.warmup + plan.sequential {
            let t = Instant::now();
            let result = context
                .call("execute", json!({"code": "6*7"}))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let elapsed = t.elapsed();
            check_integer(result.to_string().as_bytes(), 42)?;
            if i >= plan.warmup {
                latencies.push(elapsed);
            }
        }
        let elapsed = started.elapsed();
        context.destroy().await;
        Ok(row(
            "bare worker execute 6*7",
            latencies,
            elapsed,
            "no HTTP: the floor".into(),
        ))
    })
}

fn sequential_execute(host: &Host, plan: &Plan) -> Result<Row> {
    let mut connection = host.connection()?;
    let name = host.create(&mut connection)?;
    let request = connection.build(
        "PUT",
        &format!("/{name}!execute"),
        Some(&host.token),
        &execute_body("6*7"),
    );
    for _ in 0..plan.warmup {
        check_integer(&connection.send(&request)?.body, 42)?;
    }
    let mut latencies = Vec::with_capacity(plan.sequential);
    let started = Instant::now();
    for _ in 0..plan.sequential {
        let t = Instant::now();
        let response = connection.send(&request)?;
        latencies.push(t.elapsed());
        check_integer(&response.body, 42)?;
    }
    let elapsed = started.elapsed();
    host.delete(&mut connection, &name)?;
    Ok(row(
        "execute 6*7, 1 client",
        latencies,
        elapsed,
        "keep-alive".into(),
    ))
}

/// `GET /favicon.ico` on one keep-alive connection: HTTP alone, no context.
fn http_alone(host: &Host, plan: &Plan) -> Result<Row> {
    let mut connection = host.connection()?;
    let request = connection.build("GET", "/favicon.ico", Some(&host.token), "");
    let check = |response: &client::Response| -> Result<()> {
        if response.status != 200 || response.body.is_empty() {
            bail!(
                "GET /favicon.ico: {} with {} bytes",
                response.status,
                response.body.len()
            );
        }
        Ok(())
    };
    for _ in 0..plan.warmup {
        check(&connection.send(&request)?)?;
    }
    let mut latencies = Vec::with_capacity(plan.sequential);
    let started = Instant::now();
    for _ in 0..plan.sequential {
        let t = Instant::now();
        let response = connection.send(&request)?;
        latencies.push(t.elapsed());
        check(&response)?;
    }
    Ok(row(
        "GET /favicon.ico, 1 client (HTTP alone)",
        latencies,
        started.elapsed(),
        "keep-alive; no context".into(),
    ))
}

fn parallel_execute(host: &Arc<Host>, plan: &Plan, contexts: usize) -> Result<Row> {
    let mut setup = host.connection()?;
    let names: Vec<String> = (0..contexts)
        .map(|_| host.create(&mut setup))
        .collect::<Result<_>>()?;
    let deadline_for = plan.parallel_for;
    let started = Instant::now();
    let threads: Vec<_> = names
        .iter()
        .map(|name| {
            let host = host.clone();
            let name = name.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut connection = host.connection()?;
                let request = connection.build(
                    "PUT",
                    &format!("/{name}!execute"),
                    Some(&host.token),
                    &execute_body("6*7"),
                );
                for _ in 0..20 {
                    check_integer(&connection.send(&request)?.body, 42)?;
                }
                let mut latencies = Vec::new();
                let until = Instant::now() + deadline_for;
                while Instant::now() < until {
                    let t = Instant::now();
                    let response = connection.send(&request)?;
                    latencies.push(t.elapsed());
                    check_integer(&response.body, 42)?;
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for result in join_all(threads) {
        latencies.extend(result?);
    }
    let elapsed = started.elapsed();
    for name in &names {
        host.delete(&mut setup, name)?;
    }
    Ok(row(
        &format!("execute 6*7, {contexts} contexts in parallel"),
        latencies,
        elapsed,
        format!("{contexts} keep-alive clients"),
    ))
}

fn create_contexts(host: &Host, plan: &Plan, label: &str) -> Result<Row> {
    let mut connection = host.connection()?;
    let mut latencies = Vec::with_capacity(plan.creates);
    let started = Instant::now();
    for _ in 0..plan.creates {
        let t = Instant::now();
        let name = host.create(&mut connection)?;
        latencies.push(t.elapsed());
        let request = connection.build(
            "PUT",
            &format!("/{name}!execute"),
            Some(&host.token),
            &execute_body("1"),
        );
        check_integer(&connection.send(&request)?.body, 1)?;
        host.delete(&mut connection, &name)?;
        // Lets a pool refill between creates, as it would between a person's clicks.
        std::thread::sleep(Duration::from_millis(60));
    }
    let elapsed = started.elapsed();
    Ok(row(
        label,
        latencies,
        elapsed,
        "POST until an execute can start".into(),
    ))
}

fn manifest(host: &Arc<Host>, plan: &Plan) -> Result<Row> {
    const CONNECTIONS: usize = 32;
    let run_for = plan.manifest_for;
    let started = Instant::now();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let host = host.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut connection = host.connection()?;
                let request = connection.build("GET", "/manifest", Some(&host.token), "");
                let mut latencies = Vec::new();
                let until = Instant::now() + run_for;
                while Instant::now() < until {
                    let t = Instant::now();
                    let response = connection.send(&request)?;
                    latencies.push(t.elapsed());
                    if response.status != 200 || !response.text().contains("\"id\":\"rust-host-") {
                        bail!("bad manifest response: {}", response.text());
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for result in join_all(threads) {
        latencies.extend(result?);
    }
    Ok(row(
        "GET /manifest, 32 connections",
        latencies,
        started.elapsed(),
        "keep-alive".into(),
    ))
}

/// Joins every thread before any error is returned, so no client outlives a failure.
fn join_all<T>(threads: Vec<std::thread::JoinHandle<Result<T>>>) -> Vec<Result<T>> {
    threads
        .into_iter()
        .map(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
        })
        .collect()
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<48} {:>6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>10} {:>12}  note",
        "scenario",
        "count",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "per second",
        "KiB",
        "bytes",
        "2018 p50 µs"
    );
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
    let int = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    for r in rows {
        let throughput = if r.count > 0 {
            format!("{:.0}", r.throughput())
        } else {
            "-".into()
        };
        println!(
            "{:<48} {:>6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>10} {:>12}  {}",
            r.scenario,
            r.count,
            fmt(r.percentile(0.5)),
            fmt(r.percentile(0.9)),
            fmt(r.percentile(0.99)),
            throughput,
            int(r.rss_kib),
            int(r.bytes),
            fmt(r.reference_p50.map(|d| d.as_secs_f64() * 1e6)),
            r.note
        );
    }
}

/// The interpreter for the rows that need pandas: `--python`, else `STENCILA_PYTHON`,
/// else `python3`, if it imports pandas; otherwise why not.
fn pandas_python(given: Option<String>) -> Result<String, String> {
    let python = given
        .or_else(|| std::env::var("STENCILA_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    match Command::new(&python)
        .args(["-c", "import pandas"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(python),
        Ok(_) => Err(format!(
            "{python} has no pandas (cargo xtask test makes target/test-venv, which has)"
        )),
        Err(e) => Err(format!("{python} did not run: {e}")),
    }
}

/// Runs one section; an error is kept as "section: why" and the bench goes on.
fn section<T>(errors: &mut Vec<String>, name: &str, run: impl FnOnce() -> Result<T>) -> Option<T> {
    match run() {
        Ok(value) => Some(value),
        Err(e) => {
            errors.push(format!("{name}: {e:#}"));
            None
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let binary =
        PathBuf::from(value_of("--binary").context("--binary <path to stencila> is required")?);
    let out = value_of("--out").map(PathBuf::from);
    if let Some(seconds) = value_of("--soak") {
        let seconds = seconds
            .parse()
            .context("--soak <seconds> takes a whole number")?;
        return soak::run(&binary, seconds, out.as_deref());
    }
    let plan = if quick { &QUICK } else { &FULL };
    let python = pandas_python(value_of("--python"));
    let python_ref = python.as_deref().map_err(String::as_str);
    let mut errors = Vec::new();
    let mut figures = Vec::new();

    let mut rows = Vec::new();
    let bare = bare_worker(plan)?;
    let bare_p50 = bare.percentile(0.5);
    rows.push(bare);

    // `--host-arg X` (repeatable) passes X to the host under test, for experiments.
    let host_args: Vec<&str> = args
        .windows(2)
        .filter(|pair| pair[0] == "--host-arg")
        .map(|pair| pair[1].as_str())
        .collect();
    let host = Arc::new(Host::start(&binary, &host_args)?);
    std::thread::sleep(Duration::from_millis(300));
    let mut idle = row(
        "host idle",
        Vec::new(),
        Duration::ZERO,
        "after start, before any context".into(),
    );
    idle.rss_kib = rss_kib(host.pid());
    rows.push(idle);

    let sequential = sequential_execute(&host, plan)?;
    let ratio = match (sequential.percentile(0.5), bare_p50) {
        (Some(http), Some(bare)) if bare > 0.0 => Some(http / bare),
        _ => None,
    };
    let http_p50 = sequential.percentile(0.5);
    rows.push(sequential);
    let alone = http_alone(&host, plan)?;
    if let (Some(execute), Some(alone), Some(bare)) = (http_p50, alone.percentile(0.5), bare_p50) {
        figures.push(format!(
            "glue (HTTP execute p50 - HTTP alone p50 - bare worker p50): {:.0} µs",
            execute - alone - bare
        ));
    }
    rows.push(alone);
    if let Some(ratio) = ratio {
        rows.push(row(
            "execute 6*7: HTTP p50 / bare worker p50",
            Vec::new(),
            Duration::ZERO,
            format!("ratio {ratio:.2}"),
        ));
        figures.push(format!(
            "overhead ratio (HTTP execute p50 / bare worker p50): {ratio:.2}"
        ));
    }
    for contexts in [1, 2, 8] {
        rows.push(parallel_execute(&host, plan, contexts)?);
    }
    rows.push(create_contexts(
        &host,
        plan,
        "create PythonContext, pooled",
    )?);
    rows.push(manifest(&host, plan)?);
    rows.extend(
        section(&mut errors, "SQLite and Node rows", || {
            polyglot::rows(&host, plan)
        })
        .unwrap_or_default(),
    );
    rows.extend(
        section(&mut errors, "200 contexts", || {
            memory::many_contexts(&host, plan)
        })
        .unwrap_or_default(),
    );
    drop(host);

    // Big values, and NodeContext beside the 2018 host.
    let mut env = Vec::new();
    if let Ok(python) = &python {
        env.push(("STENCILA_PYTHON", std::ffi::OsStr::new(python.as_str())));
    }
    let interpreter = python.clone().unwrap_or_else(|_| "python3".into());
    let big = Host::start_with_env(&binary, values::HOST_ARGS, &env)?;
    let pandas = python_ref.map(|_| ()).map_err(str::to_string);
    match values::rows(&big, plan, pandas, &interpreter, &mut errors, &mut figures) {
        Ok(big_rows) => rows.extend(big_rows),
        Err(e) => errors.push(format!("big values: {e:#}")),
    }
    println!("{}", reference::PYTHON_2018);
    let (reference, node_2018) = match value_of("--reference-2018") {
        None => (
            None,
            format!(
                "2018 Node host: not installed (cargo xtask bench installs {} under target/bench-2018)",
                reference::NODE_PACKAGE
            ),
        ),
        Some(dir) => match reference::Reference::start(std::path::Path::new(&dir)) {
            Ok(reference) => {
                let off = if reference.disabled.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; not built here, so their context types are off: {}",
                        reference.disabled.join("; ")
                    )
                };
                let said = format!(
                    "2018 Node host: {} from {dir}; its NodeContext beside this host's{off}",
                    reference::NODE_PACKAGE
                );
                (Some(reference), said)
            }
            Err(e) => (None, format!("2018 Node host: could not start: {e:#}")),
        },
    };
    println!("{node_2018}");
    rows.extend(reference::rows(&big, reference.as_ref(), plan, &mut errors));
    drop(reference);
    drop(big);

    rows.extend(cold::rows(&binary, plan, python_ref, &mut errors));
    rows.extend(
        section(&mut errors, "500 contexts", || {
            memory::capacity(&binary, plan)
        })
        .flatten(),
    );
    rows.extend(
        section(&mut errors, "JupyterContext rows", || {
            jupyter::rows(&binary, plan)
        })
        .unwrap_or_default(),
    );

    print_table(&rows);
    for figure in &figures {
        println!("{figure}");
    }
    if let Some(out) = out {
        let report = json!({
            "quick": quick,
            "overhead_ratio": ratio,
            "figures": figures,
            "errors": errors,
            "reference_2018": { "python": reference::PYTHON_2018, "node": node_2018 },
            "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        });
        std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
        println!("written to {}", out.display());
    }
    if !errors.is_empty() {
        for error in &errors {
            eprintln!("bench error: {error}");
        }
        bail!("{} rows failed (said above)", errors.len());
    }
    Ok(())
}
