//! PythonContext over HTTP (PROTOCOL.md section 6): execution, values, output capture,
//! errors, interrupts, timeouts, crashes and concurrency, with a real python3.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use stencila_tests::{alive, HostProcess, Request};

/// A host with one context and a token.
struct Session {
    host: HostProcess,
    token: String,
}

impl Session {
    fn new(args: &[&str]) -> Session {
        let host = HostProcess::start(args);
        let token = host.token();
        let session = Session { host, token };
        assert_eq!(session.create(), "pythonContext1");
        session
    }

    fn create(&self) -> String {
        let response = self
            .host
            .request("POST", "/PythonContext")
            .cookie(&self.token)
            .send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json().as_str().expect("a name").to_string()
    }

    fn call_on(&self, name: &str, method: &str, arg: Value) -> Value {
        let response = self.request(name, method).json(&arg).send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    }

    fn request(&self, name: &str, method: &str) -> Request {
        self.host
            .request("PUT", &format!("/{name}!{method}"))
            .cookie(&self.token)
    }

    fn execute(&self, code: &str) -> Value {
        self.call_on("pythonContext1", "execute", json!({ "code": code }))
    }

    fn state(&self, name: &str) -> Value {
        self.host
            .request("GET", &format!("/{name}"))
            .cookie(&self.token)
            .send()
            .json()
    }
}

