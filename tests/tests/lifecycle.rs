//! Starting and stopping: ports, run files, signals, workers ending with the host, and
//! the `spawn`, `manifest` and `register` commands.

use serde_json::json;
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use stencila_tests::{all_end_within, binary, descendants, eventually, HostProcess};

/// This user's run directory, as the host computes it (PROTOCOL section 1).
fn run_dir() -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    match std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from) {
        Some(runtime)
            if runtime.is_absolute()
                && std::fs::metadata(&runtime).is_ok_and(|m| m.is_dir() && m.uid() == uid) =>
        {
            runtime.join("stencila")
        }
        _ => std::env::temp_dir().join(format!("stencila-{uid}")),
    }
}

fn run_files(id: &str) -> [std::path::PathBuf; 2] {
    let dir = run_dir().join("hosts");
    [
        dir.join(format!("{id}.json")),
        dir.join(format!("{id}.key")),
    ]
}

#[test]
fn run_files_are_private_and_removed_on_sigint() {
    let host = HostProcess::start(&[]);
    let manifest = host.request("GET", "/manifest").send().json();
    let id = manifest["id"].as_str().expect("an id").to_string();
    let files = run_files(&id);
    for file in &files {
        let mode = std::fs::metadata(file)
            .expect("a run file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).expect("readable")).expect("JSON");
    assert_eq!(written["id"], json!(id));
    let key = std::fs::read_to_string(&files[1]).expect("readable");
    assert_eq!(key.len(), 64);
    // The key works as a bearer token.
    assert_eq!(
        host.request("POST", "/PythonContext")
            .bearer(&key)
            .send()
            .status,
        200
    );

    let (status, rest) = host.stop("INT");
    assert!(status.success(), "{status}");
    assert!(rest.contains("Host has stopped"), "{rest}");
    for file in &files {
        assert!(!file.exists(), "{} was left behind", file.display());
    }
}

#[test]
fn no_worker_outlives_the_host() {
    for signal in ["INT", "TERM"] {
        let host = HostProcess::start(&[]);
        let token = host.token();
        for _ in 0..3 {
            assert_eq!(
                host.request("POST", "/PythonContext")
                    .cookie(&token)
                    .send()
                    .status,
                200
            );
        }
        // One is busy when the signal arrives.
        let port = host.port;
        let busy_token = token.clone();
        let busy = std::thread::spawn(move || {
            stencila_tests::Request::new(port, "PUT", "/pythonContext1!execute")
                .cookie(&busy_token)
                .body(r#"{"code": "import time; time.sleep(60)"}"#)
                .send()
        });
        let workers_started = eventually(Duration::from_secs(10), || {
            descendants(host.pid()).len() >= 3
        });
        assert!(workers_started);
        std::thread::sleep(Duration::from_millis(300));
        let workers = descendants(host.pid());
        let (status, _) = host.stop(signal);
        assert!(status.success(), "SIG{signal}: {status}");
        let _ = busy.join();
        assert!(
            all_end_within(Duration::from_secs(5), &workers),
            "SIG{signal}: workers {workers:?} outlived the host"
        );
    }
}

#[test]
fn a_taken_port_falls_back_by_tens() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("an address").port();
    if port > 65000 {
        return;
    }
    if std::net::TcpListener::bind(("127.0.0.1", port + 10)).is_err() {
        eprintln!("port {} is also taken; skipping", port + 10);
        return;
    }
    let mut child = Command::new(binary())
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("stencila to start");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with(&format!(
            "Host has started at: http://127.0.0.1:{}/?ticket=",
            port + 10
        )),
        "{line}"
    );
}

#[test]
fn spawn_prints_id_key_and_manifest() {
    let mut child = Command::new(binary())
        .args(["spawn", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("stencila to start");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let spawned: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    let key = spawned["key"].as_str().expect("a key").to_string();
    let url = spawned["manifest"]["servers"]["http"]["url"]
        .as_str()
        .expect("a URL");
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    assert_eq!(spawned["id"], spawned["manifest"]["id"]);
    let created = stencila_tests::Request::new(port, "POST", "/PythonContext")
        .bearer(&key)
        .send();
    assert_eq!(created.status, 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn manifest_and_register_commands() {
    let out = Command::new(binary())
        .arg("manifest")
        .output()
        .expect("to run");
    assert!(out.status.success());
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(manifest["types"]["PythonContext"].is_object());

    let home = std::env::temp_dir().join(format!("stencila-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).expect("a home");
    let out = Command::new(binary())
        .arg("register")
        .env("HOME", &home)
        .output()
        .expect("to run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registered = home.join(".stencila/hosts/rust.json");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&registered).expect("written"))
            .expect("JSON");
    assert_eq!(written["stencila"]["package"], "rust");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_missing_python_is_a_clear_error() {
    let host = HostProcess::start_with_env(&[], &[("STENCILA_PYTHON", "/nonexistent/python3")]);
    let token = host.token();
    let manifest = host.request("GET", "/manifest").send().json();
    assert_eq!(manifest["types"]["PythonContext"]["available"], false);
    let response = host.request("POST", "/PythonContext").cookie(&token).send();
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.text().contains("Python"), "{}", response.text());
}

#[test]
fn max_instances_is_a_clear_error() {
    let host = HostProcess::start(&["--max-instances", "1"]);
    let token = host.token();
    assert_eq!(
        host.request("POST", "/PythonContext")
            .cookie(&token)
            .send()
            .status,
        200
    );
    let refused = host.request("POST", "/PythonContext").cookie(&token).send();
    assert_eq!(refused.status, 503);
    assert!(refused.text().contains("maximum"), "{}", refused.text());
    assert_eq!(
        host.request("DELETE", "/pythonContext1")
            .cookie(&token)
            .send()
            .status,
        200
    );
    assert_eq!(
        host.request("POST", "/PythonContext")
            .cookie(&token)
            .send()
            .status,
        200
    );
}

#[test]
fn help_reads_well() {
    let out = Command::new(binary())
        .arg("--help")
        .output()
        .expect("to run");
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--port",
        "--no-auth",
        "--single-use-tickets",
        "--allow-origin",
        "--static-dir",
        "spawn",
        "register",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
}

/// Regression: a parent that reads the startup line and closes the pipe used to kill
/// the host with EPIPE when it wrote its second line.
#[test]
fn closing_stdout_after_the_first_line_does_not_stop_the_host() {
    let mut child = Command::new(binary())
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("stencila to start");
    let mut line = String::new();
    {
        let mut stdout = std::io::BufReader::with_capacity(1, child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("a line");
    }
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a port");
    std::thread::sleep(Duration::from_millis(300));
    let response = stencila_tests::Request::new(port, "GET", "/manifest").send();
    assert_eq!(response.status, 200);
    assert!(child.try_wait().expect("wait").is_none(), "the host exited");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().expect("an exit");
    assert!(status.success(), "{status}");
}

#[test]
fn pooled_workers_start_ahead_serve_one_instance_each_and_end_with_the_host() {
    let host = HostProcess::start(&["--pool-size", "2"]);
    assert!(
        eventually(Duration::from_secs(20), || descendants(host.pid()).len()
            >= 2),
        "the pool did not fill"
    );
    let token = host.token();
    let execute = |name: &str, code: &str| {
        host.request("PUT", &format!("/{name}!execute"))
            .cookie(&token)
            .json(&json!({ "code": code }))
            .send()
            .json()
    };
    let first = host
        .request("POST", "/PythonContext")
        .cookie(&token)
        .send()
        .json();
    assert_eq!(first, json!("pythonContext1"));
    execute("pythonContext1", "secret = 42");
    assert_eq!(
        host.request("DELETE", "/pythonContext1")
            .cookie(&token)
            .send()
            .status,
        200
    );
    for _ in 0..3 {
        let name = host
            .request("POST", "/PythonContext")
            .cookie(&token)
            .send()
            .json();
        let name = name.as_str().expect("a name");
        let result = execute(name, "secret");
        assert_eq!(
            result["messages"][0]["type"], "error",
            "a worker was reused: {result}"
        );
    }
    let workers = descendants(host.pid());
    let (status, _) = host.stop("TERM");
    assert!(status.success());
    assert!(
        all_end_within(Duration::from_secs(5), &workers),
        "pooled workers outlived the host"
    );
}

/// Regression: signal handlers used to be installed after the startup line, so a
/// SIGINT sent as soon as the line was read could kill the host uncleanly.
#[test]
fn sigint_right_after_the_startup_line_is_a_clean_stop() {
    for _ in 0..3 {
        let host = HostProcess::start(&[]);
        let (status, rest) = host.stop("INT");
        assert!(status.success(), "{status}");
        assert!(rest.contains("Host has stopped"), "{rest:?}");
    }
}

/// The run-file directory must be this user's own: in a shared /tmp another user
/// could have made it first and swap the manifest to learn the host key.
#[test]
fn a_run_directory_owned_by_someone_else_is_refused_and_stale_files_are_cleaned() {
    let tmp = std::env::temp_dir().join(format!("stencila-tmpdir-{}", std::process::id()));
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").expect("/proc/self").uid()
    };
    let own = format!("stencila-{uid}");
    let hosts = tmp.join(&own).join("hosts");
    std::fs::create_dir_all(&hosts).expect("dirs");
    // A host killed with SIGKILL leaves its files behind: the next host removes them.
    let stale = hosts.join("rust-host-stale.json");
    std::fs::write(&stale, r#"{"process": {"pid": 4000000}}"#).expect("a file");
    std::fs::write(hosts.join("rust-host-stale.key"), "k").expect("a file");
    let tmp_text = tmp.to_str().expect("utf-8").to_string();
    let host = HostProcess::start_with_env(&[], &[("TMPDIR", &tmp_text), ("XDG_RUNTIME_DIR", "")]);
    assert!(!stale.exists(), "the stale manifest was not removed");
    assert!(!hosts.join("rust-host-stale.key").exists());
    drop(host);

    let owned_by_nobody = Command::new("chown")
        .args(["65534", tmp.join(&own).to_str().expect("utf-8")])
        .status()
        .is_ok_and(|s| s.success());
    if owned_by_nobody
        && std::fs::metadata(tmp.join(&own)).is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 65534
        })
    {
        let out = Command::new(binary())
            .args(["--port", "0"])
            .env("TMPDIR", &tmp_text)
            .env("XDG_RUNTIME_DIR", "")
            .output()
            .expect("to run");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("belongs to another user"), "{stderr}");
    } else {
        eprintln!("cannot chown here (not root?); skipping the foreign-owner check");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
