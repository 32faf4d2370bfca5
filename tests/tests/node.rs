//! NodeContext over HTTP (PROTOCOL.md sections 6 and 8): execution in V8's REPL
//! mode, values, output capture, errors, interrupts, timeouts, crashes, variables
//! and process hygiene, with a real `node`. Each test that needs `node` 18+ skips,
//! printing why, where it is not installed.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use stencila_tests::{alive, all_end_within, binary, descendants, HostProcess, Request};

/// Why `node` cannot run these tests, if it cannot.
fn node_missing() -> Option<String> {
    let output = match std::process::Command::new("node")
        .args(["-e", "process.stdout.write(process.versions.node)"])
        .output()
    {
        Ok(output) => output,
        Err(error) => return Some(format!("no node on PATH ({error})")),
    };
    let version = String::from_utf8_lossy(&output.stdout).to_string();
    match version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
    {
        Some(major) if major >= 18 => None,
        _ => Some(format!("node {version:?} is older than 18")),
    }
}

/// A host with one NodeContext (`nodeContext1`) and a token; `None` where `node`
/// is missing.
struct Session {
    host: HostProcess,
    token: String,
}

impl Session {
    fn new(args: &[&str]) -> Option<Session> {
        if let Some(reason) = node_missing() {
            eprintln!("skipped: {reason}");
            return None;
        }
        let host = HostProcess::start(args);
        let token = host.token();
        let session = Session { host, token };
        assert_eq!(session.create(), "nodeContext1");
        Some(session)
    }

    fn create(&self) -> String {
        let response = self
            .host
            .request("POST", "/NodeContext")
            .cookie(&self.token)
            .send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json().as_str().expect("a name").to_string()
    }

    fn request(&self, name: &str, method: &str) -> Request {
        self.host
            .request("PUT", &format!("/{name}!{method}"))
            .cookie(&self.token)
    }

    fn call(&self, method: &str, arg: Value) -> Value {
        let response = self.request("nodeContext1", method).json(&arg).send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    }

    fn execute(&self, code: &str) -> Value {
        self.call("execute", json!({ "code": code }))
    }

    fn value(&self, code: &str) -> Value {
        let result = self.execute(code);
        assert_eq!(result["messages"], json!([]), "{code}: {result}");
        result["value"].clone()
    }

    fn pid(&self) -> u32 {
        let state = self
            .host
            .request("GET", "/nodeContext1")
            .cookie(&self.token)
            .send()
            .json();
        let pid = state["pid"].as_u64().expect("a worker pid");
        u32::try_from(pid).expect("a pid fits u32")
    }
}

