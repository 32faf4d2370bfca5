//! Pointers between instances (PROTOCOL.md section 9), language-neutral.
//!
//! A context answers a value too large to send inline with a pointer,
//! `{"type": "pointer", "name", "valueType": "table", "rows", "preview"}`, keeping the
//! value under `name`. A context does not know its own instance name, so the host
//! labels pointers in a call's result with it ([`label`]). When a pointer comes back as
//! an input (`inputs` of any method, or the `value` of `set`), the host fetches the
//! table from the instance that holds it, page by page with that instance's `fetch`
//! method, and passes the table on ([`resolve`]): the data goes instance to instance,
//! never through the client. A pointer that cannot be resolved (its instance is gone,
//! its name is not there) is an error message in the result, not a failure of the call.

use crate::{ExecuteResult, Host, HostError, Json};
use serde_json::{json, Map, Value};

/// Rows asked for in each `fetch` while resolving a pointer: large pages keep the
/// number of calls (and a database's cost of skipping to an offset) low.
const PAGE_ROWS: usize = 50_000;

/// How deep [`label`] looks for pointers in a result (`value`, legacy `outputs`).
const LABEL_DEPTH: usize = 4;

fn is_pointer(value: &Value) -> bool {
    value.get("type").and_then(Value::as_str) == Some("pointer")
}

/// `arg` with every pointer among its inputs replaced by the table it names. `Err`
/// is the answer to give without calling: for `inputs`, a result with the error
/// message; for the `value` of `set`, a [`HostError::BadArgument`].
pub(crate) async fn resolve(
    host: &Host,
    method: &str,
    mut arg: Value,
) -> Result<Value, Result<Value, HostError>> {
    if let Some(inputs) = arg.get_mut("inputs").and_then(Value::as_object_mut) {
        for (name, value) in inputs.iter_mut() {
            if is_pointer(value) {
                match fetch_all(host, value).await {
                    Ok(table) => *value = table,
                    Err(why) => {
                        let message = format!("input '{name}': {why}");
                        return Err(Ok(
                            json!({"messages": [{"type": "error", "message": message}], "value": null}),
                        ));
                    }
                }
            }
        }
    }
    if method == "set" {
        if let Some(value) = arg.get_mut("value").filter(|value| is_pointer(value)) {
            match fetch_all(host, value).await {
                Ok(table) => *value = table,
                Err(why) => return Err(Err(HostError::BadArgument(format!("set: {why}")))),
            }
        }
    }
    Ok(arg)
}

/// The whole table a pointer names, fetched in pages from its instance; `Err` says
/// why it cannot be, in words for the user.
async fn fetch_all(host: &Host, pointer: &Value) -> Result<Value, String> {
    let text = |key: &str| pointer.get(key).and_then(Value::as_str).unwrap_or("");
    let (instance, name) = (text("instance"), text("name"));
    if instance.is_empty() || name.is_empty() {
        return Err("a pointer needs `instance` and `name` (strings), as the host gave it".into());
    }
    if !matches!(text("valueType"), "" | "table") {
        return Err(format!(
            "a pointer to a value of type '{}' cannot be fetched; only tables can",
            text("valueType")
        ));
    }
    let mut columns: Vec<Value> = Vec::new();
    let mut offset = 0;
    loop {
        let arg = json!({"name": name, "offset": offset, "limit": PAGE_ROWS});
        let page = match host.dispatch(instance, "fetch", arg).await {
            Ok(page) => page,
            Err(HostError::UnknownInstance(_) | HostError::Culled(_)) => {
                return Err(format!(
                    "the pointer's instance '{instance}' is gone, so '{name}' cannot be fetched; run the code that made it again"
                ))
            }
            Err(HostError::UnknownMethod(_)) => {
                return Err(format!("instance '{instance}' cannot page through values (it has no `fetch`)"))
            }
            Err(error) => return Err(format!("could not fetch '{name}' from '{instance}': {error}")),
        };
        let rows = append(&mut columns, page, offset == 0)
            .map_err(|why| format!("'{instance}' answered fetch of '{name}' with {why}"))?;
        offset += rows;
        if rows < PAGE_ROWS {
            break;
        }
    }
    Ok(json!({"type": "table", "data": {"columns": columns}}))
}

