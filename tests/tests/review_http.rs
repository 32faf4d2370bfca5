//! Regression tests for the security review of the HTTP layer, auth and CLI (issue 14,
//! findings 1 to 13): each is named after its finding and failed before the fix.

use std::io::BufRead;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stencila_tests::{
    alive, binary, eventually, send_raw, HostProcess, Request, Response, ScratchDir,
};

/// This process's user id, as the host computes its run directory from it.
fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").expect("/proc/self").uid()
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill to run");
    assert!(status.success());
}

fn sets_no_cookie(response: &Response) -> bool {
    response.headers_named("set-cookie").is_empty()
}

// Finding 1 -----------------------------------------------------------------------

/// A page's `<img referrerpolicy="no-referrer" src=".../favicon.ico?ticket=bad">` sends no
/// Origin and no Referer; the browser marks it `Sec-Fetch-Site: cross-site`. Such
/// requests used to count as a non-browser client's bad tickets and lock out 127.0.0.1.
#[test]
fn sec_fetch_site_cross_site_img_cannot_lock_out_the_owner() {
    let host = HostProcess::start(&[]);
    for i in 0..15 {
        let site = if i % 2 == 0 {
            "cross-site"
        } else {
            "same-site"
        };
        let response = host
            .request("GET", &format!("/favicon.ico?ticket=guess{i:07}"))
            .header("Sec-Fetch-Site", site)
            .header("Sec-Fetch-Dest", "image")
            .send();
        assert_eq!(response.status, 200, "the public answer");
        assert!(response.cookie("token").is_none());
    }
    // The owner opens the startup URL (typed or pasted: `Sec-Fetch-Site: none`).
    let opened = host
        .with_ticket("GET", "/")
        .header("Sec-Fetch-Site", "none")
        .send();
    assert_eq!(opened.status, 200);
    assert!(opened.cookie("token").is_some(), "{:?}", opened.headers);
    let created = host.with_ticket("POST", "/PythonContext").send();
    assert_eq!(created.status, 200, "{}", created.text());
}

/// The same marking makes a request without Origin or Referer a refused origin: its
/// credentials are not even looked at, so it cannot use a private endpoint.
#[test]
fn sec_fetch_site_cross_site_without_origin_is_treated_as_a_refused_origin() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    for site in ["cross-site", "same-site"] {
        let private = host
            .request("GET", "/environ-nope")
            .cookie(&token)
            .header("Sec-Fetch-Site", site)
            .send();
        assert_eq!(private.status, 403, "{site}: {}", private.text());
        let ticket = host
            .with_ticket("GET", "/manifest")
            .header("Sec-Fetch-Site", site)
            .send();
        assert_eq!(ticket.status, 200);
        assert!(ticket.cookie("token").is_none(), "{site}: ticket ignored");
        assert!(ticket.json().get("instances").is_none());
    }
    // Same-origin and user-initiated requests are not affected.
    for site in ["same-origin", "none"] {
        let response = host
            .request("DELETE", "/environ/local")
            .cookie(&token)
            .header("Sec-Fetch-Site", site)
            .send();
        assert_eq!(response.status, 200, "{site}: {}", response.text());
    }
}

/// Where an Origin is present it alone decides: an allowed page on another site (which
/// the browser marks cross-site) keeps working.
#[test]
fn sec_fetch_site_does_not_overrule_an_allowed_origin_on_another_site() {
    let host = HostProcess::start(&[]);
    let redeemed = host
        .with_ticket("GET", "/manifest")
        .header("Origin", "http://localhost:4000")
        .header("Sec-Fetch-Site", "cross-site")
        .send();
    assert_eq!(redeemed.status, 200);
    let token = redeemed
        .cookie("token")
        .expect("a token for an allowed origin");
    for origin in ["http://localhost:4000", "https://stenci.la"] {
        let response = host
            .request("DELETE", "/environ/local")
            .bearer(&token)
            .header("Origin", origin)
            .header("Sec-Fetch-Site", "cross-site")
            .send();
        assert_eq!(response.status, 200, "{origin}: {}", response.text());
        assert_eq!(response.header("access-control-allow-origin"), Some(origin));
    }
    // A Referer is an origin too.
    let response = host
        .request("DELETE", "/environ/local")
        .bearer(&token)
        .header("Referer", "https://hub.stenci.la/some/page")
        .header("Sec-Fetch-Site", "cross-site")
        .send();
    assert_eq!(response.status, 200, "{}", response.text());
}

