//! `stencila-bench --soak <seconds>`: a soak test. It starts a `stencila` host
//! (`serve --port 0 --max-instances 64 --pool-size 2`), drives it for the given time
//! from several concurrent keep-alive clients with a mixed workload (create, execute,
//! get, delete, manifest and bad requests, and executes whose connection is cut with a
//! reset mid-run and that are then asked again by id), checks every response for the
//! expected status and content, and then reports:
//!
//! - requests served, in total and per kind, with p50/p99/max latency;
//! - errors by kind (a wrong status or body is counted under a name such as
//!   `execute: wrong value`, it does not stop the run);
//! - the host's RSS right after start, after 1 s, at its peak and at the end (after
//!   every client deleted its contexts), the growth per 10k requests, and the slope
//!   over the second half of the run;
//! - the Python processes alive at the end (descendants of the host), which must be
//!   the pool's pre-started workers only, and any zombies;
//! - how the host stopped on SIGINT, and whether its workers went with it.
//!
//! The run fails (an `Err`) on any checking error, a wrong number of Python processes
//! at the end, a zombie, a host that died or did not stop cleanly, or a leak (see
//! [`LEAK_LIMIT_KIB`]). Run it through `cargo xtask soak --seconds N`.

use crate::client::{Connection, Response};
use crate::rss_kib;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Concurrent clients, each on its own keep-alive connection; the first half churn
/// (see [`CHURN`]), the others are steady (see [`STEADY`]).
const CLIENTS: usize = 6;
/// The host's `--pool-size`: the Python processes expected once every instance is gone.
const POOL_SIZE: usize = 2;
/// The host's `--max-instances`; the clients never hold more than
/// `CLIENTS * CONTEXTS_PER_CLIENT`, far below it, so a 503 is an error.
const MAX_INSTANCES: usize = 64;
/// Contexts one client keeps alive at most; it deletes its oldest beyond that.
const CONTEXTS_PER_CLIENT: usize = 3;
/// A request that takes longer than this is counted as stuck (and the connection
/// reopened). Every request of the mix should take milliseconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the Python processes may take to settle to the pool size at the end
/// (deleted workers being reaped, the pool refilling).
const SETTLE: Duration = Duration::from_secs(10);
/// A leak: the host's RSS at the end exceeding its RSS 1 s after start by more than
/// this. Memory the allocator keeps after the peak of live instances is not a leak,
/// and 50 MB is far above that (the host holds a few KiB per instance), while a leak
/// per request (a few hundred bytes times hundreds of thousands of requests) or a
/// worker's memory held by the host shows up well above it in a 60 s run.
const LEAK_LIMIT_KIB: u64 = 50 * 1024;
/// A token of the right shape that the host never issued.
const BAD_TOKEN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A small deterministic PRNG (xorshift64*), one per client, so a run is repeatable
/// in what it asks for (though not in how the threads interleave).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The operations of the mix and their weights.
#[derive(Clone, Copy)]
enum Op {
    Create,
    ExecuteValue,
    ExecuteInputs,
    ExecuteState,
    ExecutePrint,
    ExecuteError,
    ExecuteCut,
    Get,
    Manifest,
    Delete,
    Bad,
}

/// The mix of the churning clients: a create or delete in every few requests. A create
/// costs an interpreter start when the pool is empty (tens of milliseconds), so these
/// clients spend most of their time creating.
const CHURN: &[(Op, usize)] = &[
    (Op::Create, 10),
    (Op::ExecuteValue, 22),
    (Op::ExecuteInputs, 6),
    (Op::ExecuteState, 6),
    (Op::ExecutePrint, 6),
    (Op::ExecuteError, 4),
    (Op::ExecuteCut, 3),
    (Op::Get, 10),
    (Op::Manifest, 8),
    (Op::Delete, 6),
    (Op::Bad, 14),
];

/// The mix of the steady clients: the same requests with rare creates and deletes, so
/// the run also serves many (cheap) requests and a leak per request shows in the RSS.
const STEADY: &[(Op, usize)] = &[
    (Op::Create, 1),
    (Op::ExecuteValue, 22),
    (Op::ExecuteInputs, 6),
    (Op::ExecuteState, 6),
    (Op::ExecutePrint, 6),
    (Op::ExecuteError, 4),
    (Op::ExecuteCut, 3),
    (Op::Get, 10),
    (Op::Manifest, 8),
    (Op::Delete, 1),
    (Op::Bad, 14),
];

/// How a request presents itself.
#[derive(Clone, Copy)]
enum Credentials {
    Token,
    BadToken,
    None,
}

/// One context a client holds.
struct Held {
    name: String,
    /// The value of `x` last set in its namespace.
    x: Option<i64>,
}

