//! Values between contexts over HTTP (PROTOCOL.md section 9): a table from any context
//! is an input to any other (SQL -> Python -> JavaScript -> SQL and back), large
//! tables come back as pointers that `fetch` pages through and that the host resolves
//! instance to instance, and a pointer that cannot be resolved is an error message.
//! The JavaScript legs are skipped, with a printed reason, where `node` is missing;
//! the Python legs that need pandas likewise.

use serde_json::{json, Value};
use std::process::Command;
use stencila_tests::HostProcess;

/// A host and a token.
struct Session {
    host: HostProcess,
    token: String,
}

impl Session {
    fn new(args: &[&str]) -> Session {
        let host = HostProcess::start(args);
        let token = host.token();
        Session { host, token }
    }

    fn create(&self, type_name: &str) -> String {
        let response = self
            .host
            .request("POST", &format!("/{type_name}"))
            .cookie(&self.token)
            .send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json().as_str().expect("a name").to_string()
    }

    /// `PUT /<name>!<method>`: the status and the body as JSON (or text).
    fn try_call(&self, name: &str, method: &str, arg: &Value) -> (u16, Value) {
        let response = self
            .host
            .request("PUT", &format!("/{name}!{method}"))
            .cookie(&self.token)
            .header("Accept", "application/json")
            .json(arg)
            .send();
        let body = serde_json::from_slice(&response.body).unwrap_or(Value::String(response.text()));
        (response.status, body)
    }

    fn call(&self, name: &str, method: &str, arg: Value) -> Value {
        let (status, body) = self.try_call(name, method, &arg);
        assert_eq!(status, 200, "{method} on {name}: {body}");
        body
    }

    /// `execute`, asserting it reported no error; the value.
    fn value(&self, name: &str, code: &str, inputs: Value) -> Value {
        let result = self.call(name, "execute", json!({"code": code, "inputs": inputs}));
        let errors: Vec<&Value> = result["messages"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["type"] == "error").collect())
            .unwrap_or_default();
        assert!(errors.is_empty(), "{code}: {result}");
        result["value"].clone()
    }

    /// Whether the manifest says `type_name` can run here; prints why not.
    fn available(&self, type_name: &str) -> bool {
        let manifest = self
            .host
            .request("GET", "/manifest")
            .cookie(&self.token)
            .send()
            .json();
        let entry = &manifest["types"][type_name];
        let available = entry["available"] == json!(true);
        if !available {
            eprintln!("skipped the {type_name} legs: {}", entry["reason"]);
        }
        available
    }
}

