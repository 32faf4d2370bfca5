//! Each row of the route table (PROTOCOL.md section 3) against the real binary.

use serde_json::json;
use stencila_tests::HostProcess;

#[test]
fn home_page_and_manifest_by_accept() {
    let host = HostProcess::start(&[]);
    let page = host.request("GET", "/").send();
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    assert!(page.text().contains("Stencila host"));
    assert_eq!(
        page.header("referrer-policy"),
        Some("no-referrer"),
        "tickets never leak in a Referer"
    );

    let manifest = host
        .request("GET", "/")
        .header("Accept", "application/json")
        .send();
    assert_eq!(manifest.status, 200);
    assert!(manifest.json()["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("rust-host-")));
}

#[test]
fn static_files_and_favicon_are_public() {
    let host = HostProcess::start(&[]);
    let index = host.request("GET", "/static/index.html").send();
    assert_eq!(index.status, 200);
    assert!(index.text().contains("<html"));
    let icon = host.request("GET", "/favicon.ico").send();
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/x-icon"));
    assert_eq!(&icon.body[..4], &[0, 0, 1, 0], "an ICO header");
    assert_eq!(host.request("GET", "/static/nope.js").send().status, 404);
}

#[test]
fn manifest_lists_instances_only_for_authorized_requests() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    let public = host.request("GET", "/manifest").send();
    assert_eq!(public.status, 200);
    let manifest = public.json();
    assert!(manifest.get("instances").is_none(), "{manifest}");
    assert_eq!(manifest["stencila"]["package"], "rust");
    assert_eq!(manifest["spawn"], json!(["stencila", "spawn"]));
    assert_eq!(manifest["environs"][0]["id"], "local");
    assert_eq!(manifest["types"]["PythonContext"]["name"], "PythonContext");
    assert_eq!(
        manifest["types"]["PythonContext"]["client"],
        "ContextHttpClient"
    );
    assert_eq!(manifest["types"]["PythonContext"]["available"], true);
    assert_eq!(manifest["process"]["pid"], json!(host.pid()));
    assert_eq!(
        manifest["servers"]["http"]["url"],
        json!(format!("http://127.0.0.1:{}", host.port))
    );

    host.request("POST", "/PythonContext").cookie(&token).send();
    let private = host
        .request("GET", "/manifest")
        .cookie(&token)
        .send()
        .json();
    assert_eq!(private["instances"], json!(["pythonContext1"]));
}

#[test]
fn create_get_call_delete() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    let create = |body: Option<&str>| {
        let request = host.request("POST", "/PythonContext").cookie(&token);
        match body {
            Some(body) => request.body(body),
            None => request,
        }
        .send()
    };
    assert_eq!(create(None).json(), json!("pythonContext1"));
    assert_eq!(create(Some("{}")).json(), json!("pythonContext2"));
    assert_eq!(create(Some("[1]")).status, 400, "options must be an object");

    let state = host.request("GET", "/pythonContext1").cookie(&token).send();
    assert_eq!(state.status, 200);
    let state = state.json();
    assert_eq!(state["name"], "pythonContext1");
    assert_eq!(state["type"], "PythonContext");

    let called = host
        .request("PUT", "/pythonContext2!execute")
        .cookie(&token)
        .body(r#""1 + 1""#)
        .send();
    assert_eq!(
        called.json()["value"],
        json!({"type": "integer", "data": 2}),
        "a bare string is code"
    );

    let deleted = host
        .request("DELETE", "/pythonContext1")
        .cookie(&token)
        .send();
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.text(), "null");
    assert_eq!(
        host.request("GET", "/pythonContext1")
            .cookie(&token)
            .send()
            .status,
        404
    );
    assert_eq!(
        create(None).json(),
        json!("pythonContext3"),
        "names are never reused"
    );
}

#[test]
fn environs() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    let started = host.request("POST", "/environ/local").cookie(&token).send();
    assert_eq!(started.status, 200);
    assert_eq!(started.json()["id"], "local");
    let stopped = host
        .request("DELETE", "/environ/local")
        .cookie(&token)
        .send();
    assert_eq!(stopped.status, 200);
    assert_eq!(stopped.json(), json!(null));
    assert_eq!(
        host.request("POST", "/environ/docker")
            .cookie(&token)
            .send()
            .status,
        404
    );
    assert_eq!(host.request("POST", "/environ/local").send().status, 401);
}

#[test]
fn preflight_is_an_empty_200() {
    let host = HostProcess::start(&[]);
    let response = host.request("OPTIONS", "/pythonContext1!execute").send();
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty());
}
