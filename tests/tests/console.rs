//! The console page (PROTOCOL.md section 12): served from the binary under a strict
//! policy, and clicked through in a real browser (Debian's chromium driven by
//! playwright-core, `tests/browser/console.mjs`).
//!
//! The browser test needs `/usr/bin/chromium`, `node` and playwright-core in
//! `target/browser/node_modules`; `cargo xtask browser-setup` installs them (and
//! `cargo xtask test` runs it first, then requires them with
//! `STENCILA_REQUIRE_BROWSER=1`). Without that variable a missing piece is a printed
//! skip, so a plain `cargo test` on a machine without a browser still passes.

use std::path::{Path, PathBuf};
use std::process::Command;
use stencila_tests::HostProcess;

#[test]
fn the_page_its_script_and_styles_are_served_under_a_strict_policy() {
    let host = HostProcess::start(&[]);
    let page = host.request("GET", "/").send();
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    assert!(html.contains("<script src=\"/static/console.js\""));
    assert!(!html.contains("<style"));
    for (path, kind) in [
        ("/static/console.js", "text/javascript"),
        ("/static/console.css", "text/css"),
    ] {
        let response = host.request("GET", path).send();
        assert_eq!(response.status, 200, "{path}");
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with(kind)),
            "{path}: {:?}",
            response.header("content-type")
        );
        assert!(response.header("content-security-policy").is_some());
    }
    // The script removes the ticket from the address bar once the cookie is set.
    let script = host.request("GET", "/static/console.js").send().text();
    assert!(script.contains("history.replaceState"));
}

/// The workspace root (tests/ is one level down).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("a workspace root")
        .to_path_buf()
}

/// What the browser test needs, or why it cannot run.
fn browser_setup() -> Result<(PathBuf, PathBuf), String> {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if !chromium.exists() {
        return Err(format!("no chromium at {}", chromium.display()));
    }
    let modules = root().join("target/browser/node_modules");
    if !modules.join("playwright-core").exists() {
        return Err(format!("no playwright-core in {}", modules.display()));
    }
    match Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => Ok((chromium, modules)),
        _ => Err("no node on PATH".into()),
    }
}

#[test]
fn the_console_works_in_a_real_browser() {
    let (chromium, modules) = match browser_setup() {
        Ok(found) => found,
        Err(why) if std::env::var_os("STENCILA_REQUIRE_BROWSER").is_some() => {
            panic!("the browser test cannot run: {why}; run `cargo xtask browser-setup`")
        }
        Err(why) => {
            eprintln!("skip: the browser test: {why} (run `cargo xtask browser-setup`)");
            return;
        }
    };
    // The test virtualenv has pandas and matplotlib, so the page shows a table and an
    // image; without it the host's python3 is used and the script says what it skips.
    let venv_python = root().join("target/test-venv/bin/python");
    let env: Vec<(&str, &str)> = match venv_python.to_str() {
        Some(python) if venv_python.exists() => vec![("STENCILA_PYTHON", python)],
        _ => Vec::new(),
    };
    let host = HostProcess::start_with_env(&["--pool-size", "1"], &env);
    let shots = root().join("target/console-screenshots");
    let output = Command::new("node")
        .arg(root().join("tests/browser/console.mjs"))
        .arg(&host.url)
        .arg(&shots)
        .env("NODE_MODULES", &modules)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node to run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok: the console works"));
    for shot in [
        "1-table.png",
        "3-busy.png",
        "4-interrupted.png",
        "5-deleted.png",
    ] {
        assert!(shots.join(shot).exists(), "no screenshot {shot}");
    }
}
