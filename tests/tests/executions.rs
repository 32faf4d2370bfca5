//! Executions (PROTOCOL.md section 10, issue 10) as a user sees them: the
//! `Stencila-Execution` header, executions that survive a connection cut with a reset,
//! repeats by id that run the code once, the status route, live server-sent events with
//! resumption and replay, interrupts, the output cap, authorization and CORS on the new
//! routes, and the 431 for oversized header sections. Real binary, real `python3`.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use stencila_tests::{eventually, send_raw, HostProcess, Response};

/// A host with a token and one context of `type_name`.
struct Session {
    host: HostProcess,
    token: String,
    name: String,
}

impl Session {
    fn start(args: &[&str], type_name: &str) -> Session {
        let host = HostProcess::start(args);
        let token = host.token();
        let response = host
            .request("POST", &format!("/{type_name}"))
            .cookie(&token)
            .send();
        assert_eq!(response.status, 200, "{}", response.text());
        let name = response.json().as_str().expect("a name").to_string();
        Session { host, token, name }
    }

    fn python() -> Session {
        Session::start(&[], "PythonContext")
    }

    fn execute(&self, arg: &Value) -> Response {
        self.host
            .request("PUT", &format!("/{}!execute", self.name))
            .cookie(&self.token)
            .json(arg)
            .send()
    }

    fn get(&self, path: &str) -> Response {
        self.host.request("GET", path).cookie(&self.token).send()
    }

    fn status(&self, id: &str) -> Response {
        self.get(&format!("/{}/executions/{id}", self.name))
    }

    /// Waits until the instance knows execution `id` (its request has arrived).
    fn wait_known(&self, id: &str) {
        assert!(
            eventually(Duration::from_secs(30), || self.status(id).status == 200),
            "execution {id} never appeared"
        );
    }

    fn events(&self, id: &str, last_event_id: Option<u64>) -> EventStream {
        let mut head = format!(
            "GET /{}/executions/{id}/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: token={}\r\nAccept: text/event-stream\r\n",
            self.name, self.host.port, self.token
        );
        if let Some(n) = last_event_id {
            head.push_str(&format!("Last-Event-ID: {n}\r\n"));
        }
        head.push_str("\r\n");
        EventStream::open(self.host.port, head.as_bytes())
    }

    /// Starts an `execute` on its own connection and returns at once; the thread
    /// returns the response.
    fn execute_in_background(&self, arg: Value) -> std::thread::JoinHandle<Response> {
        let port = self.host.port;
        let path = format!("/{}!execute", self.name);
        let token = self.token.clone();
        std::thread::spawn(move || {
            stencila_tests::Request::new(port, "PUT", &path)
                .cookie(&token)
                .json(&arg)
                .send()
        })
    }

    /// Sends `execute` with `arg`, lets it start, then cuts the connection with a reset
    /// (as a killed client or a dropped network leaves it), never reading the answer.
    fn execute_and_cut(&self, arg: &Value) {
        let body = arg.to_string();
        let request = format!(
            "PUT /{}!execute HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: token={}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.name,
            self.host.port,
            self.token,
            body.len(),
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.host.port)).expect("a connection");
        stream.write_all(request.as_bytes()).expect("sent");
        std::thread::sleep(Duration::from_millis(500));
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(stream);
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    id: u64,
    kind: String,
    data: Value,
}

/// A raw reader of a `text/event-stream` response: it undoes the chunked framing as
/// bytes arrive, so each event is seen when it is sent.
struct EventStream {
    stream: TcpStream,
    status: u16,
    headers: String,
    /// Bytes read and not yet dechunked.
    raw: Vec<u8>,
    chunked: bool,
    /// Dechunked body not yet parsed into events.
    body: Vec<u8>,
    ended: bool,
}