fn messages_of(result: &Value, kind: &str) -> Vec<String> {
    result["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["type"] == kind)
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn values_are_packed_as_section_8_says() {
    let Some(s) = Session::new(&[]) else { return };
    assert_eq!(
        s.execute("6*7"),
        json!({"messages": [], "value": {"type": "integer", "data": 42}})
    );
    let cases = [
        ("1.5", json!({"type": "number", "data": 1.5})),
        ("true", json!({"type": "boolean", "data": true})),
        ("'hi'", json!({"type": "string", "data": "hi"})),
        ("null", json!({"type": "null", "data": null})),
        ("NaN", json!({"type": "number", "data": null})),
        ("-Infinity", json!({"type": "number", "data": null})),
        ("10n", json!({"type": "integer", "data": 10})),
        (
            "2n ** 70n",
            json!({"type": "integer", "data": "1180591620717411303424"}),
        ),
        (
            "new Map([['a', 1], ['b', [2n, undefined]]])",
            json!({"type": "object", "data": {"a": 1, "b": [2, null]}}),
        ),
        ("new Set([3, 1])", json!({"type": "array", "data": [3, 1]})),
        (
            "new Float64Array([0.5, 2.5])",
            json!({"type": "array", "data": [0.5, 2.5]}),
        ),
        (
            "new Date(Date.UTC(2020, 0, 2))",
            json!({"type": "string", "data": "2020-01-02T00:00:00.000Z"}),
        ),
        (
            "({a: [1, {b: null}], d: new Date(0)})",
            json!({"type": "object", "data": {"a": [1, {"b": null}], "d": "1970-01-01T00:00:00.000Z"}}),
        ),
        (
            "[{a: 1, b: 'x'}, {b: 'y', a: 2}]",
            json!({"type": "table", "data": {"columns": [
                {"name": "a", "type": "integer", "values": [1, 2]},
                {"name": "b", "type": "string", "values": ["x", "y"]}
            ]}}),
        ),
        // Different keys: not a table.
        (
            "[{a: 1}, {b: 2}]",
            json!({"type": "array", "data": [{"a": 1}, {"b": 2}]}),
        ),
        (
            "(x) => x + 1",
            json!({"type": "Function", "data": "(x) => x + 1"}),
        ),
        (
            "class Point { constructor() { this.x = 1 } }; new Point()",
            json!({"type": "Point", "data": "Point { x: 1 }"}),
        ),
        // A Promise as the last value is awaited.
        ("Promise.resolve(5)", json!({"type": "integer", "data": 5})),
    ];
    for (code, expected) in cases {
        assert_eq!(s.value(code), expected, "{code}");
    }
    // `undefined`, like Python's None, shows nothing.
    assert_eq!(s.value("undefined"), json!(null));
    assert_eq!(s.value("let unused = 1"), json!(null));
}

#[test]
fn let_and_const_can_be_declared_again_and_await_works_at_the_top() {
    let Some(s) = Session::new(&[]) else { return };
    assert_eq!(s.value("let x = 1"), json!(null));
    assert_eq!(s.value("let x = 2; x")["data"], 2);
    assert_eq!(s.value("const c = 3; c")["data"], 3);
    assert_eq!(s.value("const c = 4; c")["data"], 4);
    assert_eq!(
        s.value("await new Promise((resolve) => setTimeout(() => resolve(x * 10), 50))")["data"],
        20
    );
    assert_eq!(
        s.value("const later = await Promise.resolve(7); later")["data"],
        7
    );
    assert_eq!(s.value("later + x")["data"], 9);
}

#[test]
fn output_is_captured_and_never_corrupts_the_channel() {
    let Some(s) = Session::new(&[]) else { return };
    let result = s.execute(
        "console.log('a'); console.error('b'); console.warn('c'); console.info('d'); \
         process.stdout.write('e'); process.stderr.write('f'); 1",
    );
    let kinds: Vec<&str> = result["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["stdout", "stderr", "stdout", "stderr"], "{result}");
    assert_eq!(messages_of(&result, "stdout").join(""), "a\nd\ne");
    assert_eq!(messages_of(&result, "stderr").join(""), "b\nc\nf");
    assert_eq!(result["value"]["data"], 1);

    // Output that looks like a reply frame is only output.
    let result = s.execute("console.log(JSON.stringify({id: 1, result: 99})); 5");
    assert_eq!(
        messages_of(&result, "stdout"),
        ["{\"id\":1,\"result\":99}\n"]
    );
    assert_eq!(result["value"]["data"], 5);

    // Writes to the file descriptors themselves, and from child processes.
    let result = s.execute(
        "require('fs').writeSync(1, 'raw\\n'); \
         require('child_process').execSync('echo sub; echo err >&2', {stdio: 'inherit'}); 6",
    );
    let stdout = messages_of(&result, "stdout").join("");
    assert!(stdout.contains("raw") && stdout.contains("sub"), "{result}");
    assert!(
        messages_of(&result, "stderr").join("").contains("err"),
        "{result}"
    );
    assert_eq!(result["value"]["data"], 6);

    // A very long line: kept up to the cap, the rest counted.
    let result = s.execute("console.log('y'.repeat(3000000)); 7");
    let stdout = messages_of(&result, "stdout").join("");
    assert_eq!(stdout.len(), 1 << 20, "capped at 1 MiB");
    assert!(
        messages_of(&result, "warning")[0].starts_with("[output truncated: "),
        "{}",
        result["messages"][1]
    );
    assert_eq!(result["value"]["data"], 7);
    assert_eq!(s.value("6*7")["data"], 42);
}

#[test]
fn errors_point_into_the_users_code() {
    let Some(s) = Session::new(&[]) else { return };
    assert_eq!(
        s.execute("1\n2\nnull.x")["messages"],
        json!([{"type": "error", "message": "TypeError: Cannot read properties of null (reading 'x')", "line": 3, "column": 5}])
    );
    // Thrown inside a function: where it was thrown.
    assert_eq!(
        s.execute("function f() {\n  throw new RangeError('bad')\n}\n\nf()")["messages"],
        json!([{"type": "error", "message": "RangeError: bad", "line": 2, "column": 8}])
    );
    // After an await.
    let result = s.execute("await null\nundefinedName");
    assert_eq!(
        result["messages"],
        json!([{"type": "error", "message": "ReferenceError: undefinedName is not defined", "line": 2, "column": 0}])
    );
    // Syntax errors, including one at the end of the input.
    assert_eq!(
        s.execute("let ok = 1\nlet = =")["messages"][0]["line"],
        2,
        "a syntax error's line"
    );
    let end = s.execute("let (");
    assert_eq!(
        end["messages"][0]["message"],
        "SyntaxError: Unexpected end of input"
    );
    assert_eq!(end["messages"][0]["line"], 1, "{end}");
    assert_eq!(end["messages"][0]["column"], 5, "{end}");
    // A thrown non-error.
    assert_eq!(s.execute("throw 5")["messages"][0]["message"], "Uncaught 5");
    // Errors left behind (a timer, a promise nobody awaits) do not end the worker.
    s.execute(
        "setTimeout(() => { throw new Error('later') }, 0); Promise.reject(new Error('nobody'))",
    );
    let result = s.execute("await new Promise((resolve) => setTimeout(resolve, 50)); 1");
    assert_eq!(result["value"]["data"], 1, "{result}");
    let stderr = messages_of(&result, "stderr").join("");
    assert!(stderr.contains("Error: later"), "{result}");
}

/// Starts `code` on another connection, interrupts it from this one after a moment,
/// and returns its result.
fn interrupted(s: &Session, code: &str) -> Value {
    let port = s.host.port;
    let token = s.token.clone();
    let body = json!({ "code": code }).to_string();
    let running = std::thread::spawn(move || {
        Request::new(port, "PUT", "/nodeContext1!execute")
            .cookie(&token)
            .body(body)
            .send()
            .json()
    });
    std::thread::sleep(Duration::from_millis(700));
    let response = s.request("nodeContext1", "interrupt").send();
    assert_eq!(response.status, 200, "{}", response.text());
    running.join().expect("the execute returns")
}

#[test]
fn interrupt_stops_busy_loops_and_keeps_the_scope() {
    let Some(s) = Session::new(&[]) else { return };
    s.execute("let kept = 'yes'");
    let started = Instant::now();
    for code in [
        "let i = 0; while (true) { i++ }",
        // After an await the loop runs in a microtask, out of SIGINT's reach in V8.
        "let j = 0; await null; while (true) { j++ }",
        "await new Promise(() => {})",
        // User code listening for SIGINT itself.
        "process.on('SIGINT', () => {}); let k = 0; while (true) { k++ }",
    ] {
        let result = interrupted(&s, code);
        assert_eq!(
            messages_of(&result, "error"),
            ["Interrupted: execution was interrupted"],
            "{code}: {result}"
        );
    }
    // A blocking child process gets the SIGINT too: it ends, and the call with it
    // (as an interrupt, or as the failed command, whichever node sees first).
    let result = interrupted(&s, "require('child_process').execSync('sleep 30')");
    let errors = messages_of(&result, "error");
    assert!(
        errors.len() == 1
            && (errors[0] == "Interrupted: execution was interrupted"
                || errors[0] == "Error: Command failed: sleep 30"),
        "{result}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(s.value("kept")["data"], "yes");
    assert_eq!(s.value("i > 0 && j > 0 && k > 0")["data"], true);
    // An interrupt while idle harms nothing.
    assert_eq!(s.request("nodeContext1", "interrupt").send().status, 200);
    assert_eq!(s.value("6*7")["data"], 42);
}

#[test]
fn a_timeout_interrupts_and_a_worker_that_does_not_stop_is_replaced() {
    let Some(s) = Session::new(&[]) else { return };
    s.execute("let kept = 1");
    let started = Instant::now();
    let result = s.call(
        "execute",
        json!({"code": "while (true) {}", "timeout": 0.5}),
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(
        messages_of(&result, "error"),
        ["TimeoutError: execution exceeded 0.5 s and was interrupted"]
    );
    assert_eq!(s.value("kept")["data"], 1);

    // Blocked in a child that ignores SIGINT: the worker is killed and replaced.
    let first = s.pid();
    let result = s.call(
        "execute",
        json!({"code": "require('child_process').execSync(\"trap '' INT; sleep 30\")", "timeout": 0.5}),
    );
    assert!(started.elapsed() < Duration::from_secs(25));
    let errors = messages_of(&result, "error");
    assert!(
        errors.len() == 1 && errors[0].contains("did not stop when interrupted, so it was killed"),
        "{result}"
    );
    let next = s.execute("typeof kept");
    assert_eq!(
        messages_of(&next, "warning"),
        ["the Node.js worker was restarted after it was killed on a timeout; variables from before are lost"]
    );
    assert_eq!(next["value"]["data"], "undefined");
    assert!(all_end_within(Duration::from_secs(10), &[first]));
}

#[test]
fn a_dead_worker_is_reported_then_replaced_with_a_warning() {
    let Some(s) = Session::new(&[]) else { return };
    s.execute("let lost = 1");
    let first = s.pid();
    let result = s.execute("process.exit(3)");
    let errors = messages_of(&result, "error");
    assert_eq!(errors.len(), 1, "{result}");
    assert!(errors[0].contains("exited with status 3"), "{result}");
    let next = s.execute("typeof lost");
    assert_eq!(
        messages_of(&next, "warning"),
        ["the Node.js worker was restarted after it died; variables from before are lost"]
    );
    assert_eq!(next["value"]["data"], "undefined");
    assert_ne!(s.pid(), first);
    assert!(all_end_within(Duration::from_secs(10), &[first]));
}

#[test]
fn inputs_list_get_set_and_restart() {
    let Some(s) = Session::new(&[]) else { return };
    let result = s.call(
        "execute",
        json!({"code": "a + b + rows.length + big", "inputs": {
            "a": {"type": "integer", "data": 1},
            "b": {"type": "number", "data": 0.5},
            "rows": {"type": "table", "data": {"columns": [{"name": "n", "values": [1, 2, 3]}]}},
            "big": {"type": "integer", "data": 0}
        }}),
    );
    assert_eq!(
        result["value"],
        json!({"type": "number", "data": 4.5}),
        "{result}"
    );
    assert_eq!(
        s.value("rows[2].n")["data"],
        3,
        "a table is an array of row objects"
    );

    s.execute("let x = 5; const c = 'k'; var v = [1]; function f() {}");
    let list = s.call("list", json!({}));
    let names: Vec<(&str, &str)> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| {
            (
                item["name"].as_str().unwrap_or(""),
                item["type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("x", "integer"),
        ("c", "string"),
        ("v", "array"),
        ("f", "Function"),
        ("rows", "table"),
    ] {
        assert!(names.contains(&expected), "{expected:?} in {list}");
    }
    assert!(
        !names
            .iter()
            .any(|(name, _)| *name == "process" || *name == "require"),
        "only the user's variables: {list}"
    );

    assert_eq!(
        s.call("get", json!({"name": "x"})),
        json!({"type": "integer", "data": 5})
    );
    let missing = s
        .request("nodeContext1", "get")
        .json(&json!({"name": "nope"}))
        .send();
    assert_eq!(missing.status, 400, "{}", missing.text());
    assert!(
        missing.text().contains("no variable named 'nope'"),
        "{}",
        missing.text()
    );

    // `set` reaches `let` and `const` bindings, and unpacks big integers as BigInt.
    assert_eq!(
        s.call(
            "set",
            json!({"name": "x", "value": {"type": "string", "data": "s"}})
        ),
        json!(null)
    );
    assert_eq!(s.value("x")["data"], "s");
    s.call(
        "set",
        json!({"name": "c", "value": {"type": "integer", "data": "123456789012345678901234"}}),
    );
    assert_eq!(s.value("typeof c")["data"], "bigint");
    assert_eq!(s.value("c")["data"], "123456789012345678901234");
    let bad = s
        .request("nodeContext1", "set")
        .json(&json!({"name": "not a name", "value": {"type": "integer", "data": 1}}))
        .send();
    assert_eq!(bad.status, 400, "{}", bad.text());

    let before = s.pid();
    assert_eq!(s.call("restart", json!({})), json!(null));
    assert_ne!(s.pid(), before);
    assert_eq!(s.value("typeof x")["data"], "undefined");
    assert!(all_end_within(Duration::from_secs(10), &[before]));
}

#[test]
fn delete_leaves_no_node_process() {
    let Some(s) = Session::new(&[]) else { return };
    s.execute("1");
    let pid = s.pid();
    // The worker and what it started (its helper's trap shell).
    let mut pids = descendants(pid);
    pids.push(pid);
    let response = s
        .host
        .request("DELETE", "/nodeContext1")
        .cookie(&s.token)
        .send();
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(all_end_within(Duration::from_secs(10), &pids), "{pids:?}");
    assert!(!alive(pid));
}

#[test]
fn without_node_the_type_is_unavailable_and_the_rest_works() {
    let host = HostProcess::start_with_env(&[], &[("STENCILA_NODE", "/nonexistent/node")]);
    let token = host.token();
    let manifest = host
        .request("GET", "/manifest")
        .cookie(&token)
        .send()
        .json();
    assert_eq!(
        manifest["types"]["NodeContext"]["available"],
        json!(false),
        "{manifest}"
    );
    let response = host.request("POST", "/NodeContext").cookie(&token).send();
    assert_eq!(response.status, 503, "{}", response.text());
    let text = response.text();
    assert!(text.contains("NodeContext is not available"), "{text}");
    assert!(text.contains("STENCILA_NODE"), "{text}");
    assert!(!text.contains("/nonexistent"), "no host paths: {text}");
    // The rest of the host is unaffected.
    let python = host.request("POST", "/PythonContext").cookie(&token).send();
    assert_eq!(python.status, 200, "{}", python.text());
}

#[test]
fn the_manifest_lists_node_context() {
    let Some(s) = Session::new(&[]) else { return };
    let manifest = s.host.request("GET", "/manifest").send().json();
    assert_eq!(
        manifest["types"]["NodeContext"],
        json!({"name": "NodeContext", "client": "ContextHttpClient", "available": true})
    );
}

#[test]
fn workers_end_when_the_host_is_killed_even_mid_loop() {
    let Some(s) = Session::new(&[]) else { return };
    s.create();
    let port = s.host.port;
    let token = s.token.clone();
    // One worker idle, one busy in a loop that keeps its main thread from noticing.
    let _busy = std::thread::spawn(move || {
        Request::new(port, "PUT", "/nodeContext2!execute")
            .cookie(&token)
            .body(r#"{"code": "while (true) {}"}"#)
            .send()
    });
    std::thread::sleep(Duration::from_millis(500));
    let workers = descendants(s.host.pid());
    assert!(workers.len() >= 2, "{workers:?}");
    let (status, _) = s.host.stop("KILL");
    assert!(!status.success());
    assert!(
        all_end_within(Duration::from_secs(10), &workers),
        "workers {workers:?} outlived a SIGKILLed host"
    );
}

#[test]
fn help_names_stencila_node() {
    let out = std::process::Command::new(binary())
        .arg("--help")
        .output()
        .expect("to run");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("STENCILA_NODE"), "{help}");
}

#[test]
fn interrupt_reaches_user_code_run_while_packing_a_value() {
    let Some(s) = Session::new(&[]) else { return };
    s.execute("var endless = { get x() { while (true) {} } }");
    let result = interrupted(&s, "endless");
    assert_eq!(
        messages_of(&result, "error"),
        ["Interrupted: execution was interrupted while converting the value"],
        "{result}"
    );
    let port = s.host.port;
    let token = s.token.clone();
    let get = std::thread::spawn(move || {
        Request::new(port, "PUT", "/nodeContext1!get")
            .cookie(&token)
            .body(r#"{"name": "endless"}"#)
            .send()
    });
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(s.request("nodeContext1", "interrupt").send().status, 200);
    let response = get.join().expect("the get returns");
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(
        response.text().contains("interrupted"),
        "{}",
        response.text()
    );
    assert_eq!(s.value("6*7")["data"], 42);
}

/// Section 6 (review finding 18, for NodeContext): a worker that died while idle is
/// replaced before the next call, whose code runs, with the warning.
#[test]
fn a_worker_that_died_while_idle_is_replaced_and_the_code_runs() {
    let Some(s) = Session::new(&[]) else { return };
    let first = s.pid();
    let result = s.execute("setTimeout(() => process.exit(9), 300); 1");
    assert!(messages_of(&result, "error").is_empty(), "{result}");
    assert!(
        all_end_within(Duration::from_secs(20), &[first]),
        "worker {first} did not exit"
    );
    // The host reaps it when it ends; give the reaper a moment to notice.
    std::thread::sleep(Duration::from_millis(300));
    let result = s.execute("6 * 7");
    assert_eq!(
        result["value"],
        json!({"type": "integer", "data": 42}),
        "{result}"
    );
    assert_eq!(
        messages_of(&result, "warning"),
        ["the Node.js worker was restarted after it died; variables from before are lost"],
        "{result}"
    );
    assert_ne!(s.pid(), first);
}