/// What one client (or the whole run) counted.
#[derive(Default)]
struct Stats {
    /// Responses received, by kind of request.
    served: BTreeMap<&'static str, u64>,
    /// Latencies in microseconds, by kind of request.
    latencies: BTreeMap<&'static str, Vec<u32>>,
    /// Errors by kind.
    errors: BTreeMap<String, u64>,
    /// Executes cut mid-run, and how many of their results were got back by id.
    cut: u64,
    recovered: u64,
    /// The first body or message seen for each kind of error.
    samples: BTreeMap<String, String>,
    /// Bad-token requests refused with 429 because the host's throttle locked the
    /// loopback address out (expected once it has seen enough bad tokens).
    throttled: u64,
    /// Connections reopened after a connection error.
    reconnects: u64,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        for (kind, n) in other.served {
            *self.served.entry(kind).or_default() += n;
        }
        for (kind, l) in other.latencies {
            self.latencies.entry(kind).or_default().extend(l);
        }
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        for (kind, sample) in other.samples {
            self.samples.entry(kind).or_insert(sample);
        }
        self.throttled += other.throttled;
        self.reconnects += other.reconnects;
        self.cut += other.cut;
        self.recovered += other.recovered;
    }

    fn error(&mut self, kind: String, sample: impl FnOnce() -> String) {
        *self.errors.entry(kind.clone()).or_default() += 1;
        self.samples.entry(kind).or_insert_with(|| {
            let mut sample = sample();
            if sample.len() > 300 {
                let mut end = 300;
                while !sample.is_char_boundary(end) {
                    end -= 1;
                }
                sample.truncate(end);
                sample.push_str("...");
            }
            sample
        });
    }

    fn total(&self) -> u64 {
        self.served.values().sum()
    }
}

/// One client thread's state.
struct Client {
    id: usize,
    port: u16,
    token: Arc<str>,
    connection: Option<Connection>,
    rng: Rng,
    /// The weighted operations this client draws from.
    mix: &'static [(Op, usize)],
    contexts: VecDeque<Held>,
    stats: Stats,
    served: Arc<AtomicU64>,
    /// A counter making each request's code and expected answer distinct.
    n: u64,
}