impl EventStream {
    fn open(port: u16, request: &[u8]) -> EventStream {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("a connection");
        stream.write_all(request).expect("sent");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a timeout");
        let mut raw = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let split = loop {
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            assert!(Instant::now() < deadline, "no response head");
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => panic!(
                    "closed before the head: {:?}",
                    String::from_utf8_lossy(&raw)
                ),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        };
        let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let status = headers
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let chunked = headers.contains("transfer-encoding: chunked");
        let rest = raw[split + 4..].to_vec();
        EventStream {
            stream,
            status,
            headers,
            raw: rest,
            chunked,
            body: Vec::new(),
            ended: false,
        }
    }

    /// Moves complete chunks from `raw` to `body`.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.trim(), 16).expect("a chunk size");
            if size == 0 {
                self.ended = true;
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }

    /// The next event within `limit`; `None` when the stream ended (or time ran out).
    fn next(&mut self, limit: Duration) -> Option<Event> {
        let deadline = Instant::now() + limit;
        loop {
            self.dechunk();
            if let Some(at) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.body.drain(..at + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8 events");
                let mut event = Event {
                    id: 0,
                    kind: String::new(),
                    data: Value::Null,
                };
                let mut any = false;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        event.id = v.parse().expect("a numeric id");
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event.kind = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        event.data = serde_json::from_str(v).expect("JSON data");
                    }
                }
                if any {
                    return Some(event);
                }
                continue; // a keep-alive comment
            }
            if self.ended || Instant::now() >= deadline {
                return None;
            }
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => self.ended = true,
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    }

    /// Every event up to the end of the stream.
    fn all(&mut self, limit: Duration) -> Vec<Event> {
        let deadline = Instant::now() + limit;
        let mut events = Vec::new();
        while let Some(event) = self.next(deadline.saturating_duration_since(Instant::now())) {
            events.push(event);
        }
        events
    }
}

/// Checks the numbering rules: ids from `first` without gaps, `done` last with the count.
fn check_sequence(events: &[Event], first: u64, status: &str) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.id, first + i as u64, "{events:?}");
    }
    let done = events.last().expect("a done event");
    assert_eq!(done.kind, "done", "{events:?}");
    assert_eq!(done.data["status"], json!(status), "{events:?}");
    assert_eq!(done.data["events"], json!(done.id - 1), "{events:?}");
}

fn stdout_text(events: &[Event]) -> String {
    events
        .iter()
        .filter(|e| e.kind == "stdout")
        .map(|e| e.data.as_str().expect("text"))
        .collect()
}

#[test]
fn every_execute_answers_with_its_execution_id_and_its_status_is_kept() {
    let s = Session::python();
    let chosen = s.execute(&json!({"code": "6*7", "id": "answer_1"}));
    assert_eq!(chosen.status, 200, "{}", chosen.text());
    assert_eq!(chosen.header("stencila-execution"), Some("answer_1"));
    assert_eq!(
        chosen.json()["value"],
        json!({"type": "integer", "data": 42})
    );

    // Without an id the host makes one; a bare string of code too.
    let made = s.execute(&json!("1 + 1"));
    let id = made
        .header("stencila-execution")
        .expect("an id")
        .to_string();
    assert!(!id.is_empty() && id.len() <= 64, "{id}");
    let status = s.status(&id);
    assert_eq!(status.status, 200);
    assert_eq!(
        status.json()["value"],
        json!({"type": "integer", "data": 2})
    );

    let status = s.status("answer_1").json();
    assert_eq!(status["id"], json!("answer_1"));
    assert_eq!(status["status"], json!("done"));
    assert!(status["started"].as_f64().expect("started") > 1e9);
    assert!(status["ended"].as_f64().expect("ended") >= status["started"].as_f64().expect("ok"));
    assert_eq!(status["messages"], json!([]));

    // A code error is a 200 with an error message, and a failed execution.
    let failed = s.execute(&json!({"code": "nope", "id": "f"}));
    assert_eq!(failed.status, 200);
    assert_eq!(s.status("f").json()["status"], json!("failed"));

    for bad in [json!(""), json!("a b"), json!("x".repeat(65)), json!(7)] {
        let refused = s.execute(&json!({"code": "1", "id": bad}));
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text());
        assert!(refused.text().contains("`id`"), "{}", refused.text());
    }
    let unknown = s.status("never");
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert!(
        unknown.text().starts_with("Not found: "),
        "{}",
        unknown.text()
    );
    let no_instance = s.get("/pythonContext9/executions/x");
    assert_eq!(no_instance.status, 404);
    let no_such = s
        .host
        .request("PUT", "/pythonContext9!execute")
        .cookie(&s.token)
        .json(&json!({"code": "1", "id": "lost"}))
        .send();
    assert_eq!(no_such.status, 404);
    assert_eq!(no_such.header("stencila-execution"), Some("lost"));
}

