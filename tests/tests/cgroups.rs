//! Per-context cgroups (issue 10): where the machine delegates cgroup v2, a process a
//! context starts in a new session ends when the context is deleted; where it does
//! not, the host says so once at start, and such a process outlives its context (as
//! the README's security section says).

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stencila_tests::{alive, binary, eventually, gone, Request};

#[test]
fn a_context_in_a_new_session_ends_with_its_cgroup_or_the_host_says_why_not() {
    let mut child = Command::new(binary())
        .args(["serve", "--port", "0", "--no-auth", "--pool-size", "0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the host starts");
    let stderr = Arc::new(Mutex::new(Vec::<String>::new()));
    let pipe = child.stderr.take().expect("stderr");
    let lines = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            lines.lock().expect("ok").push(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the startup line");
    let url = first.trim().rsplit(' ').next().expect("a URL").to_string();
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");

    let created = Request::new(port, "POST", "/PythonContext").send();
    assert_eq!(created.status, 200, "{}", created.text());
    let code = "import subprocess\nsubprocess.Popen(['sleep', '60'], start_new_session=True).pid";
    let started = Request::new(port, "PUT", "/pythonContext1!execute")
        .json(&json!({ "code": code }))
        .send();
    let pid = started.json()["value"]["data"].as_u64().expect("a pid") as u32;
    assert!(alive(pid));
    let deleted = Request::new(port, "DELETE", "/pythonContext1").send();
    assert_eq!(deleted.status, 200);

    let log = stderr.lock().expect("ok").clone();
    let about: Vec<&String> = log.iter().filter(|l| l.contains("cgroup")).collect();
    assert_eq!(about.len(), 1, "said once: {log:?}");
    if about[0].contains("a cgroup of their own") {
        assert!(
            eventually(Duration::from_secs(10), || gone(pid)),
            "the new-session process outlived its context"
        );
    } else {
        assert!(
            about[0].contains("contexts run without cgroups (") && about[0].contains("setsid"),
            "{}",
            about[0]
        );
        // As the README warns: it is still running; end it ourselves.
        assert!(alive(pid));
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let _ = child.kill();
    let _ = child.wait();
}
