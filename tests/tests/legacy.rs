//! The 2018 Stencila clients (PROTOCOL.md section 13), written from the contract: the
//! seed era's `executeCode`/`analyseCode`/`getLibraries` with the ticket and cookie,
//! Desktop 0.28's signed bearer tokens from `stencila spawn`, `libraries`, cell
//! `compile`/`execute` and `evaluate`, `--cookie-samesite`, and the manifest fields
//! those clients read. Real `python3` workers throughout.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use stencila_tests::{binary, HostProcess, Request, Response};

/// A host with one PythonContext, reached with a session cookie (the seed era).
struct Session {
    host: HostProcess,
    token: String,
}

impl Session {
    fn new() -> Session {
        let host = HostProcess::start(&["--pool-size", "0"]);
        let token = host.token();
        let created = host.request("POST", "/PythonContext").cookie(&token).send();
        assert_eq!(created.status, 200, "{}", created.text());
        assert_eq!(created.json(), json!("pythonContext1"));
        Session { host, token }
    }

    fn send(&self, method: &str, arg: Value) -> Response {
        self.host
            .request("PUT", &format!("/pythonContext1!{method}"))
            .cookie(&self.token)
            .json(&arg)
            .send()
    }

    fn call(&self, method: &str, arg: Value) -> Value {
        let response = self.send(method, arg);
        assert_eq!(response.status, 200, "{method}: {}", response.text());
        response.json()
    }

    fn analyse(&self, code: &str) -> Value {
        self.call("analyseCode", json!({ "code": code }))
    }
}

fn errors(messages: &Value) -> Vec<&Value> {
    messages
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["type"] == "error")
        .collect()
}

#[test]
fn seed_era_methods_on_a_python_context() {
    let session = Session::new();
    assert_eq!(session.call("getLibraries", json!({})), json!({}));

    let result = session.call(
        "executeCode",
        json!({"code": "y = x * 2\ny", "inputs": {"x": {"type": "integer", "data": 21}}}),
    );
    assert_eq!(
        result,
        json!({"messages": [], "value": {"type": "integer", "data": 42}})
    );
    // exprOnly with one expression runs it.
    let result = session.call("executeCode", json!({"code": "y + 1", "exprOnly": true}));
    assert_eq!(result["value"], json!({"type": "integer", "data": 43}));
    // exprOnly with a statement: an error message, and nothing runs.
    let result = session.call("executeCode", json!({"code": "y = 0", "exprOnly": true}));
    assert_eq!(result["value"], Value::Null);
    let found = errors(&result["messages"]);
    assert_eq!(found.len(), 1, "{result}");
    assert!(
        found[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("single expression")),
        "{result}"
    );
    assert_eq!(found[0]["line"], 1);
    let still = session.call("get", json!({"name": "y"}));
    assert_eq!(still, json!({"type": "integer", "data": 42}));

    // A failing executeCode is a 200 with an error message, as execute is.
    let result = session.call("executeCode", json!({"code": "undefined_name"}));
    assert_eq!(errors(&result["messages"]).len(), 1, "{result}");
    // Inputs in the cells' list form work too.
    let result = session.call(
        "executeCode",
        json!({"code": "a + 1", "inputs": [{"name": "a", "value": {"type": "integer", "data": 1}}]}),
    );
    assert_eq!(result["value"], json!({"type": "integer", "data": 2}));
    // analyseCode runs nothing.
    let analysis = session.analyse("ran = True");
    assert_eq!(analysis["output"], "ran");
    let listed = session.call("list", json!({}));
    assert!(
        !listed
            .as_array()
            .expect("a list")
            .iter()
            .any(|v| v["name"] == "ran"),
        "{listed}"
    );
}

#[test]
fn executecode_without_code_is_a_bad_request() {
    let session = Session::new();
    for arg in [
        json!({}),
        json!({"code": 1}),
        json!({"code": "1", "exprOnly": "yes"}),
    ] {
        let response = session.send("executeCode", arg.clone());
        assert_eq!(response.status, 400, "{arg}: {}", response.text());
        assert!(
            response.text().starts_with("Bad request: "),
            "{}",
            response.text()
        );
    }
}