#[test]
fn a_cut_connection_does_not_stop_the_execution_and_the_result_is_got_by_id() {
    let s = Session::python();
    s.execute_and_cut(&json!({
        "code": "import time\ntime.sleep(2)\nsurvived = 42\nsurvived",
        "id": "cut-1"
    }));
    let running = s.status("cut-1").json();
    assert_eq!(running["status"], json!("running"), "{running}");
    assert_eq!(running["ended"], Value::Null);

    // Reconnecting with the same id waits for the same execution: the code is not
    // run again (it would take another 2 s and rebind the name).
    let again = s.execute(&json!({"code": "survived = 0\nsurvived", "id": "cut-1"}));
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.header("stencila-execution"), Some("cut-1"));
    assert_eq!(
        again.json()["value"],
        json!({"type": "integer", "data": 42})
    );
    let after = s.execute(&json!("survived"));
    assert_eq!(
        after.json()["value"],
        json!({"type": "integer", "data": 42})
    );
    assert_eq!(s.status("cut-1").json()["status"], json!("done"));
}

#[test]
fn repeating_an_id_while_it_runs_runs_the_code_once() {
    let s = Session::python();
    s.execute(&json!("runs = 0"));
    let code = "import time\nruns += 1\ntime.sleep(1.5)\nruns";
    let first = s.execute_in_background(json!({"code": code, "id": "once"}));
    s.wait_known("once");
    let repeats: Vec<_> = (0..3)
        .map(|_| s.execute_in_background(json!({"code": code, "id": "once"})))
        .collect();
    let first = first.join().expect("the first request");
    assert_eq!(first.json()["value"], json!({"type": "integer", "data": 1}));
    for repeat in repeats {
        let repeat = repeat.join().expect("a repeat");
        assert_eq!(repeat.status, 200);
        assert_eq!(repeat.header("stencila-execution"), Some("once"));
        assert_eq!(repeat.json(), first.json());
    }
    // And once it is done, a repeat still returns the kept result without running.
    let late = s.execute(&json!({"code": code, "id": "once"}));
    assert_eq!(late.json(), first.json());
    let runs = s.execute(&json!("runs"));
    assert_eq!(runs.json()["value"], json!({"type": "integer", "data": 1}));
}

#[test]
fn printed_output_streams_live_and_the_first_line_arrives_within_1_2_s() {
    let s = Session::python();
    let started = Instant::now();
    let request = s.execute_in_background(json!({
        "code": "import time\nfor i in range(5):\n    print(i)\n    time.sleep(1)",
        "id": "live"
    }));
    s.wait_known("live");
    let mut stream = s.events("live", None);
    assert_eq!(stream.status, 200);
    assert!(
        stream.headers.contains("content-type: text/event-stream"),
        "{}",
        stream.headers
    );
    let first = stream.next(Duration::from_secs(10)).expect("an event");
    let at = started.elapsed();
    assert_eq!((first.id, first.kind.as_str()), (1, "stdout"), "{first:?}");
    assert_eq!(first.data, json!("0\n"));
    assert!(
        at < Duration::from_millis(1200),
        "the first line came after {at:?}"
    );
    // While it runs, the status shows the output so far.
    let running = s.status("live").json();
    assert_eq!(running["status"], json!("running"));
    assert_eq!(running["messages"][0]["type"], json!("stdout"));
    let mut events = vec![first];
    events.extend(stream.all(Duration::from_secs(30)));
    check_sequence(&events, 1, "done");
    assert_eq!(stdout_text(&events), "0\n1\n2\n3\n4\n");
    // Each line came as its own event, as it was printed.
    assert!(
        events.iter().filter(|e| e.kind == "stdout").count() >= 4,
        "{events:?}"
    );
    let response = request.join().expect("the execute");
    assert_eq!(
        response.json()["messages"],
        json!([{"type": "stdout", "message": "0\n1\n2\n3\n4\n"}])
    );
}

