//! Origins, CORS and the Host-header check (PROTOCOL.md section 7).

use stencila_tests::HostProcess;

#[test]
fn allowed_origins_get_cors_headers() {
    let host = HostProcess::start(&["--allow-origin", "https://example.org"]);
    let token = host.token();
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "https://stenci.la",
        "https://hub.stenci.la",
        "https://example.org",
    ] {
        let response = host
            .request("POST", "/PythonContext")
            .cookie(&token)
            .header("Origin", origin)
            .send();
        assert_eq!(response.status, 200, "{origin}: {}", response.text());
        assert_eq!(response.header("access-control-allow-origin"), Some(origin));
        assert_eq!(
            response.header("access-control-allow-credentials"),
            Some("true")
        );
        assert!(response
            .headers_named("vary")
            .iter()
            .any(|v| v.contains("Origin")));
    }
}

#[test]
fn disallowed_origins_are_refused_on_private_endpoints() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    for origin in [
        "http://localhost.evil.com",
        "https://evil.com",
        "http://stenci.la",
        "null",
    ] {
        let response = host
            .request("POST", "/PythonContext")
            .cookie(&token)
            .header("Origin", origin)
            .send();
        assert_eq!(response.status, 403, "{origin}");
        assert!(response.header("access-control-allow-origin").is_none());
    }
    let by_referer = host
        .request("POST", "/PythonContext")
        .cookie(&token)
        .header("Referer", "https://evil.com/page.html")
        .send();
    assert_eq!(by_referer.status, 403);
    let good_referer = host
        .request("POST", "/PythonContext")
        .cookie(&token)
        .header("Referer", "http://localhost:5000/doc.html")
        .send();
    assert_eq!(good_referer.status, 200);
    assert_eq!(
        good_referer.header("access-control-allow-origin"),
        Some("http://localhost:5000")
    );
    // Public endpoints still answer, without CORS headers.
    let public = host
        .request("GET", "/manifest")
        .header("Origin", "https://evil.com")
        .send();
    assert_eq!(public.status, 200);
    assert!(public.header("access-control-allow-origin").is_none());
}

#[test]
fn preflight() {
    let host = HostProcess::start(&[]);
    let response = host
        .request("OPTIONS", "/pythonContext1!execute")
        .header("Origin", "https://stenci.la")
        .header("Access-Control-Request-Method", "PUT")
        .send();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://stenci.la")
    );
    assert_eq!(
        response.header("access-control-allow-methods"),
        Some("GET, POST, PUT, DELETE, OPTIONS")
    );
    assert_eq!(
        response.header("access-control-allow-headers"),
        Some("Authorization, Content-Type")
    );
    assert_eq!(response.header("access-control-max-age"), Some("86400"));
    let refused = host
        .request("OPTIONS", "/pythonContext1!execute")
        .header("Origin", "https://evil.com")
        .send();
    assert!(refused.header("access-control-allow-origin").is_none());
}

#[test]
fn foreign_host_headers_are_refused() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    for name in ["evil.com", "localhost.evil.com:2000", "10.0.0.1"] {
        let response = host.request("GET", "/manifest").host(Some(name)).send();
        assert_eq!(response.status, 403, "{name}");
        let response = host
            .request("POST", "/PythonContext")
            .cookie(&token)
            .host(Some(name))
            .send();
        assert_eq!(response.status, 403, "{name}");
    }
    for name in ["localhost", "localhost:1234", "127.0.0.1", "[::1]:80"] {
        let response = host.request("GET", "/manifest").host(Some(name)).send();
        assert_eq!(response.status, 200, "{name}");
    }
}