// Finding 2 -----------------------------------------------------------------------

/// Cookies ignore ports: clearing `token` would log the user out of another local host.
#[test]
fn a_refused_token_cookie_gets_403_and_is_never_cleared() {
    let host = HostProcess::start(&[]);
    let other_hosts_token = "A".repeat(64);
    for path in ["/pythonContext1", "/manifest", "/"] {
        let response = host.request("GET", path).cookie(&other_hosts_token).send();
        if path == "/pythonContext1" {
            assert_eq!(response.status, 403, "{}", response.text());
        }
        assert!(
            sets_no_cookie(&response),
            "{path}: {:?}",
            response.headers_named("set-cookie")
        );
    }
    let bearer = host
        .request("GET", "/pythonContext1")
        .bearer(&other_hosts_token)
        .send();
    assert_eq!(bearer.status, 403);
    assert!(sets_no_cookie(&bearer));
}

// Finding 3 -----------------------------------------------------------------------

fn raw_get(port: u16, path: &str, headers: &[u8]) -> Response {
    let mut bytes = format!("GET {path} HTTP/1.1\r\n").into_bytes();
    bytes.extend_from_slice(headers);
    bytes.extend_from_slice(b"Connection: close\r\n\r\n");
    send_raw(port, &bytes)
}

#[test]
fn a_non_ascii_host_header_is_refused_not_treated_as_absent() {
    let host = HostProcess::start(&[]);
    for value in [&b"\xffevil.com"[..], b"evil.com\xe9", b"127.0.0.1\xff"] {
        let mut headers = b"Host: ".to_vec();
        headers.extend_from_slice(value);
        headers.extend_from_slice(b"\r\n");
        let response = raw_get(host.port, "/manifest", &headers);
        assert!(
            response.status == 400 || response.status == 403,
            "{:?}: {}",
            String::from_utf8_lossy(value),
            response.status
        );
    }
}

#[test]
fn a_non_ascii_origin_is_refused_not_treated_as_absent() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    for name in ["Origin", "Referer"] {
        let mut headers = format!(
            "Host: 127.0.0.1:{}\r\nCookie: token={token}\r\n{name}: ",
            host.port
        )
        .into_bytes();
        headers.extend_from_slice(b"http://\xffevil.com\r\n");
        let mut bytes = b"DELETE /environ/local HTTP/1.1\r\n".to_vec();
        bytes.extend_from_slice(&headers);
        bytes.extend_from_slice(b"Content-Length: 0\r\nConnection: close\r\n\r\n");
        let response = send_raw(host.port, &bytes);
        assert!(
            response.status == 400 || response.status == 403,
            "{name}: {} {}",
            response.status,
            response.text()
        );
    }
}

// Finding 4 -----------------------------------------------------------------------

/// `%25` is an escaped `%`: decoded once, `/pythonContext%2531` names `pythonContext%31`,
/// never `pythonContext1`.
#[test]
fn a_put_path_is_percent_decoded_exactly_once() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    let created = host.request("POST", "/PythonContext").cookie(&token).send();
    assert_eq!(created.json(), serde_json::json!("pythonContext1"));
    let code = serde_json::json!({"code": "6*7"});
    for path in ["/pythonContext%2531!execute", "/pythonContext1%2521execute"] {
        let response = host.request("PUT", path).cookie(&token).json(&code).send();
        assert!(
            response.status == 404 || response.status == 400,
            "{path}: {} {}",
            response.status,
            response.text()
        );
    }
    for path in [
        "/pythonContext1!execute",
        "/pythonContext1%21execute",
        "/python%43ontext1!execute",
    ] {
        let response = host.request("PUT", path).cookie(&token).json(&code).send();
        assert_eq!(response.status, 200, "{path}: {}", response.text());
    }
}