#[test]
fn output_of_subprocesses_streams_live_too() {
    let s = Session::python();
    let request = s.execute_in_background(json!({
        "code": "import subprocess\nsubprocess.run(['sh', '-c', 'echo one; sleep 1.5; echo two >&2'])\nNone",
        "id": "sub"
    }));
    s.wait_known("sub");
    let mut stream = s.events("sub", None);
    let first = stream.next(Duration::from_secs(10)).expect("an event");
    let seen = Instant::now();
    assert_eq!(
        (first.kind.as_str(), &first.data),
        ("stdout", &json!("one\n"))
    );
    let rest = stream.all(Duration::from_secs(30));
    // The second line came about 1.5 s later, while the code still ran.
    assert!(seen.elapsed() > Duration::from_millis(1000), "{rest:?}");
    assert_eq!(rest[0].kind, "stderr");
    assert_eq!(rest[0].data, json!("two\n"));
    let response = request.join().expect("the execute");
    assert_eq!(
        response.json()["messages"],
        json!([{"type": "stdout", "message": "one\n"}, {"type": "stderr", "message": "two\n"}])
    );
}

#[test]
fn node_contexts_stream_their_output_live_too() {
    let s = Session::start(&[], "NodeContext");
    let request = s.execute_in_background(json!({
        "code": "for (let i = 0; i < 3; i++) { console.log(i); await new Promise((r) => setTimeout(r, 700)); }",
        "id": "js"
    }));
    s.wait_known("js");
    let mut stream = s.events("js", None);
    let first = stream.next(Duration::from_secs(10)).expect("an event");
    assert_eq!(
        (first.kind.as_str(), &first.data),
        ("stdout", &json!("0\n"))
    );
    // It came while the code still ran.
    assert_eq!(s.status("js").json()["status"], json!("running"));
    let mut events = vec![first];
    events.extend(stream.all(Duration::from_secs(30)));
    check_sequence(&events, 1, "done");
    assert_eq!(stdout_text(&events), "0\n1\n2\n");
    let response = request.join().expect("the execute");
    assert_eq!(
        response.json()["messages"],
        json!([{"type": "stdout", "message": "0\n1\n2\n"}])
    );
}

