//! Tests of `NodeContext` against the real `node`; each skips, saying so, where no
//! `node` 18+ is installed. The HTTP-level behaviour is in `tests/tests/node.rs`.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn config() -> NodeConfig {
    NodeConfig {
        program: PathBuf::from("node"),
        execute_timeout: None,
        pool_size: 0,
        max_inline: crate::InlineLimit::default(),
    }
}

/// A started context, or `None` (with a note) where `node` is missing.
async fn context_with(config: NodeConfig) -> Option<Arc<dyn Instance>> {
    let node = NodeContextType::new(config);
    if let Some(reason) = node.unavailable_reason() {
        eprintln!("skipped: {reason}");
        return None;
    }
    Some(node.create(json!({})).await.expect("a NodeContext starts"))
}

async fn execute(context: &Arc<dyn Instance>, code: &str) -> Value {
    context
        .call("execute", json!({ "code": code }))
        .await
        .expect("execute answers")
}

#[tokio::test]
async fn values_scope_and_errors() {
    let Some(context) = context_with(config()).await else {
        return;
    };
    assert_eq!(
        execute(&context, "6*7").await,
        json!({"messages": [], "value": {"type": "integer", "data": 42}})
    );
    execute(&context, "let x = 1").await;
    assert_eq!(execute(&context, "let x = 2; x").await["value"]["data"], 2);
    let error = execute(&context, "\nnull.x").await;
    assert_eq!(
        error["messages"],
        json!([{"type": "error", "message": "TypeError: Cannot read properties of null (reading 'x')", "line": 2, "column": 5}])
    );
    let state = context.state();
    assert!(state["pid"].is_u64(), "{state}");
    assert!(
        state["interpreter"]
            .as_str()
            .is_some_and(|text| text.starts_with("Node.js ")),
        "{state}"
    );
    context.destroy().await;
}

#[tokio::test]
async fn a_timeout_interrupts_and_names_the_limit() {
    let Some(context) = context_with(config()).await else {
        return;
    };
    let result = context
        .call(
            "execute",
            json!({"code": "let i = 0; while (true) { i++ }", "timeout": 0.3}),
        )
        .await
        .expect("execute answers");
    assert_eq!(
        result["messages"],
        json!([{"type": "error", "message": "TimeoutError: execution exceeded 0.3 s and was interrupted"}])
    );
    assert_eq!(execute(&context, "i > 0").await["value"]["data"], true);
    context.destroy().await;
}

#[test]
fn a_missing_program_is_unavailable() {
    let node = NodeContextType::new(NodeConfig {
        program: PathBuf::from("/nonexistent/dir/node-missing"),
        ..config()
    });
    assert!(!node.available());
    assert_eq!(node.name(), "NodeContext");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let error = runtime
        .block_on(node.create(json!({})))
        .err()
        .expect("not available");
    let HostError::Unavailable(text) = error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(
        text.starts_with("NodeContext is not available: could not start node-missing ("),
        "{text}"
    );
    assert!(
        text.ends_with("; install Node.js 18 or later or set STENCILA_NODE"),
        "{text}"
    );
    assert!(!text.contains("/nonexistent"), "{text}");
}

#[test]
fn an_old_node_is_unavailable() {
    // A stand-in program that answers the version check as Node.js 16 would.
    let dir = std::env::temp_dir().join(format!("stencila-old-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let program = dir.join("node");
    std::fs::write(&program, "#!/bin/sh\nprintf 16.20.2\n").expect("the stand-in is written");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
        .expect("the stand-in is executable");
    let node = NodeContextType::new(NodeConfig {
        program: program.clone(),
        ..config()
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!node.available());
    let reason = node.unavailable_reason().expect("a reason");
    assert!(
        reason.contains("it is Node.js 16.20.2; 18 or later is needed"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_table_over_the_inline_limit_is_a_pointer_that_fetch_pages_through() {
    let Some(context) = context_with(NodeConfig {
        max_inline: crate::InlineLimit {
            rows: 10,
            bytes: 8 << 20,
        },
        ..config()
    })
    .await
    else {
        return;
    };
    let rows = "Array.from({length: 50}, (_, i) => ({a: i, b: `r${i}`}))";
    // Unnamed: a hidden holder.
    let result = execute(&context, rows).await;
    let value = &result["value"];
    assert_eq!(value["type"], "pointer", "{result}");
    assert_eq!(value["rows"], 50);
    assert_eq!(value["preview"]["data"]["columns"][1]["values"][19], "r19");
    let holder = value["name"].as_str().expect("a name").to_string();
    assert!(holder.starts_with('_'), "{holder}");
    let page = context
        .call("fetch", json!({"name": holder, "offset": 48}))
        .await
        .expect("a page");
    assert_eq!(page["data"]["columns"][0]["values"], json!([48, 49]));
    // A variable: the pointer names it, from execute and from get.
    let result = execute(&context, &format!("const t = {rows}; t")).await;
    assert_eq!(result["value"]["name"], "t", "{result}");
    let got = context
        .call("get", json!({"name": "t"}))
        .await
        .expect("got");
    assert_eq!(got["type"], "pointer");
    let page = context
        .call("fetch", json!({"name": "t", "offset": 60}))
        .await
        .expect("an empty page");
    assert_eq!(page["data"]["columns"][0]["values"], json!([]));
    let error = context
        .call("fetch", json!({"name": "nothing"}))
        .await
        .expect_err("missing");
    assert!(
        matches!(&error, HostError::BadArgument(m) if m.contains("no value named")),
        "{error:?}"
    );
    // Small tables stay inline.
    let result = execute(&context, "[{a: 1}]").await;
    assert_eq!(result["value"]["type"], "table");
}
