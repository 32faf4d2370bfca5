//! Each status of the error table (PROTOCOL.md section 4), as text and as JSON.

use serde_json::json;
use stencila_tests::{send_raw, HostProcess};

fn assert_error(response: &stencila_tests::Response, status: u16, prefix: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        response.text().starts_with(&format!("{prefix}: ")),
        "{}",
        response.text()
    );
}

#[test]
fn bad_requests() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    host.request("POST", "/PythonContext").cookie(&token).send();
    assert_error(
        &host.request("GET", "/a/b/c").cookie(&token).send(),
        400,
        "Bad request",
    );
    assert_error(
        &host.request("PATCH", "/x").cookie(&token).send(),
        400,
        "Bad request",
    );
    assert_error(
        &host.request("PUT", "/pythonContext1").cookie(&token).send(),
        400,
        "Bad request",
    );
    assert_error(
        &host
            .request("PUT", "/pythonContext1!execute")
            .cookie(&token)
            .body("{not json")
            .send(),
        400,
        "Bad request",
    );
    assert_error(
        &host
            .request("PUT", "/pythonContext1!execute")
            .cookie(&token)
            .body(vec![0xff, 0xfe, 0x00, 0x81])
            .send(),
        400,
        "Bad request",
    );
    let missing_code = host
        .request("PUT", "/pythonContext1!execute")
        .cookie(&token)
        .body("{}")
        .send();
    assert_error(&missing_code, 400, "Bad request");
    assert!(
        missing_code.text().contains("code"),
        "{}",
        missing_code.text()
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_error(
        &host
            .request("PUT", "/pythonContext1!execute")
            .cookie(&token)
            .body(deep)
            .send(),
        400,
        "Bad request",
    );
    // The instance survives all of that.
    let ok = host
        .request("PUT", "/pythonContext1!execute")
        .cookie(&token)
        .body(r#"{"code": "6*7"}"#)
        .send();
    assert_eq!(ok.json()["value"]["data"], 42);
}

#[test]
fn unauthorized_and_forbidden() {
    let host = HostProcess::start(&[]);
    assert_error(
        &host.request("POST", "/PythonContext").send(),
        401,
        "Unauthorized",
    );
    assert_error(
        &host.request("GET", "/pythonContext1").send(),
        401,
        "Unauthorized",
    );
    assert_error(
        &host
            .request("POST", "/PythonContext?ticket=AAAAAAAAAAAA")
            .send(),
        403,
        "Forbidden",
    );
    let bad_token = "x".repeat(64);
    let forbidden = host
        .request("POST", "/PythonContext")
        .cookie(&bad_token)
        .send();
    assert_error(&forbidden, 403, "Forbidden");
    assert!(
        !forbidden.text().contains(&bad_token),
        "never echo a secret"
    );
    assert_error(
        &host
            .request("POST", "/PythonContext")
            .bearer(&bad_token)
            .send(),
        403,
        "Forbidden",
    );
}

#[test]
fn not_found() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    assert_error(
        &host.request("POST", "/NoSuchContext").cookie(&token).send(),
        404,
        "Not found",
    );
    assert_error(
        &host.request("GET", "/pythonContext9").cookie(&token).send(),
        404,
        "Not found",
    );
    assert_error(
        &host
            .request("DELETE", "/pythonContext9")
            .cookie(&token)
            .send(),
        404,
        "Not found",
    );
    host.request("POST", "/PythonContext").cookie(&token).send();
    let method = host
        .request("PUT", "/pythonContext1!__init__")
        .cookie(&token)
        .send();
    assert_error(&method, 404, "Not found");
    assert_error(
        &host.request("GET", "/static/missing.css").send(),
        404,
        "Not found",
    );
}

#[test]
fn payload_too_large() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    host.request("POST", "/PythonContext").cookie(&token).send();
    let code = "x".repeat(10 * 1024 * 1024 + 1);
    let response = host
        .request("PUT", "/pythonContext1!execute")
        .cookie(&token)
        .body(code)
        .send();
    assert_error(&response, 413, "Payload too large");
    // A declared length over the limit is refused before the body is read.
    let head = format!(
        "PUT /pythonContext1!execute HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: token={token}\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(send_raw(host.port, head.as_bytes()).status, 413);
    // A smaller limit is configurable.
    let small = HostProcess::start(&["--max-body", "1K"]);
    let token = small.token();
    let response = small
        .request("POST", "/PythonContext")
        .cookie(&token)
        .body(format!("{{\"x\": \"{}\"}}", "y".repeat(2000)))
        .send();
    assert_error(&response, 413, "Payload too large");
}

#[test]
fn errors_as_json_when_asked() {
    let host = HostProcess::start(&[]);
    let response = host
        .request("GET", "/pythonContext1")
        .header("Accept", "application/json")
        .send();
    assert_eq!(response.status, 401);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["error"], "Unauthorized");
    assert!(body["details"].is_string());

    let token = host.token();
    let response = host
        .request("GET", "/pythonContext1")
        .cookie(&token)
        .header("Accept", "application/json, */*;q=0.5")
        .send();
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"], json!("Not found"));
}

#[test]
fn a_worker_fault_outside_execute_is_a_500() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    host.request("POST", "/PythonContext").cookie(&token).send();
    let setup = host
        .request("PUT", "/pythonContext1!execute")
        .cookie(&token)
        .json(&json!({"code": "class Boom:\n    def __repr__(self):\n        import os\n        os._exit(1)\nb = Boom()"}))
        .send();
    assert_eq!(setup.status, 200, "{}", setup.text());
    let response = host
        .request("PUT", "/pythonContext1!get")
        .cookie(&token)
        .body(r#"{"name": "b"}"#)
        .send();
    assert_error(&response, 500, "Internal error");
    let text = response.text();
    assert!(
        !text.contains("/root") && !text.contains("panicked") && !text.contains(".rs:"),
        "{text}"
    );
    // The context recovers on the next call, with a warning that state was lost.
    let next = host
        .request("PUT", "/pythonContext1!execute")
        .cookie(&token)
        .body(r#""6*7""#)
        .send()
        .json();
    assert_eq!(next["value"]["data"], 42, "{next}");
    assert_eq!(next["messages"][0]["type"], "warning", "{next}");
}