/// JupyterContext streams what the kernel prints: needs the test virtualenv that
/// `cargo xtask test` makes (`target/test-venv`, or `STENCILA_TEST_VENV`); says why and
/// skips without it, as the JupyterContext tests do.
#[test]
fn jupyter_contexts_stream_their_output_live_too() {
    let venv = std::env::var_os("STENCILA_TEST_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv")
        });
    let jupyter_path = venv.join("share/jupyter");
    if !jupyter_path.join("kernels/python3/kernel.json").is_file() {
        eprintln!(
            "skipped: no test virtualenv with ipykernel at {}",
            venv.display()
        );
        return;
    }
    let runtime =
        std::env::temp_dir().join(format!("stencila-exec-jupyter-{}", std::process::id()));
    std::fs::create_dir_all(runtime.join("data")).expect("a scratch directory");
    let host = HostProcess::start_with_env(
        &[],
        &[
            ("JUPYTER_PATH", jupyter_path.to_str().expect("UTF-8")),
            (
                "JUPYTER_DATA_DIR",
                runtime.join("data").to_str().expect("UTF-8"),
            ),
            ("VIRTUAL_ENV", ""),
            ("CONDA_PREFIX", ""),
            ("XDG_RUNTIME_DIR", runtime.to_str().expect("UTF-8")),
        ],
    );
    let token = host.token();
    let created = host
        .request("POST", "/JupyterContext")
        .cookie(&token)
        .json(&json!({"kernel": "python3"}))
        .send();
    assert_eq!(created.status, 200, "{}", created.text());
    let s = Session {
        name: created.json().as_str().expect("a name").to_string(),
        host,
        token,
    };
    let request = s.execute_in_background(json!({
        "code": "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.7)",
        "id": "kernel"
    }));
    s.wait_known("kernel");
    let mut stream = s.events("kernel", None);
    let first = stream.next(Duration::from_secs(20)).expect("an event");
    assert_eq!(
        (first.kind.as_str(), &first.data),
        ("stdout", &json!("0\n"))
    );
    assert_eq!(s.status("kernel").json()["status"], json!("running"));
    let mut events = vec![first];
    events.extend(stream.all(Duration::from_secs(30)));
    check_sequence(&events, 1, "done");
    assert_eq!(stdout_text(&events), "0\n1\n2\n");
    let response = request.join().expect("the execute");
    assert_eq!(
        response.json()["messages"],
        json!([{"type": "stdout", "message": "0\n1\n2\n"}])
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&runtime);
}

#[test]
fn events_resume_after_last_event_id_and_replay_after_the_end_to_many_readers() {
    let s = Session::python();
    let code = "import sys, warnings\nprint('a')\nprint('b', file=sys.stderr)\nwarnings.warn('w')\n{'k': 1}";
    let response = s.execute(&json!({"code": code, "id": "replay"}));
    assert_eq!(response.status, 200);
    let all = s.events("replay", None).all(Duration::from_secs(30));
    check_sequence(&all, 1, "done");
    let kinds: Vec<&str> = all.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["stdout", "stderr", "message", "value", "done"],
        "{all:?}"
    );
    assert_eq!(all[2].data["type"], json!("warning"));
    assert_eq!(all[3].data["type"], json!("object"));
    for n in 0..all.len() as u64 {
        let rest = s.events("replay", Some(n)).all(Duration::from_secs(30));
        assert_eq!(rest, all[n as usize..].to_vec(), "after {n}");
    }
    // Many readers at once while it runs: each gets every event, in order.
    let request = s.execute_in_background(json!({
        "code": "import time\nfor i in range(3):\n    print(i)\n    time.sleep(0.3)",
        "id": "shared"
    }));
    s.wait_known("shared");
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut stream = s.events("shared", None);
            std::thread::spawn(move || stream.all(Duration::from_secs(30)))
        })
        .collect();
    let seen: Vec<Vec<Event>> = readers
        .into_iter()
        .map(|r| r.join().expect("a reader"))
        .collect();
    request.join().expect("the execute");
    for events in &seen {
        check_sequence(events, 1, "done");
        assert_eq!(stdout_text(events), "0\n1\n2\n");
        assert_eq!(events, &seen[0]);
    }
    // A reader that reconnects mid-run with Last-Event-ID gets exactly the rest.
    let request = s.execute_in_background(json!({
        "code": "import time\nfor i in range(4):\n    print(i)\n    time.sleep(0.4)",
        "id": "resume"
    }));
    s.wait_known("resume");
    let mut stream = s.events("resume", None);
    let first = stream.next(Duration::from_secs(10)).expect("a first event");
    drop(stream);
    let rest = s
        .events("resume", Some(first.id))
        .all(Duration::from_secs(30));
    request.join().expect("the execute");
    assert_eq!(rest.first().map(|e| e.id), Some(first.id + 1));
    let mut joined = vec![first];
    joined.extend(rest);
    check_sequence(&joined, 1, "done");
    assert_eq!(stdout_text(&joined), "0\n1\n2\n3\n");
}

