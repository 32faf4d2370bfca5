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

/// Regression: a refused cookie (expired, or another local host's: cookies ignore
/// ports) used to count towards the throttle and lock the browser out of its ticket.
/// It is never cleared either: that would log the user out of the other host.
#[test]
fn stale_cookies_are_refused_never_cleared_and_never_lock_out_the_ticket() {
    let host = HostProcess::start(&["--token-ttl", "1s"]);
    let stale = host.token();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    for _ in 0..12 {
        let refused = host.request("GET", "/pythonContext1").cookie(&stale).send();
        assert_eq!(refused.status, 403);
        assert!(
            refused.headers_named("set-cookie").is_empty(),
            "a refused cookie is left alone: {:?}",
            refused.headers
        );
    }
    let fresh = host
        .with_ticket("POST", "/PythonContext")
        .cookie(&stale)
        .send();
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    let token = fresh.cookie("token").expect("a new token");
    let both = host
        .request("GET", "/pythonContext1")
        .header("Cookie", &format!("token={stale}; token={token}"))
        .send();
    assert_eq!(both.status, 200, "any valid token cookie will do");
}

/// Regression: a page from a refused origin could trip the throttle through public
/// routes (e.g. `<img src=".../favicon.ico?ticket=...">`) and lock everyone out.
#[test]
fn refused_origins_cannot_trip_the_throttle() {
    let host = HostProcess::start(&[]);
    for i in 0..15 {
        let response = host
            .request("GET", &format!("/favicon.ico?ticket=guess{i:07}"))
            .header("Origin", "https://evil.example")
            .send();
        assert_eq!(response.status, 200);
        assert!(response.cookie("token").is_none());
    }
    assert_eq!(
        host.with_ticket("POST", "/PythonContext").send().status,
        200
    );
}

/// Regression: a token issued for a ticket used to be dropped when the call failed,
/// which spent a single-use ticket for nothing.
#[test]
fn a_ticket_redeemed_by_a_failing_request_still_sets_the_cookie() {
    let host = HostProcess::start(&["--single-use-tickets"]);
    let typo = host.with_ticket("POST", "/Pythoncontext").send();
    assert_eq!(typo.status, 404);
    let token = typo
        .cookie("token")
        .expect("the cookie comes with the error");
    assert_eq!(
        host.request("POST", "/PythonContext")
            .cookie(&token)
            .send()
            .status,
        200
    );
}

#[test]
fn sigusr1_prints_a_fresh_ticket() {
    let mut host = HostProcess::start(&["--single-use-tickets"]);
    assert_eq!(host.with_ticket("GET", "/manifest").send().status, 200);
    let status = std::process::Command::new("kill")
        .args(["-USR1", &host.pid().to_string()])
        .status()
        .expect("kill to run");
    assert!(status.success());
    let line = host.next_line();
    let prefix = format!("New ticket: http://127.0.0.1:{}/?ticket=", host.port);
    let ticket = line
        .trim()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_string();
    assert_ne!(Some(&ticket), host.ticket.as_ref());
    let path = format!("/PythonContext?ticket={ticket}");
    assert_eq!(host.request("POST", &path).send().status, 200);
    assert_eq!(host.request("POST", &path).send().status, 403, "single use");
}