/// Each case: code, the inputs in first-use order, the output.
const ANALYSIS_CASES: &[(&str, &[&str], Option<&str>)] = &[
    // The contract's own three examples.
    ("y = x * 2", &["x"], Some("y")),
    ("import math\nmath.pi * r", &["r"], None),
    ("[i * k for i in range(3)]", &["k"], None),
    // Names bound earlier are not inputs; first-use order, no repeats.
    ("x = 1\ny = x + b + a + b", &["b", "a"], Some("y")),
    // Augmented assignment reads its target first.
    ("y += x", &["y", "x"], Some("y")),
    // Builtins and sys are never inputs.
    ("print(len(s), sys.version)", &["s"], None),
    // Imports bind: plain, dotted, aliased, from-import.
    (
        "import os.path\nimport numpy as np\nfrom math import sqrt as root\nos.path.join(np.pi, root(v))",
        &["v"],
        None,
    ),
    // A function body runs only when called; defaults, annotations and decorators now.
    (
        "@deco\ndef f(a, b=default, *, c: hint = 2):\n    return a + hidden\nf(1)",
        &["deco", "default", "hint"],
        None,
    ),
    ("def y():\n    return z", &[], Some("y")),
    // A lambda body is a function body; its defaults run now.
    ("g = lambda a, b=h: a + j", &["h"], Some("g")),
    // A class body runs now: bases and what it reads count, its own names do not.
    (
        "class C(Base):\n    n = w\n    m = n + 1\n    def method(self):\n        return q",
        &["Base", "w"],
        Some("C"),
    ),
    // A comprehension in a class body does not see the class's names.
    ("class D:\n    n = 1\n    ys = [n for _ in range(3)]", &["n"], Some("D")),
    // Comprehension targets are local; nested generators and conditions count.
    (
        "{k: v for k, v in pairs if v > lim}\n[a * b for a in xs for b in range(a) if b < top]",
        &["pairs", "lim", "xs", "top"],
        None,
    ),
    // A comprehension's variable does not leak out.
    ("[i for i in range(3)]\ni", &["i"], None),
    // `global` in a class body binds the module's name.
    ("class E:\n    global g\n    g = 1\ng + 1", &[], None),
    // For loops: the iterable is read, the target bound, the body reads.
    ("for i in items:\n    total += i", &["items", "total"], None),
    // Tuple targets bind every name but name no output.
    ("a, (b, *c) = t\na + b", &["t"], None),
    // Walrus, with, except, attribute and subscript targets.
    ("if (n := 10) > m:\n    pass\nn", &["m"], None),
    ("with open(path) as fh:\n    data = fh.read()", &["path"], None),
    ("try:\n    pass\nexcept Problem as e:\n    print(e)", &["Problem"], None),
    ("obj.attr = value\nitems[key] = 1", &["value", "obj", "items", "key"], None),
    // Annotated assignment names its target as the output.
    ("z: int = w", &["w"], Some("z")),
];

#[test]
fn analysecode_dependency_analysis() {
    let session = Session::new();
    assert!(ANALYSIS_CASES.len() >= 15);
    for (code, inputs, output) in ANALYSIS_CASES {
        let analysis = session.analyse(code);
        assert_eq!(
            analysis,
            json!({"inputs": inputs, "output": output, "messages": []}),
            "{code}"
        );
    }
}

#[test]
fn analysecode_syntax_errors_and_expr_only() {
    let session = Session::new();
    let analysis = session.analyse("x = 1\ny = (");
    assert_eq!(analysis["inputs"], json!([]));
    assert_eq!(analysis["output"], Value::Null);
    let found = errors(&analysis["messages"]);
    assert_eq!(found.len(), 1, "{analysis}");
    assert!(
        found[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("SyntaxError")),
        "{analysis}"
    );
    assert_eq!(found[0]["line"], 2);
    assert_eq!(found[0]["column"], 4);

    let analysis = session.call("analyseCode", json!({"code": "x + y", "exprOnly": true}));
    assert_eq!(
        analysis,
        json!({"inputs": ["x", "y"], "output": null, "messages": []})
    );
    for code in ["x = 1", "1\n2", "import os"] {
        let analysis = session.call("analyseCode", json!({"code": code, "exprOnly": true}));
        assert_eq!(errors(&analysis["messages"]).len(), 1, "{code}: {analysis}");
    }
    // Nesting too deep for the parser is an error message, not a failure.
    let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
    let analysis = session.analyse(&deep);
    assert_eq!(errors(&analysis["messages"]).len(), 1, "{analysis}");
}