#[test]
fn a_reader_that_stops_reading_stalls_nothing() {
    let s = Session::python();
    let request = s.execute_in_background(json!({
        "code": "import time\ntime.sleep(0.5)\nfor i in range(2000):\n    print('x' * 400)\n'finished'",
        "id": "flood"
    }));
    s.wait_known("flood");
    // Opened and never read: its socket fills; the execution must not wait for it.
    let stuck = s.events("flood", None);
    let started = Instant::now();
    let response = request.join().expect("the execute");
    assert_eq!(
        response.json()["value"],
        json!({"type": "string", "data": "finished"})
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    // Another reader gets everything, and the host still answers.
    let events = s.events("flood", None).all(Duration::from_secs(60));
    check_sequence(&events, 1, "done");
    assert_eq!(stdout_text(&events).len(), 2000 * 401);
    assert_eq!(s.get("/manifest").status, 200);
    drop(stuck);
}

#[test]
fn interrupt_ends_a_running_execution_as_interrupted() {
    let s = Session::python();
    let request = s.execute_in_background(json!({
        "code": "import time\nprint('start')\ntime.sleep(60)",
        "id": "stop-me"
    }));
    s.wait_known("stop-me");
    let mut stream = s.events("stop-me", None);
    assert_eq!(
        stream.next(Duration::from_secs(10)).map(|e| e.kind),
        Some("stdout".into())
    );
    let interrupted = s
        .host
        .request("PUT", &format!("/{}!interrupt", s.name))
        .cookie(&s.token)
        .send();
    assert_eq!(interrupted.status, 200);
    let response = request.join().expect("the execute");
    assert!(
        response.text().contains("KeyboardInterrupt"),
        "{}",
        response.text()
    );
    let rest = stream.all(Duration::from_secs(30));
    let done = rest.last().expect("done");
    assert_eq!(done.data["status"], json!("interrupted"), "{rest:?}");
    let status = s.status("stop-me").json();
    assert_eq!(status["status"], json!("interrupted"));
    assert!(status["ended"].is_number());
}

#[test]
fn output_over_the_cap_is_cut_in_the_log_and_said() {
    let s = Session::python();
    let response = s.execute(&json!({
        "code": "import sys\nfor i in range(3000):\n    sys.stdout.write('y' * 1000 + '\\n')\n    sys.stderr.write('z' * 1000 + '\\n')",
        "id": "big"
    }));
    assert_eq!(response.status, 200);
    let messages = response.json()["messages"].clone();
    let said = messages.as_array().expect("messages").iter().any(|m| {
        m["message"]
            .as_str()
            .is_some_and(|t| t.contains("output truncated"))
    });
    assert!(said, "the result says output was dropped");
    let events = s.events("big", None).all(Duration::from_secs(60));
    check_sequence(&events, 1, "done");
    // Each stream is capped by the worker at 1 MiB, and the log at 1 MiB in all.
    let kept: usize = events
        .iter()
        .filter(|e| e.kind == "stdout" || e.kind == "stderr")
        .map(|e| e.data.as_str().expect("text").len())
        .sum();
    assert!(kept <= 1 << 20, "{kept} bytes kept");
    assert!(kept > 900_000, "{kept} bytes kept");
    let truncated: Vec<&Event> = events.iter().filter(|e| e.kind == "truncated").collect();
    assert_eq!(truncated.len(), 1, "one truncated event");
    assert!(truncated[0].data["message"]
        .as_str()
        .is_some_and(|t| t.contains("output truncated")));
    // The status while kept says so too, and the final messages are the result's.
    let status = s.status("big").json();
    assert_eq!(status["messages"], messages);
}

#[test]
fn the_new_routes_need_authorization_and_follow_cors() {
    let s = Session::python();
    s.execute(&json!({"code": "1", "id": "guarded"}));
    for path in [
        format!("/{}/executions/guarded", s.name),
        format!("/{}/executions/guarded/events", s.name),
    ] {
        let anonymous = s.host.request("GET", &path).send();
        assert_eq!(anonymous.status, 401, "{path}");
        let bad = s
            .host
            .request("GET", &path)
            .bearer("x".repeat(64).as_str())
            .send();
        assert_eq!(bad.status, 403, "{path}");
        let foreign = s
            .host
            .request("GET", &path)
            .cookie(&s.token)
            .header("Origin", "https://evil.example")
            .send();
        assert_eq!(foreign.status, 403, "{path}");
    }
    let allowed = s
        .host
        .request("GET", &format!("/{}/executions/guarded", s.name))
        .cookie(&s.token)
        .header("Origin", "https://stenci.la")
        .send();
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://stenci.la")
    );
    assert_eq!(allowed.header("cache-control"), Some("no-store"));
    let executed = s
        .host
        .request("PUT", &format!("/{}!execute", s.name))
        .cookie(&s.token)
        .header("Origin", "https://stenci.la")
        .json(&json!({"code": "2", "id": "cors"}))
        .send();
    assert_eq!(executed.header("stencila-execution"), Some("cors"));
    // A page may read the header only when it is exposed.
    assert_eq!(
        executed.header("access-control-expose-headers"),
        Some("Stencila-Execution")
    );
    let preflight = s
        .host
        .request("OPTIONS", &format!("/{}/executions/guarded/events", s.name))
        .header("Origin", "https://stenci.la")
        .send();
    assert_eq!(preflight.status, 200);
}

