//! Unit tests of `SqliteContext`: statement splitting, values and tables, options,
//! execution, interrupts and timeouts, on real in-process SQLite.

use super::split::{assignment, statements};
use super::*;
use serde_json::json;
use std::time::Instant;

/// A long query: counts to a billion, which takes far longer than any test waits.
const LONG_QUERY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT max(x) FROM c";

async fn memory() -> SqliteContext {
    SqliteContext::start(Location::Memory, SqliteConfig::default())
        .await
        .expect("an in-memory database")
}

async fn run(context: &SqliteContext, arg: Value) -> Value {
    context
        .call("execute", arg)
        .await
        .expect("an execute result")
}

fn columns(result: &Value) -> &Value {
    &result["value"]["data"]["columns"]
}

#[test]
fn statements_split_at_semicolons_outside_strings_comments_and_triggers() {
    let code = "SELECT ';' AS a; -- a comment; still\nSELECT \"x;y\" FROM [t;u];\n\
                CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES (1); END;\n\
                /* only; a comment */ SELECT 2";
    let pieces: Vec<&str> = statements(code).iter().map(|p| p.text.trim()).collect();
    assert_eq!(
        pieces,
        [
            "SELECT ';' AS a;",
            "-- a comment; still\nSELECT \"x;y\" FROM [t;u];",
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES (1); END;",
            "/* only; a comment */ SELECT 2",
        ]
    );
    assert!(statements("  ; -- nothing\n ;").is_empty());
}

#[test]
fn assignment_is_a_name_then_equals_then_a_query() {
    let name = |code: &str| statements(code).first().and_then(assignment).map(|a| a.0);
    assert_eq!(name("t = SELECT 1"), Some("t".into()));
    assert_eq!(
        name("-- c\n big_one=with x as (select 1) select * from x"),
        Some("big_one".into())
    );
    assert_eq!(name("t == SELECT 1"), None);
    assert_eq!(name("UPDATE t SET a = 1"), None);
    assert_eq!(name("SELECT 1"), None);
    assert_eq!(name("1x = SELECT 1"), None);
    let pieces = statements("  t = SELECT 2;");
    let (_, offset) = assignment(&pieces[0]).expect("an assignment");
    assert_eq!(&pieces[0].text[offset..], "SELECT 2;");
}

#[tokio::test]
async fn execute_gives_the_rows_of_the_last_statement_with_rows() {
    let context = memory().await;
    let result = run(
        &context,
        json!({"code": "CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, NULL); SELECT * FROM t; DELETE FROM t WHERE a = 2"}),
    )
    .await;
    assert_eq!(result["messages"], json!([]));
    assert_eq!(
        columns(&result),
        &json!([
            {"name": "a", "type": "integer", "values": [1, 2]},
            {"name": "b", "type": "string", "values": ["x", null]}
        ])
    );
    let none = run(&context, json!("CREATE TABLE u (x)")).await;
    assert_eq!(none, json!({"messages": [], "value": null}));
}

#[tokio::test]
async fn values_keep_their_sqlite_types() {
    let context = memory().await;
    let result = run(
        &context,
        json!("SELECT 42 AS i, 1.5 AS r, 'é' AS s, NULL AS n, x'00ff' AS b, 9007199254740993 AS big, -9007199254740991 AS safe, 1e999 AS inf"),
    )
    .await;
    assert_eq!(
        columns(&result),
        &json!([
            {"name": "i", "type": "integer", "values": [42]},
            {"name": "r", "type": "number", "values": [1.5]},
            {"name": "s", "type": "string", "values": ["é"]},
            {"name": "n", "type": "null", "values": [null]},
            {"name": "b", "type": "bytes", "values": [{"type": "bytes", "data": "AP8=", "encoding": "base64"}]},
            {"name": "big", "type": "integer", "values": ["9007199254740993"]},
            {"name": "safe", "type": "integer", "values": [-9007199254740991_i64]},
            {"name": "inf", "type": "number", "values": [null]}
        ])
    );
}

#[tokio::test]
async fn a_declared_type_wins_over_the_first_value() {
    let context = memory().await;
    let result = run(
        &context,
        json!(
            "CREATE TABLE t (price REAL, label VARCHAR(10), raw BLOB, any_thing); \
               INSERT INTO t VALUES (NULL, NULL, NULL, NULL), (3, 'a', NULL, 'z'); SELECT * FROM t"
        ),
    )
    .await;
    let types: Vec<&Value> = columns(&result)
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| &c["type"])
        .collect();
    assert_eq!(
        types,
        [
            &json!("number"),
            &json!("string"),
            &json!("bytes"),
            &json!("string")
        ]
    );
    // REAL affinity stored 3 as 3.0.
    assert_eq!(columns(&result)[0]["values"], json!([null, 3.0]));
}

