//! Operations over HTTP (PROTOCOL.md section 11): `/health`, `/metrics` and
//! `/openapi.json`, their authorization, and the CLI's `--version` and `--help`.

use serde_json::{json, Value};
use std::process::Command;
use stencila_tests::{binary, HostProcess, Request};

#[test]
fn health_is_public_and_ok() {
    let host = HostProcess::start(&[]);
    let response = host.request("GET", "/health").send();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json(), json!({"status": "ok"}));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn metrics_need_credentials() {
    let host = HostProcess::start(&[]);
    assert_eq!(host.request("GET", "/metrics").send().status, 401);
    assert_eq!(
        host.request("GET", "/metrics").bearer("nope").send().status,
        403
    );
    let response = host.request("GET", "/metrics").bearer(&host.token()).send();
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/openmetrics-text")));
    assert!(response.text().ends_with("# EOF\n"));
}

/// The value of the sample `name` (with its labels, exactly as written) on the page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn metrics_count_what_the_host_does() {
    let host = HostProcess::start(&["--pool-size", "1"]);
    let token = host.token();
    let scrape = || {
        let response = host.request("GET", "/metrics").cookie(&token).send();
        assert_eq!(response.status, 200);
        response.text()
    };
    // A refused token, and an unmatched route.
    assert_eq!(
        host.request("GET", "/manifest").bearer("bad").send().status,
        200
    );
    assert_eq!(host.request("PATCH", "/x").send().status, 400);
    let name = host
        .request("POST", "/PythonContext")
        .cookie(&token)
        .send()
        .json();
    let name = name.as_str().expect("a name").to_string();
    let call = |code: &str| {
        host.request("PUT", &format!("/{name}!execute"))
            .cookie(&token)
            .json(&json!({"code": code}))
            .send()
    };
    assert_eq!(call("6*7").status, 200);
    let died = call("import os\nos._exit(3)").json();
    assert!(died.to_string().contains("died"), "{died}");
    let after = call("1").json();
    assert!(after.to_string().contains("restarted"), "{after}");

    let page = scrape();
    let t = "{type=\"PythonContext\"}";
    assert_eq!(
        sample(&page, &format!("stencila_instances{t}")),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            &format!("stencila_execute_duration_seconds_count{t}")
        ),
        Some(3.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, &format!("stencila_worker_crashes_total{t}")),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, &format!("stencila_worker_restarts_total{t}")),
        Some(1.0),
        "{page}"
    );
    assert!(
        sample(&page, &format!("stencila_pooled_workers{t}")).is_some(),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "stencila_refused_credentials_total{reason=\"invalid\"}"
        ) >= Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "stencila_http_requests_total{route=\"unmatched\",status=\"400\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "stencila_http_requests_total{route=\"create\",status=\"200\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert!(sample(&page, "stencila_resident_memory_bytes").is_some_and(|rss| rss > 1e6));
    // No client text becomes a label: the bad path is not on the page.
    assert!(!page.contains("/x"));

    let deleted = host
        .request("DELETE", &format!("/{name}"))
        .cookie(&token)
        .send();
    assert_eq!(deleted.status, 200);
    assert_eq!(
        sample(&scrape(), &format!("stencila_instances{t}")),
        Some(0.0)
    );
}

#[test]
fn metrics_address_serves_metrics_only_and_without_credentials() {
    // A free port, found by binding it and letting it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let host = HostProcess::start(&["--metrics-address", &address]);
    let scrape = Request::new(port, "GET", "/metrics").send();
    assert_eq!(scrape.status, 200, "{}", scrape.text());
    assert!(scrape
        .text()
        .contains("stencila_instances{type=\"PythonContext\"} 0"));
    // Nothing else is served there, not even with the ticket.
    for path in ["/", "/manifest", "/health"] {
        assert_eq!(Request::new(port, "GET", path).send().status, 404, "{path}");
    }
    let ticket = host.ticket.clone().expect("a ticket");
    let create = Request::new(port, "POST", &format!("/PythonContext?ticket={ticket}")).send();
    assert_eq!(create.status, 404);
    assert!(create.cookie("token").is_none());
    // The main port still wants credentials for /metrics.
    assert_eq!(host.request("GET", "/metrics").send().status, 401);
}

#[test]
fn the_openapi_document_describes_every_route() {
    let host = HostProcess::start(&[]);
    let response = host.request("GET", "/openapi.json").send();
    assert_eq!(response.status, 200);
    let doc: Value = response.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, verb) in [
        ("/", "get"),
        ("/manifest", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/favicon.ico", "get"),
        ("/static/{path}", "get"),
        ("/{type}", "post"),
        ("/{name}", "get"),
        ("/{name}", "delete"),
        ("/{name}!{method}", "put"),
        ("/{name}!execute", "put"),
        ("/{name}!executeCode", "put"),
        ("/{name}!analyseCode", "put"),
        ("/{name}!compile", "put"),
        ("/{name}!evaluate", "put"),
        ("/{name}!getLibraries", "put"),
        ("/{name}!libraries", "put"),
        ("/{name}!interrupt", "put"),
        ("/environ/{id}", "post"),
        ("/environ/{id}", "delete"),
    ] {
        assert!(
            paths[path].get(verb).is_some(),
            "{verb} {path} is not described"
        );
    }
    // Public operations say so; private ones inherit the credentials requirement.
    assert_eq!(paths["/health"]["get"]["security"], json!([]));
    assert!(paths["/metrics"]["get"].get("security").is_none());
    // Both error body forms.
    let error = &doc["components"]["responses"]["E404"]["content"];
    assert_eq!(error["text/plain"]["schema"]["type"], "string");
    assert_eq!(
        error["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    // Every $ref resolves.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = reference.split('"').next().expect("a pointer");
        assert!(
            doc.pointer(&format!("/{pointer}")).is_some(),
            "{pointer} does not resolve"
        );
    }
}

#[test]
fn version_and_help() {
    let version = Command::new(binary())
        .arg("--version")
        .output()
        .expect("run");
    assert!(version.status.success());
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(text.starts_with("stencila 0."), "{text}");

    let help = Command::new(binary()).arg("--help").output().expect("run");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--address",
        "--port",
        "--no-auth",
        "--single-use-tickets",
        "--token-ttl",
        "--allow-origin",
        "--cookie-samesite",
        "--static-dir",
        "--max-body",
        "--execute-timeout",
        "--max-instances",
        "--instance-timeout",
        "--worker-memory",
        "--timeout",
        "--duration",
        "--pool-size",
        "--workers",
        "--metrics-address",
        "--version",
        "STENCILA_AUTH",
        "STENCILA_PYTHON",
        "RUST_LOG",
        "XDG_RUNTIME_DIR",
    ] {
        assert!(
            help.contains(option),
            "--help does not mention {option}:\n{help}"
        );
    }
}
