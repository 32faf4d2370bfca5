//! The methods of the 2018 Stencila clients (PROTOCOL.md section 13), for every
//! context type: the seed era's `executeCode`, `analyseCode`, `getLibraries`, and
//! Desktop 0.28's `libraries`, cell-shaped `compile` and `execute`, and `evaluate`.
//!
//! This module knows no language. It checks the shapes those clients send, turns
//! them into a few calls of a context's own primitives ([`LegacyPrimitives`]:
//! execute, analyse, get, evaluate) and shapes the answers as the clients expect.
//! A context type gets every method by implementing the primitives and routing
//! the calls [`handles`] accepts to [`call`]. A language without dependency analysis
//! keeps the default `analyse` (no inputs, no output), as section 13 allows.

use serde_json::{json, Map, Value};
use stencila_host::{BoxFuture, HostError};

/// What a dependency analysis found; nothing was run to find it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Names the code reads before binding them, in first-use order.
    pub inputs: Vec<String>,
    /// The name the last statement binds, if any.
    pub output: Option<String>,
    /// Error messages (a syntax error, code that is not one expression where one is
    /// needed), in the shape of section 6.
    pub messages: Vec<Value>,
}

impl Analysis {
    /// Whether the analysis found an error (then nothing should run).
    pub fn failed(&self) -> bool {
        self.messages
            .iter()
            .any(|message| message.get("type") == Some(&json!("error")))
    }

    /// Reads the `{"inputs", "output", "messages"}` a context worker answers.
    pub fn from_value(value: &Value) -> Result<Analysis, HostError> {
        let bad = || HostError::Internal("the context's analysis had an unexpected shape".into());
        let inputs = match value.get("inputs") {
            Some(Value::Array(names)) => names
                .iter()
                .map(|name| name.as_str().map(str::to_string).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(bad()),
        };
        let output = match value.get("output") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(name.clone()),
            Some(_) => return Err(bad()),
        };
        let messages = match value.get("messages") {
            None => Vec::new(),
            Some(Value::Array(messages)) => messages.clone(),
            Some(_) => return Err(bad()),
        };
        Ok(Analysis {
            inputs,
            output,
            messages,
        })
    }

    fn to_value(&self) -> Value {
        json!({"inputs": self.inputs, "output": self.output, "messages": self.messages})
    }
}

/// What a context provides so that the 2018 clients' methods work on it.
pub trait LegacyPrimitives: Send + Sync {
    /// `execute {code, inputs}` of section 6: sets `inputs` (name → packed value),
    /// runs `code` and answers `{"messages", "value"}`.
    fn execute(
        &self,
        code: String,
        inputs: Map<String, Value>,
    ) -> BoxFuture<'_, Result<Value, HostError>>;

    /// The packed value of a variable (`get {name}`).
    fn get(&self, name: String) -> BoxFuture<'_, Result<Value, HostError>>;

    /// Dependency analysis of `code`, running nothing. With `expr_only`, code that is
    /// not a single expression is an error message. Without analysis for the
    /// language: no inputs, no output.
    fn analyse(&self, code: String, expr_only: bool) -> BoxFuture<'_, Result<Analysis, HostError>> {
        let _ = (code, expr_only);
        Box::pin(async { Ok(Analysis::default()) })
    }

    /// Calls the function `name` with packed arguments; answers `{"messages",
    /// "value"}`, with an error message for an unknown name.
    fn evaluate(
        &self,
        name: String,
        args: Vec<Value>,
        named_args: Map<String, Value>,
    ) -> BoxFuture<'_, Result<Value, HostError>> {
        let _ = (args, named_args);
        Box::pin(async move {
            Ok(json!({
                "messages": [{"type": "error", "message": format!("this context cannot call functions (evaluate of '{name}')")}],
                "value": null,
            }))
        })
    }
}

/// Whether `method` with `arg` is one of the 2018 clients' calls: every method of
/// section 13, and `execute` only when its body is a cell (a plain `{code}` execute
/// stays the context's own).
pub fn handles(method: &str, arg: &Value) -> bool {
    match method {
        "executeCode" | "analyseCode" | "getLibraries" | "libraries" | "compile" | "evaluate" => {
            true
        }
        "execute" => is_cell(arg),
        _ => false,
    }
}