impl Client {
    /// Sends one request and returns the response, or `None` after a connection error
    /// (counted; the connection is reopened by the next request).
    fn request(
        &mut self,
        kind: &'static str,
        method: &str,
        path: &str,
        credentials: Credentials,
        body: &str,
    ) -> Option<Response> {
        if self.connection.is_none() {
            match Connection::open(self.port)
                .and_then(|c| c.set_read_timeout(REQUEST_TIMEOUT).map(|()| c))
            {
                Ok(connection) => self.connection = Some(connection),
                Err(error) => {
                    self.stats
                        .error("connect: failed".into(), || format!("{error:#}"));
                    std::thread::sleep(Duration::from_millis(100));
                    return None;
                }
            }
        }
        let connection = self.connection.as_mut()?;
        let token = match credentials {
            Credentials::Token => Some(&*self.token),
            Credentials::BadToken => Some(BAD_TOKEN),
            Credentials::None => None,
        };
        let request = connection.build(method, path, token, body);
        let started = Instant::now();
        match connection.send(&request) {
            Ok(response) => {
                let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                *self.stats.served.entry(kind).or_default() += 1;
                self.stats.latencies.entry(kind).or_default().push(micros);
                self.served.fetch_add(1, Ordering::Relaxed);
                Some(response)
            }
            Err(error) => {
                let what = error
                    .downcast_ref::<std::io::Error>()
                    .map(|e| match e.kind() {
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                            "stuck (no response within the timeout)".to_string()
                        }
                        other => format!("connection error ({other:?})"),
                    })
                    .unwrap_or_else(|| format!("connection error ({error})"));
                self.stats.error(format!("{kind}: {what}"), || {
                    format!("{method} {path}: {error:#}")
                });
                self.connection = None;
                self.stats.reconnects += 1;
                None
            }
        }
    }

    /// Counts an error of `kind` when `ok` is false.
    fn check(&mut self, ok: bool, kind: &str, what: &str, response: &Response) -> bool {
        if !ok {
            self.stats
                .error(format!("{kind}: {what}"), || response.text());
        }
        ok
    }

    /// Checks the status, counting `<kind>: status <n>` when it differs.
    fn status(&mut self, kind: &str, response: &Response, want: u16) -> bool {
        if response.status == want {
            return true;
        }
        let status = response.status;
        self.stats
            .error(format!("{kind}: status {status}"), || response.text());
        false
    }

    /// Parses a JSON body, counting `<kind>: body not JSON` when it is not.
    fn json(&mut self, kind: &str, response: &Response) -> Option<Value> {
        match serde_json::from_slice(&response.body) {
            Ok(value) => Some(value),
            Err(_) => {
                self.check(false, kind, "body not JSON", response);
                None
            }
        }
    }

    fn run(mut self, until: Instant, stop: &AtomicBool) -> Stats {
        let total: usize = self.mix.iter().map(|(_, w)| w).sum();
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            self.n += 1;
            let mut pick = self.rng.below(total);
            let mut op = Op::Create;
            for (candidate, weight) in self.mix {
                if pick < *weight {
                    op = *candidate;
                    break;
                }
                pick -= weight;
            }
            match op {
                Op::Create => self.create(),
                Op::Manifest => self.manifest(),
                Op::Bad => self.bad(),
                _ if self.contexts.is_empty() => self.create(),
                Op::ExecuteValue => self.execute_value(false),
                Op::ExecuteInputs => self.execute_value(true),
                Op::ExecuteState => self.execute_state(),
                Op::ExecutePrint => self.execute_print(),
                Op::ExecuteError => self.execute_error(),
                Op::ExecuteCut => self.execute_cut(),
                Op::Get => self.get(),
                Op::Delete => {
                    let index = self.rng.below(self.contexts.len());
                    let then_get = self.rng.below(2) == 0;
                    self.delete(index, then_get);
                }
            }
        }
        while !self.contexts.is_empty() {
            self.delete(0, false);
        }
        self.stats
    }

    /// A random context of this client's (there is one).
    fn pick(&mut self) -> usize {
        self.rng.below(self.contexts.len())
    }

    fn create(&mut self) {
        if self.contexts.len() >= CONTEXTS_PER_CLIENT {
            self.delete(0, false);
        }
        let Some(response) =
            self.request("create", "POST", "/PythonContext", Credentials::Token, "")
        else {
            return;
        };
        if !self.status("create", &response, 200) {
            return;
        }
        let Some(value) = self.json("create", &response) else {
            return;
        };
        match value.as_str() {
            Some(name) if name.starts_with("pythonContext") => {
                self.contexts.push_back(Held {
                    name: name.to_string(),
                    x: None,
                });
            }
            _ => {
                self.check(false, "create", "not a context name", &response);
            }
        }
    }

    /// Sends `execute` with `code` (and `inputs`) to context `index`; the result on a 200.
    fn execute(
        &mut self,
        kind: &'static str,
        index: usize,
        body: Value,
    ) -> Option<(Value, Response)> {
        let path = format!("/{}!execute", self.contexts[index].name);
        let response = self.request(kind, "PUT", &path, Credentials::Token, &body.to_string())?;
        if !self.status(kind, &response, 200) {
            return None;
        }
        let result = self.json(kind, &response)?;
        Some((result, response))
    }

    /// `x = i; x * 2` (or `x = y; x * 2` with `y` an input): the value must be `2i`.
    fn execute_value(&mut self, inputs: bool) {
        let index = self.pick();
        let i = (self.id as i64) * 1_000_000_000 + self.n as i64;
        let (kind, body) = if inputs {
            (
                "execute (inputs)",
                json!({"code": "x = y; x * 2", "inputs": {"y": {"type": "integer", "data": i}}}),
            )
        } else {
            ("execute", json!({ "code": format!("x = {i}; x * 2") }))
        };
        let Some((result, response)) = self.execute(kind, index, body) else {
            return;
        };
        let ok = result["value"] == json!({"type": "integer", "data": i * 2})
            && result["messages"] == json!([]);
        if self.check(ok, kind, "wrong value", &response) {
            self.contexts[index].x = Some(i);
        } else {
            // The namespace is no longer known.
            self.contexts[index].x = None;
        }
    }

    /// `x`: the value set by an earlier execute on the same context must still be there.
    fn execute_state(&mut self) {
        let index = self.pick();
        let Some(x) = self.contexts[index].x else {
            return self.execute_value(false);
        };
        let kind = "execute (state)";
        let Some((result, response)) = self.execute(kind, index, json!({"code": "x"})) else {
            return;
        };
        let ok = result["value"] == json!({"type": "integer", "data": x})
            && result["messages"] == json!([]);
        self.check(ok, kind, "lost state", &response);
    }

    /// A `print`: the output must come back as one stdout message, the value `null`.
    fn execute_print(&mut self) {
        let index = self.pick();
        let text = format!("soak {} {}", self.id, self.n);
        let kind = "execute (print)";
        let body = json!({ "code": format!("print({text:?})") });
        let Some((result, response)) = self.execute(kind, index, body) else {
            return;
        };
        let ok = result["messages"] == json!([{"type": "stdout", "message": format!("{text}\n")}])
            && result["value"].is_null();
        self.check(ok, kind, "wrong stdout", &response);
    }

    /// `1/0`: a 200 whose messages hold the `ZeroDivisionError`.
    fn execute_error(&mut self) {
        let index = self.pick();
        let kind = "execute (error)";
        let Some((result, response)) = self.execute(kind, index, json!({"code": "1/0"})) else {
            return;
        };
        let ok = result["messages"].as_array().is_some_and(|messages| {
            messages.len() == 1
                && messages[0]["type"] == "error"
                && messages[0]["message"] == "ZeroDivisionError: division by zero"
                && messages[0]["line"] == 1
        }) && result["value"].is_null();
        self.check(ok, kind, "wrong error message", &response);
    }

    /// An execute with an id whose connection is cut with a reset (as a client that
    /// dropped) once the host has it, then asked again by id with other code: the answer
    /// must be the first run's (`2i`), never lost and never run twice, and the status
    /// route must say `done`.
    fn execute_cut(&mut self) {
        let index = self.pick();
        let name = self.contexts[index].name.clone();
        let i = (self.id as i64) * 1_000_000_000 + self.n as i64;
        let id = format!("soak-{}-{}", self.id, self.n);
        let kind = "execute (cut)";
        let code = format!("import time\ntime.sleep(0.2)\nx = {i}\nx * 2");
        let body = json!({"code": code, "id": id}).to_string();
        let request = format!(
            "PUT /{name}!execute HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: token={}\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            self.token,
            body.len()
        );
        let sent = std::net::TcpStream::connect(("127.0.0.1", self.port)).and_then(|mut stream| {
            std::io::Write::write_all(&mut stream, request.as_bytes()).map(|()| stream)
        });
        let stream = match sent {
            Ok(stream) => stream,
            Err(error) => {
                self.stats
                    .error(format!("{kind}: connection error"), || error.to_string());
                return;
            }
        };
        // Cut only once the host has the execution, so the repeat below must find it.
        let status_path = format!("/{name}/executions/{id}");
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut known = false;
        while !known && Instant::now() < deadline {
            match self.request(
                "execution status",
                "GET",
                &status_path,
                Credentials::Token,
                "",
            ) {
                Some(response) if response.status == 200 => known = true,
                Some(response) if response.status == 404 => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Some(response) => {
                    self.status("execution status", &response, 200);
                    return;
                }
                None => return,
            }
        }
        if !known {
            self.stats
                .error(format!("{kind}: never arrived"), || id.clone());
            return;
        }
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        drop(stream);
        self.stats.cut += 1;
        let again = json!({"code": "x = -1\nx", "id": id});
        let Some((result, response)) = self.execute(kind, index, again) else {
            return;
        };
        let ok = result["value"] == json!({"type": "integer", "data": i * 2})
            && result["messages"] == json!([]);
        if !self.check(ok, kind, "lost or repeated result", &response) {
            self.contexts[index].x = None;
            return;
        }
        self.stats.recovered += 1;
        self.contexts[index].x = Some(i);
        if let Some(response) = self.request(
            "execution status",
            "GET",
            &status_path,
            Credentials::Token,
            "",
        ) {
            if self.status("execution status", &response, 200) {
                let done = self
                    .json("execution status", &response)
                    .is_some_and(|status| status["status"] == "done");
                self.check(done, "execution status", "not done", &response);
            }
        }
    }

    fn get(&mut self) {
        let index = self.pick();
        let name = self.contexts[index].name.clone();
        let Some(response) =
            self.request("get", "GET", &format!("/{name}"), Credentials::Token, "")
        else {
            return;
        };
        if !self.status("get", &response, 200) {
            return;
        }
        let Some(state) = self.json("get", &response) else {
            return;
        };
        let ok = state["name"] == name.as_str()
            && state["type"] == "PythonContext"
            && state["pid"].as_u64().is_some()
            && state["busy"] == false;
        self.check(ok, "get", "wrong state", &response);
    }

    fn manifest(&mut self) {
        let Some(response) = self.request("manifest", "GET", "/manifest", Credentials::Token, "")
        else {
            return;
        };
        if !self.status("manifest", &response, 200) {
            return;
        }
        let Some(manifest) = self.json("manifest", &response) else {
            return;
        };
        let ok = manifest["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("rust-host-"))
            && manifest["types"]["PythonContext"]["available"] == true;
        if !self.check(ok, "manifest", "wrong manifest", &response) {
            return;
        }
        let listed = manifest["instances"].as_array();
        let ok = listed.is_some_and(|listed| {
            self.contexts
                .iter()
                .all(|context| listed.iter().any(|name| name == context.name.as_str()))
        });
        self.check(ok, "manifest", "a live instance not listed", &response);
    }

    /// Deletes context `index`; with `then_get`, checks a `GET` of it is then a 404.
    fn delete(&mut self, index: usize, then_get: bool) {
        let Some(context) = self.contexts.remove(index) else {
            return;
        };
        let path = format!("/{}", context.name);
        let Some(response) = self.request("delete", "DELETE", &path, Credentials::Token, "") else {
            return;
        };
        if !self.status("delete", &response, 200) {
            return;
        }
        let ok = response.body == b"null";
        self.check(ok, "delete", "body not null", &response);
        if then_get {
            let kind = "get (deleted)";
            if let Some(response) = self.request(kind, "GET", &path, Credentials::Token, "") {
                if self.status(kind, &response, 404) {
                    let ok = response.text().starts_with("Not found: ");
                    self.check(ok, kind, "wrong body", &response);
                }
            }
        }
    }

    /// One of the bad requests, each with its status and the start of its text body.
    fn bad(&mut self) {
        let own = if self.contexts.is_empty() {
            None
        } else {
            let index = self.pick();
            Some(self.contexts[index].name.clone())
        };
        let unknown = format!("pythonContext{}", 900_000_000 + self.n);
        let (kind, method, path, credentials, body, status, prefix) = match self.rng.below(6) {
            0 => match &own {
                Some(name) => (
                    "bad: malformed JSON",
                    "PUT",
                    format!("/{name}!execute"),
                    Credentials::Token,
                    "{\"code\": ",
                    400,
                    "Bad request: ",
                ),
                None => (
                    "bad: malformed JSON",
                    "POST",
                    "/PythonContext".to_string(),
                    Credentials::Token,
                    "{oops",
                    400,
                    "Bad request: ",
                ),
            },
            1 => (
                "bad: unknown instance",
                "PUT",
                format!("/{unknown}!execute"),
                Credentials::Token,
                "{\"code\": \"1\"}",
                404,
                "Not found: ",
            ),
            2 => match &own {
                Some(name) => (
                    "bad: unknown method",
                    "PUT",
                    format!("/{name}!noSuchMethod"),
                    Credentials::Token,
                    "",
                    404,
                    "Not found: ",
                ),
                None => (
                    "bad: unknown type",
                    "POST",
                    "/NoSuchContext".to_string(),
                    Credentials::Token,
                    "",
                    404,
                    "Not found: ",
                ),
            },
            3 => (
                "bad: bad token",
                "GET",
                format!("/{}", own.as_deref().unwrap_or("pythonContext1")),
                Credentials::BadToken,
                "",
                403,
                "Forbidden: ",
            ),
            4 => (
                "bad: no credentials",
                "GET",
                format!("/{}", own.as_deref().unwrap_or("pythonContext1")),
                Credentials::None,
                "",
                401,
                "Unauthorized: ",
            ),
            _ => (
                "bad: bad path",
                "GET",
                "/a/b/c".to_string(),
                Credentials::Token,
                "",
                400,
                "Bad request: ",
            ),
        };
        let Some(response) = self.request(kind, method, &path, credentials, body) else {
            return;
        };
        if matches!(credentials, Credentials::BadToken) && response.status == 429 {
            self.stats.throttled += 1;
            let ok = response.text().starts_with("Too many requests");
            self.check(ok, kind, "wrong 429 body", &response);
            return;
        }
        if self.status(kind, &response, status) {
            let ok = response.text().starts_with(prefix);
            self.check(ok, kind, "wrong body", &response);
        }
    }
}

