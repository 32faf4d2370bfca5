//! SqliteContext over HTTP (PROTOCOL.md section 8): options, execution, value types,
//! injection-safe inputs, table inputs, `name = SELECT`, errors with positions,
//! list/get/set, interrupt and timeout of a long query, restart and DELETE.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use stencila_tests::{HostProcess, Request};

/// Counts to a billion: runs far longer than any test waits, unless stopped.
const LONG_QUERY: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT max(x) AS top FROM c";

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

    /// `POST /SqliteContext` with `options`; the response.
    fn create_with(&self, options: &Value) -> stencila_tests::Response {
        self.host
            .request("POST", "/SqliteContext")
            .cookie(&self.token)
            .json(options)
            .send()
    }

    fn create(&self, options: &Value) -> String {
        let response = self.create_with(options);
        assert_eq!(response.status, 200, "{}", response.text());
        response.json().as_str().expect("a name").to_string()
    }

    fn request(&self, name: &str, method: &str) -> Request {
        self.host
            .request("PUT", &format!("/{name}!{method}"))
            .cookie(&self.token)
    }

    fn call(&self, name: &str, method: &str, arg: Value) -> Value {
        let response = self.request(name, method).json(&arg).send();
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    }

    fn execute(&self, name: &str, arg: Value) -> Value {
        self.call(name, "execute", arg)
    }
}

fn columns(result: &Value) -> &Value {
    &result["value"]["data"]["columns"]
}

/// A fresh directory of this test's own under the system's temporary directory.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stencila-sqlite-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

#[test]
fn the_manifest_offers_sqlite_and_names_count_per_type() {
    let s = Session::new(&[]);
    let manifest = s.host.request("GET", "/manifest").send().json();
    assert_eq!(
        manifest["types"]["SqliteContext"],
        json!({"name": "SqliteContext", "client": "ContextHttpClient", "available": true})
    );
    assert_eq!(s.create(&json!({})), "sqliteContext1");
    assert_eq!(s.create(&json!({})), "sqliteContext2");
    // A context with no body gets an in-memory database too.
    let bare = s
        .host
        .request("POST", "/SqliteContext")
        .cookie(&s.token)
        .send();
    assert_eq!(bare.status, 200, "{}", bare.text());
}

#[test]
fn execute_returns_the_last_rows_as_a_table_of_typed_columns() {
    let s = Session::new(&[]);
    let name = s.create(&json!({}));
    let result = s.execute(
        &name,
        json!({"code": "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n);\n\
                        INSERT INTO t VALUES (1, 2.5, 'x', x'cafe', NULL), (9007199254740993, NULL, NULL, NULL, NULL);\n\
                        SELECT * FROM t;\n\
                        UPDATE t SET s = 'y'"}),
    );
    assert_eq!(result["messages"], json!([]));
    assert_eq!(
        result["value"],
        json!({"type": "table", "data": {"columns": [
            {"name": "i", "type": "integer", "values": [1, "9007199254740993"]},
            {"name": "r", "type": "number", "values": [2.5, null]},
            {"name": "s", "type": "string", "values": ["x", null]},
            {"name": "b", "type": "bytes", "values": [{"type": "bytes", "data": "yv4=", "encoding": "base64"}, null]},
            {"name": "n", "type": "null", "values": [null, null]}
        ]}})
    );
    // Code as a bare JSON string, and a statement without rows: null.
    let none = s.execute(&name, json!("DELETE FROM t"));
    assert_eq!(none, json!({"messages": [], "value": null}));
    // Without a declared type, the first non-null value decides.
    let mixed = s.execute(
        &name,
        json!("SELECT NULL AS a UNION ALL SELECT 1.5 UNION ALL SELECT 'z'"),
    );
    assert_eq!(columns(&mixed)[0]["type"], "number");
    assert_eq!(columns(&mixed)[0]["values"], json!([null, 1.5, "z"]));
}