fn value(result: &Value) -> &Value {
    &result["value"]
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
fn values_and_persistence() {
    let s = Session::new(&[]);
    assert_eq!(
        s.execute("6*7"),
        json!({"messages": [], "value": {"type": "integer", "data": 42}})
    );
    assert_eq!(s.execute("x = 1"), json!({"messages": [], "value": null}));
    assert_eq!(
        value(&s.execute("x + 1")),
        &json!({"type": "integer", "data": 2})
    );
    assert_eq!(value(&s.execute("True"))["type"], "boolean");
    assert_eq!(value(&s.execute("1.5"))["type"], "number");
    assert_eq!(
        value(&s.execute("float('nan')")),
        &json!({"type": "number", "data": null})
    );
    // Like a REPL, an expression that is `None` shows nothing.
    assert_eq!(value(&s.execute("None")), &json!(null));
    assert_eq!(
        value(&s.execute("'hi'")),
        &json!({"type": "string", "data": "hi"})
    );
    assert_eq!(
        value(&s.execute("(1, 2)")),
        &json!({"type": "array", "data": [1, 2]})
    );
    assert_eq!(
        value(&s.execute("{'a': [1, {'b': None}]}")),
        &json!({"type": "object", "data": {"a": [1, {"b": null}]}})
    );
    let fallback = s.execute("import datetime; datetime.date(2020, 1, 2)");
    assert_eq!(value(&fallback)["type"], "date");
    assert_eq!(value(&fallback)["data"], "datetime.date(2020, 1, 2)");
    assert_eq!(
        value(&s.execute("sys.version_info[0]"))["data"],
        3,
        "sys without import"
    );
}

#[test]
fn output_is_captured_in_order_and_never_corrupts_the_channel() {
    let s = Session::new(&[]);
    let result = s.execute("print('a'); import sys; sys.stderr.write('b\\n'); print('c')");
    let kinds: Vec<&str> = result["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["stdout", "stderr", "stdout"], "{result}");
    assert_eq!(messages_of(&result, "stdout").join(""), "a\nc\n");

    let result = s.execute("import os; os.write(1, b'raw\\n'); os.system('echo sub'); 5");
    assert_eq!(value(&result)["data"], 5, "{result}");
    let stdout = messages_of(&result, "stdout").join("");
    assert!(stdout.contains("raw") && stdout.contains("sub"), "{result}");

    let result = s.execute("input()");
    assert!(!messages_of(&result, "error").is_empty(), "{result}");

    s.execute("import sys; sys.stdout.close()");
    assert_eq!(value(&s.execute("6*7"))["data"], 42);

    let big = s.execute("print('x' * 5_000_000)");
    assert!(big["messages"].as_array().is_some_and(|m| !m.is_empty()));
    assert_eq!(value(&s.execute("1"))["data"], 1);
}

#[test]
fn errors_point_into_the_users_code() {
    let s = Session::new(&[]);
    let result = s.execute("x");
    assert_eq!(
        result["messages"],
        json!([{"type": "error", "message": "NameError: name 'x' is not defined", "line": 1, "column": 0}])
    );
    assert_eq!(result["value"], json!(null));
    let result = s.execute("a = 1\nb = 2\nc = a / 0\n");
    assert_eq!(result["messages"][0]["line"], 3, "{result}");
    assert!(messages_of(&result, "error")[0].starts_with("ZeroDivisionError"));
    let result = s.execute("a = 1\nif True\n  pass");
    assert_eq!(result["messages"][0]["type"], "error");
    assert_eq!(result["messages"][0]["line"], 2, "{result}");
    assert!(
        messages_of(&result, "error")[0].starts_with("SyntaxError"),
        "{result}"
    );
}

#[test]
fn inputs_list_get_set_restart() {
    let s = Session::new(&[]);
    let result = s.call_on(
        "pythonContext1",
        "execute",
        json!({"code": "a + b", "inputs": {"a": {"type": "integer", "data": 1}, "b": {"type": "integer", "data": 2}}}),
    );
    assert_eq!(value(&result)["data"], 3, "{result}");
    s.call_on(
        "pythonContext1",
        "set",
        json!({"name": "y", "value": {"type": "string", "data": "why"}}),
    );
    assert_eq!(
        s.call_on("pythonContext1", "get", json!({"name": "y"})),
        json!({"type": "string", "data": "why"})
    );
    let listed = s.call_on("pythonContext1", "list", json!({}));
    assert!(listed.to_string().contains("\"y\""), "{listed}");
    let missing = s
        .request("pythonContext1", "get")
        .body(r#"{"name": "nope"}"#)
        .send();
    assert!(
        missing.status == 400 || missing.status == 404,
        "{}",
        missing.text()
    );
    s.call_on("pythonContext1", "restart", json!({}));
    assert!(
        !messages_of(&s.execute("y"), "error").is_empty(),
        "restart clears the namespace"
    );
}

#[test]
fn interrupt_gets_through_while_execute_runs() {
    let s = Session::new(&[]);
    s.execute("kept = 'yes'");
    let port = s.host.port;
    let token = s.token.clone();
    let started = Instant::now();
    let running = std::thread::spawn(move || {
        Request::new(port, "PUT", "/pythonContext1!execute")
            .cookie(&token)
            .body(r#"{"code": "import time; time.sleep(30)"}"#)
            .send()
            .json()
    });
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = s.request("pythonContext1", "interrupt").send();
    assert_eq!(interrupted.status, 200, "{}", interrupted.text());
    let result = running.join().expect("the execute returns");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        messages_of(&result, "error")[0].contains("KeyboardInterrupt"),
        "{result}"
    );
    assert_eq!(
        value(&s.execute("kept"))["data"],
        "yes",
        "the namespace survives"
    );
}

#[test]
fn timeouts_interrupt_the_code() {
    let s = Session::new(&[]);
    let started = Instant::now();
    let result = s.call_on(
        "pythonContext1",
        "execute",
        json!({"code": "import time; time.sleep(30)", "timeout": 0.5}),
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!messages_of(&result, "error").is_empty(), "{result}");
    assert_eq!(value(&s.execute("6*7"))["data"], 42);

    let host_default = Session::new(&["--execute-timeout", "500ms"]);
    let result = host_default.execute("import time; time.sleep(30)");
    assert!(!messages_of(&result, "error").is_empty(), "{result}");
}

#[test]
fn a_dead_worker_is_reported_and_replaced() {
    let s = Session::new(&[]);
    s.execute("x = 1");
    let result = s.execute("import os; os._exit(3)");
    let errors = messages_of(&result, "error");
    assert!(errors.iter().any(|e| e.contains('3')), "{result}");
    let next = s.execute("6*7");
    assert_eq!(value(&next)["data"], 42, "{next}");
    assert!(!messages_of(&next, "warning").is_empty(), "{next}");

    let result = s.execute("import os, signal; os.kill(os.getpid(), signal.SIGKILL)");
    assert!(
        messages_of(&result, "error")
            .iter()
            .any(|e| e.contains("SIGKILL") || e.contains('9')),
        "{result}"
    );
    let result = s.execute("import ctypes; ctypes.string_at(0)");
    assert!(!messages_of(&result, "error").is_empty(), "{result}");
    assert_eq!(value(&s.execute("6*7"))["data"], 42);
    // The host is still serving.
    assert_eq!(s.host.request("GET", "/manifest").send().status, 200);
}

#[test]
fn delete_ends_the_worker() {
    let s = Session::new(&[]);
    let pid = s.state("pythonContext1")["pid"]
        .as_u64()
        .expect("a worker pid") as u32;
    assert!(alive(pid));
    let deleted = s
        .host
        .request("DELETE", "/pythonContext1")
        .cookie(&s.token)
        .send();
    assert_eq!(deleted.status, 200);
    assert!(stencila_tests::eventually(Duration::from_secs(5), || {
        !alive(pid)
    }));
}

#[test]
fn contexts_run_in_parallel_and_the_host_stays_responsive() {
    let s = Session::new(&[]);
    assert_eq!(s.create(), "pythonContext2");
    let port = s.host.port;
    let started = Instant::now();
    let threads: Vec<_> = ["pythonContext1", "pythonContext2"]
        .into_iter()
        .map(|name| {
            let token = s.token.clone();
            std::thread::spawn(move || {
                Request::new(port, "PUT", &format!("/{name}!execute"))
                    .cookie(&token)
                    .body(r#"{"code": "import time; time.sleep(1); 1"}"#)
                    .send()
                    .json()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let manifest_started = Instant::now();
    assert_eq!(s.host.request("GET", "/manifest").send().status, 200);
    assert!(
        manifest_started.elapsed() < Duration::from_millis(900),
        "the host answered while code ran"
    );
    for thread in threads {
        assert_eq!(value(&thread.join().expect("a result"))["data"], 1);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1900),
        "two 1 s sleeps took {elapsed:?}"
    );
}

#[test]
fn calls_on_one_instance_run_in_arrival_order() {
    let s = Session::new(&[]);
    s.execute("log = []");
    let port = s.host.port;
    let threads: Vec<_> = (0..5)
        .map(|i| {
            let token = s.token.clone();
            let thread = std::thread::spawn(move || {
                Request::new(port, "PUT", "/pythonContext1!execute")
                    .cookie(&token)
                    .body(
                        json!({"code": format!("import time; time.sleep(0.1); log.append({i})")})
                            .to_string(),
                    )
                    .send()
            });
            std::thread::sleep(Duration::from_millis(30));
            thread
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().expect("a response").status, 200);
    }
    assert_eq!(value(&s.execute("log"))["data"], json!([0, 1, 2, 3, 4]));
}

#[test]
fn more_values_bigints_infinities_bytes_sets() {
    let s = Session::new(&[]);
    assert_eq!(
        value(&s.execute("2**70"))["data"],
        "1180591620717411303424",
        "exact, as a string"
    );
    assert_eq!(value(&s.execute("2**53 - 1"))["data"], 9007199254740991_u64);
    assert_eq!(
        value(&s.execute("float('inf')")),
        &json!({"type": "number", "data": null})
    );
    assert_eq!(
        value(&s.execute("[float('-inf'), 1.0]"))["data"],
        json!([null, 1.0])
    );
    let bytes = s.execute("b'hi'");
    assert_eq!(value(&bytes)["type"], "bytes", "{bytes}");
    assert_eq!(value(&bytes)["data"], "aGk=", "base64");
    assert_eq!(
        value(&s.execute("{3, 1, 2}")),
        &json!({"type": "array", "data": [1, 2, 3]})
    );
    let stdout = s.execute("import sys; sys.stdout.write('direct'); 0");
    assert_eq!(messages_of(&stdout, "stdout").join(""), "direct");
}

#[test]
fn each_worker_leads_its_own_process_group() {
    let s = Session::new(&[]);
    let result = s.execute("import os; [os.getpid(), os.getpgid(0)]");
    let ids = value(&result)["data"].as_array().expect("two ids").clone();
    assert_eq!(ids[0], ids[1], "{result}");
    assert_ne!(ids[1], json!(s.host.pid()));
}

#[test]
fn tables_and_images_where_pandas_and_matplotlib_are_installed() {
    let s = Session::new(&[]);
    if messages_of(&s.execute("import pandas"), "error").is_empty() {
        let table = s.execute("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})");
        assert_eq!(value(&table)["type"], "table", "{table}");
        let columns = &value(&table)["data"]["columns"];
        assert_eq!(
            columns[0],
            json!({"name": "a", "type": "integer", "values": [1, 2]}),
            "{table}"
        );
        assert_eq!(columns[1]["values"], json!(["x", "y"]));
    } else {
        eprintln!("pandas is not installed; skipping the table check");
    }
    if messages_of(&s.execute("import matplotlib"), "error").is_empty() {
        let image = s.execute(
            "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1, 2, 3])\nfig",
        );
        assert_eq!(value(&image)["type"], "image", "{image}");
        let src = value(&image)["src"].as_str().expect("a src");
        assert!(src.starts_with("data:image/png;base64,"), "{src:.60}");
    } else {
        eprintln!("matplotlib is not installed; skipping the image check");
    }
}

/// Regression: packing a value runs user code (`__repr__`) and used to ignore interrupts.
#[test]
fn interrupt_reaches_user_code_run_while_packing_a_value() {
    let s = Session::new(&[]);
    s.execute("class Endless:\n    def __repr__(self):\n        while True:\n            pass\nendless = Endless()");
    for (method, body) in [
        ("get", r#"{"name": "endless"}"#),
        ("execute", r#""endless""#),
    ] {
        let port = s.host.port;
        let token = s.token.clone();
        let call = std::thread::spawn(move || {
            Request::new(port, "PUT", &format!("/pythonContext1!{method}"))
                .cookie(&token)
                .body(body)
                .send()
        });
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(s.request("pythonContext1", "interrupt").send().status, 200);
        let response = call.join().expect("the call returns");
        // Either the interrupt is reported, or the repr that was cut short is replaced.
        let text = response.text();
        assert!(
            text.contains("nterrupt") || text.contains("<Endless object>"),
            "{method}: {text}"
        );
        assert_eq!(
            value(&s.execute("6*7"))["data"],
            42,
            "{method}: the context still works"
        );
    }
}

/// Regression: `restart` used to queue behind a call stuck where SIGINT cannot reach.
#[test]
fn restart_frees_a_context_stuck_in_c_code() {
    let s = Session::new(&[]);
    let port = s.host.port;
    let token = s.token.clone();
    let stuck = std::thread::spawn(move || {
        Request::new(port, "PUT", "/pythonContext1!execute")
            .cookie(&token)
            .body(r#""sum(range(10**13))""#)
            .send()
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    assert_eq!(s.request("pythonContext1", "restart").send().status, 200);
    assert!(started.elapsed() < Duration::from_secs(10));
    let stuck = stuck.join().expect("the stuck call returns");
    assert!(stuck.text().contains("error"), "{}", stuck.text());
    assert_eq!(value(&s.execute("6*7"))["data"], 42);
}

/// Regression: a fork in user code used to leave two processes answering requests.
#[test]
fn a_fork_in_user_code_never_answers_the_host() {
    let s = Session::new(&[]);
    s.execute("import os\nforked = os.fork() == 0");
    let pids: Vec<Value> = (0..6)
        .map(|_| value(&s.execute("os.getpid()"))["data"].clone())
        .collect();
    assert!(
        pids.windows(2).all(|w| w[0] == w[1]),
        "answers came from {pids:?}"
    );
    assert_eq!(value(&s.execute("forked"))["data"], false);
}
