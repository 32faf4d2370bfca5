//! `JupyterContext`'s primitives for the 2018 clients' methods ([`crate::legacy`]):
//! execute is the context's own. Kernels have no dependency analysis here (so cells
//! name no inputs or outputs, and `get` is never needed for them) and no
//! `evaluate`, as section 13 allows for languages without them.

use super::JupyterContext;
use crate::legacy::LegacyPrimitives;
use serde_json::{json, Map, Value};
use stencila_host::{BoxFuture, HostError};

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
            Err(HostError::BadArgument(format!(
                "{} cannot read variables (get of '{name}')",
                self.kernel_label()
            )))
        })
    }
}