#[test]
fn regression_an_input_is_data_never_sql() {
    // The 2018 host spliced inputs into the SQL text with string templates.
    let s = Session::new(&[]);
    let name = s.create(&json!({}));
    s.execute(
        &name,
        json!("CREATE TABLE t (s TEXT); INSERT INTO t VALUES ('kept')"),
    );
    let evil = "x'); DROP TABLE t; --";
    let result = s.execute(
        &name,
        json!({"code": "INSERT INTO t VALUES (:s); INSERT INTO t VALUES (@s); INSERT INTO t VALUES ($s); SELECT s FROM t ORDER BY rowid",
               "inputs": {"s": {"type": "string", "data": evil}}}),
    );
    assert_eq!(result["messages"], json!([]));
    assert_eq!(
        columns(&result)[0]["values"],
        json!(["kept", evil, evil, evil])
    );
    let listed = s.call(&name, "list", json!({}));
    assert_eq!(listed[0]["name"], "t", "{listed}");
}

#[test]
fn scalar_inputs_of_each_type_bind() {
    let s = Session::new(&[]);
    let name = s.create(&json!({}));
    let result = s.execute(
        &name,
        json!({"code": "SELECT :i AS i, :big AS big, :r AS r, :t AS t, :f AS f, :n AS n, :b AS b, json_extract(:o, '$.k') AS o",
               "inputs": {
                   "i": {"type": "integer", "data": 7},
                   "big": {"type": "integer", "data": "-9007199254740993"},
                   "r": {"type": "number", "data": 0.25},
                   "t": {"type": "string", "data": "café"},
                   "f": {"type": "boolean", "data": false},
                   "n": {"type": "null", "data": null},
                   "b": {"type": "bytes", "data": "AAE="},
                   "o": {"type": "object", "data": {"k": "v"}}
               }}),
    );
    assert_eq!(result["messages"], json!([]));
    let values: Vec<&Value> = columns(&result)
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| &c["values"][0])
        .collect();
    assert_eq!(
        values,
        [
            &json!(7),
            &json!("-9007199254740993"),
            &json!(0.25),
            &json!("café"),
            &json!(0),
            &json!(null),
            &json!({"type": "bytes", "data": "AAE=", "encoding": "base64"}),
            &json!("v")
        ]
    );
    // A malformed input is the caller's error: a 400 that names it.
    let bad = s
        .request(&name, "execute")
        .json(&json!({"code": "SELECT :x", "inputs": {"x": {"type": "integer", "data": "ten"}}}))
        .send();
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("input 'x'"), "{}", bad.text());
}

#[test]
fn a_table_input_becomes_a_temporary_table_and_name_select_keeps_a_result() {
    let s = Session::new(&[]);
    let name = s.create(&json!({}));
    let people = json!({"type": "table", "data": {"columns": [
        {"name": "who", "type": "string", "values": ["ann", "bob", "cy"]},
        {"name": "age", "type": "integer", "values": [31, 17, 45]}
    ]}});
    let result = s.execute(
        &name,
        json!({"code": "adults = SELECT who, age FROM people WHERE age >= :min ORDER BY age",
               "inputs": {"people": people, "min": {"type": "integer", "data": 18}}}),
    );
    assert_eq!(result["messages"], json!([]));
    assert_eq!(
        columns(&result),
        &json!([
            {"name": "who", "type": "string", "values": ["ann", "cy"]},
            {"name": "age", "type": "integer", "values": [31, 45]}
        ])
    );
    // The kept result is a table the next execute can use.
    let count = s.execute(&name, json!("SELECT count(*) AS n FROM adults"));
    assert_eq!(columns(&count)[0]["values"], json!([2]));
    let listed = s.call(&name, "list", json!({}));
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|entry| entry["name"].as_str())
        .collect();
    assert_eq!(names, ["adults", "people"]);
}

