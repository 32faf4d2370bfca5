//! Hostile input, limits and long life: each gets a clear answer in bounded time, and
//! the host keeps serving. Also: every path that ends a worker leaves no process behind.

use serde_json::json;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};
use stencila_tests::{
    alive, all_end_within, descendants, eventually, gone, send_raw, HostProcess, Request,
};

fn serves_normally(host: &HostProcess) {
    assert_eq!(host.request("GET", "/manifest").send().status, 200);
}

/// Sends raw bytes; returns the status, or `None` when the server just closed.
fn raw_status(port: u16, bytes: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("a connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("a timeout");
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).and_then(|s| s.parse().ok())
}

#[test]
fn hostile_requests_get_4xx_and_the_host_keeps_serving() {
    let host = HostProcess::start(&[]);
    let long_line = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let big_header = format!(
        "GET /manifest HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "b".repeat(1 << 20)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("64 KB request line", long_line.into_bytes()),
        ("1 MB header", big_header.into_bytes()),
        (
            "unknown method",
            b"BREW /manifest HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        (
            "binary garbage",
            vec![0x00, 0xff, 0x13, 0x37, b'\r', b'\n', b'\r', b'\n'],
        ),
        (
            "bad version",
            b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let started = Instant::now();
        let status = raw_status(host.port, &bytes);
        assert!(
            status.is_none() || status.is_some_and(|s| (400..500).contains(&s)),
            "{what}: {status:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what} took too long"
        );
        serves_normally(&host);
    }
}

#[test]
fn a_slow_client_is_cut_off() {
    let host = HostProcess::start(&[]);
    let mut stream = TcpStream::connect(("127.0.0.1", host.port)).expect("a connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a timeout");
    let started = Instant::now();
    let _ = stream.write_all(b"GET /manifest HTTP/1.1\r\nHo");
    // ... and never finishes the head.
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(20), "held for {elapsed:?}");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    serves_normally(&host);
}