/// Answers one of the calls [`handles`] accepts, through the context's primitives.
pub async fn call<C: LegacyPrimitives + ?Sized>(
    context: &C,
    method: &str,
    arg: Value,
) -> Result<Value, HostError> {
    match method {
        // No function libraries yet.
        "getLibraries" | "libraries" => Ok(json!({})),
        "analyseCode" => {
            let code = code_arg(&arg, "analyseCode")?;
            let expr_only = flag(&arg, "exprOnly")?;
            Ok(context.analyse(code, expr_only).await?.to_value())
        }
        "executeCode" => execute_code(context, &arg).await,
        "compile" => compile_cell(context, arg).await,
        "execute" => execute_cell(context, arg).await,
        "evaluate" => evaluate(context, arg).await,
        _ => Err(HostError::UnknownMethod(method.to_string())),
    }
}

fn is_cell(arg: &Value) -> bool {
    arg.get("type").and_then(Value::as_str) == Some("cell")
}

fn code_arg(arg: &Value, method: &str) -> Result<String, HostError> {
    arg.get("code")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| HostError::BadArgument(format!("{method} needs `code`, a string")))
}

/// A boolean option; absent or null is false.
fn flag(arg: &Value, name: &str) -> Result<bool, HostError> {
    match arg.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(HostError::BadArgument(format!(
            "`{name}` must be true or false"
        ))),
    }
}

/// `inputs` as name → packed value, from the object form (section 6) or the
/// cells' list form `[{"name", "value"}]`; entries of the list without a value are
/// names only and set nothing.
fn inputs_arg(inputs: Option<&Value>) -> Result<Map<String, Value>, HostError> {
    let shape = || {
        HostError::BadArgument(
            "`inputs` must be an object of names to packed values, or a list of {\"name\", \"value\"}"
                .into(),
        )
    };
    match inputs {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(inputs)) => Ok(inputs.clone()),
        Some(Value::Array(items)) => {
            let mut inputs = Map::new();
            for item in items {
                let name = item.get("name").and_then(Value::as_str).ok_or_else(shape)?;
                match item.get("value") {
                    None | Some(Value::Null) => {}
                    Some(value) => {
                        inputs.insert(name.to_string(), value.clone());
                    }
                }
            }
            Ok(inputs)
        }
        Some(_) => Err(shape()),
    }
}

/// `{"messages": [...], "value": null}`: nothing ran.
fn not_run(messages: Vec<Value>) -> Value {
    json!({"messages": messages, "value": null})
}

async fn execute_code<C: LegacyPrimitives + ?Sized>(
    context: &C,
    arg: &Value,
) -> Result<Value, HostError> {
    let code = code_arg(arg, "executeCode")?;
    let inputs = inputs_arg(arg.get("inputs"))?;
    if flag(arg, "exprOnly")? {
        let analysis = context.analyse(code.clone(), true).await?;
        if analysis.failed() {
            return Ok(not_run(analysis.messages));
        }
    }
    context.execute(code, inputs).await
}

/// The code of a cell: `source` as `{"type": "text", "data": code}` or a string,
/// else `code`.
fn cell_source(cell: &Value, method: &str) -> Result<String, HostError> {
    let source = match cell.get("source") {
        Some(Value::Object(source)) => source.get("data").and_then(Value::as_str),
        Some(Value::String(source)) => Some(source.as_str()),
        _ => None,
    };
    source
        .or_else(|| cell.get("code").and_then(Value::as_str))
        .map(str::to_string)
        .ok_or_else(|| {
            HostError::BadArgument(format!(
                "{method} of a cell needs `source`: {{\"type\": \"text\", \"data\": \"<code>\"}} (or `code`, a string)"
            ))
        })
}

/// The cell with the analysis's names as `inputs` and `outputs`.
fn names(names: impl IntoIterator<Item = String>) -> Value {
    Value::Array(
        names
            .into_iter()
            .map(|name| json!({ "name": name }))
            .collect(),
    )
}

fn cell_object(arg: Value, method: &str) -> Result<Map<String, Value>, HostError> {
    match arg {
        Value::Object(cell) if is_cell(&Value::Object(cell.clone())) => Ok(cell),
        _ => Err(HostError::BadArgument(format!(
            "{method} needs a cell: {{\"type\": \"cell\", \"source\": {{\"type\": \"text\", \"data\": \"<code>\"}}}}"
        ))),
    }
}

async fn compile_cell<C: LegacyPrimitives + ?Sized>(
    context: &C,
    arg: Value,
) -> Result<Value, HostError> {
    let mut cell = cell_object(arg, "compile")?;
    let code = cell_source(&Value::Object(cell.clone()), "compile")?;
    let expr_only = flag(&Value::Object(cell.clone()), "expr")?;
    let analysis = context.analyse(code, expr_only).await?;
    cell.insert("inputs".into(), names(analysis.inputs));
    cell.insert("outputs".into(), names(analysis.output));
    cell.insert("messages".into(), Value::Array(analysis.messages));
    Ok(Value::Object(cell))
}

