//! The user's transcript (`shared/seed/HostHttpServer.txt`): ticket -> cookie -> create a
//! PythonContext -> execute `sys.version`, with cookies, bearer tokens and curl.

use serde_json::json;
use stencila_tests::HostProcess;

fn is_token(token: &str) -> bool {
    token.len() == 64 && token.chars().all(|c| c.is_ascii_alphanumeric())
}

#[test]
fn the_seed_transcript_with_a_cookie() {
    let host = HostProcess::start(&[]);
    let ticket = host.ticket.clone().expect("a ticket in the startup URL");
    assert_eq!(ticket.len(), 12);
    assert!(ticket.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(host.url.starts_with("http://127.0.0.1:"));

    let created = host.with_ticket("POST", "/PythonContext").send();
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.header("content-type"), Some("application/json"));
    assert_eq!(created.text(), "\"pythonContext1\"");
    let cookie = created.header("set-cookie").expect("a session cookie");
    let token = created.cookie("token").expect("a token");
    assert!(is_token(&token), "{token}");
    assert_eq!(
        cookie,
        format!("token={token}; Path=/; HttpOnly; SameSite=Strict")
    );

    let executed = host
        .request("PUT", "/pythonContext1!execute")
        .cookie(&token)
        .json(&json!({"code": "sys.version"}))
        .send();
    assert_eq!(executed.status, 200, "{}", executed.text());
    let result = executed.json();
    assert_eq!(result["messages"], json!([]));
    assert_eq!(result["value"]["type"], "string");
    let version = result["value"]["data"].as_str().expect("a version string");
    assert!(version.starts_with("3."), "{version}");
}

#[test]
fn the_seed_transcript_with_a_bearer_token() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    let created = host.request("POST", "/PythonContext").bearer(&token).send();
    assert_eq!(created.json(), json!("pythonContext1"));
    let executed = host
        .request("PUT", "/pythonContext1!execute")
        .bearer(&token)
        .body(r#"{"code": "6*7"}"#)
        .send();
    assert_eq!(
        executed.json(),
        json!({"messages": [], "value": {"type": "integer", "data": 42}})
    );
}

#[test]
fn the_seed_transcript_with_curl_cookie_jars() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl is not installed; skipping the curl transcript");
        return;
    }
    let host = HostProcess::start(&[]);
    let jar = std::env::temp_dir().join(format!("stencila-jar-{}", std::process::id()));
    let jar = jar.to_str().expect("a UTF-8 path");
    let base = format!("http://127.0.0.1:{}", host.port);
    let ticket = host.ticket.clone().expect("a ticket");
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-c", jar, "-b", jar])
            .args(args)
            .output()
            .expect("curl to run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        curl(&[
            "-X",
            "POST",
            &format!("{base}/PythonContext?ticket={ticket}")
        ]),
        "\"pythonContext1\""
    );
    let out = curl(&[
        "-X",
        "PUT",
        &format!("{base}/pythonContext1!execute"),
        "-d",
        r#"{"code":"sys.version"}"#,
    ]);
    let result: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(result["value"]["type"], "string", "{out}");
    let _ = std::fs::remove_file(jar);
}