/// A process as `/proc/<pid>/stat` shows it.
struct Process {
    pid: u32,
    ppid: u32,
    state: char,
    comm: String,
}

fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let comm = stat.get(open + 1..close)?.to_string();
            let mut rest = stat.get(close + 1..)?.split_whitespace();
            let state = rest.next()?.chars().next()?;
            let ppid = rest.next()?.parse().ok()?;
            Some(Process {
                pid,
                ppid,
                state,
                comm,
            })
        })
        .collect()
}

/// The descendants of `root` (children, their children, ...).
fn descendants(root: u32) -> Vec<Process> {
    let all = processes();
    let parent: BTreeMap<u32, u32> = all.iter().map(|p| (p.pid, p.ppid)).collect();
    all.into_iter()
        .filter(|p| {
            let mut pid = p.ppid;
            for _ in 0..64 {
                if pid == root {
                    return true;
                }
                match parent.get(&pid) {
                    Some(&next) if next != pid && pid > 1 => pid = next,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// Python processes (workers; the zygote apart) and zombies among the host's
/// descendants.
struct Census {
    python: Vec<u32>,
    zygotes: Vec<u32>,
    zombies: Vec<(u32, String)>,
}

/// The PythonContext zygote: started with `--zygote` and single-threaded (the workers
/// it forks show its command line too, but each runs threads of its own).
fn is_zygote(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let zygote_args = cmdline.split(|&b| b == 0).any(|arg| arg == b"--zygote");
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    zygote_args && threads == 1
}

fn census(host: u32) -> Census {
    let mut python = Vec::new();
    let mut zygotes = Vec::new();
    let mut zombies = Vec::new();
    for process in descendants(host) {
        if process.state == 'Z' {
            zombies.push((process.pid, process.comm));
        } else if process.comm.starts_with("python") {
            if is_zygote(process.pid) {
                zygotes.push(process.pid);
            } else {
                python.push(process.pid);
            }
        }
    }
    Census {
        python,
        zygotes,
        zombies,
    }
}

/// The host under soak, with its stdout and stderr read by threads.
struct SoakHost {
    child: Child,
    port: u16,
    token: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Reads lines from `reader` into `lines` until it closes.
fn collect_lines(
    reader: impl BufRead + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    })
}

impl SoakHost {
    fn start(binary: &Path) -> Result<SoakHost> {
        let mut child = Command::new(binary)
            .args(["serve", "--port", "0"])
            .args(["--max-instances", &MAX_INSTANCES.to_string()])
            .args(["--pool-size", &POOL_SIZE.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("a stdout pipe")?;
        let stderr = child.stderr.take().context("a stderr pipe")?;
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = vec![collect_lines(BufReader::new(stderr), stderr_lines.clone())];
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        readers.push(collect_lines(stdout, stdout_lines.clone()));
        let (port, token) = crate::client::log_in(&line)?;
        Ok(SoakHost {
            child,
            port,
            token,
            stdout: stdout_lines,
            stderr: stderr_lines,
            readers,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the host has exited (and how).
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGINT and waits up to 10 s: the exit status and how long it took, or
    /// `None` if it had to be killed.
    fn stop(&mut self) -> (Option<ExitStatus>, Duration) {
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = started + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return (Some(status), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (None, started.elapsed())
    }
}

impl Drop for SoakHost {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.stop();
        }
    }
}

/// Microseconds at percentile `p` of sorted `values`.
fn percentile(values: &[u32], p: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Least-squares slope of RSS (KiB) against requests served, in KiB per 10k requests.
fn slope_per_10k(samples: &[(f64, u64, u64)]) -> Option<f64> {
    if samples.len() < 3 {
        return None;
    }
    let n = samples.len() as f64;
    let mean_x = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| s.2 as f64).sum::<f64>() / n;
    let sxx: f64 = samples.iter().map(|s| (s.1 as f64 - mean_x).powi(2)).sum();
    let sxy: f64 = samples
        .iter()
        .map(|s| (s.1 as f64 - mean_x) * (s.2 as f64 - mean_y))
        .sum();
    (sxx > 0.0).then(|| sxy / sxx * 10_000.0)
}

/// Runs the soak for `seconds` against `binary`, prints the report and writes it to `out`.
pub fn run(binary: &Path, seconds: u64, out: Option<&Path>) -> Result<()> {
    let mut host = SoakHost::start(binary)?;
    let pid = host.pid();
    let rss_start = rss_kib(pid).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(1));
    let rss_1s = rss_kib(pid).unwrap_or(0);
    let python_start = census(pid).python.len();
    println!(
        "soak: {seconds} s, {CLIENTS} clients ({} churning, {} steady), host pid {pid} \
         (--max-instances {MAX_INSTANCES} --pool-size {POOL_SIZE})",
        CLIENTS / 2,
        CLIENTS - CLIENTS / 2
    );

    let token: Arc<str> = Arc::from(host.token.as_str());
    let served = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let clients: Vec<JoinHandle<Stats>> = (0..CLIENTS)
        .map(|id| {
            let client = Client {
                id,
                port: host.port,
                token: token.clone(),
                connection: None,
                rng: Rng::new(id as u64 + 1),
                mix: if id < CLIENTS / 2 { CHURN } else { STEADY },
                contexts: VecDeque::new(),
                stats: Stats::default(),
                served: served.clone(),
                n: 0,
            };
            let stop = stop.clone();
            std::thread::spawn(move || client.run(until, &stop))
        })
        .collect();

    // Samples (seconds, requests served, RSS KiB) every 250 ms while the clients run.
    let mut samples: Vec<(f64, u64, u64)> = Vec::new();
    let mut rss_peak = rss_1s.max(rss_start);
    let mut died = None;
    // The host's Python processes as last seen, to check they end if the host dies.
    let mut last_python = Vec::new();
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
        if let Some(status) = host.exited() {
            died = Some(status);
            stop.store(true, Ordering::Relaxed);
            break;
        }
        last_python = census(pid).python;
        if let Some(rss) = rss_kib(pid) {
            rss_peak = rss_peak.max(rss);
            samples.push((
                started.elapsed().as_secs_f64(),
                served.load(Ordering::Relaxed),
                rss,
            ));
        }
    }
    let mut stats = Stats::default();
    for client in clients {
        match client.join() {
            Ok(client_stats) => stats.merge(client_stats),
            Err(_) => stats.error("client: thread panicked".into(), String::new),
        }
    }
    let elapsed = started.elapsed();
    let total = stats.total();

    // The end: every client has deleted its contexts. Let the workers settle to the pool.
    let mut end_manifest_instances = None;
    let mut settle_time = Duration::ZERO;
    let mut end = census(pid);
    if died.is_none() {
        let settle_start = Instant::now();
        while end.python.len() != POOL_SIZE && settle_start.elapsed() < SETTLE {
            std::thread::sleep(Duration::from_millis(50));
            end = census(pid);
        }
        settle_time = settle_start.elapsed();
        // Counted again a moment later, so a count that only passed through the pool
        // size (a worker ending while another starts) is not taken for settled.
        std::thread::sleep(Duration::from_millis(200));
        end = census(pid);
        let mut connection = Connection::open(host.port)?;
        let request = connection.build("GET", "/manifest", Some(&host.token), "");
        let response = connection.send(&request)?;
        let manifest: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        end_manifest_instances = manifest["instances"].as_array().map(Vec::len);
        if end_manifest_instances != Some(0) {
            stats.error("end: manifest lists instances".into(), || response.text());
        }
    }
    let rss_end = rss_kib(pid).unwrap_or(0);
    rss_peak = rss_peak.max(rss_end);
    let live_instances = end_manifest_instances.unwrap_or(0);

    // Stop the host; its workers and its zygote must go with it.
    let end_python = if died.is_some() {
        last_python
    } else {
        let mut all = end.python.clone();
        all.extend(&end.zygotes);
        all
    };
    let (exit, stop_time) = if died.is_some() {
        (died, Duration::ZERO)
    } else {
        host.stop()
    };
    let alive = |pids: &[u32]| -> Vec<u32> {
        pids.iter()
            .copied()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|stat| stat.contains("(python") && !stat.contains(") Z "))
            })
            .collect()
    };
    let mut survivors = alive(&end_python);
    let waited = Instant::now();
    while !survivors.is_empty() && waited.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
        survivors = alive(&survivors);
    }
    let stdout = host
        .stdout
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let stderr = host
        .stderr
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let said_stopped = stdout.iter().any(|line| line == "Host has stopped");

    // The report.
    let growth = rss_end as i64 - rss_1s as i64;
    let growth_per_10k = growth as f64 * 10_000.0 / total.max(1) as f64;
    let half = elapsed.as_secs_f64() / 2.0;
    let second_half: Vec<_> = samples.iter().copied().filter(|s| s.0 >= half).collect();
    let slope = slope_per_10k(&second_half);
    let rate = total as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "duration: {:.1} s; requests served: {total} ({rate:.0}/s)",
        elapsed.as_secs_f64()
    );
    println!(
        "  {:<24} {:>9} {:>9} {:>9} {:>10}",
        "kind", "count", "p50 µs", "p99 µs", "max µs"
    );
    let mut kinds = Vec::new();
    for (kind, latencies) in &mut stats.latencies {
        latencies.sort_unstable();
        let (p50, p99) = (percentile(latencies, 0.5), percentile(latencies, 0.99));
        let max = latencies.last().copied().unwrap_or(0);
        println!(
            "  {kind:<24} {:>9} {p50:>9} {p99:>9} {max:>10}",
            latencies.len()
        );
        kinds.push(json!({
            "kind": kind, "count": latencies.len(), "p50_us": p50, "p99_us": p99, "max_us": max,
        }));
    }
    if stats.errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors: {}", stats.errors.values().sum::<u64>());
        for (kind, count) in &stats.errors {
            let sample = stats.samples.get(kind).map(String::as_str).unwrap_or("");
            println!("  {count:>7}  {kind}    e.g. {sample:?}");
        }
    }
    println!(
        "bad-token requests refused with 429 by the throttle (expected): {}; reconnects: {}",
        stats.throttled, stats.reconnects
    );
    println!(
        "executes cut mid-run and asked again by id: {}; results got back: {}; lost: {}",
        stats.cut,
        stats.recovered,
        stats.cut - stats.recovered.min(stats.cut)
    );
    println!(
        "host RSS: start {}, after 1 s {}, peak {}, end {}; growth {:+.1} MiB, {:+.1} KiB per 10k requests",
        mib(rss_start),
        mib(rss_1s),
        mib(rss_peak),
        mib(rss_end),
        growth as f64 / 1024.0,
        growth_per_10k
    );
    match slope {
        Some(slope) => println!(
            "host RSS slope over the second half: {slope:+.1} KiB per 10k requests ({} samples)",
            second_half.len()
        ),
        None => println!("host RSS slope over the second half: too few samples"),
    }
    println!(
        "python workers alive at start: {python_start}; at end: {} (pool: {POOL_SIZE}, \
         live instances: {live_instances}), settled in {:.2} s; zygotes at the end: {}; zombies: {}",
        end.python.len(),
        settle_time.as_secs_f64(),
        end.zygotes.len(),
        end.zombies.len()
    );
    for (zombie, comm) in &end.zombies {
        println!("  zombie: pid {zombie} ({comm})");
    }
    match (&died, exit) {
        (Some(status), _) => println!(
            "host DIED during the run: {status}; its workers still alive 2 s later: {}",
            survivors.len()
        ),
        (None, Some(status)) => println!(
            "host stopped on SIGINT in {:.2} s: {status}; said \"Host has stopped\": {said_stopped}; \
             its workers still alive: {}",
            stop_time.as_secs_f64(),
            survivors.len()
        ),
        (None, None) => println!("host did NOT stop within 10 s of SIGINT; killed"),
    }
    let warnings = stderr.iter().filter(|l| l.contains("WARN")).count();
    let log_errors = stderr.iter().filter(|l| l.contains("ERROR")).count();
    println!(
        "host log (stderr): {} lines, {warnings} warnings, {log_errors} errors",
        stderr.len()
    );
    for line in stderr.iter().take(10) {
        println!("  {line}");
    }

    let mut failures = Vec::new();
    if !stats.errors.is_empty() {
        failures.push(format!("{} errors", stats.errors.values().sum::<u64>()));
    }
    if died.is_none() && end.python.len() != POOL_SIZE + live_instances {
        failures.push(format!(
            "{} python processes at the end, expected {}",
            end.python.len(),
            POOL_SIZE + live_instances
        ));
    }
    if end.zygotes.len() > 1 {
        failures.push(format!(
            "{} zygotes at the end, expected at most 1",
            end.zygotes.len()
        ));
    }
    if live_instances != 0 {
        failures.push(format!("{live_instances} instances left at the end"));
    }
    if !end.zombies.is_empty() {
        failures.push(format!("{} zombies", end.zombies.len()));
    }
    if let Some(status) = &died {
        failures.push(format!("the host died ({status})"));
    }
    match exit {
        _ if died.is_some() => {}
        Some(status) if status.success() => {}
        Some(status) => failures.push(format!("the host exited with {status} on SIGINT")),
        None => failures.push("the host did not stop within 10 s of SIGINT".into()),
    }
    if died.is_none() && !said_stopped {
        failures.push("the host did not print \"Host has stopped\"".into());
    }
    if !survivors.is_empty() {
        failures.push(format!("{} workers outlived the host", survivors.len()));
    }
    if rss_end > rss_1s + LEAK_LIMIT_KIB {
        failures.push(format!(
            "host RSS grew by {} (limit {})",
            mib(rss_end - rss_1s),
            mib(LEAK_LIMIT_KIB)
        ));
    }
    if total == 0 {
        failures.push("no request was served".into());
    }
    if failures.is_empty() {
        println!("soak: PASS");
    } else {
        println!("soak: FAIL: {}", failures.join("; "));
    }

    if let Some(out) = out {
        let report = json!({
            "seconds": seconds,
            "duration_s": elapsed.as_secs_f64(),
            "clients": CLIENTS,
            "pool_size": POOL_SIZE,
            "max_instances": MAX_INSTANCES,
            "requests": total,
            "per_second": rate,
            "kinds": kinds,
            "errors": stats.errors,
            "executes_cut": stats.cut,
            "executes_recovered": stats.recovered,
            "error_samples": stats.samples,
            "throttled_bad_tokens": stats.throttled,
            "reconnects": stats.reconnects,
            "rss_kib": {
                "start": rss_start,
                "after_1s": rss_1s,
                "peak": rss_peak,
                "end": rss_end,
                "growth": growth,
                "growth_per_10k_requests": growth_per_10k,
                "second_half_slope_per_10k_requests": slope,
                "samples": samples
                    .iter()
                    .map(|(t, n, rss)| json!([t, n, rss]))
                    .collect::<Vec<_>>(),
            },
            "python_at_start": python_start,
            "python_at_end": end.python.len(),
            "live_instances_at_end": live_instances,
            "settle_s": settle_time.as_secs_f64(),
            "zombies": end.zombies.len(),
            "host_died": died.map(|s| s.to_string()),
            "host_exit": exit.map(|s| s.to_string()),
            "host_stop_s": stop_time.as_secs_f64(),
            "workers_outliving_host": survivors.len(),
            "host_log_lines": stderr.len(),
            "host_log_warnings": warnings,
            "host_log_errors": log_errors,
            "failures": failures,
            "pass": failures.is_empty(),
        });
        std::fs::write(out, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", out.display()))?;
        println!("written to {}", out.display());
    }
    if !failures.is_empty() {
        bail!("the soak failed: {}", failures.join("; "));
    }
    Ok(())
}
