//! The OpenAPI 3.1 description served at `GET /openapi.json` (PROTOCOL.md section 11):
//! every route of section 3, the methods of sections 6 and 13, and both error body
//! forms of section 4, so clients can be generated and the host fuzzed from it.
//!
//! Written out by hand beside the router rather than derived: the router parses raw
//! paths itself (`/<name>!<method>`), which no derive macro models.

use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// A `$ref` to a component.
fn component(kind: &str, name: &str) -> Value {
    json!({"$ref": format!("#/components/{kind}/{name}")})
}

/// The error responses an operation documents, each in both forms.
fn errors(statuses: &[u16]) -> Map<String, Value> {
    statuses
        .iter()
        .map(|status| {
            (
                status.to_string(),
                component("responses", &format!("E{status}")),
            )
        })
        .collect()
}

/// Errors any request can meet before routing: a bad `Host` or origin (403), a
/// throttled address (429), headers over the limit (431), a bad path (400).
const ANY: &[u16] = &[400, 403, 429, 431];
/// Errors of a private route on top of those: no credentials (401) and a fault (500).
const PRIVATE: &[u16] = &[400, 401, 403, 429, 431, 500];

/// An operation: summary, success responses and errors; `private` adds the
/// credentials requirement (public operations need none).
fn operation(
    id: &str,
    summary: &str,
    private: bool,
    ok: Value,
    statuses: &[u16],
    extra: Value,
) -> Value {
    let mut responses = errors(if private { PRIVATE } else { ANY });
    responses.extend(errors(statuses));
    responses.insert("200".into(), ok);
    let mut op = json!({
        "operationId": id,
        "summary": summary,
        "responses": responses,
    });
    if !private {
        op["security"] = json!([]);
    }
    if let (Value::Object(op), Value::Object(extra)) = (&mut op, extra) {
        op.extend(extra);
    }
    op
}

fn json_ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// Names as the host makes them: a letter or `_` first, then no whitespace, control
/// characters or `/` (what the router refuses), at most 256 bytes (64 characters are
/// at most 256 bytes). `!` and `%` are left out too: `!` splits a name from its
/// method, and a name is decoded once from the path. The first character keeps `.`
/// and `..` out, which clients resolve as paths.
const NAME_PATTERN: &str = "^[A-Za-z_][^\\s\\x00-\\x1f\\x7f-\\x9f\\ufeff/!%]*$";

fn path_param(name: &str, description: &str, example: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NAME_PATTERN},
           "example": example})
}

/// A JSON request body for a method, optional as the protocol allows (empty is `{}`).
fn body(schema: Value) -> Value {
    json!({"required": false, "content": {"application/json": {"schema": schema}}})
}