#[test]
fn desktop_cells_compile_and_execute() {
    let session = Session::new();
    assert_eq!(session.call("libraries", json!({})), json!({}));

    let compiled = session.call(
        "compile",
        json!({"type": "cell", "source": {"type": "text", "data": "y = x * 2"}}),
    );
    assert_eq!(compiled["type"], "cell");
    assert_eq!(compiled["source"]["data"], "y = x * 2");
    assert_eq!(compiled["inputs"], json!([{"name": "x"}]));
    assert_eq!(compiled["outputs"], json!([{"name": "y"}]));
    assert_eq!(compiled["messages"], json!([]));
    let compiled = session.call("compile", json!({"type": "cell", "code": "print(1)"}));
    assert_eq!(compiled["outputs"], json!([]));
    let compiled = session.call(
        "compile",
        json!({"type": "cell", "source": {"type": "text", "data": "a = 1"}, "expr": true}),
    );
    assert_eq!(errors(&compiled["messages"]).len(), 1, "{compiled}");

    // Inputs with values are set, the named output's value comes back.
    let executed = session.call(
        "execute",
        json!({"type": "cell", "source": {"type": "text", "data": "y = x * 2"},
               "inputs": [{"name": "x", "value": {"type": "integer", "data": 21}}]}),
    );
    assert_eq!(executed["inputs"], json!([{"name": "x"}]));
    assert_eq!(
        executed["outputs"],
        json!([{"name": "y", "value": {"type": "integer", "data": 42}}])
    );
    assert_eq!(executed["messages"], json!([]));
    // A final expression is an unnamed output.
    let executed = session.call(
        "execute",
        json!({"type": "cell", "source": {"type": "text", "data": "print('hi')\ny + 1"}}),
    );
    assert_eq!(
        executed["outputs"],
        json!([{"value": {"type": "integer", "data": 43}}])
    );
    assert_eq!(
        executed["messages"],
        json!([{"type": "stdout", "message": "hi\n"}])
    );
    // A runtime error is a message; the name is still given, without a value.
    let executed = session.call(
        "execute",
        json!({"type": "cell", "source": {"type": "text", "data": "w = missing + 1"}}),
    );
    assert_eq!(executed["outputs"], json!([{"name": "w"}]));
    assert_eq!(errors(&executed["messages"]).len(), 1, "{executed}");
    // A syntax error runs nothing.
    let executed = session.call(
        "execute",
        json!({"type": "cell", "source": {"type": "text", "data": "y = ("}}),
    );
    assert_eq!(errors(&executed["messages"]).len(), 1, "{executed}");
    assert_eq!(
        session.call("get", json!({"name": "y"})),
        json!({"type": "integer", "data": 42})
    );
    // A plain execute answers as in section 6.
    assert_eq!(
        session.call("execute", json!({"code": "y"})),
        json!({"messages": [], "value": {"type": "integer", "data": 42}})
    );
}

#[test]
fn a_cell_without_source_is_a_bad_request() {
    let session = Session::new();
    for (method, arg) in [
        ("execute", json!({"type": "cell"})),
        (
            "execute",
            json!({"type": "cell", "source": {"type": "text"}}),
        ),
        ("compile", json!({"type": "cell", "source": 3})),
        ("compile", json!({"source": {"type": "text", "data": "1"}})),
        (
            "execute",
            json!({"type": "cell", "code": "1", "inputs": "x"}),
        ),
    ] {
        let response = session.send(method, arg.clone());
        assert_eq!(response.status, 400, "{method} {arg}: {}", response.text());
        assert!(
            response.text().starts_with("Bad request: "),
            "{}",
            response.text()
        );
    }
}

