//! `JupyterContext`'s primitives for the 2018 clients' methods ([`crate::legacy`]):
//! execute is the context's own; `get` reads a variable of a Python kernel; there is
//! no dependency analysis (no inputs, no output) and no `evaluate`, as section 13
//! allows for languages without them.

use super::JupyterContext;
use crate::legacy::LegacyPrimitives;
use serde_json::{json, Map, Value};
use stencila_host::{BoxFuture, HostError};

/// Python that shows a variable's value as `application/json` where it has a JSON
/// form (else its `repr` as text), without touching the user's namespace.
fn python_get_code(name: &str) -> String {
    format!(
        r#"def __stencila_get(value):
    import json
    from IPython.display import display
    try:
        json.dumps(value, allow_nan=False)
        display({{"application/json": value, "text/plain": repr(value)}}, raw=True)
    except (TypeError, ValueError):
        display({{"text/plain": repr(value)}}, raw=True)
try:
    __stencila_get({name})
finally:
    del __stencila_get
"#
    )
}

impl LegacyPrimitives for JupyterContext {
    fn execute(
        &self,
        code: String,
        inputs: Map<String, Value>,
    ) -> BoxFuture<'_, Result<Value, HostError>> {
        Box::pin(async move {
            JupyterContext::execute(self, json!({"code": code, "inputs": inputs})).await
        })
    }

    fn get(&self, name: String) -> BoxFuture<'_, Result<Value, HostError>> {
        Box::pin(async move {
            let is_name = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !self.spec.is_python() || !is_name {
                return Err(HostError::BadArgument(format!(
                    "get of '{name}' is not supported for {}",
                    self.kernel_label()
                )));
            }
            let result =
                JupyterContext::execute(self, json!({"code": python_get_code(&name)})).await?;
            let error = result["messages"]
                .as_array()
                .and_then(|messages| messages.iter().find(|m| m["type"] == "error"))
                .and_then(|message| message["message"].as_str());
            match error {
                Some(error) => Err(HostError::BadArgument(error.to_string())),
                None => Ok(result["value"].clone()),
            }
        })
    }
}