/// The methods a context answers: name, summary, argument schema, result schema.
fn methods() -> Vec<(&'static str, &'static str, Value, Value)> {
    let execution = component("schemas", "Execution");
    let messages = json!({"type": "array", "items": component("schemas", "Message")});
    vec![
        (
            "execute",
            "Run code in the instance's namespace (section 6); a bare JSON string is the code; a body with \"type\": \"cell\" is a 2018 cell (section 13)",
            json!({"anyOf": [component("schemas", "ExecuteArgs"), {"type": "string"}, component("schemas", "Cell")]}),
            json!({"anyOf": [execution.clone(), component("schemas", "Cell")]}),
        ),
        (
            "executeCode",
            "2018: execute {code, inputs?, exprOnly?}",
            json!({"type": "object", "properties": {"code": {"type": "string"}, "inputs": {"type": "object"}, "exprOnly": {"type": "boolean"}}, "required": ["code"]}),
            execution,
        ),
        (
            "analyseCode",
            "2018: the names code reads and the name it binds; nothing is run",
            json!({"type": "object", "properties": {"code": {"type": "string"}, "exprOnly": {"type": "boolean"}}, "required": ["code"]}),
            json!({"type": "object", "properties": {"inputs": {"type": "array", "items": {"type": "string"}}, "output": {"type": ["string", "null"]}, "messages": messages}}),
        ),
        (
            "compile",
            "2018 (Desktop 0.28): the cell back with its inputs, outputs and messages",
            component("schemas", "Cell"),
            component("schemas", "Cell"),
        ),
        (
            "evaluate",
            "2018 (Desktop 0.28): call a function of the namespace or a builtin",
            json!({"type": "object", "properties": {
                "type": {"const": "call"},
                "func": {"type": "object", "properties": {"type": {"const": "get"}, "name": {"type": "string", "minLength": 1}}, "required": ["name"]},
                "args": {"type": ["array", "null"], "items": component("schemas", "Value")},
                "namedArgs": {"type": ["object", "null"], "additionalProperties": component("schemas", "Value")}
            }, "required": ["func"]}),
            json!({"type": "object"}),
        ),
        ("getLibraries", "2018: function libraries (none yet)", json!({}), json!({"type": "object"})),
        ("libraries", "2018 (Desktop 0.28): function libraries (none yet)", json!({}), json!({"type": "object"})),
        ("list", "Variable names and types", json!({"type": "object"}), json!({})),
        (
            "get",
            "A variable's packed value; a name the namespace lacks is a 400",
            json!({"type": "object", "properties": {"name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}, "required": ["name"]}),
            json!({}),
        ),
        (
            "set",
            "Set a variable to a packed value; a name that is not a Python identifier (or a keyword) is a 400",
            json!({"type": "object", "properties": {"name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}, "value": component("schemas", "Value")}, "required": ["name", "value"]}),
            json!({}),
        ),
        ("interrupt", "Stop a running execute, from another connection", json!({"type": "object"}), json!({})),
        ("restart", "Start again with a fresh namespace", json!({"type": "object"}), json!({})),
    ]
}

/// The reusable parts: schemas, error responses in both forms, security schemes.
fn components() -> Value {
    let mut responses = Map::new();
    for (status, name) in [
        (400, "Bad request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not found"),
        (413, "Payload too large"),
        (429, "Too many requests"),
        (431, "Request header fields too large"),
        (500, "Internal error"),
        (503, "Service unavailable"),
    ] {
        responses.insert(
            format!("E{status}"),
            json!({
                "description": format!("{name}: `{name}: <what>` as text, or with `Accept: application/json` the JSON error form"),
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/json": {"schema": component("schemas", "Error")}
                }
            }),
        );
    }
    json!({
        "securitySchemes": {
            "ticket": {"type": "apiKey", "in": "query", "name": "ticket", "description": "The ticket from the startup URL; traded for a `token` cookie"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "token", "description": "The session token cookie a ticket URL sets"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "The session token, the host key, or an HS256 JWT signed with the host key (section 13)"}
        },
        "responses": responses,
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "details": {"type": "string"}},
                "required": ["error", "details"]
            },
            "Manifest": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "stencila": {"type": "object"},
                    "spawn": {"type": "array", "items": {"type": "string"}},
                    "environs": {"type": "array"},
                    "types": {"type": "object", "additionalProperties": {"type": "object", "properties": {"name": {"type": "string"}, "client": {"type": "string"}, "available": {"type": "boolean"}}}},
                    "process": {"type": "object"},
                    "servers": {"type": "object"},
                    "instances": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["id", "stencila", "types"]
            },
            "Instance": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "type": {"type": "string"},
                    "created": {"type": "number"},
                    "lastUsed": {"type": "number"},
                    "busy": {"type": "boolean"},
                    "cullAt": {"type": ["number", "null"]},
                    "pid": {"type": ["integer", "null"]}
                },
                "required": ["name", "type", "busy"]
            },
            "Value": {
                "description": "A packed value (section 6): null, boolean, integer, number, string, array, object, table, image, pointer, or a Python type name with its repr",
                "type": ["object", "null"],
                "properties": {"type": {"type": "string"}}
            },
            "Message": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["error", "warning", "stdout", "stderr"]},
                    "message": {"type": "string"},
                    "line": {"type": "integer"},
                    "column": {"type": "integer"}
                },
                "required": ["type", "message"]
            },
            "ExecuteArgs": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "inputs": {"type": "object", "additionalProperties": component("schemas", "Value")},
                    "timeout": {"type": "number", "exclusiveMinimum": 0}
                },
                "required": ["code"]
            },
            "Execution": {
                "type": "object",
                "properties": {
                    "messages": {"type": "array", "items": component("schemas", "Message")},
                    "value": component("schemas", "Value")
                },
                "required": ["messages"]
            },
            "Cell": {
                "type": "object",
                "description": "A 2018 cell: {type: cell, source: {type: text, data}} (or `code`)",
                "properties": {
                    "type": {"const": "cell"},
                    "source": {"type": "object", "properties": {"type": {"const": "text"}, "data": {"type": "string"}}, "required": ["data"]},
                    "code": {"type": "string"},
                    "expr": {"type": ["boolean", "null"]}
                },
                "required": ["type"],
                "anyOf": [{"required": ["source"]}, {"required": ["code"]}]
            }
        }
    })
}