#[test]
fn evaluate_calls_a_function_of_the_namespace() {
    let session = Session::new();
    session.call(
        "execute",
        json!({"code": "def scale(x, factor=1):\n    print('scaling')\n    return x * factor"}),
    );
    let call = json!({"type": "call", "func": {"type": "get", "name": "scale"},
                      "args": [{"type": "integer", "data": 6}],
                      "namedArgs": {"factor": {"type": "integer", "data": 7}}});
    let result = session.call("evaluate", call.clone());
    assert_eq!(result["type"], "call");
    assert_eq!(result["func"], call["func"]);
    assert_eq!(result["value"], json!({"type": "integer", "data": 42}));
    assert_eq!(
        result["messages"],
        json!([{"type": "stdout", "message": "scaling\n"}])
    );
    // A builtin.
    let result = session.call(
        "evaluate",
        json!({"type": "call", "func": {"type": "get", "name": "max"},
               "args": [{"type": "array", "data": [3, 9, 4]}]}),
    );
    assert_eq!(result["value"], json!({"type": "integer", "data": 9}));
    // An unknown name, a non-function and a raising function are error messages.
    for (name, args, expected) in [
        ("nothing_here", json!([]), "NameError"),
        ("__name__", json!([]), "TypeError"),
        (
            "scale",
            json!([{"type": "string", "data": "a"}, {"type": "array", "data": []}]),
            "TypeError",
        ),
    ] {
        let result = session.call(
            "evaluate",
            json!({"type": "call", "func": {"type": "get", "name": name}, "args": args}),
        );
        assert_eq!(result["value"], Value::Null, "{name}");
        let found = errors(&result["messages"]);
        assert_eq!(found.len(), 1, "{name}: {result}");
        assert!(
            found[0]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(expected)),
            "{name}: {result}"
        );
    }
    // Shapes that are not a call are bad requests.
    for arg in [
        json!({"type": "call"}),
        json!({"type": "call", "func": {"type": "get", "name": "scale"}, "args": {}}),
        json!({"type": "call", "func": {"type": "get", "name": "scale"}, "args": [5]}),
        json!({"type": "call", "func": {"type": "get", "name": "scale"}, "namedArgs": {"not a name": {"type": "integer", "data": 1}}}),
    ] {
        let response = session.send("evaluate", arg.clone());
        assert_eq!(response.status, 400, "{arg}: {}", response.text());
    }
}

/// A host started with `stencila spawn`, killed on drop.
struct Spawned {
    child: Child,
    port: u16,
    key: String,
}

impl Spawned {
    fn start() -> Spawned {
        let mut child = Command::new(binary())
            .args(["spawn", "--port", "0", "--pool-size", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("stencila to start");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("a line");
        let spawned: Value = serde_json::from_str(&line).expect("one JSON line");
        let key = spawned["key"].as_str().expect("a key").to_string();
        let url = spawned["manifest"]["servers"]["http"]["url"]
            .as_str()
            .expect("a URL");
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        Spawned { child, port, key }
    }

    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(self.port, method, path)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn sign(claims: &Value, algorithm: Algorithm, key: &str) -> String {
    encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("a JWT")
}

#[test]
fn desktop_jwt_flow_with_the_spawn_key() {
    let host = Spawned::start();
    let hid = "desktop-window-1";
    let jwt = |seq: u64, iat: u64| {
        sign(
            &json!({"iat": iat, "hid": hid, "seq": seq}),
            Algorithm::HS256,
            &host.key,
        )
    };

    let first = jwt(1, now());
    let created = host.request("POST", "/PythonContext").bearer(&first).send();
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json(), json!("pythonContext1"));
    assert!(
        created.headers_named("set-cookie").is_empty(),
        "no cookie for a JWT"
    );

    // Each request signs a new seq; out of order is fine.
    let third = jwt(3, now());
    let second = jwt(2, now());
    for token in [&third, &second] {
        let response = host
            .request("PUT", "/pythonContext1!execute")
            .bearer(token)
            .json(&json!({"type": "cell", "source": {"type": "text", "data": "y = 6*7"}}))
            .send();
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(
            response.json()["outputs"],
            json!([{"name": "y", "value": {"type": "integer", "data": 42}}])
        );
    }

    // A replayed (hid, seq) is refused, whatever the request.
    let replay = host.request("GET", "/manifest?x=1").bearer(&second);
    let replayed = host
        .request("PUT", "/pythonContext1!libraries")
        .bearer(&second)
        .send();
    assert_eq!(replayed.status, 403, "{}", replayed.text());
    assert!(
        replayed.text().contains("used before"),
        "{}",
        replayed.text()
    );
    // On a public route a refused JWT only loses the extras (no instance list).
    let public = replay.send();
    assert_eq!(public.status, 200);
    assert!(public.json().get("instances").is_none());

    let refused = [
        // Expired: issued ten minutes ago.
        ("expired", jwt(10, now() - 600)),
        // From the future beyond the window.
        ("future", jwt(11, now() + 600)),
        // Signed with another key.
        (
            "wrong key",
            sign(
                &json!({"iat": now(), "hid": hid, "seq": 12}),
                Algorithm::HS256,
                "not-the-host-key",
            ),
        ),
        // Another algorithm with the right key.
        (
            "HS512",
            sign(
                &json!({"iat": now(), "hid": hid, "seq": 13}),
                Algorithm::HS512,
                &host.key,
            ),
        ),
        // alg none: no signature at all.
        (
            "none",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
                URL_SAFE_NO_PAD.encode(json!({"iat": now(), "hid": hid, "seq": 14}).to_string())
            ),
        ),
    ];
    for (what, token) in refused {
        let response = host
            .request("PUT", "/pythonContext1!libraries")
            .bearer(&token)
            .send();
        assert_eq!(response.status, 403, "{what}: {}", response.text());
        assert!(response.headers_named("set-cookie").is_empty(), "{what}");
        assert!(!response.text().contains(&host.key), "{what}");
    }

    // The key itself as a bearer token keeps working, as does a fresh JWT.
    let response = host
        .request("PUT", "/pythonContext1!libraries")
        .bearer(&host.key)
        .send();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json(), json!({}));
    let response = host
        .request("PUT", "/pythonContext1!evaluate")
        .bearer(&jwt(20, now()))
        .json(&json!({"type": "call", "func": {"type": "get", "name": "abs"}, "args": [{"type": "integer", "data": -3}]}))
        .send();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["value"],
        json!({"type": "integer", "data": 3})
    );
    // A JWT without hid and seq is accepted (there is no pair to remember).
    let plain = sign(&json!({ "iat": now() }), Algorithm::HS256, &host.key);
    for _ in 0..2 {
        let response = host.request("GET", "/pythonContext1").bearer(&plain).send();
        assert_eq!(response.status, 200, "{}", response.text());
    }
}