#[test]
fn sql_errors_are_messages_with_line_and_column_not_http_errors() {
    let s = Session::new(&[]);
    let name = s.create(&json!({}));
    let result = s.execute(&name, json!("CREATE TABLE t (a);\nSELECT a FROM t WHERE;"));
    assert_eq!(
        result,
        json!({"messages": [{"type": "error", "message": "near \";\": syntax error", "line": 2, "column": 21}], "value": null})
    );
    // The statement before the error ran.
    let after = s.execute(&name, json!("SELECT count(*) AS n FROM t"));
    assert_eq!(columns(&after)[0]["values"], json!([0]));
    let missing = s.execute(&name, json!("SELECT * FROM nowhere"));
    assert_eq!(missing["messages"][0]["message"], "no such table: nowhere");
    let unbound = s.execute(&name, json!("SELECT :who"));
    assert_eq!(
        unbound["messages"][0]["message"],
        "no input named 'who' for the parameter :who"
    );
}

#[test]
fn list_get_and_set_tables_and_views() {
    let s = Session::new(&[]);
    let name = s.create(&json!({}));
    s.execute(
        &name,
        json!("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'one'); CREATE VIEW v AS SELECT b FROM t"),
    );
    let table = json!({"type": "table", "data": {"columns": [
        {"name": "x", "type": "number", "values": [1.5, null]},
        {"name": "y", "type": "boolean", "values": [true, false]}
    ]}});
    assert_eq!(
        s.call(&name, "set", json!({"name": "made", "value": table})),
        Value::Null
    );
    assert_eq!(
        s.call(&name, "list", json!({})),
        json!([
            {"name": "t", "type": "table", "kind": "table", "temporary": false},
            {"name": "v", "type": "table", "kind": "view", "temporary": false},
            {"name": "made", "type": "table", "kind": "table", "temporary": true}
        ])
    );
    assert_eq!(
        s.call(&name, "get", json!({"name": "v"})),
        json!({"type": "table", "data": {"columns": [{"name": "b", "type": "string", "values": ["one"]}]}})
    );
    // Booleans are stored as SQLite stores them: 0 and 1.
    assert_eq!(
        s.call(&name, "get", json!({"name": "made"}))["data"]["columns"][1],
        json!({"name": "y", "type": "integer", "values": [1, 0]})
    );
    let missing = s
        .request(&name, "get")
        .json(&json!({"name": "nope"}))
        .send();
    assert_eq!(missing.status, 400, "{}", missing.text());
    let not_a_table = s
        .request(&name, "set")
        .json(&json!({"name": "x", "value": {"type": "integer", "data": 1}}))
        .send();
    assert_eq!(not_a_table.status, 400, "{}", not_a_table.text());
}

#[test]
fn interrupt_from_a_second_connection_stops_a_long_query() {
    let s = Session::new(&[]);
    let name = s.create(&json!({}));
    let port = s.host.port;
    let token = s.token.clone();
    let path = format!("/{name}!execute");
    let started = Instant::now();
    let running = std::thread::spawn(move || {
        Request::new(port, "PUT", &path)
            .cookie(&token)
            .json(&json!({ "code": LONG_QUERY }))
            .send()
            .json()
    });
    std::thread::sleep(Duration::from_millis(500));
    // The host answers other requests while the query runs.
    assert_eq!(s.host.request("GET", "/manifest").send().status, 200);
    let interrupted = s.request(&name, "interrupt").send();
    assert_eq!(interrupted.status, 200, "{}", interrupted.text());
    let result = running.join().expect("the execute returns");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        result,
        json!({"messages": [{"type": "error", "message": "Interrupted: the query was interrupted"}], "value": null})
    );
    let after = s.execute(&name, json!("SELECT 6*7 AS answer"));
    assert_eq!(columns(&after)[0]["values"], json!([42]));
}