async fn execute_cell<C: LegacyPrimitives + ?Sized>(
    context: &C,
    arg: Value,
) -> Result<Value, HostError> {
    let mut cell = cell_object(arg, "execute")?;
    let whole = Value::Object(cell.clone());
    let code = cell_source(&whole, "execute")?;
    let expr_only = flag(&whole, "expr")?;
    let inputs = inputs_arg(whole.get("inputs"))?;
    let analysis = context.analyse(code.clone(), expr_only).await?;
    cell.insert("inputs".into(), names(analysis.inputs.clone()));
    if analysis.failed() {
        // Nothing runs: the code would not compile (or is not the expression asked for).
        cell.insert("outputs".into(), names(analysis.output));
        cell.insert("messages".into(), Value::Array(analysis.messages));
        return Ok(Value::Object(cell));
    }
    let result = context.execute(code, inputs).await?;
    let mut messages = match result.get("messages") {
        Some(Value::Array(messages)) => messages.clone(),
        _ => Vec::new(),
    };
    let failed = messages
        .iter()
        .any(|message| message.get("type") == Some(&json!("error")));
    let value = result.get("value").cloned().unwrap_or(Value::Null);
    let outputs = match analysis.output {
        // The value of the name the last statement bound; after a failure it may
        // not be bound at all, so only the name is given.
        Some(name) if failed => vec![json!({ "name": name })],
        Some(name) => match context.get(name.clone()).await {
            Ok(value) => vec![json!({"name": name, "value": value})],
            Err(error) => {
                messages.push(json!({"type": "warning", "message": format!("the value of '{name}' could not be read: {error}")}));
                vec![json!({ "name": name })]
            }
        },
        None if value.is_null() => Vec::new(),
        None => vec![json!({ "value": value })],
    };
    cell.insert("outputs".into(), Value::Array(outputs));
    cell.insert("messages".into(), Value::Array(messages));
    Ok(Value::Object(cell))
}

async fn evaluate<C: LegacyPrimitives + ?Sized>(
    context: &C,
    arg: Value,
) -> Result<Value, HostError> {
    let shape = "evaluate needs a call: {\"type\": \"call\", \"func\": {\"type\": \"get\", \"name\": \"<function>\"}, \"args\": [...], \"namedArgs\": {...}}";
    let Value::Object(mut call) = arg else {
        return Err(HostError::BadArgument(shape.into()));
    };
    if call
        .get("type")
        .is_some_and(|kind| kind.as_str() != Some("call"))
    {
        return Err(HostError::BadArgument(shape.into()));
    }
    let name = call
        .get("func")
        .and_then(|func| func.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| HostError::BadArgument(shape.into()))?;
    let args = match call.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(args)) => args.clone(),
        Some(_) => {
            return Err(HostError::BadArgument(
                "`args` must be an array of packed values".into(),
            ))
        }
    };
    let named_args = match call.get("namedArgs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(named)) => named.clone(),
        Some(_) => {
            return Err(HostError::BadArgument(
                "`namedArgs` must be an object of names to packed values".into(),
            ))
        }
    };
    let result = context.evaluate(name, args, named_args).await?;
    call.insert(
        "value".into(),
        result.get("value").cloned().unwrap_or(Value::Null),
    );
    call.insert(
        "messages".into(),
        result.get("messages").cloned().unwrap_or_else(|| json!([])),
    );
    Ok(Value::Object(call))
}

