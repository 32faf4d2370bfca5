//! Tickets and session tokens (PROTOCOL.md section 2) as a client sees them.

use serde_json::json;
use stencila_tests::HostProcess;

#[test]
fn tickets_are_multi_use_by_default() {
    let host = HostProcess::start(&[]);
    let first = host.with_ticket("GET", "/manifest").send();
    let second = host.with_ticket("GET", "/manifest").send();
    let (a, b) = (first.cookie("token"), second.cookie("token"));
    assert!(a.is_some() && b.is_some());
    assert_ne!(a, b, "each redemption issues a fresh token");
    assert_eq!(
        host.with_ticket("POST", "/PythonContext").send().status,
        200
    );
    assert_eq!(
        host.with_ticket("POST", "/PythonContext").send().status,
        200
    );
}

#[test]
fn single_use_tickets_work_once() {
    let host = HostProcess::start(&["--single-use-tickets"]);
    let first = host.with_ticket("POST", "/PythonContext").send();
    assert_eq!(first.status, 200);
    let token = first.cookie("token").expect("a token");
    let again = host.with_ticket("POST", "/PythonContext").send();
    assert_eq!(again.status, 403, "{}", again.text());
    // The token keeps working, even alongside the spent ticket (e.g. a reloaded URL).
    assert_eq!(
        host.request("GET", "/pythonContext1")
            .cookie(&token)
            .send()
            .status,
        200
    );
    assert_eq!(
        host.with_ticket("GET", "/pythonContext1")
            .cookie(&token)
            .send()
            .status,
        200
    );
}

#[test]
fn opening_the_startup_url_sets_the_cookie() {
    let host = HostProcess::start(&[]);
    let page = host.with_ticket("GET", "/").send();
    assert_eq!(page.status, 200);
    assert!(page.cookie("token").is_some());
    // A bad ticket on a public page still gets the page, without a cookie.
    let page = host.request("GET", "/?ticket=wrongwrong12").send();
    assert_eq!(page.status, 200);
    assert!(page.cookie("token").is_none());
}

#[test]
fn cookie_and_bearer_tokens_both_work() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    assert_eq!(
        host.request("POST", "/PythonContext")
            .cookie(&token)
            .send()
            .status,
        200
    );
    assert_eq!(
        host.request("POST", "/PythonContext")
            .bearer(&token)
            .send()
            .status,
        200
    );
    let other_cookies = host
        .request("GET", "/pythonContext1")
        .header("Cookie", &format!("theme=dark; token={token}; x=y"))
        .send();
    assert_eq!(other_cookies.status, 200);
}

#[test]
fn no_auth_by_flag_and_by_environment() {
    for host in [
        HostProcess::start(&["--no-auth"]),
        HostProcess::start_with_env(&[], &[("STENCILA_AUTH", "false")]),
    ] {
        assert!(host.ticket.is_none(), "{}", host.url);
        let created = host.request("POST", "/PythonContext").send();
        assert_eq!(created.json(), json!("pythonContext1"));
        let manifest = host.request("GET", "/manifest").send().json();
        assert_eq!(manifest["instances"], json!(["pythonContext1"]));
    }
}