#[tokio::test]
async fn inputs_are_bound_never_spliced() {
    let context = memory().await;
    run(
        &context,
        json!("CREATE TABLE t (s TEXT); INSERT INTO t VALUES ('kept')"),
    )
    .await;
    let evil = "x'); DROP TABLE t; --";
    let result = run(
        &context,
        json!({"code": "INSERT INTO t VALUES (:s); SELECT s FROM t ORDER BY rowid",
               "inputs": {"s": {"type": "string", "data": evil}}}),
    )
    .await;
    assert_eq!(columns(&result)[0]["values"], json!(["kept", evil]));
    let all = run(
        &context,
        json!({"code": "SELECT :a AS a, @b AS b, $c AS c",
               "inputs": {"a": {"type": "integer", "data": "9007199254740993"},
                          "b": {"type": "boolean", "data": true},
                          "c": {"type": "bytes", "data": "AP8="}}}),
    )
    .await;
    assert_eq!(
        columns(&all),
        &json!([
            {"name": "a", "type": "integer", "values": ["9007199254740993"]},
            {"name": "b", "type": "integer", "values": [1]},
            {"name": "c", "type": "bytes", "values": [{"type": "bytes", "data": "AP8=", "encoding": "base64"}]}
        ])
    );
}

#[tokio::test]
async fn a_missing_input_or_positional_parameter_is_an_error_message() {
    let context = memory().await;
    let missing = run(&context, json!("SELECT :nope")).await;
    assert_eq!(
        missing["messages"][0]["message"],
        json!("no input named 'nope' for the parameter :nope")
    );
    let positional = run(&context, json!("SELECT ?")).await;
    assert!(positional["messages"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("positional")));
    let bad = context
        .call(
            "execute",
            json!({"code": "SELECT :x", "inputs": {"x": {"type": "integer", "data": "ten"}}}),
        )
        .await;
    assert!(matches!(bad, Err(HostError::BadArgument(_))), "{bad:?}");
}

#[tokio::test]
async fn a_table_input_becomes_a_temporary_table_and_assignment_keeps_a_result() {
    let context = memory().await;
    let table = json!({"type": "table", "data": {"columns": [
        {"name": "n", "type": "integer", "values": [1, 2, 3]},
        {"name": "w", "type": "string", "values": ["a", "b", "c"]}
    ]}});
    let result = run(
        &context,
        json!({"code": "big = SELECT w, n * 10 AS m FROM input WHERE n > :k", "inputs": {"input": table, "k": {"type": "integer", "data": 1}}}),
    )
    .await;
    assert_eq!(result["messages"], json!([]));
    assert_eq!(columns(&result)[1]["values"], json!([20, 30]));
    // Assignment replaces, and may read the table it replaces.
    run(&context, json!("big = SELECT * FROM big WHERE m > 20")).await;
    let kept = context
        .call("get", json!({"name": "big"}))
        .await
        .expect("a table");
    assert_eq!(kept["data"]["columns"][0]["values"], json!(["c"]));
    let listed = context.call("list", json!({})).await.expect("a list");
    assert_eq!(
        listed,
        json!([
            {"name": "big", "type": "table", "kind": "table", "temporary": true},
            {"name": "input", "type": "table", "kind": "table", "temporary": true}
        ])
    );
}

#[tokio::test]
async fn a_table_round_trips_through_set_and_get() {
    let context = memory().await;
    let table = json!({"type": "table", "data": {"columns": [
        {"name": "i", "type": "integer", "values": [1, "9007199254740993", null]},
        {"name": "x", "type": "number", "values": [0.5, null, 2.0]},
        {"name": "s", "type": "string", "values": ["a", "it's", null]},
        {"name": "b", "type": "bytes", "values": [{"type": "bytes", "data": "AP8=", "encoding": "base64"}, null, null]}
    ]}});
    context
        .call("set", json!({"name": "odd \"name\"", "value": table}))
        .await
        .expect("set");
    let got = context
        .call("get", json!({"name": "odd \"name\""}))
        .await
        .expect("get");
    assert_eq!(got, table);
    let uneven = json!({"type": "table", "data": {"columns": [
        {"name": "a", "values": [1]}, {"name": "b", "values": [1, 2]}]}});
    let refused = context
        .call("set", json!({"name": "u", "value": uneven}))
        .await;
    assert!(
        matches!(refused, Err(HostError::BadArgument(_))),
        "{refused:?}"
    );
    let missing = context.call("get", json!({"name": "nothing"})).await;
    assert!(
        matches!(missing, Err(HostError::BadArgument(_))),
        "{missing:?}"
    );
}