// Finding 5 -----------------------------------------------------------------------

/// A `spawn`ed host: its one JSON line, and the port it serves on.
fn spawn_host(args: &[&str]) -> (Child, u16, String) {
    let mut child = Command::new(binary())
        .args(["spawn", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("stencila to start");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let spawned: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    let url = spawned["manifest"]["servers"]["http"]["url"]
        .as_str()
        .expect("a URL");
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let key = spawned["key"].as_str().expect("a key").to_string();
    (child, port, key)
}

/// SIGUSR1's default action is to end the process: the handler must be in place from
/// before the startup line, whatever the mode.
#[test]
fn sigusr1_never_kills_a_no_auth_or_spawned_host() {
    let host = HostProcess::start(&["--no-auth"]);
    kill("USR1", host.pid());
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(host.pid()), "SIGUSR1 killed a --no-auth host");
    assert_eq!(host.request("GET", "/manifest").send().status, 200);
    let (status, _) = host.stop("INT");
    assert!(status.success(), "{status}");

    let (mut child, port, key) = spawn_host(&[]);
    kill("USR1", child.id());
    std::thread::sleep(Duration::from_millis(500));
    let still_running = matches!(child.try_wait(), Ok(None));
    let response = still_running.then(|| {
        Request::new(port, "DELETE", "/environ/local")
            .bearer(&key)
            .send()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(still_running, "SIGUSR1 killed a spawned host");
    assert_eq!(response.map(|r| r.status), Some(200));
}

#[test]
fn sigusr1_right_after_the_startup_line_mints_a_ticket() {
    let mut host = HostProcess::start(&[]);
    kill("USR1", host.pid());
    let line = host.next_line();
    assert!(
        line.starts_with(&format!(
            "New ticket: http://127.0.0.1:{}/?ticket=",
            host.port
        )),
        "{line:?}"
    );
}

// Finding 6 -----------------------------------------------------------------------

/// Sends a request and reads what comes back, ignoring every error: the host may stop
/// at any moment here.
fn poke(port: u16, bytes: &[u8]) {
    if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.write_all(bytes);
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

/// A web page polling the host (refused, or cross-site without an Origin) must not keep
/// an idle host alive past `--timeout`.
#[test]
fn refused_requests_do_not_reset_the_idle_timer() {
    let mut host = HostProcess::start(&["--timeout", "2s"]);
    let started = Instant::now();
    let mut stopped = false;
    while started.elapsed() < Duration::from_secs(20) {
        if matches!(host.child.try_wait(), Ok(Some(_))) {
            stopped = true;
            break;
        }
        for request in [
            host.request("POST", "/PythonContext")
                .header("Origin", "https://evil.example"),
            host.request("GET", "/favicon.ico")
                .header("Sec-Fetch-Site", "cross-site"),
            host.request("GET", "/manifest").host(Some("evil.example")),
            host.request("GET", "/pythonContext1"),
            host.request("GET", "/pythonContext1")
                .cookie(&"A".repeat(64)),
        ] {
            poke(host.port, &request.to_bytes());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(stopped, "refused requests kept an idle host alive");
}

// Finding 8 -----------------------------------------------------------------------

/// Another local user who made `<tmp>/stencila` first used to stop every host from
/// starting; now each user has a directory of their own.
#[test]
fn another_users_tmp_stencila_cannot_stop_a_host_from_starting() {
    let scratch = ScratchDir::new("rundir");
    let shared = scratch.0.join("stencila");
    std::fs::create_dir_all(&shared).expect("a dir");
    let chowned = Command::new("chown")
        .args(["65534", shared.to_str().expect("utf-8")])
        .status()
        .is_ok_and(|s| s.success());
    if !chowned {
        // Not root: a plain file in the way blocks the old shared path just the same.
        std::fs::remove_dir(&shared).expect("removed");
        std::fs::write(&shared, "not a directory").expect("a file");
    }
    let tmp = scratch.text();
    let host = HostProcess::start_with_env(&[], &[("TMPDIR", &tmp), ("XDG_RUNTIME_DIR", "")]);
    let id = host.request("GET", "/manifest").send().json()["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let own = scratch.0.join(format!("stencila-{}", uid())).join("hosts");
    assert!(own.join(format!("{id}.json")).is_file());
    assert!(own.join(format!("{id}.key")).is_file());
    let (status, _) = host.stop("TERM");
    assert!(status.success());
    assert!(!own.join(format!("{id}.json")).exists());
}

#[test]
fn run_files_live_in_xdg_runtime_dir_when_it_is_set() {
    let scratch = ScratchDir::new("xdg");
    let runtime = scratch.0.join("runtime");
    std::fs::create_dir_all(&runtime).expect("a dir");
    let runtime_text = runtime.to_str().expect("utf-8").to_string();
    let host = HostProcess::start_with_env(&[], &[("XDG_RUNTIME_DIR", &runtime_text)]);
    let id = host.request("GET", "/manifest").send().json()["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let hosts = runtime.join("stencila").join("hosts");
    assert!(hosts.join(format!("{id}.json")).is_file());
    assert!(hosts.join(format!("{id}.key")).is_file());
}

/// A run file is stale only when its pid is gone: a live process keeps its files.
#[test]
fn a_live_hosts_run_files_are_never_removed_as_stale() {
    let scratch = ScratchDir::new("live");
    let runtime = scratch.0.join("runtime");
    let hosts = runtime.join("stencila").join("hosts");
    std::fs::create_dir_all(&hosts).expect("dirs");
    let live = hosts.join("rust-host-live.json");
    let pid = std::process::id();
    std::fs::write(&live, format!(r#"{{"process": {{"pid": {pid}}}}}"#)).expect("a file");
    let dead = hosts.join("rust-host-dead.json");
    std::fs::write(&dead, r#"{"process": {"pid": 4000000}}"#).expect("a file");
    std::fs::write(hosts.join("rust-host-dead.key"), "k").expect("a file");
    let runtime_text = runtime.to_str().expect("utf-8").to_string();
    let host = HostProcess::start_with_env(&[], &[("XDG_RUNTIME_DIR", &runtime_text)]);
    assert!(live.exists(), "a live process's run file was removed");
    assert!(!dead.exists() && !hosts.join("rust-host-dead.key").exists());
    drop(host);
}

// Finding 10 ----------------------------------------------------------------------

#[test]
fn allow_origin_with_a_default_port_matches_the_origin_a_browser_sends() {
    let host = HostProcess::start(&[
        "--allow-origin",
        "https://example.org:443",
        "--allow-origin",
        "http://example.net:80",
    ]);
    let token = host.token();
    for origin in ["https://example.org", "http://example.net"] {
        let response = host
            .request("DELETE", "/environ/local")
            .cookie(&token)
            .header("Origin", origin)
            .send();
        assert_eq!(response.status, 200, "{origin}: {}", response.text());
        assert_eq!(response.header("access-control-allow-origin"), Some(origin));
    }
}

// Finding 11 ----------------------------------------------------------------------

#[test]
fn static_dir_never_serves_dotfiles_or_dot_directories() {
    let scratch = ScratchDir::new("dotfiles");
    let root = scratch.0.join("www");
    std::fs::create_dir_all(root.join(".git")).expect("dirs");
    std::fs::create_dir_all(root.join("a/.hidden")).expect("dirs");
    std::fs::write(root.join(".env"), "SECRET=1").expect("a file");
    std::fs::write(root.join(".git/config"), "[core] SECRET").expect("a file");
    std::fs::write(root.join("a/.hidden/x.txt"), "SECRET").expect("a file");
    std::fs::write(root.join("a/ok.txt"), "fine").expect("a file");
    let host = HostProcess::start(&["--static-dir", root.to_str().expect("utf-8")]);
    assert_eq!(
        host.request("GET", "/static/a/ok.txt").send().text(),
        "fine"
    );
    for path in [
        "/static/.env",
        "/static/%2eenv",
        "/static/%2Eenv",
        "/static/.git/config",
        "/static/a/.hidden/x.txt",
        "/static/a/%2ehidden/x.txt",
        "/static/./.env",
    ] {
        let response = host.request("GET", path).send();
        assert_eq!(response.status, 404, "{path}");
        assert!(!response.text().contains("SECRET"), "{path} leaked");
    }
}

// Finding 12 ----------------------------------------------------------------------

#[test]
fn every_response_says_nosniff_and_vary_origin_and_private_ones_no_store() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    let check = |what: &str, response: &Response, no_store: bool| {
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert!(
            response.headers_named("vary").iter().any(|v| v
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("origin"))),
            "{what}: {:?}",
            response.headers
        );
        if no_store {
            assert!(
                response
                    .header("cache-control")
                    .is_some_and(|v| v.contains("no-store")),
                "{what}: {:?}",
                response.headers
            );
        }
    };
    check("public page", &host.request("GET", "/").send(), false);
    check(
        "favicon",
        &host.request("GET", "/favicon.ico").send(),
        false,
    );
    check("404", &host.request("GET", "/static/nope").send(), false);
    check("400", &host.request("PATCH", "/x").send(), false);
    check("sets a cookie", &host.with_ticket("GET", "/").send(), true);
    check("401", &host.request("GET", "/pythonContext1").send(), true);
    check(
        "private answer",
        &host
            .request("DELETE", "/environ/local")
            .cookie(&token)
            .send(),
        true,
    );
    check(
        "authorized manifest",
        &host.request("GET", "/manifest").cookie(&token).send(),
        true,
    );
    check(
        "private error",
        &host.request("GET", "/pythonContext9").cookie(&token).send(),
        true,
    );
    check(
        "refused origin",
        &host
            .request("GET", "/manifest")
            .header("Origin", "https://evil.example")
            .send(),
        false,
    );
}

// Finding 13 ----------------------------------------------------------------------

/// `--no-auth` on an address other machines can reach lets anyone run code: refused
/// at startup (before binding) unless the user also says `--no-auth-anywhere`.
#[test]
fn no_auth_on_a_non_loopback_address_is_refused_without_no_auth_anywhere() {
    // 192.0.2.1 (TEST-NET-1) is never this machine's, so nothing is ever exposed.
    for (args, env) in [
        (vec!["--no-auth", "--address", "192.0.2.1"], None),
        (
            vec!["--address", "192.0.2.1"],
            Some(("STENCILA_AUTH", "false")),
        ),
        (vec!["--no-auth", "--address", "::ffff:192.0.2.1"], None),
    ] {
        let mut command = Command::new(binary());
        command.args(["serve", "--port", "0"]).args(&args);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let out = command.output().expect("to run");
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--no-auth-anywhere"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn the_idle_timer_still_counts_accepted_requests() {
    // Guard for finding 6: requests that pass the checks still keep the host up.
    let mut host = HostProcess::start(&["--timeout", "3s"]);
    let token = host.token();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert!(
            matches!(host.child.try_wait(), Ok(None)),
            "the host stopped while in use"
        );
        assert_eq!(
            host.request("GET", "/manifest")
                .cookie(&token)
                .send()
                .status,
            200
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(eventually(Duration::from_secs(20), || matches!(
        host.child.try_wait(),
        Ok(Some(_))
    )));
}
