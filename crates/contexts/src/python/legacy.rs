//! `PythonContext`'s primitives for the 2018 clients' methods ([`crate::legacy`]):
//! analysis and `evaluate` are answered by the worker script (`do_analyse`,
//! `do_evaluate` in `worker/analysis.py`), execute and get are the context's own.

use super::PythonContext;
use crate::legacy::{Analysis, LegacyPrimitives};
use serde_json::{json, Map, Value};
use stencila_host::{BoxFuture, HostError};

impl LegacyPrimitives for PythonContext {
    fn execute(
        &self,
        code: String,
        inputs: Map<String, Value>,
    ) -> BoxFuture<'_, Result<Value, HostError>> {
        Box::pin(async move {
            PythonContext::execute(self, json!({"code": code, "inputs": inputs})).await
        })
    }

    fn get(&self, name: String) -> BoxFuture<'_, Result<Value, HostError>> {
        Box::pin(async move { self.plain("get", json!({ "name": name })).await })
    }

    fn analyse(&self, code: String, expr_only: bool) -> BoxFuture<'_, Result<Analysis, HostError>> {
        Box::pin(async move {
            let answer = self
                .plain("analyse", json!({"code": code, "exprOnly": expr_only}))
                .await?;
            Analysis::from_value(&answer)
        })
    }

    fn evaluate(
        &self,
        name: String,
        args: Vec<Value>,
        named_args: Map<String, Value>,
    ) -> BoxFuture<'_, Result<Value, HostError>> {
        Box::pin(async move {
            self.plain(
                "evaluate",
                json!({"name": name, "args": args, "namedArgs": named_args}),
            )
            .await
        })
    }
}