#[tokio::test]
async fn sql_errors_are_messages_with_their_position() {
    let context = memory().await;
    let result = run(&context, json!("SELECT 1;\nSELECT * FROM t WHERE;")).await;
    assert_eq!(
        result["messages"],
        json!([{"type": "error", "message": "near \";\": syntax error", "line": 2, "column": 21}])
    );
    let syntax = run(&context, json!("SELECT 1;\n  SELEC 2")).await;
    assert_eq!(syntax["messages"][0]["line"], json!(2));
    assert_eq!(syntax["messages"][0]["column"], json!(2));
    let no_table = run(&context, json!("x = SELECT * FROM missing")).await;
    assert!(no_table["messages"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("no such table: missing")));
    // SQLite gives no offset for a missing table, so the message has no position.
    assert!(no_table["messages"][0].get("column").is_none());
    let bad_query = run(&context, json!("x = SELECT 1 +;")).await;
    assert_eq!(bad_query["messages"][0]["column"], json!(14));
}

#[tokio::test]
async fn interrupt_stops_a_running_query_without_queueing() {
    let context = Arc::new(memory().await);
    let running = {
        let context = context.clone();
        tokio::spawn(async move { context.call("execute", json!(LONG_QUERY)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    context
        .call("interrupt", json!({}))
        .await
        .expect("interrupt");
    let result = running.await.expect("the task").expect("a result");
    assert_eq!(
        result["messages"][0]["message"],
        json!("Interrupted: the query was interrupted")
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // The context still works afterwards.
    let after = run(&context, json!("SELECT 6*7 AS x")).await;
    assert_eq!(columns(&after)[0]["values"], json!([42]));
}

#[tokio::test]
async fn a_timeout_interrupts_and_says_so() {
    let context = SqliteContext::start(
        Location::Memory,
        SqliteConfig {
            execute_timeout: Some(Duration::from_secs(60)),
            ..SqliteConfig::default()
        },
    )
    .await
    .expect("a context");
    let result = run(&context, json!({"code": LONG_QUERY, "timeout": 0.3})).await;
    assert_eq!(
        result["messages"][0]["message"],
        json!("TimeoutError: execution exceeded 0.3 s and was interrupted")
    );
}

#[tokio::test]
async fn restart_gives_a_fresh_in_memory_database_and_destroy_ends_the_thread() {
    let context = memory().await;
    run(&context, json!("CREATE TABLE t (a)")).await;
    context.call("restart", json!({})).await.expect("restart");
    assert_eq!(
        context.call("list", json!({})).await.expect("a list"),
        json!([])
    );
    context.destroy().await;
    let after = context.call("list", json!({})).await;
    assert!(matches!(after, Err(HostError::Unavailable(_))), "{after:?}");
}

#[test]
fn options_choose_the_database() {
    let dir = std::env::temp_dir().join(format!("stencila-sqlite-options-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    assert_eq!(location(&json!({})).expect("memory"), Location::Memory);
    assert_eq!(
        location(&json!({"dir": dir})).expect("memory"),
        Location::Memory
    );
    for name in ["b.db", "a.sqlite3", "c.txt"] {
        std::fs::write(dir.join(name), b"").expect("a file");
    }
    assert_eq!(
        location(&json!({"dir": dir})).expect("a file"),
        Location::File(dir.join("a.sqlite3"))
    );
    for bad in [
        json!({"db": "x", "dir": "y"}),
        json!({"database": "x"}),
        json!({"db": 3}),
        json!([1]),
    ] {
        assert!(
            matches!(location(&bad), Err(HostError::BadArgument(_))),
            "{bad}"
        );
    }
    let missing = location(&json!({"dir": "/nonexistent/stencila"}));
    assert_eq!(
        missing,
        Err(HostError::BadArgument(
            "cannot use directory '/nonexistent/stencila': it does not exist".into()
        ))
    );
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

#[test]
fn a_path_that_cannot_be_opened_says_why() {
    let dir = std::env::temp_dir().join(format!("stencila-sqlite-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let text = dir.join("notes.db");
    std::fs::write(
        &text,
        "this is not a database, just some text that is long enough to matter",
    )
    .expect("a file");
    let why = |path: PathBuf| match database::open(&Location::File(path)) {
        Err(HostError::BadArgument(message)) => message,
        other => panic!("expected a bad argument, got {:?}", other.map(|_| ())),
    };
    assert!(why(text.clone()).ends_with("it is not a SQLite database"));
    assert!(why(dir.clone()).ends_with("it is a directory"));
    assert!(why(dir.join("no/such/dir/x.db")).ends_with("its directory does not exist"));
    assert!(why(PathBuf::from("/dev/null")).ends_with("it is not a regular file"));
    let permission = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    assert_eq!(database::io_reason(&permission), "permission denied");
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

#[tokio::test]
async fn a_call_whose_time_runs_out_in_the_queue_does_not_run_later() {
    let context = Arc::new(memory().await);
    let long = {
        let context = context.clone();
        tokio::spawn(async move { context.call("execute", json!(LONG_QUERY)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = {
        let context = context.clone();
        tokio::spawn(async move {
            context
                .call(
                    "execute",
                    json!({"code": "CREATE TABLE queued (a)", "timeout": 0.2}),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    context
        .call("interrupt", json!({}))
        .await
        .expect("interrupt");
    let long = long.await.expect("the task").expect("a result");
    assert_eq!(
        long["messages"][0]["message"],
        json!("Interrupted: the query was interrupted")
    );
    let queued = queued.await.expect("the task").expect("a result");
    assert_eq!(
        queued["messages"][0]["message"],
        json!("TimeoutError: execution exceeded 0.2 s while waiting behind another call, so it did not run")
    );
    assert_eq!(
        context.call("list", json!({})).await.expect("a list"),
        json!([])
    );
}

async fn limited(rows: usize) -> SqliteContext {
    let config = SqliteConfig {
        max_inline: crate::InlineLimit {
            rows,
            bytes: 8 << 20,
        },
        ..SqliteConfig::default()
    };
    SqliteContext::start(Location::Memory, config)
        .await
        .expect("an in-memory database")
}

const FIFTY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) SELECT x, x * x AS sq FROM c";

#[tokio::test]
async fn a_result_over_the_limit_is_a_pointer_to_a_hidden_holder() {
    let context = limited(10).await;
    let result = run(&context, json!({ "code": FIFTY })).await;
    let value = &result["value"];
    assert_eq!(value["type"], "pointer", "{result}");
    assert_eq!(value["valueType"], "table");
    assert_eq!(value["rows"], 50);
    let preview = &value["preview"]["data"]["columns"];
    assert_eq!(preview[0]["values"].as_array().map(Vec::len), Some(20));
    assert_eq!(preview[1]["values"][19], 400);
    let name = value["name"].as_str().expect("a name").to_string();
    let page = context
        .call("fetch", json!({"name": name, "offset": 45, "limit": 10}))
        .await
        .expect("a page");
    assert_eq!(page["type"], "table");
    assert_eq!(
        page["data"]["columns"][0]["values"],
        json!([46, 47, 48, 49, 50])
    );
    // The default page: offset 0, 1,000 rows (all 50 here).
    let page = context
        .call("fetch", json!({ "name": name }))
        .await
        .expect("a page");
    assert_eq!(
        page["data"]["columns"][1]["values"]
            .as_array()
            .map(Vec::len),
        Some(50)
    );
    // Within the limit: inline.
    let small = run(&context, json!({"code": "SELECT 1 AS a"})).await;
    assert_eq!(small["value"]["type"], "table");
}

#[tokio::test]
async fn an_assignment_over_the_limit_points_at_its_table_and_get_does_too() {
    let context = limited(10).await;
    let result = run(&context, json!({ "code": format!("big = {FIFTY}") })).await;
    assert_eq!(result["value"]["type"], "pointer", "{result}");
    assert_eq!(result["value"]["name"], "big");
    let got = context
        .call("get", json!({"name": "big"}))
        .await
        .expect("a value");
    assert_eq!(got["type"], "pointer");
    assert_eq!(got["rows"], 50);
    assert_eq!(got["preview"]["data"]["columns"][0]["values"][0], 1);
}

#[tokio::test]
async fn old_holders_are_dropped_and_fetching_a_missing_name_is_a_bad_argument() {
    let context = limited(1).await;
    let first = run(
        &context,
        json!({"code": "SELECT 1 AS a UNION ALL SELECT 2"}),
    )
    .await;
    let first_name = first["value"]["name"].as_str().expect("a name").to_string();
    for _ in 0..crate::pointer::HOLDERS_KEPT {
        run(
            &context,
            json!({"code": "SELECT 1 AS a UNION ALL SELECT 2"}),
        )
        .await;
    }
    let error = context
        .call("fetch", json!({ "name": first_name }))
        .await
        .expect_err("dropped");
    assert!(
        matches!(&error, HostError::BadArgument(m) if m.contains("no table or view")),
        "{error:?}"
    );
    let error = context
        .call("fetch", json!({"offset": 1}))
        .await
        .expect_err("no name");
    assert!(matches!(error, HostError::BadArgument(_)));
}