/// The answer to `POST /{type}`, with links to what can be done with the new name
/// (a client generator, or the fuzzer's stateful phase, follows them).
fn created() -> Value {
    let mut ok = json_ok("The new instance's name", json!({"type": "string"}));
    let link = |operation: &str| json!({"operationId": operation, "parameters": {"name": "$response.body"}});
    ok["links"] = json!({
        "state": link("getInstance"),
        "execute": link("execute"),
        "list": link("list"),
        "interrupt": link("interrupt"),
        "restart": link("restart"),
        "delete": link("deleteInstance"),
    });
    ok
}

fn build() -> Value {
    let instance = path_param(
        "name",
        "An instance name, e.g. pythonContext1",
        "pythonContext1",
    );
    let mut paths = Map::new();
    paths.insert(
        "/".into(),
        json!({"get": operation(
        "home", "The host's console page; with `Accept: application/json`, the manifest", false,
        json!({"description": "The page, or the manifest", "content": {
            "text/html": {"schema": {"type": "string"}},
            "application/json": {"schema": component("schemas", "Manifest")}}}),
        &[404], json!({}))}),
    );
    paths.insert(
        "/manifest".into(),
        json!({"get": operation(
        "manifest", "The host manifest (section 5); `instances` only with credentials", false,
        json_ok("The manifest", component("schemas", "Manifest")), &[], json!({}))}),
    );
    paths.insert("/health".into(), json!({"get": operation(
        "health", "Liveness: 200 while serving, 503 while stopping", false,
        json_ok("Serving", json!({"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]})),
        &[503], json!({}))}));
    paths.insert(
        "/openapi.json".into(),
        json!({"get": operation(
        "openapi", "This document", false,
        json_ok("OpenAPI 3.1", json!({"type": "object"})), &[], json!({}))}),
    );
    paths.insert("/metrics".into(), json!({"get": operation(
        "metrics", "Metrics in the OpenMetrics text form that Prometheus scrapes (section 11)", true,
        json!({"description": "The metrics", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}),
        &[], json!({}))}));
    paths.insert("/favicon.ico".into(), json!({"get": operation(
        "favicon", "The icon", false,
        json!({"description": "The icon", "content": {"image/x-icon": {"schema": {"type": "string", "format": "binary"}}, "*/*": {}}}),
        &[404], json!({}))}));
    paths.insert("/static/{path}".into(), json!({"get": operation(
        "static", "A static file: never one outside the static root nor a dotfile", false,
        json!({"description": "The file", "content": {"*/*": {}}}),
        &[404], json!({"parameters": [{"name": "path", "in": "path", "required": true, "schema": {"type": "string"}, "example": "index.html"}]}))}));
    paths.insert(
        "/environ/{id}".into(),
        json!({
            "parameters": [path_param("id", "An environment id; only `local` exists", "local")],
            "post": operation("startEnviron", "Start an execution environment", true,
                json_ok("The environment", json!({"type": "object"})), &[404], json!({})),
            "delete": operation("stopEnviron", "Stop an execution environment", true,
                json_ok("Stopped", json!({"type": "null"})), &[404], json!({}))
        }),
    );
    paths.insert("/{type}".into(), json!({
        "post": operation("create", "Create an instance of a type; the body is its constructor options", true,
            created(), &[404, 413, 503],
            json!({
                "parameters": [path_param("type", "A type from the manifest, e.g. PythonContext", "PythonContext")],
                "requestBody": body(json!({"type": "object"}))
            }))
    }));
    paths.insert(
        "/{name}".into(),
        json!({
            "parameters": [instance.clone()],
            "get": operation("getInstance", "An instance's public state", true,
                json_ok("The state", component("schemas", "Instance")), &[404], json!({})),
            "delete": operation("deleteInstance", "Destroy an instance; its worker ends", true,
                json_ok("Deleted", json!({"type": "null"})), &[404, 503], json!({}))
        }),
    );
    for (method, summary, arg, result) in methods() {
        paths.insert(
            format!("/{{name}}!{method}"),
            json!({
                "parameters": [instance.clone()],
                "put": operation(method, summary, true, json_ok("The method's result", result),
                    &[404, 413, 503], json!({"requestBody": body(arg)}))
            }),
        );
    }
    let execution = json!({"name": "execution", "in": "path", "required": true,
        "description": "An execution id: the `id` an execute carried, or its `Stencila-Execution` header",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}, "example": "cell-7"});
    paths.insert("/{name}/executions/{execution}".into(), json!({
        "parameters": [instance.clone(), execution.clone()],
        "get": operation("getExecution", "An execution's status (section 10): the messages so far while running", true,
            json_ok("The execution", json!({"type": "object", "required": ["id", "status", "started", "ended", "messages", "value"],
                "properties": {"id": {"type": "string"}, "status": {"enum": ["running", "done", "interrupted", "failed"]},
                    "started": {"type": "number"}, "ended": {"type": ["number", "null"]},
                    "messages": {"type": "array"}, "value": {}}})),
            &[404], json!({}))
    }));
    paths.insert("/{name}/executions/{execution}/events".into(), json!({
        "parameters": [instance.clone(), execution],
        "get": operation("executionEvents", "An execution's events as server-sent events (stdout, stderr, message, value, truncated, done); `Last-Event-ID` resumes", true,
            json!({"description": "The event stream, closed after `done`", "content": {"text/event-stream": {"schema": {"type": "string"}}}}),
            &[404], json!({"parameters": [{"name": "Last-Event-ID", "in": "header", "required": false,
                "schema": {"type": "string"}, "description": "The last event seen: only later events are sent"}]}))
    }));
    paths.insert("/{name}!{method}".into(), json!({
        "parameters": [instance, path_param("method", "A method of the instance", "list")],
        "put": operation("call", "Call any method of an instance; the JSON body is its argument", true,
            json_ok("The method's result", json!({})), &[404, 413, 503],
            json!({"requestBody": body(json!({}))}))
    }));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Stencila host",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs code for documents. Access is by the ticket in the startup URL, the session token it sets as a cookie, or that token as a bearer. Every path also answers a CORS preflight (OPTIONS). A failing method of a context is a 200 with an error message, not an HTTP error; a 500 is a fault in the host or a worker. Every error is `<Name>: <what>` as text/plain, or with `Accept: application/json` the Error object."
        },
        "security": [{"cookie": []}, {"bearer": []}, {"ticket": []}],
        "paths": paths,
        "components": components()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{route, Route};

    /// Every documented path, filled with example values, routes to what it documents.
    #[test]
    fn every_documented_path_routes() {
        let paths = document()["paths"].as_object().expect("paths");
        for (template, item) in paths {
            let path = template
                .replace("{name}", "pythonContext1")
                .replace("{type}", "PythonContext")
                .replace("{method}", "list")
                .replace("{id}", "local")
                .replace("{execution}", "cell-7")
                .replace("{path}", "index.html");
            for verb in ["get", "post", "put", "delete"] {
                if item.get(verb).is_some() {
                    let routed = route(&verb.to_uppercase(), &path);
                    assert!(routed.is_ok(), "{verb} {path} does not route");
                    if template == "/{name}" && verb == "get" {
                        assert_eq!(routed, Ok(Route::Get("pythonContext1".into())));
                    }
                }
            }
        }
    }

    #[test]
    fn every_route_is_documented() {
        let paths = document()["paths"].as_object().expect("paths");
        for path in [
            "/",
            "/manifest",
            "/health",
            "/metrics",
            "/openapi.json",
            "/favicon.ico",
            "/static/{path}",
            "/{type}",
            "/{name}",
            "/{name}!{method}",
            "/{name}!execute",
            "/{name}!executeCode",
            "/{name}!analyseCode",
            "/{name}!compile",
            "/{name}!evaluate",
            "/{name}!getLibraries",
            "/{name}!libraries",
            "/environ/{id}",
            "/{name}/executions/{execution}",
            "/{name}/executions/{execution}/events",
        ] {
            assert!(paths.contains_key(path), "{path} is not documented");
        }
        // Every operation documents both error forms through the shared responses.
        let e400 = &document()["components"]["responses"]["E400"]["content"];
        assert!(e400.get("text/plain").is_some() && e400.get("application/json").is_some());
    }
}