#[test]
fn header_sections_over_the_limit_get_431_with_a_clear_text() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    let big = |size: usize| {
        host.request("GET", "/manifest")
            .cookie(&token)
            .header("X-Padding", &"p".repeat(size))
            .send()
    };
    assert_eq!(big(20 * 1024).status, 200);
    let refused = big(40 * 1024);
    assert_eq!(refused.status, 431);
    assert!(
        refused
            .text()
            .starts_with("Request header fields too large: "),
        "{}",
        refused.text()
    );
    assert!(
        refused.text().contains("--max-header"),
        "{}",
        refused.text()
    );
    let roomy = HostProcess::start(&["--max-header", "64K"]);
    let token = roomy.token();
    let response = roomy
        .request("GET", "/manifest")
        .cookie(&token)
        .header("X-Padding", &"p".repeat(40 * 1024))
        .send();
    assert_eq!(response.status, 200);
    // Far over any limit, actix itself refuses before the handler.
    let huge = send_raw(
        roomy.port,
        format!(
            "GET /manifest HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Padding: {}\r\n\r\n",
            roomy.port,
            "p".repeat(1 << 20)
        )
        .as_bytes(),
    );
    assert_eq!(huge.status, 431);
}

#[test]
fn sqlite_contexts_get_ids_status_and_events_through_the_core() {
    let s = Session::start(&[], "SqliteContext");
    let response = s.execute(&json!({"code": "SELECT 6 * 7 AS answer", "id": "sql-1"}));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("stencila-execution"), Some("sql-1"));
    let status = s.status("sql-1").json();
    assert_eq!(status["status"], json!("done"));
    assert_eq!(status["value"], response.json()["value"]);
    let events = s.events("sql-1", None).all(Duration::from_secs(30));
    check_sequence(&events, 1, "done");
    assert_eq!(events[0].kind, "value");
    let again = s.execute(&json!({"code": "SELECT 1", "id": "sql-1"}));
    assert_eq!(again.json(), response.json());
}

#[test]
fn the_history_keeps_the_configured_number_of_executions() {
    let s = Session::start(&["--execution-history", "2"], "PythonContext");
    for id in ["h1", "h2", "h3"] {
        assert_eq!(s.execute(&json!({"code": "1", "id": id})).status, 200);
    }
    assert_eq!(s.status("h1").status, 404);
    assert_eq!(s.status("h2").status, 200);
    assert_eq!(s.status("h3").status, 200);
    let retention = Session::start(&["--execution-retention", "1s"], "PythonContext");
    retention.execute(&json!({"code": "1", "id": "r"}));
    assert_eq!(retention.status("r").status, 200);
    assert!(eventually(Duration::from_secs(10), || retention
        .status("r")
        .status
        == 404));
}