/// Appends a page (a `table` value) to `columns`; the number of rows it had.
fn append(columns: &mut Vec<Value>, page: Value, first: bool) -> Result<usize, &'static str> {
    let Value::Object(mut page) = page else {
        return Err("something other than a table");
    };
    if page.get("type").and_then(Value::as_str) != Some("table") {
        return Err("something other than a table");
    }
    let page_columns = match page
        .remove("data")
        .and_then(|mut d| d.get_mut("columns").map(Value::take))
    {
        Some(Value::Array(page_columns)) => page_columns,
        _ => return Err("a table without columns"),
    };
    if first {
        *columns = page_columns;
        return Ok(rows_of(columns));
    }
    if page_columns.len() != columns.len() {
        return Err("pages of different columns");
    }
    let mut rows = 0;
    for (column, mut more) in columns.iter_mut().zip(page_columns) {
        if column.get("name") != more.get("name") {
            return Err("pages of different columns");
        }
        let Some(Value::Array(values)) = more.get_mut("values").map(Value::take) else {
            return Err("a column without values");
        };
        rows = values.len();
        if let Some(Value::Array(kept)) = column.get_mut("values") {
            kept.extend(values);
        }
    }
    Ok(rows)
}

fn rows_of(columns: &[Value]) -> usize {
    columns
        .first()
        .and_then(|column| column.get("values"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Adds `"instance": <instance>` to an `execute` result's value when it is a pointer.
/// A value kept as text is parsed only when it is one (pointers are small).
pub(crate) fn label_result(instance: &str, result: &mut ExecuteResult) {
    if let Some(whole) = &mut result.verbatim {
        // Another shape (a 2018 cell): looked through as any call's result is.
        label(instance, whole);
        return;
    }
    if result.value.packed_type().as_deref() != Some("pointer") {
        return;
    }
    if let Ok(mut value) = result.value.to_value() {
        label_at(instance, &mut value, 0);
        result.value = Json::Tree(value);
    }
}

/// Adds `"instance": <instance>` to the pointers in a call's result (the result
/// itself, its `value`, or deeper in objects and arrays that are not packed values).
pub(crate) fn label(instance: &str, result: &mut Value) {
    label_at(instance, result, 0);
}

fn label_at(instance: &str, value: &mut Value, depth: usize) {
    if depth > LABEL_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            if is_pointer_map(map) {
                map.entry("instance").or_insert_with(|| json!(instance));
            } else if !map.contains_key("type") {
                // A packed value other than a pointer holds no pointer: not walked.
                for item in map.values_mut() {
                    label_at(instance, item, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                label_at(instance, item, depth + 1);
            }
        }
        _ => {}
    }
}

fn is_pointer_map(map: &Map<String, Value>) -> bool {
    map.get("type").and_then(Value::as_str) == Some("pointer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxFuture, Instance, InstanceType};
    use std::sync::{Arc, Mutex};

    /// A type whose instances hold one table `t` of `n` rows (`fetch`) and echo the
    /// argument of `execute` and `set`; `big` answers with a pointer to `t`.
    struct Holder;
    struct HolderInstance {
        seen: Mutex<Vec<Value>>,
    }

    const ROWS: usize = PAGE_ROWS + 7;

    impl InstanceType for Holder {
        fn name(&self) -> &str {
            "Holder"
        }
        fn available(&self) -> bool {
            true
        }
        fn create(&self, _: Value) -> BoxFuture<'_, Result<Arc<dyn Instance>, HostError>> {
            Box::pin(async {
                Ok(Arc::new(HolderInstance {
                    seen: Mutex::new(Vec::new()),
                }) as Arc<dyn Instance>)
            })
        }
    }

    impl Instance for HolderInstance {
        fn call<'a>(
            &'a self,
            method: &'a str,
            arg: Value,
        ) -> BoxFuture<'a, Result<Value, HostError>> {
            Box::pin(async move {
                match method {
                    "fetch" => {
                        if arg["name"] != "t" {
                            return Err(HostError::BadArgument("no value named that".into()));
                        }
                        let offset = arg["offset"].as_u64().unwrap_or(0) as usize;
                        let limit = arg["limit"].as_u64().unwrap_or(0) as usize;
                        let values: Vec<usize> = (offset..ROWS.min(offset + limit)).collect();
                        let doubled: Vec<usize> = values.iter().map(|v| v * 2).collect();
                        Ok(json!({"type": "table", "data": {"columns": [
                            {"name": "a", "type": "integer", "values": values},
                            {"name": "b", "type": "integer", "values": doubled},
                        ]}}))
                    }
                    "big" => Ok(
                        json!({"messages": [], "value": {"type": "pointer", "name": "t", "valueType": "table", "rows": ROWS}}),
                    ),
                    "seen" => Ok(Value::Array(
                        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    )),
                    "execute" | "set" => {
                        self.seen
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(arg.clone());
                        Ok(json!({"messages": [], "value": null}))
                    }
                    _ => Err(HostError::UnknownMethod(method.into())),
                }
            })
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    }

    fn host() -> Host {
        let mut host = Host::new();
        host.register(Arc::new(Holder));
        host
    }

    #[test]
    fn results_are_labelled_and_pointer_inputs_arrive_as_whole_tables() {
        runtime().block_on(async {
            let host = host();
            let source = host.create("Holder", json!({})).await.expect("created");
            let target = host.create("Holder", json!({})).await.expect("created");
            let result = host
                .call(&source, "big", json!({}))
                .await
                .expect("a result");
            let pointer = result["value"].clone();
            assert_eq!(pointer["instance"], json!(source));
            let arg =
                json!({"code": "x", "inputs": {"x": pointer, "y": {"type": "integer", "data": 1}}});
            let result = host.call(&target, "execute", arg).await.expect("a result");
            assert_eq!(result["messages"], json!([]));
            let result = host
                .call(&target, "set", json!({"name": "z", "value": pointer}))
                .await;
            assert!(result.is_ok());
            // What the target received: the table, all pages of it, in order.
            let seen = host.call(&target, "seen", json!({})).await.expect("seen");
            let table = &seen[0]["inputs"]["x"];
            assert_eq!(table["type"], "table");
            let a = table["data"]["columns"][0]["values"]
                .as_array()
                .expect("values");
            assert_eq!(a.len(), ROWS);
            assert!(a
                .iter()
                .enumerate()
                .all(|(i, v)| v.as_u64() == Some(i as u64)));
            assert_eq!(
                table["data"]["columns"][1]["values"][ROWS - 1],
                json!((ROWS - 1) * 2)
            );
            assert_eq!(seen[0]["inputs"]["y"]["data"], 1);
            assert_eq!(seen[1]["value"], *table);
        });
    }

    #[test]
    fn a_gone_instance_or_missing_name_is_an_error_message() {
        runtime().block_on(async {
            let host = host();
            let source = host.create("Holder", json!({})).await.expect("created");
            let target = host.create("Holder", json!({})).await.expect("created");
            let missing = json!({"type": "pointer", "instance": source, "name": "nope", "valueType": "table"});
            let result = host
                .call(&target, "execute", json!({"code": "", "inputs": {"x": missing}}))
                .await
                .expect("an answer, not a failure");
            let message = result["messages"][0]["message"].as_str().unwrap_or_default().to_string();
            assert!(message.contains("input 'x'") && message.contains("nope"), "{message}");
            host.delete(&source).await.expect("deleted");
            let gone = json!({"type": "pointer", "instance": source, "name": "t", "valueType": "table"});
            let result = host
                .call(&target, "execute", json!({"code": "", "inputs": {"x": gone}}))
                .await
                .expect("an answer, not a failure");
            let message = result["messages"][0]["message"].as_str().unwrap_or_default().to_string();
            assert!(message.contains("is gone"), "{message}");
            let error = host
                .call(&target, "set", json!({"name": "z", "value": gone}))
                .await
                .expect_err("refused");
            assert!(matches!(error, HostError::BadArgument(_)));
        });
    }

    #[test]
    fn labels_reach_nested_pointers_but_not_into_packed_values() {
        let mut result = json!({"outputs": [{"value": {"type": "pointer", "name": "t"}}],
            "value": {"type": "object", "data": {"p": {"type": "pointer", "name": "u"}}}});
        label("ctx1", &mut result);
        assert_eq!(result["outputs"][0]["value"]["instance"], "ctx1");
        assert!(result["value"]["data"]["p"].get("instance").is_none());
    }
}