fn python_has_pandas() -> bool {
    let found = Command::new(std::env::var("STENCILA_PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-c", "import pandas"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        eprintln!("skipped the legs that need pandas: Python has no pandas");
    }
    found
}

/// A column of a `table` value, by name: (type, values).
fn column(table: &Value, name: &str) -> (String, Value) {
    assert_eq!(table["type"], "table", "{table}");
    let columns = table["data"]["columns"].as_array().expect("columns");
    let column = columns
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {table}"));
    (
        column["type"].as_str().unwrap_or_default().to_string(),
        column["values"].clone(),
    )
}

fn names(table: &Value) -> Vec<String> {
    table["data"]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_table_goes_sql_to_python_to_javascript_to_sql_and_back() {
    let session = Session::new(&[]);
    let sql = session.create("SqliteContext");
    let python = session.create("PythonContext");

    // SQL: the table every leg starts from.
    let scores = session.value(
        &sql,
        "CREATE TABLE t (id INTEGER, name TEXT, score REAL); \
         INSERT INTO t VALUES (1, 'ann', 1.5), (2, 'bob', NULL), (3, 'cy', 3.25); \
         SELECT * FROM t ORDER BY id",
        json!({}),
    );
    assert_eq!(names(&scores), ["id", "name", "score"]);
    assert_eq!(column(&scores, "id"), ("integer".into(), json!([1, 2, 3])));
    assert_eq!(
        column(&scores, "name"),
        ("string".into(), json!(["ann", "bob", "cy"]))
    );
    assert_eq!(
        column(&scores, "score"),
        ("number".into(), json!([1.5, null, 3.25]))
    );

    // SQL -> Python: a DataFrame with pandas, a dict of column lists without.
    let pandas = python_has_pandas();
    let kind = session.value(&python, "type(df).__name__", json!({ "df": scores }));
    assert_eq!(kind["data"], if pandas { "DataFrame" } else { "dict" });
    let ids = session.value(&python, "[int(i) for i in df['id']]", json!({}));
    assert_eq!(ids["data"], json!([1, 2, 3]));
    if !pandas {
        return;
    }
    let shaped = session.value(
        &python,
        "out = df.assign(double=df['score'] * 2); out",
        json!({}),
    );
    assert_eq!(names(&shaped), ["id", "name", "score", "double"]);
    assert_eq!(column(&shaped, "id"), ("integer".into(), json!([1, 2, 3])));
    assert_eq!(
        column(&shaped, "name"),
        ("string".into(), json!(["ann", "bob", "cy"]))
    );
    // A missing score is NaN in pandas, and NaN travels as null.
    assert_eq!(
        column(&shaped, "double"),
        ("number".into(), json!([3.0, null, 6.5]))
    );

    // Python -> SQL directly.
    let back = session.value(
        &sql,
        "SELECT name, double FROM shaped WHERE double IS NOT NULL ORDER BY id",
        json!({ "shaped": shaped }),
    );
    assert_eq!(column(&back, "double").1, json!([3.0, 6.5]));

    if !session.available("NodeContext") {
        return;
    }
    let node = session.create("NodeContext");
    // Python -> JavaScript: an array of row objects.
    let first = session.value(
        &node,
        "[Array.isArray(rows), rows.length, rows[0].name, rows[2].double, rows[1].double]",
        json!({ "rows": shaped }),
    );
    assert_eq!(first["data"], json!([true, 3, "ann", 6.5, null]));
    let labelled = session.value(
        &node,
        "rows.map((r) => ({ id: r.id, label: `${r.name}:${r.id}`, double: r.double }))",
        json!({}),
    );
    assert_eq!(
        column(&labelled, "label"),
        ("string".into(), json!(["ann:1", "bob:2", "cy:3"]))
    );
    assert_eq!(
        column(&labelled, "id"),
        ("integer".into(), json!([1, 2, 3]))
    );

    // JavaScript -> SQL: a temporary table.
    let last = session.value(
        &sql,
        "SELECT l.label, t.score FROM labelled AS l JOIN t ON t.id = l.id ORDER BY l.id",
        json!({ "labelled": labelled }),
    );
    assert_eq!(column(&last, "label").1, json!(["ann:1", "bob:2", "cy:3"]));
    assert_eq!(column(&last, "score").1, json!([1.5, null, 3.25]));

    // And back: SQL -> JavaScript, JavaScript -> Python.
    let sums = session.value(
        &node,
        "t.reduce((sum, r) => sum + (r.score ?? 0), 0)",
        json!({ "t": last }),
    );
    assert_eq!(sums["data"], json!(4.75));
    let from_js = session.value(&python, "list(lab['label'])", json!({ "lab": labelled }));
    assert_eq!(from_js["data"], json!(["ann:1", "bob:2", "cy:3"]));
}

/// Counts 1 to `n` in SQL, with a second column.
fn counting(n: usize) -> String {
    format!("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT x, x % 7 AS m FROM c")
}

#[test]
fn a_million_rows_come_back_as_a_pointer_page_through_fetch_and_reach_python_host_side() {
    // A body limit far below the table's size: the client could not send it, so the
    // table Python receives came instance to instance.
    let session = Session::new(&["--max-body", "64K"]);
    let sql = session.create("SqliteContext");
    let python = session.create("PythonContext");
    let pointer = session.value(&sql, &counting(1_000_000), json!({}));
    assert_eq!(pointer["type"], "pointer", "{pointer}");
    assert_eq!(pointer["instance"], json!(sql));
    assert_eq!(pointer["valueType"], "table");
    assert_eq!(pointer["rows"], 1_000_000);
    let preview = &pointer["preview"];
    assert_eq!(column(preview, "x").1, json!((1..=20).collect::<Vec<_>>()));
    let name = pointer["name"].as_str().expect("a name");

    // Default page: the first 1,000 rows.
    let page = session.call(&sql, "fetch", json!({ "name": name }));
    let (kind, xs) = column(&page, "x");
    assert_eq!(kind, "integer");
    assert_eq!(xs.as_array().map(Vec::len), Some(1000));
    assert_eq!(xs[999], 1000);
    let page = session.call(
        &sql,
        "fetch",
        json!({"name": name, "offset": 999_990, "limit": 100}),
    );
    assert_eq!(
        column(&page, "x").1,
        json!((999_991..=1_000_000).collect::<Vec<_>>())
    );
    assert_eq!(column(&page, "m").1[9], 1_000_000 % 7);

    let body = json!({"code": "[len(t['x']), int(sum(t['x'])), int(t['m'][999999])]", "inputs": {"t": pointer}});
    assert!(
        body.to_string().len() < 8 << 10,
        "the request carries the pointer only"
    );
    let result = session.call(&python, "execute", body);
    assert_eq!(result["messages"], json!([]), "{result}");
    assert_eq!(
        result["value"]["data"],
        json!([1_000_000, 500_000_500_000_i64, 1_000_000 % 7])
    );
}

#[test]
fn pointers_from_every_context_and_pointers_that_cannot_be_resolved() {
    let session = Session::new(&["--max-inline", "5"]);
    let sql = session.create("SqliteContext");
    let python = session.create("PythonContext");

    // SQL: an assignment keeps its table; the pointer names it.
    let pointer = session.value(&sql, &format!("big = {}", counting(50)), json!({}));
    assert_eq!(
        (pointer["type"].clone(), pointer["name"].clone()),
        (json!("pointer"), json!("big"))
    );
    let got = session.call(&sql, "get", json!({"name": "big"}));
    assert_eq!(got["instance"], json!(sql));

    // Unresolvable pointers are error messages in a 200 result, naming the input.
    let mut missing = pointer.clone();
    missing["name"] = json!("nope");
    let result = session.call(
        &python,
        "execute",
        json!({"code": "1", "inputs": {"t": missing}}),
    );
    let message = result["messages"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("input 't'") && message.contains("nope"),
        "{result}"
    );
    assert_eq!(result["value"], Value::Null);

    if python_has_pandas() {
        // Python: a DataFrame variable over the limit is a pointer named after it.
        let frame = session.value(
            &python,
            "import pandas as pd\nframe = pd.DataFrame({'a': range(50)})\nframe",
            json!({}),
        );
        assert_eq!(frame["type"], "pointer", "{frame}");
        assert_eq!(frame["name"], "frame");
        assert_eq!(frame["instance"], json!(python));
        assert_eq!(frame["rows"], 50);
        let page = session.call(&python, "fetch", json!({"name": "frame", "offset": 45}));
        assert_eq!(column(&page, "a").1, json!([45, 46, 47, 48, 49]));
        // An unnamed one goes to a hidden holder.
        let unnamed = session.value(&python, "frame * 2", json!({}));
        assert!(
            unnamed["name"].as_str().is_some_and(|n| n.starts_with('_')),
            "{unnamed}"
        );
        // Python -> SQL by pointer.
        let sums = session.value(
            &sql,
            "SELECT count(*) AS n, sum(a) AS s FROM p",
            json!({ "p": unnamed }),
        );
        assert_eq!(column(&sums, "s").1, json!([2450]));
        // SQL -> Python by pointer.
        let n = session.value(&python, "len(big)", json!({ "big": pointer }));
        assert_eq!(n["data"], 50);
    }

    if session.available("NodeContext") {
        let node = session.create("NodeContext");
        let rows = session.value(
            &node,
            "Array.from({length: 30}, (_, i) => ({i}))",
            json!({}),
        );
        assert_eq!(rows["type"], "pointer", "{rows}");
        assert_eq!(rows["instance"], json!(node));
        let page = session.call(&node, "fetch", json!({"name": rows["name"], "limit": 3}));
        assert_eq!(column(&page, "i").1, json!([0, 1, 2]));
        // JavaScript -> SQL and SQL -> JavaScript by pointer.
        let sums = session.value(&sql, "SELECT sum(i) AS s FROM r", json!({ "r": rows }));
        assert_eq!(column(&sums, "s").1, json!([435]));
        let n = session.value(&node, "big.length + big[49].x", json!({ "big": pointer }));
        assert_eq!(n["data"], 100);
    }

    // The instance is gone.
    let (status, _) = session.try_call(&sql, "execute", &json!({"code": "SELECT 1"}));
    assert_eq!(status, 200);
    let response = session
        .host
        .request("DELETE", &format!("/{sql}"))
        .cookie(&session.token)
        .send();
    assert_eq!(response.status, 200);
    let result = session.call(
        &python,
        "execute",
        json!({"code": "1", "inputs": {"t": pointer}}),
    );
    let message = result["messages"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("is gone") && message.contains(&sql),
        "{result}"
    );
    // `set` with such a pointer is refused as a bad argument, not a fault.
    let (status, body) = session.try_call(&python, "set", &json!({"name": "x", "value": pointer}));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn the_manifest_lists_the_three_context_types() {
    let session = Session::new(&[]);
    let manifest = session.host.request("GET", "/manifest").send().json();
    for type_name in ["PythonContext", "SqliteContext", "NodeContext"] {
        let entry = &manifest["types"][type_name];
        assert_eq!(entry["name"], type_name, "{manifest}");
        assert!(entry["available"].is_boolean(), "{manifest}");
    }
    assert_eq!(manifest["types"]["SqliteContext"]["available"], true);
}

#[test]
fn help_documents_max_inline() {
    let out = Command::new(stencila_tests::binary())
        .args(["serve", "--help"])
        .output()
        .expect("stencila --help runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--max-inline") && help.contains("pointer"),
        "{help}"
    );
}

#[test]
fn a_bad_max_inline_is_refused_at_start() {
    let out = Command::new(stencila_tests::binary())
        .args(["serve", "--port", "0", "--max-inline", "lots"])
        .output()
        .expect("stencila runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-inline"));
}
