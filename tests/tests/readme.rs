//! The README's curl transcript works pasted into an interactive bash, where `!`
//! is history expansion (issue 11): its lines are read from the README, pointed at a
//! real host, and typed into `bash -i` through its stdin.

use std::io::Write;
use std::process::{Command, Stdio};
use stencila_tests::HostProcess;

/// The `$ curl ...` lines of the README's transcript, each with the line the README
/// shows it printing.
fn curl_lines() -> Vec<(String, String)> {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    readme
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let command = format!("curl {}", line.strip_prefix("$ curl ")?);
            let printed = readme.get(i + 1)?.to_string();
            Some((command, printed))
        })
        .collect()
}

#[test]
fn the_curl_transcript_works_in_an_interactive_bash() {
    let lines = curl_lines();
    assert!(lines.len() >= 2, "no curl transcript in the README");
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skip: curl is not installed");
        return;
    }
    let host = HostProcess::start(&[]);
    let ticket = host.ticket.clone().expect("a ticket");
    let jar = std::env::temp_dir().join(format!("stencila-readme-jar-{}", std::process::id()));
    let script: String = lines
        .iter()
        .map(|(line, _)| {
            line.replace("127.0.0.1:2000", &format!("127.0.0.1:{}", host.port))
                .replace("w8Z0ZkuWlz8Y", &ticket)
                .replace("/tmp/jar", &jar.to_string_lossy())
                + "\necho\n"
        })
        .collect();
    let mut bash = Command::new("bash")
        .args(["--norc", "--noprofile", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash to start");
    bash.stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    let output = bash.wait_with_output().expect("bash to end");
    let _ = std::fs::remove_file(&jar);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("event not found"), "{stderr}");
    for (_, printed) in &lines {
        assert!(
            stdout.lines().any(|line| line == printed),
            "the README says {printed}; bash printed:\n{stdout}\n{stderr}"
        );
    }
}