#[test]
fn timeouts_interrupt_a_long_query_and_say_so() {
    let s = Session::new(&["--execute-timeout", "500ms"]);
    let name = s.create(&json!({}));
    let started = Instant::now();
    let by_host = s.execute(&name, json!({ "code": LONG_QUERY }));
    assert_eq!(
        by_host["messages"][0]["message"],
        "TimeoutError: execution exceeded 0.5 s and was interrupted"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let by_call = s.execute(&name, json!({ "code": LONG_QUERY, "timeout": 0.2 }));
    assert_eq!(
        by_call["messages"][0]["message"],
        "TimeoutError: execution exceeded 0.2 s and was interrupted"
    );
    let after = s.execute(&name, json!("SELECT 1 AS one"));
    assert_eq!(columns(&after)[0]["values"], json!([1]));
}

#[test]
fn a_db_file_persists_across_restart_and_contexts_and_a_dir_finds_it() {
    let dir = scratch("file");
    let file = dir.join("b.sqlite");
    let s = Session::new(&[]);
    let first = s.create(&json!({"db": file}));
    s.execute(
        &first,
        json!("CREATE TABLE kept (a); INSERT INTO kept VALUES (1); CREATE TEMP TABLE gone (a)"),
    );
    let state = s
        .host
        .request("GET", &format!("/{first}"))
        .cookie(&s.token)
        .send()
        .json();
    assert_eq!(state["database"], json!(file), "{state}");
    assert_eq!(s.call(&first, "restart", json!({})), Value::Null);
    let listed = s.call(&first, "list", json!({}));
    assert_eq!(
        listed,
        json!([{"name": "kept", "type": "table", "kind": "table", "temporary": false}])
    );
    // `dir` opens the first database file by name; other files are ignored.
    std::fs::write(dir.join("c.db"), b"").expect("a second database");
    std::fs::write(dir.join("a.txt"), b"text").expect("a text file");
    let second = s.create(&json!({"dir": dir}));
    let rows = s.execute(&second, json!("SELECT a FROM kept"));
    assert_eq!(columns(&rows)[0]["values"], json!([1]));
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

#[test]
fn restart_of_an_in_memory_database_is_fresh() {
    let s = Session::new(&[]);
    let name = s.create(&json!({}));
    s.execute(&name, json!("CREATE TABLE t (a)"));
    assert_eq!(s.call(&name, "restart", json!({})), Value::Null);
    assert_eq!(s.call(&name, "list", json!({})), json!([]));
}

#[test]
fn a_path_that_cannot_be_opened_is_a_400_that_says_why() {
    let dir = scratch("bad");
    let text = dir.join("notes.db");
    std::fs::write(
        &text,
        "plain text, long enough that SQLite reads a header from it",
    )
    .expect("a file");
    let s = Session::new(&[]);
    let cases = [
        (
            json!({"db": "/nonexistent/stencila/x.db"}),
            "its directory does not exist",
        ),
        (json!({"db": text}), "it is not a SQLite database"),
        (json!({"db": dir}), "it is a directory"),
        (json!({"dir": "/nonexistent/stencila"}), "it does not exist"),
        (json!({"dir": text}), "it is not a directory"),
        (json!({"db": "a.db", "dir": "."}), "not both"),
        (json!({"file": "a.db"}), "no option 'file'"),
    ];
    for (options, why) in cases {
        let response = s.create_with(&options);
        assert_eq!(response.status, 400, "{options}: {}", response.text());
        let body = response.text();
        assert!(body.starts_with("Bad request: "), "{body}");
        assert!(body.contains(why), "{options}: {body}");
    }
    // The message names the path as given, and nothing of the host beyond it.
    let body = s.create_with(&json!({"db": "missing-dir/x.db"})).text();
    assert_eq!(
        body,
        "Bad request: cannot open database 'missing-dir/x.db': its directory does not exist"
    );
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

#[test]
fn delete_ends_the_context() {
    let s = Session::new(&[]);
    let name = s.create(&json!({}));
    let deleted = s
        .host
        .request("DELETE", &format!("/{name}"))
        .cookie(&s.token)
        .send();
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json(), Value::Null);
    let after = s.request(&name, "execute").json(&json!("SELECT 1")).send();
    assert_eq!(after.status, 404, "{}", after.text());
}

#[test]
fn calls_on_one_context_run_in_order_while_others_run_in_parallel() {
    let s = Session::new(&[]);
    let busy = s.create(&json!({}));
    let free = s.create(&json!({}));
    let port = s.host.port;
    let token = s.token.clone();
    let path = format!("/{busy}!execute");
    let running = std::thread::spawn(move || {
        Request::new(port, "PUT", &path)
            .cookie(&token)
            .json(&json!({ "code": LONG_QUERY }))
            .send()
            .json()
    });
    std::thread::sleep(Duration::from_millis(300));
    // Another context answers while the first is still busy.
    let other = s.execute(&free, json!("SELECT 2 AS two"));
    assert_eq!(columns(&other)[0]["values"], json!([2]));
    assert!(!running.is_finished(), "the long query ended by itself");
    // A second call on the busy context waits its turn, behind the running query.
    let queued = {
        let port = s.host.port;
        let token = s.token.clone();
        let path = format!("/{busy}!execute");
        std::thread::spawn(move || {
            Request::new(port, "PUT", &path)
                .cookie(&token)
                .json(&json!("SELECT 3 AS three"))
                .send()
                .json()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!queued.is_finished(), "a call ran beside the running query");
    s.call(&busy, "interrupt", json!({}));
    let result = running.join().expect("the execute returns");
    assert_eq!(
        result["messages"][0]["message"],
        "Interrupted: the query was interrupted"
    );
    let queued = queued.join().expect("the queued execute returns");
    assert_eq!(columns(&queued)[0]["values"], json!([3]));
}

/// PROTOCOL.md section 13 on SQL: the 2018 clients' calls work on a SqliteContext,
/// with parameters as inputs and `name = SELECT` as the output.
#[test]
fn the_2018_client_methods_work_on_sql() {
    let session = Session::new(&[]);
    let name = session.create(&json!({}));
    session.execute(
        &name,
        json!({"code": "CREATE TABLE data (a INTEGER); INSERT INTO data VALUES (1), (5), (9)"}),
    );

    let analysis = session.call(
        &name,
        "analyseCode",
        json!({"code": "big = SELECT a FROM data WHERE a > $low AND a < :high AND a != ':quoted'"}),
    );
    assert_eq!(analysis["inputs"], json!(["low", "high"]), "{analysis}");
    assert_eq!(analysis["output"], json!("big"), "{analysis}");

    // A Desktop-0.28 cell: inputs set as parameters, the output read back by name.
    let cell = session.call(
        &name,
        "execute",
        json!({
            "type": "cell",
            "source": {"type": "text", "data": "big = SELECT a FROM data WHERE a > $low"},
            "inputs": [{"name": "low", "value": {"type": "integer", "data": 2}}],
        }),
    );
    assert_eq!(cell["outputs"][0]["name"], json!("big"), "{cell}");
    assert_eq!(
        cell["outputs"][0]["value"]["data"]["columns"][0]["values"],
        json!([5, 9]),
        "{cell}"
    );

    // exprOnly with a statement runs nothing and says why.
    let refused = session.call(
        &name,
        "executeCode",
        json!({"code": "DROP TABLE data", "exprOnly": true}),
    );
    assert_eq!(refused["messages"][0]["type"], json!("error"), "{refused}");
    let still = session.execute(&name, json!({"code": "SELECT count(*) AS n FROM data"}));
    assert_eq!(columns(&still)[0]["values"], json!([3]), "{still}");

    assert_eq!(session.call(&name, "getLibraries", json!({})), json!({}));
}