#[test]
fn ticket_guessing_is_throttled_per_address() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let guess = format!("/PythonContext?ticket=guess{i:07}");
        statuses.push(host.request("POST", &guess).send().status);
    }
    assert!(statuses[..10].iter().all(|s| *s == 403), "{statuses:?}");
    let limited = host.with_ticket("POST", "/PythonContext").send();
    assert_eq!(
        limited.status,
        429,
        "even the right ticket waits: {}",
        limited.text()
    );
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After");
    assert!(retry >= 1);
    // A valid session token from the same address still works (loopback clients share it).
    assert_eq!(
        host.request("GET", "/manifest")
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
    // The right ticket from another address works.
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let response = host.with_ticket("POST", "/PythonContext").send_from(other);
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn session_tokens_expire_when_idle() {
    let host = HostProcess::start(&["--token-ttl", "1s"]);
    let token = host.token();
    assert_eq!(
        host.request("POST", "/PythonContext")
            .cookie(&token)
            .send()
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(
        host.request("GET", "/pythonContext1")
            .cookie(&token)
            .send()
            .status,
        403
    );
}

#[test]
fn idle_instances_are_culled_and_say_so() {
    let host = HostProcess::start(&["--instance-timeout", "1s"]);
    let token = host.token();
    host.request("POST", "/PythonContext").cookie(&token).send();
    let state = host
        .request("GET", "/pythonContext1")
        .cookie(&token)
        .send()
        .json();
    for field in ["created", "lastUsed", "cullAt"] {
        assert!(state[field].is_number(), "{field}: {state}");
    }
    assert_eq!(state["busy"], false);
    let pid = state["pid"].as_u64().expect("a pid") as u32;
    assert!(eventually(Duration::from_secs(10), || {
        host.request("GET", "/pythonContext1")
            .cookie(&token)
            .send()
            .status
            == 404
    }));
    let response = host
        .request("PUT", "/pythonContext1!execute")
        .cookie(&token)
        .body(r#""1""#)
        .send();
    assert_eq!(response.status, 404);
    assert!(response.text().contains("idle"), "{}", response.text());
    assert!(
        eventually(Duration::from_secs(5), || gone(pid)),
        "culled worker {pid} remains"
    );
}

#[test]
fn a_busy_instance_is_not_culled() {
    let host = HostProcess::start(&["--instance-timeout", "1s"]);
    let token = host.token();
    host.request("POST", "/PythonContext").cookie(&token).send();
    let result = host
        .request("PUT", "/pythonContext1!execute")
        .cookie(&token)
        .body(r#"{"code": "import time; time.sleep(2.5); 7"}"#)
        .send()
        .json();
    assert_eq!(result["value"]["data"], 7, "{result}");
}

#[test]
fn worker_memory_is_capped_and_reported() {
    let host = HostProcess::start(&["--worker-memory", "400M"]);
    let token = host.token();
    host.request("POST", "/PythonContext").cookie(&token).send();
    let execute = |code: &str| {
        host.request("PUT", "/pythonContext1!execute")
            .cookie(&token)
            .json(&json!({ "code": code }))
            .send()
            .json()
    };
    let result = execute("kept = 1\nhuge = bytearray(1 << 31)");
    assert!(result.to_string().contains("MemoryError"), "{result}");
    assert_eq!(
        execute("kept")["value"]["data"],
        1,
        "the worker survives a MemoryError"
    );
    serves_normally(&host);
}

#[test]
fn the_host_stops_itself_when_idle_or_after_its_duration() {
    for args in [["--timeout", "1s"], ["--duration", "1s"]] {
        let mut host = HostProcess::start(&args);
        let stopped = eventually(Duration::from_secs(15), || {
            matches!(host.child.try_wait(), Ok(Some(_)))
        });
        assert!(stopped, "{args:?}: the host did not stop by itself");
        let status = host.child.wait().expect("an exit status");
        assert!(status.success(), "{args:?}: {status}");
    }
}

#[test]
fn a_graceful_stop_under_load_leaves_no_hang_and_no_worker() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    for _ in 0..4 {
        host.request("POST", "/PythonContext").cookie(&token).send();
    }
    let port = host.port;
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let token = token.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut answered = 0;
                while started.elapsed() < Duration::from_secs(4) {
                    let path = if i % 2 == 0 {
                        format!("/pythonContext{}!execute", i % 4 + 1)
                    } else {
                        "/manifest".to_string()
                    };
                    let bytes = Request::new(port, if i % 2 == 0 { "PUT" } else { "GET" }, &path)
                        .cookie(&token)
                        .body(r#""import time; time.sleep(0.05); 1""#)
                        .to_bytes();
                    let one = Instant::now();
                    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                        break; // the listener is closed: the host is stopping
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
                    let _ = stream.write_all(&bytes);
                    let mut out = Vec::new();
                    let _ = stream.read_to_end(&mut out);
                    assert!(one.elapsed() < Duration::from_secs(15), "a request hung");
                    if !out.is_empty() {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let workers = descendants(host.pid());
    assert!(workers.len() >= 4);
    let stopped_at = Instant::now();
    let (status, rest) = host.stop("TERM");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(12),
        "the stop took too long"
    );
    assert!(status.success(), "{status}");
    assert!(rest.contains("Host has stopped"));
    let answered: usize = clients
        .into_iter()
        .map(|c| c.join().expect("a client"))
        .sum();
    assert!(answered > 0);
    assert!(
        all_end_within(Duration::from_secs(5), &workers),
        "workers outlived the host"
    );
}

#[test]
fn no_worker_is_left_behind_by_restart_crash_or_timeout() {
    let host = HostProcess::start(&["--pool-size", "0"]);
    let token = host.token();
    host.request("POST", "/PythonContext").cookie(&token).send();
    let pid = || -> u32 {
        let state = host
            .request("GET", "/pythonContext1")
            .cookie(&token)
            .send()
            .json();
        state["pid"].as_u64().expect("a pid") as u32
    };
    let call = |method: &str, body: &str| {
        host.request("PUT", &format!("/pythonContext1!{method}"))
            .cookie(&token)
            .body(body.to_string())
            .send()
    };

    let before = pid();
    assert_eq!(call("restart", "").status, 200);
    assert!(
        eventually(Duration::from_secs(5), || gone(before)),
        "restart left {before}"
    );

    let before = pid();
    call("execute", r#""import os; os._exit(3)""#);
    assert!(
        eventually(Duration::from_secs(5), || gone(before)),
        "a crash left {before}"
    );

    call("execute", r#""1""#);
    let before = pid();
    let code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)";
    let result = call(
        "execute",
        &json!({"code": code, "timeout": 0.3}).to_string(),
    )
    .json();
    assert!(result.to_string().contains("killed"), "{result}");
    assert!(
        eventually(Duration::from_secs(5), || gone(before)),
        "a timeout left {before}"
    );

    let child_of_worker = {
        call(
            "execute",
            r#""import subprocess; p = subprocess.Popen(['sleep', '60']); p.pid""#,
        )
        .json()["value"]["data"]
            .as_u64()
            .expect("a pid") as u32
    };
    assert_eq!(
        host.request("DELETE", "/pythonContext1")
            .cookie(&token)
            .send()
            .status,
        200
    );
    assert!(
        eventually(Duration::from_secs(5), || !alive(child_of_worker)),
        "a process started by user code outlived its context"
    );
}

#[test]
fn workers_die_when_the_host_is_killed() {
    let host = HostProcess::start(&[]);
    let token = host.token();
    for _ in 0..2 {
        host.request("POST", "/PythonContext").cookie(&token).send();
    }
    let workers = descendants(host.pid());
    assert!(workers.len() >= 2);
    let (status, _) = host.stop("KILL");
    assert!(!status.success());
    assert!(
        all_end_within(Duration::from_secs(10), &workers),
        "workers {workers:?} outlived a SIGKILLed host"
    );
}

#[test]
fn max_instances_refuses_one_more_and_nothing_else_breaks() {
    let host = HostProcess::start(&["--max-instances", "2", "--pool-size", "0"]);
    let token = host.token();
    for _ in 0..2 {
        assert_eq!(
            host.request("POST", "/PythonContext")
                .cookie(&token)
                .send()
                .status,
            200
        );
    }
    let refused = host.request("POST", "/PythonContext").cookie(&token).send();
    assert_eq!(refused.status, 503);
    let result = host
        .request("PUT", "/pythonContext2!execute")
        .cookie(&token)
        .body(r#""6*7""#)
        .send()
        .json();
    assert_eq!(result["value"]["data"], 42);
    serves_normally(&host);
    let _ = send_raw;
}