#[test]
fn a_jwt_does_not_work_where_auth_has_no_key_for_it() {
    // A host started with `serve` has a key too (its run file); a token signed with
    // anything else is refused, and a ticket-era session is unaffected.
    let host = HostProcess::start(&["--pool-size", "0"]);
    let token = sign(
        &json!({"iat": now(), "hid": "h", "seq": 1}),
        Algorithm::HS256,
        "guess",
    );
    let response = host.request("POST", "/PythonContext").bearer(&token).send();
    assert_eq!(response.status, 403, "{}", response.text());
    let cookie = host.token();
    let response = host.request("GET", "/manifest").cookie(&cookie).send();
    assert!(response.json()["instances"].is_array());
}

fn session_cookie_header(args: &[&str]) -> String {
    let host = HostProcess::start(args);
    let response = host.with_ticket("GET", "/manifest").send();
    assert_eq!(response.status, 200);
    let cookies = response.headers_named("set-cookie");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    cookies[0].to_string()
}

#[test]
fn cookie_samesite_option() {
    let cookie = session_cookie_header(&[]);
    assert!(
        cookie.ends_with("; Path=/; HttpOnly; SameSite=Strict"),
        "{cookie}"
    );
    let cookie = session_cookie_header(&["--cookie-samesite", "lax"]);
    assert!(
        cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
    let cookie = session_cookie_header(&["--cookie-samesite", "none"]);
    assert!(
        cookie.ends_with("; Path=/; HttpOnly; SameSite=None; Secure"),
        "{cookie}"
    );

    let out = Command::new(binary())
        .args(["serve", "--port", "0", "--cookie-samesite", "sometimes"])
        .output()
        .expect("to run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--cookie-samesite"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn manifest_fields_and_environ_that_the_2018_clients_read() {
    let host = HostProcess::start(&["--pool-size", "0"]);
    // The seed-era client connects with the ticket and Accept: application/json.
    let response = host
        .with_ticket("GET", "/")
        .header("Accept", "application/json")
        .send();
    assert_eq!(response.status, 200);
    let token = response.cookie("token").expect("a session cookie");
    let manifest = response.json();
    assert!(manifest["stencila"]["package"].is_string(), "{manifest}");
    assert!(manifest["stencila"]["version"].is_string(), "{manifest}");
    let python = &manifest["types"]["PythonContext"];
    assert_eq!(python["name"], "PythonContext");
    assert_eq!(python["client"], "ContextHttpClient");
    assert_eq!(manifest["environs"][0]["id"], "local");

    let started = host.request("POST", "/environ/local").cookie(&token).send();
    assert_eq!(started.status, 200, "{}", started.text());
    let _ = started.json();
    let created = host.request("POST", "/PythonContext").cookie(&token).send();
    assert_eq!(created.json(), json!("pythonContext1"));
    let result = host
        .request("PUT", "/pythonContext1!getLibraries")
        .cookie(&token)
        .send();
    assert_eq!(result.status, 200);
    assert_eq!(result.json(), json!({}));
}