#[cfg(test)]
mod tests {
    //! The translation against recorded primitives (which answer what each test
    //! sets): what this module calls, in which order, and how it shapes the answers.
    //! The real primitives are tested with Python in `tests/tests/legacy.rs`.

    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
        analysis: Analysis,
        value: Value,
    }

    impl Recorder {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("lock").clone()
        }
    }

    impl LegacyPrimitives for Recorder {
        fn execute(
            &self,
            code: String,
            inputs: Map<String, Value>,
        ) -> BoxFuture<'_, Result<Value, HostError>> {
            let inputs: Vec<_> = inputs.keys().cloned().collect();
            self.calls
                .lock()
                .expect("lock")
                .push(format!("execute {code} {inputs:?}"));
            Box::pin(async move { Ok(json!({"messages": [], "value": self.value})) })
        }

        fn get(&self, name: String) -> BoxFuture<'_, Result<Value, HostError>> {
            self.calls.lock().expect("lock").push(format!("get {name}"));
            Box::pin(async { Ok(json!({"type": "integer", "data": 42})) })
        }

        fn analyse(
            &self,
            code: String,
            expr_only: bool,
        ) -> BoxFuture<'_, Result<Analysis, HostError>> {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("analyse {code} {expr_only}"));
            Box::pin(async { Ok(self.analysis.clone()) })
        }
    }

    fn run<C: LegacyPrimitives>(context: &C, method: &str, arg: Value) -> Result<Value, HostError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(call(context, method, arg))
    }

    #[test]
    fn handles_the_2018_methods_and_only_cell_executes() {
        for method in [
            "executeCode",
            "analyseCode",
            "getLibraries",
            "libraries",
            "compile",
            "evaluate",
        ] {
            assert!(handles(method, &json!({})), "{method}");
        }
        assert!(handles("execute", &json!({"type": "cell"})));
        assert!(!handles("execute", &json!({"code": "1"})));
        assert!(!handles("execute", &json!("1")));
        assert!(!handles("list", &json!({})));
    }

    #[test]
    fn expr_only_that_fails_analysis_runs_nothing() {
        let context = Recorder {
            analysis: Analysis {
                messages: vec![json!({"type": "error", "message": "not an expression"})],
                ..Analysis::default()
            },
            ..Recorder::default()
        };
        let result = run(
            &context,
            "executeCode",
            json!({"code": "x = 1", "exprOnly": true}),
        )
        .expect("ok");
        assert_eq!(result["value"], Value::Null);
        assert_eq!(result["messages"][0]["message"], "not an expression");
        assert_eq!(context.calls(), vec!["analyse x = 1 true"]);
    }

    #[test]
    fn execute_code_without_expr_only_skips_analysis_and_passes_inputs() {
        let context = Recorder::default();
        run(
            &context,
            "executeCode",
            json!({"code": "x", "inputs": {"x": {"type": "integer", "data": 1}}}),
        )
        .expect("ok");
        assert_eq!(context.calls(), vec!["execute x [\"x\"]"]);
    }

    #[test]
    fn cell_execute_reads_the_bound_output() {
        let context = Recorder {
            analysis: Analysis {
                inputs: vec!["x".into()],
                output: Some("y".into()),
                messages: vec![],
            },
            ..Recorder::default()
        };
        let cell = run(
            &context,
            "execute",
            json!({"type": "cell", "source": {"type": "text", "data": "y = x * 2"},
                   "inputs": [{"name": "x", "value": {"type": "integer", "data": 21}}, {"name": "unset"}]}),
        )
        .expect("ok");
        assert_eq!(cell["inputs"], json!([{"name": "x"}]));
        assert_eq!(
            cell["outputs"],
            json!([{"name": "y", "value": {"type": "integer", "data": 42}}])
        );
        assert_eq!(
            context.calls(),
            vec![
                "analyse y = x * 2 false",
                "execute y = x * 2 [\"x\"]",
                "get y"
            ]
        );
    }

    #[test]
    fn bad_shapes_are_bad_arguments() {
        let context = Recorder::default();
        for (method, arg) in [
            ("compile", json!({"type": "cell"})),
            ("compile", json!({"code": "1"})),
            (
                "execute",
                json!({"type": "cell", "source": {"type": "text"}}),
            ),
            ("executeCode", json!({})),
            ("executeCode", json!({"code": "1", "inputs": 3})),
            ("analyseCode", json!({"code": "1", "exprOnly": "yes"})),
            ("evaluate", json!({"type": "call"})),
            ("evaluate", json!({"type": "get", "func": {"name": "f"}})),
            ("evaluate", json!({"func": {"name": "f"}, "args": {}})),
        ] {
            let result = run(&context, method, arg.clone());
            assert!(
                matches!(result, Err(HostError::BadArgument(_))),
                "{method} {arg}: {result:?}"
            );
        }
        assert!(context.calls().is_empty());
    }

    #[test]
    fn default_evaluate_is_an_error_message() {
        let context = Recorder::default();
        let call = run(
            &context,
            "evaluate",
            json!({"type": "call", "func": {"type": "get", "name": "f"}}),
        )
        .expect("ok");
        assert_eq!(call["messages"][0]["type"], "error");
        assert_eq!(call["value"], Value::Null);
        assert_eq!(call["func"]["name"], "f");
    }

    #[test]
    fn analysis_reads_the_worker_shape() {
        let analysis =
            Analysis::from_value(&json!({"inputs": ["a"], "output": "b", "messages": []}))
                .expect("ok");
        assert_eq!(analysis.inputs, vec!["a"]);
        assert_eq!(analysis.output.as_deref(), Some("b"));
        assert!(Analysis::from_value(&json!({"inputs": [1]})).is_err());
    }
}
